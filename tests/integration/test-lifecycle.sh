#!/bin/sh
# test-lifecycle.sh - the certificate lifecycle seen from the login: the
# built module run by the real libpam (pam_wrapper, nss_wrapper), the
# registry changed by the real personalsign-enroll between logins.
#
# Cases: after renew the old keystore still logs in (superseded) and the
# new one too; after retire the old one does not; after reissue the
# replaced key stops at once; a certificate revoked by CRL is refused at
# login, also when the CRL was dropped in without crl-update; self-renew
# through "sudo" (SUDO_USER/SUDO_UID, allow_self_renew) and its refusals;
# and, with a virtual PIV card holding the registered key and a renewed
# one, auto_renew at login and self-renew --from-card (skipped without
# root, pcscd or vpcd).
#
# Run by automake (abs_top_srcdir, abs_top_builddir, PS_FIXTURES). Prints
# "N passed, N failed".
set -eu
. "$abs_top_srcdir/tests/integration/lib.sh"

FX=$PS_FIXTURES
fp() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER |
	    sha256sum | cut -c1-64
}
FP_ALICE=$(fp "$FX/alice.crt")
FP_ALICE2=$(fp "$FX/alice2.crt")
FP_ALICE3=$(fp "$FX/alice3.crt")

make_world
for u in alice rose srenew cardy cardsr; do add_user "$u"; done
keystore() { # USER FIXTURE: put FIXTURE.pfx in USER's home
	cp "$FX/$2.pfx" "$W/home/$1/.personalsign/keystore.pfx"
	chmod 600 "$W/home/$1/.personalsign/keystore.pfx"
}

# The policy: the fixture root and intermediate, CRLs required.
mkdir -m 755 "$W/crl"
cp "$FX/ca.crl" "$W/crl/"
chmod 644 "$W/crl/ca.crl"
CONF=$W/ps.conf
printf 'registry = %s\nca_file = %s\ncrl_dir = %s\ncrl = require\n' \
    "$REG" "$FX/chain.pem" "$W/crl" > "$CONF"
chmod 644 "$CONF"
tool() { "$ENROLL" --config "$CONF" -q "$@"; }
tool crl-update
service ps "config=$CONF"

# ---------------------------------------------------------------- renew
tool enroll alice "$FX/alice.crt"
run_pam --acct ps alice "$PASSWORD"
expect "registered key logs in" '^AUTH: PAM_SUCCESS$'
tool renew alice "$FX/alice2.crt"
run_pam --acct ps alice "$PASSWORD"
expect "after renew, the old key still logs in (superseded)" '^AUTH: PAM_SUCCESS$'
expect "after renew, the old key's account is fine" '^ACCT: PAM_SUCCESS$'
keystore alice alice2
run_pam --acct ps alice "$PASSWORD"
expect "after renew, the new key logs in" '^AUTH: PAM_SUCCESS$'

# ---------------------------------------------------------------- retire
keystore alice alice
tool --reason "old laptop returned" retire alice "$FP_ALICE"
run_pam ps alice "$PASSWORD"
expect "a retired key no longer logs in" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect "the user is told the keystore holds no registered key" \
    '^ERROR: Your keystore does not hold the key registered for alice'

# ---------------------------------------------------------------- reissue
keystore alice alice2
tool reissue alice "$FX/alice3.crt" --compromised
run_pam ps alice "$PASSWORD"
expect "after reissue, the replaced key stops at once" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
keystore alice alice3
run_pam --acct ps alice "$PASSWORD"
expect "after reissue, the reissued key logs in" '^AUTH: PAM_SUCCESS$'

# ---------------------------------------------------------------- revoked
# rose is on the CRL: the tool refuses her, so plant her as an old
# registry would hold her (enrolled before the revocation).
plant rose "$FX/rose.crt"
run_pam --acct ps rose "$PASSWORD"
expect "revoked by CRL: refused at login" '^AUTH: PAM_AUTH_ERR$'
expect "revoked by CRL: account refused" '^ACCT: PAM_PERM_DENIED$'
expect_not "revoked by CRL: no secret asked" '^PROMPT:'

# alice3 revoked now, in a copy of the CA's database; the new CRL is
# dropped in WITHOUT crl-update: logins read it themselves.
cp -r "$FX/ca.d" "$W/cadb"
(cd "$W/cadb" && openssl ca -batch -config "$FX/openssl.cnf" -cert "$FX/ca.crt" \
    -keyfile "$FX/ca.key" -revoke "$FX/alice3.crt" -crl_reason keyCompromise \
    2>/dev/null && openssl ca -batch -config "$FX/openssl.cnf" -cert "$FX/ca.crt" \
    -keyfile "$FX/ca.key" -gencrl -crldays 30 -out "$W/crl/.ca.crl.new" 2>/dev/null)
