#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (-DCALDERA_FUZZ=ON, in
# build-fuzz/, ASan + UBSan) and runs each for SECONDS (default 30), starting
# from the checked-in seed corpus tests/fuzz/corpus/<target>/ (read-only; new
# inputs go to build-fuzz/corpus/<target>/). A crash leaves its reproducer in
# build-fuzz/crashes/<target>/ and makes the script exit 1 after all targets
# ran; replay one with build-fuzz/fuzz/<target>_fuzzer FILE.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs clang (Debian package `clang`); CALDERA_FUZZ_BUILD overrides the build
# directory, CALDERA_FUZZ_JOBS the ninja parallelism (default 2),
# CALDERA_FUZZ_PARALLEL how many targets run at once (default: the cores),
# CALDERA_FUZZ_TIMEOUT the per-input limit in wall-clock seconds (default 10;
# raise it when the fuzzers run niced beside other work: a starved process
# trips the wall clock without any slow input).
set -uo pipefail
seconds=${1:-30}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CALDERA_FUZZ_BUILD:-$root/build-fuzz}
all=(safetensors_header model_config matrix_record_config matrix_artifact hessians tokens s3_xml
     quantization_config ttlora_config checkpoint_index tokenizer_json sentencepiece_model
     coordinator_requests)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }
# shellcheck source=scripts/ccache-env.sh
. "$root/scripts/ccache-env.sh"
launcher=("${CALDERA_CCACHE_ARGS[@]}")
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCALDERA_FUZZ=ON -DCALDERA_WERROR=OFF \
  -DCALDERA_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null || exit 2
ninja -C "$build" -j "${CALDERA_FUZZ_JOBS:-2}" $(printf '%s_fuzzer ' "${targets[@]}") || exit 2

# Runs one target; its exit status lands in $build/$t.rc, its log in $build/$t.log.
run_target() {
  local t=$1 work=$build/corpus/$1 crashes=$build/crashes/$1 rc=0
  mkdir -p "$work" "$crashes"
  "$build/fuzz/${t}_fuzzer" -max_total_time="$seconds" -timeout="${CALDERA_FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" \
    "$work" "$root/tests/fuzz/corpus/$t" 2>"$build/$t.log" || rc=$?
  echo "$rc" >"$build/$t.rc"
}
# CALDERA_FUZZ_PARALLEL targets at a time (default: the cores).
parallel=${CALDERA_FUZZ_PARALLEL:-$(nproc)}
running=0
for t in "${targets[@]}"; do
  if (( running >= parallel )); then wait -n || true; running=$((running - 1)); fi
  echo "== $t: ${seconds} s"
  run_target "$t" &
  running=$((running + 1))
done
wait
failed=()
for t in "${targets[@]}"; do
  if [[ "$(cat "$build/$t.rc" 2>/dev/null)" != "0" ]]; then
    failed+=("$t")
    tail -40 "$build/$t.log"
  fi
  printf '%s: ' "$t"
  grep -E "^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+.*DONE" "$build/$t.log" | tr '\n' ' '
  echo
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: crashes in: ${failed[*]} (reproducers under $build/crashes/)" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${seconds} s each, no crashes"
