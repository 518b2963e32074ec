#!/bin/sh
# test-exports.sh - the module exports the PAM entry points it implements
# and nothing else (the core is linked in statically and must stay
# private), and it loads with every symbol resolved.
set -eu
: "${abs_top_builddir:?run through make check}"
MODULE="$abs_top_builddir/.libs/pam_personalsign.so"
PASSED=0
FAILED=0
check() {
	if [ "$2" = "$3" ]; then
		PASSED=$((PASSED + 1)); echo "ok - $1"
	else
		FAILED=$((FAILED + 1)); echo "not ok - $1"; echo "    # got: $2"; echo "    # want: $3"
	fi
}

got=$(nm -D --defined-only "$MODULE" | awk '$2 == "T" || $2 == "D" || $2 == "B" { print $3 }' | sort | tr '\n' ' ')
check "exported symbols are exactly the pam_sm_* entry points" "$got" "pam_sm_acct_mgmt pam_sm_authenticate pam_sm_setcred "

got=$(nm -D --defined-only "$MODULE" | grep -c ' ps_' || true)
check "no core (ps_*) symbol leaks out" "$got" "0"

# ld.so resolves everything now (-z now) or refuses to load it.
if /usr/bin/python3 -c "import ctypes,sys; ctypes.CDLL('libpam.so.0', mode=ctypes.RTLD_GLOBAL); ctypes.CDLL(sys.argv[1], mode=2)" "$MODULE" 2>/dev/null; then
	r=loads
else
	r=fails
fi
check "module loads with every symbol resolved" "$r" "loads"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
