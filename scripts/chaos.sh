#!/usr/bin/env bash
# The chaos test (tests/integration/chaos_test.py) with as many kills as asked:
# rounds of 3 jobs over 1 coordinator + 3 workers while a random process is
# SIGKILLed every 2-4 s and restarted; every job must succeed, every task be
# committed once, every output match an undisturbed run. CI runs 10 kills
# (ctest -R chaos_test); the issue's figure is 100:
#
#   scripts/chaos.sh --kills 100 [--seed N] [--interval LO HI] [--keep]
# Needs a build in build/ (CALDERA_BUILD overrides) and the fixture model
# (CALDERA_FIXTURES_DIR, default the bundled models/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CALDERA_BUILD:-$root/build}
python=$root/.venv/bin/python
[[ -x $python ]] || python=python3
export CALDERA_FIXTURES_DIR=${CALDERA_FIXTURES_DIR:-$root/models}
export OPENBLAS_NUM_THREADS=1
exec "$python" "$root/tests/integration/chaos_test.py" --bin-dir "$build/bin" "$@"
