#!/bin/sh
# run.sh - the OpenVPN TLS_VERIFY benchmark: builds the plugin and
# bench_tls_verify from the sources (same flags as the project build, plus
# -O2 -g), makes registries of 10 and 100,000 users, and measures the cost
# of one TLS_VERIFY call with each, by wall clock and by callgrind
# instruction count. Results go to stdout; copy them into bench/README.md.
#
#   sh bench/openvpn/run.sh [WORKDIR]
#
# WORKDIR (default ./bench-openvpn-work) must not be under a world-writable
# directory such as /tmp: the plugin refuses such a registry. It is reused
# when it exists (making 100,000 users takes a while); delete it to start
# over. Environment: CALLS (per round, default 2000), ROUNDS (default 7),
# CG_CALLS (calls under callgrind, default 200), USERS (default "10 100000").
# shellcheck source-path=SCRIPTDIR
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$PWD/bench-openvpn-work}
CALLS=${CALLS:-2000}
ROUNDS=${ROUNDS:-7}
CG_CALLS=${CG_CALLS:-200}
USERS=${USERS:-"10 100000"}

# shellcheck source=../lib.sh
. "$SRC/bench/lib.sh"
CFLAGS="$BENCH_CFLAGS -fPIC"
CORE="$SRC/src/core/status.c $SRC/src/core/log.c $SRC/src/core/util.c
 $SRC/src/core/wire.c $SRC/src/core/config.c $SRC/src/cert/cert.c
 $SRC/src/cert/policy.c $SRC/src/cert/crl.c $SRC/src/registry/registry.c
 $SRC/src/registry/registry_file.c"

bench_workdir "$WORK"
PLUGIN=$WORK/openvpn-plugin-personalsign.so
BENCH=$WORK/bench_tls_verify

# shellcheck disable=SC2086
gcc $CFLAGS -shared -o "$PLUGIN" "$SRC/openvpn/openvpn-plugin-personalsign.c" \
    $CORE -Wl,--version-script="$SRC/openvpn/openvpn-plugin-personalsign.map" \
    -Wl,-z,relro,-z,now $BENCH_CRYPTO
# shellcheck disable=SC2086
gcc $CFLAGS -o "$BENCH" "$SRC/bench/openvpn/bench_tls_verify.c" $CORE \
    -ldl $BENCH_CRYPTO

echo "machine: $(nproc) cores, $(uname -r), $(openssl version)"
for n in $USERS; do
	dir=$WORK/users-$n
	if [ ! -f "$dir/probe.crt" ]; then
		rm -rf "$dir"
		start=$(date +%s)
		"$BENCH" gen "$dir" "$n"
		echo "generated $n users in $(($(date +%s) - start)) s"
	fi
	echo "== $n registered users"
	for mode in accept refuse; do
		"$BENCH" run "$PLUGIN" "$dir" "$CALLS" "$ROUNDS" "$mode" |
		    grep median
	done
	for mode in accept refuse; do
		out=$WORK/callgrind-$n-$mode.out
		calls=$(valgrind --tool=callgrind --callgrind-out-file="$out" \
		    --toggle-collect=openvpn_plugin_func_v3 \
		    "$BENCH" run "$PLUGIN" "$dir" "$CG_CALLS" 1 "$mode" 2>/dev/null |
		    sed -n 's/^total calls: //p')
		ir=$(bench_callgrind_total "$out")
		echo "callgrind $mode: $ir instructions in $calls calls = $((ir / calls)) per call"
	done
done
