#!/bin/sh
# test-enroll.sh - integration test of personalsign-enroll against a
# temporary file registry: every command and option, the formats cert.c
# loads, and bad input, which must exit 1 (2 for usage) with exactly one
# "personalsign-enroll: ..." line on stderr and leave the registry
# byte-identical. Then the certificate lifecycle: policy refusals with
# their reasons (expired, not yet valid, revoked by CRL, untrusted issuer,
# imposter, wrong usage), crl-update, renew / reissue / retire / history /
# expiring, parallel writers, and writers killed with SIGKILL mid-write.
#
# Run by automake with abs_top_builddir and PS_FIXTURES (made by
# tests/fixtures/mkpki.sh) in the environment. Prints "N passed, N failed".
set -u

: "${abs_top_builddir:?abs_top_builddir is not set}"
: "${PS_FIXTURES:?PS_FIXTURES is not set}"
TOOL=$abs_top_builddir/personalsign-enroll
F=$PS_FIXTURES
PASSED=0
FAILED=0

if [ ! -x "$TOOL" ]; then
	echo "test-enroll: $TOOL not built" >&2
	exit 99
fi

# The registry refuses world-writable parents such as /tmp, so work in the
# first candidate that the tool itself accepts.
probe_trusted() {
	d=$(mktemp -d "$1/test-enroll.XXXXXX" 2>/dev/null) || return 1
	chmod 755 "$d"
	: > "$d/empty.conf"
	chmod 644 "$d/empty.conf"
	if "$TOOL" --config "$d/empty.conf" --registry "$d" list \
	    >/dev/null 2>&1; then
		WORK=$d
		return 0
	fi
	rm -rf "$d"
	return 1
}
WORK=
for cand in "${PS_TEST_TRUSTED_DIR:-}" "$abs_top_builddir" "${HOME:-}"; do
	[ -n "$cand" ] && [ -d "$cand" ] && probe_trusted "$cand" && break
done
if [ -z "$WORK" ]; then
	echo "test-enroll: no trusted scratch directory (set PS_TEST_TRUSTED_DIR)" >&2
	exit 99
fi
trap 'rm -rf "$WORK"' EXIT INT TERM

REG=$WORK/reg
OUT=$WORK/out
ERR=$WORK/err
CONF=$WORK/empty.conf
PWFILE=$WORK/password
printf '%s\n' 'correct horse 42' > "$PWFILE"
WRONGPW=$WORK/wrong-password
printf 'not the password\n' > "$WRONGPW"

ok() {
	PASSED=$((PASSED + 1))
	echo "ok - $1"
}

not_ok() {
	FAILED=$((FAILED + 1))
	echo "not ok - $1"
	if [ -s "$OUT" ]; then sed 's/^/#   stdout: /' "$OUT"; fi
	if [ -s "$ERR" ]; then sed 's/^/#   stderr: /' "$ERR"; fi
}

# run ARGS...: the tool with an empty configuration and the test registry
run() {
	"$TOOL" --config "$CONF" --registry "$REG" "$@" >"$OUT" 2>"$ERR"
	RC=$?
}

# Every file and directory of the registry: name, mode, content hash.
tree_hash() {
	[ -d "$REG" ] || { echo absent; return; }
	(cd "$REG" && find . -print | LC_ALL=C sort | while IFS= read -r f; do
		if [ -f "$f" ]; then
			printf '%s %s %s\n' "$f" "$(stat -c %a "$f")" \
			    "$(sha256sum < "$f")"
		else
			printf '%s %s\n' "$f" "$(stat -c %a "$f")"
		fi
	done) | sha256sum
}

fingerprint() {
	openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER |
	    sha256sum | cut -d' ' -f1
}

# expect_ok NAME GREP-PATTERN ARGS...: exit 0, stdout matches, stderr empty
expect_ok() {
	name=$1 pattern=$2
	shift 2
	run "$@"
	if [ "$RC" -eq 0 ] && [ ! -s "$ERR" ] &&
	    { [ -z "$pattern" ] || grep -q -- "$pattern" "$OUT"; }; then
		ok "$name"
	else
		not_ok "$name (exit $RC)"
	fi
}

