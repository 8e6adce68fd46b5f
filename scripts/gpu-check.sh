#!/usr/bin/env bash
# The GPU check: builds with CUDA, runs the GPU tests and the GPU benchmark,
# prints a summary. One command, meant for a machine with one H100/H200 and
# no package registry:
#
#   scripts/gpu-check.sh            # build dir: build-gpu (CALDERA_GPU_BUILD_DIR)
#
# What it expects (nothing is downloaded):
#   - nvcc (CUDA 12 or 13) on PATH or at /usr/local/cuda/bin/nvcc, with cuBLAS
#     and cuSOLVER, and a visible device (nvidia-smi);
#   - the build dependencies scripts/setup.sh installs on the CI image
#     (scripts/debian-packages.txt: a C++20 compiler, CMake >= 3.25, Ninja,
#     Eigen, OpenBLAS/LAPACKE, Abseil, nlohmann-json, GoogleTest), already
#     installed, OR a build folder configured elsewhere carried along with the
#     working tree (CALDERA_GPU_BUILD_DIR; only the CUDA targets rebuild);
#   - CALDERA_FIXTURES_DIR for the fixture-based tests (not needed here).
# It builds only the core, the backend tests and decompose_bench
# (-DCALDERA_BUILD_SERVICE=OFF: no gRPC needed), with CMAKE_CUDA_ARCHITECTURES
# 90 (H100/H200; override with CALDERA_CUDA_ARCHS).
#
# Exit status: 0 when every GPU test passed, 1 otherwise, 2 when there is no
# device or no nvcc. The CUDA backend is experimental: this script is how it
# gets its first run on a GPU.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${CALDERA_GPU_BUILD_DIR:-build-gpu}
ARCHS=${CALDERA_CUDA_ARCHS:-90}
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
log() { echo "[gpu-check] $*"; }
if [ -z "$NVCC" ]; then log "no nvcc on PATH or at /usr/local/cuda/bin"; exit 2; fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/[gpu-check] device: /'
else
  log "warning: no nvidia-smi; the tests will say whether a device is visible"
fi
start=$(date +%s)
log "configuring $BUILD_DIR (CUDA archs $ARCHS)"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALDERA_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" \
  -DCALDERA_BUILD_SERVICE=OFF >"$BUILD_DIR.configure.log" 2>&1 ||
  { log "configure failed: $BUILD_DIR.configure.log"; tail -20 "$BUILD_DIR.configure.log"; exit 1; }
log "building the backend tests and decompose_bench"
cmake --build "$BUILD_DIR" -j "$(nproc)" --target backend_test cuda_device_test cuda_backend_test \
  decompose_bench >"$BUILD_DIR.build.log" 2>&1 ||
  { log "build failed: $BUILD_DIR.build.log"; tail -30 "$BUILD_DIR.build.log"; exit 1; }
built=$(date +%s)

log "GPU tests (ctest -L gpu) and the host-side kernel-body tests"
ctest --test-dir "$BUILD_DIR" -R 'Cuda|E8pSearchBody|HadamardButterflyBody|UniformRoundBody' \
  --output-on-failure 2>&1 | tee "$BUILD_DIR.ctest.log"
tests_rc=${PIPESTATUS[0]}
skipped=$(grep -c "skipped: no CUDA device" "$BUILD_DIR.ctest.log" || true)

bench_rc=0
# GPU against the CPU backend in the same run (Llama-2-7B shapes take long on
# the CPU side; CALDERA_GPU_BENCH_ARGS overrides, e.g. "--size 4096x4096").
BENCH_ARGS=${CALDERA_GPU_BENCH_ARGS:---size 2048x2048 --methods caldera}
log "decompose_bench --device cuda:0 $BENCH_ARGS"
# shellcheck disable=SC2086
"$BUILD_DIR/bench/decompose_bench" --device cuda:0 $BENCH_ARGS 2>&1 | tee "$BUILD_DIR.bench.log"
bench_rc=${PIPESTATUS[0]}

end=$(date +%s)
echo
log "summary: build $((built - start)) s, total $((end - start)) s"
log "  tests: $([ "$tests_rc" = 0 ] && echo passed || echo FAILED) (ctest rc $tests_rc)"
[ "$skipped" != "0" ] && log "  NOTE: tests skipped for lack of a device: nothing ran on a GPU"
log "  bench: rc $bench_rc (log: $BUILD_DIR.bench.log)"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ] && exit 0
exit 1
