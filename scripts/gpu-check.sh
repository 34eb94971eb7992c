#!/usr/bin/env bash
# gantry end to end on a real NVIDIA machine: start the daemon, deploy a GPU function whose
# container runs nvidia-smi and a CUDA program, call it, and print what it saw.
#
# It works on a bare GPU machine (NVIDIA driver, but no Docker, no Node.js, no registry): `pack`
# (run here, on a Debian machine with this checkout built) writes what it needs into two parts,
# small enough to carry one at a time:
#
#   bash scripts/gpu-check.sh pack [DIR]    DIR/part1: the Docker engine; DIR/part2: Node.js and gantry (default DIR: .gpu-check)
#   bash scripts/gpu-check.sh stage PART    on the GPU machine: unpack a part into $GANTRY_GPU_CHECK_DIR (default /tmp/gck)
#   bash scripts/gpu-check.sh run [PART]    on the GPU machine: unpack PART too, then check; exit 0 only if the GPU function ran
#
# On a GPU machine that already has Docker and Node.js 20 with this checkout built (npm run build),
# `bash scripts/gpu-check.sh run` needs no parts. The log also goes to $OUT/gpu-check.log when OUT is set.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="${GANTRY_GPU_CHECK_DIR:-/tmp/gck}"
BASE_TAG=gantry-gpu-check/base-node:1
log() { echo "[gpu-check] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ── pack (here) ─────────────────────────────────────────────────────────────────────────────
pack() {
  local dest="${1:-$repo/.gpu-check}" stage
  [[ -f "$repo/dist/cli/main.js" && -f "$repo/runtime-images/node/dist/agent.cjs" && -d "$repo/node_modules" ]] ||
    die "build the checkout first: bash scripts/setup.sh (or npm ci && npm run build)"
  command -v dockerd >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io; }
  rm -rf "$dest" && mkdir -p "$dest/part1" "$dest/part2"
  stage="$(mktemp -d)"

  log "part1: the Docker engine (dockerd, containerd, shim, runc, and the libraries a bare machine may lack)"
  mkdir -p "$stage/docker/bin" "$stage/docker/lib"
  local b; for b in dockerd containerd containerd-shim-runc-v2 runc; do cp -L "$(command -v "$b")" "$stage/docker/bin/"; done
  cp -L /lib/x86_64-linux-gnu/libdevmapper.so.1.02.1 /lib/x86_64-linux-gnu/libseccomp.so.2 "$stage/docker/lib/"
  tar -C "$stage" -c docker | xz -T0 -6 > "$dest/part1/docker.tar.xz"

  log "part2: Node.js $(node --version) and gantry (production dependencies only)"
  mkdir -p "$stage/node/bin" "$stage/gantry/scripts"
  cp -L "$(command -v node)" "$stage/node/bin/node"
  cp -r "$repo/package.json" "$repo/package-lock.json" "$repo/bin" "$repo/dist" "$stage/gantry/"
  mkdir -p "$stage/gantry/runtime-images/node/dist" && cp "$repo/runtime-images/node/Dockerfile" "$stage/gantry/runtime-images/node/"
  cp "$repo/runtime-images/node/dist/agent.cjs" "$stage/gantry/runtime-images/node/dist/"
  cp -r "$repo/scripts/gpu-check" "$stage/gantry/scripts/"
  cp -a "$repo/node_modules" "$stage/gantry/"
  (cd "$stage/gantry" && npm prune --omit=dev --no-audit --no-fund --offline >/dev/null)
  # better-sqlite3 needs only its compiled addon at run time, not SQLite's sources or object files.
  rm -rf "$stage/gantry/node_modules/better-sqlite3/deps" "$stage/gantry/node_modules/better-sqlite3/src" \
    "$stage/gantry/node_modules/better-sqlite3/build/Release/obj" "$stage/gantry/node_modules/better-sqlite3/build/Release/.deps"
  tar -C "$stage" -c node gantry | xz -T0 -6 > "$dest/part2/node-gantry.tar.xz"
  rm -rf "$stage"
  ls -la "$dest"/part1 "$dest"/part2 >&2
}

