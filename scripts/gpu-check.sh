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
#   - CALDERA_FIXTURES_DIR holding stories260K/ (default the bundled models/)
#     for the worker check.
# It builds the core, the backend tests, decompose_bench, block_forward_bench
# (the calibration forward of a 7B block on the device) and (the worker
# check, CALDERA_GPU_WORKER=1, the default) caldera-coordinator,
# caldera-worker and calderactl, which need the service's dependencies (gRPC,
# prometheus-cpp, SQLite; CALDERA_GPU_WORKER=0 builds with
# -DCALDERA_BUILD_SERVICE=OFF and skips it), with CMAKE_CUDA_ARCHITECTURES 90
# (H100/H200; override with CALDERA_CUDA_ARCHS).
#
# The worker check: the bundled model compressed by a coordinator and one
# caldera-worker --device cuda:0 (whose metrics must say device="cuda:0"),
# then by one with --device cpu, both evaluated with calderactl eval on the
# model's eval tokens: the GPU-compressed perplexity must be within 0.5% of
# the CPU-compressed one.
#
# Exit status: 0 when every GPU test passed, 1 otherwise, 2 when there is no
# device or no nvcc. The CUDA backend is experimental: this script is how it
# gets its first run on a GPU.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
BUILD_DIR=${CALDERA_GPU_BUILD_DIR:-build-gpu}
WORKER_CHECK=${CALDERA_GPU_WORKER:-1}
SERVICE=$([ "$WORKER_CHECK" = 1 ] && echo ON || echo OFF)
MODEL=${CALDERA_FIXTURES_DIR:-$PWD/models}/stories260K
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
  -DCALDERA_BUILD_SERVICE="$SERVICE" >"$BUILD_DIR.configure.log" 2>&1 ||
  { log "configure failed: $BUILD_DIR.configure.log"; tail -20 "$BUILD_DIR.configure.log"; exit 1; }
TARGETS="backend_test cuda_device_test cuda_backend_test cuda_libraries_test decompose_bench
         block_forward_bench"
[ "$WORKER_CHECK" = 1 ] && TARGETS="$TARGETS caldera-coordinator caldera-worker calderactl"
log "building $TARGETS"
# shellcheck disable=SC2086
cmake --build "$BUILD_DIR" -j "$(nproc)" --target $TARGETS >"$BUILD_DIR.build.log" 2>&1 ||
  { log "build failed: $BUILD_DIR.build.log"; tail -30 "$BUILD_DIR.build.log"; exit 1; }
built=$(date +%s)

log "GPU tests (ctest -L gpu) and the host-side kernel-body tests"
ctest --test-dir "$BUILD_DIR" -R 'Cuda|E8pSearchBody|HadamardButterflyBody|UniformRoundBody|BlockForwardBody' \
  --output-on-failure 2>&1 | tee "$BUILD_DIR.ctest.log"
tests_rc=${PIPESTATUS[0]}
skipped=$(grep -c "skipped: no CUDA device" "$BUILD_DIR.ctest.log" || true)

bench_rc=0
# GPU against the CPU backend in the same run, on the Llama-2-7B shapes at
# rank 64, 2-bit Q, 4-bit L/R: rows, %DEV against the device's SGEMM, and the
# extrapolated decompose time of a 7B-shaped job (CALDERA_GPU_BENCH_ARGS
# overrides; CALDERA_GPU_BENCH_TIMEOUT, default 300 s, bounds it).
BENCH_ARGS=${CALDERA_GPU_BENCH_ARGS:---size 4096x4096 --size 11008x4096 --size 4096x11008 --methods caldera}
log "decompose_bench --device cuda:0 $BENCH_ARGS"
# shellcheck disable=SC2086
timeout "${CALDERA_GPU_BENCH_TIMEOUT:-300}" "$BUILD_DIR/bench/decompose_bench" --device cuda:0 \
  $BENCH_ARGS 2>&1 | tee "$BUILD_DIR.bench.log"
bench_rc=${PIPESTATUS[0]}
# The calibration forward of one Llama-2-7B block with its Hessians on the
# device (8 x 2048 tokens; CALDERA_GPU_FORWARD_ARGS overrides).
FORWARD_ARGS=${CALDERA_GPU_FORWARD_ARGS:---seqs 8 --seq-len 2048 --calibrate 1}
log "block_forward_bench --device cuda:0 $FORWARD_ARGS"
# shellcheck disable=SC2086
"$BUILD_DIR/bench/block_forward_bench" --device cuda:0 $FORWARD_ARGS 2>&1 |
  tee -a "$BUILD_DIR.bench.log"