# expect_fail NAME CODE STDERR-PATTERN ARGS...: exit CODE, exactly one
# "personalsign-enroll: " line on stderr matching, nothing on stdout,
# and the registry unchanged.
expect_fail() {
	name=$1 code=$2 pattern=$3
	shift 3
	before=$(tree_hash)
	run "$@"
	after=$(tree_hash)
	lines=$(wc -l < "$ERR")
	if [ "$RC" -eq "$code" ] && [ "$lines" -eq 1 ] && [ ! -s "$OUT" ] &&
	    grep -q '^personalsign-enroll: ' "$ERR" &&
	    grep -q -- "$pattern" "$ERR" && [ "$before" = "$after" ]; then
		ok "$name"
	else
		[ "$before" = "$after" ] || echo "#   registry changed"
		not_ok "$name (exit $RC, $lines stderr lines)"
	fi
}

check() {
	if eval "$2"; then ok "$1"; else not_ok "$1"; fi
}

FP_ALICE=$(fingerprint "$F/alice.crt")
FP_ALICE2=$(fingerprint "$F/alice2.crt")
FP_BOB=$(fingerprint "$F/bob.crt")
FP_CAROL=$(fingerprint "$F/carol.crt")
FP_GINA=$(fingerprint "$F/gina.crt")

# ---------------------------------------------------------------- usage
expect_ok "--help" "enroll USER FILE" --help
expect_ok "--version" "^personalsign-enroll [0-9]" --version
expect_fail "no command" 2 "no command" 
expect_fail "unknown command" 2 'unknown command "frobnicate"' frobnicate
expect_fail "enroll without file" 2 "missing FILE" enroll alice
expect_fail "enroll without anything" 2 "missing arguments" enroll
expect_fail "show without user" 2 "missing arguments" show
expect_fail "remove without fingerprint" 2 "missing arguments" remove alice
expect_fail "too many arguments" 2 "too many arguments" show alice bob
expect_fail "list too many" 2 "too many arguments" list a b
expect_fail "unknown long option" 2 "unknown option --frob" --frob list
expect_fail "unknown short option" 2 "unknown option -z" -z list
expect_fail "option without argument" 2 "needs an argument" list --password-file
check "usage errors created no registry" '[ ! -e "$REG" ]'

# ---------------------------------------------------------------- enroll
expect_ok "enroll .cer (PEM with CRLF)" "$FP_ALICE" enroll alice "$F/alice.cer"
check "enroll prints the e-mail" 'grep -q "email *alice@example.test" "$OUT"'
check "enroll prints the expiry" 'grep -q "not after *20[0-9][0-9]-" "$OUT"'
check "entry file named by the key" '[ -f "$REG/alice/$FP_ALICE.pem" ]'
check "entry file mode 0644" '[ "$(stat -c %a "$REG/alice/$FP_ALICE.pem")" = 644 ]'
check "user directory mode 0755" '[ "$(stat -c %a "$REG/alice")" = 755 ]'
check "root directory mode 0755" '[ "$(stat -c %a "$REG")" = 755 ]'
check "index names the owner" '[ "$(cat "$REG/.by-key/$FP_ALICE")" = alice ]'
check "entry starts with its state" '[ "$(head -n 1 "$REG/alice/$FP_ALICE.pem")" = "State: active" ]'
check "entry is a valid PEM certificate" \
    'openssl x509 -in "$REG/alice/$FP_ALICE.pem" -noout 2>/dev/null'
expect_ok "enroll .der" "$FP_BOB" enroll bob "$F/bob.der"
expect_ok "enroll .p7b" "$FP_CAROL" enroll carol "$F/carol.p7b"
expect_ok "enroll .pfx with --password-file" "$FP_GINA" \
    --password-file "$PWFILE" enroll gina "$F/gina.pfx"
expect_ok "enroll legacy .pfx (renewed key for alice)" "$FP_ALICE2" \
    --password-file "$PWFILE" --reason "renewal ticket 42" \
    enroll alice "$F/alice2-legacy.pfx"
check "audit log has one line per enrolment" '[ "$(wc -l < "$REG/.audit.log")" -eq 5 ]'
check "audit log records the reason" \
    'grep -q "action=enroll user=alice key=$FP_ALICE2 reason=renewal ticket 42\$" "$REG/.audit.log"'

expect_ok "remove" "removed key $FP_CAROL of carol" remove carol "$FP_CAROL"
check "remove audited" \
    'grep -q "action=remove user=carol key=$FP_CAROL" "$REG/.audit.log"'
expect_fail "p7b.der of a registered key is refused" 1 \
    "already registered to user alice" enroll dora "$F/alice.p7b.der"