# ── stage (there) ───────────────────────────────────────────────────────────────────────────
stage() {
  local part="${1:?usage: gpu-check.sh stage PART}" f
  mkdir -p "$W"
  for f in "$part"/*.tar.xz; do
    [[ -e "$f" ]] || die "no archives in $part"
    log "unpacking $(basename "$f") into $W"
    tar -C "$W" -xJf "$f"
  done
}

# ── run (there) ─────────────────────────────────────────────────────────────────────────────
ping_docker() { "$NODE" "$G/scripts/gpu-check/docker.mjs" ping "$1" 2>/dev/null; }

start_docker() {
  SOCK=/var/run/docker.sock
  # GANTRY_GPU_CHECK_OWN_DOCKER=1 uses the staged engine even where one runs (to try this path anywhere).
  if [[ -z "${GANTRY_GPU_CHECK_OWN_DOCKER:-}" && -S "$SOCK" ]] && ping_docker "$SOCK"; then log "using the Docker engine at $SOCK"; return; fi
  [[ -x "$W/docker/bin/dockerd" ]] || die "no Docker engine answers and none was staged (stage part1 first)"
  SOCK="$W/docker.sock"
  if ping_docker "$SOCK"; then log "using the staged Docker engine already running at $SOCK"; return; fi
  local missing; missing="$(for b in "$W"/docker/bin/*; do LD_LIBRARY_PATH="$W/docker/lib" ldd "$b" | grep "not found" || true; done)"
  [[ -z "$missing" ]] || die "the staged Docker engine lacks libraries here: $missing"
  # Beside another engine, the staged one gets a network namespace of its own: starting with
  # --bridge=none, dockerd deletes the host's docker0, which the other engine needs.
  local netns=()
  [[ -n "${GANTRY_GPU_CHECK_OWN_DOCKER:-}" ]] && netns=(unshare --net)
  log "starting the staged dockerd (no bridge, no iptables; containers run with --network none)"
  PATH="$W/docker/bin:$PATH" LD_LIBRARY_PATH="$W/docker/lib" setsid "${netns[@]}" dockerd --iptables=false --ip-masq=false --bridge=none \
    --userland-proxy=false --data-root "$W/docker-data" --exec-root "$W/dx" -H "unix://$SOCK" -p "$W/docker.pid" \
    </dev/null >"$W/dockerd.log" 2>&1 &
  local i; for ((i = 0; i < 120; i++)); do ping_docker "$SOCK" && { log "dockerd is up"; return; }; sleep 0.5; done
  tail -n 30 "$W/dockerd.log" >&2; die "dockerd did not answer within 60 s"
}

copy_libs() { # copies the shared libraries of each program into the rootfs
  local f l
  for f in "$@"; do for l in $(ldd "$f" | grep -o '/[^ ]*'); do cp --parents -L "$l" "$ROOT/"; done; done
}

make_base_image() {
  ROOT="$W/rootfs"
  rm -rf "$ROOT" && mkdir -p "$ROOT/usr/local/bin" "$ROOT/bin" "$ROOT/tmp" "$ROOT/etc"
  cp -L "$NODE" "$ROOT/usr/local/bin/node" && copy_libs "$ROOT/usr/local/bin/node"
  cp -L /bin/sh "$ROOT/bin/sh" && copy_libs /bin/sh
  if command -v nvcc >/dev/null; then
    log "compiling the CUDA check program with $(nvcc --version | tail -1)"
    nvcc -O2 -cudart static -o "$ROOT/usr/local/bin/gantry-saxpy" "$G/scripts/gpu-check/saxpy.cu"
    copy_libs "$ROOT/usr/local/bin/gantry-saxpy"
  else
    log "no nvcc here: the check runs nvidia-smi only"
  fi
  local smi; smi="$(command -v "${GANTRY_NVIDIA_SMI:-nvidia-smi}" || true)"
  if [[ -n "$smi" ]] && ldd "$smi" >/dev/null 2>&1; then copy_libs "$smi"; fi # gantry mounts nvidia-smi; its libraries must be here
  "$NODE" "$G/scripts/gpu-check/docker.mjs" import "$SOCK" "$ROOT" "$BASE_TAG"
}

check() {
  [[ -n "${1:-}" ]] && stage "$1"
  if [[ -x "$W/node/bin/node" ]]; then NODE="$W/node/bin/node"
  elif command -v node >/dev/null && (($(node -p 'process.versions.node.split(".")[0]') >= 20)); then NODE="$(command -v node)"
  else die "no Node.js 20: stage part2 first"; fi
  if [[ -f "$W/gantry/dist/cli/main.js" ]]; then G="$W/gantry"
  elif [[ -f "$repo/dist/cli/main.js" && -d "$repo/node_modules" ]]; then G="$repo"
  else die "no built gantry: stage part2 first, or build this checkout"; fi
  log "machine: $(uname -sr), $(nproc) cores; node $("$NODE" --version); gantry from $G"
  command -v nvidia-smi >/dev/null && nvidia-smi -L >&2 || log "nvidia-smi is not on PATH here"

  start_docker
  make_base_image
  export GANTRY_HOME="$W/home" DOCKER_SOCKET="$SOCK" GANTRY_NODE_BASE_IMAGE="$BASE_TAG"
  gantry() { "$NODE" "$G/bin/gantry.js" "$@"; }
  gantry daemon stop >/dev/null 2>&1 || true
  gantry daemon start --container-network none
  trap 'gantry daemon stop >/dev/null 2>&1 || true' EXIT
  echo "\$ gantry daemon status" && gantry daemon status
  echo "\$ gantry gpus" && gantry gpus
  echo "\$ gantry deploy scripts/gpu-check/app.ts" && gantry deploy "$G/scripts/gpu-check/app.ts"
  echo "\$ gantry call gpu-check gpu_info"
  local gpu
  gpu="$(gantry call gpu-check gpu_info --timeout 300)" || true
  echo "$gpu"
  echo "\$ gantry gpus   # while the container is warm" && gantry gpus
  echo "\$ gantry containers ls" && gantry containers ls
  echo "\$ gantry call gpu-check cpu_info   # a function without gpu" && gantry call gpu-check cpu_info --timeout 120 || true

  # Passed when the GPU function saw its GPU through nvidia-smi, and the CUDA program (if built) ran on it.
  echo "$gpu" | "$NODE" -e '
    const r = JSON.parse(require("fs").readFileSync(0, "utf8") || "null");
    const why = !r ? "the GPU function returned nothing"
      : !r.devices.some((d) => /^nvidia\d+$/.test(d)) ? "no GPU device node in the container"
      : !/^GPU \d+:/.test(r.nvidia_smi) ? "nvidia-smi -L in the container: " + r.nvidia_smi
      : !/^no CUDA/.test(r.cuda) && !/: ok$/.test(r.cuda) ? "the CUDA program: " + r.cuda : null;
    console.log(why ? "GPU CHECK FAILED: " + why : "GPU CHECK PASSED");
    process.exit(why ? 1 : 0);' && return
  log "last lines of the daemon log:" && tail -n 30 "$GANTRY_HOME/logs/daemon.log" >&2 || true
  [[ -f "$W/dockerd.log" ]] && log "last lines of dockerd's log:" && tail -n 15 "$W/dockerd.log" >&2
  return 1
}

main() {
  case "${1:-}" in
    pack) shift; pack "$@" ;;
    stage) shift; stage "$@" ;;
    run) shift; check "$@" ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
  esac
}

if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then main "$@" 2>&1 | tee -a "$OUT/gpu-check.log"; exit "${PIPESTATUS[0]}"; fi
main "$@"
