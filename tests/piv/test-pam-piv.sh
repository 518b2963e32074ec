#!/bin/sh
# test-pam-piv.sh - smart-card login through the real PAM stack: the BUILT
# pam_personalsign.so run by libpam (pam_wrapper gives a private service
# directory, nss_wrapper the users), talking to a private pcscd (vpcd
# readers) and virtual PIV cards (tests/piv/lib.sh), with the registry
# filled by the real personalsign-enroll.
#
# Every PAM run is pam_driver with scripted answers; cases assert the
# exact PAM code, what the user was told, and what the card saw (its
# --state log: retry counter, every APDU). The driver runs without
# PCSCLITE_CSOCK_NAME, the way sshd runs PAM: the module must find pcscd
# through pcsc_socket= alone.
#
# Cases: right PIN with RSA-2048, P-256, P-384 in slot 9A; a signature that
# does not verify; wrong PIN (tries left told, counter -1); one try left
# (refused, the PIN is not sent); blocked PIN; a card without the
# registered key; two readers (the card holding the key is used); waiting
# for a card (card_timeout); card pulled during GENERAL AUTHENTICATE and
# during VERIFY; backend=auto (card, keystore fallback without a card or
# with a foreign card or without pcscd); remote sessions (the card is not
# touched unless allow_remote_token); personalsign-enroll --from-card then a
# login; pcscd stopped.
#
# Needs root (private pcscd). Exit 77 when not root or a tool is missing;
# prints "N passed, N failed"; exit 1 when anything failed.
# shellcheck source-path=SCRIPTDIR
set -eu

: "${abs_top_srcdir:?run through make check}"
: "${abs_top_builddir:?run through make check}"
PIV_SRCDIR=$abs_top_srcdir/tests/piv
# shellcheck source=lib.sh
. "$PIV_SRCDIR/lib.sh"
piv_skip_unless_ready
for tool in timeout sha256sum; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not found" >&2
		exit 77
	fi
done
for lib in libpam_wrapper.so libnss_wrapper.so; do
	if LD_PRELOAD=$lib true 2>&1 | grep -q 'cannot be preloaded'; then
		echo "SKIP: $lib not installed" >&2
		exit 77
	fi
done
# shellcheck source=../integration/lib.sh
. "$abs_top_srcdir/tests/integration/lib.sh"
for f in "$MODULE" "$ENROLL" "$DRIVER"; do
	if [ ! -x "$f" ] && [ ! -f "$f" ]; then
		echo "ERROR: $f not built" >&2
		exit 99
	fi
done
if [ -x "$abs_top_builddir/tests/piv/pcsc_wait_card" ]; then
	PCSC_WAIT_CARD=$abs_top_builddir/tests/piv/pcsc_wait_card
fi

PIN=123456
# Every PAM run: bounded, and without the client socket variable.
PS_PAM_PREFIX="env -u PCSCLITE_CSOCK_NAME timeout 30"

make_world
piv_init pstest-pampiv
trap 'piv_cleanup; rm -rf "$W"' EXIT
pki=$PIV_TMP/pki
state=$PIV_TMP/state
piv_make_certs "$pki" || { echo "ERROR: making certificates" >&2; exit 99; }

# mkcert NAME: an extra P-256 user certificate from the same test CA.
mkcert() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$pki/$1.key" 2>/dev/null &&
	openssl req -new -key "$pki/$1.key" -subj "/O=PSTest/CN=$1" \
	    -out "$pki/$1.csr" 2>/dev/null &&
	openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" \
	    -CAkey "$pki/ca.key" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
	    -days 365 -sha256 -extfile "$pki/user.ext" -out "$pki/$1.crt" \
	    2>/dev/null
}
mkcert stranger || { echo "ERROR: making certificates" >&2; exit 99; }
mkcert cardonly || { echo "ERROR: making certificates" >&2; exit 99; }
fingerprint() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER |
	    sha256sum | cut -c1-64
}