# the sudo user behind root is the actor
if [ "$(id -u)" -eq 0 ]; then
	SUDO_USER=someadmin "$TOOL" --config "$CONF" --registry "$REG" -q \
	    enroll dora "$F/carol.crt" >"$OUT" 2>"$ERR"
	RC=$?
	check "actor is SUDO_USER when run by root" \
	    '[ "$RC" -eq 0 ] && grep -q "actor=someadmin action=enroll user=dora" "$REG/.audit.log"'
else
	ME=$(id -un)
	SUDO_USER=someadmin "$TOOL" --config "$CONF" --registry "$REG" -q \
	    enroll dora "$F/carol.crt" >"$OUT" 2>"$ERR"
	RC=$?
	check "SUDO_USER ignored when not root" \
	    '[ "$RC" -eq 0 ] && grep -q "actor=$ME action=enroll user=dora" "$REG/.audit.log"'
fi
check "-q prints nothing" '[ ! -s "$OUT" ] && [ ! -s "$ERR" ]'

# ---------------------------------------------------------------- list/show
expect_ok "list" "^alice $FP_ALICE active alice@example.test 20" list
check "list has one line per key" '[ "$(wc -l < "$OUT")" -eq 5 ]'
check "list is sorted by user" \
    '[ "$(cut -d" " -f1 "$OUT" | tr "\n" " ")" = "alice alice bob dora gina " ]'
expect_ok "list USER" "^alice $FP_ALICE2 active" list alice
check "list USER shows only that user" '[ "$(wc -l < "$OUT")" -eq 2 ] && ! grep -q "^bob" "$OUT"'
expect_ok "show USER" "key *RSA 2048 bits" show alice
check "show has the issuer" 'grep -q "issuer *O=PSTest,CN=PSTest Root CA" "$OUT"'
check "show has both keys" 'grep -q "^$FP_ALICE\$" "$OUT" && grep -q "^$FP_ALICE2\$" "$OUT"'
expect_ok "show EC key" "key *EC prime256v1" show bob
expect_fail "show unknown user" 1 "user nobody has no usable registered key" show nobody
expect_fail "list unknown user" 1 "has no usable registered key" list nobody

# ---------------------------------------------------------------- bad input
expect_fail "garbage file" 1 "not a certificate" enroll eve "$F/garbage.bin"
expect_fail "empty file" 1 "empty file" enroll eve "$F/empty.cer"
expect_fail "truncated pfx" 1 "truncated" enroll eve "$F/truncated.pfx"
expect_fail "private key instead of a certificate" 1 \
    "contains a private key, not a certificate" enroll eve "$F/alice.key"
expect_fail "encrypted private key" 1 "private key" enroll eve "$F/alice.key.enc.pem"
expect_fail "missing file" 1 "no such file" enroll eve "$WORK/nope.cer"
expect_fail "directory instead of a file" 1 "not a regular file" enroll eve "$F"
head -c 700 "$F/alice.der" > "$WORK/half.der"
expect_fail "truncated DER" 1 "truncated" enroll eve "$WORK/half.der"
head -n 8 "$F/bob.crt" > "$WORK/half.pem"
expect_fail "truncated PEM" 1 "" enroll eve "$WORK/half.pem"
expect_fail "CA certificate" 1 "CA certificate, not a personal one" enroll eve "$F/ca.crt"
expect_fail "expired certificate" 1 "certificate refused: expired on 2021-01-01" \
    enroll erin "$F/erin.crt"
expect_fail "not yet valid certificate" 1 "not valid before 2099" \
    enroll frank "$F/frank.crt"
expect_fail "serverAuth-only certificate" 1 "wrong key usage" \
    enroll henry "$F/henry.crt"
expect_fail "key registered to someone else" 1 \
    "already registered to user alice" enroll mallory "$F/alice.der"
expect_fail "same key again for the same user" 1 \
    "already registered to user alice" enroll alice "$F/alice.pfx" \
    --password-file "$PWFILE"
expect_fail "wrong keystore password" 1 "wrong password" \
    --password-file "$WRONGPW" enroll eve "$F/carol.pfx"
expect_fail "missing password file" 1 "no such password file" \
    --password-file "$WORK/nopw" enroll eve "$F/carol.pfx"
if command -v setsid >/dev/null 2>&1; then
	# no controlling terminal: nothing to prompt on
	before=$(tree_hash)
	setsid "$TOOL" --config "$CONF" --registry "$REG" enroll eve \
	    "$F/carol.pfx" </dev/null >"$OUT" 2>"$ERR"
	RC=$?
	check "pfx without password and without a terminal" \
	    '[ "$RC" -eq 1 ] && [ "$(wc -l < "$ERR")" -eq 1 ] && grep -q "password-protected keystore: give --password-file" "$ERR" && [ "$before" = "$(tree_hash)" ]'
