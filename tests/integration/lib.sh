# lib.sh - shared setup for the PAM integration tests (sourced, POSIX sh).
#
# Builds a throwaway world under the build tree: a registry enrolled with
# the real personalsign-enroll, per-user keystores, fake users through
# nss_wrapper (no /etc writes) and a private PAM service directory for
# pam_wrapper. Assertion helpers count results and print the closing
# "N passed, N failed" line.

: "${abs_top_builddir:?run through make check}"
: "${PS_FIXTURES:?run through make check}"

MODULE="$abs_top_builddir/.libs/pam_personalsign.so"
ENROLL="$abs_top_builddir/personalsign-enroll"
DRIVER="$abs_top_builddir/tests/integration/pam_driver"
PASSWORD=$(cat "$PS_FIXTURES/PASSWORD")
PASSED=0
FAILED=0

# A work directory the module will trust: it refuses registries under
# world-writable directories such as /tmp (make check provides one).
make_world() {
	base="${PS_TEST_TRUSTED_DIR:-$abs_top_builddir/tests/tmp}"
	mkdir -p "$base"
	chmod 755 "$base"
	W=$(mktemp -d "$base/ps-it-XXXXXX")
	chmod 755 "$W"
	trap 'rm -rf "$W"' EXIT
	REG="$W/registry"
	mkdir -p "$W/pam.d" "$W/home"
	MYUID=$(id -u)
	MYGID=$(id -g)
	: > "$W/passwd"
	: > "$W/group"
	echo "users:x:$MYGID:" >> "$W/group"
	export NSS_WRAPPER_PASSWD="$W/passwd" NSS_WRAPPER_GROUP="$W/group"
	# nss_wrapper dlopen()s with RTLD_DEEPBIND unless told not to, which
	# AddressSanitizer refuses (sanitizer build)
	export NSS_WRAPPER_DISABLE_DEEPBIND=1
}

# add_user NAME [UID]: a passwd entry with a home holding the user's
# fixture .pfx as ~/.personalsign/keystore.pfx (when one exists).
add_user() {
	name=$1
	uid=${2:-$MYUID}
	echo "$name:x:$uid:$MYGID:$name:$W/home/$name:/bin/sh" >> "$W/passwd"
	mkdir -p "$W/home/$name/.personalsign"
	if [ -f "$PS_FIXTURES/$name.pfx" ]; then
		cp "$PS_FIXTURES/$name.pfx" "$W/home/$name/.personalsign/keystore.pfx"
	fi
	chmod 700 "$W/home/$name/.personalsign"
	chmod 600 "$W/home/$name/.personalsign/keystore.pfx" 2>/dev/null || true
	chmod 755 "$W/home/$name"
	if [ "$uid" != "$MYUID" ]; then
		chown -R "$uid" "$W/home/$name"
	fi
}

enroll() { # USER CERTFILE
	"$ENROLL" --registry "$REG" -q enroll "$1" "$2" >/dev/null
}

# plant USER CERTFILE: put a certificate into the registry the way the
# file backend stores it, bypassing the tool's policy check - how an entry
# enrolled while valid looks after it expired.
plant() {
	fp=$(openssl x509 -in "$2" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -c1-64)
	mkdir -p "$REG/$1" "$REG/.by-key"
	{ echo "State: active"; echo "Enrolled: $(date +%s)"; cat "$2"; } > "$REG/$1/$fp.pem"
	echo "$1" > "$REG/.by-key/$fp"
	chmod 644 "$REG/$1/$fp.pem" "$REG/.by-key/$fp"
}

# service NAME MODULE-ARGS...: auth+account through our module.
service() {
	name=$1
	shift
	{
		echo "auth required $MODULE registry=$REG $*"
		echo "account required $MODULE registry=$REG $*"
	} > "$W/pam.d/$name"
	printf 'auth required pam_deny.so\naccount required pam_deny.so\n' > "$W/pam.d/other"
}

# pam_exec_driver ARGS...: run pam_driver against the private service
# directory. Normally through pam_wrapper; in the sanitizer build libpam is
# pointed at the directory with pam_start_confdir instead, because
# pam_wrapper dlopen()s libpam with RTLD_DEEPBIND, which ASan refuses.
pam_exec_driver() {
	if [ "${PS_SANITIZERS:-no}" = yes ]; then
		LD_PRELOAD="libnss_wrapper.so" NSS_WRAPPER_DISABLE_DEEPBIND=1 \
			"$DRIVER" --confdir "$W/pam.d" "$@"
	else
		LD_PRELOAD="libpam_wrapper.so libnss_wrapper.so" PAM_WRAPPER=1 \
			PAM_WRAPPER_SERVICE_DIR="$W/pam.d" \
			PAM_WRAPPER_DISABLE_DEEPBIND=1 \
			${PS_PAM_PREFIX:-} "$DRIVER" "$@"
	fi
}

# run_pam ARGS...: one PAM transaction; its output is in $OUT. A
# sanitizer report (memory error, leak, undefined behaviour) anywhere in
# it is a failure of its own.
run_pam() {
	OUT=$(pam_exec_driver "$@" 2>&1) || true
	check_sanitizers "$*"
}

check_sanitizers() {
	if printf '%s\n' "$OUT" | grep -q -e 'ERROR: AddressSanitizer' \
	    -e 'ERROR: LeakSanitizer' -e 'runtime error:'; then
		not_ok "sanitizer report while running: $1"
	fi
}

ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
not_ok() { FAILED=$((FAILED + 1)); echo "not ok - $1"; printf '%s\n' "$OUT" | sed 's/^/    # /'; }

# expect DESCRIPTION PATTERN: $OUT must contain a line matching PATTERN.
expect() {
	if printf '%s\n' "$OUT" | grep -q -e "$2"; then ok "$1"; else not_ok "$1 (wanted: $2)"; fi
}
# expect_not DESCRIPTION PATTERN: a PAM step ran and no line matches PATTERN
# (an empty or crashed run never counts as a pass).
expect_not() {
	if ! printf '%s\n' "$OUT" | grep -q -e '^AUTH: \|^ACCT: '; then
		not_ok "$1 (no PAM result at all)"
	elif printf '%s\n' "$OUT" | grep -q -e "$2"; then
		not_ok "$1 (unwanted: $2)"
	else
		ok "$1"
	fi
}

finish() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
