#!/usr/bin/env bash
# The project's test command (CI runs exactly this through .ci/run): set-up, then the whole suite.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit $?
export PATH="$HOME/.cargo/bin:$PATH"
export GEEX_HUMANEVALX="${GEEX_HUMANEVALX:-$(cd .. && pwd)/shared/humaneval-x}"
# the linter first (seconds): its findings fail the run, after the tests have run too
.venv/bin/ruff check --quiet src tests
lint=$?
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then  # pytest: no tests collected
  echo "no tests were collected"; rc=0
fi
if [ "$lint" != 0 ]; then
  echo "ruff check src tests failed (see above)"; [ "$rc" = 0 ] && rc=$lint
fi
exit "$rc"
