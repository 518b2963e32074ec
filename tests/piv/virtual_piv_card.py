#!/usr/bin/python3
# virtual_piv_card.py - test fixture: a virtual PIV card (NIST SP 800-73-4)
# that plugs into a real pcscd through vsmartcard's vpcd reader driver.
#
# The card connects to vpcd on 127.0.0.1:PORT (vpcd listens; DEVICENAME
# /dev/null:PORT in reader.conf).  It serves the PIV application: SELECT,
# GET DATA, VERIFY, GENERAL AUTHENTICATE, GET RESPONSE, command chaining,
# and can misbehave on demand (--fault) so tests can exercise error paths.
# It is a test tool only: keys are plain PEM files, nothing is protected.
#
# Run with /usr/bin/python3 (needs python3-cryptography).  See --help.

import argparse
import gzip
import os
import random
import socket
import struct
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

# ---------------------------------------------------------------------------
# Constants (SP 800-73-4 Part 1 and Part 2)

PIV_AID = bytes.fromhex("A000000308000010000100")
PIV_AID_MIN_PREFIX = 5                     # A0 00 00 03 08 (truncated AID)

INS_SELECT = 0xA4
INS_GET_DATA = 0xCB
INS_VERIFY = 0x20
INS_GENERAL_AUTHENTICATE = 0x87
INS_GET_RESPONSE = 0xC0

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_STATUS = 0x6982
SW_AUTH_BLOCKED = 0x6983
SW_CONDITIONS = 0x6985
SW_LAST_CHAIN_EXPECTED = 0x6883
SW_WRONG_DATA = 0x6A80
SW_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6A86
SW_REF_NOT_FOUND = 0x6A88
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_NO_PRECISE_DIAG = 0x6F00

# key reference -> (GET DATA object tag, PIN policy)
# PIN policy: "once" = PIN verified once per card session,
#             "always" = PIN verified right before every use (9C),
#             "never" = no PIN (9E card authentication key).
SLOTS = {
    0x9A: (0x5FC105, "once"),     # PIV authentication
    0x9C: (0x5FC10A, "always"),   # digital signature
    0x9D: (0x5FC10B, "once"),     # key management
    0x9E: (0x5FC101, "never"),    # card authentication
}
for _i in range(20):              # retired key management keys 82..95
    SLOTS[0x82 + _i] = (0x5FC10D + _i, "once")

TAG_CHUID = 0x5FC102
TAG_CCC = 0x5FC107
TAG_DISCOVERY = 0x7E

ALG_RSA = {1024: 0x06, 2048: 0x07, 3072: 0x05, 4096: 0x16}
ALG_EC = {"secp256r1": (0x11, 32, hashes.SHA256()),
          "secp384r1": (0x14, 48, hashes.SHA384())}

# T=1 only ATR: 3B 8A 80 01 + 10 historical bytes + TCK
_HIST = b"PSTest-PIV"


def _default_atr():
    body = bytes([0x80 | len(_HIST), 0x80, 0x01]) + _HIST
    tck = 0
    for b in body:
        tck ^= b
    return bytes([0x3B]) + body + bytes([tck])


FAULTS = ("garbage", "truncated", "remove-on-sign", "remove-on-verify",
          "bad-sw", "bad-sig")


class CardRemoved(Exception):
    """Raised to simulate pulling the card out of the reader."""


class ApduError(Exception):
    def __init__(self, sw):
        super().__init__("SW %04X" % sw)
        self.sw = sw


# ---------------------------------------------------------------------------
# BER-TLV helpers

def tlv_len(n):
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    if n <= 0xFFFF:
        return bytes([0x82, n >> 8, n & 0xFF])
    raise ValueError("TLV too long")


def tag_bytes(tag):
    if tag <= 0xFF:
        return bytes([tag])
    if tag <= 0xFFFF:
        return struct.pack(">H", tag)
    return bytes([tag >> 16, (tag >> 8) & 0xFF, tag & 0xFF])