fi

# hostile user names never reach a path
for name in '../x' '.x' 'a/b' '..' '/etc' 'al ice' "$(printf 'a\nb')" \
    "$(printf 'x\033[31m')" 'x$y' "$(printf '%0300d' 0)"; do
	label=$(printf '%s' "$name" | tr -c 'A-Za-z0-9./$ -' '?' | cut -c1-24)
	expect_fail "user name refused: $label" \
	    1 "invalid user name" enroll "$name" "$F/bob.crt"
done
expect_fail "empty user name" 1 "invalid user name" enroll "" "$F/bob.crt"
expect_fail "option-like user name after --" 1 "invalid user name" \
    enroll -- -x "$F/bob.crt"
expect_fail "newline name is not echoed raw" 1 'invalid user name "a?b"' \
    enroll "$(printf 'a\nb')" "$F/bob.crt"
expect_fail "show hostile name" 1 "invalid user name" show ../x
expect_fail "list hostile name" 1 "invalid user name" list a/b
expect_fail "remove hostile name" 1 "invalid user name" remove ../alice "$FP_ALICE"
check "nothing was created outside the registry" '[ ! -e "$WORK/x" ] && [ ! -e "$WORK/alice" ]'

# ---------------------------------------------------------------- remove
expect_fail "remove: not a fingerprint" 1 "not a key fingerprint" remove alice xyz
expect_fail "remove: path as fingerprint" 1 "not a key fingerprint" \
    remove alice "../../../../../../../../../../../../../../../../etc/passwd"
expect_fail "remove: someone else's key" 1 "indexed to user bob" \
    remove alice "$FP_BOB"
NOKEY=$(printf '%064d' 0)
expect_fail "remove: unknown key" 1 "user alice has no key" \
    remove alice "$NOKEY"
UPPER=$(printf '%s' "$FP_ALICE" | tr a-f A-F)
expect_ok "remove (upper-case fingerprint)" "removed key $FP_ALICE of alice" \
    remove alice "$UPPER"
check "entry file gone" '[ ! -e "$REG/alice/$FP_ALICE.pem" ]'
check "index entry gone" '[ ! -e "$REG/.by-key/$FP_ALICE" ]'
check "remove audited" 'grep -q "action=remove user=alice key=$FP_ALICE" "$REG/.audit.log"'
expect_ok "alice keeps her other key" "^alice $FP_ALICE2" list alice
check "list alice has one line" '[ "$(wc -l < "$OUT")" -eq 1 ]'
expect_ok "removed key may be enrolled again" "$FP_ALICE" enroll alice "$F/alice.crt"
expect_fail "remove in a missing registry" 1 "does not exist" \
    --registry "$WORK/none" remove alice "$FP_ALICE"
check "missing registry was not created" '[ ! -e "$WORK/none" ]'

# ---------------------------------------------------------------- config
cat > "$WORK/ca.conf" <<EOF
registry = $WORK/reg2
ca_file = $F/ca.crt
EOF
chmod 644 "$WORK/ca.conf"
"$TOOL" --config "$WORK/ca.conf" -q enroll bob "$F/bob.crt" >"$OUT" 2>"$ERR"
check "registry from the configuration" '[ -f "$WORK/reg2/bob/$FP_BOB.pem" ] && [ ! -s "$ERR" ]'
before=$(cd "$WORK" && find reg2 -type f | LC_ALL=C sort | xargs sha256sum)
"$TOOL" --config "$WORK/ca.conf" enroll imp "$F/imposter-alice.crt" >"$OUT" 2>"$ERR"
RC=$?
check "certificate from an untrusted CA refused" \
    '[ "$RC" -eq 1 ] && [ "$(wc -l < "$ERR")" -eq 1 ] && grep -q "issuer not trusted" "$ERR" && [ "$before" = "$(cd "$WORK" && find reg2 -type f | LC_ALL=C sort | xargs sha256sum)" ]'
"$TOOL" --config "$WORK/nope.conf" list >"$OUT" 2>"$ERR"
RC=$?
check "missing --config" '[ "$RC" -eq 1 ] && grep -q "configuration file not found" "$ERR"'
printf 'no_such_option = 1\n' > "$WORK/bad.conf"
chmod 644 "$WORK/bad.conf"
"$TOOL" --config "$WORK/bad.conf" list >"$OUT" 2>"$ERR"
RC=$?
check "bad configuration" '[ "$RC" -eq 1 ] && [ "$(wc -l < "$ERR")" -eq 1 ] && grep -q "no_such_option" "$ERR"'

