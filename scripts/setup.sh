#!/usr/bin/env bash
# One-time set-up for gantry: Docker engine, npm deps, build, `gantry` on PATH, base images.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "[gantry setup] $*" >&2; }

log "checking Node.js >= 20"
if ! command -v node >/dev/null 2>&1; then
  log "ERROR: node not found. Install Node.js 20 or newer (https://nodejs.org/), then re-run."
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
  log "ERROR: Node.js $(node --version) is too old; gantry needs Node.js 20 or newer."
  exit 1
fi

source scripts/lib/ensure-docker.sh

# node_modules/.gantry-installed is touched after each successful install, so
# a newer package.json / package-lock.json means the install must be redone.
stamp=node_modules/.gantry-installed
if [[ -f "$stamp" && "$stamp" -nt package.json && ( ! -f package-lock.json || "$stamp" -nt package-lock.json ) ]]; then
  log "npm dependencies up to date; skipping install"
elif [[ -f package-lock.json ]]; then
  log "installing npm dependencies (npm ci)"
  npm ci
  touch "$stamp"
else
  log "installing npm dependencies (npm install)"
  npm install
  touch "$stamp"
fi

log "building (npm run build)"
npm run build

log "linking the gantry CLI (npm link)"
if ! npm link; then
  log "ERROR: npm link failed. If it is a permissions error, run 'npm config set prefix ~/.local'"
  log "       (and put ~/.local/bin on PATH), then re-run."
  exit 1
fi
bin_dir="$(npm prefix -g)/bin"
if command -v gantry >/dev/null 2>&1; then
  log "gantry is on PATH at $(command -v gantry)"
else
  log "WARNING: gantry was linked into $bin_dir, which is not on PATH; add it to PATH"
fi

source scripts/lib/ensure-base-images.sh

log "done"