chmod 644 "$W/crl/.ca.crl.new"
mv "$W/crl/.ca.crl.new" "$W/crl/ca.crl"
run_pam ps alice "$PASSWORD"
expect "a CRL dropped in without crl-update revokes at the next login" '^AUTH: PAM_AUTH_ERR$'
tool crl-update
run_pam ps alice "$PASSWORD"
expect "and after crl-update too" '^AUTH: PAM_AUTH_ERR$'
expect_not "no secret asked for a revoked key" '^PROMPT:'

# ---------------------------------------------------------------- self-renew
# A second registry that allows self-service; "sudo" is SUDO_USER/SUDO_UID
# with the user from nss_wrapper.
REG2=$W/reg2
CONF2=$W/self.conf
printf 'registry = %s\nca_file = %s\nallow_self_renew = yes\n' "$REG2" \
    "$FX/chain.pem" > "$CONF2"
NOSELF=$W/noself.conf
printf 'registry = %s\nca_file = %s\n' "$REG2" "$FX/chain.pem" > "$NOSELF"
chmod 644 "$CONF2" "$NOSELF"
"$ENROLL" --config "$CONF2" -q enroll srenew "$FX/alice.crt"
keystore srenew alice
cp "$FX/alice2.pfx" "$W/home/srenew/new.pfx"
cp "$FX/bob.pfx" "$W/home/srenew/other.pfx"
PWF=$W/home/srenew/pw
printf '%s\n' "$PASSWORD" > "$PWF"
chmod 600 "$PWF" "$W/home/srenew/new.pfx" "$W/home/srenew/other.pfx"
# self_renew CONFIG UID ARGS...: as if "sudo personalsign-enroll self-renew"
self_renew() {
	sr__conf=$1 sr__uid=$2
	shift 2
	OUT=$(SUDO_USER=srenew SUDO_UID=$sr__uid LD_PRELOAD=libnss_wrapper.so \
	    "$ENROLL" --config "$sr__conf" --password-file "$PWF" self-renew "$@" 2>&1) &&
	    OUT="$OUT
AUTH: exit 0" || OUT="$OUT
AUTH: exit $?"
}
if [ "$(id -u)" -eq 0 ]; then
	self_renew "$NOSELF" "$MYUID" "$W/home/srenew/new.pfx"
	expect "self-renew refused unless allow_self_renew" 'allow_self_renew is off'
	self_renew "$CONF2" 4242 "$W/home/srenew/new.pfx"
	expect "self-renew: SUDO_UID must be the user's" 'SUDO_UID does not match srenew'
	self_renew "$CONF2" "$MYUID" "$W/home/srenew/other.pfx"
	expect "self-renew: someone else's keystore is no renewal" \
	    'holds no renewal of your certificate: different person'
	self_renew "$CONF2" "$MYUID" "$W/home/srenew/new.pfx"
	expect "self-renew registers the renewed certificate" '^AUTH: exit 0$'
	expect "self-renew: the old key is superseded" 'superseded, usable until'
	if grep -q "actor=srenew action=enroll user=srenew key=$FP_ALICE2 reason=self-renew: proved possession" \
	    "$REG2/.audit.log"; then ok "self-renew: audited with the user as actor"; else
		not_ok "self-renew: audited with the user as actor"; fi
	{
		echo "auth required $MODULE config=$CONF2"
		echo "account required $MODULE config=$CONF2"
	} > "$W/pam.d/ps-self"
	keystore srenew alice2
	run_pam --acct ps-self srenew "$PASSWORD"
	expect "after self-renew the new key logs in" '^AUTH: PAM_SUCCESS$'
	keystore srenew alice
	run_pam ps-self srenew "$PASSWORD"
	expect "and the old one still does" '^AUTH: PAM_SUCCESS$'
else
	echo "# SKIP: self-renew needs root (it is run through sudo)"
fi

# ---------------------------------------------------------------- auto_renew
# A virtual PIV card holding the registered key (9D) and a renewed one
# (9A): a login with the old key registers the new one.
PIV_SRCDIR=$abs_top_srcdir/tests/piv
if ! (. "$PIV_SRCDIR/lib.sh" && piv_skip_unless_ready) >/dev/null 2>&1; then
	echo "# SKIP: auto_renew with a card (needs root, pcscd, vpcd, python3-cryptography)"
	finish
	exit $?
fi
. "$PIV_SRCDIR/lib.sh"
if [ -x "$abs_top_builddir/tests/piv/pcsc_wait_card" ]; then
	PCSC_WAIT_CARD=$abs_top_builddir/tests/piv/pcsc_wait_card
