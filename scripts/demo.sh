#!/bin/sh
# demo.sh - the quick start's first command: install what is missing,
# build, and show the whole login path on the embedded defaults:
#   1. a demo CA issues a PersonalSign-like certificate for "demo-alice"
#      and packs it with its key into a password-protected .pfx;
#   2. the admin enrolls the exported .cer with personalsign-enroll
#      (file registry backend);
#   3. the .pfx becomes the user's keystore at the default location,
#      ~/.personalsign/keystore.pfx;
#   4. the user logs in through the real Linux-PAM stack with the built
#      module, then a wrong password is refused.
# Nothing else is touched: the demo lives in one scratch directory that is
# removed at the end, users come from nss_wrapper and the PAM service from
# pam_wrapper.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" "$top/build"
B=$top/build

# The module trusts a registry only when no directory above it is writable
# by others, so not under /tmp (where a checkout may live): /run as root.
if [ "$(id -u)" = 0 ]; then
	D=$(mktemp -d /run/ps-demo-XXXXXX)
else
	mkdir -p "$B/tests/tmp"
	chmod 755 "$B/tests/tmp"
	D=$(mktemp -d "$B/tests/tmp/demo-XXXXXX")
fi
chmod 755 "$D"
trap 'rm -rf "$D"' EXIT
say() { printf '\n== %s\n' "$*"; }

say "1. A demo CA issues demo-alice's certificate; key and certificate go into a .pfx"
cd "$D"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
	-subj "/CN=Demo PersonalSign CA" -days 30 -out ca.crt \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout alice.key \
	-subj "/CN=Alice Demo/emailAddress=alice@demo.test" -out alice.csr 2>/dev/null
printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,emailProtection\nsubjectAltName=email:alice@demo.test\n' > ext.cnf
openssl x509 -req -in alice.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
	-extfile ext.cnf -out alice.crt 2>/dev/null
openssl x509 -in alice.crt -out alice.cer -outform DER
openssl pkcs12 -export -inkey alice.key -in alice.crt -passout pass:demo-secret -out alice.pfx
rm -f alice.key
echo "made alice.cer (what the user exports for the admin) and alice.pfx (password: demo-secret)"

say "2. The admin enrolls the exported certificate"
"$B/personalsign-enroll" --registry "$D/registry" enroll demo-alice alice.cer

say "3. The .pfx becomes the user's keystore at ~/.personalsign/keystore.pfx"
mkdir -p home/demo-alice/.personalsign
cp alice.pfx home/demo-alice/.personalsign/keystore.pfx
chmod 600 home/demo-alice/.personalsign/keystore.pfx
echo "demo-alice:x:$(id -u):$(id -g):Alice Demo:$D/home/demo-alice:/bin/sh" > passwd
echo "demo:x:$(id -g):" > group
mkdir pam.d
printf 'auth required %s registry=%s\naccount required %s registry=%s\n' \
	"$B/.libs/pam_personalsign.so" "$D/registry" "$B/.libs/pam_personalsign.so" "$D/registry" > pam.d/demo-login
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' > pam.d/other
echo "PAM service demo-login:"
sed 's/^/    /' pam.d/demo-login

# run [--acct] PASSWORD: one login of demo-alice answering PASSWORD
run() {
	acct=
	[ "$1" = --acct ] && { acct=--acct; shift; }
	LD_PRELOAD="libpam_wrapper.so libnss_wrapper.so" PAM_WRAPPER=1 \
	PAM_WRAPPER_SERVICE_DIR="$D/pam.d" NSS_WRAPPER_PASSWD="$D/passwd" \
	NSS_WRAPPER_GROUP="$D/group" "$B/tests/integration/pam_driver" $acct \
		demo-login demo-alice "$1"
}

say "4a. demo-alice logs in with the right keystore password"
if run --acct demo-secret; then ok=1; else ok=0; fi
say "4b. the same login with a wrong password"
if run not-the-password; then bad=1; else bad=0; fi

echo
if [ "$ok" -eq 1 ] && [ "$bad" -eq 0 ]; then
	echo "DEMO OK: the right password logged in, the wrong one was refused."
else
	echo "DEMO FAILED" >&2
	exit 1
fi
