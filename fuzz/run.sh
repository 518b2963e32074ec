#!/bin/sh
# fuzz/run.sh SECONDS [TARGET...] - build the libFuzzer targets in fuzz/
# (default: all of them: fuzz_piv_response, fuzz_ssh_remote,
# fuzz_core_parsers) with clang's libFuzzer + AddressSanitizer + UBSan
# against the core sources, make small seed corpora (real certificate
# objects, whole RSA and EC card conversations, TLV and status-word
# samples, certificate files in every format, a challenge and a
# configuration), and fuzz each target for SECONDS (default 60). Exit
# status 0 when nothing was found; a crashing input is kept in the work
# directory, which is printed.
#
# Knobs: CC_FUZZ (default clang-14, else clang), FUZZ_DIR (work
# directory; default a fresh one under $TMPDIR), FUZZ_KEEP=1 keeps it
# after a clean run, FUZZ_JOBS (parallel workers, default 1).
set -eu

secs=${1:-60}
case $secs in
    ''|*[!0-9]*) echo "usage: $0 SECONDS [TARGET...]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
targets=${*:-fuzz_piv_response fuzz_ssh_remote fuzz_core_parsers}
top=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC_FUZZ:-}
if [ -z "$cc" ]; then
    if command -v clang-14 >/dev/null 2>&1; then cc=clang-14; else cc=clang; fi
fi
py=/usr/bin/python3
for t in "$cc" pkg-config openssl "$py"; do
    command -v "$t" >/dev/null 2>&1 || { echo "SKIP: $t not found" >&2; exit 77; }
done

