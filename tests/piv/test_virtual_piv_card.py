#!/usr/bin/python3
# test_virtual_piv_card.py - offline self-test of the virtual PIV card's APDU
# semantics (no pcscd needed): drives PivCard.process() directly with
# SELECT / GET DATA / VERIFY / GENERAL AUTHENTICATE / GET RESPONSE, chaining,
# extended length, faults, and a random-APDU robustness run.
# Run: /usr/bin/python3 tests/piv/test_virtual_piv_card.py   (exit 0 = pass)

import gzip
import hashlib
import os
import random
import sys
import tempfile
import unittest
from datetime import datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import virtual_piv_card as vpc  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

SELECT = bytes.fromhex("00A404000BA000000308000010000100")
SELECT_SHORT = bytes.fromhex("00A4040005A000000308")
GOOD_PIN = b"123456\xff\xff"
BAD_PIN = b"654321\xff\xff"
KEYS = {}


def setUpModule():
    global TMP
    TMP = tempfile.TemporaryDirectory()
    for name, key in (("rsa", rsa.generate_private_key(65537, 2048)),
                      ("p256", ec.generate_private_key(ec.SECP256R1())),
                      ("p384", ec.generate_private_key(ec.SECP384R1()))):
        subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.utcnow()
        cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj)
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(now).not_valid_after(now + timedelta(1))
                .sign(key, hashes.SHA256()))
        kp = os.path.join(TMP.name, name + ".key")
        cp = os.path.join(TMP.name, name + ".crt")
        with open(kp, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(cp, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        KEYS[name] = (key, cert, cp, kp)


def tearDownModule():
    TMP.cleanup()


def make_card(*extra, slots=(("9a", "rsa"), ("9c", "p256"), ("9e", "p384"))):
    argv = ["--port", "1"]
    for ref, name in slots:
        argv += ["--slot", "%s:%s:%s" % (ref, KEYS[name][2], KEYS[name][3])]
    argv += list(extra)
    ns = vpc.build_parser().parse_args(argv)
    return vpc.PivCard(ns, [vpc.load_slot(s) for s in ns.slot])


def sw(resp):
    return resp[-2:].hex().upper()


def apdu(cla, ins, p1, p2, data=b"", le=None):
    out = bytes([cla, ins, p1, p2])
    if data:
        out += bytes([len(data)]) + data
    if le is not None:
        out += bytes([le & 0xFF])
    return out


def get_data(tag):
    t = tag.to_bytes(3 if tag > 0xFF else 1, "big")
    return apdu(0, 0xCB, 0x3F, 0xFF, bytes([0x5C, len(t)]) + t, 0)


def ga_data(challenge):
    inner = vpc.tlv(0x82, b"") + vpc.tlv(0x81, challenge)
    return vpc.tlv(0x7C, inner)


def exchange(card, cmd):
    """Send cmd, follow 61xx with GET RESPONSE; return data, SW."""
    r = card.process(cmd)
    data = r[:-2]
    while r[-2] == 0x61:
        r = card.process(bytes([0, 0xC0, 0, 0, r[-1]]))
        data += r[:-2]
    return data, sw(r)


def send_chained(card, ins, p1, p2, data, size=255):
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    for c in chunks[:-1]:
        r = card.process(apdu(0x10, ins, p1, p2, c))
        assert sw(r) == "9000", sw(r)
    return exchange(card, apdu(0, ins, p1, p2, chunks[-1], 0))


def pkcs1_block(msg, nbytes=256):
    digest = hashlib.sha256(msg).digest()
    info = bytes.fromhex("3031300d060960864801650304020105000420") + digest
    return b"\x00\x01" + b"\xff" * (nbytes - 3 - len(info)) + b"\x00" + info


def sig_from(data):
    tl = vpc.parse_tlvs(data)
    assert tl[0][0] == 0x7C
    inner = vpc.parse_tlvs(tl[0][1])
    assert inner[0][0] == 0x82
    return inner[0][1]


class Select(unittest.TestCase):
    def test_select(self):
        c = make_card()
        self.assertEqual(sw(c.process(get_data(0x5FC105))), "6985")
        d, s = exchange(c, SELECT)
        self.assertEqual(s, "9000")
        self.assertEqual(d[0], 0x61)
        self.assertIn(bytes.fromhex("4F0600001000010079074F05A000000308"), d)
        self.assertEqual(exchange(c, SELECT_SHORT)[1], "9000")
        self.assertEqual(sw(c.process(bytes.fromhex("00A4040005A000000309"))),
                         "6A82")
        self.assertEqual(sw(c.process(bytes.fromhex("00A4000005A000000308"))),
                         "6A86")
        self.assertEqual(sw(c.process(bytes.fromhex("00A4040C05A000000308"))),
                         "9000")

    def test_unknown(self):
        c = make_card()
        c.process(SELECT)
        self.assertEqual(sw(c.process(bytes.fromhex("00FD000000"))), "6D00")
        self.assertEqual(sw(c.process(bytes.fromhex("80CB3FFF00"))), "6E00")
        self.assertEqual(sw(c.process(bytes.fromhex("00C0000000"))), "6985")
        self.assertEqual(sw(c.process(b"\x00\xa4")), "6700")
        self.assertEqual(sw(c.process(bytes.fromhex("00CB3FFF055C035F"))),
                         "6700")


class GetData(unittest.TestCase):
    def test_objects(self):
        c = make_card()
        c.process(SELECT)
        for ref, name, tag in ((0x9A, "rsa", 0x5FC105), (0x9C, "p256", 0x5FC10A),
                               (0x9E, "p384", 0x5FC101)):
            d, s = exchange(c, get_data(tag))
            self.assertEqual(s, "9000")
            outer = vpc.parse_tlvs(d)
            self.assertEqual(outer[0][0], 0x53)
            inner = dict(vpc.parse_tlvs(outer[0][1]))
            want = KEYS[name][1].public_bytes(serialization.Encoding.DER)
            self.assertEqual(inner[0x70], want)
            self.assertEqual(inner[0x71], b"\x00")
            self.assertEqual(inner[0xFE], b"")
        self.assertEqual(exchange(c, get_data(0x5FC10B))[1], "6A82")
        d, s = exchange(c, get_data(0x7E))
        self.assertEqual((s, d[0]), ("9000", 0x7E))
        self.assertEqual(exchange(c, get_data(0x5FC102))[1], "9000")
        self.assertEqual(exchange(c, get_data(0x5FC107))[1], "9000")
        self.assertEqual(sw(c.process(apdu(0, 0xCB, 0x3F, 0xFE,
                                           bytes.fromhex("5C035FC105"), 0))),
                         "6A86")
        self.assertEqual(sw(c.process(apdu(0, 0xCB, 0x3F, 0xFF,
                                           bytes.fromhex("5D035FC105"), 0))),
                         "6A80")

    def test_extended_and_short_le(self):
        c = make_card()
        c.process(SELECT)
        d, s = exchange(c, get_data(0x5FC105))
        r = c.process(get_data(0x5FC105))
        self.assertEqual(len(r), 258)
        self.assertEqual(r[-2], 0x61)
        ext = bytes.fromhex("00CB3FFF000005") + bytes.fromhex("5C035FC105") + b"\0\0"
        r = c.process(ext)
        self.assertEqual((r[:-2], sw(r)), (d, "9000"))

    def test_gzip(self):
        c = make_card("--gzip")
        c.process(SELECT)
        d, s = exchange(c, get_data(0x5FC105))
        inner = dict(vpc.parse_tlvs(vpc.parse_tlvs(d)[0][1]))
        self.assertEqual(inner[0x71], b"\x01")
        self.assertEqual(gzip.decompress(inner[0x70]),
                         KEYS["rsa"][1].public_bytes(serialization.Encoding.DER))

    def test_chunk(self):
        c = make_card("--chunk", "50")
        c.process(SELECT)
        r = c.process(get_data(0x5FC105))
        self.assertEqual(len(r), 2)
        self.assertEqual(r[0], 0x61)
        d, s = exchange(c, get_data(0x5FC105))
        self.assertEqual(s, "9000")
        self.assertTrue(all(len(x) <= 52 for x in [d[:50]]))
        n = 0
        r = c.process(get_data(0x5FC105))
        while r[-2] == 0x61:
            r = c.process(bytes([0, 0xC0, 0, 0, 0]))
            self.assertLessEqual(len(r) - 2, 50)
            n += 1
        self.assertGreater(n, 5)


class Verify(unittest.TestCase):
    def test_counter(self):
        c = make_card()
        c.process(SELECT)
        v = lambda pin=b"": sw(c.process(apdu(0, 0x20, 0, 0x80, pin)))  # noqa
        self.assertEqual(v(), "63C3")
        self.assertEqual(v(BAD_PIN), "63C2")
        self.assertEqual(v(), "63C2")
        self.assertEqual(v(GOOD_PIN), "9000")
        self.assertEqual(c.retries, 3)
        self.assertEqual(v(), "9000")
        c.process(SELECT)
        self.assertEqual(v(), "9000")          # re-SELECT keeps the PIN state
        c.power_reset("reset")
        c.process(SELECT)
        self.assertEqual(v(), "63C3")          # reset clears it
        self.assertEqual(v(b"123456"), "6A80")
        self.assertEqual(sw(c.process(apdu(0, 0x20, 0, 0x81, GOOD_PIN))), "6A88")
        self.assertEqual(v(BAD_PIN), "63C2")
        self.assertEqual(v(BAD_PIN), "63C1")
        self.assertEqual(v(BAD_PIN), "63C0")
        self.assertEqual(v(GOOD_PIN), "6983")
        self.assertEqual(v(), "6983")
        self.assertEqual(c.retries, 0)

    def test_blocked_and_reset_status(self):
        c = make_card("--retries", "0")
        c.process(SELECT)
        self.assertEqual(sw(c.process(apdu(0, 0x20, 0, 0x80, GOOD_PIN))), "6983")
        c = make_card()
        c.process(SELECT)
        c.process(apdu(0, 0x20, 0, 0x80, GOOD_PIN))
        self.assertEqual(sw(c.process(apdu(0, 0x20, 0xFF, 0x80))), "9000")
        self.assertEqual(sw(c.process(apdu(0, 0x20, 0, 0x80))), "63C3")


class Sign(unittest.TestCase):
    def test_rsa_chained(self):
        c = make_card()
        c.process(SELECT)
        block = pkcs1_block(b"hello")
        d, s = send_chained(c, 0x87, 0x07, 0x9A, ga_data(block))
        self.assertEqual(s, "6982")
        c.process(apdu(0, 0x20, 0, 0x80, GOOD_PIN))
        d, s = send_chained(c, 0x87, 0x07, 0x9A, ga_data(block))
        self.assertEqual(s, "9000")
        KEYS["rsa"][0].public_key().verify(sig_from(d), b"hello",
                                           padding.PKCS1v15(), hashes.SHA256())
        # extended-length variant, no chaining
        body = ga_data(block)
        ext = (bytes.fromhex("0087079A00") + len(body).to_bytes(2, "big") +
               body + b"\0\0")
        r = c.process(ext)
        self.assertEqual(sw(r), "9000")
        self.assertEqual(sw(c.process(apdu(0, 0x87, 0x11, 0x9A, ga_data(block[:32]), 0))),
                         "6A86")
        d, s = send_chained(c, 0x87, 0x07, 0x9A, ga_data(block[1:]))
        self.assertEqual(s, "6A80")
        bad = vpc.tlv(0x7C, vpc.tlv(0x81, block))
        self.assertEqual(send_chained(c, 0x87, 0x07, 0x9A, bad)[1], "6A80")

    def test_ecdsa_always_and_9e(self):
        c = make_card()
        c.process(SELECT)
        dig = hashlib.sha256(b"msg").digest()
        cmd = apdu(0, 0x87, 0x11, 0x9C, ga_data(dig), 0)
        self.assertEqual(sw(c.process(cmd)), "6982")
        c.process(apdu(0, 0x20, 0, 0x80, GOOD_PIN))
        d, s = exchange(c, cmd)
        self.assertEqual(s, "9000")
        from cryptography.hazmat.primitives.asymmetric import utils
        KEYS["p256"][0].public_key().verify(
            sig_from(d), dig, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        self.assertEqual(sw(c.process(SELECT)), "9000")
        self.assertEqual(sw(c.process(cmd)), "6982")   # PIN always
        c.process(apdu(0, 0x20, 0, 0x80, GOOD_PIN))
        self.assertEqual(sw(c.process(SELECT)), "9000")
        self.assertEqual(exchange(c, cmd)[1], "9000")
        # 9E: no PIN, P-384, shorter (SHA-256) digest is left-padded
        c.power_reset("reset")
        c.process(SELECT)
        d, s = exchange(c, apdu(0, 0x87, 0x14, 0x9E, ga_data(dig), 0))
        self.assertEqual(s, "9000")
        KEYS["p384"][0].public_key().verify(
            sig_from(d), b"msg", ec.ECDSA(hashes.SHA256()))
        d384 = hashlib.sha384(b"msg").digest()
        d, s = exchange(c, apdu(0, 0x87, 0x14, 0x9E, ga_data(d384), 0))
        KEYS["p384"][0].public_key().verify(
            sig_from(d), b"msg", ec.ECDSA(hashes.SHA384()))


class Faults(unittest.TestCase):
    def test_faults(self):
        c = make_card("--fault", "bad-sw")
        c.process(SELECT)
        c.process(apdu(0, 0x20, 0, 0x80, GOOD_PIN))
        dig = hashlib.sha384(b"x").digest()
        self.assertEqual(sw(c.process(apdu(0, 0x87, 0x14, 0x9E, ga_data(dig), 0))),
                         "6F00")
        c = make_card("--fault", "remove-on-sign")
        c.process(SELECT)
        with self.assertRaises(vpc.CardRemoved):
            c.process(apdu(0, 0x87, 0x14, 0x9E, ga_data(dig), 0))
        c = make_card("--fault", "remove-on-verify")
        c.process(SELECT)
        self.assertEqual(sw(c.process(apdu(0, 0x20, 0, 0x80))), "63C3")
        with self.assertRaises(vpc.CardRemoved):
            c.process(apdu(0, 0x20, 0, 0x80, GOOD_PIN))
        self.assertEqual(c.retries, 3)
        c = make_card("--fault", "garbage")
        c.process(SELECT)
        d, s = exchange(c, get_data(0x5FC105))
        self.assertEqual(s, "9000")
        c = make_card("--fault", "truncated")
        c.process(SELECT)
        d, s = exchange(c, get_data(0x5FC105))
        self.assertEqual(s, "9000")
        with self.assertRaises(vpc.ApduError):
            vpc.parse_tlvs(d)
        c = make_card("--fault", "bad-sig")
        c.process(SELECT)
        d, s = exchange(c, apdu(0, 0x87, 0x14, 0x9E, ga_data(dig), 0))
        self.assertEqual(s, "9000")
        from cryptography.exceptions import InvalidSignature
        with self.assertRaises(InvalidSignature):
            KEYS["p384"][0].public_key().verify(
                sig_from(d), b"x", ec.ECDSA(hashes.SHA384()))


class Robustness(unittest.TestCase):
    def test_random_apdus(self):
        rnd = random.Random(1234)
        c = make_card()
        for i in range(3000):
            if i % 50 == 0:
                c.process(SELECT)
            n = rnd.choice([0, 1, 3, 4, 5, 6, 7, 9, 20, 260, 300])
            raw = bytes(rnd.randrange(256) for _ in range(n))
            if n >= 2 and rnd.random() < 0.6:
                raw = bytes([rnd.choice([0, 0x10]),
                             rnd.choice([0xA4, 0xCB, 0x20, 0x87, 0xC0])]) + raw[2:]
            r = c.process(raw)
            self.assertGreaterEqual(len(r), 2)
        # still serving
        c.power_reset("reset")
        self.assertEqual(exchange(c, SELECT)[1], "9000")


if __name__ == "__main__":
    unittest.main(verbosity=1)