# ---------------------------------------------------------------- trust
mkdir "$WORK/open"
chmod 777 "$WORK/open"
"$TOOL" --config "$CONF" --registry "$WORK/open" enroll bob "$F/bob.crt" >"$OUT" 2>"$ERR"
RC=$?
check "world-writable registry refused for enroll" \
    '[ "$RC" -eq 1 ] && grep -q "writable by group or others" "$ERR" && [ -z "$(ls -A "$WORK/open")" ]'
"$TOOL" --config "$CONF" --registry "$WORK/open" list >"$OUT" 2>"$ERR"
RC=$?
check "world-writable registry refused for list" \
    '[ "$RC" -eq 1 ] && grep -q "writable by group or others" "$ERR"'
chmod 775 "$REG/bob"
expect_fail "group-writable user directory refused" 1 "writable by group or others" show bob
chmod 755 "$REG/bob"

# a tampered entry is skipped with a warning, the good one still works
cp "$REG/alice/$FP_ALICE.pem" "$REG/alice/$FP_GINA.pem"
run list alice
check "tampered entry skipped with a warning" \
    '[ "$RC" -eq 0 ] && [ "$(wc -l < "$OUT")" -eq 2 ] && grep -q "warning: .*does not match the file name" "$ERR"'
rm -f "$REG/alice/$FP_GINA.pem"

check "no temporary files left behind" \
    '[ -z "$(find "$REG" "$WORK/reg2" -name "*.tmp.*")" ]'

# ================================================================ lifecycle
# A registry with a policy: the fixture root and intermediate, crl_dir.
L=$WORK/life
mkdir -m 755 "$L" "$L/crl"
cp "$F/ca.crl" "$F/int-ca.crl.der" "$L/crl/"
chmod 644 "$L/crl/"*
printf 'registry = %s\nca_file = %s\ncrl_dir = %s\ncrl = require\nexpiry_warn_days = 60\n' \
    "$L/reg" "$F/chain.p7b" "$L/crl" > "$L/policy.conf"
chmod 644 "$L/policy.conf"
CONF=$L/policy.conf
REG=$L/reg
FP_ALICE3=$(fingerprint "$F/alice3.crt")
FP_DAVE=$(fingerprint "$F/dave.crt")
NOKEY=$(printf '%064d' 0)

# ---------------------------------------------------------------- crl-update
expect_fail "crl-update without crl_dir" 1 "no crl_dir" --config "$WORK/empty.conf" crl-update
expect_ok "crl-update indexes both CRLs" \
    "2 CRL file(s) in $L/crl: 2 indexed (2 revoked serials), 0 older, 0 not usable" crl-update
check "index and manifest written" \
    '[ -f "$L/crl/.index/MANIFEST" ] && [ "$(ls "$L/crl/.index" | grep -c "^[0-9a-f]\{8\}\.[0-9]*$")" -eq 2 ]'
expect_ok "crl-update again (idempotent)" "2 indexed" crl-update
cp "$F/imposter-ca.crl" "$L/crl/"
chmod 644 "$L/crl/imposter-ca.crl"
run crl-update
check "crl-update reports an unusable CRL and still indexes the rest" \
    '[ "$RC" -eq 1 ] && grep -q "imposter-ca.crl: not usable: issuer is not among the trust anchors" "$ERR" && grep -q "2 indexed" "$OUT" && tail -n 1 "$ERR" | grep -q "1 file(s) in .* are not usable CRLs"'
rm -f "$L/crl/imposter-ca.crl"
expect_ok "crl-update after removing it" "0 not usable" crl-update

# ---------------------------------------------------------------- why refused
expect_fail "revoked certificate refused (CRL)" 1 \
    "certificate refused: revoked on 20[0-9-]* (keyCompromise)" enroll rose "$F/rose.crt"
expect_fail "revoked under an intermediate (DER CRL)" 1 \
    "certificate refused: revoked on 20" enroll ted "$F/ted.crt"
expect_fail "expired" 1 "certificate refused: expired on 2021-01-01" enroll erin "$F/erin.crt"
expect_fail "not yet valid" 1 "certificate refused: not valid before 2099-01-01" \
    enroll frank "$F/frank.crt"
expect_fail "untrusted issuer" 1 "certificate refused: issuer not trusted" \
    enroll mallory "$F/imposter-alice.crt"