# Trust anchors inside the trusted tree (the module refuses any under
# /tmp): the card CA and the fixtures' CA (alice's keystore).
cat "$pki/ca.crt" "$PS_FIXTURES/ca.crt" > "$W/ca.pem"
chmod 644 "$W/ca.pem"

for u in pivrsa2048 pivp256 pivp384 pivenroll alice; do add_user "$u"; done
enroll pivrsa2048 "$pki/rsa2048.crt"
enroll pivp256 "$pki/p256.crt"
enroll pivp384 "$pki/p384.crt"
enroll alice "$PS_FIXTURES/alice.cer"	# keystore user (auto fallback)

base=$(piv_free_ports 1) || { echo "ERROR: no free ports" >&2; exit 99; }
port_a=$base
port_b=$((base + 1))
piv_start_pcscd "$base" || { echo "ERROR: starting pcscd" >&2; exit 99; }
sock=$PCSCLITE_CSOCK_NAME
reader_a="PSTest vpcd $base 00 00"
reader_b="PSTest vpcd $base 00 01"

common="pcsc_socket=$sock ca_file=$W/ca.pem"
service ps-piv backend=piv "$common" card_timeout=0
service ps-piv-last backend=piv "$common" min_pin_retries=0
service ps-piv-wait backend=piv "$common" card_timeout=10
service ps-piv-1s backend=piv "$common" card_timeout=1
service ps-auto backend=auto "$common" card_timeout=5
service ps-remote-ok backend=piv "$common" allow_remote_token
service ps-remote-auto backend=piv "$common" mode=auto
# "$common" holds two words: service writes them unquoted into one line.

# card PORT [card options...]: insert a card with its --state log in
# $state.PORT and wait until pcscd sees it.
# (piv_eject PORT pulls it again.)
card() {
	card__port=$1
	shift
	if ! piv_insert "$card__port" "$state.$card__port" "$@"; then
		OUT="card on port $card__port not detected"
		not_ok "inserting a card"
		finish || true
		exit 1
	fi
}

# drive [pam_driver args...]: one PAM transaction, output in $OUT, exit
# status in $RC. A crash, a signal or the timeout is a failure of its own.
drive() {
	RC=0
	OUT=$(pam_exec_driver "$@" 2>&1) || RC=$?
	check_sanitizers "$*"
	if [ "$RC" -gt 1 ]; then
		not_ok "pam_driver $* ended abnormally (exit $RC)"
	fi
}
# count PATTERN FILE: lines matching (0 when none or no file)
count() {
	if [ -f "$2" ]; then grep -c -e "$1" "$2" || true; else echo 0; fi
}
apdus() { count '^apdu ' "$state.$1"; }
pins_sent() { count '^apdu 20 .* p1=00 p2=80 lc=8 ' "$state.$1"; }
retries() { piv_state_retries "$state.$1"; }
# check DESCRIPTION COMMAND...: a pass when COMMAND succeeds
check() {
	check__d=$1
	shift
	if "$@"; then ok "$check__d"; else not_ok "$check__d"; fi
}
card_log() {
	OUT="$OUT
--- card $1 state:
$(cat "$state.$1" 2>/dev/null || echo '(none)')"
}

# ----------------------------------------------------------------- logins
for k in rsa2048 p256 p384; do
	case $k in
	rsa2048) alg=07 ;;
	p256) alg=11 ;;
	p384) alg=14 ;;
	esac
	card "$port_a" --slot "9a:$pki/$k.crt:$pki/$k.key"
	drive --acct ps-piv "piv$k" "$PIN"
	card_log "$port_a"
	expect "$k in 9A, right PIN: PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
	expect "$k: asked for the PIN of the card in its reader" "^PROMPT: PIN for $reader_a: \$"
	expect "$k: account check passes" '^ACCT: PAM_SUCCESS$'
	check "$k: the card signed with key 9A, algorithm $alg" \
	    grep -q "^apdu 87 cla=00 p1=$alg p2=9A " "$state.$port_a"
	check "$k: the card is logged out afterwards" \
	    grep -q '^verified 0$' "$state.$port_a"
	piv_eject "$port_a"
