#!/bin/sh
# gantry's package installer for image builds (/opt/gantry/build/install in the image):
#   install pip ARGS…        python3 -m pip install ARGS (pip_install, pip_install_from_requirements)
#   install uv-setup         installs uv with pip (once per image, its own layer)
#   install uv ARGS…         uv pip install --system ARGS (uv_pip_install)
#   install npm DIR PKGS…    npm install PKGS in DIR (npmInstall)
# The host's index settings arrive as build arguments (PIP_*, NPM_CONFIG_*, proxies) and its CA
# bundles as files beside this script; a step's own options (--index-url …) come after and win.
set -eu
here=/opt/gantry/build

# A build argument the host does not set arrives empty: unset it, so the tool's default holds.
for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT PIP_RETRIES PIP_PROXY \
  NPM_CONFIG_REGISTRY NPM_CONFIG_PROXY NPM_CONFIG_HTTPS_PROXY NPM_CONFIG_NOPROXY NPM_CONFIG_STRICT_SSL; do
  eval "[ -n \"\${$v:-}\" ] || unset $v"
done
[ -s "$here/ca.pem" ] && export PIP_CERT="$here/ca.pem"
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1
# Debian's Python is "externally managed" (PEP 668); in an image of its own that is fine to override.
export PIP_BREAK_SYSTEM_PACKAGES=1

fail() {
  echo "gantry: $*" >&2
  exit 1
}

need_pip() {
  python3 -m pip --version >/dev/null 2>&1 && return 0
  command -v python3 >/dev/null 2>&1 || fail "this image has no python3: start from Image.debian_slim() or an image with Python >= 3.9"
  python3 -m ensurepip --default-pip >/dev/null 2>&1 ||
    fail "python3 in this image has no pip (and no ensurepip): start from Image.debian_slim(), or apt_install(\"python3-pip\") first"
}

tool=${1:-}
[ $# -gt 0 ] && shift
case "$tool" in
pip)
  need_pip
  exec python3 -m pip install "$@"
  ;;
uv-setup)
  need_pip
  python3 -m pip install --quiet uv
  uv --version
  ;;
uv)
  command -v uv >/dev/null 2>&1 || fail "uv is missing (gantry installs it before the first uv_pip_install step)"
  [ -n "${PIP_INDEX_URL:-}" ] && export UV_INDEX_URL="$PIP_INDEX_URL"
  [ -n "${PIP_EXTRA_INDEX_URL:-}" ] && export UV_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL"
  [ -n "${PIP_TRUSTED_HOST:-}" ] && export UV_INSECURE_HOST="$PIP_TRUSTED_HOST"
  [ -n "${PIP_DEFAULT_TIMEOUT:-}" ] && export UV_HTTP_TIMEOUT="$PIP_DEFAULT_TIMEOUT"
  [ -s "$here/ca.pem" ] && export SSL_CERT_FILE="$here/ca.pem"
  export UV_NO_CACHE=1 UV_BREAK_SYSTEM_PACKAGES=1 UV_SYSTEM_PYTHON=1
  exec uv pip install --python "$(command -v python3)" "$@"
  ;;
npm)
  dir=$1
  shift
  command -v npm >/dev/null 2>&1 || fail "this image has no npm: start from Image.node() (gantry's base has npm), or an image with npm"
  [ -s "$here/npm-ca.pem" ] && export NPM_CONFIG_CAFILE="$here/npm-ca.pem"
  mkdir -p "$dir"
  cd "$dir"
  [ -f package.json ] || echo '{"private":true}' >package.json
  export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_AUDIT=false NPM_CONFIG_FUND=false
  status=0
  npm install --omit=dev --no-package-lock --cache /tmp/gantry-npm-cache -- "$@" || status=$?
  rm -rf /tmp/gantry-npm-cache
  exit $status
  ;;
*)
  fail "install: unknown tool '$tool' (pip, uv-setup, uv or npm)"
  ;;
esac