expect_fail "wrong EKU" 1 \
    "certificate refused: wrong key usage: extended key usage lacks clientAuth or emailProtection" \
    enroll henry "$F/henry.crt"
expect_ok "valid under the intermediate (chain.p7b)" "$FP_DAVE" enroll dave "$F/dave.crt"
expect_ok "enroll alice under the policy" "$FP_ALICE" enroll alice "$F/alice.crt"
# a stale CRL under crl=require
mkdir -m 755 "$L/stale"
cp "$F/ca-stale.crl" "$F/int-ca.crl.der" "$L/stale/"
chmod 644 "$L/stale/"*
sed "s|^crl_dir = .*|crl_dir = $L/stale|" "$L/policy.conf" > "$L/stale.conf"
chmod 644 "$L/stale.conf"
expect_ok "crl-update of a stale CRL" "2 indexed" --config "$L/stale.conf" crl-update
expect_fail "stale CRL refuses under crl=require" 1 \
    "certificate refused: CRL for O=PSTest,CN=PSTest Root CA is stale since 2020-02-01" \
    --config "$L/stale.conf" enroll bob "$F/bob.crt"

# ---------------------------------------------------------------- renew
expect_fail "renew: different person" 1 \
    "cannot renew alice: different person: the new certificate names bob@example.test, the registered one alice@example.test" \
    renew alice "$F/bob.crt"
expect_fail "renew: imposter with alice's e-mail from another CA" 1 \
    "cannot renew alice: issuer not trusted" renew alice "$F/imposter-alice.crt"
expect_fail "renew: same key" 1 "cannot renew alice: same key" renew alice "$F/alice-samekey.crt"
expect_fail "renew: user without keys" 1 "nobody has no registered key (use enroll)" \
    renew nobody "$F/alice2.crt"
expect_fail "renew: unknown --old" 1 "no usable registered key" \
    renew alice "$F/alice2.crt" --old "$NOKEY"
expect_fail "renew: --old not a fingerprint" 1 "not a key fingerprint" \
    renew alice "$F/alice2.crt" --old xyz
expect_fail "renew: --compromised is reissue's" 2 "option --compromised does not go with renew" \
    renew alice "$F/alice2.crt" --compromised
expect_ok "renew alice (alice2: same e-mail, later expiry)" "superseded, usable until" \
    --reason "ticket 42" renew alice "$F/alice2.crt"
check "renew printed the new key" 'grep -q "new key *$FP_ALICE2" "$OUT"'
expect_ok "old key superseded, still listed" "^alice $FP_ALICE superseded" list alice
check "new key active" 'grep -q "^alice $FP_ALICE2 active" "$OUT"'
check "entry says who superseded it" 'grep -q "^Superseded-By: $FP_ALICE2" "$REG/alice/$FP_ALICE.pem"'
check "audit: enroll + supersede with the reason" \
    'grep -q "action=enroll user=alice key=$FP_ALICE2 reason=renewal: ticket 42" "$REG/.audit.log" && grep -q "action=supersede user=alice key=$FP_ALICE reason=renewal: ticket 42" "$REG/.audit.log"'
expect_fail "renew: older certificate (alice3 ends before alice2)" 1 \
    "cannot renew alice: not newer" renew alice "$F/alice3.crt"
expect_fail "renew with the registered certificate again" 1 "same key" \
    renew alice "$F/alice2.crt"

# ---------------------------------------------------------------- reissue
expect_ok "reissue --compromised retires the old key at once" "retired now" \
    reissue alice "$F/alice3.crt" --compromised --reason "laptop stolen"
check "old key in retired/ with the reason" \
    '[ -f "$REG/alice/retired/$FP_ALICE2.pem" ] && [ ! -e "$REG/alice/$FP_ALICE2.pem" ] && grep -q "^Reason: reissue after key compromise: laptop stolen" "$REG/alice/retired/$FP_ALICE2.pem"'
expect_ok "list after reissue" "^alice $FP_ALICE3 active" list alice
check "retired key not listed" '! grep -q "$FP_ALICE2" "$OUT"'
expect_fail "a retired key cannot come back" 1 "already registered to user alice (retired)" \
    enroll alice "$F/alice2.crt"

# ---------------------------------------------------------------- retire
expect_fail "retire without --reason" 2 "retire needs --reason" retire alice "$FP_ALICE"
expect_fail "retire: someone else's key" 1 "has no key" --reason x retire bob "$FP_ALICE"
expect_ok "retire the superseded key" "retired key $FP_ALICE of alice" \
    --reason "left on the old laptop" retire alice "$FP_ALICE"
