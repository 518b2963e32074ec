# lib.sh - shell helpers (POSIX sh, source it) for tests that need a private
# pcscd with vsmartcard vpcd readers and virtual PIV cards
# (virtual_piv_card.py).  Everything started here is a child of the test
# shell and is stopped by PID in piv_cleanup; nothing else is touched.
#
# Typical use (as root):
#   PIV_SRCDIR=$srcdir/tests/piv   # optional, see below
#   . "$PIV_SRCDIR/lib.sh"
#   piv_init                                  # temp dir + cleanup trap
#   piv_make_certs "$PIV_TMP/pki"             # CA + rsa2048/p256/p384 users
#   port=$(piv_free_ports 1)                  # base of 2 free ports
#   piv_start_pcscd "$port"                   # exports PCSCLITE_CSOCK_NAME
#   piv_start_card "$port" --slot "9a:$PIV_TMP/pki/p256.crt:$PIV_TMP/pki/p256.key"
#   piv_wait_card 5000                        # card is present
#   ... test ...
#   piv_stop "$PIV_CARD_PID"                  # pull the card (optional)
#
# Variables set: PIV_SRCDIR, PIV_TMP, PIV_PYTHON, PIV_PCSCD_PID, PIV_PCSCD_BASE,
# PIV_CARD_PID, PIV_CARD_PID_<PORT>, PIV_CARD_LOG, PIV_PIDS,
# PCSCLITE_CSOCK_NAME (exported), PIV_WAIT_CARD.
# Knobs: PIV_KEEP=1 keeps the temp dir; PIV_VERBOSE=1 runs cards with -v;
# PSTEST_PCSCD_ARGS passes options to pcscd (e.g. "--debug --apdu");
# PCSC_WAIT_CARD=/path/to/pcsc_wait_card uses a prebuilt helper.

# shellcheck shell=sh

PIV_PYTHON=${PIV_PYTHON:-/usr/bin/python3}
PIV_PKCS11_MODULE=${PIV_PKCS11_MODULE:-/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so}
PIV_PIDS=${PIV_PIDS:-}
PIV_TMP=${PIV_TMP:-}
PIV_PORT_LOCKDIR=${PIV_PORT_LOCKDIR:-/tmp/pstest-piv-ports}

# Locate the directory holding virtual_piv_card.py.
if [ -z "${PIV_SRCDIR:-}" ]; then
    for piv__d in "$(dirname -- "$0")" "${srcdir:-.}/tests/piv" \
                  "${srcdir:-.}/piv" "${srcdir:-.}"; do
        if [ -f "$piv__d/virtual_piv_card.py" ]; then
            PIV_SRCDIR=$(cd "$piv__d" && pwd)
            break
        fi
    done
fi
if [ -z "${PIV_SRCDIR:-}" ] || [ ! -f "$PIV_SRCDIR/virtual_piv_card.py" ]; then
    echo "lib.sh: cannot find virtual_piv_card.py; set PIV_SRCDIR" >&2
    exit 99
fi

piv_log() {
    echo "[$(date +%H:%M:%S)] $*" >&2
}

# piv_skip_unless_ready: exit 77 (automake SKIP) when not root or a tool is
# missing.
piv_skip_unless_ready() {
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP: needs root (private mount namespace for pcscd)" >&2
        exit 77
    fi
    for piv__t in pcscd unshare openssl "$PIV_PYTHON"; do
        if ! command -v "$piv__t" >/dev/null 2>&1; then
            echo "SKIP: $piv__t not found" >&2
            exit 77
        fi
    done
    if [ ! -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ]; then
        echo "SKIP: vsmartcard-vpcd not installed" >&2
        exit 77
    fi
    if ! "$PIV_PYTHON" -c 'import cryptography' 2>/dev/null; then
        echo "SKIP: python3-cryptography missing for $PIV_PYTHON" >&2
        exit 77
    fi
}

