#!/bin/sh
# test-pam-soft.sh - the login path on the embedded defaults, end to end:
# certificates enrolled with personalsign-enroll into a file registry,
# .pfx keystores in the users' homes, and the built module run by the real
# libpam (pam_wrapper supplies a private service directory, nss_wrapper
# the users).
set -eu
. "$abs_top_srcdir/tests/integration/lib.sh"

make_world
for u in alice bob carol erin gina; do add_user "$u"; done
add_user dave		# a user with no registration
add_user mallory	# holds alice's keystore, but ivan's certificate is registered
cp "$PS_FIXTURES/alice.pfx" "$W/home/mallory/.personalsign/keystore.pfx"

enroll alice "$PS_FIXTURES/alice.cer"
enroll bob "$PS_FIXTURES/bob.der"
enroll carol "$PS_FIXTURES/carol.p7b"
# erin's certificate is expired: the tool refuses it, so plant it the way
# an old registry would hold it (enrolled while it was still valid).
plant erin "$PS_FIXTURES/erin.crt"
enroll gina "$PS_FIXTURES/gina.crt"
enroll mallory "$PS_FIXTURES/ivan.crt"
fpb=$(openssl x509 -in "$PS_FIXTURES/bob.crt" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -c1-64)

service ps
service ps-nouserok nouserok
# libpam turns a lone PAM_IGNORE into PAM_PERM_DENIED; to see the module's
# own code, let only an IGNORE fall through to pam_echo.
cat > "$W/pam.d/ps-nouserok" <<EOS
auth [success=done ignore=ignore default=die] $MODULE registry=$REG nouserok
auth optional pam_echo.so module-returned-PAM_IGNORE
auth required pam_permit.so
EOS
service ps-first use_first_pass
service ps-try try_first_pass
{
	echo "auth required /usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so"
	cat "$W/pam.d/ps-first"
} > "$W/pam.d/ps-first.tmp" && mv "$W/pam.d/ps-first.tmp" "$W/pam.d/ps-first"
{
	echo "auth required /usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so"
	cat "$W/pam.d/ps-try"
} > "$W/pam.d/ps-try.tmp" && mv "$W/pam.d/ps-try.tmp" "$W/pam.d/ps-try"
service ps-bad registry=/nonexistent/x frobnicate

# --- the main path
run_pam --acct ps alice "$PASSWORD"
expect "alice (RSA-2048, modern .pfx): right password authenticates" '^AUTH: PAM_SUCCESS$'
expect "alice: asked for the keystore password" '^PROMPT: Password for PersonalSign keystore'
expect "alice: account is fine" '^ACCT: PAM_SUCCESS$'
expect_not "alice: no expiry warning a year ahead" 'expires on'

run_pam ps alice "wrong password"
expect "alice: wrong password is PAM_AUTH_ERR" '^AUTH: PAM_AUTH_ERR$'

run_pam ps alice
expect "alice: no answer at all is a conversation error" '^AUTH: PAM_CONV_ERR$'

run_pam ps bob "$PASSWORD"
expect "bob (EC P-256): authenticates" '^AUTH: PAM_SUCCESS$'
run_pam ps carol "$PASSWORD"
expect "carol (EC P-384, enrolled from .p7b): authenticates" '^AUTH: PAM_SUCCESS$'
cp "$PS_FIXTURES/carol-legacy.pfx" "$W/home/carol/.personalsign/keystore.pfx"
run_pam ps carol "$PASSWORD"
expect "legacy RC2/3DES .pfx keystore: authenticates" '^AUTH: PAM_SUCCESS$'

# --- who is not registered
run_pam ps dave "$PASSWORD"
expect "unregistered user: PAM_USER_UNKNOWN" '^AUTH: PAM_USER_UNKNOWN$'
expect_not "unregistered user: never asked for a secret" '^PROMPT:'
run_pam ps-nouserok dave "$PASSWORD"
expect "unregistered user with nouserok: the module returns PAM_IGNORE" '^INFO: module-returned-PAM_IGNORE$'
run_pam ps-nouserok alice "wrong password"
expect "nouserok does not soften a wrong password" '^AUTH: PAM_AUTH_ERR$'
expect_not "nouserok: a wrong password is not an IGNORE" 'module-returned-PAM_IGNORE'
run_pam ps-nouserok alice "$PASSWORD"
expect "nouserok: a registered user still authenticates" '^AUTH: PAM_SUCCESS$'
expect_not "nouserok: success is not an IGNORE" 'module-returned-PAM_IGNORE'
run_pam ps '../alice' "$PASSWORD"
expect "hostile user name: PAM_USER_UNKNOWN" '^AUTH: PAM_USER_UNKNOWN$'

# --- key mismatch, expiry, renewal
run_pam ps mallory "$PASSWORD"
expect "keystore key is not the registered key: refused" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect "keystore mismatch: user is told" 'does not hold the key registered'
run_pam --acct ps erin "$PASSWORD"
expect "expired registered certificate: auth fails" '^AUTH: PAM_AUTH_ERR$'
expect "expired registered certificate: PAM_ACCT_EXPIRED" '^ACCT: PAM_ACCT_EXPIRED$'
expect "expired: the user is told since when" '^ERROR: Your PersonalSign certificate expired on 2021-01-01\. Please contact'
expect_not "expired: no secret asked" '^PROMPT:'
run_pam --acct ps gina "$PASSWORD"
expect "gina expires in 30 days: authenticates" '^AUTH: PAM_SUCCESS$'
expect "gina: warned about the expiry" '^INFO: Your PersonalSign certificate expires on .* (in 29 days)\|^INFO: Your PersonalSign certificate expires on .* (in 30 days)'
expect "gina: account still fine" '^ACCT: PAM_SUCCESS$'

