#!/bin/sh
# test-sshd.sh - the SSH integrations against a REAL OpenSSH sshd on
# 127.0.0.1 (own config, own host key, a free port), with the built module
# in a private PAM stack through pam_wrapper (no /etc/pam.d writes):
#
#   remote mode   paramiko answers keyboard-interactive by running the real
#                 personalsign-respond: success; wrong key; a replayed
#                 response; a response made for another user or host;
#                 the same through OpenSSH's own ssh client and askpass
#   mode=auto     a remote session gets the challenge, not a local prompt
#   mode=local    a remote session is refused before any secret is asked
#                 for: the server's own keystore/reader is never touched
#   authorized-keys  ssh -i with the key from the user's .pfx, through
#                 AuthorizedKeysCommand running as nobody: registered key
#                 in, removed key out at the next connection
#   sshauth       publickey,keyboard-interactive + SSH_AUTH_INFO_0: the
#                 registered key in, an unregistered one out
#
# sshd needs real accounts (nss_wrapper cannot reach into sshd's privsep
# children), so this creates two users with useradd and removes them at
# the end: root only, otherwise it is skipped (77). Every wait is bounded
# and only processes this script started are stopped, by PID.
#
# Needs: abs_top_builddir (the module, personalsign-respond and
# personalsign-enroll built there), PS_FIXTURES (tests/fixtures/mkpki.sh).
set -u

: "${abs_top_builddir:?run through make check}"
: "${PS_FIXTURES:?run through make check}"

skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root to create test accounts for sshd"
# An uninstrumented sshd (and pam_wrapper's RTLD_DEEPBIND) cannot host an
# ASan-built module; the normal build runs this test.
[ "${PS_SANITIZERS:-no}" = yes ] && skip "sanitizer build"
for t in /usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen /usr/bin/python3 \
	/usr/sbin/useradd /usr/sbin/userdel openssl; do
	command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
/usr/bin/python3 -c 'import paramiko' 2>/dev/null || skip "python3-paramiko not installed"
PAM_WRAPPER_LIB=$(ldconfig -p 2>/dev/null | awk '/libpam_wrapper\.so /{print $NF; exit}')
[ -n "$PAM_WRAPPER_LIB" ] || PAM_WRAPPER_LIB=libpam_wrapper.so
/usr/bin/python3 -c "import ctypes; ctypes.CDLL('$PAM_WRAPPER_LIB')" 2>/dev/null ||
	skip "pam_wrapper not installed"

MODULE="$abs_top_builddir/.libs/pam_personalsign.so"
RESPOND="$abs_top_builddir/personalsign-respond"
ENROLL="$abs_top_builddir/personalsign-enroll"
HERE=$(cd "$(dirname "$0")" && pwd)
CLIENT="$HERE/kbdint_client.py"
for f in "$MODULE" "$RESPOND" "$ENROLL"; do
	[ -e "$f" ] || { echo "missing $f (build first)"; exit 99; }
done

PASSED=0
FAILED=0
OUT=
SSHD_PID=
SSHD_LOG=
PORT=

# The world lives under /run: registry, state and AuthorizedKeysCommand
# all demand a root-owned path that nobody else can write, which /tmp and
# most build trees are not.
W=$(mktemp -d "${PS_SSH_TESTROOT:-/run}/pstest-ssh.XXXXXX") || exit 99
chmod 755 "$W"
U1="pss$$a"
U2="pss$$b"
USERS_MADE=