[ "${PIPESTATUS[0]}" = 0 ] || bench_rc=1

# The worker on the GPU against the worker on the CPU (see the top).
worker_rc=0
worker_note="skipped (CALDERA_GPU_WORKER=0)"
# compress_with DEVICE OUT PORT: one coordinator and one worker --device DEVICE
# compress $MODEL into OUT; checks the worker's device label. 0 on success.
compress_with() {
  local device=$1 out=$2 port=$3 mport=$(($3 + 1)) dir rc=0
  dir=$(mktemp -d)
  "$BUILD_DIR/bin/caldera-coordinator" --listen "127.0.0.1:$port" --data-dir "$dir/state" \
    >"$dir/coordinator.log" 2>&1 &
  local cpid=$!
  "$BUILD_DIR/bin/caldera-worker" --coordinator "127.0.0.1:$port" --device "$device" \
    --metrics-listen "127.0.0.1:$mport" --poll-seconds 1 2>"$BUILD_DIR.worker-$device.log" &
  local wpid=$!
  local label=0 _
  for _ in $(seq 60); do  # the worker loads the CUDA libraries before it serves
    curl -sf "http://127.0.0.1:$mport/metrics" 2>/dev/null |
      grep -q "caldera_worker_info{device=\"$device\"} 1" && { label=1; break; }
    sleep 0.5
  done
  if [ "$label" = 0 ]; then
    log "  worker --device $device: no caldera_worker_info{device=\"$device\"} on its metrics"
    rc=1
  fi
  timeout 300 "$BUILD_DIR/bin/calderactl" submit --server "127.0.0.1:$port" --model "$MODEL" \
    --calibration "$MODEL/calibration.safetensors" --out "$out" --rank 8 --wait >/dev/null || rc=1
  kill "$wpid" "$cpid" 2>/dev/null; wait "$wpid" "$cpid" 2>/dev/null
  rm -rf "$dir"
  return $rc
}
perplexity_of() {
  "$BUILD_DIR/bin/calderactl" eval --model "$1" --tokens "$MODEL/eval.safetensors" --json |
    grep -o '"perplexity": *[0-9.eE+-]*' | head -1 | sed 's/.*: *//'
}
if [ "$WORKER_CHECK" = 1 ]; then
  if [ ! -f "$MODEL/model.safetensors" ]; then
    worker_rc=1; worker_note="FAILED: no model at $MODEL (set CALDERA_FIXTURES_DIR)"
  else
    out=$(mktemp -d)
    log "caldera-worker --device cuda:0 vs --device cpu on $MODEL"
    if compress_with cuda:0 "$out/gpu" 50761 && compress_with cpu "$out/cpu" 50771; then
      ppl_gpu=$(perplexity_of "$out/gpu"); ppl_cpu=$(perplexity_of "$out/cpu")
      if awk -v g="$ppl_gpu" -v c="$ppl_cpu" 'BEGIN { d = (g - c) / c; if (d < 0) d = -d; exit !(g > 0 && c > 0 && d <= 0.005) }'; then
        worker_note="passed: perplexity GPU $ppl_gpu vs CPU $ppl_cpu (within 0.5%)"
      else
        worker_rc=1; worker_note="FAILED: perplexity GPU '$ppl_gpu' vs CPU '$ppl_cpu' (not within 0.5%)"
      fi
    else
      worker_rc=1
      worker_note="FAILED: a compression did not finish (logs: $BUILD_DIR.worker-*.log)"
    fi
    rm -rf "$out"
  fi
fi

end=$(date +%s)
echo
log "summary: build $((built - start)) s, total $((end - start)) s"
log "  tests: $([ "$tests_rc" = 0 ] && echo passed || echo FAILED) (ctest rc $tests_rc)"
[ "$skipped" != "0" ] && log "  NOTE: tests skipped for lack of a device: nothing ran on a GPU"
log "  bench: rc $bench_rc (log: $BUILD_DIR.bench.log)"
grep -E "^device SGEMM|^7B-shaped job|extrapolated calibration" "$BUILD_DIR.bench.log" |
  sed 's/^/[gpu-check]    /'
grep -E "@cuda.*%DEV" "$BUILD_DIR.bench.log" | sed 's/^ */[gpu-check]    /' | head -6
log "  worker: $worker_note"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ] && [ "$worker_rc" = 0 ] && exit 0
exit 1
