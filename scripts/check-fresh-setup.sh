#!/usr/bin/env bash
# Prove that the set-up works from nothing: purge what scripts/setup.sh installs, then run the
# README's Quickstart commands and fail on any red `geex doctor` row.
#
#   bash scripts/check-fresh-setup.sh            # purge, `make run`, `make test`
#   bash scripts/check-fresh-setup.sh --no-tests # purge, `make run` (the main job) only
#   bash scripts/check-fresh-setup.sh --all      # also purge the packages the machine image ships
#                                                # (g++, make, libssl-dev: see scripts/apt-packages.txt)
#
# Purged: the Debian packages of scripts/apt-packages.txt (apt-get purge --auto-remove), the virtual
# environment (.venv) and geex's caches ($GEEX_CACHE or ~/.cache/geex: toolchain caches, js-md5,
# the verdict cache). Run as root on a machine you may reinstall packages on. A green CI can hide a
# missing install step (packages left from earlier work stay installed): this check cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=1; all=0
for arg in "$@"; do
  case "$arg" in
    --no-tests) tests=0 ;;
    --all) all=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-fresh-setup: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "check-fresh-setup: run as root (it purges Debian packages)" >&2; exit 2; }

purge=()
while read -r name mark _; do
  [ -n "$name" ] || continue
  [ "$name" = util-linux ] && continue          # essential: never purged
  [ "$mark" = base ] && [ "$all" = 0 ] && continue
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" && purge+=("$name")
done < <(sed -e 's/#.*//' scripts/apt-packages.txt)

echo "check-fresh-setup: purging ${purge[*]:-(nothing installed)}"
if ((${#purge[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --auto-remove "${purge[@]}" >/dev/null
fi
for name in "${purge[@]}"; do
  if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
    echo "check-fresh-setup: $name is still installed after the purge" >&2; exit 1
  fi
done
CACHE="${GEEX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/geex}"
rm -rf .venv "$CACHE"
echo "check-fresh-setup: removed .venv and $CACHE"

start=$SECONDS
make run   # set-up (fails on a red doctor row), the default model, all 984 reference solutions
echo "check-fresh-setup: make run passed ($((SECONDS - start)) s)"
# the doctor again, on its own: every row green, strongest sandbox
.venv/bin/geex doctor
if [ "$tests" = 1 ]; then
  make test
  echo "check-fresh-setup: make test passed"
fi
echo "check-fresh-setup: OK, the set-up works from a purged state ($((SECONDS - start)) s)"
