#!/bin/sh
# test-openvpn.sh - the OpenVPN plugin inside a real OpenVPN 2.6 server,
# with real OpenVPN clients, on loopback in a private network namespace.
#
# The server runs in server mode on a tun device (so a refused user name
# gets a real AUTH_FAILED push); clients use --dev null with pull filters
# (../shared/RECIPES.md C.5). Certificates come from the shared test PKI
# (tests/fixtures/mkpki.sh) plus a server certificate and a few client
# certificates made here with the fixture CA. The registry is written by
# the real personalsign-enroll.
#
# Every case asserts on what the client saw AND on the plugin's own log
# line in the server log. Refusals at TLS_VERIFY reach the client only as
# a handshake that never completes, so those clients get a short
# --hand-window and run in parallel.
#
# Needs root (tun device, unshare --net) and openvpn: exit 77 otherwise.
set -u

: "${abs_top_builddir:?run through make check}"
: "${abs_top_srcdir:?run through make check}"
: "${PS_FIXTURES:?run through make check}"

PLUGIN="$abs_top_builddir/.libs/openvpn-plugin-personalsign.so"
ENROLL="$abs_top_builddir/personalsign-enroll"
FX=$PS_FIXTURES
PORT=1194			# our own network namespace: nothing else listens
HAND_WINDOW=3			# seconds a refused TLS handshake takes to fail
WAIT_MAX=100			# tenths of a second to wait for any one outcome

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root (tun device, network namespace)"
	exit 77
fi
if [ "${PS_SANITIZERS:-no}" = yes ]; then
	# An uninstrumented openvpn cannot load an ASan-built plugin; the
	# normal build runs this test.
	echo "SKIP: sanitizer build"
	exit 77
fi
if ! command -v openvpn >/dev/null 2>&1; then
	echo "SKIP: openvpn is not installed"
	exit 77
fi

# Run the whole test in a throwaway network namespace: the tun device and
# the sockets never appear on the host.
if [ "${PS_OVPN_IN_NETNS:-}" != 1 ]; then
	PS_OVPN_IN_NETNS=1 exec unshare --net /bin/sh "$0" "$@"
	echo "FAIL: cannot enter a network namespace"
	exit 99
fi
ip link set lo up || { echo "FAIL: cannot bring up loopback"; exit 99; }

PASSED=0
FAILED=0
SKIPPED=0
PIDS=""

# The registry must not sit under a world-writable directory such as /tmp:
# the plugin (rightly) refuses to trust it there.
base="${TMPDIR:-$abs_top_builddir/tests/tmp}"
case $base in /tmp|/tmp/|/var/tmp|/var/tmp/) base="$abs_top_builddir/tests/tmp" ;; esac
mkdir -p "$base" && chmod 755 "$base"
T=$(mktemp -d "$base/ps-ovpn-XXXXXX") || exit 99
chmod 755 "$T"

