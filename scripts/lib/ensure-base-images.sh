#!/usr/bin/env bash
# Make sure the Docker images gantry/base-node:2 and gantry/base-python:2 exist.
# Pulls them from Docker Hub when it is reachable; otherwise builds one Debian
# bookworm image (node, python3 with pip) with debootstrap and tags it under both
# names, adding npm from the npm registry (Debian's npm package drags in 450 others).
# Version 2 of the bases has pip and npm, which pip_install and npmInstall steps use.
# Run it or source it: either way it does the work; sourcing also leaves the
# function gantry_ensure_base_images defined. Needs a working engine: when
# `docker info` fails it sources ensure-docker.sh first.
# Env: GANTRY_DEBIAN_MIRROR (default http://deb.debian.org/debian).

gantry_log() { echo "[gantry setup] $*" >&2; }

GANTRY_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# npm for an imported Debian base: npm's own package from the npm registry (with this machine's
# npm settings), unpacked into /usr/local/lib/node_modules/npm by a build on top of IMAGE.
# Without a registry the base keeps working; npmInstall steps then say npm is missing.
gantry_add_npm() {
  local img=$1 work=$2/npm
  mkdir -p "$work"
  if ! (cd "$work" && npm pack --silent npm@10 >/dev/null 2>&1); then
    gantry_log "WARNING: npm pack npm@10 failed (no npm registry?): $img has no npm, so npmInstall() steps will fail"
    return 0
  fi
  mv "$work"/npm-*.tgz "$work/npm.tgz"
  cat >"$work/Dockerfile" <<DOCKERFILE
FROM $img
ADD npm.tgz /usr/local/lib/node_modules/
RUN mv /usr/local/lib/node_modules/package /usr/local/lib/node_modules/npm \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && npm --version
DOCKERFILE
  docker build -q --network none -t "$img" "$work" >/dev/null
  gantry_log "added npm $(docker run --rm --network none "$img" npm --version) to $img"
}

gantry_ensure_base_images() (
  set -euo pipefail
  local node_img=gantry/base-node:2 py_img=gantry/base-python:2
  local mirror="${GANTRY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

  # shellcheck source=SCRIPTDIR/ensure-docker.sh
  docker info >/dev/null 2>&1 || source "$GANTRY_LIB_DIR/ensure-docker.sh"

  if docker image inspect "$node_img" "$py_img" >/dev/null 2>&1; then
    gantry_log "base images $node_img and $py_img: cached"
    exit 0
  fi

  gantry_log "trying to pull node:20-bookworm-slim and python:3.11-slim-bookworm"
  if timeout 60 docker pull -q node:20-bookworm-slim >&2 &&
     timeout 60 docker pull -q python:3.11-slim-bookworm >&2; then
    docker tag node:20-bookworm-slim "$node_img"
    docker tag python:3.11-slim-bookworm "$py_img"
    gantry_log "tagged pulled images as $node_img and $py_img"
  else
    gantry_log "registry not reachable; building the images offline with debootstrap from $mirror"
    if ! command -v debootstrap >/dev/null 2>&1; then
      if [[ -f /etc/debian_version && "$(id -u)" == 0 ]]; then
        gantry_log "installing debootstrap with apt-get"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
      else
        gantry_log "ERROR: debootstrap is missing. Either make Docker Hub reachable (docker pull node:20-bookworm-slim),"
        gantry_log "       or, as root on Debian/Ubuntu, run 'apt-get install debootstrap' and re-run this as root."
        exit 1
      fi
    fi
    if [[ "$(id -u)" != 0 ]]; then
      gantry_log "ERROR: debootstrap needs root. Re-run as root, or make Docker Hub reachable."
      exit 1
    fi

    local tmp root log bs_pid=""
    tmp="$(mktemp -d /var/tmp/gantry-rootfs.XXXXXX)"
    root="$tmp/rootfs" log="$tmp/debootstrap.log"
    # On any exit: stop debootstrap, unmount anything it left mounted, delete the tree.
    # shellcheck disable=SC2064
    trap "
      [[ -n \"\${bs_pid:-}\" ]] && kill \"\$bs_pid\" 2>/dev/null
      awk -v t='$tmp/' 'index(\$2, t) == 1 { print \$2 }' /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null
      rm -rf --one-file-system '$tmp'
    " EXIT

    gantry_log "debootstrap bookworm into $root (about 1-2 minutes; log: $log)"
    local start=$SECONDS
    debootstrap --variant=minbase --include=nodejs,python3,python3-pip,ca-certificates \
      bookworm "$root" "$mirror" >"$log" 2>&1 &
    bs_pid=$!
    while kill -0 "$bs_pid" 2>/dev/null; do
      sleep 10 & wait $! || true
      kill -0 "$bs_pid" 2>/dev/null || break
      gantry_log "  debootstrap $((SECONDS - start))s: $(grep -c '^I: Retrieving' "$log" || true) retrieved," \
        "$(grep -c '^I: Extracting' "$log" || true) extracted, $(grep -cE '^I: (Unpacking|Configuring)' "$log" || true) unpack/configure steps"
    done
    if ! wait "$bs_pid"; then
      bs_pid=""
      gantry_log "ERROR: debootstrap failed. Last lines of its log:"
      tail -n 20 "$log" >&2
      exit 1
    fi
    bs_pid=""
    gantry_log "debootstrap finished in $((SECONDS - start))s; importing as $node_img"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar --numeric-owner -C "$root" -c . |
      docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$node_img" >/dev/null
    gantry_add_npm "$node_img" "$tmp"
    docker tag "$node_img" "$py_img"
  fi

  local node_v py_v
  node_v="$(docker run --rm --network none "$node_img" node --version)"
  py_v="$(docker run --rm --network none "$py_img" sh -c 'python3 --version; python3 -m pip --version | cut -d" " -f1,2' | tr '\n' ' ')"
  gantry_log "base images ready: $node_img (node $node_v), $py_img ($py_v)"
)

gantry_ensure_base_images
