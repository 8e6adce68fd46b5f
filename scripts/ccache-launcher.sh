#!/bin/sh
# CMake compiler launcher (scripts/ccache-env.sh sets it): ccache with the
# paths under this checkout made relative (CCACHE_BASEDIR) and the working
# directory kept out of the hash, whoever runs ninja and from whatever
# environment, so a fresh clone elsewhere on the same machine (CI's) hits the
# objects an earlier build cached.
root=$(cd "$(dirname "$0")/.." && pwd)
CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-20G} exec ccache "$@"
