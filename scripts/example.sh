#!/usr/bin/env bash
# The main job (README): set everything up, start the daemon, deploy the job-queue example,
# spawn a call and print its result. Safe to run again: a running daemon is reused.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

gantry() { node bin/gantry.js "$@"; }
port="${GANTRY_HTTP_PORT:-8700}"

if gantry daemon status >/dev/null 2>&1; then
  echo "[gantry example] reusing the running daemon" >&2
else
  gantry daemon start --http-port "$port"
fi
gantry deploy examples/job-queue/app.ts
call_id="$(gantry spawn my-job-queue process_job '{"hello":"world"}')"
echo "[gantry example] spawned $call_id" >&2
gantry get "$call_id" --timeout 120
echo "[gantry example] dashboard: $(gantry dashboard --no-open 2>/dev/null || echo "none (the running daemon has no HTTP port)")" >&2
