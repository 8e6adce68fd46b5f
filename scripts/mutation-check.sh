#!/usr/bin/env bash
# Mutation check: does the test suite catch one-line bugs in the invariants
# that matter? For each mutation in scripts/mutations.tsv it applies the
# one-line change to a scratch copy of the tracked tree, rebuilds only the
# named targets, runs the named tests, and restores the file. A mutation is
# "caught" when the tests fail (or the build breaks on purpose, which is not
# allowed: a mutation that does not compile is an error in the list).
#
# Not run in CI (each mutation rebuilds and reruns tests); run it before a
# release and whenever an invariant or its test changes.
#
# Usage: scripts/mutation-check.sh [-l LIST] [-k] [ID_REGEX]
#   -l LIST   mutation list (default scripts/mutations.tsv)
#   ID_REGEX  only mutations whose id matches (grep -E)
# Environment:
#   CALDERA_MUTATION_DIR  scratch directory (default <repo>/build-mutation, kept
#                         between runs so later runs rebuild little; under /work
#                         its compiles share ccache hits with build/)
#   CALDERA_FIXTURES_DIR  passed to the tests (default the bundled models/)
#   CMAKE_ARGS            extra cmake arguments for the scratch build
# Exit status: 0 when every mutation was caught, 1 when any survived, 2 on a
# broken list (a pattern not found exactly once, a mutant that does not build).
#
# List format (tab-separated, '#' comments): id, file, exact text to replace
# (must occur exactly once in the file), replacement, ninja targets (space
# separated), ctest -R regex of the tests that must catch it, the invariant.
# In the text columns "\t" and "\n" are not interpreted: one-line changes only.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
list="$repo/scripts/mutations.tsv"
while getopts "l:" opt; do
  case "$opt" in
    l) list="$OPTARG" ;;
    *) sed -n '2,30p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
only="${1:-.}"

work="${CALDERA_MUTATION_DIR:-$repo/build-mutation}"
src="$work/src"
build="$src/build"
log="$work/logs"
mkdir -p "$src" "$log"
export CALDERA_FIXTURES_DIR="${CALDERA_FIXTURES_DIR:-$repo/models}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

# The scratch copy: the tracked files of the working tree (uncommitted edits
# included); files equal to their scratch copy (and their mtimes) are left alone.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
  while IFS= read -r -d '' path; do
    [ -f "$repo/$path" ] || continue
    if ! cmp -s "$repo/$path" "$src/$path" 2>/dev/null; then
      mkdir -p "$(dirname "$src/$path")"
      cp -p "$repo/$path" "$src/$path"
    fi
  done
[ -e "$repo/.venv" ] && ln -sfn "$(readlink -f "$repo/.venv")" "$src/.venv"

# shellcheck source=scripts/ccache-env.sh
. "$repo/scripts/ccache-env.sh"  # the scratch copy lies under the repo: its compiles hit build/'s
nvcc="${CUDACXX:-/usr/local/cuda/bin/nvcc}"
[ -x "$nvcc" ] || nvcc="$(command -v nvcc || true)"
if [ ! -f "$build/build.ninja" ]; then
  cuda_args=(-DCALDERA_CUDA=OFF)
  [ -n "$nvcc" ] && cuda_args=(-DCALDERA_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_args[@]}" \
    "${CALDERA_CCACHE_ARGS[@]}" \
    ${CMAKE_ARGS:-} >"$log/cmake.log" 2>&1 || { echo "cmake failed: $log/cmake.log"; exit 2; }
fi
jobs="${MUTATION_JOBS:-2}"

# Replaces the one occurrence of $2 in file $1 by $3; fails unless exactly one.
apply() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path, encoding="utf-8").read()
n = text.count(old)
if n != 1:
    sys.exit(f"pattern found {n} times in {path} (must be exactly once): {old}")
open(path, "w", encoding="utf-8").write(text.replace(old, new))
PY
}

# Read a snapshot: the list may be edited while a run is going.
cp "$list" "$work/mutations.list"
declare -a rows=()
caught=0 survived=0 broken=0
while IFS=$'\t' read -r id file old new targets tests what; do
  [[ -z "$id" || "$id" == \#* ]] && continue
  echo "$id" | grep -qE -- "$only" || continue
  if [[ -z "${what:-}" ]]; then
    echo "mutation-check: line for '$id' has fewer than 7 tab-separated columns" >&2
    exit 2
  fi
  f="$src/$file"
  cp -p "$f" "$f.orig"
  result=""
  if ! apply "$f" "$old" "$new" 2>"$log/$id.apply"; then
    result="BROKEN (pattern)"
    cat "$log/$id.apply" >&2
  else
    touch "$f"
    # shellcheck disable=SC2086
    if ! ninja -C "$build" -j"$jobs" $targets >"$log/$id.build" 2>&1; then
      result="BROKEN (build)"
    elif ctest --test-dir "$build" -R "$tests" -j"$jobs" --timeout 900 --output-on-failure \
         >"$log/$id.test" 2>&1; then
      result="SURVIVED"
    elif grep -q "No tests were found" "$log/$id.test"; then
      result="BROKEN (no tests match)"
    else
      result="caught"
    fi
  fi
  mv -f "$f.orig" "$f"
  touch "$f"
  case "$result" in
    caught) caught=$((caught + 1)) ;;
    SURVIVED) survived=$((survived + 1)) ;;
    *) broken=$((broken + 1)) ;;
  esac
  printf '%-28s %-24s %s\n' "$id" "$result" "$what"
  rows+=("$(printf '| %s | %s | `%s` | %s |' "$id" "$result" "$tests" "$what")")
done <"$work/mutations.list"

# Leave the scratch build matching the tree for the next run.
echo
echo "| mutation | result | tests | invariant |"
echo "|---|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "total $((caught + survived + broken)): caught $caught, survived $survived, broken $broken"
echo "(logs in $log)"
[ "$broken" -gt 0 ] && exit 2
[ "$survived" -gt 0 ] && exit 1
exit 0
