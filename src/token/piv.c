/*
 * piv.c - PIV (NIST SP 800-73-4) command building and response parsing,
 * without I/O (see piv.h).
 *
 * The card is not trusted: a lost, broken or hostile card (or reader)
 * may answer anything, so every length is checked against the buffer it
 * arrived in before it is used, nested objects must fit inside their
 * parent, and inflating a compressed certificate stops at a fixed cap.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>

#include "piv.h"
#include "ps_status.h"
#include "util.h"

#define INS_VERIFY		0x20
#define INS_GENERAL_AUTH	0x87
#define INS_SELECT		0xA4
#define INS_GET_RESPONSE	0xC0
#define INS_GET_DATA		0xCB

#define PIV_PIN_REF		0x80	/* the PIV Card Application PIN */

/* The right-truncated PIV AID: every PIV card selects by it. */
static const unsigned char piv_aid[] = { 0xA0, 0x00, 0x00, 0x03, 0x08 };

const struct ps_piv_slot ps_piv_slots[PS_PIV_NSLOTS] = {
	{ 0x9A, 0x5FC105, "9A", false },	/* PIV authentication */
	{ 0x9C, 0x5FC10A, "9C", true },		/* digital signature */
	{ 0x9D, 0x5FC10B, "9D", false },	/* key management */
	{ 0x9E, 0x5FC101, "9E", false },	/* card authentication */
};

void
ps_apdu_clear(struct ps_apdu *a)
{
	ps_wipe(a, sizeof(*a));
}

int
ps_apdu_encode_short(const struct ps_apdu *a, unsigned char cla,
    const unsigned char *data, size_t lc, unsigned ne, unsigned char *out,
    size_t cap, size_t *outlen)
{
	size_t n = 4;

	if (lc > 255 || ne > 256 || cap < 4 + 1 + lc + 1)
		return PS_ERR_INTERNAL;
	out[0] = cla;
	out[1] = a->ins;
	out[2] = a->p1;
	out[3] = a->p2;
	if (lc > 0) {
		out[n++] = (unsigned char)lc;
		memcpy(out + n, data, lc);
		n += lc;
	}
	if (ne > 0)
		out[n++] = (unsigned char)(ne & 0xFF);	/* 256 -> 00 */
	*outlen = n;
	return PS_OK;
}

int
ps_apdu_split(const unsigned char *resp, size_t len, size_t *body_len,
    uint16_t *sw)
{
	if (resp == NULL || len < 2)
		return PS_ERR_TOKEN;
	*body_len = len - 2;
	*sw = (uint16_t)((resp[len - 2] << 8) | resp[len - 1]);
	return PS_OK;
}

const struct ps_piv_slot *
ps_piv_slot_by_name(const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < PS_PIV_NSLOTS; i++)
		if (strcasecmp(name, ps_piv_slots[i].name) == 0)
			return &ps_piv_slots[i];
	return NULL;
}

const struct ps_piv_slot *
ps_piv_slot_by_ref(unsigned char key_ref)
{
	size_t i;

	for (i = 0; i < PS_PIV_NSLOTS; i++)
		if (ps_piv_slots[i].key_ref == key_ref)
			return &ps_piv_slots[i];
	return NULL;
}

static void
cmd_init(struct ps_apdu *a, unsigned char ins, unsigned char p1,
    unsigned char p2, unsigned ne)
{
	memset(a, 0, sizeof(*a));
	a->ins = ins;
	a->p1 = p1;
	a->p2 = p2;
	a->ne = ne;
}

void
ps_piv_cmd_select(struct ps_apdu *a)
{
	cmd_init(a, INS_SELECT, 0x04, 0x00, 256);
	memcpy(a->data, piv_aid, sizeof(piv_aid));
	a->lc = sizeof(piv_aid);
}

void
ps_piv_cmd_get_data(struct ps_apdu *a, uint32_t object)
{
	/* SP 800-73-4 Part 2 3.1.2: data field 5C 03 <3-byte tag>. */
	cmd_init(a, INS_GET_DATA, 0x3F, 0xFF, 256);
	a->data[0] = 0x5C;
	a->data[1] = 0x03;
	a->data[2] = (unsigned char)(object >> 16);
	a->data[3] = (unsigned char)(object >> 8);
	a->data[4] = (unsigned char)object;
	a->lc = 5;
}

