#!/bin/sh
# build.sh [BUILDDIR] [configure args...] - configure and build out of tree
# (default build/). Shared by demo.sh and test.sh.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-$top/build}
[ $# -gt 0 ] && shift
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
	"$top/configure" -q --enable-werror "$@"
fi
make -s -j"$(nproc)" all
make -s -j"$(nproc)" check TESTS= >/dev/null
