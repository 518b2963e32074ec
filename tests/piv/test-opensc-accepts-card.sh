#!/bin/sh
# test-opensc-accepts-card.sh - proves that virtual_piv_card.py is a faithful
# PIV card by driving it with OpenSC (which nobody here wrote) through a
# private pcscd + vpcd: card detection, certificate listing/reading (plain,
# gzip, T=0-style 61xx chunking), PIN handling (wrong PIN, blocked PIN,
# retry counter) and RSA-2048 / P-256 / P-384 signatures verified by openssl.
#
# Needs root.  Exit 0 = all passed, 1 = first failed assertion, 77 = skip.
# PSTEST_CARD_EXTRA_ARGS="--fault bad-sig" (for example) is appended to every
# card started here; use it to check that this test can fail.
# shellcheck source-path=SCRIPTDIR
set -eu

PIV_SRCDIR=${PIV_SRCDIR:-$(cd "$(dirname "$0")" && pwd)}
# shellcheck source=lib.sh
. "$PIV_SRCDIR/lib.sh"

piv_skip_unless_ready
for tool in opensc-tool pkcs15-tool pkcs11-tool timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not found" >&2
        exit 77
    fi
done
if [ ! -e "$PIV_PKCS11_MODULE" ]; then
    echo "SKIP: $PIV_PKCS11_MODULE not found" >&2
    exit 77
fi

piv_tally_init		# passed, failed; ok MSG, summary
# fail MSG [FILE]: report, show FILE (tool output), stop at the first failure
fail() {
    failed=$((failed + 1))
    echo "FAIL: $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        sed 's/^/    | /' "$2"
    fi
    if [ -n "${PIV_CARD_LOG:-}" ] && [ -f "$PIV_CARD_LOG" ]; then
        echo "    card log (tail):"
        tail -n 5 "$PIV_CARD_LOG" | sed 's/^/    | /'
    fi
    summary
    exit 1
}

piv_init pstest-opensc
piv_opensc_env
out=$PIV_TMP/out
pki=$PIV_TMP/pki
piv_make_certs "$pki" || fail "making test certificates"
printf 'pam_personalsign challenge %s\n' "$(date +%s%N)" > "$PIV_TMP/data"

base=$(piv_free_ports 2) || fail "no free ports"
piv_start_pcscd "$base" "$((base + 2))" || fail "starting pcscd"

# card READERPORT STATEFILE [card options...]: insert a fresh card
card() {
    card__port=$1
    card__state=$2
    shift 2
    rm -f "$card__state"
    # shellcheck disable=SC2086 # extra args are split on purpose
    piv_start_card "$card__port" --state "$card__state" "$@" \
        ${PSTEST_CARD_EXTRA_ARGS:-}
    piv_wait_card 5000 "PSTest vpcd $card__port " ||
        fail "card on port $card__port not detected"
}
# eject: pull the current card and wait until pcscd has noticed
eject() {
    piv_stop "$PIV_CARD_PID"
    piv_wait_no_card 5000 "PSTest vpcd $base " ||
        fail "card removal not noticed"
    piv_wait_no_card 5000 "PSTest vpcd $((base + 2)) " ||
        fail "card removal not noticed"
}
run() {   # run CMD...: bounded, output to $out
    timeout 30 "$@" > "$out" 2>&1
}
p11() {
    run pkcs11-tool --module "$PIV_PKCS11_MODULE" "$@"
}
# check_cert ID CERTFILE: pkcs15-tool reads back exactly our certificate
check_cert() {
    run pkcs15-tool --read-certificate "$1" ||
        fail "pkcs15-tool --read-certificate $1" "$out"
    openssl x509 -in "$out" -outform DER -out "$PIV_TMP/got.der" 2>/dev/null ||
        fail "certificate $1 read by OpenSC does not parse" "$out"
    openssl x509 -in "$2" -outform DER -out "$PIV_TMP/want.der"
    cmp -s "$PIV_TMP/got.der" "$PIV_TMP/want.der" ||
        fail "certificate $1 read by OpenSC differs from $2"
}
# sign_verify KT ID PIN [HASH]: sign $PIV_TMP/data on the card through
# PKCS#11, verify with openssl and the certificate of key type KT.
sign_verify() {
    sv__kt=$1
    sv__id=$2
    sv__pin=$3
    sv__hash=${4:-}
    openssl x509 -in "$pki/$sv__kt.crt" -pubkey -noout > "$PIV_TMP/pub.pem"
    rm -f "$PIV_TMP/sig"
    case $sv__kt in
        rsa*)
            sv__hash=${sv__hash:-sha256}
            p11 --login --pin "$sv__pin" --sign --id "$sv__id" \
                -m SHA256-RSA-PKCS -i "$PIV_TMP/data" -o "$PIV_TMP/sig" ||
                fail "pkcs11-tool RSA sign ($sv__kt, id $sv__id)" "$out"
            ;;
        *)
            if [ -z "$sv__hash" ]; then
                sv__hash=sha256
                [ "$sv__kt" = p384 ] && sv__hash=sha384
            fi
            openssl dgst "-$sv__hash" -binary "$PIV_TMP/data" \
                > "$PIV_TMP/hash"
            p11 --login --pin "$sv__pin" --sign --id "$sv__id" -m ECDSA \
                --signature-format openssl -i "$PIV_TMP/hash" \
                -o "$PIV_TMP/sig" ||
                fail "pkcs11-tool ECDSA sign ($sv__kt/$sv__hash, id $sv__id)" \
                    "$out"
            ;;
    esac
    run openssl dgst "-$sv__hash" -verify "$PIV_TMP/pub.pem" \
        -signature "$PIV_TMP/sig" "$PIV_TMP/data" ||
        fail "openssl rejects the $sv__kt/$sv__hash signature (id $sv__id)" \
            "$out"
    grep -q "Verified OK" "$out" ||
        fail "openssl did not say Verified OK ($sv__kt)" "$out"
}
expect_retries() {   # expect_retries STATEFILE N WHAT
    er__got=$(piv_state_retries "$1")
    [ "$er__got" = "$2" ] ||
        fail "$3: card retry counter is '$er__got', expected $2" "$1"
}

