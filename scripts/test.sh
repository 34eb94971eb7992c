#!/usr/bin/env bash
# The test command (README, .ci/run): sets up what the tests need on a fresh Debian machine
# (Docker engine, npm dependencies, build, base images, Debian's pytest), then runs the whole
# suite against the real Docker engine: vitest (unit, integration, e2e), then the Python client's
# tests (pytest, with Debian's /usr/bin/python3). Extra arguments go to vitest (e.g. a file filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if ! /usr/bin/python3 -c 'import pytest' 2>/dev/null; then
  if [[ -f /etc/debian_version && "$(id -u)" == 0 ]]; then
    echo "[gantry test] installing Debian's python3-pytest (PyPI is not needed)" >&2
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pytest >&2
  else
    echo "[gantry test] ERROR: the Python tests need pytest for /usr/bin/python3: apt-get install python3-pytest" >&2
    exit 1
  fi
fi
npx tsc -p tsconfig.test.json --noEmit
npx vitest run "$@"
if [[ $# -eq 0 ]]; then
  /usr/bin/python3 -m pytest test/python -q -p no:cacheprovider
fi