cleanup() {
	for pid in $PIDS; do
		kill "$pid" 2>/dev/null
	done
	for pid in $PIDS; do
		wait "$pid" 2>/dev/null
	done
	[ -n "${PS_OVPN_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "PASS: $1"; }
fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL: $1"
	shift
	for f in "$@"; do
		echo "---- $f (last lines)"
		grep -v -e 'Outgoing' -e 'Incoming' "$f" 2>/dev/null | tail -n 15
	done
}
skip() { SKIPPED=$((SKIPPED + 1)); echo "SKIP: $1"; }

# wait_for FILE PATTERN...: until FILE holds one of the fixed strings.
wait_for() {
	file=$1
	shift
	i=0
	while [ $i -lt $WAIT_MAX ]; do
		for pat in "$@"; do
			grep -q -F -e "$pat" "$file" 2>/dev/null && return 0
		done
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

stop_pid() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	PIDS=$(echo " $PIDS " | sed "s/ $1 / /")
}

fingerprint() { # CERT -> SHA-256 of the SubjectPublicKeyInfo
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER |
	    sha256sum | cut -c1-64
}

enroll() { # USER CERT [enroll options...]
	user=$1 cert=$2
	shift 2
	"$ENROLL" --registry "$T/reg" -q "$@" enroll "$user" "$cert" >/dev/null
}

# Retire USER's key FP with the tool, as an admin would.
retire() { # USER FP
	"$ENROLL" --registry "$T/reg" -q retire "$1" "$2" \
	    --reason "renewed" >/dev/null
}

# ------------------------------------------------------------ PKI

cat > "$T/ca.cnf" <<'CNF'
[ ca ]
default_ca = testca
[ testca ]
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
crlnumber = ./crlnumber
default_md = sha256
default_crl_days = 2
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = supplied
emailAddress = optional
organizationName = optional
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ server ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[ user ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = clientAuth,emailProtection
subjectAltName = email:copy
CNF

# A private copy of the fixture CA's database: tests run in parallel and
# the fixtures are shared.
mkca() {
	mkdir -p "$T/ca/newcerts" &&
	    : > "$T/ca/index.txt" &&
	    echo 5000 > "$T/ca/serial" &&
	    echo 01 > "$T/ca/crlnumber"
}

fmt() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

issue() { # NAME KEY EXTENSIONS START END -> $T/NAME.crt
	openssl req -new -config "$T/ca.cnf" -key "$2" \
	    -subj "/CN=$1 test/emailAddress=$1@example.test/O=PSTest" \
	    -out "$T/$1.csr" &&
	    (cd "$T/ca" && openssl ca -batch -config "$T/ca.cnf" \
		-cert "$FX/ca.crt" -keyfile "$FX/ca.key" -in "$T/$1.csr" \
		-out "$T/$1.crt" -startdate "$4" -enddate "$5" \
		-extensions "$3" -notext 2>/dev/null)
}

newkey() { # FILE
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$1" 2>/dev/null
}

setup_pki() {
	mkca || return 1
	newkey "$T/server.key" || return 1
	issue server "$T/server.key" server "$(fmt '1 hour ago')" \
	    "$(fmt '+2 days')" || return 1
	# kate renewed her certificate with the SAME key: the registered
	# (old) one expired an hour ago, the one she presents is current.
	newkey "$T/kate.key" || return 1
	issue kate-old "$T/kate.key" user "$(fmt '3 hours ago')" \
	    "$(fmt '1 hour ago')" || return 1
	issue kate "$T/kate.key" user "$(fmt '1 hour ago')" \
	    "$(fmt '+365 days')" || return 1
	# OpenVPN trusts both test CAs; the plugin trusts only the real one,
	# from a copy in our own directory (the plugin refuses trust anchors
	# that anyone but root could replace, wherever the fixtures live).
	cat "$FX/ca.crt" "$FX/imposter-ca.crt" > "$T/openvpn-ca.pem" &&
	    cp "$FX/ca.crt" "$T/plugin-ca.pem" && chmod 644 "$T/plugin-ca.pem"
}

# bob's certificate revoked, in a CRL in crl_dir, indexed with the tool's
# crl-update: then TLS_VERIFY must not parse any CRL.
setup_crl() {
	mkdir -m 755 "$T/crl" &&
	    (cd "$T/ca" && openssl ca -config "$T/ca.cnf" -cert "$FX/ca.crt" \
		-keyfile "$FX/ca.key" -revoke "$FX/bob.crt" 2>/dev/null &&
	     openssl ca -config "$T/ca.cnf" -cert "$FX/ca.crt" \
		-keyfile "$FX/ca.key" -gencrl -out "$T/crl/ca.crl" 2>/dev/null) &&
	    chmod 644 "$T/crl/ca.crl" || return 1
	printf 'ca_file = %s\ncrl_dir = %s\n' "$T/plugin-ca.pem" "$T/crl" \
	    > "$T/crl.conf" && chmod 644 "$T/crl.conf" &&
	    "$ENROLL" --config "$T/crl.conf" -q crl-update >/dev/null
}

# ------------------------------------------------------------ registry

setup_registry() {
	mkdir -m 755 "$T/reg" || return 1
	# kate-old expired an hour ago: an admin with a laxer policy (a day
	# of clock skew) enrolled it anyway; the plugin must not care how an
	# entry got there.
	printf 'clock_skew = 86400\n' > "$T/lax.conf"
	chmod 644 "$T/lax.conf"
	enroll alice "$FX/alice.crt" &&
	    enroll bob "$FX/bob.crt" &&
	    enroll carol "$FX/carol.crt" &&
	    enroll mallory "$FX/imposter-alice.crt" &&
	    enroll kate "$T/kate-old.crt" --config "$T/lax.conf"
}

# ------------------------------------------------------------ processes

# start_server NAME PLUGIN-ARGS...: server mode on a tun device.
start_server() {
	name=$1
	shift
	SLOG="$T/server-$name.log"
	openvpn --mode server --tls-server --dev tun --topology subnet \
	    --server 10.99.0.0 255.255.255.0 --proto udp4 --local 127.0.0.1 \
	    --lport "$PORT" --ca "$T/openvpn-ca.pem" --cert "$T/server.crt" \
	    --key "$T/server.key" --dh none --hand-window "$HAND_WINDOW" \
	    --plugin "$PLUGIN" "$@" --verb 3 > "$SLOG" 2>&1 &
	SPID=$!
	PIDS="$PIDS $SPID"
}

# server_ready: the server finished its start-up (or died trying).
server_ready() {
	wait_for "$SLOG" "Initialization Sequence Completed" \
	    "Exiting due to fatal error" &&
	    grep -q -F "Initialization Sequence Completed" "$SLOG"
}

# start_client NAME CERT KEY USER LPORT: background client, log in
# $T/client-NAME.log, pid in CPID_NAME. The password is never checked.
start_client() {
	printf '%s\nignored\n' "$4" > "$T/up-$1"
	chmod 600 "$T/up-$1"
	timeout 30 openvpn --client --dev null --proto udp4 \
	    --remote 127.0.0.1 "$PORT" --bind --lport "$5" --ca "$FX/ca.crt" \
	    --cert "$2" --key "$3" --remote-cert-tls server \
	    --auth-user-pass "$T/up-$1" --auth-retry none --auth-nocache \
	    --hand-window "$HAND_WINDOW" --connect-timeout "$HAND_WINDOW" \
	    --connect-retry-max 1 --pull-filter ignore ifconfig \
	    --pull-filter ignore route --pull-filter ignore tun-mtu \
	    --verb 3 > "$T/client-$1.log" 2>&1 &
	eval "CPID_$(echo "$1" | tr -c 'A-Za-z0-9\n' _)=\$!"
	PIDS="$PIDS $!"
}

# client_outcome NAME: wait until the client connected or gave up, stop it,
# and print connected / auth_failed / tls_failed / none.
client_outcome() {
	log="$T/client-$1.log"
	wait_for "$log" "Initialization Sequence Completed" "AUTH_FAILED" \
	    "TLS handshake failed" "Exiting due to fatal error"
	eval "stop_pid \$CPID_$(echo "$1" | tr -c 'A-Za-z0-9\n' _)"
	if grep -q -F "Initialization Sequence Completed" "$log"; then
		echo connected
	elif grep -q -F "AUTH_FAILED" "$log"; then
		echo auth_failed
	elif grep -q -F "TLS handshake failed" "$log"; then
		echo tls_failed
	else
		echo none
	fi
}

# plugin_said PEER-PORT TEXT: the plugin logged TEXT about that client.
plugin_said() {
	grep -F "PLUGIN personalsign:" "$SLOG" | grep -E "client 127\.0\.0\.1:$1[ :]" |
	    grep -q -F -e "$2"
}

# expect NAME LPORT OUTCOME PLUGIN-TEXT DESCRIPTION
expect() {
	got=$(client_outcome "$1")
	if [ "$got" != "$3" ]; then
		fail "$5: client outcome $got, expected $3" "$T/client-$1.log" "$SLOG"
	elif ! plugin_said "$2" "$4"; then
		fail "$5: no plugin line \"$4\" for client 127.0.0.1:$2" "$SLOG"
	else
		pass "$5"
	fi
}

# ------------------------------------------------------------ cases

case_open_refuses() { # NAME EXPECTED-LOG-TEXT PLUGIN-ARGS...
	name=$1 text=$2
	shift 2
	start_server "$name" "$@"
	wait_for "$SLOG" "Exiting due to fatal error" \
	    "Initialization Sequence Completed"
	if grep -q -F "Initialization Sequence Completed" "$SLOG"; then
		fail "plugin open with $name: OpenVPN started anyway" "$SLOG"
	elif ! grep -F "PLUGIN personalsign:" "$SLOG" | grep -q -F -e "$text"; then
		fail "plugin open with $name: no line \"$text\"" "$SLOG"
	else
		pass "OpenVPN refuses to start with $name"
	fi
	stop_pid "$SPID"
}

main_server_cases() {
	start_server main "registry=$T/reg" "ca_file=$T/plugin-ca.pem" clock_skew=0
	if ! server_ready; then
		fail "main server did not start" "$SLOG"
		return
	fi

	# registered: connects, and both events accept
	start_client alice "$FX/alice.crt" "$FX/alice.key" alice 20001
	expect alice 20001 connected "accepted key $(fingerprint "$FX/alice.crt" |
	    cut -c1-16) (active) of user alice" "registered certificate connects"
	if plugin_said 20001 "AUTH_USER_PASS_VERIFY client 127.0.0.1:20001: accepted user alice"; then
		pass "user name of the owner accepted"
	else
		fail "no AUTH_USER_PASS_VERIFY acceptance for alice" "$SLOG"
	fi

	# a valid, registered certificate with someone else's user name
	start_client alice-as-bob "$FX/alice.crt" "$FX/alice.key" bob 20002
	expect alice-as-bob 20002 auth_failed \
	    'user name "bob" is not the owner of the certificate (alice)' \
	    "alice's certificate with user name bob refused (AUTH_FAILED)"

	# refusals at TLS_VERIFY, in parallel (each waits for hand-window).
	# Only certificates that OpenVPN itself accepts reach the plugin: an
	# expired one or one without clientAuth is refused by OpenSSL first,
	# so those cases here are ones only the plugin can refuse.
	start_client ivan "$FX/ivan.crt" "$FX/ivan.key" ivan 20003
	start_client mallory "$FX/imposter-alice.crt" "$FX/imposter-alice.key" \
	    mallory 20004
	start_client kate "$T/kate.crt" "$T/kate.key" kate 20006
	expect ivan 20003 tls_failed "is not registered to anyone" \
	    "unregistered certificate refused"
	expect mallory 20004 tls_failed "refused: certificate refused by policy: issuer not trusted" \
	    "registered certificate from a CA the plugin does not trust refused"
	expect kate 20006 tls_failed "registered certificate for this key refused by policy: expired on" \
	    "same key, but the registered certificate expired: refused"

	# renewal: alice2 registered for alice, the old key retired. The
	# running server sees it at once.
	enroll alice "$FX/alice2.crt" || fail "enroll alice2"
	retire alice "$(fingerprint "$FX/alice.crt")" || fail "retire alice's old key"
	start_client alice-old "$FX/alice.crt" "$FX/alice.key" alice 20007
	start_client alice-new "$FX/alice2.crt" "$FX/alice2.key" alice 20008
	expect alice-new 20008 connected "accepted key $(fingerprint "$FX/alice2.crt" |
	    cut -c1-16) (active) of user alice" \
	    "renewed certificate connects as alice"
	expect alice-old 20007 tls_failed "is not registered to anyone" \
	    "retired key refused after renewal"
	if grep -F "PLUGIN personalsign:" "$SLOG" | grep -q -F "of user alice is not usable (retired"; then
		pass "registry says the old key is retired"
	else
		fail "no registry line saying alice's old key is retired" "$SLOG"
	fi

	stop_pid "$SPID"
}