int
ps_piv_cmd_verify(struct ps_apdu *a, const char *pin)
{
	size_t len, i;

	if (pin == NULL)
		return PS_ERR_BAD_SECRET;
	len = strnlen(pin, PS_PIV_PIN_MAX + 1);
	if (len < PS_PIV_PIN_MIN || len > PS_PIV_PIN_MAX)
		return PS_ERR_BAD_SECRET;
	/* 0xFF is the padding byte: a PIN holding one would be ambiguous. */
	for (i = 0; i < len; i++)
		if ((unsigned char)pin[i] == 0xFF)
			return PS_ERR_BAD_SECRET;
	cmd_init(a, INS_VERIFY, 0x00, PIV_PIN_REF, 0);
	memset(a->data, 0xFF, PS_PIV_PIN_MAX);
	memcpy(a->data, pin, len);
	a->lc = PS_PIV_PIN_MAX;
	return PS_OK;
}

void
ps_piv_cmd_verify_status(struct ps_apdu *a)
{
	cmd_init(a, INS_VERIFY, 0x00, PIV_PIN_REF, 0);
}

void
ps_piv_cmd_verify_reset(struct ps_apdu *a)
{
	cmd_init(a, INS_VERIFY, 0xFF, PIV_PIN_REF, 0);
}

void
ps_piv_cmd_get_response(struct ps_apdu *a, unsigned ne)
{
	cmd_init(a, INS_GET_RESPONSE, 0x00, 0x00, ne == 0 || ne > 256 ? 256 : ne);
}