def tlv(tag, value):
    return tag_bytes(tag) + tlv_len(len(value)) + value


def parse_tlvs(data):
    """Parse a flat sequence of BER-TLVs; ApduError(6A80) when malformed."""
    out = []
    i = 0
    n = len(data)
    while i < n:
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:            # multi-byte tag
            while True:
                if i >= n:
                    raise ApduError(SW_WRONG_DATA)
                b = data[i]
                i += 1
                tag = (tag << 8) | b
                if not b & 0x80:
                    break
                if tag > 0xFFFFFF:
                    raise ApduError(SW_WRONG_DATA)
        if i >= n:
            raise ApduError(SW_WRONG_DATA)
        ln = data[i]
        i += 1
        if ln & 0x80:
            k = ln & 0x7F
            if k == 0 or k > 3 or i + k > n:
                raise ApduError(SW_WRONG_DATA)
            ln = int.from_bytes(data[i:i + k], "big")
            i += k
        if i + ln > n:
            raise ApduError(SW_WRONG_DATA)
        out.append((tag, data[i:i + ln]))
        i += ln
    return out


# ---------------------------------------------------------------------------
# APDU parsing (ISO 7816-4 short and extended length)

class Apdu:
    __slots__ = ("raw", "cla", "ins", "p1", "p2", "data", "le", "extended")

    def __init__(self, raw):
        self.raw = raw
        n = len(raw)
        if n < 4:
            raise ApduError(SW_WRONG_LENGTH)
        self.cla, self.ins, self.p1, self.p2 = raw[0], raw[1], raw[2], raw[3]
        self.data = b""
        self.le = None
        self.extended = False
        if n == 4:                                      # case 1
            return
        if n == 5:                                      # case 2 short
            self.le = raw[4] or 256
            return
        if raw[4] != 0:                                 # case 3/4 short
            lc = raw[4]
            if n == 5 + lc:
                self.data = raw[5:]
            elif n == 6 + lc:
                self.data = raw[5:-1]
                self.le = raw[-1] or 256
            else:
                raise ApduError(SW_WRONG_LENGTH)
            return
        self.extended = True                            # extended length
        if n < 7:
            raise ApduError(SW_WRONG_LENGTH)
        if n == 7:                                      # case 2 extended
            self.le = ((raw[5] << 8) | raw[6]) or 65536
            return
        lc = (raw[5] << 8) | raw[6]
        if lc == 0:
            raise ApduError(SW_WRONG_LENGTH)
        if n == 7 + lc:
            self.data = raw[7:]
        elif n == 9 + lc:
            self.data = raw[7:-2]
            self.le = ((raw[-2] << 8) | raw[-1]) or 65536
        else:
            raise ApduError(SW_WRONG_LENGTH)


# ---------------------------------------------------------------------------
# Key slots

