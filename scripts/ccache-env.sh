# Sourced by setup.sh, test.sh and fuzz.sh: the compiler cache settings every
# build of this repo shares. Sets CALDERA_CCACHE_ARGS (CMake launcher flags;
# empty when ccache is missing or CALDERA_CCACHE=0).
#
# CCACHE_BASEDIR makes paths under the checkout relative, and hash_dir off
# keeps the working directory out of the hash, so a fresh clone elsewhere on
# the same machine (CI's) hits the objects an earlier build cached.
CALDERA_CCACHE_ARGS=()
if [ "${CALDERA_CCACHE:-1}" != "0" ] && command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  export CCACHE_NOHASHDIR=1
  export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-20G}
  CALDERA_CCACHE_ARGS=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
                       -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