/* Append a BER length; returns the bytes written (0: does not fit). */
static size_t
put_len(unsigned char *p, size_t room, size_t len)
{
	if (len < 0x80 && room >= 1) {
		p[0] = (unsigned char)len;
		return 1;
	}
	if (len <= 0xFF && room >= 2) {
		p[0] = 0x81;
		p[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xFFFF && room >= 3) {
		p[0] = 0x82;
		p[1] = (unsigned char)(len >> 8);
		p[2] = (unsigned char)len;
		return 3;
	}
	return 0;
}

static size_t
len_size(size_t len)
{
	return len < 0x80 ? 1 : len <= 0xFF ? 2 : 3;
}

int
ps_piv_cmd_general_auth(struct ps_apdu *a, unsigned char alg,
    unsigned char key_ref, const unsigned char *in, size_t inlen)
{
	/* 7C L { 82 00 (response requested), 81 L input (challenge) } */
	size_t inner = 2 + 1 + len_size(inlen) + inlen;
	size_t total = 1 + len_size(inner) + inner;
	size_t n = 0, w;

	if (inlen > 0xFFFF || total > sizeof(a->data))
		return PS_ERR_INTERNAL;
	cmd_init(a, INS_GENERAL_AUTH, alg, key_ref, 256);
	a->data[n++] = 0x7C;
	if ((w = put_len(a->data + n, sizeof(a->data) - n, inner)) == 0)
		return PS_ERR_INTERNAL;
	n += w;
	a->data[n++] = 0x82;
	a->data[n++] = 0x00;
	a->data[n++] = 0x81;
	if ((w = put_len(a->data + n, sizeof(a->data) - n, inlen)) == 0)
		return PS_ERR_INTERNAL;
	n += w;
	memcpy(a->data + n, in, inlen);
	a->lc = n + inlen;
	return PS_OK;
}

int
ps_tlv_parse(const unsigned char *buf, size_t len, struct ps_tlv *out,
    size_t *used)
{
	size_t pos = 0, vlen, i, nlen;
	uint32_t tag;

	if (buf == NULL || len == 0)
		return PS_ERR_TOKEN;
	tag = buf[pos++];
	if ((tag & 0x1F) == 0x1F) {
		/* Subsequent tag bytes while bit 8 is set; at most 3 in all. */
		for (i = 0; ; i++) {
			if (pos >= len || i >= 2)
				return PS_ERR_TOKEN;
			tag = (tag << 8) | buf[pos];
			if ((buf[pos++] & 0x80) == 0)
				break;
		}
	}
	if (pos >= len)
		return PS_ERR_TOKEN;
	if (buf[pos] < 0x80) {
		vlen = buf[pos++];
	} else {
		/* 80 is the indefinite form; 83 and up are never needed. */
		nlen = buf[pos++] & 0x7F;
		if (nlen == 0 || nlen > 2 || len - pos < nlen)
			return PS_ERR_TOKEN;
		vlen = 0;
		for (i = 0; i < nlen; i++)
			vlen = (vlen << 8) | buf[pos++];
	}
	if (vlen > len - pos)
		return PS_ERR_TOKEN;
	out->tag = tag;
	out->value = buf + pos;
	out->len = vlen;
	*used = pos + vlen;
	return PS_OK;
}

int
ps_tlv_find(const unsigned char *buf, size_t len, uint32_t tag,
    struct ps_tlv *out)
{
	struct ps_tlv t;
	size_t pos = 0, used;
	bool found = false;

	while (pos < len) {
		if (ps_tlv_parse(buf + pos, len - pos, &t, &used) != PS_OK)
			return PS_ERR_TOKEN;
		if (t.tag == tag) {
			if (found)
				return PS_ERR_TOKEN;
			*out = t;
			found = true;
		}
		pos += used;
	}
	return found ? PS_OK : PS_ERR_NOT_FOUND;
}

int
ps_piv_verify_sw(uint16_t sw, int *tries)
{
	if (sw == PS_SW_OK) {
		*tries = -1;
		return PS_OK;
	}
	if ((sw & 0xFFF0) == 0x63C0) {
		*tries = sw & 0x0F;
		/* 63C0 is "no tries left": blocked by another name. */
		return *tries == 0 ? PS_ERR_PIN_LOCKED : PS_ERR_BAD_SECRET;
	}
	if (sw == PS_SW_BLOCKED) {
		*tries = 0;
		return PS_ERR_PIN_LOCKED;
	}
	*tries = -1;
	return PS_ERR_TOKEN;
}

const char *
ps_piv_sw_str(uint16_t sw)
{
	if ((sw & 0xFF00) == 0x6100)
		return "more data available";
	if ((sw & 0xFF00) == 0x6C00)
		return "wrong Le";
	if ((sw & 0xFFF0) == 0x63C0)
		return "verification failed";
	switch (sw) {
	case 0x9000: return "success";
	case 0x6700: return "wrong length";
	case 0x6881: return "logical channel not supported";
	case 0x6882: return "secure messaging not supported";
	case 0x6883: return "last command of the chain expected";
	case 0x6884: return "command chaining not supported";
	case 0x6982: return "security status not satisfied";
	case 0x6983: return "authentication method blocked";
	case 0x6985: return "conditions of use not satisfied";
	case 0x6A80: return "incorrect data";
	case 0x6A81: return "function not supported";
	case 0x6A82: return "not found";
	case 0x6A84: return "not enough memory";
	case 0x6A86: return "incorrect P1/P2";
	case 0x6A88: return "referenced data not found";
	case 0x6D00: return "instruction not supported";
	case 0x6E00: return "class not supported";
	case 0x6F00: return "no precise diagnosis";
	}
	return "unexpected status";
}

int
ps_piv_inflate(const struct ps_log *log, const unsigned char *in,
    size_t inlen, size_t cap, unsigned char **out, size_t *outlen)
{
	z_stream zs;
	unsigned char *buf = NULL;
	int zr, r = PS_ERR_TOKEN;
	bool inited = false;

	*out = NULL;
	*outlen = 0;
	if (inlen == 0 || inlen > UINT_MAX || cap == 0 || cap > UINT_MAX) {
		ps_log_err(log, "piv: compressed certificate has a bad size");
		return PS_ERR_TOKEN;
	}
	/* One byte of slack tells "exactly cap" from "more than cap". */
	if ((buf = malloc(cap + 1)) == NULL) {
		ps_log_err(log, "piv: out of memory");
		return PS_ERR_NOMEM;
	}
	memset(&zs, 0, sizeof(zs));
	zs.next_in = (unsigned char *)(uintptr_t)in;
	zs.avail_in = (unsigned)inlen;
	zs.next_out = buf;
	zs.avail_out = (unsigned)(cap + 1);
	/* 32 + 15: gzip as SP 800-73-4 says, or zlib as some cards store. */
	if (inflateInit2(&zs, 32 + 15) != Z_OK) {
		ps_log_err(log, "piv: cannot initialise zlib");
		r = PS_ERR_NOMEM;
		goto out;
	}
	inited = true;
	zr = inflate(&zs, Z_FINISH);
	if (zr != Z_STREAM_END) {
		if (zs.avail_out == 0)
			ps_log_err(log, "piv: compressed certificate inflates "
			    "to more than %zu bytes", cap);
		else
			ps_log_err(log, "piv: compressed certificate is "
			    "corrupt or truncated (zlib %d)", zr);
		goto out;
	}
	if (zs.total_out > cap) {
		ps_log_err(log, "piv: compressed certificate inflates to more "
		    "than %zu bytes", cap);
		goto out;
	}
	if (zs.avail_in != 0) {
		ps_log_err(log, "piv: %u bytes of garbage after the compressed "
		    "certificate", zs.avail_in);
		goto out;
	}
	*outlen = zs.total_out;
	*out = buf;
	buf = NULL;
	r = PS_OK;
 out:
	if (inited)
		inflateEnd(&zs);
	free(buf);
	return r;
}

/* CertInfo (SP 800-73-4 Part 1 Table 10 note): bit 0 gzip, bit 1 set
 * means "not X.509". */
#define CERTINFO_GZIP		0x01
#define CERTINFO_NOT_X509	0x02

int
ps_piv_parse_cert_object(const struct ps_log *log,
    const unsigned char *body, size_t len, unsigned char **der,
    size_t *derlen)
{
	struct ps_tlv outer, cert, info;
	unsigned char certinfo = 0;
	size_t used;
	int r;

	*der = NULL;
	*derlen = 0;
	if (ps_tlv_parse(body, len, &outer, &used) != PS_OK ||
	    outer.tag != 0x53 || used != len) {
		ps_log_err(log, "piv: certificate object is not one well-formed "
		    "53 container");
		return PS_ERR_TOKEN;
	}
	r = ps_tlv_find(outer.value, outer.len, 0x70, &cert);
	if (r != PS_OK || cert.len == 0) {
		ps_log_err(log, "piv: certificate object %s",
		    r == PS_ERR_NOT_FOUND || r == PS_OK ?
		    "holds no certificate (tag 70)" : "is malformed");
		return PS_ERR_TOKEN;
	}
	r = ps_tlv_find(outer.value, outer.len, 0x71, &info);
	if (r == PS_OK) {
		if (info.len != 1) {
			ps_log_err(log, "piv: CertInfo has length %zu, not 1",
			    info.len);
			return PS_ERR_TOKEN;
		}
		certinfo = info.value[0];
	} else if (r != PS_ERR_NOT_FOUND) {
		ps_log_err(log, "piv: certificate object is malformed");
		return PS_ERR_TOKEN;
	}
	if (certinfo & CERTINFO_NOT_X509) {
		ps_log_err(log, "piv: certificate object is not X.509 "
		    "(CertInfo %02x)", certinfo);
		return PS_ERR_TOKEN;
	}
	if (certinfo & CERTINFO_GZIP)
		return ps_piv_inflate(log, cert.value, cert.len,
		    PS_PIV_CERT_MAX, der, derlen);
	if (cert.len > PS_PIV_CERT_MAX) {
		ps_log_err(log, "piv: certificate of %zu bytes is too large",
		    cert.len);
		return PS_ERR_TOKEN;
	}
	if ((*der = malloc(cert.len)) == NULL) {
		ps_log_err(log, "piv: out of memory");
		return PS_ERR_NOMEM;
	}
	memcpy(*der, cert.value, cert.len);
	*derlen = cert.len;
	return PS_OK;
}

int
ps_piv_cert_from_object(const struct ps_log *log,
    const unsigned char *body, size_t len, X509 **out)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t derlen = 0;
	X509 *x = NULL;
	int r;

	*out = NULL;
	if ((r = ps_piv_parse_cert_object(log, body, len, &der, &derlen)) !=
	    PS_OK)
		return r;
	r = PS_ERR_TOKEN;
	if (derlen > LONG_MAX)
		goto out;
	p = der;
	x = d2i_X509(NULL, &p, (long)derlen);
	if (x == NULL || p != der + derlen) {
		ps_log_openssl(log, "piv: d2i_X509");
		ps_log_err(log, "piv: certificate on the card is not one DER "
		    "X.509 certificate");
		goto out;
	}
	*out = x;
	x = NULL;
	r = PS_OK;
 out:
	X509_free(x);
	free(der);
	return r;
}

