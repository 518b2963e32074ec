#!/bin/sh
# pcscd-private.sh - test fixture: run a private pcscd (as root) that serves
# only vsmartcard vpcd readers on the given ports and does not collide with a
# system pcscd.
#
# usage: pcscd-private.sh RUNDIR PORT [PORT2...]
#
# Writes RUNDIR/reader.conf.d/ with one vpcd reader per PORT (FRIENDLYNAME
# "PSTest vpcd PORT"; each entry opens the two vpcd slots PORT and PORT+1,
# so ports must be at least 2 apart), then execs pcscd --foreground in a
# private mount namespace in which RUNDIR/run is bind-mounted over
# /run/pcscd.  Because everything execs, the caller's $! is pcscd's own PID:
# kill "$pid"; wait "$pid"  stops it.
# Clients must use  PCSCLITE_CSOCK_NAME=RUNDIR/run/pcscd.comm
# Extra pcscd options can be passed in PSTEST_PCSCD_ARGS (e.g. "--debug --apdu").
#
# vpcd (vsmartcard 3.3) keeps its connections in a static array indexed by
# the slot number only (Lun & 0xffff), so two readers served by the same
# loaded libifdvpcd.so overwrite each other's state (a card shows up in the
# wrong reader, or never).  Every reader after the first therefore gets its
# own copy RUNDIR/lib/libifdvpcd-PORT.so, which pcscd dlopen()s as a separate
# object with separate statics.
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 RUNDIR PORT [PORT2...]" >&2
    exit 64
fi
if [ "$(id -u)" != 0 ]; then
    echo "$0: must run as root (mount namespace + bind mount)" >&2
    exit 77
fi

rundir=$1
shift
vpcd_lib=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
if [ ! -e "$vpcd_lib" ]; then
    echo "$0: $vpcd_lib missing (install vsmartcard-vpcd)" >&2
    exit 77
fi

mkdir -p "$rundir/reader.conf.d" "$rundir/run" "$rundir/lib" /run/pcscd
# Non-root clients must be able to reach the socket.
chmod 755 "$rundir" "$rundir/run" "$rundir/reader.conf.d" "$rundir/lib"
rm -f "$rundir"/reader.conf.d/vpcd-* "$rundir"/lib/libifdvpcd-*.so

first=1
for port in "$@"; do
    case $port in
        ''|*[!0-9]*) echo "$0: bad port '$port'" >&2; exit 64 ;;
    esac
    if [ "$port" -lt 1 ] || [ "$port" -gt 65534 ]; then
        echo "$0: port $port out of range" >&2
        exit 64
    fi
    if [ "$first" = 1 ]; then
        lib=$vpcd_lib
        first=0
    else
        lib=$rundir/lib/libifdvpcd-$port.so
        cp "$vpcd_lib" "$lib"
    fi
    cat > "$rundir/reader.conf.d/vpcd-$port" <<EOF
FRIENDLYNAME "PSTest vpcd $port"
DEVICENAME   /dev/null:$port
LIBPATH      $lib
CHANNELID    $port
EOF
done

# The single quotes are intended: $0 and $@ expand in the inner sh.
# shellcheck disable=SC2016,SC2086 # PSTEST_PCSCD_ARGS is split on purpose
exec unshare --mount --propagation private \
    sh -c 'mount --bind "$0" /run/pcscd && exec pcscd --foreground "$@"' \
    "$rundir/run" -c "$rundir/reader.conf.d" ${PSTEST_PCSCD_ARGS:-}
