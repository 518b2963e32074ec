#!/bin/sh
# test-piv-backend.sh - the PIV token backend end to end, without PAM:
# a private pcscd + vpcd + virtual PIV cards (tests/piv/lib.sh) and
# piv_driver, which logs in through the core API (ps_token_open, list,
# unlock, sign, ps_challenge_verify with the registered certificate).
#
# Covers: RSA-2048, P-256 and P-384 logins; gzip certificates and T=0
# style 61xx chunks; wrong PIN (tries drop, the user is told); one try
# left (refused, no VERIFY with a PIN reaches the card); blocked PIN;
# a card without the registered key; card pulled mid-signature; garbage
# answers; two readers with two cards (the one holding the key is used);
# waiting for a card to be inserted; pcscd stopped. It counts the APDUs
# of a login from the card's --state log and prints them with timings.
#
# Needs root (private pcscd) and the piv_driver binary: $PIV_DRIVER, or
# $abs_top_builddir/tests/integration/piv_driver. Exit 0 = all passed,
# 1 = something failed, 77 = skipped. Prints "N passed, N failed".
# shellcheck source-path=SCRIPTDIR
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=${abs_top_srcdir:-$(cd "$here/../.." && pwd)}
PIV_SRCDIR=${PIV_SRCDIR:-$top/tests/piv}
# shellcheck source=../piv/lib.sh
. "$PIV_SRCDIR/lib.sh"

piv_skip_unless_ready
driver=${PIV_DRIVER:-${abs_top_builddir:-$top}/tests/integration/piv_driver}
if [ ! -x "$driver" ]; then
    echo "SKIP: piv_driver not built ($driver)" >&2
    exit 77
fi

piv_tally_init		# passed, failed; ok MSG, summary
# bad MSG: record a failure, show the driver's output and the card log tail
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
    [ -f "$out" ] && sed 's/^/    | /' "$out"
    [ -f "$err" ] && tail -n 8 "$err" | sed 's/^/    ! /'
    if [ -n "${PIV_CARD_LOG:-}" ] && [ -f "$PIV_CARD_LOG" ]; then
        tail -n 3 "$PIV_CARD_LOG" | sed 's/^/    card: /'
    fi
}