int
ps_piv_parse_auth_response(const struct ps_log *log,
    const unsigned char *body, size_t len, const unsigned char **sig,
    size_t *siglen)
{
	struct ps_tlv outer, resp;
	size_t used;

	*sig = NULL;
	*siglen = 0;
	if (ps_tlv_parse(body, len, &outer, &used) != PS_OK ||
	    outer.tag != 0x7C || used != len) {
		ps_log_err(log, "piv: signature response is not one "
		    "well-formed 7C template");
		return PS_ERR_TOKEN;
	}
	if (ps_tlv_find(outer.value, outer.len, 0x82, &resp) != PS_OK ||
	    resp.len == 0) {
		ps_log_err(log, "piv: signature response holds no signature "
		    "(tag 82)");
		return PS_ERR_TOKEN;
	}
	*sig = resp.value;
	*siglen = resp.len;
	return PS_OK;
}

static int
ec_alg(const struct ps_log *log, EVP_PKEY *pub, unsigned char *alg,
    size_t *inlen)
{
	char group[64];
	size_t glen = 0;

	if (EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) != 1) {
		ps_log_openssl(log, "piv: EC group name");
		ps_log_err(log, "piv: cannot tell the curve of an EC key");
		return PS_ERR_INVALID;
	}
	if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0) {
		*alg = PS_PIV_ALG_P256;
		*inlen = 32;
		return PS_OK;
	}
	if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0) {
		*alg = PS_PIV_ALG_P384;
		*inlen = 48;
		return PS_OK;
	}
	ps_log_err(log, "piv: curve %s cannot sign on a PIV card", group);
	return PS_ERR_INVALID;
}

