#!/bin/sh
# Installs the Debian 12 packages that building, the demo and the test
# suite need. Safe to run again: apt-get skips what is already present.
set -eu

PACKAGES="
  build-essential autoconf automake libtool pkg-config
  libpam0g-dev libssl-dev libpcsclite-dev check zlib1g-dev libldap-dev
  pcscd vsmartcard-vpcd pcsc-tools opensc
  libpam-wrapper libnss-wrapper pamtester libpam-runtime
  python3 python3-cryptography python3-paramiko
  openssh-server openssh-client openvpn iproute2
  openssl valgrind hyperfine clang libclang-rt-14-dev
  libpam-p11 libpam-pkcs11
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
