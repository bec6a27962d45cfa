#!/usr/bin/env bash
# A real, offline-installable demo corpus for pretraining (issue 6): source code of seven languages
# from Debian and npm packages, built with `geex data build` (CodeGeeX's filters, dedup, tags).
#
#   bash scripts/demo_corpus.sh [OUT] [LANGS]
#
# OUT defaults to geex-out/demo-corpus; LANGS (comma-separated, default all) picks sources from:
#   python  CPython standard library (present with Python)
#   go      Go standard library (golang-go, installed by scripts/setup.sh)
#   cpp     Boost headers (libboost-dev, installed by scripts/setup.sh)
#   rust    Rust standard library sources (apt: rust-src)
#   java    OpenJDK 17 lib/src.zip (apt: openjdk-17-source; note: may upgrade the JDK's patch version)
#   js      lodash, three, rxjs (npm)
#   ts      zod, effect TypeScript sources (npm)
# Installs what is missing (apt-get needs root or sudo), then writes OUT/corpus (shards + stats.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-geex-out/demo-corpus}"
LANGS="${2:-python,go,cpp,rust,java,js,ts}"
CACHE="${GEEX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/geex}/demo-corpus"
want() { [[ ",$LANGS," == *",$1,"* ]]; }
first() { for f in $1; do [ -e "$f" ] && { echo "$f"; return; }; done; }  # the first that exists (not a dangling link)
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

apt_missing=()
want rust && [ -z "$(first '/usr/src/rustc-*/library')" ] && apt_missing+=(rust-src)
want java && [ -z "$(first '/usr/lib/jvm/*17*/lib/src.zip')" ] && apt_missing+=(openjdk-17-source)
if ((${#apt_missing[@]})); then
  echo "demo corpus: installing ${apt_missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
npm_packages=()
want js && npm_packages+=(lodash@4.17.21 three@0.160.0 rxjs@7.8.1)
want ts && npm_packages+=(zod@3.23.8 effect@3.10.0)
if ((${#npm_packages[@]})) && [ ! -f "$CACHE/npm/.done-${#npm_packages[@]}" ]; then
  mkdir -p "$CACHE/npm"
  npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$CACHE/npm" "${npm_packages[@]}" >/dev/null
  touch "$CACHE/npm/.done-${#npm_packages[@]}"
fi

sources=()
if want python; then sources+=("$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"); fi
if want go; then sources+=("$(go env GOROOT)/src"); fi
if want cpp; then sources+=(/usr/include/boost); fi
if want rust; then sources+=("$(first '/usr/src/rustc-*/library')"); fi
if want java; then sources+=("$(first '/usr/lib/jvm/*17*/lib/src.zip')"); fi
if want js; then for p in lodash three/src rxjs/src; do sources+=("$CACHE/npm/node_modules/$p"); done; fi
if want ts; then for p in zod/lib effect/src; do [ -d "$CACHE/npm/node_modules/$p" ] && sources+=("$CACHE/npm/node_modules/$p"); done; fi

echo "demo corpus sources:"; printf '  %s\n' "${sources[@]}"
.venv/bin/geex data build "${sources[@]}" --out "$OUT/corpus" --exclude site-packages --exclude dist-packages \
  --exclude __pycache__
