#!/usr/bin/env bash
# Stops the server tools/pg/start.sh started (its data stays under RECOG_PG_ROOT).
set -euo pipefail
ROOT="${RECOG_PG_ROOT:-/tmp/recog-pg}"
RUN=()
[ "$(id -u)" = 0 ] && RUN=(runuser -u nobody --)
"${RUN[@]}" "$ROOT/py/pgserver/pginstall/bin/pg_ctl" -D "$ROOT/data" -m fast stop
