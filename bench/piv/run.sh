#!/bin/sh
# run.sh - smart-card login latency through PAM: pam_personalsign against
# OpenSC's pam_p11 and pam_pkcs11, all three on the SAME virtual PIV card
# (tests/piv/virtual_piv_card.py), the same private pcscd and the same key,
# each login a real libpam transaction (pam_driver under pam_wrapper and
# nss_wrapper) that is answered with the PIN and must succeed.
#
#   sh bench/piv/run.sh [BUILDDIR]        (as root)
#
# BUILDDIR (default: ./build of the source tree) holds the built module,
# personalsign-enroll and tests/integration/pam_driver. The script starts
# and stops its own pcscd and card, and prints:
#   - one hyperfine run with the three logins (WARMUP, RUNS), exported as
#     Markdown to $OUT (default ./bench-piv.md);
#   - APDUs per login of each module, from the card's --state log, by
#     instruction (and the protocol minimum for comparison);
#   - the maximum RSS of one login of each, from /usr/bin/time -v.
# Environment: KEY (rsa2048, p256 or p384; default rsa2048), WARMUP (2),
# RUNS (20), OUT, KEEP=1 (keep the work directory and print its path).
# shellcheck source-path=SCRIPTDIR
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
KEY=${KEY:-rsa2048}
WARMUP=${WARMUP:-2}
RUNS=${RUNS:-20}
OUT=${OUT:-$PWD/bench-piv.md}
PIN=123456
USER_NAME=benchuser

MODULE=$BUILD/.libs/pam_personalsign.so
ENROLL=$BUILD/personalsign-enroll
DRIVER=$BUILD/tests/integration/pam_driver
P11_PAM=/usr/lib/x86_64-linux-gnu/security/pam_p11.so
PKCS11_PAM=/lib/x86_64-linux-gnu/security/pam_pkcs11.so
OPENSC_P11=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so

