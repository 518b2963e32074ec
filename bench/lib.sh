# lib.sh - shared by bench/*/run.sh (POSIX sh; set SRC to the source tree,
# then source it).
#
# BENCH_CFLAGS: the project's compiler flags plus -O2 -g and the core's
# include directories.
# BENCH_CRYPTO: compiler and linker flags for libcrypto.
# bench_workdir DIR: make DIR (mode 755: the code under test refuses
#   directories others can write).
# bench_callgrind_total OUT: print the instruction total of callgrind
#   output file OUT.

# shellcheck shell=sh

# shellcheck disable=SC2034 # used by the scripts that source this
BENCH_CFLAGS="-std=gnu11 -D_GNU_SOURCE -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
 -Wno-unused-parameter -Werror -O2 -g -I$SRC/src/core -I$SRC/src/cert -I$SRC/src/registry -I$SRC/src/token -I$SRC/src/ssh"
# shellcheck disable=SC2034
BENCH_CRYPTO=$(pkg-config --cflags --libs libcrypto)

bench_workdir() {
	mkdir -p "$1"
	chmod 755 "$1"
}

bench_callgrind_total() {
	callgrind_annotate "$1" 2>/dev/null |
	    sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}