int
ps_piv_alg_for_key(const struct ps_log *log, EVP_PKEY *pub,
    unsigned char *alg, size_t *inlen)
{
	int bits;

	if (pub == NULL)
		return PS_ERR_INVALID;
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(pub);
		if (bits == 2048)
			*alg = PS_PIV_ALG_RSA2048;
		else if (bits == 3072)
			*alg = PS_PIV_ALG_RSA3072;
		else if (bits == 4096)
			*alg = PS_PIV_ALG_RSA4096;
		else {
			ps_log_err(log, "piv: RSA-%d keys are not supported",
			    bits);
			return PS_ERR_INVALID;
		}
		*inlen = (size_t)bits / 8;
		return PS_OK;
	case EVP_PKEY_EC:
		return ec_alg(log, pub, alg, inlen);
	}
	ps_log_err(log, "piv: unsupported key type %s",
	    EVP_PKEY_get0_type_name(pub) ? EVP_PKEY_get0_type_name(pub) : "?");
	return PS_ERR_INVALID;
}

static bool
alg_is_rsa(unsigned char alg)
{
	return alg == PS_PIV_ALG_RSA2048 || alg == PS_PIV_ALG_RSA3072 ||
	    alg == PS_PIV_ALG_RSA4096;
}

static bool
alg_is_ec(unsigned char alg)
{
	return alg == PS_PIV_ALG_P256 || alg == PS_PIV_ALG_P384;
}

/* DER DigestInfo prefixes of RFC 8017 section 9.2, note 1. */
static const unsigned char di_sha256[] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
	0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20
};
static const unsigned char di_sha384[] = {
	0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
	0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30
};
static const unsigned char di_sha512[] = {
	0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
	0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40
};

static int
digest_info_prefix(const EVP_MD *md, const unsigned char **prefix,
    size_t *plen, size_t *dlen)
{
	if (md == NULL)
		return PS_ERR_INVALID;
	switch (EVP_MD_get_type(md)) {
	case NID_sha256:
		*prefix = di_sha256;
		*plen = sizeof(di_sha256);
		*dlen = 32;
		return PS_OK;
	case NID_sha384:
		*prefix = di_sha384;
		*plen = sizeof(di_sha384);
		*dlen = 48;
		return PS_OK;
	case NID_sha512:
		*prefix = di_sha512;
		*plen = sizeof(di_sha512);
		*dlen = 64;
		return PS_OK;
	}
	return PS_ERR_INVALID;
}