piv_init pstest-pivbackend
pki=$PIV_TMP/pki
out=$PIV_TMP/out
err=$PIV_TMP/err
state=$PIV_TMP/state
piv_make_certs "$pki" || { echo "FAIL: making certificates"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=stranger" -days 30 -keyout "$pki/stranger.key" \
    -out "$pki/stranger.crt" 2>/dev/null

base=$(piv_free_ports 1) || { echo "FAIL: no free ports"; exit 1; }
port_a=$base
port_b=$((base + 1))
piv_start_pcscd "$base" || { echo "FAIL: starting pcscd"; exit 1; }
sock=$PCSCLITE_CSOCK_NAME
reader_a="PSTest vpcd $base 00 00"
reader_b="PSTest vpcd $base 00 01"

# card PORT [options...]: insert a fresh card on vpcd PORT with its state
# log in $state.PORT; wait until pcscd sees it.
# (piv_eject PORT pulls it again.)
card() {
    card__port=$1
    shift
    piv_insert "$card__port" "$state.$card__port" "$@" || {
        echo "FAIL: card on port $card__port not detected"
        summary
        exit 1
    }
}
# drive CERT [driver options...]: run the driver the way a PAM module in
# sshd would: no PCSCLITE_CSOCK_NAME in the environment, pcsc_socket= only.
drive() {
    drive__cert=$1
    shift
    drive__rc=0
    env -u PCSCLITE_CSOCK_NAME "$driver" --socket "$sock" "$@" \
        "$pki/$drive__cert.crt" >"$out" 2>"$err" || drive__rc=$?
    if [ "$drive__rc" -gt 1 ]; then
        echo "driver exited with $drive__rc" >>"$out"
    fi
    return "$drive__rc"
}
field() {
    sed -n "s/^$1: //p" "$out" | head -n 1
}
apdus() {
    grep -c '^apdu ' "$1" || true
}
# verify_with_pin STATEFILE: how many VERIFY commands carried a PIN
pins_sent() {
    grep -c '^apdu 20 .* p1=00 p2=80 lc=8 ' "$1" || true
}

# ------------------------------------------------------------ good logins
report=
for k in rsa2048 p256 p384; do
    card "$port_a" --slot "9a:$pki/$k.crt:$pki/$k.key"
    if drive "$k" --expect ok; then
        n=$(apdus "$state.$port_a")
        ms=$(field elapsed_ms)
        report="$report
    $k: $n APDUs ($(grep -c '^apdu C0 ' "$state.$port_a" || true) GET RESPONSE, $(grep -c '^apdu .* cla=1' "$state.$port_a" || true) chained), ${ms} ms in the driver"
        ok "$k login verifies with the registered certificate ($n APDUs, $ms ms)"
    else
        bad "$k login: $(field result)"
    fi
    # nothing stays verified on the card after the login
    if grep -q '^verified 0' "$state.$port_a"; then
        ok "$k: PIN no longer verified on the card afterwards"
    else
        bad "$k: card still PIN-verified after the login"
    fi
    piv_eject "$port_a"
done

# gzip-compressed certificate, T=0 style 61xx chunks of 64 bytes
card "$port_a" --gzip --chunk 64 --slot "9a:$pki/rsa2048.crt:$pki/rsa2048.key"
if drive rsa2048 --expect ok; then
    ok "gzip certificate + 64-byte GET RESPONSE chunks ($(apdus "$state.$port_a") APDUs)"
else
    bad "gzip + chunked login: $(field result)"
fi
piv_eject "$port_a"

# lazy read: a key in 9D is found after reading 9A, 9C, 9D; none after it
card "$port_a" --slot "9a:$pki/p256.crt:$pki/p256.key" \
    --slot "9d:$pki/p384.crt:$pki/p384.key"
if drive p384 --expect ok && [ "$(field slot)" = "slot 9D" ] &&
    [ "$(grep -c '^apdu CB ' "$state.$port_a")" = 3 ]; then
    ok "slot 9D used; 9E never read (3 GET DATA)"
else
    bad "slot 9D login / lazy read ($(grep -c '^apdu CB ' "$state.$port_a" || true) GET DATA)"
fi
piv_eject "$port_a"

# ------------------------------------------------------------ PIN handling
card "$port_a" --retries 3 --slot "9a:$pki/p256.crt:$pki/p256.key"
if drive p256 --pin 000000 --expect bad_secret &&
    [ "$(piv_state_retries "$state.$port_a")" = 2 ] &&
    grep -q '^conv: Wrong PIN. 2 tries left' "$out"; then
    ok "wrong PIN: bad_secret, counter 3 -> 2, user told 2 tries left"
else
    bad "wrong PIN (retries now $(piv_state_retries "$state.$port_a"))"
fi
if drive p256 --pin 12345 --expect bad_secret &&
    [ "$(pins_sent "$state.$port_a")" = 1 ]; then
    ok "5-digit PIN refused without being sent"
else
    bad "short PIN"
fi
piv_eject "$port_a"

card "$port_a" --retries 1 --slot "9a:$pki/p256.crt:$pki/p256.key"
if drive p256 --expect pin_locked &&
    [ "$(pins_sent "$state.$port_a")" = 0 ] &&
    [ "$(piv_state_retries "$state.$port_a")" = 1 ] &&
    grep -q '^conv: Only 1 PIN try left on your card: not trying' "$out"; then
    ok "one try left: refused, no VERIFY with a PIN sent, counter still 1"
else
    bad "one try left ($(pins_sent "$state.$port_a") PIN VERIFYs)"
fi
if drive p256 --min-retries 0 --expect ok; then
    ok "min_pin_retries=0 allows the last try"
else
    bad "min_pin_retries=0: $(field result)"
fi
piv_eject "$port_a"

card "$port_a" --retries 0 --slot "9a:$pki/p384.crt:$pki/p384.key"
if drive p384 --expect pin_locked && grep -q '^conv: .*blocked' "$out" &&
    [ "$(pins_sent "$state.$port_a")" = 0 ]; then
    ok "blocked PIN: pin_locked, user told, nothing sent"
else
    bad "blocked PIN"
fi
piv_eject "$port_a"

# ------------------------------------------------------------ wrong card
card "$port_a" --slot "9a:$pki/p256.crt:$pki/p256.key"
if drive stranger --expect no_token; then
    ok "card without the registered key: no_token ($(grep -c '^apdu CB ' "$state.$port_a") GET DATA, all slots)"
else
    bad "card without the registered key: $(field result)"
fi
piv_eject "$port_a"

# ------------------------------------------------------------ faults
card "$port_a" --fault remove-on-sign --slot "9a:$pki/rsa2048.crt:$pki/rsa2048.key"
if drive rsa2048 --expect token && grep -q '^conv: .*removed' "$out"; then
    ok "card removed during GENERAL AUTHENTICATE: token error, user told"
else
    bad "card removed mid-sign: $(field result)"
fi
piv_eject "$port_a"

card "$port_a" --fault garbage --slot "9a:$pki/p256.crt:$pki/p256.key"
if drive p256 --expect token; then
    ok "garbage GET DATA answers: token error"
else
    bad "garbage answers: $(field result)"
fi
piv_eject "$port_a"

card "$port_a" --fault bad-sw --slot "9a:$pki/p256.crt:$pki/p256.key"
if drive p256 --expect token; then
    ok "GENERAL AUTHENTICATE refused with a bad status word: token error"
else
    bad "bad-sw: $(field result)"
fi
piv_eject "$port_a"

card "$port_a" --fault bad-sig --slot "9a:$pki/p384.crt:$pki/p384.key"
if drive p384; then
    bad "bad signature accepted"
elif [ "$(field result)" = auth ] || [ "$(field result)" = token ]; then
    ok "wrong signature from the card: $(field result), not accepted"
else
    bad "bad-sig: $(field result)"
fi
piv_eject "$port_a"

# ------------------------------------------------------------ two readers
card "$port_a" --slot "9a:$pki/p256.crt:$pki/p256.key"
card "$port_b" --slot "9a:$pki/rsa2048.crt:$pki/rsa2048.key"
if drive rsa2048 --expect ok && field prompt | grep -q "$reader_b"; then
    ok "two cards: the one in the second reader holding the key is used"
else
    bad "two readers: $(field result) $(field prompt)"
fi
if drive p256 --expect ok && field prompt | grep -q "$reader_a"; then
    ok "two cards: the first one when it holds the key"
else
    bad "two readers, first: $(field result) $(field prompt)"
fi
if drive rsa2048 --reader "00 00" --expect no_token; then
    ok "reader= narrows the choice to a card without the key"
else
    bad "reader= filter: $(field result)"
fi
piv_eject "$port_a"
piv_eject "$port_b"

# ------------------------------------------------------------ waiting
rm -f "$state.$port_a"
wait_out=$PIV_TMP/wait.out
env -u PCSCLITE_CSOCK_NAME "$driver" --socket "$sock" --timeout 10 \
    --expect ok "$pki/p256.crt" >"$wait_out" 2>"$err" &
wait_pid=$!
sleep 0.3
piv_start_card "$port_a" --state "$state.$port_a" \
    --slot "9a:$pki/p256.crt:$pki/p256.key"
if wait "$wait_pid" && grep -q '^conv: Please insert your smart card' "$wait_out"; then
    ok "asked to insert the card, waited, logged in ($(sed -n 's/^elapsed_ms: //p' "$wait_out") ms)"
else
    cp "$wait_out" "$out"
    bad "waiting for a card"
fi
piv_eject "$port_a"
if drive p256 --timeout 1 --expect no_token && grep -q '^conv: Please insert' "$out"; then
    ok "no card within card_timeout=1: no_token ($(field elapsed_ms) ms)"
else
    bad "card_timeout expiry: $(field result)"
fi

# ------------------------------------------------------------ AUTO
card "$port_a" --slot "9a:$pki/p256.crt:$pki/p256.key"
if drive p256 --backend auto --expect ok && [ "$(field backend)" = piv ]; then
    ok "backend=auto takes the card that is present"
else
    bad "backend=auto with a card: $(field result)"
fi
piv_eject "$port_a"

# ------------------------------------------------------------ no pcscd
piv_stop "$PIV_PCSCD_PID"
if drive p256 --expect no_token && grep -q 'pcscd' "$err"; then
    ok "pcscd stopped: no_token, log says pcscd is not running"
else
    bad "pcscd stopped: $(field result)"
fi

echo "APDUs per successful login (slot 9A):$report"
summary
[ "$failed" = 0 ]
