#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test. This is the command CI runs.
#
#   scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${CALDERA_BUILD_DIR:-build}
export CALDERA_FIXTURES_DIR=${CALDERA_FIXTURES_DIR:-$(pwd)/models}
# The main build: setup.sh configures with -DCALDERA_CUDA=ON whenever nvcc is
# found (CI has nvcc but no GPU), so the CUDA backend compiles on every run.
# Its kernel bodies run on the host in backend_test (label unit, built with
# or without CUDA); the device tests (label gpu) skip with "skipped: no CUDA
# device" where none is visible. On a GPU machine: scripts/gpu-check.sh.
scripts/setup.sh
if grep -q '^CALDERA_CUDA:BOOL=ON' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
  echo "[test] CUDA backend built (CALDERA_CUDA=ON); device tests skip without a GPU"
else
  echo "[test] CUDA backend not built (no nvcc); the host-side kernel-body tests still run"
fi
# Tests run in parallel (ctest -j): one BLAS thread each avoids oversubscribing
# the cores, which makes OpenBLAS's spinning threads crawl.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
echo "[test] running the test suite (fixtures: $CALDERA_FIXTURES_DIR)"
ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j "$(nproc)" "$@"

# The unit tests again under AddressSanitizer + UBSan (optimised, with debug
# info). On by default in CI; CALDERA_SANITIZE_TESTS=1/0 forces it on/off.
if [ "${CALDERA_SANITIZE_TESTS:-${CI:-0}}" != "0" ] && [ "${CALDERA_SANITIZE_TESTS:-}" != "0" ]; then
  ASAN_DIR=${CALDERA_ASAN_BUILD_DIR:-build-asan}
  echo "[test] building the unit tests with AddressSanitizer + UBSan in $ASAN_DIR"
  cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCALDERA_SANITIZE=ON \
    -DCALDERA_CUDA=OFF -DCALDERA_BUILD_BENCH=OFF >/dev/null
  cmake --build "$ASAN_DIR" --target unit_tests -j "$(nproc)"
  echo "[test] running the unit tests under AddressSanitizer + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0" \
    ctest --test-dir "$ASAN_DIR" -L unit --output-on-failure --no-tests=error -j "$(nproc)"
fi

# Every libFuzzer target (tests/fuzz, clang) for CALDERA_FUZZ_SECONDS (default
# 30) each, from the checked-in corpus. On by default in CI;
# CALDERA_FUZZ_TESTS=1/0 forces it on/off. A crash fails the run and leaves its
# reproducer under build-fuzz/crashes/.
if [ "${CALDERA_FUZZ_TESTS:-${CI:-0}}" != "0" ] && [ "${CALDERA_FUZZ_TESTS:-}" != "0" ]; then
  echo "[test] fuzzing each target for ${CALDERA_FUZZ_SECONDS:-30} s (clang, libFuzzer)"
  CALDERA_FUZZ_JOBS=${CALDERA_FUZZ_JOBS:-$(nproc)} scripts/fuzz.sh "${CALDERA_FUZZ_SECONDS:-30}"
fi
