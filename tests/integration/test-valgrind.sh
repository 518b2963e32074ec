#!/bin/sh
# test-valgrind.sh - PAM logins (success, wrong password, unregistered
# user, expired certificate) run under valgrind: no memory errors, no
# leaks from the module. Skipped in the sanitizer build (ASan and valgrind
# do not mix); the normal build always runs it.
set -eu
. "$abs_top_srcdir/tests/integration/lib.sh"

if [ "${PS_SANITIZERS:-no}" = yes ]; then
	echo "sanitizer build: valgrind run skipped (it runs in the normal build)"
	exit 77
fi

make_world
add_user alice
add_user dave
add_user erin
enroll alice "$PS_FIXTURES/alice.crt"
plant erin "$PS_FIXTURES/erin.crt"
service ps

VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --child-silent-after-fork=yes --track-fds=no"
vg_login() { # DESCRIPTION WANT USER ANSWER
	rc=0
	OUT=$(LD_PRELOAD="libpam_wrapper.so libnss_wrapper.so" PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$W/pam.d" PAM_WRAPPER_DISABLE_DEEPBIND=1 \
		$VG "$DRIVER" --acct ps "$3" "$4" 2>&1) || rc=$?
	if [ "$rc" -eq 99 ]; then
		not_ok "$1: valgrind reported errors or leaks"
	else
		expect "$1" "$2"
	fi
}
vg_login "valgrind: successful login is clean" '^ACCT: PAM_SUCCESS$' alice "$PASSWORD"
vg_login "valgrind: wrong password is clean" '^AUTH: PAM_AUTH_ERR$' alice wrong
vg_login "valgrind: unregistered user is clean" '^AUTH: PAM_USER_UNKNOWN$' dave x
vg_login "valgrind: expired certificate is clean" '^ACCT: PAM_ACCT_EXPIRED$' erin "$PASSWORD"
finish