# --- 1. RSA-2048, P-256, P-384 in slot 9A -----------------------------------
for kt in rsa2048 p256 p384; do
    st=$PIV_TMP/state-$kt
    t0=$(date +%s%N)
    card "$base" "$st" --slot "9a:$pki/$kt.crt:$pki/$kt.key"
    t1=$(date +%s%N)

    run opensc-tool -n || fail "opensc-tool -n ($kt)" "$out"
    grep -q "Personal Identity Verification Card" "$out" ||
        fail "opensc-tool -n does not say PIV ($kt)" "$out"
    ok "$kt: opensc-tool -n says PIV"

    run pkcs15-tool --list-certificates ||
        fail "pkcs15-tool --list-certificates ($kt)" "$out"
    grep -q "Certificate for PIV Authentication" "$out" ||
        fail "pkcs15-tool does not list the 9A certificate ($kt)" "$out"
    check_cert 01 "$pki/$kt.crt"
    ok "$kt: pkcs15-tool lists and reads back the 9A certificate"

    ga0=$(piv_state_commands "$st" 87)
    t2=$(date +%s%N)
    sign_verify "$kt" 01 123456
    t3=$(date +%s%N)
    ga1=$(piv_state_commands "$st" 87)
    [ "$((ga1 - ga0))" = 1 ] ||
        fail "$kt: expected 1 GENERAL AUTHENTICATE, card saw $((ga1 - ga0))" \
            "$st"
    expect_retries "$st" 3 "$kt after a good PIN"
    ok "$kt: PKCS#11 signature verifies with openssl (1 GENERAL AUTHENTICATE)"
    echo "    timing $kt: card present $(((t1 - t0) / 1000000)) ms," \
         "pkcs11-tool sign $(((t3 - t2) / 1000000)) ms"

    if [ "$kt" = p384 ]; then
        # SHA-256 digest with a P-384 key: the card must pad it on the left
        sign_verify p384 01 123456 sha256
        ok "p384: signature over a shorter SHA-256 digest verifies"
    fi
    eject
done

# --- 2. wrong PIN, retry counter, good PIN resets it -------------------------
st=$PIV_TMP/state-pin
card "$base" "$st" --slot "9a:$pki/p256.crt:$pki/p256.key"
expect_retries "$st" 3 "fresh card"
if p11 --login --pin 654321 --sign --id 01 -m ECDSA \
        -i "$PIV_TMP/data" -o "$PIV_TMP/sig"; then
    fail "signing with a wrong PIN succeeded" "$out"
fi
grep -q CKR_PIN_INCORRECT "$out" ||
    fail "wrong PIN did not give CKR_PIN_INCORRECT" "$out"
expect_retries "$st" 2 "after one wrong PIN"
[ "$(piv_state_count "$st" 87)" = 0 ] ||
    fail "card got GENERAL AUTHENTICATE after a wrong PIN" "$st"
ok "wrong PIN: CKR_PIN_INCORRECT, retry counter 3 -> 2, no signature"
sign_verify p256 01 123456
expect_retries "$st" 3 "after a good PIN following a wrong one"
ok "good PIN after a wrong one signs and resets the counter to 3"
eject

