#!/usr/bin/env bash
# The test command (README, .ci/run): sets up what the tests need on a fresh Debian machine
# (Docker engine, npm dependencies, build, base images), then runs the whole suite against the
# real Docker engine. Extra arguments go to vitest (e.g. a file filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.test.json --noEmit
npx vitest run "$@"
