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
# The suite on every core (pytest-xdist, one test file a worker: its fixtures are built once), with
# torch at one thread a worker (two workers of two threads on two cores slow every matrix product
# many times over); then the tests marked `serial`, away from that load, two files at a time: what
# they assert depends on wall-clock limits (sandboxed programs near their limits, a load test,
# latency promises), which a neighbour of the same kind leaves intact (three runs of two side by side
# on two cores passed, 140 s against 223 s one at a time) but a core-hungry torch test does not.
workers="${GEEX_TEST_WORKERS:-$(( $(nproc) < 8 ? $(nproc) : 8 ))}"  # at most 8: each may load models
serial_workers=$(( workers < 2 ? workers : 2 ))
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" .venv/bin/python -m pytest -n "$workers" --dist loadfile -m "not serial" "$@"
rc=$?
if [ "$rc" = 2 ]; then  # interrupted (Ctrl-C) or a usage error: the second part would only repeat it
  exit 2
fi
.venv/bin/python -m pytest -n "$serial_workers" --dist loadfile -m serial "$@"
rc_serial=$?
if [ "$rc" = 5 ] && [ "$rc_serial" = 5 ]; then  # pytest: no tests collected
  echo "no tests were collected"; rc=0
elif [ "$rc" = 5 ] || [ "$rc" = 0 ]; then  # one phase may have nothing to run (a path given in "$@")
  rc=$rc_serial; [ "$rc" = 5 ] && rc=0
fi
if [ "$lint" != 0 ]; then
  echo "ruff check src tests failed (see above)"; [ "$rc" = 0 ] && rc=$lint
fi
exit "$rc"