crl_cases() {
	if ! setup_crl; then
		fail "cannot make a CRL"
		return
	fi
	start_server crl "registry=$T/reg" "ca_file=$T/plugin-ca.pem" \
	    "crl_dir=$T/crl" crl=require
	if ! server_ready; then
		fail "CRL server did not start" "$SLOG"
		stop_pid "$SPID"
		return
	fi
	start_client bob "$FX/bob.crt" "$FX/bob.key" bob 20011
	start_client carol "$FX/carol.crt" "$FX/carol.key" carol 20012
	expect carol 20012 connected "accepted key $(fingerprint "$FX/carol.crt" |
	    cut -c1-16) (active) of user carol" \
	    "not revoked: connects with crl=require"
	expect bob 20011 tls_failed "refused: certificate refused by policy: revoked on" \
	    "revoked certificate refused"
	if grep -F "PLUGIN personalsign:" "$SLOG" | grep -q -F "at this login"; then
		fail "TLS_VERIFY parsed a CRL although crl_dir is indexed" "$SLOG"
	else
		pass "indexed CRLs: no CRL parsed during TLS_VERIFY"
	fi
	stop_pid "$SPID"
}

# ------------------------------------------------------------ run

for f in "$PLUGIN" "$ENROLL"; do
	if [ ! -x "$f" ] && [ ! -f "$f" ]; then
		echo "FAIL: $f not built"
		exit 99
	fi
done
if ! setup_pki; then
	echo "FAIL: cannot make the test PKI"
	exit 99
fi
if ! setup_registry; then
	echo "FAIL: cannot enroll the test users"
	exit 99
fi

case_open_refuses "an unknown option" 'unknown option "no_such_option"' \
    "registry=$T/reg" no_such_option=1
case_open_refuses "a missing registry" "is not a directory" \
    "registry=$T/no-such-registry"
main_server_cases
crl_cases

echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
