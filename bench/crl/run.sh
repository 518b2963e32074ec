#!/bin/sh
# run.sh - the CRL lookup benchmark: builds bench/crl/crl_bench from the
# sources (the project's flags plus -O2 -g), makes a CA with a CRL of 10
# and one of 1,000,000 revoked serials, indexes each (crl-update), and
# measures the per-login policy cost with each - for a certificate that is
# not on the CRL and for one in the middle of it - by wall clock and by
# callgrind instruction count; then, for comparison, the cost when the big
# CRL has not been indexed and is parsed at the login. Results go to
# stdout; copy them into bench/README.md.
#
#   sh bench/crl/run.sh [WORKDIR]
#
# WORKDIR (default ./bench-crl-work) must not be under a world-writable
# directory such as /tmp: the policy refuses such a crl_dir. It is reused
# when it exists; delete it to start over. Environment: CALLS (per round,
# default 2000), ROUNDS (default 7), CG_CALLS (logins under callgrind,
# default 100), SIZES (default "10 1000000").
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$PWD/bench-crl-work}
CALLS=${CALLS:-2000}
ROUNDS=${ROUNDS:-7}
CG_CALLS=${CG_CALLS:-100}
SIZES=${SIZES:-"10 1000000"}

CFLAGS="-std=gnu11 -D_GNU_SOURCE -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
 -Wno-unused-parameter -Werror -O2 -g -I$SRC/src"
CORE="$SRC/src/status.c $SRC/src/log.c $SRC/src/util.c $SRC/src/config.c
 $SRC/src/cert.c $SRC/src/policy.c $SRC/src/crl.c"
CRYPTO=$(pkg-config --cflags --libs libcrypto)

mkdir -p "$WORK"
chmod 755 "$WORK"
BENCH=$WORK/crl_bench
# shellcheck disable=SC2086
gcc $CFLAGS -o "$BENCH" "$SRC/bench/crl/crl_bench.c" $CORE $CRYPTO

echo "machine: $(nproc) cores, $(uname -r), $(openssl version)"
for n in $SIZES; do
	dir=$WORK/crl-$n
	if [ ! -f "$dir/crl/ca.crl" ]; then
		rm -rf "$dir"
		start=$(date +%s)
		"$BENCH" gen "$dir" "$n"
		echo "generated a CRL of $n serials in $(($(date +%s) - start)) s"
	fi
	echo "== CRL of $n serials: $(stat -c %s "$dir/crl/ca.crl") bytes (DER)"
	"$BENCH" update "$dir"
	echo "index: $(du -b "$dir/crl/.index" | cut -f1) bytes"
	for which in good revoked; do
		"$BENCH" run "$dir" "$CALLS" "$ROUNDS" "$which"
	done
	for which in good revoked; do
		out=$WORK/callgrind-$n-$which.out
		valgrind --tool=callgrind --callgrind-out-file="$out" \
		    --toggle-collect=bench_login \
		    "$BENCH" run "$dir" "$CG_CALLS" 1 "$which" >/dev/null 2>&1
		ir=$(callgrind_annotate "$out" 2>/dev/null |
		    sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
		# CG_CALLS logins + 1 warm-up
		echo "$which: $((ir / (CG_CALLS + 1))) instructions per login (callgrind)"
	done
done

# The same big CRL, not indexed: what a login costs until crl-update runs.
big=$(echo "$SIZES" | tr ' ' '\n' | sort -n | tail -n 1)
dir=$WORK/crl-$big
mv "$dir/crl/.index" "$dir/crl/.index.off"
echo "== CRL of $big serials, NOT indexed (read at every login)"
"$BENCH" run "$dir" 3 3 good 2>/dev/null
mv "$dir/crl/.index.off" "$dir/crl/.index"