expect_fail "retire twice" 1 "is retired" --reason again retire alice "$FP_ALICE"

# ---------------------------------------------------------------- history
expect_ok "history alice" "^TIME (UTC) " history alice
short() { printf '%s' "$1" | cut -c1-8; }
WANT_HIST="enroll:$(short "$FP_ALICE") enroll:$(short "$FP_ALICE2") supersede:$(short "$FP_ALICE") enroll:$(short "$FP_ALICE3") retire:$(short "$FP_ALICE2") retire:$(short "$FP_ALICE") "
check "history: every change, in order" \
    '[ "$(awk "NR > 1 { print \$3 \":\" substr(\$4, 1, 8) }" "$OUT" | tr "\n" " ")" = "$WANT_HIST" ]'
check "history shows actor and reasons" \
    'grep -q "left on the old laptop" "$OUT" && grep -q "reissue after key compromise: laptop stolen" "$OUT" && [ "$(awk "NR > 1 { print \$5 }" "$OUT" | sort -u | wc -l)" -eq 1 ]'
expect_fail "history of nobody" 1 "no recorded change for nobody" history nobody
expect_fail "history: hostile name" 1 "invalid user name" history ../x

# ---------------------------------------------------------------- expiring
expect_ok "enroll gina (30 days left)" "" -q enroll gina "$F/gina.crt"
expect_ok "enroll carol" "" -q enroll carol "$F/carol.crt"
expect_ok "expiring (expiry_warn_days = 60)" "gina@example.test" expiring
check "expiring: only gina within 60 days" \
    '[ "$(wc -l < "$OUT")" -eq 2 ] && sed -n 2p "$OUT" | grep -q "^20[0-9-]* *[23][0-9]  gina "'
expect_ok "expiring --days 400, tsv" "" expiring --days 400 --format tsv
check "tsv: header, then soonest first" \
    '[ "$(head -n 1 "$OUT")" = "$(printf "expires\tdays\tuser\temail\tfingerprint")" ] && [ "$(cut -f3 "$OUT" | sed -n 2p)" = gina ] && [ "$(wc -l < "$OUT")" -eq 5 ]'
check "tsv: dates ascending" '[ "$(cut -f1 "$OUT" | sed 1d)" = "$(cut -f1 "$OUT" | sed 1d | sort)" ]'
expect_ok "expiring --format json" "" expiring --days 400 --format json
check "json parses, soonest first" \
    'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[0][\"user\"]==\"gina\" and len(d)==4 and all(d[i][\"not_after\"]<=d[i+1][\"not_after\"] for i in range(len(d)-1))" "$OUT"'
expect_ok "expiring --days 0: nothing" "" expiring --days 0 --format json
check "empty json array" '[ "$(cat "$OUT")" = "[]" ]'
expect_fail "expiring --days x" 2 "is not a number of days" expiring --days x
expect_fail "expiring --format xml" 2 "is not table, tsv or json" expiring --format xml
expect_fail "--days with list" 2 "option --days does not go with list" list --days 3

# ---------------------------------------------------------------- self-renew
expect_fail "self-renew without sudo" 1 \
    "registers the renewed certificate of the user who runs it through sudo" \
    self-renew "$F/alice2.pfx"

# ---------------------------------------------------------------- concurrency
# Certificates of throwaway keys under the fixture CA, for many writers.
G=$WORK/gen
mkdir -m 755 "$G"
gen_cert() { # N
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$G/u$1.key" -subj "/CN=u$1/emailAddress=u$1@example.test" \
	    -out "$G/u$1.csr" 2>/dev/null &&
	openssl x509 -req -in "$G/u$1.csr" -CA "$F/ca.crt" -CAkey "$F/ca.key" \
	    -set_serial "$((7000 + $1))" -days 30 -out "$G/u$1.crt" 2>/dev/null
}
i=0
while [ $i -lt 24 ]; do gen_cert $i || break; i=$((i + 1)); done
check "generated 24 certificates" '[ -f "$G/u23.crt" ]'
CONF=$WORK/empty.conf
REG=$WORK/par
pids=
i=0
while [ $i -lt 16 ]; do
	"$TOOL" --config "$CONF" --registry "$REG" -q enroll "u$i" "$G/u$i.crt" \
	    >"$G/par.$i.out" 2>&1 &
	pids="$pids $!"
	i=$((i + 1))