fi
piv_init pstest-lifecycle
trap 'piv_cleanup; rm -rf "$W"' EXIT
PIN=123456
PS_PAM_PREFIX="env -u PCSCLITE_CSOCK_NAME timeout 30"
base=$(piv_free_ports 1)
piv_start_pcscd "$base"
piv_start_card "$base" --pin "$PIN" --state "$PIV_TMP/state" \
    --slot "9a:$FX/alice2.crt:$FX/alice2.key" --slot "9d:$FX/alice.crt:$FX/alice.key"
if ! piv_wait_card 5000 "PSTest vpcd $base 00 00"; then
	OUT="card not detected"
	not_ok "inserting a card"
	finish || true
	exit 1
fi
REG3=$W/reg3
printf 'registry = %s\nca_file = %s\n' "$REG3" "$FX/chain.pem" > "$W/card.conf"
chmod 644 "$W/card.conf"
"$ENROLL" --config "$W/card.conf" -q enroll cardy "$FX/alice.crt"
{
	echo "auth required $MODULE config=$W/card.conf backend=piv pcsc_socket=$PCSCLITE_CSOCK_NAME card_timeout=0 auto_renew"
	echo "account required $MODULE config=$W/card.conf backend=piv pcsc_socket=$PCSCLITE_CSOCK_NAME auto_renew"
} > "$W/pam.d/ps-card"

run_pam ps-card cardy "$PIN" ""
expect "card login with the registered key" '^AUTH: PAM_SUCCESS$'
expect "auto_renew asks for the PIN once more" '^PROMPT: Your card holds a renewed PersonalSign certificate'
expect_not "an empty answer skips the registration" 'is now registered'
if "$ENROLL" --config "$W/card.conf" list cardy | grep -q "$FP_ALICE2"; then
	not_ok "skipped: nothing registered"; else ok "skipped: nothing registered"; fi

run_pam --acct ps-card cardy "$PIN" "$PIN"
expect "auto_renew: the login succeeds" '^AUTH: PAM_SUCCESS$'
expect "auto_renew: the user is told" '^INFO: PersonalSign: your renewed certificate (valid until 20[0-9-]*) is now registered. The old one stays usable until 20'
LIST=$("$ENROLL" --config "$W/card.conf" list cardy)
if printf '%s\n' "$LIST" | grep -q "^cardy $FP_ALICE2 active" &&
    printf '%s\n' "$LIST" | grep -q "^cardy $FP_ALICE superseded"; then
	ok "auto_renew: new key active, old key superseded"
else
	OUT=$LIST
	not_ok "auto_renew: new key active, old key superseded"
fi
if grep -q "actor=cardy action=enroll user=cardy key=$FP_ALICE2 reason=auto_renew at login (ps-card)" \
    "$REG3/.audit.log"; then ok "auto_renew: audited"; else
	OUT=$(cat "$REG3/.audit.log"); not_ok "auto_renew: audited"; fi

run_pam ps-card cardy "$PIN"
expect "next login: no second PIN prompt" '^AUTH: PAM_SUCCESS$'
expect_not "next login: nothing to register" 'renewed PersonalSign certificate'

# self-renew --from-card: both keys on the same card, the PIN from a file
REG4=$W/reg4
printf 'registry = %s\nca_file = %s\nallow_self_renew = yes\nbackend = piv\npcsc_socket = %s\n' \
    "$REG4" "$FX/chain.pem" "$PCSCLITE_CSOCK_NAME" > "$W/cardself.conf"
chmod 644 "$W/cardself.conf"
"$ENROLL" --config "$W/cardself.conf" -q enroll cardsr "$FX/alice.crt"
printf '%s\n' "$PIN" > "$W/pin"
chmod 600 "$W/pin"
OUT=$(SUDO_USER=cardy SUDO_UID=$MYUID LD_PRELOAD=libnss_wrapper.so timeout 30 \
    "$ENROLL" --config "$W/cardself.conf" --password-file "$W/pin" \
    self-renew --from-card 2>&1) && rc=0 || rc=$?
expect "self-renew --from-card: only the user's own registration" \
    'cardy has no registered key'
OUT=$(SUDO_USER=cardsr SUDO_UID=$MYUID LD_PRELOAD=libnss_wrapper.so timeout 30 \
    "$ENROLL" --config "$W/cardself.conf" --password-file "$W/pin" \
    self-renew --from-card 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 0 ] && "$ENROLL" --config "$W/cardself.conf" list cardsr |
    grep -q "^cardsr $FP_ALICE2 active"; then
	ok "self-renew --from-card registers the card's renewed key"
else
	not_ok "self-renew --from-card registers the card's renewed key (exit $rc)"
fi

finish