done

# A well-formed signature over other bytes: the module must not accept it.
card "$port_a" --fault bad-sig --slot "9a:$pki/p256.crt:$pki/p256.key"
drive ps-piv pivp256 "$PIN"
expect "signature that does not verify with the registered key: PAM_AUTH_ERR" '^AUTH: PAM_AUTH_ERR$'
piv_eject "$port_a"

# ----------------------------------------------------------------- PIN
card "$port_a" --retries 3 --slot "9a:$pki/p256.crt:$pki/p256.key"
drive ps-piv pivp256 654321
card_log "$port_a"
expect "wrong PIN: PAM_AUTH_ERR" '^AUTH: PAM_AUTH_ERR$'
expect "wrong PIN: told how many tries are left" '^ERROR: Wrong PIN\. 2 tries left before the card is blocked\.$'
check "wrong PIN: the card's counter went from 3 to 2" [ "$(retries "$port_a")" = 2 ]
check "wrong PIN: exactly one VERIFY carried a PIN" [ "$(pins_sent "$port_a")" = 1 ]
drive ps-piv pivp256 "$PIN"
expect "right PIN after a wrong one: PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
check "right PIN resets the card's counter to 3" [ "$(retries "$port_a")" = 3 ]
piv_eject "$port_a"

card "$port_a" --retries 1 --slot "9a:$pki/p256.crt:$pki/p256.key"
drive ps-piv pivp256 "$PIN"
card_log "$port_a"
expect "one try left: PAM_MAXTRIES" '^AUTH: PAM_MAXTRIES$'
expect "one try left: the user is told why" '^ERROR: Only 1 PIN try left on your card: not trying\. Contact your administrator'
expect_not "one try left: the PIN is not even asked for" '^PROMPT:'
check "one try left: no VERIFY with a PIN reached the card" [ "$(pins_sent "$port_a")" = 0 ]
check "one try left: the last try is still there" [ "$(retries "$port_a")" = 1 ]
drive ps-piv-last pivp256 "$PIN"
expect "one try left, min_pin_retries=0: the last try is used, PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
piv_eject "$port_a"

card "$port_a" --retries 0 --slot "9a:$pki/p384.crt:$pki/p384.key"
drive ps-piv pivp384 "$PIN"
card_log "$port_a"
expect "blocked PIN: PAM_MAXTRIES" '^AUTH: PAM_MAXTRIES$'
expect "blocked PIN: the user is told" '^ERROR: The PIN of your card is blocked\. Contact your administrator'
expect_not "blocked PIN: the PIN is not even asked for" '^PROMPT:'
check "blocked PIN: no VERIFY with a PIN sent" [ "$(pins_sent "$port_a")" = 0 ]
piv_eject "$port_a"

# ----------------------------------------------------------------- wrong card
card "$port_a" --slot "9a:$pki/stranger.crt:$pki/stranger.key"
drive ps-piv pivp256 "$PIN"
card_log "$port_a"
expect "card without the registered key: PAM_AUTHINFO_UNAVAIL" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect "card without the registered key: the user is told" '^ERROR: This card holds no key registered for pivp256\.$'
expect_not "card without the registered key: no PIN asked" '^PROMPT:'
check "card without the registered key: no VERIFY at all" [ "$(count '^apdu 20 ' "$state.$port_a")" = 0 ]
piv_eject "$port_a"

