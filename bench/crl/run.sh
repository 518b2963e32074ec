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
# shellcheck source-path=SCRIPTDIR
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$PWD/bench-crl-work}
CALLS=${CALLS:-2000}
ROUNDS=${ROUNDS:-7}
CG_CALLS=${CG_CALLS:-100}
SIZES=${SIZES:-"10 1000000"}

# shellcheck source=../lib.sh
. "$SRC/bench/lib.sh"
CORE="$SRC/src/core/status.c $SRC/src/core/log.c $SRC/src/core/util.c
 $SRC/src/core/wire.c $SRC/src/core/config.c $SRC/src/cert/cert.c
 $SRC/src/cert/policy.c $SRC/src/cert/crl.c"

bench_workdir "$WORK"
BENCH=$WORK/crl_bench
# shellcheck disable=SC2086
gcc $BENCH_CFLAGS -o "$BENCH" "$SRC/bench/crl/crl_bench.c" $CORE $BENCH_CRYPTO

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
		ir=$(bench_callgrind_total "$out")
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
