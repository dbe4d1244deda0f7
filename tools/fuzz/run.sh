#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, one after another, and prints
# libFuzzer's last status line per target; exits non-zero if any target found a crash, a
# hang (-timeout) or an over-allocation (-rss_limit_mb / -malloc_limit_mb). The committed
# seeds (fuzz/corpus) are joined at run time by real files where RECOG_HOME /
# RECOG_MODEL_PATH have them; new inputs go to the ignored fuzz/corpus-run.
#
# Needs cargo-fuzz (crates.io). Without sanitizers (`-s none`) it builds on stable; set
# FUZZ_TOOLCHAIN=+nightly to use the nightly toolchain. FUZZ_PROFILE=--dev builds without
# optimisation (CI's smoke run: a quicker build, slower executions); the default is release.
# TARGETS (space-separated) picks targets. FUZZ_RUNS=N stops each target after N inputs
# instead, with a fixed seed: the same inputs every time (CI's smoke run). FUZZ_FLAGS adds
# libFuzzer flags (e.g. "-len_control=0" to allow long inputs from the start). FUZZ_MAX_LEN
# caps an input's length in bytes (default 1 MB; longer corpus files are read truncated).
set -uo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH="${1:-600}"
TARGETS="${TARGETS:-idx idx_gz npy tfjs onnx tflite keras_hdf5 gallery_import image_decode serve_request}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-}"
PROFILE="${FUZZ_PROFILE:-}"
# shellcheck disable=SC2086
cargo $TOOLCHAIN fuzz build -s none $PROFILE >/dev/null || { echo "error: cargo fuzz build failed" >&2; exit 2; }
if [ "$PROFILE" = "--dev" ]; then BIN=fuzz/target/x86_64-unknown-linux-gnu/debug; else BIN=fuzz/target/x86_64-unknown-linux-gnu/release; fi
mkdir -p fuzz/corpus-run fuzz/artifacts
extra() {
    case "$1" in
        onnx) ls "${RECOG_HOME:-/nonexistent}"/models/blazeface/*.onnx 2>/dev/null ;;
        tflite) ls "${RECOG_MODEL_PATH:-/nonexistent}"/mobilefacenet/*.tflite 2>/dev/null ;;
    esac
}
# Whether a run reached a plateau, from its own log: libFuzzer's `cov` at half of the
# executions and at the end, and how far into the run (share of executions) the last new
# coverage came. Printed here so that no later run's log is needed to judge it.
plateau() {
    awk '/^#[0-9]+/ { n = substr($1, 2) + 0; for (i = 2; i < NF; i++) if ($i == "cov:") c = $(i + 1) + 0;
            execs[++k] = n; cov[k] = c }
         END { if (k == 0) { print "  plateau: no status lines"; exit }
            total = execs[k]; half = cov[1]; last = execs[1];
            for (i = 1; i <= k; i++) { if (execs[i] <= total / 2) half = cov[i]; if (cov[i] > cov[i - 1] || i == 1) last = execs[i] }
            printf "  coverage at half %d -> end %d; last new coverage at #%d (%.0f%% of the run)\n",
                half, cov[k], last, total ? 100 * last / total : 0 }' "$1"
}
LIMIT="-max_total_time=$SECONDS_EACH"
[ -n "${FUZZ_RUNS:-}" ] && LIMIT="-runs=$FUZZ_RUNS -seed=1"
failed=0
for t in $TARGETS; do
    mkdir -p "fuzz/corpus-run/$t" "fuzz/corpus-run/$t-real" "fuzz/artifacts/$t"
    for f in $(extra "$t"); do cp -f "$f" "fuzz/corpus-run/$t-real/"; done
    "$BIN/$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" "fuzz/corpus-run/$t-real" \
        $LIMIT ${FUZZ_FLAGS:-} -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
        -max_len="${FUZZ_MAX_LEN:-1048576}" -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
        >"fuzz/artifacts/$t.log" 2>&1
    rc=$?
    echo "$t rc=$rc $(grep -E '^#[0-9]+' "fuzz/artifacts/$t.log" | tail -1)"
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "fuzz/artifacts/$t.log" | tr '\n' ' '; echo
    plateau "fuzz/artifacts/$t.log"
    if [ "$rc" != 0 ]; then
        failed=1
        grep -E 'ERROR|panicked|Test unit written' "fuzz/artifacts/$t.log" | head -5
    fi
done
exit "$failed"