static int
rsa_pkcs1_block(const struct ps_log *log, const EVP_MD *md,
    const unsigned char *digest, size_t dlen, unsigned char *out,
    size_t k)
{
	const unsigned char *prefix;
	size_t plen, want, tlen;

	if (digest_info_prefix(md, &prefix, &plen, &want) != PS_OK ||
	    dlen != want) {
		ps_log_err(log, "piv: cannot pad a %zu-byte digest of this "
		    "type for RSA", dlen);
		return PS_ERR_INVALID;
	}
	tlen = plen + dlen;
	/* RFC 8017 9.2: at least 8 bytes of FF padding. */
	if (k < tlen + 11) {
		ps_log_err(log, "piv: RSA modulus too short for the digest");
		return PS_ERR_INVALID;
	}
	out[0] = 0x00;
	out[1] = 0x01;
	memset(out + 2, 0xFF, k - tlen - 3);
	out[k - tlen - 1] = 0x00;
	memcpy(out + k - tlen, prefix, plen);
	memcpy(out + k - dlen, digest, dlen);
	return PS_OK;
}

int
ps_piv_sign_input(const struct ps_log *log, unsigned char alg,
    const EVP_MD *md, const unsigned char *digest, size_t dlen,
    unsigned char *out, size_t inlen)
{
	if (digest == NULL || dlen == 0 || out == NULL || inlen == 0)
		return PS_ERR_INVALID;
	if (alg_is_rsa(alg))
		return rsa_pkcs1_block(log, md, digest, dlen, out, inlen);
	if (!alg_is_ec(alg)) {
		ps_log_err(log, "piv: unknown algorithm %02x", alg);
		return PS_ERR_INVALID;
	}
	/* ECDSA uses the leftmost field-size bytes of a longer digest, and a
	 * shorter one as the same integer (zeros on the left). */
	if (dlen >= inlen) {
		memcpy(out, digest, inlen);
	} else {
		memset(out, 0, inlen - dlen);
		memcpy(out + inlen - dlen, digest, dlen);
	}
	return PS_OK;
}

/* 0 < v and v fits in `inlen` bytes. */
static bool
ec_scalar_ok(const BIGNUM *v, size_t inlen)
{
	return v != NULL && !BN_is_zero(v) && !BN_is_negative(v) &&
	    (size_t)BN_num_bytes(v) <= inlen;
}

static int
finish_ecdsa(const struct ps_log *log, size_t inlen, const unsigned char *sig,
    size_t siglen, unsigned char **out, size_t *outlen)
{
	ECDSA_SIG *es = NULL;
	const unsigned char *p = sig;
	const BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int n, ret = PS_ERR_TOKEN;

	if (siglen > LONG_MAX)
		goto bad;
	es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
	if (es == NULL || p != sig + siglen)
		goto bad;
	ECDSA_SIG_get0(es, &r, &s);
	if (!ec_scalar_ok(r, inlen) || !ec_scalar_ok(s, inlen))
		goto bad;
	/* Re-encode: a card's lax DER would fail OpenSSL's strict check. */
	if ((n = i2d_ECDSA_SIG(es, &der)) <= 0) {
		ps_log_openssl(log, "piv: i2d_ECDSA_SIG");
		ps_log_err(log, "piv: cannot encode the card's signature");
		ret = PS_ERR_CRYPTO;
		goto out;
	}
	*out = der;
	*outlen = (size_t)n;
	ret = PS_OK;
	goto out;
 bad:
	ps_log_openssl(log, "piv: d2i_ECDSA_SIG");
	ps_log_err(log, "piv: card returned a malformed ECDSA signature "
	    "(%zu bytes)", siglen);
 out:
	ECDSA_SIG_free(es);
	return ret;
}

int
ps_piv_finish_signature(const struct ps_log *log, unsigned char alg,
    size_t inlen, const unsigned char *sig, size_t siglen,
    unsigned char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (sig == NULL || siglen == 0)
		return PS_ERR_TOKEN;
	if (alg_is_ec(alg))
		return finish_ecdsa(log, inlen, sig, siglen, out, outlen);
	if (!alg_is_rsa(alg)) {
		ps_log_err(log, "piv: unknown algorithm %02x", alg);
		return PS_ERR_INVALID;
	}
	if (siglen != inlen) {
		ps_log_err(log, "piv: card returned an RSA signature of %zu "
		    "bytes for a %zu-byte modulus", siglen, inlen);
		return PS_ERR_TOKEN;
	}
	if ((*out = malloc(siglen)) == NULL) {
		ps_log_err(log, "piv: out of memory");
		return PS_ERR_NOMEM;
	}
	memcpy(*out, sig, siglen);
	*outlen = siglen;
	return PS_OK;
}