# ----------------------------------------------------------------- two readers
card "$port_a" --slot "9a:$pki/p256.crt:$pki/p256.key"
card "$port_b" --slot "9a:$pki/rsa2048.crt:$pki/rsa2048.key"
drive ps-piv pivrsa2048 "$PIN"
card_log "$port_a"
card_log "$port_b"
expect "two readers, key in the second: PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
expect "two readers: the PIN is asked for the second reader's card" "^PROMPT: PIN for $reader_b: \$"
check "two readers: the first card saw no VERIFY and no signature" \
    [ "$(count '^apdu 20 \|^apdu 87 ' "$state.$port_a")" = 0 ]
check "two readers: the second card signed" grep -q '^apdu 87 ' "$state.$port_b"
drive ps-piv pivp256 "$PIN"
expect "two readers, key in the first: PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
expect "two readers: the first reader's card is used" "^PROMPT: PIN for $reader_a: \$"
piv_eject "$port_a"
piv_eject "$port_b"

# ----------------------------------------------------------------- waiting
drive ps-piv-1s pivp256 "$PIN"
expect "no card, card_timeout=1: PAM_AUTHINFO_UNAVAIL" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect "no card: asked to insert it" '^INFO: Please insert your smart card\.$'
expect "no card: told none was found" '^ERROR: No smart card found\. Please insert your card and try again\.$'
rm -f "$state.$port_a"
RC=0
(pam_exec_driver ps-piv-wait pivp256 "$PIN" > "$PIV_TMP/wait.out" 2>&1) &
wait_pid=$!
sleep 0.5
piv_start_card "$port_a" --state "$state.$port_a" --slot "9a:$pki/p256.crt:$pki/p256.key"
wait "$wait_pid" || RC=$?
OUT=$(cat "$PIV_TMP/wait.out")
expect "card inserted while waiting (card_timeout=10): PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
expect "waiting: asked to insert the card first" '^INFO: Please insert your smart card\.$'
piv_eject "$port_a"

# ----------------------------------------------------------------- removal
card "$port_a" --fault remove-on-sign --slot "9a:$pki/rsa2048.crt:$pki/rsa2048.key"
drive ps-piv pivrsa2048 "$PIN"
card_log "$port_a"
expect "card pulled during GENERAL AUTHENTICATE: PAM_AUTHINFO_UNAVAIL" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect "card pulled: the user is told" '^ERROR: The smart card was removed or stopped responding\.$'
check "card pulled: the driver exited normally (no crash)" [ "$RC" -le 1 ]
check "card pulled: it really went away at the signature" grep -q '^apdu 87 .*sw=REMOVED' "$state.$port_a"
piv_eject "$port_a"

card "$port_a" --fault remove-on-verify --slot "9a:$pki/p256.crt:$pki/p256.key"
drive ps-piv pivp256 "$PIN"
card_log "$port_a"
expect "card pulled during VERIFY: PAM_AUTHINFO_UNAVAIL" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect_not "card pulled during VERIFY: no success" '^AUTH: PAM_SUCCESS$'
check "card pulled during VERIFY: no crash" [ "$RC" -le 1 ]
piv_eject "$port_a"

# ----------------------------------------------------------------- backend=auto
drive ps-auto alice "$PASSWORD"
expect "backend=auto, no card: falls back to the keystore, PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
expect "backend=auto, no card: asks for the keystore password" '^PROMPT: Password for PersonalSign keystore'
expect_not "backend=auto, no card: no card messages" 'insert your smart card'
card "$port_a" --slot "9a:$pki/p256.crt:$pki/p256.key"
drive ps-auto pivp256 "$PIN"
expect "backend=auto with the user's card present: PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
expect "backend=auto with the card: the PIN is asked" "^PROMPT: PIN for $reader_a: \$"
v0=$(count '^apdu 20 ' "$state.$port_a")
drive ps-auto alice "$PASSWORD"
card_log "$port_a"
expect "backend=auto, card holds no key of the user: keystore, PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
expect "backend=auto, foreign card: keystore password asked" '^PROMPT: Password for PersonalSign keystore'
check "backend=auto, foreign card: no VERIFY sent to it" \
    [ "$(count '^apdu 20 ' "$state.$port_a")" = "$v0" ]