die() {
	echo "run.sh: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root (private pcscd)"
for f in "$MODULE" "$ENROLL" "$DRIVER" "$P11_PAM" "$PKCS11_PAM" "$OPENSC_P11"; do
	[ -e "$f" ] || die "$f not found (build the project; apt-get install libpam-p11 libpam-pkcs11 opensc)"
done
for t in hyperfine /usr/bin/time openssl; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found"
done

PIV_SRCDIR=$SRC/tests/piv
# shellcheck source=../../tests/piv/lib.sh
. "$PIV_SRCDIR/lib.sh"
if [ -x "$BUILD/tests/piv/pcsc_wait_card" ]; then
	PCSC_WAIT_CARD=$BUILD/tests/piv/pcsc_wait_card
fi

# The registry and trust anchors must sit in a root-owned tree (the
# module refuses anything under world-writable /tmp): the work directory
# is made in the build tree. pcscd's socket stays under /tmp (PIV_TMP),
# where its path is short enough.
# a trusted scratch directory (not under a world-writable /tmp checkout)
W=$(mktemp -d /run/bench-piv-XXXXXX)
chmod 755 "$W"
piv_init pstest-benchpiv
cleanup() {
	piv_cleanup
	if [ "${KEEP:-0}" = 1 ]; then
		echo "run.sh: keeping $W" >&2
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT

pki=$PIV_TMP/pki
piv_make_certs "$pki" "$USER_NAME" >/dev/null || die "making certificates"
cert=$pki/$KEY.crt
[ -f "$cert" ] || die "KEY must be rsa2048, p256 or p384"

# ------------------------------------------------------------ pcscd + card
base=$(piv_free_ports 1) || die "no free ports"
piv_start_pcscd "$base" || die "pcscd did not start"
sock=$PCSCLITE_CSOCK_NAME
state=$PIV_TMP/card.state
piv_start_card "$base" --state "$state" --slot "9a:$cert:$pki/$KEY.key"
piv_wait_card 5000 || die "the card did not show up"

# ------------------------------------------------------------ the user
home=$W/home/$USER_NAME
mkdir -p "$home/.eid" "$W/pam.d" "$W/opensc-cache"
printf '%s:x:0:0:%s:%s:/bin/sh\n' "$USER_NAME" "$USER_NAME" "$home" > "$W/passwd"
printf 'root:x:0:\n' > "$W/group"

# pam_personalsign: the card's certificate, registered with the real tool
cp "$pki/ca.crt" "$W/ca.pem"
"$ENROLL" --registry "$W/registry" -q enroll "$USER_NAME" "$cert" >/dev/null ||
    die "personalsign-enroll failed"

# pam_p11: the certificate in ~/.eid/authorized_certificates (PEM)
openssl x509 -in "$cert" -outform PEM > "$home/.eid/authorized_certificates"
chmod 755 "$home/.eid"
chmod 644 "$home/.eid/authorized_certificates"

# pam_pkcs11: OpenSC's PKCS#11 module, the test CA as its only trust anchor
# (hash links), signature check on, and the subject mapper.
mkdir -p "$W/pkcs11/cacerts" "$W/pkcs11/crls"
cp "$pki/ca.crt" "$W/pkcs11/cacerts/ca.pem"
openssl rehash "$W/pkcs11/cacerts" >/dev/null 2>&1 ||
    pkcs11_make_hash_link "$W/pkcs11/cacerts" >/dev/null 2>&1 ||
    die "cannot make CA hash links"
subject=$(openssl x509 -in "$cert" -noout -subject -nameopt compat |
    sed 's/^subject=//')
printf '%s -> %s\n' "$subject" "$USER_NAME" > "$W/pkcs11/subject_mapping"
cat > "$W/pkcs11/pam_pkcs11.conf" <<EOF
pam_pkcs11 {
  nullok = false;
  debug = false;
  use_first_pass = false;
  try_first_pass = false;
  use_authtok = false;
  card_only = true;
  wait_for_card = false;
  use_pkcs11_module = opensc;
  pkcs11_module opensc {
    module = $OPENSC_P11;
    description = "OpenSC PKCS#11 module";
    slot_num = 0;
    ca_dir = $W/pkcs11/cacerts;
    crl_dir = $W/pkcs11/crls;
    support_threads = false;
    cert_policy = ca,signature;
    token_type = "Smart card";
  }
  use_mappers = subject;
  mapper_search_path = /lib/x86_64-linux-gnu/pam_pkcs11;
  mapper subject {
    debug = false;
    module = internal;
    ignorecase = false;
    mapfile = file://$W/pkcs11/subject_mapping;
  }
}
EOF

# ------------------------------------------------------------ PAM services
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' > "$W/pam.d/other"
echo "auth required $MODULE backend=piv pcsc_socket=$sock registry=$W/registry ca_file=$W/ca.pem" > "$W/pam.d/ps"
echo "auth required $P11_PAM $OPENSC_P11" > "$W/pam.d/p11"
echo "auth required $PKCS11_PAM config_file=$W/pkcs11/pam_pkcs11.conf" > "$W/pam.d/pkcs11"

# One login: pam_driver SERVICE USER PIN under pam_wrapper + nss_wrapper.
# Every module sees the same environment: PCSCLITE_CSOCK_NAME for OpenSC
# (ours takes pcsc_socket= and would not need it), the stock OpenSC
# configuration with a private, initially empty cache directory.
login_cmd() {
	printf 'env LD_PRELOAD="libpam_wrapper.so libnss_wrapper.so" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=%s PAM_WRAPPER_DISABLE_DEEPBIND=1 NSS_WRAPPER_PASSWD=%s NSS_WRAPPER_GROUP=%s PCSCLITE_CSOCK_NAME=%s HOME=%s XDG_CACHE_HOME=%s %s %s %s %s' \
	    "$W/pam.d" "$W/passwd" "$W/group" "$sock" "$W/root-home" \
	    "$W/opensc-cache" "$DRIVER" "$1" "$USER_NAME" "$PIN"
}
mkdir -p "$W/root-home"

apdus() {
	grep -c '^apdu ' "$state" || true
}

# describe_apdus FILE: APDUs by instruction; a chained command (CLA 1x
# fragments, then the last one) counts once among "commands", every
# fragment among "APDUs".
describe_apdus() {
	awk '
	function name(ins) {
		if (ins == "A4") return "SELECT"
		if (ins == "CB") return "GET DATA"
		if (ins == "C0") return "GET RESPONSE"
		if (ins == "20") return "VERIFY"
		if (ins == "87") return "GENERAL AUTHENTICATE"
		if (ins == "CA") return "GET DATA (CA, vendor probe)"
		return "INS " ins
	}
	{
		n[$2]++
		if ($3 !~ /^cla=1/) c[$2]++
		if ($2 == "A4" && $0 !~ / sw=9000 /) miss++
		if ($2 == "20" && $4 == "p1=FF") vff++
		else if ($2 == "20" && $6 == "lc=0") v0++
		else if ($2 == "20") vpin++
	}
	END {
		for (i in n) {
			extra = ""
			if (c[i] != n[i]) extra = sprintf(" (%d commands, chained)", c[i])
			if (i == "A4" && miss) extra = sprintf(" (%d of them for applets the card does not have)", miss)
			if (i == "20") extra = sprintf(" (%d empty: tries left, %d with the PIN, %d P1=FF: log out)", v0, vpin, vff)
			printf "   %3d %s%s\n", n[i], name(i), extra
		}
	}' "$1" | sort -k2
}

# card_times FILE: from the card's timestamps (t=, taken as each APDU is
# answered): first to last APDU of the login, and the signature itself
# (last GENERAL AUTHENTICATE fragment minus the APDU before it), which
# the virtual card computes in Python and every module pays alike.
card_times() {
	awk '
	{ t = $NF; sub(/^t=/, "", t); if (NR == 1) first = t
	  if ($2 == "87" && $3 !~ /^cla=1/) sig = t - prev
	  prev = t; last = t }
	END { printf "   card: %.1f ms from the first to the last APDU, %.1f ms of it signing\n", (last - first) * 1000, sig * 1000 }' "$1"
}

# minimum FILE: what our login would need at least with this card and key,
# from the sizes the card answered with: SELECT, GET DATA of 9A and its
# GET RESPONSE rounds, the empty VERIFY (tries left), VERIFY, GENERAL
# AUTHENTICATE (all its chain fragments) and its GET RESPONSE rounds.
minimum() {
	awk '
	$2 != "C0" { last = $2; if ($2 == "CB") gd++ }
	$2 == "CB" && gd == 1 { need++ }
	$2 == "C0" && last == "CB" && gd == 1 { need++; grc++ }
	$2 == "87" { need++; ga++ }
	$2 == "C0" && last == "87" { need++; grs++ }
	END {
		need += 3
		printf "protocol minimum for this card and key: %d APDUs = SELECT 1 + GET DATA 9A 1 + GET RESPONSE %d + VERIFY (empty, tries left) 1 + VERIFY 1 + GENERAL AUTHENTICATE %d (chain fragments) + GET RESPONSE %d\n", need, grc, ga, grs
	}' "$1"
}

echo "machine: $(nproc) cores, $(uname -r), $(openssl version)"
echo "key: $KEY in slot 9A; card: tests/piv/virtual_piv_card.py over vpcd; pcscd $(pcscd --version 2>/dev/null | sed -n 's/.*pcsc-lite version \([^ ]*\).*/\1/p' | head -n 1)"

# ------------------------------------------------------------ sanity + APDUs
# One login of each, checked, with its APDUs from the card's log.
for svc in ps p11 pkcs11; do
	before=$(apdus)
	if ! eval "$(login_cmd "$svc")" > "$W/$svc.out" 2>&1; then
		cat "$W/$svc.out" >&2
		die "a $svc login did not succeed"
	fi
	after=$(apdus)
	sed -n "/^apdu /p" "$state" | sed -n "$((before + 1)),${after}p" > "$W/$svc.apdus"
	echo "== $svc: one login = $((after - before)) APDUs"
	describe_apdus "$W/$svc.apdus"
	card_times "$W/$svc.apdus"
done
minimum "$W/ps.apdus"

# ------------------------------------------------------------ memory
echo "auth required pam_permit.so" > "$W/pam.d/permit"
for svc in permit ps p11 pkcs11; do
	eval "/usr/bin/time -v $(login_cmd "$svc")" > "$W/$svc.time" 2>&1 ||
	    die "$svc login under /usr/bin/time failed"
	echo "max RSS, one $svc login: $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/$svc.time") KiB"
done

# ------------------------------------------------------------ latency
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-markdown "$OUT" \
    -n pam_personalsign "$(login_cmd ps)" \
    -n pam_p11 "$(login_cmd p11)" \
    -n pam_pkcs11 "$(login_cmd pkcs11)"
echo "Markdown table: $OUT"
# What a login costs before any module runs: process start, libpam,
# pam_wrapper and nss_wrapper (the same in all three commands).
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" -n "pam_driver + pam_permit (baseline)" \
    "$(login_cmd permit)"
if [ -n "$(find "$W/opensc-cache" "$W/root-home" -mindepth 1 2>/dev/null)" ]; then
	echo "OpenSC wrote a cache:"
	find "$W/opensc-cache" "$W/root-home" -mindepth 1
else
	echo "OpenSC cache directories stayed empty (stock opensc.conf: no file caching)"
fi
