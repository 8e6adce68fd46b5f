#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test. This is the command CI runs.
#
#   scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${CALDERA_BUILD_DIR:-build}
export CALDERA_FIXTURES_DIR=${CALDERA_FIXTURES_DIR:-$(cd .. && pwd)/shared/models}
scripts/setup.sh
echo "[test] running the test suite (fixtures: $CALDERA_FIXTURES_DIR)"
ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j "$(nproc)" "$@"
