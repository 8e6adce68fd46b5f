# Sourced by setup.sh, test.sh, fuzz.sh and mutation-check.sh: the compiler
# cache every build of this repo shares. Sets CALDERA_CCACHE_ARGS (CMake
# launcher flags; empty when ccache is missing or CALDERA_CCACHE=0).
#
# The launcher (scripts/ccache-launcher.sh) makes paths under the checkout
# relative and keeps the working directory out of the hash, so a fresh clone
# elsewhere on the same machine (CI's) hits the objects an earlier build
# cached; it is stored in the build's CMakeCache, so a plain `ninja` or
# `cmake --build` later caches the same way.
CALDERA_CCACHE_ARGS=()
if [ "${CALDERA_CCACHE:-1}" != "0" ] && command -v ccache >/dev/null 2>&1; then
  _caldera_launcher="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ccache-launcher.sh"
  CALDERA_CCACHE_ARGS=(-DCMAKE_C_COMPILER_LAUNCHER="$_caldera_launcher"
                       -DCMAKE_CXX_COMPILER_LAUNCHER="$_caldera_launcher"
                       -DCMAKE_CUDA_COMPILER_LAUNCHER="$_caldera_launcher")
  unset _caldera_launcher
fi