class Slot:
    def __init__(self, ref, cert_der, key):
        self.ref = ref
        self.tag, self.pin_policy = SLOTS[ref]
        self.cert_der = cert_der
        self.key = key
        self.alg = None
        self.ec_len = None
        self.ec_hash = None
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size not in ALG_RSA:
                raise SystemExit("slot %02x: unsupported RSA size %d"
                                 % (ref, key.key_size))
            self.alg = ALG_RSA[key.key_size]
            nums = key.private_numbers()
            self.rsa_n = nums.public_numbers.n
            self.rsa_d = nums.d
            self.rsa_len = (key.key_size + 7) // 8
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name not in ALG_EC:
                raise SystemExit("slot %02x: unsupported curve %s"
                                 % (ref, key.curve.name))
            self.alg, self.ec_len, self.ec_hash = ALG_EC[key.curve.name]
        elif key is not None:
            raise SystemExit("slot %02x: unsupported key type" % ref)

    def sign(self, block):
        """Raw PIV signature of the challenge block; ApduError on bad input."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            # Raw RSA: the host already applied the PKCS#1 padding.
            if len(block) != self.rsa_len:
                raise ApduError(SW_WRONG_DATA)
            m = int.from_bytes(block, "big")
            if m >= self.rsa_n:
                raise ApduError(SW_WRONG_DATA)
            return pow(m, self.rsa_d, self.rsa_n).to_bytes(self.rsa_len, "big")
        # ECDSA over a digest.  SP 800-73-4 / FIPS 186-4: a digest longer
        # than the order is truncated to its leftmost bits; a shorter one is
        # the same integer when left-padded with zero bytes.
        if not block:
            raise ApduError(SW_WRONG_DATA)
        if len(block) > self.ec_len:
            block = block[:self.ec_len]
        elif len(block) < self.ec_len:
            block = bytes(self.ec_len - len(block)) + block
        return self.key.sign(block, ec.ECDSA(utils.Prehashed(self.ec_hash)))


def load_slot(spec):
    try:
        ref_s, cert_path, key_path = spec.split(":", 2)
        ref = int(ref_s, 16)
    except ValueError:
        raise SystemExit("--slot wants SLOT:CERTFILE:KEYFILE, got %r" % spec)
    if ref not in SLOTS:
        raise SystemExit("--slot: unknown key reference %s" % ref_s)
    cert_der = None
    key = None
    if cert_path:
        with open(cert_path, "rb") as f:
            pem = f.read()
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            cert = x509.load_der_x509_certificate(pem)
        cert_der = cert.public_bytes(serialization.Encoding.DER)
    if key_path:
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    if cert_der and key is not None:
        cpub = cert.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        kpub = key.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        if cpub != kpub:
            sys.stderr.write("virtual_piv_card: warning: slot %02X key does "
                             "not match its certificate\n" % ref)
    return Slot(ref, cert_der, key)


# ---------------------------------------------------------------------------
# The card application

class PivCard:
    def __init__(self, args, slots):
        self.pin = args.pin.encode("ascii")
        self.retries = args.retries
        self.max_retries = max(args.max_retries, args.retries)
        self.gzip = args.gzip
        self.chunk = args.chunk
        self.faults = set(args.fault or ())
        self.slots = {s.ref: s for s in slots}
        self.verbose = args.verbose
        self.state_path = args.state
        self.log = []
        self.t0 = time.monotonic()
        self.guid = bytes.fromhex(args.guid) if args.guid else os.urandom(16)
        self.objects = self._build_objects()
        self.power_reset("init")

    # -- data objects ------------------------------------------------------
    def _build_objects(self):
        objs = {}
        fascn = b"\xd4" + bytes(range(0x31, 0x31 + 24))   # synthetic FASC-N
        chuid = (tlv(0x30, fascn) + tlv(0x34, self.guid) +
                 tlv(0x35, b"20351231") + tlv(0x3E, b"") + tlv(0xFE, b""))
        objs[TAG_CHUID] = tlv(0x53, chuid)
        card_id = bytes.fromhex("A000000116FF02") + self.guid[:14]
        ccc = (tlv(0xF0, card_id) + tlv(0xF1, b"\x21") + tlv(0xF2, b"\x21") +
               tlv(0xF3, b"") + tlv(0xF4, b"\x00") + tlv(0xF5, b"\x10") +
               tlv(0xF6, b"") + tlv(0xF7, b"") + tlv(0xFA, b"") +
               tlv(0xFB, b"") + tlv(0xFC, b"") + tlv(0xFD, b"") +
               tlv(0xFE, b""))
        objs[TAG_CCC] = tlv(0x53, ccc)
        # Discovery object: PIN usage policy 40 00 = PIV application PIN only.
        objs[TAG_DISCOVERY] = tlv(0x7E, tlv(0x4F, PIV_AID) +
                                  tlv(0x5F2F, b"\x40\x00"))
        for s in self.slots.values():
            if s.cert_der is None:
                continue
            if self.gzip:
                body = gzip.compress(s.cert_der, mtime=0)
                info = b"\x01"
            else:
                body = s.cert_der
                info = b"\x00"
            obj = tlv(0x53, tlv(0x70, body) + tlv(0x71, info) + tlv(0xFE, b""))
            if "truncated" in self.faults:
                obj = obj[:max(8, len(obj) // 2)]
            objs[s.tag] = obj
        return objs

    def apt(self):
        algs = b"".join(tlv(0x80, bytes([a])) for a in (0x07, 0x11, 0x14))
        return tlv(0x61, tlv(0x4F, PIV_AID[5:]) +
                   tlv(0x79, tlv(0x4F, PIV_AID[:5])) +
                   tlv(0x50, b"PSTest virtual PIV") +
                   tlv(0xAC, algs + tlv(0x06, b"\x00")))

    # -- session state -----------------------------------------------------
    def power_reset(self, why):
        self.selected = False
        self.pin_verified = False
        self.pin_always_armed = False
        self.pending = b""           # data awaiting GET RESPONSE
        self.chain = None            # (cla&~0x10, ins, p1, p2, data)
        self.event(why)

    def event(self, what):
        self.log.append("event %s t=%.3f" % (what, time.monotonic() - self.t0))
        self.write_state()

    def write_state(self):
        if not self.state_path:
            return
        lines = ["retries %d" % self.retries,
                 "verified %d" % int(self.pin_verified)] + self.log
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.state_path)

    def dbg(self, msg):
        if self.verbose:
            sys.stderr.write("virtual_piv_card: %s\n" % msg)
            sys.stderr.flush()

    # -- APDU dispatch -----------------------------------------------------
    def process(self, raw):
        """Return the R-APDU for a C-APDU; raise CardRemoved for faults."""
        shown = raw
        if len(raw) > 5 and raw[1] == INS_VERIFY:
            shown = raw[:5] + b"\x2a" * (len(raw) - 5)        # mask the PIN
        self.dbg("> %s" % shown.hex().upper())
        hdr = raw[:4].ljust(4, b"\x00")
        try:
            resp = self._process(raw)
        except CardRemoved:
            self._log_apdu(hdr, raw, None)
            raise
        except ApduError as e:
            resp = struct.pack(">H", e.sw)
        except Exception as e:          # never die on a malformed APDU
            self.dbg("internal error: %r" % e)
            resp = struct.pack(">H", SW_NO_PRECISE_DIAG)
        self._log_apdu(hdr, raw, resp)
        self.dbg("< %s" % resp.hex().upper())
        return resp

    def _log_apdu(self, hdr, raw, resp):
        try:
            a = Apdu(raw)
            lc = "lc=%d" % len(a.data)
            le = "le=%d" % a.le if a.le is not None else "le=-"
        except ApduError:
            lc, le = "lc=?", "le=?"
        sw = "REMOVED" if resp is None else resp[-2:].hex().upper()
        self.log.append("apdu %02X cla=%02X p1=%02X p2=%02X %s %s sw=%s t=%.3f"
                        % (hdr[1], hdr[0], hdr[2], hdr[3], lc, le, sw,
                           time.monotonic() - self.t0))
        self.write_state()

    def _process(self, raw):
        apdu = Apdu(raw)
        if apdu.cla & ~0x10 & 0xFF:
            raise ApduError(SW_CLA_NOT_SUPPORTED)
        if apdu.ins == INS_GET_RESPONSE:
            return self._get_response(apdu)
        self.pending = b""

        # command chaining (ISO 7816-4 5.1.1.1)
        key = (apdu.ins, apdu.p1, apdu.p2)
        if self.chain is not None and self.chain[0] != key:
            self.dbg("chain aborted by a different command")
            self.chain = None
        if apdu.cla & 0x10:
            if self.chain is None:
                self.chain = (key, b"")
            data = self.chain[1] + apdu.data
            if len(data) > 8192:
                self.chain = None
                raise ApduError(SW_WRONG_LENGTH)
            self.chain = (key, data)
            return struct.pack(">H", SW_OK)
        if self.chain is not None:
            apdu.data = self.chain[1] + apdu.data
            self.chain = None

        if apdu.ins == INS_SELECT:
            data = self._select(apdu)
        elif not self.selected:
            raise ApduError(SW_CONDITIONS if apdu.ins in
                            (INS_GET_DATA, INS_VERIFY,
                             INS_GENERAL_AUTHENTICATE)
                            else SW_INS_NOT_SUPPORTED)
        elif apdu.ins == INS_GET_DATA:
            data = self._get_data(apdu)
        elif apdu.ins == INS_VERIFY:
            data = self._verify(apdu)
        elif apdu.ins == INS_GENERAL_AUTHENTICATE:
            data = self._general_authenticate(apdu)
        else:
            raise ApduError(SW_INS_NOT_SUPPORTED)
        return self._respond(apdu, data)

    def _respond(self, apdu, data):
        if not data:
            return struct.pack(">H", SW_OK)
        if self.chunk and len(data) > self.chunk:
            # T=0 style: no data now, the host must send GET RESPONSE
            self.pending = data
            return bytes([0x61, min(len(data), 256) & 0xFF])
        limit = apdu.le if apdu.le is not None else (
            65536 if apdu.extended else 256)
        if len(data) <= limit:
            return data + struct.pack(">H", SW_OK)
        self.pending = data[limit:]
        return data[:limit] + bytes([0x61, min(len(self.pending), 256) & 0xFF])

    def _get_response(self, apdu):
        if apdu.p1 or apdu.p2:
            self.pending = b""
            raise ApduError(SW_WRONG_P1P2)
        if not self.pending:
            raise ApduError(SW_CONDITIONS)
        n = apdu.le if apdu.le is not None else 256
        if self.chunk:
            n = min(n, self.chunk)
        out, self.pending = self.pending[:n], self.pending[n:]
        if self.pending:
            return out + bytes([0x61, min(len(self.pending), 256) & 0xFF])
        return out + struct.pack(">H", SW_OK)

    # -- SELECT ------------------------------------------------------------
    def _select(self, apdu):
        if apdu.p1 != 0x04 or apdu.p2 not in (0x00, 0x0C):
            raise ApduError(SW_WRONG_P1P2)
        aid = apdu.data
        if (len(aid) < PIV_AID_MIN_PREFIX or len(aid) > len(PIV_AID) or
                PIV_AID[:len(aid)] != aid):
            # Another application: not found; the PIV application (if it
            # was selected) stays selected, as on a real card.
            raise ApduError(SW_NOT_FOUND)
        # A re-SELECT keeps the PIN state (security status is per card
        # session, not per selection).
        self.selected = True
        return b"" if apdu.p2 == 0x0C else self.apt()

    # -- GET DATA ----------------------------------------------------------
    def _get_data(self, apdu):
        if apdu.p1 != 0x3F or apdu.p2 != 0xFF:
            raise ApduError(SW_WRONG_P1P2)
        d = apdu.data
        if len(d) < 3 or d[0] != 0x5C or d[1] != len(d) - 2 or d[1] > 3:
            raise ApduError(SW_WRONG_DATA)
        tag = int.from_bytes(d[2:], "big")
        if "garbage" in self.faults:
            return os.urandom(random.randint(1, 300))
        obj = self.objects.get(tag)
        if obj is None:
            raise ApduError(SW_NOT_FOUND)
        return obj

    # -- VERIFY ------------------------------------------------------------
    def _verify(self, apdu):
        if apdu.p1 == 0xFF:                   # reset security status
            if apdu.data or apdu.p2 != 0x80:
                raise ApduError(SW_WRONG_P1P2 if apdu.p2 != 0x80
                                else SW_WRONG_DATA)
            self.pin_verified = False
            self.pin_always_armed = False
            self.write_state()
            return b""
        if apdu.p1 != 0x00:
            raise ApduError(SW_WRONG_P1P2)
        if apdu.p2 != 0x80:
            raise ApduError(SW_REF_NOT_FOUND)
        if not apdu.data:                     # status query, spends no try
            if self.retries == 0:
                raise ApduError(SW_AUTH_BLOCKED)
            if self.pin_verified:
                return b""
            raise ApduError(0x63C0 | min(self.retries, 15))
        if "remove-on-verify" in self.faults:
            raise CardRemoved()
        if len(apdu.data) != 8:
            raise ApduError(SW_WRONG_DATA)
        if self.retries == 0:
            raise ApduError(SW_AUTH_BLOCKED)
        pin = apdu.data.rstrip(b"\xff")
        if len(pin) < 6 or b"\xff" in pin:      # malformed PIN block
            raise ApduError(SW_WRONG_DATA)
        if pin == self.pin:
            self.retries = self.max_retries
            self.pin_verified = True
            self.pin_always_armed = True
            self.write_state()
            return b""
        self.retries -= 1
        self.pin_verified = False
        self.pin_always_armed = False
        self.write_state()
        raise ApduError(0x63C0 | min(self.retries, 15))

    # -- GENERAL AUTHENTICATE ----------------------------------------------
    def _general_authenticate(self, apdu):
        if "remove-on-sign" in self.faults:
            raise CardRemoved()
        slot = self.slots.get(apdu.p2)
        if slot is None or slot.key is None or slot.alg != apdu.p1:
            raise ApduError(SW_WRONG_P1P2)
        if slot.pin_policy == "once" and not self.pin_verified:
            raise ApduError(SW_SECURITY_STATUS)
        if slot.pin_policy == "always" and not (self.pin_verified and
                                                self.pin_always_armed):
            raise ApduError(SW_SECURITY_STATUS)
        outer = parse_tlvs(apdu.data)
        if len(outer) != 1 or outer[0][0] != 0x7C:
            raise ApduError(SW_WRONG_DATA)
        inner = dict()
        for t, v in parse_tlvs(outer[0][1]):
            if t in inner:
                raise ApduError(SW_WRONG_DATA)
            inner[t] = v
        if set(inner) != {0x81, 0x82} or inner[0x82] != b"":
            raise ApduError(SW_WRONG_DATA)
        if slot.pin_policy == "always":
            self.pin_always_armed = False       # one signature per VERIFY
        challenge = inner[0x81]
        if "bad-sig" in self.faults and challenge:
            challenge = challenge[:-1] + bytes([challenge[-1] ^ 0x01])
        sig = slot.sign(challenge)
        if "bad-sw" in self.faults:
            raise ApduError(SW_NO_PRECISE_DIAG)
        return tlv(0x7C, tlv(0x82, sig))


# ---------------------------------------------------------------------------
# vpcd transport

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        # vpcd writes the 2-byte length and the payload with two send()s
        # and does not disable Nagle, so its payload waits for our ACK of
        # the length; without QUICKACK the kernel delays that ACK by ~40 ms
        # for every APDU.  QUICKACK is not sticky: set it before each recv.
        if _QUICKACK is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def send_frame(sock, payload):
    sock.sendall(struct.pack(">H", len(payload)) + payload)


def connect(port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError:
            s.close()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def serve(sock, card, atr):
    """Serve one vpcd connection; return 'closed' or 'removed'."""
    while True:
        hdr = recv_exact(sock, 2)
        if hdr is None:
            return "closed"
        (n,) = struct.unpack(">H", hdr)
        payload = recv_exact(sock, n) if n else b""
        if payload is None:
            return "closed"
        if n == 0:
            continue
        if n == 1:
            code = payload[0]
            if code == 0x04:                    # ATR request / presence poll
                send_frame(sock, atr)
            elif code == 0x00:
                card.power_reset("poweroff")
            elif code == 0x01:
                card.power_reset("poweron")
            elif code == 0x02:
                card.power_reset("reset")
            else:
                card.dbg("unknown vpcd control code %02X" % code)
            continue
        try:
            resp = card.process(payload)
        except CardRemoved:
            card.event("removed")
            return "removed"
        send_frame(sock, resp)


def build_parser():
    ap = argparse.ArgumentParser(
        description="Virtual PIV card (SP 800-73-4) for vsmartcard vpcd.")
    ap.add_argument("--port", type=int, required=True,
                    help="vpcd port; the card connects to 127.0.0.1:PORT")
    ap.add_argument("--slot", action="append", default=[],
                    metavar="SLOT:CERTFILE:KEYFILE",
                    help="key slot 9a/9c/9d/9e/82..95 with PEM certificate "
                         "and PEM private key (either may be empty)")
    ap.add_argument("--pin", default="123456", help="PIN (6-8 characters)")
    ap.add_argument("--retries", type=int, default=3,
                    help="PIN tries left at start (0 = blocked)")
    ap.add_argument("--max-retries", type=int, default=3,
                    help="value the counter is reset to by a correct PIN")
    ap.add_argument("--gzip", action="store_true",
                    help="store certificates gzip-compressed (CertInfo 01)")
    ap.add_argument("--chunk", type=int, default=0, metavar="N",
                    help="answer responses longer than N bytes with 61xx "
                         "only; GET RESPONSE returns at most N bytes")
    ap.add_argument("--fault", action="append", choices=FAULTS,
                    help="misbehave on purpose (repeatable)")
    ap.add_argument("--state", metavar="FILE",
                    help="keep FILE updated with the retry counter, the "
                         "verified flag and one line per APDU/event")
    ap.add_argument("--guid", help="CHUID GUID, 32 hex digits "
                                   "(default: random)")
    ap.add_argument("--atr", help="ATR in hex (default: a T=1 ATR)")
    ap.add_argument("--connect-timeout", type=float, default=30.0,
                    help="seconds to keep trying to reach vpcd")
    ap.add_argument("--reinsert-after", type=float, default=None,
                    metavar="SECONDS",
                    help="after a remove-on-* fault, reconnect after this "
                         "delay (the fault fires once); default: exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)

    if not (6 <= len(args.pin) <= 8) or not args.pin.isascii():
        ap.error("--pin must be 6 to 8 ASCII characters")
    if not 0 <= args.retries <= 15 or not 1 <= args.max_retries <= 15:
        ap.error("--retries must be 0..15, --max-retries 1..15")
    if args.chunk < 0:
        ap.error("--chunk must be >= 0")
    if args.guid and len(bytes.fromhex(args.guid)) != 16:
        ap.error("--guid must be 16 bytes")
    atr = bytes.fromhex(args.atr) if args.atr else _default_atr()

    slots = [load_slot(s) for s in args.slot]
    card = PivCard(args, slots)
    card.dbg("ATR %s, slots %s, port %d" % (
        atr.hex().upper(), " ".join("%02X" % s.ref for s in slots),
        args.port))

    while True:
        sock = connect(args.port, args.connect_timeout)
        if sock is None:
            sys.stderr.write("virtual_piv_card: cannot connect to vpcd on "
                             "127.0.0.1:%d\n" % args.port)
            return 2
        card.event("connected")
        try:
            how = serve(sock, card, atr)
        except OSError as e:
            card.dbg("connection error: %r" % e)
            how = "closed"
        finally:
            sock.close()
        card.power_reset("disconnected")
        if how == "removed":
            if args.reinsert_after is None:
                return 0
            card.faults -= {"remove-on-sign", "remove-on-verify"}
            time.sleep(args.reinsert_after)
        # vpcd closed the connection (pcscd stopped): try to come back.


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
