#!/usr/bin/env bash
# Make sure a Docker engine answers (`docker info` succeeds).
# Run it (`bash scripts/lib/ensure-docker.sh`) or source it: either way it does
# the work, and sourcing also leaves the function gantry_ensure_docker defined.
# The function body runs in a subshell, so `set -e`/`exit` never leak into the
# sourcing shell; a failure simply makes it return non-zero.

gantry_log() { echo "[gantry setup] $*" >&2; }

# Install Debian packages, or explain what to do and fail.
gantry_apt_install() (
  set -euo pipefail
  if [[ -f /etc/debian_version && "$(id -u)" == 0 ]]; then
    gantry_log "installing $* with apt-get"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
  else
    gantry_log "ERROR: need package(s) '$*' but can only install them as root on Debian/Ubuntu."
    gantry_log "       Install them with your system's package manager, then re-run."
    exit 1
  fi
)

gantry_ensure_docker() (
  set -euo pipefail
  if docker info >/dev/null 2>&1; then
    gantry_log "docker engine already answering (server $(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
  fi

  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    if [[ -f /etc/debian_version && "$(id -u)" == 0 ]]; then
      gantry_apt_install docker.io
    else
      gantry_log "ERROR: Docker is not installed. Install Docker Engine (https://docs.docker.com/engine/install/),"
      gantry_log "       start it (e.g. 'sudo systemctl start docker'), make sure 'docker info' works for you, then re-run."
      exit 1
    fi
  fi
  command -v docker >/dev/null 2>&1 || gantry_apt_install docker.io

  if [[ "$(id -u)" != 0 ]]; then
    gantry_log "ERROR: no Docker engine answers and we are not root, so we cannot start one."
    gantry_log "       Start it (e.g. 'sudo systemctl start docker' or 'sudo dockerd &'), and make sure your user"
    gantry_log "       may use it (e.g. 'sudo usermod -aG docker $USER' and log in again), then re-run."
    exit 1
  fi

  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    gantry_log "starting docker with systemctl"
    if systemctl start docker && timeout 30 sh -c 'until docker info >/dev/null 2>&1; do sleep 0.5; done'; then
      gantry_log "docker engine is up (systemd)"
      exit 0
    fi
    gantry_log "systemctl start docker did not give a working engine; starting dockerd directly"
  fi

  local pidfile=/var/run/docker.pid log=/var/log/gantry-dockerd.log pid=""
  if [[ -f "$pidfile" ]]; then
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      gantry_log "dockerd (pid $pid) is already running; waiting for it to answer"
    else
      gantry_log "removing stale $pidfile"
      rm -f "$pidfile"
      pid=""
    fi
  fi
  if [[ -z "$pid" ]]; then
    gantry_log "starting dockerd in the background (log: $log)"
    # setsid + nohup + redirected stdio: dockerd outlives this script and its terminal.
    setsid nohup dockerd </dev/null >"$log" 2>&1 &
    pid=$!
  fi

  local i
  for ((i = 0; i < 120; i++)); do
    if docker info >/dev/null 2>&1; then
      gantry_log "docker engine is up (dockerd pid $pid)"
      exit 0
    fi
    kill -0 "$pid" 2>/dev/null || break   # dockerd died: no point waiting
    sleep 0.5
  done
  gantry_log "ERROR: docker engine did not come up within 60 s. Last lines of $log:"
  tail -n 20 "$log" >&2 || true
  exit 1
)

gantry_ensure_docker