# --- 3. blocked PIN ----------------------------------------------------------
st=$PIV_TMP/state-blocked
card "$base" "$st" --retries 0 --slot "9a:$pki/p256.crt:$pki/p256.key"
if p11 --login --pin 123456 --sign --id 01 -m ECDSA \
        -i "$PIV_TMP/data" -o "$PIV_TMP/sig"; then
    fail "signing with a blocked PIN succeeded" "$out"
fi
grep -q CKR_PIN_LOCKED "$out" ||
    fail "blocked PIN did not give CKR_PIN_LOCKED" "$out"
expect_retries "$st" 0 "blocked PIN"
[ "$(piv_state_count "$st" 87)" = 0 ] ||
    fail "card got GENERAL AUTHENTICATE with a blocked PIN" "$st"
ok "blocked PIN (--retries 0): CKR_PIN_LOCKED, no signature"
eject

# --- 4. gzip-compressed certificate, in the second reader --------------------
st=$PIV_TMP/state-gzip
card "$((base + 2))" "$st" --gzip --slot "9a:$pki/p256.crt:$pki/p256.key"
run pkcs15-tool --list-certificates ||
    fail "pkcs15-tool --list-certificates (gzip)" "$out"
grep -q "Certificate for PIV Authentication" "$out" ||
    fail "pkcs15-tool does not list the gzip-compressed certificate" "$out"
check_cert 01 "$pki/p256.crt"
ok "gzip: pkcs15-tool lists and inflates the certificate (second reader)"
sign_verify p256 01 123456
ok "gzip: signature in the second reader verifies"
eject

# --- 5. T=0-style responses (61xx without data, GET RESPONSE) ---------------
st=$PIV_TMP/state-chunk
card "$base" "$st" --chunk 64 --slot "9a:$pki/rsa2048.crt:$pki/rsa2048.key"
check_cert 01 "$pki/rsa2048.crt"
sign_verify rsa2048 01 123456
[ "$(piv_state_count "$st" C0)" -gt 4 ] ||
    fail "--chunk 64: expected many GET RESPONSE APDUs" "$st"
ok "--chunk 64: certificate and RSA signature via GET RESPONSE"
eject

# --- 6. slots 9C (PIN always) and 9E (no PIN) --------------------------------
st=$PIV_TMP/state-slots
card "$base" "$st" --slot "9c:$pki/rsa2048.crt:$pki/rsa2048.key" \
    --slot "9e:$pki/p384.crt:$pki/p384.key"
run pkcs15-tool --list-certificates || fail "pkcs15-tool (9C/9E)" "$out"
grep -q "Certificate for Digital Signature" "$out" ||
    fail "pkcs15-tool does not list the 9C certificate" "$out"
grep -q "Certificate for Card Authentication" "$out" ||
    fail "pkcs15-tool does not list the 9E certificate" "$out"
check_cert 02 "$pki/rsa2048.crt"
check_cert 04 "$pki/p384.crt"
v0=$(grep -c '^apdu 20 .*lc=8 le=- sw=9000' "$st" || true)
sign_verify rsa2048 02 123456
v1=$(grep -c '^apdu 20 .*lc=8 le=- sw=9000' "$st" || true)
[ "$v1" -gt "$v0" ] || fail "9C signature without a PIN VERIFY" "$st"
ok "9C (PIN always): signature verifies after a fresh VERIFY"
sign_verify p384 04 123456
ok "9E (card authentication): signature verifies"
eject

# --- 7. the checks above can fail: a card that signs wrongly ----------------
st=$PIV_TMP/state-badsig
card "$base" "$st" --fault bad-sig --slot "9a:$pki/p256.crt:$pki/p256.key"
openssl dgst -sha256 -binary "$PIV_TMP/data" > "$PIV_TMP/hash"
openssl x509 -in "$pki/p256.crt" -pubkey -noout > "$PIV_TMP/pub.pem"
p11 --login --pin 123456 --sign --id 01 -m ECDSA --signature-format openssl \
    -i "$PIV_TMP/hash" -o "$PIV_TMP/sig" ||
    fail "pkcs11-tool sign with --fault bad-sig" "$out"
if run openssl dgst -sha256 -verify "$PIV_TMP/pub.pem" \
        -signature "$PIV_TMP/sig" "$PIV_TMP/data"; then
    fail "openssl accepted a signature from a --fault bad-sig card" "$out"
fi
ok "a wrong signature (--fault bad-sig) is rejected by openssl"
eject

summary
[ "$failed" = 0 ]