work=${FUZZ_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ps-fuzz.XXXXXX")}
mkdir -p "$work/seeds" "$work/pki"
cleanup() {
    rc=$?
    if [ "$rc" = 0 ] && [ -z "${FUZZ_KEEP:-}" ] && [ -z "${FUZZ_DIR:-}" ]; then
        rm -rf "$work"
    else
        echo "fuzz: work directory kept: $work" >&2
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- build
# Every target links the whole core: what a target does not call costs
# nothing, and no per-target source list can go stale.
srcs=$(cd "$top" && find src -name '*.c' | sort)
incs=$(cd "$top" && find src -mindepth 1 -type d | sort | sed 's/^/-I /')
for t in $targets; do
    [ -f "$top/fuzz/$t.c" ] || { echo "fuzz: no target $t" >&2; exit 2; }
    # shellcheck disable=SC2046,SC2086 # word splitting wanted
    (cd "$top" && "$cc" -std=gnu11 -g -O1 -D_GNU_SOURCE -DPS_HAVE_PIV \
        -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Wall -Wno-unused-parameter $incs "fuzz/$t.c" $srcs \
        $(pkg-config --cflags --libs libcrypto libpcsclite zlib) \
        -o "$work/$t")
done

# ---------------------------------------------------------------- seeds
(cd "$work/pki" &&
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=fuzz p256" -days 30 -keyout p256.key -out p256.der \
    -outform DER 2>/dev/null &&
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes \
    -subj "/CN=fuzz p384" -days 30 -keyout p384.key -out p384.der \
    -outform DER 2>/dev/null &&
 openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=fuzz rsa" \
    -days 30 -keyout rsa.key -out rsa.der -outform DER 2>/dev/null)

"$py" - "$work/pki" "$work/seeds" <<'PY'
import gzip, os, struct, sys
pki, seeds = sys.argv[1], sys.argv[2]

def blen(n):
    if n < 0x80: return bytes([n])
    if n <= 0xFF: return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])

def tlv(tag, v):
    t = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    return t + blen(len(v)) + v

def obj(cert, info=0):
    return tlv(0x53, tlv(0x70, cert) + tlv(0x71, bytes([info])) + tlv(0xFE, b""))

def chunks(body, sw=b"\x90\x00"):
    """A long answer as the card sends it: 256 bytes + 61xx at a time."""
    out = []
    while len(body) > 256:
        rest = len(body) - 256
        out.append(body[:256] + bytes([0x61, rest if rest < 256 else 0]))
        body = body[256:]
    out.append(body + sw)
    return out

def stream(resps):
    return b"".join(struct.pack(">H", len(r)) + r for r in resps)

def put(name, data):
    with open(os.path.join(seeds, name), "wb") as f:
        f.write(data)

ok = b"\x90\x00"
select = tlv(0x61, tlv(0x4F, bytes.fromhex("A000000308"))) + ok
certs = {n: open(os.path.join(pki, n + ".der"), "rb").read()
         for n in ("p256", "p384", "rsa")}
for n, c in certs.items():
    put("cert-" + n, b"\x01" + obj(c))
    put("certgz-" + n, b"\x01" + obj(gzip.compress(c), 1))
    put("gzip-" + n, b"\x02" + gzip.compress(c))
put("tlv", b"\x00" + tlv(0x53, tlv(0x70, b"abc") + tlv(0x71, b"\x00")))
put("tlv-long", b"\x00" + tlv(0x5FC105, bytes(300)))
ecsig = bytes.fromhex("3006020101020101")
put("sig-ec", b"\x03" + tlv(0x7C, tlv(0x82, ecsig)))
put("sig-rsa", b"\x03" + tlv(0x7C, tlv(0x82, bytes(range(256)))))
put("sw", b"\x04" + bytes.fromhex("900063C36983630063C06A826982"))

def login(cert, sig, rsa):
    r = [select]
    r += chunks(obj(cert))                  # GET DATA 9A
    r += [select, b"\x63\xC3", ok]           # SELECT, empty VERIFY, VERIFY
    if rsa:
        r.append(ok)                         # first chained GA chunk
    r += chunks(tlv(0x7C, tlv(0x82, sig)))   # GENERAL AUTHENTICATE
    r.append(ok)                             # VERIFY P1=FF
    return r

for flags in (0x03, 0x02, 0x00, 0x17):
    put("login-p256-%02x" % flags, bytes([5, flags]) +
        stream(login(certs["p256"], ecsig, False)))
put("login-p384", bytes([5, 3]) + stream(login(certs["p384"], ecsig, False)))
put("login-rsa", bytes([5, 3]) + stream(login(certs["rsa"], bytes(256), True)))
put("login-wrongpin", bytes([5, 3]) + stream(
    [select] + chunks(obj(certs["p256"])) + [select, b"\x63\xC3", b"\x63\xC2"]))
put("login-lasttry", bytes([5, 3]) + stream(
    [select] + chunks(obj(certs["p256"])) + [select, b"\x63\xC1"]))
put("login-6c", bytes([5, 3]) + stream(
    [select, b"\x6C\x10", b"\x61\x00"] + chunks(obj(certs["p256"]))))
PY

# Seeds for the core parsers: the first byte picks the parser (0
# certificate file, 1 challenge, 2 configuration).
mkdir -p "$work/seeds-core"
(cd "$work/pki" &&
 openssl x509 -inform DER -in p256.der -out p256.pem &&
 openssl crl2pkcs7 -nocrl -certfile p256.pem -outform DER -out p256.p7b &&
 openssl pkcs12 -export -inkey p256.key -in p256.pem -passout pass:pw \
    -out p256.pfx)
for f in p256.der p256.pem p256.p7b p256.pfx rsa.der; do
    { printf '\000'; cat "$work/pki/$f"; } > "$work/seeds-core/cert-$f"
done
printf '\001pam_personalsign/v1\nhost=h\nservice=sshd\nuser=u\nrhost=\nissued=1\nexpires=2\nnonce=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n' \
    > "$work/seeds-core/challenge"
printf '\002# c\ndebug\nregistry = /x\nexpiry_warn_days=4\nbackend=auto\n' \
    > "$work/seeds-core/config"

# ---------------------------------------------------------------- run
cd "$work"
# One worker runs in this process (its stats land in the log); more are
# separate processes logging to fuzz-N.log.
jobs=
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    jobs="-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS"
fi
for t in $targets; do
    case $t in
    fuzz_piv_response) seeds=seeds ;;
    fuzz_core_parsers) seeds=seeds-core ;;
    *) seeds= ;;
    esac
    mkdir -p "corpus-$t"
    echo "fuzz: $t for ${secs}s in $work" >&2
    # shellcheck disable=SC2086 # $jobs and $seeds are empty or words
    "./$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=8192 $jobs -artifact_prefix="$work/$t-" -print_final_stats=1 \
        "corpus-$t" $seeds 2>"$work/$t.log" || {
        tail -40 "$work/$t.log" "$work"/fuzz-*.log 2>/dev/null >&2
        echo "fuzz: $t FAILED; crashing input under $work" >&2
        exit 1
    }
    grep -E "^(stat::number_of_executed_units|#[0-9]+.*DONE)" "$work/$t.log" \
        | head -2 >&2 || true
    echo "fuzz: $t: no crash in ${secs}s" >&2
done