cleanup() {
	stop_sshd
	if command -v piv_cleanup >/dev/null 2>&1; then
		piv_cleanup
	fi
	for u in $USERS_MADE; do
		userdel -r "$u" >/dev/null 2>&1 || userdel "$u" >/dev/null 2>&1
	done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
not_ok() {
	FAILED=$((FAILED + 1))
	echo "not ok - $1"
	printf '%s\n' "$OUT" | sed 's/^/    # /'
	if [ -n "$SSHD_LOG" ] && [ -f "$SSHD_LOG" ]; then
		echo "    # --- sshd log (last 15 lines)"
		tail -n 15 "$SSHD_LOG" | sed 's/^/    # /'
	fi
}
expect() {
	if printf '%s\n' "$OUT" | grep -q -e "$2"; then ok "$1"; else not_ok "$1 (wanted: $2)"; fi
}
# expect_log DESCRIPTION PATTERN: the running sshd's log must match.
expect_log() {
	if grep -q -e "$2" "$SSHD_LOG"; then ok "$1"; else not_ok "$1 (sshd log wanted: $2)"; fi
}
expect_not() {
	if printf '%s\n' "$OUT" | grep -q -e "$2"; then not_ok "$1 (unwanted: $2)"; else ok "$1"; fi
}

# ------------------------------------------------------------ world

PASSWORD_FILE="$W/client/password"
REG="$W/registry"
STATE="$W/state"

make_user() { # NAME
	useradd -m -d "$W/home/$1" -s /bin/sh "$1" >/dev/null 2>&1 ||
		{ echo "useradd $1 failed"; exit 99; }
	USERS_MADE="$USERS_MADE $1"
}

# The key from a .pfx, as an OpenSSH private key file for ssh -i.
ssh_key_from_pfx() { # PFX OUT
	openssl pkcs12 -in "$1" -nocerts -nodes -passin "file:$PASSWORD_FILE" 2>/dev/null |
		openssl pkey -out "$2" 2>/dev/null &&
	chmod 600 "$2" &&
	ssh-keygen -q -p -P '' -N '' -f "$2" >/dev/null 2>&1 &&
	ssh-keygen -y -f "$2" > "$2.pub"
}

setup_world() {
	mkdir -p "$W/home" "$W/client" "$W/bin" "$W/akc" "$W/ak"
	chmod 755 "$W/home" "$W/bin" "$W/akc" "$W/ak"
	chmod 700 "$W/client"
	cp "$PS_FIXTURES/PASSWORD" "$PASSWORD_FILE"
	chmod 600 "$PASSWORD_FILE"
	for k in alice bob ivan; do
		cp "$PS_FIXTURES/$k.pfx" "$W/client/$k.pfx"
		chmod 600 "$W/client/$k.pfx"
	done
	make_user "$U1"
	make_user "$U2"
	# U1's keystore on the SERVER: remote logins must never touch it
	mkdir -p "$W/home/$U1/.personalsign"
	cp "$PS_FIXTURES/alice.pfx" "$W/home/$U1/.personalsign/keystore.pfx"
	chown -R "$U1" "$W/home/$U1/.personalsign"
	chmod 700 "$W/home/$U1/.personalsign"
	chmod 600 "$W/home/$U1/.personalsign/keystore.pfx"

	# shellcheck disable=SC2015 # exit on either failing
	"$ENROLL" --registry "$REG" -q enroll "$U1" "$PS_FIXTURES/alice.crt" >/dev/null &&
	"$ENROLL" --registry "$REG" -q enroll "$U2" "$PS_FIXTURES/bob.crt" >/dev/null ||
		{ echo "enroll failed"; exit 99; }

	# shellcheck disable=SC2015 # exit on any failing
	ssh_key_from_pfx "$W/client/alice.pfx" "$W/client/alice_ssh" &&
	ssh_key_from_pfx "$W/client/ivan.pfx" "$W/client/ivan_ssh" &&
	ssh-keygen -q -t ed25519 -N '' -f "$W/client/ed25519_ssh" ||
		{ echo "cannot make client SSH keys"; exit 99; }

	# AuthorizedKeysCommand: root-owned command in root-owned,
	# non-writable directories; a copy of the tool, so that the
	# unprivileged command user needs no access to the build tree.
	cp "$ENROLL" "$W/bin/personalsign-enroll"
	chmod 755 "$W/bin/personalsign-enroll"
	cat > "$W/akc/authorized-keys" <<EOF
#!/bin/sh
exec $W/bin/personalsign-enroll --registry $REG -q authorized-keys "\$1"
EOF
	chmod 755 "$W/akc/authorized-keys"

	mkdir -p /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$W/hostkey" || exit 99
	chmod 600 "$W/hostkey"
	cat > "$W/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $W/hostkey
PidFile none
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication yes
AuthenticationMethods keyboard-interactive
AuthorizedKeysFile none
StrictModes no
PermitRootLogin no
LogLevel DEBUG1
UseDNS no
PrintMotd no
PrintLastLog no
LoginGraceTime 30
MaxAuthTries 6
EOF
}

# pam_stack NAME MODULE-ARGS: a service directory whose sshd stack is our
# module; pam_wrapper copies it when sshd starts.
pam_stack() {
	d="$W/pam-$1"
	shift
	mkdir -p "$d"
	{
		echo "auth required $MODULE registry=$REG state_dir=$STATE $*"
		echo "account required $MODULE registry=$REG $*"
		echo "session required pam_permit.so"
	} > "$d/sshd"
	printf 'auth required pam_deny.so\naccount required pam_deny.so\nsession required pam_deny.so\npassword required pam_deny.so\n' > "$d/other"
}

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_sshd STACK [-o Key=Value ...]: on a fresh free port; waits (max 5 s)
# for "Server listening". Tries three ports in case one was taken meanwhile.
start_sshd() {
	stack=$1
	shift
	stop_sshd
	for _ in 1 2 3; do
		PORT=$(free_port)
		SSHD_LOG="$W/sshd-$stack-$PORT.log"
		LD_PRELOAD="$PAM_WRAPPER_LIB" PAM_WRAPPER=1 \
			PAM_WRAPPER_SERVICE_DIR="$W/pam-$stack" \
			/usr/sbin/sshd -D -e -f "$W/sshd_config" -p "$PORT" "$@" \
			2>"$SSHD_LOG" &
		SSHD_PID=$!
		i=0
		while [ $i -lt 250 ]; do
			grep -q "Server listening" "$SSHD_LOG" 2>/dev/null && return 0
			kill -0 "$SSHD_PID" 2>/dev/null || break
			sleep 0.02
			i=$((i + 1))
		done
		stop_sshd
	done
	echo "sshd did not start:"
	cat "$SSHD_LOG"
	exit 99
}

stop_sshd() {
	if [ -n "$SSHD_PID" ]; then
		kill "$SSHD_PID" 2>/dev/null
		wait "$SSHD_PID" 2>/dev/null
		SSHD_PID=
	fi
}

# kbdint USER [client options]: output in $OUT
kbdint() {
	user=$1
	shift
	OUT=$(timeout 60 /usr/bin/python3 "$CLIENT" --port "$PORT" --user "$user" "$@" 2>&1) || true
}

respond_with() { # KEYSTORE-NAME
	echo "$RESPOND -q --keystore $W/client/$1.pfx --password-file $PASSWORD_FILE"
}

# ssh_run KEY USER [ssh options]: OpenSSH's own client, no terminal.
ssh_run() {
	key=$1
	user=$2
	shift 2
	# shellcheck disable=SC2016 # $(id -un) runs on the server
	OUT=$(SSH_ASKPASS="$W/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=: \
		timeout 60 ssh -F /dev/null -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
		-o NumberOfPasswordPrompts=1 -o ConnectTimeout=20 \
		-o LogLevel=ERROR -i "$key" -p "$PORT" "$@" \
		"$user@127.0.0.1" 'echo LOGGED-IN-AS $(id -un)' </dev/null 2>&1) || true
}

setup_world

# askpass for OpenSSH's client: what a user with a terminal does by hand.
cat > "$W/askpass" <<EOF
#!/bin/sh
line=\$(printf '%s\n' "\$1" | grep -o 'personalsign-challenge:[A-Za-z0-9_-]*' | head -n 1)
[ -n "\$line" ] || { echo not-a-password; exit 0; }
exec $(respond_with alice) "\$line"
EOF
chmod 755 "$W/askpass"

# ------------------------------------------------------------ remote mode

pam_stack remote mode=remote challenge_lifetime=60
start_sshd remote

kbdint "$U1" --respond "$(respond_with alice)" --save-answer "$W/answer1" --cmd id
[ -n "${PS_TEST_VERBOSE:-}" ] && printf '%s\n' "$OUT"
expect "remote: the challenge is shown as one line to copy" \
	'PROMPT echo=True .*personalsign-respond personalsign-challenge:[A-Za-z0-9_-]*\\nPersonalSign response: '
expect "remote: personalsign-respond signed it" 'RESPOND rc=0'
expect "remote: registered key logs in" '^AUTH OK'
expect "remote: and runs a command as the user" "CMD OUTPUT: uid=[0-9]*($U1)"
expect_not "remote: never asks for a password on the server" 'PROMPT echo=False'

kbdint "$U1" --respond "$(respond_with bob)"
expect "remote: another person's keystore is refused" '^AUTH FAILED'
expect "remote: ... and told why" 'not a valid registered key'

kbdint "$U1" --answer-file "$W/answer1"
expect "remote: a replayed response from an earlier login is refused" '^AUTH FAILED'
expect "remote: ... as answering a different challenge" 'different challenge'

kbdint "$U1" --respond "$(respond_with alice)" --retarget "user=$U2"
expect "remote: a response made for another user is refused" '^AUTH FAILED'
expect "remote: ... as answering a different challenge" 'different challenge'

kbdint "$U1" --respond "$(respond_with alice)" --retarget "host=elsewhere.example"
expect "remote: a response made for another host is refused" '^AUTH FAILED'
expect "remote: ... as answering a different challenge" 'different challenge'

kbdint "$U1" --answer-file /dev/null
expect "remote: an empty answer is refused" '^AUTH FAILED'
printf 'personalsign-response:AAAAAA\n' > "$W/garbage"
kbdint "$U1" --answer-file "$W/garbage"
expect "remote: garbage is refused" '^AUTH FAILED'
expect "remote: ... as not a response line" 'not a complete response line'
head -c 200 "$W/answer1" > "$W/truncated"
kbdint "$U1" --answer-file "$W/truncated"
expect "remote: a truncated response is refused" 'not a complete response line'

kbdint "$U2" --respond "$(respond_with bob)"
expect "remote: EC P-256 key logs in too" '^AUTH OK'

ssh_run "$W/client/ed25519_ssh" "$U1"
expect "remote: OpenSSH client with askpass running personalsign-respond" "LOGGED-IN-AS $U1"

kbdint "nosuchuser$$" --respond "$(respond_with alice)"
expect "remote: unknown user refused" '^AUTH FAILED'
expect_not "remote: ... without a challenge" 'RESPOND rc='

# A PIV card on the client: the virtual card of tests/piv behind a private
# pcscd, answered through personalsign-respond --backend piv.
PIV_SRCDIR="$HERE/../piv"
if [ -f "$PIV_SRCDIR/lib.sh" ] && command -v pcscd >/dev/null 2>&1 &&
	[ -r /usr/lib/pcsc/drivers/serial/libifdvpcd.so ]; then
	PIV_TMP="$W/piv"
	mkdir -p "$PIV_TMP"
	chmod 755 "$PIV_TMP"
	# shellcheck source=tests/piv/lib.sh
	. "$PIV_SRCDIR/lib.sh"
	if piv_make_certs "$PIV_TMP/pki" "$U2" && base=$(piv_free_ports 1) &&
		piv_start_pcscd "$base" &&
		piv_start_card "$base" --slot "9a:$PIV_TMP/pki/p256.crt:$PIV_TMP/pki/p256.key" &&
		piv_wait_card 10000 >/dev/null; then
		"$ENROLL" --registry "$REG" -q enroll "$U2" "$PIV_TMP/pki/p256.crt" >/dev/null
		printf '123456\n' > "$W/client/pin"
		chmod 600 "$W/client/pin"
		kbdint "$U2" --respond "$RESPOND -q --backend piv --pcsc-socket $PCSCLITE_CSOCK_NAME --pin-file $W/client/pin" --cmd id
		expect "remote: a PIV card on the client (personalsign-respond --backend piv)" "CMD OUTPUT: uid=[0-9]*($U2)"
		printf '654321\n' > "$W/client/pin"
		kbdint "$U2" --respond "$RESPOND -q --backend piv --pcsc-socket $PCSCLITE_CSOCK_NAME --pin-file $W/client/pin"
		expect "remote: a wrong card PIN signs nothing" 'RESPOND-STDERR .*wrong PIN'
		expect "remote: ... and the login fails" '^AUTH FAILED'
	else
		OUT="could not start pcscd and the virtual card"
		not_ok "remote: PIV card setup"
	fi
else
	echo "# skipping the PIV card case: pcscd or vpcd not installed"
fi

# ------------------------------------------------------------ auto / local

pam_stack auto mode=auto challenge_lifetime=60
start_sshd auto
kbdint "$U1" --respond "$(respond_with alice)" --cmd id
expect "auto: a remote session gets the challenge and logs in" "CMD OUTPUT: uid=[0-9]*($U1)"

pam_stack local mode=local backend=auto
start_sshd local
kbdint "$U1" --respond "$(respond_with alice)"
expect "local: a remote session is refused" '^AUTH FAILED'
expect_not "local: ... without asking for the server keystore's password or PIN" 'PROMPT echo=False'
expect_not "local: ... and without a challenge" 'RESPOND rc='
expect "local: ... saying why" 'cannot be used for a remote login'

# ------------------------------------------------------------ authorized-keys

if "$ENROLL" --help 2>&1 | grep -q 'authorized-keys'; then
	pam_stack akc mode=remote
	start_sshd akc -o AuthenticationMethods=publickey \
		-o "AuthorizedKeysCommand=$W/akc/authorized-keys %u" \
		-o AuthorizedKeysCommandUser=nobody
	OUT=$("$W/bin/personalsign-enroll" --registry "$REG" -q authorized-keys "$U1" 2>&1)
	expect "authorized-keys: prints the registered key with its expiry" '^expiry-time="[0-9]\{14\}Z" ssh-rsa AAAA'
	ssh_run "$W/client/alice_ssh" "$U1"
	expect "authorized-keys: the key from the .pfx logs in (AuthorizedKeysCommand as nobody)" "LOGGED-IN-AS $U1"
	ssh_run "$W/client/ivan_ssh" "$U1"
	expect "authorized-keys: an unregistered key is refused" 'Permission denied'
	FP=$("$ENROLL" --registry "$REG" list "$U1" 2>/dev/null | grep -o '[0-9a-f]\{64\}' | head -n 1)
	"$ENROLL" --registry "$REG" -q remove "$U1" "$FP" >/dev/null 2>&1
	ssh_run "$W/client/alice_ssh" "$U1"
	expect "authorized-keys: the removed key is refused at the next connection" 'Permission denied'
	expect_not "authorized-keys: ... and does not log in" 'LOGGED-IN-AS'
	"$ENROLL" --registry "$REG" -q enroll "$U1" "$PS_FIXTURES/alice.crt" >/dev/null
else
	OUT="personalsign-enroll has no authorized-keys command: wire ps_authorized_keys() into tools/personalsign-enroll.c"
	not_ok "authorized-keys: command available"
fi

# ------------------------------------------------------------ sshauth

pam_stack sshauth mode=sshauth
for u in "$U1" "$U2"; do
	cat "$W/client/alice_ssh.pub" "$W/client/ed25519_ssh.pub" "$W/client/ivan_ssh.pub" > "$W/ak/$u"
done
chmod 644 "$W/ak/$U1" "$W/ak/$U2"
start_sshd sshauth -o AuthenticationMethods=publickey,keyboard-interactive \
	-o ExposeAuthInfo=yes -o "AuthorizedKeysFile=$W/ak/%u"
ssh_run "$W/client/alice_ssh" "$U1"
expect "sshauth: the registered key sshd verified logs in, no prompt" "LOGGED-IN-AS $U1"
ssh_run "$W/client/ed25519_ssh" "$U1"
expect "sshauth: a key sshd accepts but that is not registered is refused" 'Permission denied'
expect_log "sshauth: ... after sshd accepted it (so the module refused)" "Partial publickey for $U1 .*ED25519"
ssh_run "$W/client/ivan_ssh" "$U1"
expect "sshauth: an unregistered RSA/EC key is refused" 'Permission denied'
expect_log "sshauth: ... after sshd accepted it" "Partial publickey for $U1 .*ECDSA"
ssh_run "$W/client/alice_ssh" "$U2"
expect "sshauth: Alice's key does not log in as another registered user" 'Permission denied'
expect_log "sshauth: ... after sshd accepted it" "Partial publickey for $U2 .*RSA"
kbdint "$U1" --key "$W/client/alice_ssh" --cmd id
expect "sshauth: paramiko publickey then keyboard-interactive" "CMD OUTPUT: uid=[0-9]*($U1)"
expect_not "sshauth: ... without any prompt" 'PROMPT'

stop_sshd
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