# --- use_first_pass / try_first_pass (pam_set_items sets PAM_AUTHTOK)
OUT=$(PAM_AUTHTOK="$PASSWORD" pam_exec_driver ps-first alice 2>&1) || true
check_sanitizers use_first_pass
expect "use_first_pass with the right earlier password" '^AUTH: PAM_SUCCESS$'
expect_not "use_first_pass never prompts" '^PROMPT:'
OUT=$(PAM_AUTHTOK="nope" pam_exec_driver ps-first alice "$PASSWORD" 2>&1) || true
expect "use_first_pass with a wrong earlier password fails" '^AUTH: PAM_AUTH_ERR$'
OUT=$(PAM_AUTHTOK="nope" pam_exec_driver ps-try alice "$PASSWORD" 2>&1) || true
expect "try_first_pass falls back to one prompt" '^AUTH: PAM_SUCCESS$'
expect "try_first_pass: prompted once" '^PROMPT: Password for PersonalSign keystore'

# --- remote sessions never use a token on this machine by default
run_pam --rhost 192.0.2.7 ps alice "$PASSWORD"
expect "remote session: local keystore not used" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect_not "remote session: no password asked" '^PROMPT:'

# --- broken setups fail closed
run_pam ps-bad alice "$PASSWORD"
expect "unknown module option: PAM_SERVICE_ERR" '^AUTH: PAM_SERVICE_ERR$'
cat > "$W/pam.d/ps-noreg" <<EOS
auth [success=done ignore=ignore default=die] $MODULE registry=$W/no-such-registry nouserok
auth optional pam_echo.so module-returned-PAM_IGNORE
auth required pam_permit.so
EOS
run_pam ps-noreg alice "$PASSWORD"
expect "missing registry (typo in registry=): PAM_AUTHINFO_UNAVAIL" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect_not "missing registry: never an IGNORE, even with nouserok" 'module-returned-PAM_IGNORE'

cp "$PS_FIXTURES/truncated.pfx" "$W/home/bob/.personalsign/keystore.pfx"
run_pam ps bob "$PASSWORD"
expect "truncated keystore: refused" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
cp "$PS_FIXTURES/garbage.bin" "$W/home/bob/.personalsign/keystore.pfx"
run_pam ps bob "$PASSWORD"
expect "garbage keystore: refused" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
rm "$W/home/bob/.personalsign/keystore.pfx"
run_pam ps bob "$PASSWORD"
expect "missing keystore: PAM_AUTHINFO_UNAVAIL" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
expect "missing keystore: user told where it was looked for" 'No PersonalSign keystore at'
ln -s "$PS_FIXTURES/bob.pfx" "$W/home/bob/.personalsign/keystore.pfx"
run_pam ps bob "$PASSWORD"
expect "symlinked keystore: refused" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
rm "$W/home/bob/.personalsign/keystore.pfx"
cp "$PS_FIXTURES/bob.pfx" "$W/home/bob/.personalsign/keystore.pfx"
chmod 666 "$W/home/bob/.personalsign/keystore.pfx"
run_pam ps bob "$PASSWORD"
expect "world-writable keystore: refused" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
chmod 600 "$W/home/bob/.personalsign/keystore.pfx"

# A malformed registry entry is skipped, the user's other entries still work
printf 'not a certificate\n' > "$REG/bob/$(printf '%064d' 0).pem"
run_pam ps bob "$PASSWORD"
expect "malformed registry entry beside a good one: still authenticates" '^AUTH: PAM_SUCCESS$'
rm "$REG/bob/$(printf '%064d' 0).pem"
# A registry entry whose name does not match its key (tampering)
mv "$REG/bob/$fpb.pem" "$REG/bob/$(printf '%064d' 1).pem"
run_pam ps bob "$PASSWORD"
expect "registry entry renamed to another fingerprint: refused" '^AUTH: PAM_USER_UNKNOWN$'
mv "$REG/bob/$(printf '%064d' 1).pem" "$REG/bob/$fpb.pem"

chmod 777 "$REG"
run_pam ps alice "$PASSWORD"
expect "world-writable registry: refused" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
chmod 755 "$REG"

# --- exact return code of every entry point, through pam_start_confdir
OUT=$(LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_DISABLE_DEEPBIND=1 "$abs_top_builddir/tests/integration/pam_retval" "$MODULE" "$REG" "$PASSWORD" 2>&1) || true
printf '%s\n' "$OUT" | sed 's/^/    # /'
expect "pam_retval: every entry point returns the exact expected code" '^[1-9][0-9]* passed, 0 failed$'

# --- the key is read with the user's privileges, not root's
if [ "$(id -u)" -eq 0 ]; then
	add_user zoe 4242
	cp "$PS_FIXTURES/bob.pfx" "$W/home/zoe/.personalsign/keystore.pfx"
	chown 4242 "$W/home/zoe/.personalsign/keystore.pfx"
	"$ENROLL" --registry "$REG" -q remove bob "$fpb" >/dev/null
	enroll zoe "$PS_FIXTURES/bob.crt"
	run_pam ps zoe "$PASSWORD"
	expect "root: keystore owned by uid 4242 read as that user" '^AUTH: PAM_SUCCESS$'
	chown 0 "$W/home/zoe/.personalsign/keystore.pfx"
	chmod 600 "$W/home/zoe/.personalsign/keystore.pfx"
	run_pam ps zoe "$PASSWORD"
	expect "root: a keystore only root can read is not read for uid 4242" '^AUTH: PAM_AUTHINFO_UNAVAIL$'
else
	echo "# skipping the privilege-drop cases: not root"
fi

finish
