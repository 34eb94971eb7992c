#!/usr/bin/env bash
# The test command (README, .ci/run): sets up what the tests need on a fresh Debian machine
# (Docker engine, npm dependencies, build, base images, Debian's pytest, chromium and
# docker-registry), then runs
# the whole suite against the real Docker engine: vitest (unit, integration, e2e, the dashboard
# in headless Chromium), then the Python client's tests (pytest, with Debian's /usr/bin/python3).
# Extra arguments go to vitest (e.g. a file filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Debian packages the tests need: pytest for the Python client, chromium for the dashboard,
# docker-registry for the Swarm tests, python3-prometheus-client to parse /metrics.
missing=()
/usr/bin/python3 -c 'import pytest' 2>/dev/null || missing+=(python3-pytest)
# Prometheus' own parser reads /metrics in the metrics tests (issue 23).
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || missing+=(python3-prometheus-client)
[[ -x "${GANTRY_CHROMIUM:-/usr/bin/chromium}" ]] || missing+=(chromium fonts-liberation)
[[ -x /usr/bin/docker-registry ]] || missing+=(docker-registry)
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ -f /etc/debian_version && "$(id -u)" == 0 ]]; then
    echo "[gantry test] installing Debian's ${missing[*]} (PyPI and other registries are not needed)" >&2
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  else
    echo "[gantry test] ERROR: the tests need ${missing[*]}: apt-get install ${missing[*]} (or set GANTRY_CHROMIUM to a Chromium)" >&2
    exit 1
  fi
fi
npx tsc -p tsconfig.test.json --noEmit
npx tsc -p dashboard/tsconfig.json
npx vitest run "$@"
if [[ $# -eq 0 ]]; then
  /usr/bin/python3 -m pytest test/python -q -p no:cacheprovider
fi