# ----------------------------------------------------------------- remote
n0=$(apdus "$port_a")
drive --rhost 192.0.2.7 ps-piv pivp256 "$PIN"
card_log "$port_a"
expect "remote session: PAM_AUTHINFO_UNAVAIL" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect "remote session: told a local card cannot be used" '^ERROR: PersonalSign: a local card or keystore cannot be used for a remote login\.$'
expect_not "remote session: no PIN asked" '^PROMPT:'
check "remote session: the card saw no APDU" [ "$(apdus "$port_a")" = "$n0" ]
drive --rhost 192.0.2.7 ps-remote-auto pivp256
card_log "$port_a"
expect "remote session, mode=auto: the challenge is shown for the client to sign" '^PROMPT: PersonalSign: sign this login'
check "remote session, mode=auto: the card saw no APDU" [ "$(apdus "$port_a")" = "$n0" ]
drive --rhost 192.0.2.7 ps-remote-ok pivp256 "$PIN"
expect "remote session with allow_remote_token: PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
check "allow_remote_token: the card was used" [ "$(apdus "$port_a")" -gt "$n0" ]
piv_eject "$port_a"

# ----------------------------------------------------------------- enroll from the card
card "$port_a" --slot "9a:$pki/cardonly.crt:$pki/cardonly.key"
drive ps-piv pivenroll "$PIN"
expect "before enrolment: PAM_USER_UNKNOWN" '^AUTH: PAM_USER_UNKNOWN$'
RC=0
OUT=$(env -u PCSCLITE_CSOCK_NAME timeout 30 "$ENROLL" --registry "$REG" \
    --pcsc-socket "$sock" enroll pivenroll --from-card --slot 9c 2>&1) || RC=$?
expect "enroll --from-card --slot 9c (empty): says so" 'slot 9C .* holds no usable certificate'
check "enroll from an empty slot: exit 1" [ "$RC" = 1 ]
check "enroll from an empty slot: nothing registered" [ ! -d "$REG/pivenroll" ]
RC=0
OUT=$(env -u PCSCLITE_CSOCK_NAME timeout 30 "$ENROLL" --registry "$REG" \
    --pcsc-socket "$sock" enroll pivenroll --from-card --slot 9a 2>&1) || RC=$?
expect "enroll --from-card --slot 9a: enrolled" '^enrolled pivenroll$'
check "enroll --from-card: exit 0" [ "$RC" = 0 ]
fp=$(fingerprint "$pki/cardonly.crt")
check "enroll --from-card: the card's certificate is registered" \
    [ -f "$REG/pivenroll/$fp.pem" ]
drive --acct ps-piv pivenroll "$PIN"
expect "after enrolment from the card: PAM_SUCCESS" '^AUTH: PAM_SUCCESS$'
expect "after enrolment from the card: account fine" '^ACCT: PAM_SUCCESS$'
piv_eject "$port_a"

# ----------------------------------------------------------------- pcscd stopped
piv_stop "$PIV_PCSCD_PID"
drive ps-piv pivp256 "$PIN"
expect "pcscd stopped: PAM_AUTHINFO_UNAVAIL" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect "pcscd stopped: the user is told" '^ERROR: The smart card service is not available\.$'
expect_not "pcscd stopped: no PIN asked" '^PROMPT:'
drive ps-auto alice "$PASSWORD"
expect "pcscd stopped, backend=auto: the keystore still works" '^AUTH: PAM_SUCCESS$'
RC=0
OUT=$(env -u PCSCLITE_CSOCK_NAME timeout 30 "$ENROLL" --registry "$REG" \
    --pcsc-socket "$sock" enroll pivp256 --from-card 2>&1) || RC=$?
expect "pcscd stopped: enroll --from-card says pcscd is not running" 'pcscd) is not running'
check "pcscd stopped: enroll --from-card exits 1" [ "$RC" = 1 ]

finish