done
prc=0
for p in $pids; do wait "$p" || prc=1; done
check "16 parallel enrolls all succeeded" '[ "$prc" -eq 0 ]'
run list
check "parallel enrolls lose nothing" \
    '[ "$RC" -eq 0 ] && [ "$(wc -l < "$OUT")" -eq 16 ] && [ "$(wc -l < "$REG/.audit.log")" -eq 16 ]'
check "every parallel enroll is in the audit log once" \
    '[ "$(sed "s/.* user=\(u[0-9]*\) .*/\1/" "$REG/.audit.log" | sort -u | wc -l)" -eq 16 ]'

# Writers killed with SIGKILL at random moments: afterwards every entry
# parses, lookups see old or new, and once the next writer has settled
# the interrupted change, keys on disk and the audit log agree.
REG=$WORK/crash
i=16
while [ $i -lt 24 ]; do fingerprint "$G/u$i.crt" > "$G/u$i.fp"; i=$((i + 1)); done
churn() {
	n=0
	while :; do
		k=$((n % 8 + 16))
		fp=$(cat "$G/u$k.fp")
		"$TOOL" --config "$CONF" --registry "$REG" -q enroll "c$k" "$G/u$k.crt"
		"$TOOL" --config "$CONF" --registry "$REG" -q --reason churn retire "c$k" "$fp"
		"$TOOL" --config "$CONF" --registry "$REG" -q remove "c$k" "$fp"
		n=$((n + 1))
	done >/dev/null 2>&1
}
crash_ok=0
crash_bad=0
interrupted=0
round=0
while [ $round -lt 30 ]; do
	churn &
	cpid=$!
	sleep "0.$(( (round * 37) % 9 + 1 ))"
	# stop the loop (it must not start another write), kill the tool it
	# is running - somewhere inside a write - then the loop itself
	kill -STOP "$cpid" 2>/dev/null
	for t in $(pgrep -P "$cpid" 2>/dev/null); do kill -9 "$t" 2>/dev/null; done
	kill -9 "$cpid" 2>/dev/null
	wait "$cpid" 2>/dev/null
	bad=
	# 1. nothing half-written is visible: every entry parses
	for f in $(find "$REG" -name '*.pem' 2>/dev/null); do
		openssl x509 -in "$f" -noout 2>/dev/null || bad="$bad unparsable:$f"
	done
	"$TOOL" --config "$CONF" --registry "$REG" list >"$OUT" 2>"$ERR"
	lrc=$?
	[ "$lrc" -eq 0 ] || [ "$lrc" -eq 1 ] || bad="$bad list-rc:$lrc"
	grep -q "does not parse\|malformed\|does not match" "$ERR" && bad="$bad list-warning"
	# 2. the next writer settles; then disk and audit agree for every key
	[ -e "$REG/.pending" ] && interrupted=$((interrupted + 1))
	"$TOOL" --config "$CONF" --registry "$REG" -q enroll "settle$round" \
	    "$G/u$((round % 16)).crt" >/dev/null 2>&1
	[ -e "$REG/.pending" ] && bad="$bad pending-left"
	i=16
	while [ $i -lt 24 ]; do
		fp=$(cat "$G/u$i.fp")
		on_disk=$(find "$REG/c$i" -name "$fp.pem" 2>/dev/null | wc -l)
		en=$(grep -c "action=enroll user=c$i key=$fp" "$REG/.audit.log" 2>/dev/null)
		rm_=$(grep -c "action=remove user=c$i key=$fp" "$REG/.audit.log" 2>/dev/null)
		[ "$((en - rm_))" -eq "$on_disk" ] ||
		    bad="$bad c$i:enroll=$en,remove=$rm_,files=$on_disk"
		i=$((i + 1))
	done
	if [ -z "$bad" ]; then
		crash_ok=$((crash_ok + 1))
	else
		crash_bad=$((crash_bad + 1))
		echo "# round $round:$bad"
	fi
	round=$((round + 1))
done
echo "# $interrupted of 30 kills interrupted a change (left .pending)"
check "30 SIGKILLed writers: registry parses, audit log consistent" \
    '[ "$crash_bad" -eq 0 ] && [ "$crash_ok" -eq 30 ]'
check "every audit line is whole" \
    '! grep -v "^20[0-9T:-]*Z actor=[^ ]* action=[a-z]* user=[^ ]* key=[0-9a-f]\{64\} reason=" "$REG/.audit.log"'
check "interrupted changes were settled (some did happen)" \
    '[ "$(grep -c "action=enroll" "$REG/.audit.log")" -gt 30 ]'

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