# piv_init [PREFIX]: make PIV_TMP (mode 755) and install the cleanup trap
# (EXIT, INT, TERM).  A test with its own trap must call piv_cleanup from it.
piv_init() {
    # Always under /tmp, not $TMPDIR: pcscd's socket lives in here and a
    # unix socket path must stay under 108 bytes, which a deep build tree
    # (make distcheck, CI clones) easily exceeds.
    PIV_TMP=$(mktemp -d "/tmp/${1:-pstest-piv}.XXXXXX")
    chmod 755 "$PIV_TMP"
    trap piv_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# piv__alive PID: true while PID runs (a zombie child counts as dead).
piv__alive() {
    [ -r "/proc/$1/stat" ] || return 1
    piv__st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$piv__st" ] && [ "$piv__st" != Z ]
}

# piv_stop PID...: SIGTERM the given PIDs we started, wait for them, forget
# them.  Escalates to SIGKILL after ~3 s.
piv_stop() {
    for piv__p in "$@"; do
        [ -n "$piv__p" ] || continue
        kill "$piv__p" 2>/dev/null || true
        piv__n=0
        while piv__alive "$piv__p" && [ "$piv__n" -lt 300 ]; do
            sleep 0.01
            piv__n=$((piv__n + 1))
        done
        if piv__alive "$piv__p"; then
            kill -9 "$piv__p" 2>/dev/null || true
        fi
        wait "$piv__p" 2>/dev/null || true
        piv__rest=
        for piv__q in $PIV_PIDS; do
            [ "$piv__q" = "$piv__p" ] || piv__rest="$piv__rest $piv__q"
        done
        PIV_PIDS=$piv__rest
    done
}

# piv_cleanup: stop everything we started (cards first, newest first),
# release port reservations, remove PIV_TMP unless PIV_KEEP=1.
piv_cleanup() {
    piv__rev=
    for piv__q in $PIV_PIDS; do
        piv__rev="$piv__q $piv__rev"
    done
    # shellcheck disable=SC2086 # list of PIDs
    piv_stop $piv__rev
    if [ -d "$PIV_PORT_LOCKDIR" ]; then
        for piv__l in "$PIV_PORT_LOCKDIR"/*; do
            [ -f "$piv__l" ] || continue
            if [ "$(cat "$piv__l" 2>/dev/null)" = "$$" ]; then
                rm -f "$piv__l"
            fi
        done
    fi
    if [ -n "$PIV_TMP" ] && [ -d "$PIV_TMP" ]; then
        if [ "${PIV_KEEP:-0}" = 1 ]; then
            echo "lib.sh: keeping $PIV_TMP" >&2
        else
            rm -rf "$PIV_TMP"
        fi
    fi
}

# piv_free_ports N: print BASE such that BASE..BASE+2N-1 are free TCP ports
# (N vpcd readers need 2 ports each).  Ports are below the ephemeral range
# and reserved in $PIV_PORT_LOCKDIR for this shell ($$) until piv_cleanup,
# so tests running in parallel do not pick the same ones.
piv_free_ports() {
    "$PIV_PYTHON" - "${1:-1}" "$$" "$PIV_PORT_LOCKDIR" <<'EOF'
import os, random, socket, sys
n, owner, lockdir = 2 * int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.makedirs(lockdir, mode=0o700, exist_ok=True)
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
hi = max(low, 12000) - n - 1
def owner_alive(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip() or "0")
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False
def reserve(port):
    path = os.path.join(lockdir, str(port))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if owner_alive(path):
                return None
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        os.write(fd, owner.encode())
        os.close(fd)
        return path
    return None
def bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(500):
    base = random.randrange(10000, hi, 2)
    taken = []
    ok = True
    for p in range(base, base + n):
        r = reserve(p)
        if r is None:
            ok = False
            break
        taken.append(r)
        if not bindable(p):
            ok = False
            break
    if ok:
        print(base)
        sys.exit(0)
    for r in taken:
        os.unlink(r)
sys.stderr.write("piv_free_ports: no free port range found\n")
sys.exit(1)
EOF
}

# piv_start_pcscd PORT [PORT2...]: start a private pcscd with one vpcd reader
# per PORT ("PSTest vpcd PORT 00 00" on PORT, "... 00 01" on PORT+1), wait
# (max 5 s) for its socket, export PCSCLITE_CSOCK_NAME.  Sets PIV_PCSCD_PID
# and PIV_PCSCD_BASE (the first PORT).
# Its log goes to $PIV_TMP/pcscd-PORT/pcscd.log.
piv_start_pcscd() {
    PIV_PCSCD_BASE=$1
    piv__rd=$PIV_TMP/pcscd-$1
    mkdir -p "$piv__rd/run"
    rm -f "$piv__rd/run/pcscd.comm"
    "$PIV_SRCDIR/pcscd-private.sh" "$piv__rd" "$@" \
        >"$piv__rd/pcscd.log" 2>&1 &
    PIV_PCSCD_PID=$!
    PIV_PIDS="$PIV_PIDS $PIV_PCSCD_PID"
    PCSCLITE_CSOCK_NAME=$piv__rd/run/pcscd.comm
    export PCSCLITE_CSOCK_NAME
    piv__n=0
    while [ ! -S "$PCSCLITE_CSOCK_NAME" ]; do
        if ! piv__alive "$PIV_PCSCD_PID" || [ "$piv__n" -ge 500 ]; then
            echo "piv_start_pcscd: pcscd did not come up:" >&2
            cat "$piv__rd/pcscd.log" >&2
            return 1
        fi
        sleep 0.01
        piv__n=$((piv__n + 1))
    done
}

# piv_start_card PORT [virtual_piv_card.py options...]: start a card on vpcd
# PORT in the background.  Sets PIV_CARD_PID (also as PIV_CARD_PID_<PORT>,
# for piv_eject) and PIV_CARD_LOG (stderr of the card, appended,
# $PIV_TMP/card-PORT.log).  Does not wait: use piv_wait_card.
piv_start_card() {
    piv__port=$1
    shift
    PIV_CARD_LOG=$PIV_TMP/card-$piv__port.log
    if [ "${PIV_VERBOSE:-0}" = 1 ]; then
        set -- -v "$@"
    fi
    "$PIV_PYTHON" "$PIV_SRCDIR/virtual_piv_card.py" --port "$piv__port" \
        --connect-timeout 10 "$@" >>"$PIV_CARD_LOG" 2>&1 &
    PIV_CARD_PID=$!
    PIV_PIDS="$PIV_PIDS $PIV_CARD_PID"
    eval "PIV_CARD_PID_$piv__port=\$PIV_CARD_PID"
}

# piv_reader PORT: print the name of the reader on vpcd PORT of the pcscd
# started by piv_start_pcscd BASE (one vpcd: PORT is BASE or BASE+1).
piv_reader() {
    echo "PSTest vpcd $PIV_PCSCD_BASE 00 0$(($1 - PIV_PCSCD_BASE))"
}

# piv_insert PORT STATEFILE [card options...]: start a fresh card on vpcd
# PORT with its --state log in STATEFILE (removed first) and wait (5 s)
# until pcscd sees it in piv_reader PORT; returns 1 when it does not.
piv_insert() {
    piv__iport=$1
    piv__istate=$2
    shift 2
    rm -f "$piv__istate"
    piv_start_card "$piv__iport" --state "$piv__istate" "$@"
    piv_wait_card 5000 "$(piv_reader "$piv__iport")"
}

# piv_eject PORT: pull the card piv_start_card last put on PORT (if it has
# not been pulled yet) and wait (5 s) until pcscd has noticed.
piv_eject() {
    eval "piv__epid=\${PIV_CARD_PID_$1:-}"
    [ -n "$piv__epid" ] || return 0
    piv_stop "$piv__epid"
    eval "PIV_CARD_PID_$1="
    piv_wait_no_card 5000 "$(piv_reader "$1")" || true
}

# piv_tally_init: pass/fail counting for tests that report
# "N passed, N failed (S s)": sets passed=0, failed=0 and t_start, and
# defines `ok MSG` (count a pass, print "PASS: MSG") and `summary`.
# shellcheck disable=SC2317 # ok and summary are called by the test script
piv_tally_init() {
    passed=0
    failed=0
    t_start=$(date +%s)
    summary() {
        echo "$passed passed, $failed failed ($(($(date +%s) - t_start)) s)"
    }
    ok() {
        passed=$((passed + 1))
        echo "PASS: $*"
    }
}

# piv_wait_card_bin: set PIV_WAIT_CARD to a pcsc_wait_card binary: the one
# in $PCSC_WAIT_CARD, or one built by make, or compile it into PIV_TMP.
piv_wait_card_bin() {
    [ -n "${PIV_WAIT_CARD:-}" ] && [ -x "$PIV_WAIT_CARD" ] && return 0
    for piv__b in "${PCSC_WAIT_CARD:-}" "${builddir:-.}/pcsc_wait_card" \
                  "${builddir:-.}/tests/piv/pcsc_wait_card" \
                  "${builddir:-.}/piv/pcsc_wait_card" \
                  "$PIV_SRCDIR/pcsc_wait_card"; do
        if [ -n "$piv__b" ] && [ -f "$piv__b" ] && [ -x "$piv__b" ]; then
            PIV_WAIT_CARD=$piv__b
            return 0
        fi
    done
    PIV_WAIT_CARD=$PIV_TMP/pcsc_wait_card
    # shellcheck disable=SC2046 # pkg-config output is a word list
    ${CC:-cc} -Wall -Wextra -O2 -o "$PIV_WAIT_CARD" \
        "$PIV_SRCDIR/pcsc_wait_card.c" \
        $(pkg-config --cflags --libs libpcsclite) || {
        echo "piv_wait_card_bin: cannot build pcsc_wait_card" >&2
        return 1
    }
}

# piv_wait_card [TIMEOUT_MS [READER_SUBSTRING]]: wait until a card is present
# (default 5000 ms, any reader).  On timeout prints the card log, returns 1.
piv_wait_card() {
    piv_wait_card_bin || return 1
    if [ -n "${2:-}" ]; then
        set -- "${1:-5000}" -r "$2"
    else
        set -- "${1:-5000}"
    fi
    piv__t=$1
    shift
    if ! "$PIV_WAIT_CARD" "$@" "$piv__t" >/dev/null; then
        echo "piv_wait_card: no card after ${piv__t} ms" >&2
        [ -n "${PIV_CARD_LOG:-}" ] && [ -f "$PIV_CARD_LOG" ] &&
            tail -n 20 "$PIV_CARD_LOG" >&2
        return 1
    fi
}

# piv_wait_no_card [TIMEOUT_MS [READER_SUBSTRING]]: wait until no card is
# present (e.g. after piv_stop of a card or a remove-on-* fault).
piv_wait_no_card() {
    piv_wait_card_bin || return 1
    if [ -n "${2:-}" ]; then
        "$PIV_WAIT_CARD" -a -r "$2" "${1:-5000}" >/dev/null
    else
        "$PIV_WAIT_CARD" -a "${1:-5000}" >/dev/null
    fi
}

# piv_state_retries STATEFILE: print the card's PIN retry counter.
piv_state_retries() {
    sed -n 's/^retries //p' "$1"
}

# piv_state_count STATEFILE INS: print how many APDUs with INS (2 hex digits,
# upper case, e.g. 87) the card received, chained fragments included.
# State file lines: "retries N", "verified 0|1", then one line per event
# ("event poweron|poweroff|reset|connected|disconnected|removed|init") or
# APDU ("apdu INS cla=CC p1=P1 p2=P2 lc=N le=N|- sw=XXXX|REMOVED t=SECONDS"),
# t = seconds since the card process started.
piv_state_count() {
    grep -c "^apdu $2 " "$1" || true
}

# piv_state_commands STATEFILE INS: like piv_state_count, but counts whole
# commands: the fragments of a chain (CLA 1x) are not counted.
piv_state_commands() {
    grep "^apdu $2 " "$1" | grep -c -v " cla=1" || true
}

# piv_opensc_env: private, minimal OpenSC config (no file cache, no PIN
# cache) and private HOME/XDG_CACHE_HOME, so OpenSC runs are independent.
piv_opensc_env() {
    mkdir -p "$PIV_TMP/opensc-home"
    cat > "$PIV_TMP/opensc.conf" <<'EOF'
app default {
    use_file_caching = no;
    use_pin_caching = false;
    framework pkcs15 {
        use_file_caching = no;
    }
}
EOF
    OPENSC_CONF=$PIV_TMP/opensc.conf
    HOME=$PIV_TMP/opensc-home
    XDG_CACHE_HOME=$PIV_TMP/opensc-home/.cache
    export OPENSC_CONF HOME XDG_CACHE_HOME
}

# piv_make_certs DIR [USER]: a tiny CA (ca.crt/ca.key) and user certificates
# rsa2048, p256, p384 (DIR/NAME.crt, DIR/NAME.key, PEM, unencrypted) with
# keyUsage=digitalSignature, extendedKeyUsage=clientAuth,emailProtection and
# subjectAltName email:USER@example.test (USER defaults to pstest).
piv_make_certs() {
    piv__dir=$1
    piv__user=${2:-pstest}
    mkdir -p "$piv__dir"
    (
        cd "$piv__dir" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key \
            -out ca.crt -days 3650 -subj "/O=PSTest/CN=PSTest Test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            2>/dev/null || exit 1
        cat > user.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth,emailProtection
subjectAltName=email:$piv__user@example.test
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
            -out rsa2048.key 2>/dev/null || exit 1
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
            -out p256.key 2>/dev/null || exit 1
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 \
            -out p384.key 2>/dev/null || exit 1
        piv__serial=1000
        for piv__k in rsa2048 p256 p384; do
            piv__serial=$((piv__serial + 1))
            openssl req -new -key "$piv__k.key" -out "$piv__k.csr" \
                -subj "/O=PSTest/CN=$piv__user $piv__k" 2>/dev/null || exit 1
            openssl x509 -req -in "$piv__k.csr" -CA ca.crt -CAkey ca.key \
                -set_serial "$piv__serial" -days 3650 -sha256 \
                -extfile user.ext -out "$piv__k.crt" 2>/dev/null || exit 1
            rm -f "$piv__k.csr"
        done
    ) || {
        echo "piv_make_certs: openssl failed in $piv__dir" >&2
        return 1
    }
}
