/*
 * check_piv.c - unit tests for the PIV backend without a reader:
 * piv.c's builders and parsers with canned and mangled card responses,
 * pcsc.c's transport rules and token_piv.c's login sequence against a
 * small card simulated behind the ps_pcsc_ops table.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <openssl/rsa.h>

#include "pcsc.h"
#include "piv.h"
#include "ps_status.h"
#include "testutil.h"
#include "token.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* helpers */

static size_t
cert_der(X509 *x, unsigned char **der)
{
	int n = i2d_X509(x, der);

	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

/* tag + BER length + value into out; returns bytes written. */
static size_t
put_tlv(unsigned char *out, unsigned tag, const unsigned char *v, size_t n)
{
	size_t p = 0;

	if (tag > 0xFFFF)
		out[p++] = (unsigned char)(tag >> 16);
	if (tag > 0xFF)
		out[p++] = (unsigned char)(tag >> 8);
	out[p++] = (unsigned char)tag;
	if (n < 0x80) {
		out[p++] = (unsigned char)n;
	} else if (n <= 0xFF) {
		out[p++] = 0x81;
		out[p++] = (unsigned char)n;
	} else {
		out[p++] = 0x82;
		out[p++] = (unsigned char)(n >> 8);
		out[p++] = (unsigned char)n;
	}
	if (n > 0)
		memmove(out + p, v, n);
	return p + n;
}

static size_t
gzip_buf(const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
	z_stream zs;

	memset(&zs, 0, sizeof(zs));
	ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, 16 + 15, 8,
	    Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (unsigned char *)(uintptr_t)in;
	zs.avail_in = (unsigned)n;
	zs.next_out = out;
	zs.avail_out = (unsigned)cap;
	ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	n = zs.total_out;
	deflateEnd(&zs);
	return n;
}

/* 53{70 cert, 71 info, FE 00} */
static size_t
cert_object(const unsigned char *cert, size_t n, unsigned char info,
    unsigned char *out)
{
	unsigned char *inner = malloc(n + 16);
	size_t p = 0, r;
	unsigned char z = 0;

	ck_assert_ptr_nonnull(inner);
	p += put_tlv(inner + p, 0x70, cert, n);
	p += put_tlv(inner + p, 0x71, &info, 1);
	p += put_tlv(inner + p, 0xFE, &z, 0);
	r = put_tlv(out, 0x53, inner, p);
	free(inner);
	return r;
}

static size_t
object_for(const char *name, bool gz, unsigned char *out)
{
	X509 *x = tu_load_cert(name);
	unsigned char *der = NULL, z[8192];
	size_t n = cert_der(x, &der), r;

	if (gz) {
		size_t zn = gzip_buf(der, n, z, sizeof(z));

		r = cert_object(z, zn, 0x01, out);
	} else {
		r = cert_object(der, n, 0x00, out);
	}
	OPENSSL_free(der);
	X509_free(x);
	return r;
}

/* ------------------------------------------------------------------ */
/* piv.c: builders */

START_TEST(builders)
{
	struct ps_apdu a;
	unsigned char out[300], in[256];
	size_t n;
	static const unsigned char sel[] = { 0x00, 0xA4, 0x04, 0x00, 0x05,
	    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00 };
	static const unsigned char gd[] = { 0x00, 0xCB, 0x3F, 0xFF, 0x05,
	    0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00 };
	static const unsigned char vf[] = { 0x00, 0x20, 0x00, 0x80, 0x08,
	    '1', '2', '3', '4', '5', '6', 0xFF, 0xFF };

	ps_piv_cmd_select(&a);
	ck_assert_int_eq(ps_apdu_encode_short(&a, a.cla, a.data, a.lc, a.ne,
	    out, sizeof(out), &n), PS_OK);
	ck_assert_uint_eq(n, sizeof(sel));
	ck_assert_mem_eq(out, sel, n);

	ps_piv_cmd_get_data(&a, 0x5FC105);
	ck_assert_int_eq(ps_apdu_encode_short(&a, a.cla, a.data, a.lc, a.ne,
	    out, sizeof(out), &n), PS_OK);
	ck_assert_mem_eq(out, gd, sizeof(gd));

	ck_assert_int_eq(ps_piv_cmd_verify(&a, "123456"), PS_OK);
	ck_assert_int_eq(ps_apdu_encode_short(&a, a.cla, a.data, a.lc, a.ne,
	    out, sizeof(out), &n), PS_OK);
	ck_assert_uint_eq(n, sizeof(vf));
	ck_assert_mem_eq(out, vf, n);
	ps_apdu_clear(&a);
	ck_assert_uint_eq(a.data[0], 0);

	ck_assert_int_eq(ps_piv_cmd_verify(&a, "12345"), PS_ERR_BAD_SECRET);
	ck_assert_int_eq(ps_piv_cmd_verify(&a, "123456789"), PS_ERR_BAD_SECRET);
	ck_assert_int_eq(ps_piv_cmd_verify(&a, "1234\xff" "56"),
	    PS_ERR_BAD_SECRET);
	ck_assert_int_eq(ps_piv_cmd_verify(&a, NULL), PS_ERR_BAD_SECRET);
	ck_assert_int_eq(ps_piv_cmd_verify(&a, "12345678"), PS_OK);
	ck_assert_uint_eq(a.lc, 8);

	ps_piv_cmd_verify_status(&a);
	ck_assert_int_eq(ps_apdu_encode_short(&a, a.cla, a.data, a.lc, a.ne,
	    out, sizeof(out), &n), PS_OK);
	ck_assert_uint_eq(n, 4);
	ps_piv_cmd_verify_reset(&a);
	ck_assert_uint_eq(a.p1, 0xFF);

	/* RSA-2048: 7C 82 01 06 82 00 81 82 01 00 <256> */
	memset(in, 0xAB, sizeof(in));
	ck_assert_int_eq(ps_piv_cmd_general_auth(&a, 0x07, 0x9A, in, 256),
	    PS_OK);
	ck_assert_uint_eq(a.lc, 266);
	ck_assert_uint_eq(a.ins, 0x87);
	ck_assert_uint_eq(a.p1, 0x07);
	ck_assert_uint_eq(a.p2, 0x9A);
	{
		static const unsigned char h[] = { 0x7C, 0x82, 0x01, 0x06,
		    0x82, 0x00, 0x81, 0x82, 0x01, 0x00 };
		ck_assert_mem_eq(a.data, h, sizeof(h));
	}
	/* P-256: 7C 24 82 00 81 20 <32> */
	ck_assert_int_eq(ps_piv_cmd_general_auth(&a, 0x11, 0x9E, in, 32),
	    PS_OK);
	ck_assert_uint_eq(a.lc, 38);
	{
		static const unsigned char h[] = { 0x7C, 0x24, 0x82, 0x00,
		    0x81, 0x20 };
		ck_assert_mem_eq(a.data, h, sizeof(h));
	}
	ck_assert_int_eq(ps_piv_cmd_general_auth(&a, 0x07, 0x9A, in, 2000),
	    PS_ERR_INTERNAL);
	/* a chunk over 255 bytes is never encoded */
	ck_assert_int_eq(ps_apdu_encode_short(&a, 0, in, 256, 0, out,
	    sizeof(out), &n), PS_ERR_INTERNAL);
	ck_assert_int_eq(ps_apdu_encode_short(&a, 0, in, 10, 0, out, 12, &n),
	    PS_ERR_INTERNAL);
}
END_TEST

START_TEST(slots_and_sw)
{
	int tries;
	size_t n;
	uint16_t sw;
	static const unsigned char r1[] = { 0x90, 0x00 };

	ck_assert_ptr_eq(ps_piv_slot_by_name("9a"), &ps_piv_slots[0]);
	ck_assert_ptr_eq(ps_piv_slot_by_name("9E"), &ps_piv_slots[3]);
	ck_assert_ptr_null(ps_piv_slot_by_name("9b"));
	ck_assert_ptr_null(ps_piv_slot_by_name(NULL));
	ck_assert_ptr_eq(ps_piv_slot_by_ref(0x9C), &ps_piv_slots[1]);
	ck_assert(ps_piv_slot_by_ref(0x9C)->pin_always);
	ck_assert_ptr_null(ps_piv_slot_by_ref(0x82));

	ck_assert_int_eq(ps_piv_verify_sw(0x9000, &tries), PS_OK);
	ck_assert_int_eq(ps_piv_verify_sw(0x63C2, &tries), PS_ERR_BAD_SECRET);
	ck_assert_int_eq(tries, 2);
	ck_assert_int_eq(ps_piv_verify_sw(0x63C0, &tries), PS_ERR_PIN_LOCKED);
	ck_assert_int_eq(tries, 0);
	ck_assert_int_eq(ps_piv_verify_sw(0x6983, &tries), PS_ERR_PIN_LOCKED);
	ck_assert_int_eq(ps_piv_verify_sw(0x6A82, &tries), PS_ERR_TOKEN);
	ck_assert_int_eq(ps_piv_verify_sw(0x6300, &tries), PS_ERR_TOKEN);
	ck_assert_str_eq(ps_piv_sw_str(0x6983), "authentication method blocked");
	ck_assert_str_eq(ps_piv_sw_str(0x61FF), "more data available");
	ck_assert_str_eq(ps_piv_sw_str(0x1234), "unexpected status");

	ck_assert_int_eq(ps_apdu_split(r1, 2, &n, &sw), PS_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(sw, 0x9000);
	ck_assert_int_eq(ps_apdu_split(r1, 1, &n, &sw), PS_ERR_TOKEN);
	ck_assert_int_eq(ps_apdu_split(NULL, 2, &n, &sw), PS_ERR_TOKEN);
}
END_TEST

/* ------------------------------------------------------------------ */
/* piv.c: TLV */

START_TEST(tlv_forms)
{
	struct ps_tlv t;
	size_t used;
	unsigned char big[300];
	static const unsigned char s1[] = { 0x53, 0x02, 0xAA, 0xBB };
	static const unsigned char s2[] = { 0x5F, 0xC1, 0x05, 0x81, 0x01, 0x11 };
	static const unsigned char indef[] = { 0x53, 0x80, 0x00, 0x00 };
	static const unsigned char l83[] = { 0x53, 0x83, 0x00, 0x00, 0x01, 0x00 };
	static const unsigned char over[] = { 0x53, 0x03, 0xAA, 0xBB };
	static const unsigned char tag4[] = { 0x5F, 0x81, 0x82, 0x03, 0x00 };
	static const unsigned char tagcut[] = { 0x5F, 0xC1 };
	static const unsigned char lencut[] = { 0x53, 0x82, 0x01 };
	static const unsigned char two[] = { 0x70, 0x01, 0x01, 0x71, 0x00,
	    0x70, 0x00 };
	static const unsigned char trail[] = { 0x70, 0x01, 0x01, 0x71 };

	ck_assert_int_eq(ps_tlv_parse(s1, sizeof(s1), &t, &used), PS_OK);
	ck_assert_uint_eq(t.tag, 0x53);
	ck_assert_uint_eq(t.len, 2);
	ck_assert_uint_eq(used, 4);
	ck_assert_int_eq(ps_tlv_parse(s2, sizeof(s2), &t, &used), PS_OK);
	ck_assert_uint_eq(t.tag, 0x5FC105);
	ck_assert_uint_eq(t.len, 1);
	ck_assert_uint_eq(t.value[0], 0x11);

	memset(big, 0, sizeof(big));
	ck_assert_uint_eq(put_tlv(big, 0x53, big + 10, 200), 203);
	ck_assert_int_eq(ps_tlv_parse(big, 203, &t, &used), PS_OK);
	ck_assert_uint_eq(t.len, 200);
	ck_assert_int_eq(ps_tlv_parse(big, 202, &t, &used), PS_ERR_TOKEN);

	ck_assert_int_eq(ps_tlv_parse(indef, sizeof(indef), &t, &used),
	    PS_ERR_TOKEN);
	ck_assert_int_eq(ps_tlv_parse(l83, sizeof(l83), &t, &used),
	    PS_ERR_TOKEN);
	ck_assert_int_eq(ps_tlv_parse(over, sizeof(over), &t, &used),
	    PS_ERR_TOKEN);
	ck_assert_int_eq(ps_tlv_parse(tag4, sizeof(tag4), &t, &used),
	    PS_ERR_TOKEN);
	ck_assert_int_eq(ps_tlv_parse(tagcut, sizeof(tagcut), &t, &used),
	    PS_ERR_TOKEN);
	ck_assert_int_eq(ps_tlv_parse(lencut, sizeof(lencut), &t, &used),
	    PS_ERR_TOKEN);
	ck_assert_int_eq(ps_tlv_parse(s1, 0, &t, &used), PS_ERR_TOKEN);
	ck_assert_int_eq(ps_tlv_parse(NULL, 4, &t, &used), PS_ERR_TOKEN);

	ck_assert_int_eq(ps_tlv_find(two, 5, 0x71, &t), PS_OK);
	ck_assert_uint_eq(t.len, 0);
	ck_assert_int_eq(ps_tlv_find(two, 5, 0xFE, &t), PS_ERR_NOT_FOUND);
	ck_assert_int_eq(ps_tlv_find(two, sizeof(two), 0x70, &t),
	    PS_ERR_TOKEN);		/* twice */
	ck_assert_int_eq(ps_tlv_find(trail, sizeof(trail), 0x70, &t),
	    PS_ERR_TOKEN);		/* trailing garbage */
}
END_TEST

/* ------------------------------------------------------------------ */
/* piv.c: certificate objects */

static unsigned char objbuf[16384];

START_TEST(cert_object_good)
{
	X509 *want = tu_load_cert("alice.crt"), *got = NULL;
	size_t n = object_for("alice.crt", false, objbuf);

	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, n, &got),
	    PS_OK);
	ck_assert_int_eq(X509_cmp(want, got), 0);
	X509_free(got);

	n = object_for("alice.crt", true, objbuf);
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, n, &got),
	    PS_OK);
	ck_assert_int_eq(X509_cmp(want, got), 0);
	X509_free(got);
	X509_free(want);
}
END_TEST

START_TEST(cert_object_truncated)
{
	size_t n, i;
	X509 *got;
	bool gz = _i == 1;

	n = object_for("carol.crt", gz, objbuf);
	for (i = 0; i < n; i++) {
		got = (X509 *)1;
		ck_assert_int_ne(ps_piv_cert_from_object(NULL, objbuf, i, &got),
		    PS_OK);
		ck_assert_ptr_null(got);
	}
}
END_TEST

START_TEST(cert_object_bad)
{
	unsigned char *der = NULL, tmp[8192];
	X509 *x = tu_load_cert("bob.crt"), *got;
	size_t n = cert_der(x, &der), m;

	/* wrong outer tag */
	m = cert_object(der, n, 0, objbuf);
	objbuf[0] = 0x54;
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* trailing byte after the container */
	m = cert_object(der, n, 0, objbuf);
	objbuf[m] = 0;
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m + 1, &got),
	    PS_ERR_TOKEN);
	/* outer length larger than the buffer */
	m = cert_object(der, n, 0, objbuf);
	objbuf[3]++;			/* 53 82 HI LO: bump LO */
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* inner 70 longer than its parent */
	m = cert_object(der, n, 0, objbuf);
	ck_assert_uint_eq(objbuf[4], 0x70);
	objbuf[7] += 8;			/* 70 82 HI LO */
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* no 70 at all */
	m = put_tlv(objbuf, 0x53, (const unsigned char *)"\x71\x01\x00", 3);
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* CertInfo "not X.509" and a 2-byte CertInfo */
	m = cert_object(der, n, 0x02, objbuf);
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* the certificate followed by junk inside 70 */
	memcpy(tmp, der, n);
	tmp[n] = 0x00;
	m = cert_object(tmp, n + 1, 0, objbuf);
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* "gzip" that is not */
	m = cert_object(der, n, 0x01, objbuf);
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* gzip followed by garbage */
	m = gzip_buf(der, n, tmp, sizeof(tmp));
	tmp[m++] = 'x';
	m = cert_object(tmp, m, 0x01, objbuf);
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* a DER that is not a certificate */
	m = cert_object((const unsigned char *)"\x30\x03\x02\x01\x01", 5, 0,
	    objbuf);
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	OPENSSL_free(der);
	X509_free(x);
}
END_TEST

START_TEST(gzip_bomb)
{
	unsigned char *zeros = calloc(1, 1 << 20), z[8192], *out = NULL;
	size_t zn, outlen = 0, m;
	X509 *got;

	ck_assert_ptr_nonnull(zeros);
	zn = gzip_buf(zeros, 1 << 20, z, sizeof(z));
	ck_assert_uint_lt(zn, 2048);
	tu_log_reset();
	ck_assert_int_eq(ps_piv_inflate(&tu_log, z, zn, PS_PIV_CERT_MAX, &out,
	    &outlen), PS_ERR_TOKEN);
	ck_assert_ptr_null(out);
	ck_assert(tu_log_contains("more than 16384"));
	m = cert_object(z, zn, 0x01, objbuf);
	ck_assert_int_eq(ps_piv_cert_from_object(&tu_log, objbuf, m, &got),
	    PS_ERR_TOKEN);
	/* exactly at the cap is fine */
	zn = gzip_buf(zeros, PS_PIV_CERT_MAX, z, sizeof(z));
	ck_assert_int_eq(ps_piv_inflate(&tu_log, z, zn, PS_PIV_CERT_MAX, &out,
	    &outlen), PS_OK);
	ck_assert_uint_eq(outlen, PS_PIV_CERT_MAX);
	free(out);
	ck_assert_int_eq(ps_piv_inflate(&tu_log, z, 0, PS_PIV_CERT_MAX, &out,
	    &outlen), PS_ERR_TOKEN);
	free(zeros);
}
END_TEST

START_TEST(garbage_never_parses)
{
	unsigned char buf[512];
	const unsigned char *sig;
	size_t siglen, i, n;
	unsigned seed = 12345;
	X509 *got;
	struct ps_tlv t;

	for (i = 0; i < 20000; i++) {
		size_t k;

		n = (size_t)rand_r(&seed) % sizeof(buf);
		for (k = 0; k < n; k++)
			buf[k] = (unsigned char)rand_r(&seed);
		/* Half of them look like the right container. */
		if (n > 4 && (i & 1)) {
			buf[0] = (i & 2) ? 0x53 : 0x7C;
			buf[1] = 0x82;
			buf[2] = (unsigned char)((n - 4) >> 8);
			buf[3] = (unsigned char)(n - 4);
		}
		got = NULL;
		ck_assert_int_ne(ps_piv_cert_from_object(NULL, buf, n, &got),
		    PS_OK);
		(void)ps_piv_parse_auth_response(NULL, buf, n, &sig, &siglen);
		(void)ps_tlv_find(buf, n, 0x70, &t);
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* piv.c: signatures */

START_TEST(auth_response)
{
	unsigned char body[600], sig[300];
	const unsigned char *s;
	size_t n, m, slen;

	memset(sig, 0x5A, sizeof(sig));
	m = put_tlv(body + 100, 0x82, sig, 256);
	n = put_tlv(body, 0x7C, body + 100, m);
	ck_assert_int_eq(ps_piv_parse_auth_response(&tu_log, body, n, &s, &slen),
	    PS_OK);
	ck_assert_uint_eq(slen, 256);
	ck_assert_ptr_eq(s, body + 8);
	for (m = 0; m < n; m++)
		ck_assert_int_eq(ps_piv_parse_auth_response(NULL, body, m, &s,
		    &slen), PS_ERR_TOKEN);
	body[0] = 0x7D;
	ck_assert_int_eq(ps_piv_parse_auth_response(&tu_log, body, n, &s,
	    &slen), PS_ERR_TOKEN);
	/* 7C{81 ...}: no 82 */
	m = put_tlv(body + 100, 0x81, sig, 8);
	n = put_tlv(body, 0x7C, body + 100, m);
	ck_assert_int_eq(ps_piv_parse_auth_response(&tu_log, body, n, &s,
	    &slen), PS_ERR_TOKEN);
	/* 7C{82 00} */
	m = put_tlv(body + 100, 0x82, sig, 0);
	n = put_tlv(body, 0x7C, body + 100, m);
	ck_assert_int_eq(ps_piv_parse_auth_response(&tu_log, body, n, &s,
	    &slen), PS_ERR_TOKEN);
}
END_TEST

/* The card's part: raw RSA on the block, or ECDSA on the input. */
static size_t
card_sign(EVP_PKEY *key, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t cap)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	size_t n = cap;

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(EVP_PKEY_sign_init(ctx), 1);
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
		ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx,
		    RSA_NO_PADDING), 1);
	ck_assert_int_eq(EVP_PKEY_sign(ctx, out, &n, in, inlen), 1);
	EVP_PKEY_CTX_free(ctx);
	return n;
}

static bool
host_verifies(EVP_PKEY *pub, const EVP_MD *md, const unsigned char *dg,
    size_t dlen, const unsigned char *sig, size_t slen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
	int ok;

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(EVP_PKEY_verify_init(ctx), 1);
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA)
		ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx,
		    RSA_PKCS1_PADDING), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_signature_md(ctx, md), 1);
	ok = EVP_PKEY_verify(ctx, sig, slen, dg, dlen);
	EVP_PKEY_CTX_free(ctx);
	return ok == 1;
}

static const char *const sig_users[] = { "alice", "bob", "carol" };

START_TEST(sign_roundtrip)
{
	char name[64];
	X509 *x;
	EVP_PKEY *priv, *pub;
	const EVP_MD *md;
	unsigned char alg, dg[64], in[512], sig[600], *fin = NULL;
	size_t inlen, dlen, slen, flen;

	snprintf(name, sizeof(name), "%s.crt", sig_users[_i]);
	x = tu_load_cert(name);
	snprintf(name, sizeof(name), "%s.key", sig_users[_i]);
	priv = tu_load_key(name);
	pub = X509_get0_pubkey(x);
	ck_assert_int_eq(ps_piv_alg_for_key(&tu_log, pub, &alg, &inlen), PS_OK);
	md = _i == 2 ? EVP_sha384() : EVP_sha256();
	dlen = (size_t)EVP_MD_get_size(md);
	memset(dg, 0x42 + _i, sizeof(dg));
	ck_assert_int_eq(ps_piv_sign_input(&tu_log, alg, md, dg, dlen, in,
	    inlen), PS_OK);
	if (_i == 0) {
		ck_assert_uint_eq(alg, PS_PIV_ALG_RSA2048);
		ck_assert_uint_eq(inlen, 256);
		ck_assert_uint_eq(in[0], 0x00);
		ck_assert_uint_eq(in[1], 0x01);
		ck_assert_uint_eq(in[2], 0xFF);
		ck_assert_uint_eq(in[256 - 32 - 19 - 1], 0x00);
	} else {
		ck_assert_uint_eq(alg, _i == 1 ? PS_PIV_ALG_P256 :
		    PS_PIV_ALG_P384);
		ck_assert_uint_eq(inlen, _i == 1 ? 32 : 48);
	}
	slen = card_sign(priv, in, inlen, sig, sizeof(sig));
	ck_assert_int_eq(ps_piv_finish_signature(&tu_log, alg, inlen, sig,
	    slen, &fin, &flen), PS_OK);
	ck_assert(host_verifies(pub, md, dg, dlen, fin, flen));
	free(fin);
	/* one byte short is refused (RSA) or fails to parse (EC) */
	ck_assert_int_ne(ps_piv_finish_signature(&tu_log, alg, inlen, sig,
	    slen - 1, &fin, &flen), PS_OK);
	ck_assert_ptr_null(fin);
	EVP_PKEY_free(priv);
	X509_free(x);
}
END_TEST

START_TEST(sign_input_edges)
{
	unsigned char dg[64], out[512], *fin = NULL;
	size_t flen;
	static const unsigned char zero_r[] = { 0x30, 0x06, 0x02, 0x01, 0x00,
	    0x02, 0x01, 0x01 };
	static const unsigned char good[] = { 0x30, 0x06, 0x02, 0x01, 0x05,
	    0x02, 0x01, 0x01 };
	static const unsigned char lax[] = { 0x30, 0x81, 0x06, 0x02, 0x01,
	    0x05, 0x02, 0x01, 0x01 };
	static const unsigned char trail[] = { 0x30, 0x06, 0x02, 0x01, 0x05,
	    0x02, 0x01, 0x01, 0x00 };

	memset(dg, 0x11, sizeof(dg));
	/* SHA-384 digest for P-256: leftmost 32 bytes */
	dg[0] = 0xAA;
	ck_assert_int_eq(ps_piv_sign_input(&tu_log, PS_PIV_ALG_P256,
	    EVP_sha384(), dg, 48, out, 32), PS_OK);
	ck_assert_uint_eq(out[0], 0xAA);
	/* SHA-256 digest for P-384: left-padded with zeros */
	ck_assert_int_eq(ps_piv_sign_input(&tu_log, PS_PIV_ALG_P384,
	    EVP_sha256(), dg, 32, out, 48), PS_OK);
	ck_assert_uint_eq(out[0], 0);
	ck_assert_uint_eq(out[16], 0xAA);
	/* RSA: the digest must match md, and the modulus must fit it */
	ck_assert_int_eq(ps_piv_sign_input(&tu_log, PS_PIV_ALG_RSA2048,
	    EVP_sha256(), dg, 31, out, 256), PS_ERR_INVALID);
	ck_assert_int_eq(ps_piv_sign_input(&tu_log, PS_PIV_ALG_RSA2048,
	    EVP_sha1(), dg, 20, out, 256), PS_ERR_INVALID);
	ck_assert_int_eq(ps_piv_sign_input(&tu_log, PS_PIV_ALG_RSA2048,
	    EVP_sha512(), dg, 64, out, 80), PS_ERR_INVALID);
	ck_assert_int_eq(ps_piv_sign_input(&tu_log, 0x42, EVP_sha256(), dg, 32,
	    out, 32), PS_ERR_INVALID);

	ck_assert_int_eq(ps_piv_finish_signature(&tu_log, PS_PIV_ALG_P256, 32,
	    zero_r, sizeof(zero_r), &fin, &flen), PS_ERR_TOKEN);
	ck_assert_int_eq(ps_piv_finish_signature(&tu_log, PS_PIV_ALG_P256, 32,
	    trail, sizeof(trail), &fin, &flen), PS_ERR_TOKEN);
	ck_assert_int_eq(ps_piv_finish_signature(&tu_log, PS_PIV_ALG_P256, 32,
	    good, sizeof(good), &fin, &flen), PS_OK);
	ck_assert_mem_eq(fin, good, sizeof(good));
	free(fin);
	/* non-minimal length from a lax card comes back canonical, or is
	 * refused; either way never over-read */
	if (ps_piv_finish_signature(&tu_log, PS_PIV_ALG_P256, 32, lax,
	    sizeof(lax), &fin, &flen) == PS_OK) {
		ck_assert_mem_eq(fin, good, sizeof(good));
		free(fin);
	}
	ck_assert_int_eq(ps_piv_finish_signature(&tu_log, PS_PIV_ALG_P256, 1,
	    good, sizeof(good), &fin, &flen), PS_OK);
	free(fin);
	ck_assert_int_eq(ps_piv_finish_signature(&tu_log, PS_PIV_ALG_RSA2048,
	    256, good, sizeof(good), &fin, &flen), PS_ERR_TOKEN);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A simulated card behind ps_pcsc_ops */

#define FAKE_READERS 2

struct fake_card {
	bool present;
	EVP_PKEY *key[PS_PIV_NSLOTS];
	unsigned char *obj[PS_PIV_NSLOTS];
	size_t objlen[PS_PIV_NSLOTS];
	bool not_piv;
	const char *pin;
	int tries, max_tries;
	bool verified;
	size_t chunk;			/* 0: whole answers where they fit */
	bool exact_le;			/* 6Cxx unless GET RESPONSE's Le fits */
	int remove_on_ins;		/* card pulled when this INS arrives */
	int mute_how;			/* 0: REMOVED, 1: no SW, 2: comm error */
	bool garbage;			/* GET DATA / GA answer noise */
	bool endless;			/* 61xx forever */
	bool no_logout;
	unsigned char pending[20000];
	size_t pending_len, pending_off;
	unsigned char chain[4096];
	size_t chain_len;
};

struct fake_log {
	unsigned char cla, ins, p1;
	size_t lc;
};

static struct {
	struct fake_card card[FAKE_READERS];
	const char *names[FAKE_READERS];
	size_t nreaders;
	bool no_service;
	bool insert_on_wait;		/* a wait "inserts" card 0 */
	int waits;
	int txn;
	struct fake_log log[512];
	size_t nlog;
} F;

static void
fake_reset(void)
{
	size_t i, j;

	for (i = 0; i < FAKE_READERS; i++) {
		for (j = 0; j < PS_PIV_NSLOTS; j++) {
			EVP_PKEY_free(F.card[i].key[j]);
			free(F.card[i].obj[j]);
		}
	}
	memset(&F, 0, sizeof(F));
	F.names[0] = "Fake Reader A 00 00";
	F.names[1] = "Fake Reader B 01 00";
	F.nreaders = 1;
	for (i = 0; i < FAKE_READERS; i++) {
		F.card[i].pin = "123456";
		F.card[i].tries = F.card[i].max_tries = 3;
		F.card[i].remove_on_ins = -1;
	}
}

static void
fake_put(int reader, int slot, const char *user, bool gz)
{
	char name[64];
	unsigned char tmp[16384];
	size_t n;

	snprintf(name, sizeof(name), "%s.crt", user);
	n = object_for(name, gz, tmp);
	F.card[reader].obj[slot] = malloc(n);
	ck_assert_ptr_nonnull(F.card[reader].obj[slot]);
	memcpy(F.card[reader].obj[slot], tmp, n);
	F.card[reader].objlen[slot] = n;
	snprintf(name, sizeof(name), "%s.key", user);
	F.card[reader].key[slot] = tu_load_key(name);
	F.card[reader].present = true;
}

static LONG
f_establish(DWORD scope, LPCVOID a, LPCVOID b, LPSCARDCONTEXT ctx)
{
	*ctx = 1;
	return F.no_service ? SCARD_E_NO_SERVICE : SCARD_S_SUCCESS;
}

static LONG
f_release(SCARDCONTEXT ctx)
{
	return SCARD_S_SUCCESS;
}

static LONG
f_list(SCARDCONTEXT ctx, LPCSTR groups, LPSTR buf, LPDWORD len)
{
	char tmp[256];
	size_t n = 0, i;

	if (F.nreaders == 0)
		return SCARD_E_NO_READERS_AVAILABLE;
	for (i = 0; i < F.nreaders; i++) {
		strcpy(tmp + n, F.names[i]);
		n += strlen(F.names[i]) + 1;
	}
	tmp[n++] = '\0';
	if (buf != NULL) {
		if (*len < n)
			return SCARD_E_INSUFFICIENT_BUFFER;
		memcpy(buf, tmp, n);
	}
	*len = (DWORD)n;
	return SCARD_S_SUCCESS;
}

static int
reader_index(const char *name)
{
	size_t i;

	for (i = 0; i < F.nreaders; i++)
		if (strcmp(name, F.names[i]) == 0)
			return (int)i;
	return -1;
}

static LONG
f_status(SCARDCONTEXT ctx, DWORD timeout, SCARD_READERSTATE *st, DWORD n)
{
	DWORD i;
	int r;

	if (timeout > 0) {
		F.waits++;
		if (!F.insert_on_wait)
			return SCARD_E_TIMEOUT;
		F.card[0].present = true;
	}
	for (i = 0; i < n; i++) {
		r = reader_index(st[i].szReader);
		if (r < 0) {
			st[i].dwEventState = 0;
			continue;
		}
		st[i].dwEventState = F.card[r].present ? SCARD_STATE_PRESENT :
		    SCARD_STATE_EMPTY;
		if (timeout > 0)
			st[i].dwEventState |= SCARD_STATE_CHANGED;
	}
	return SCARD_S_SUCCESS;
}

static LONG
f_connect(SCARDCONTEXT ctx, LPCSTR reader, DWORD share, DWORD protos,
    LPSCARDHANDLE h, LPDWORD active)
{
	int r = reader_index(reader);

	if (r < 0)
		return SCARD_E_UNKNOWN_READER;
	if (!F.card[r].present)
		return SCARD_E_NO_SMARTCARD;
	*h = (SCARDHANDLE)(r + 1);
	*active = SCARD_PROTOCOL_T1;
	return SCARD_S_SUCCESS;
}

static LONG
f_disconnect(SCARDHANDLE h, DWORD how)
{
	ck_assert_int_eq(F.txn, 0);
	return SCARD_S_SUCCESS;
}

static LONG
f_begin(SCARDHANDLE h)
{
	ck_assert_int_eq(F.txn, 0);
	if (!F.card[h - 1].present)
		return SCARD_W_REMOVED_CARD;
	F.txn++;
	return SCARD_S_SUCCESS;
}

static LONG
f_end(SCARDHANDLE h, DWORD how)
{
	ck_assert_int_eq(F.txn, 1);
	F.txn--;
	return SCARD_S_SUCCESS;
}

/* Queue `data` as the answer; give what fits now, the rest by 61xx. */
static size_t
fake_respond(struct fake_card *c, const unsigned char *data, size_t n,
    uint16_t sw, unsigned char *out)
{
	size_t lim = c->chunk ? c->chunk : 256;

	if (n <= lim && n <= 256 && !c->endless) {
		memcpy(out, data, n);
		out[n] = (unsigned char)(sw >> 8);
		out[n + 1] = (unsigned char)sw;
		return n + 2;
	}
	memcpy(c->pending, data, n);
	c->pending_len = n;
	c->pending_off = 0;
	out[0] = 0x61;
	out[1] = (unsigned char)(n > 255 ? 0 : n);
	return 2;
}

static size_t
fake_sw(uint16_t sw, unsigned char *out)
{
	out[0] = (unsigned char)(sw >> 8);
	out[1] = (unsigned char)sw;
	return 2;
}

static size_t
fake_get_response(struct fake_card *c, unsigned le, unsigned char *out)
{
	size_t left = c->pending_len - c->pending_off, n;
	size_t lim = c->chunk ? c->chunk : 256;

	if (c->endless)
		return fake_sw(0x6100, out);
	if (left == 0)
		return fake_sw(0x6985, out);
	n = left < lim ? left : lim;
	if (c->exact_le && le != n)
		return fake_sw((uint16_t)(0x6C00 | (n & 0xFF)), out);
	if (le < n)
		n = le;
	memcpy(out, c->pending + c->pending_off, n);
	c->pending_off += n;
	left -= n;
	if (left == 0)
		return n + fake_sw(0x9000, out + n);
	out[n] = 0x61;
	out[n + 1] = (unsigned char)(left > 255 ? 0 : left);
	return n + 2;
}

static size_t
fake_verify(struct fake_card *c, unsigned p1, const unsigned char *d,
    size_t n, unsigned char *out)
{
	unsigned char want[8];
	size_t pl = strlen(c->pin);

	if (p1 == 0xFF) {
		if (c->no_logout)
			return fake_sw(0x6A86, out);
		c->verified = false;
		return fake_sw(0x9000, out);
	}
	if (n == 0) {
		if (c->verified)
			return fake_sw(0x9000, out);
		if (c->tries == 0)
			return fake_sw(0x6983, out);
		return fake_sw((uint16_t)(0x63C0 | c->tries), out);
	}
	if (c->tries == 0)
		return fake_sw(0x6983, out);
	memset(want, 0xFF, sizeof(want));
	memcpy(want, c->pin, pl);
	if (n == 8 && memcmp(want, d, 8) == 0) {
		c->verified = true;
		c->tries = c->max_tries;
		return fake_sw(0x9000, out);
	}
	c->verified = false;
	c->tries--;
	if (c->tries == 0)
		return fake_sw(0x6983, out);
	return fake_sw((uint16_t)(0x63C0 | c->tries), out);
}

static size_t
fake_general_auth(struct fake_card *c, unsigned alg, unsigned ref,
    const unsigned char *d, size_t n, unsigned char *out)
{
	const struct ps_piv_slot *slot = ps_piv_slot_by_ref((unsigned char)ref);
	struct ps_tlv t, in;
	unsigned char sig[600], resp[700], inner[650];
	size_t used, sl, m;
	int idx;

	if (slot == NULL)
		return fake_sw(0x6A86, out);
	idx = (int)(slot - ps_piv_slots);
	if (!c->verified && ref != 0x9E)
		return fake_sw(0x6982, out);
	if (ps_tlv_parse(d, n, &t, &used) != PS_OK || t.tag != 0x7C ||
	    ps_tlv_find(t.value, t.len, 0x81, &in) != PS_OK)
		return fake_sw(0x6A80, out);
	if (c->key[idx] == NULL)
		return fake_sw(0x6A88, out);
	(void)alg;
	sl = card_sign(c->key[idx], in.value, in.len, sig, sizeof(sig));
	if (slot->pin_always)
		c->verified = false;
	m = put_tlv(inner, 0x82, sig, sl);
	m = put_tlv(resp, 0x7C, inner, m);
	if (c->garbage)
		memset(resp, 0x7C, m);
	return fake_respond(c, resp, m, 0x9000, out);
}

static size_t
fake_get_data(struct fake_card *c, const unsigned char *d, size_t n,
    unsigned char *out)
{
	uint32_t obj;
	size_t i;
	unsigned char junk[300];

	if (n != 5 || d[0] != 0x5C || d[1] != 0x03)
		return fake_sw(0x6A80, out);
	obj = (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 | d[4];
	if (c->garbage) {
		for (i = 0; i < sizeof(junk); i++)
			junk[i] = (unsigned char)(i * 7 + 0x53);
		return fake_respond(c, junk, sizeof(junk), 0x9000, out);
	}
	for (i = 0; i < PS_PIV_NSLOTS; i++)
		if (ps_piv_slots[i].object == obj && c->obj[i] != NULL)
			return fake_respond(c, c->obj[i], c->objlen[i], 0x9000,
			    out);
	return fake_sw(0x6A82, out);
}

static LONG
f_transmit(SCARDHANDLE h, const SCARD_IO_REQUEST *pci, LPCBYTE cmd,
    DWORD len, SCARD_IO_REQUEST *rpci, LPBYTE out, LPDWORD outlen)
{
	struct fake_card *c = &F.card[h - 1];
	unsigned char data[4096];
	size_t lc = 0, n;
	unsigned le = 0;

	ck_assert_uint_ge(len, 4);
	if (!c->present)
		return SCARD_W_REMOVED_CARD;
	if (len > 4) {
		if (len == 5) {
			le = cmd[4] ? cmd[4] : 256;
		} else {
			lc = cmd[4];
			ck_assert_uint_ge(len, 5 + lc);
			if (len == 6 + lc)
				le = cmd[5 + lc] ? cmd[5 + lc] : 256;
		}
	}
	if (F.nlog < 512) {
		F.log[F.nlog].cla = cmd[0];
		F.log[F.nlog].ins = cmd[1];
		F.log[F.nlog].p1 = cmd[2];
		F.log[F.nlog].lc = lc;
		F.nlog++;
	}
	if (cmd[1] == c->remove_on_ins) {
		c->present = false;
		if (c->mute_how == 1) {
			*outlen = 0;	/* vpcd: an answer without SW */
			return SCARD_S_SUCCESS;
		}
		return c->mute_how == 2 ? SCARD_E_NOT_TRANSACTED :
		    SCARD_W_REMOVED_CARD;
	}
	ck_assert_uint_ge(*outlen, 258);
	if (cmd[0] & 0x10) {
		memcpy(c->chain + c->chain_len, cmd + 5, lc);
		c->chain_len += lc;
		*outlen = (DWORD)fake_sw(0x9000, out);
		return SCARD_S_SUCCESS;
	}
	memcpy(data, c->chain, c->chain_len);
	memcpy(data + c->chain_len, cmd + 5, lc);
	n = c->chain_len + lc;
	c->chain_len = 0;
	switch (cmd[1]) {
	case 0xA4:
		if (c->not_piv)
			n = fake_sw(0x6A82, out);
		else
			n = fake_respond(c, (const unsigned char *)
			    "\x61\x07\x4F\x05\xA0\x00\x00\x03\x08", 9, 0x9000,
			    out);
		break;
	case 0xCB:
		n = fake_get_data(c, data, n, out);
		break;
	case 0xC0:
		n = fake_get_response(c, le, out);
		break;
	case 0x20:
		n = fake_verify(c, cmd[2], data, n, out);
		break;
	case 0x87:
		n = fake_general_auth(c, cmd[2], cmd[3], data, n, out);
		break;
	default:
		n = fake_sw(0x6D00, out);
	}
	*outlen = (DWORD)n;
	return SCARD_S_SUCCESS;
}

static const struct ps_pcsc_ops fake_ops = {
	.establish = f_establish,
	.release = f_release,
	.list_readers = f_list,
	.get_status_change = f_status,
	.connect = f_connect,
	.disconnect = f_disconnect,
	.begin = f_begin,
	.end = f_end,
	.transmit = f_transmit,
};

static size_t
count_ins(unsigned char ins)
{
	size_t i, n = 0;

	for (i = 0; i < F.nlog; i++)
		n += F.log[i].ins == ins;
	return n;
}

static bool
sent_pin(void)
{
	size_t i;

	for (i = 0; i < F.nlog; i++)
		if (F.log[i].ins == 0x20 && F.log[i].lc > 0)
			return true;
	return false;
}

/* conversation capture */
static char conv_text[4096];

static void
conv_msg(void *arg, const char *msg)
{
	size_t used = strlen(conv_text);

	snprintf(conv_text + used, sizeof(conv_text) - used, "%s\n", msg);
}

static const struct ps_conv test_conv = { NULL, conv_msg, conv_msg, NULL };

static struct ps_config cfg;

static void
setup(void)
{
	fake_reset();
	ps_pcsc_set_ops(&fake_ops);
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	conv_text[0] = '\0';
	tu_log_reset();
}

static void
teardown(void)
{
	ps_pcsc_set_ops(NULL);
	ps_config_free(&cfg);
	fake_reset();
}

/* A fresh card and configuration inside one test. */
static void
again(void)
{
	teardown();
	setup();
}

/* want_key hint: equal to the public key of `arg` (an X509). */
static bool
want_cert_key(void *arg, EVP_PKEY *pub)
{
	return EVP_PKEY_eq(X509_get0_pubkey(arg), pub) == 1;
}

static int
open_piv(struct ps_token **tok, X509 *wanted)
{
	struct ps_token_params p;

	memset(&p, 0, sizeof(p));
	p.cfg = &cfg;
	p.log = &tu_log;
	p.conv = &test_conv;
	p.user = "alice";
	if (wanted != NULL) {
		p.want_key = want_cert_key;
		p.want_key_arg = wanted;
	}
	return ps_token_open(PS_BACKEND_PIV, &p, tok);
}

/* Find the key that matches `cert` (like auth.c does). */
static const struct ps_token_key *
key_for(struct ps_token *tok, X509 *cert)
{
	const struct ps_token_key *keys;
	size_t n, i;

	ck_assert_int_eq(tok->ops->list_keys(tok, &keys, &n), PS_OK);
	for (i = 0; i < n; i++)
		if (EVP_PKEY_eq(keys[i].pub, X509_get0_pubkey(cert)) == 1)
			return &keys[i];
	return NULL;
}

static int
login(struct ps_token *tok, const struct ps_token_key *k, X509 *cert,
    const char *pin)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	const EVP_MD *md = EVP_PKEY_get_bits(pub) == 384 ? EVP_sha384() :
	    EVP_sha256();
	unsigned char dg[64], *sig = NULL;
	size_t dlen = (size_t)EVP_MD_get_size(md), slen = 0;
	int r;

	if ((r = tok->ops->unlock(tok, k, pin)) != PS_OK)
		return r;
	memset(dg, 0x33, sizeof(dg));
	r = tok->ops->sign(tok, k, md, dg, dlen, &sig, &slen);
	if (r == PS_OK && !host_verifies(pub, md, dg, dlen, sig, slen))
		r = PS_ERR_AUTH;
	free(sig);
	return r;
}

static const struct {
	const char *user;
	int slot;
	bool gz;
	size_t chunk;
	bool exact_le;
} good_cases[] = {
	{ "alice", 0, false, 0, false },
	{ "bob", 0, false, 0, false },
	{ "carol", 0, false, 0, false },
	{ "alice", 0, true, 0, false },
	{ "alice", 0, false, 100, false },	/* T=0 style chunks */
	{ "carol", 0, true, 64, true },		/* chunks and 6Cxx */
	{ "bob", 1, false, 0, false },		/* 9C: PIN always */
	{ "bob", 3, false, 0, false },		/* 9E */
	{ "alice", 2, false, 200, true },	/* 9D */
};

START_TEST(token_login_good)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *k;
	char name[64];
	X509 *cert;

	snprintf(name, sizeof(name), "%s.crt", good_cases[_i].user);
	cert = tu_load_cert(name);
	fake_put(0, good_cases[_i].slot, good_cases[_i].user,
	    good_cases[_i].gz);
	F.card[0].chunk = good_cases[_i].chunk;
	F.card[0].exact_le = good_cases[_i].exact_le;
	ck_assert_int_eq(open_piv(&tok, cert), PS_OK);
	ck_assert(tok->ops->lists_without_secret);
	ck_assert_str_eq(tok->ops->secret_prompt(tok),
	    "PIN for Fake Reader A 00 00: ");
	ck_assert_ptr_nonnull(k = key_for(tok, cert));
	ck_assert_int_eq(k->id, ps_piv_slots[good_cases[_i].slot].key_ref);
	ck_assert_int_eq(login(tok, k, cert, "123456"), PS_OK);
	/* logged out afterwards, and nothing held */
	ck_assert(!F.card[0].verified);
	ck_assert_uint_eq(F.log[F.nlog - 1].ins, 0x20);
	ck_assert_uint_eq(F.log[F.nlog - 1].p1, 0xFF);
	ck_assert_int_eq(F.txn, 0);
	/* lazy: only the slots up to the wanted one were read */
	ck_assert_uint_eq(count_ins(0xCB), (size_t)good_cases[_i].slot + 1);
	if (good_cases[_i].chunk == 0) {
		/* SELECT, GET DATA x slots, SELECT, VERIFY x2, GA, VERIFY FF
		 * (+ chaining for RSA, + GET RESPONSE for > 256 bytes) */
		ck_assert_uint_eq(count_ins(0xA4), 2);
		ck_assert_uint_eq(count_ins(0x20), 3);
		ck_assert_uint_eq(count_ins(0x87),
		    strcmp(good_cases[_i].user, "alice") == 0 ? 2 : 1);
	}
	ps_token_close(tok);
	X509_free(cert);
}
END_TEST

START_TEST(token_reads_all_without_hint)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *keys;
	size_t n;

	fake_put(0, 0, "alice", false);
	fake_put(0, 2, "bob", false);
	ck_assert_int_eq(open_piv(&tok, NULL), PS_OK);
	ck_assert_int_eq(tok->ops->list_keys(tok, &keys, &n), PS_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(keys[0].label, "slot 9A");
	ck_assert_str_eq(keys[1].label, "slot 9D");
	ck_assert_uint_eq(count_ins(0xCB), 4);
	ps_token_close(tok);
}
END_TEST

START_TEST(token_wrong_pin)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *k;
	X509 *cert = tu_load_cert("bob.crt");

	fake_put(0, 0, "bob", false);
	ck_assert_int_eq(open_piv(&tok, cert), PS_OK);
	ck_assert_ptr_nonnull(k = key_for(tok, cert));
	ck_assert_int_eq(login(tok, k, cert, "654321"), PS_ERR_BAD_SECRET);
	ck_assert_int_eq(F.card[0].tries, 2);
	ck_assert_ptr_nonnull(strstr(conv_text, "2 tries left"));
	ck_assert_int_eq(F.txn, 0);
	/* sign without a successful unlock is refused */
	{
		unsigned char dg[32] = { 0 }, *sig = NULL;
		size_t sl = 0;

		ck_assert_int_eq(tok->ops->sign(tok, k, EVP_sha256(), dg, 32,
		    &sig, &sl), PS_ERR_INTERNAL);
		ck_assert_ptr_null(sig);
	}
	/* the next right PIN resets the counter */
	ck_assert_int_eq(login(tok, k, cert, "123456"), PS_OK);
	ck_assert_int_eq(F.card[0].tries, 3);
	/* a PIN of the wrong length is never sent */
	F.nlog = 0;
	ck_assert_int_eq(tok->ops->unlock(tok, k, "12345"), PS_ERR_BAD_SECRET);
	ck_assert(!sent_pin());
	ck_assert_int_eq(tok->ops->unlock(tok, k, "123456789"),
	    PS_ERR_BAD_SECRET);
	ck_assert(!sent_pin());
	ck_assert_int_eq(F.card[0].tries, 3);
	ps_token_close(tok);
	X509_free(cert);
}
END_TEST

START_TEST(token_last_try_kept)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *k;
	X509 *cert = tu_load_cert("carol.crt");

	fake_put(0, 0, "carol", false);
	F.card[0].tries = 1;
	ck_assert_int_eq(open_piv(&tok, cert), PS_OK);
	ck_assert_ptr_nonnull(k = key_for(tok, cert));
	ck_assert_int_eq(login(tok, k, cert, "123456"), PS_ERR_PIN_LOCKED);
	ck_assert(!sent_pin());
	ck_assert_int_eq(F.card[0].tries, 1);
	ck_assert_ptr_nonnull(strstr(conv_text, "Only 1 PIN try left"));
	ck_assert_ptr_nonnull(strstr(conv_text, "Contact your administrator"));
	/* min_pin_retries=0 lets the last try through */
	cfg.min_pin_retries = 0;
	ck_assert_int_eq(login(tok, k, cert, "123456"), PS_OK);
	/* and with 2 configured, 2 left is refused too */
	cfg.min_pin_retries = 3;
	F.nlog = 0;
	ck_assert_int_eq(login(tok, k, cert, "123456"), PS_ERR_PIN_LOCKED);
	ck_assert(!sent_pin());
	ps_token_close(tok);
	X509_free(cert);
}
END_TEST

START_TEST(token_blocked)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *k;
	X509 *cert = tu_load_cert("alice.crt");

	fake_put(0, 0, "alice", false);
	F.card[0].tries = 0;
	ck_assert_int_eq(open_piv(&tok, cert), PS_OK);
	ck_assert_ptr_nonnull(k = key_for(tok, cert));
	ck_assert_int_eq(login(tok, k, cert, "123456"), PS_ERR_PIN_LOCKED);
	ck_assert(!sent_pin());
	ck_assert_ptr_nonnull(strstr(conv_text, "blocked"));
	/* the last wrong PIN blocks the card */
	F.card[0].tries = 2;
	cfg.min_pin_retries = 0;
	ck_assert_int_eq(login(tok, k, cert, "000000"), PS_ERR_BAD_SECRET);
	ck_assert_int_eq(login(tok, k, cert, "000000"), PS_ERR_PIN_LOCKED);
	ck_assert_int_eq(F.card[0].tries, 0);
	ps_token_close(tok);
	X509_free(cert);
}
END_TEST

START_TEST(token_already_verified)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *k;
	X509 *cert = tu_load_cert("bob.crt");

	fake_put(0, 0, "bob", false);
	F.card[0].verified = true;	/* someone else left it verified */
	ck_assert_int_eq(open_piv(&tok, cert), PS_OK);
	ck_assert_ptr_nonnull(k = key_for(tok, cert));
	/* the PIN is still checked */
	ck_assert_int_eq(login(tok, k, cert, "999999"), PS_ERR_BAD_SECRET);
	F.card[0].verified = true;
	F.card[0].no_logout = true;	/* and a card that cannot log out */
	ck_assert_int_eq(login(tok, k, cert, "123456"), PS_OK);
	ps_token_close(tok);
	X509_free(cert);
}
END_TEST

START_TEST(token_removed)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *k;
	X509 *cert = tu_load_cert("alice.crt");
	static const int ins[] = { 0x87, 0x20, 0xC0, 0x87, 0x87 };

	fake_put(0, 0, "alice", false);
	F.card[0].remove_on_ins = ins[_i];
	F.card[0].mute_how = _i < 3 ? 0 : _i - 2;
	if (ins[_i] == 0xC0)
		F.card[0].chunk = 50;
	ck_assert_int_eq(open_piv(&tok, cert), ins[_i] == 0xC0 ?
	    PS_ERR_TOKEN : PS_OK);
	if (tok != NULL) {
		ck_assert_ptr_nonnull(k = key_for(tok, cert));
		ck_assert_int_eq(login(tok, k, cert, "123456"), PS_ERR_TOKEN);
		ck_assert_ptr_nonnull(strstr(conv_text, "removed"));
		ck_assert(tu_log_contains(_i < 3 ? "was removed" :
		    "stopped answering"));
		ck_assert_int_eq(F.txn, 0);
		ps_token_close(tok);
	}
	X509_free(cert);
}
END_TEST

START_TEST(token_garbage)
{
	struct ps_token *tok = NULL;
	X509 *cert = tu_load_cert("alice.crt");

	fake_put(0, 0, "alice", false);
	F.card[0].garbage = true;
	ck_assert_int_eq(open_piv(&tok, cert), PS_ERR_TOKEN);
	ck_assert_ptr_null(tok);
	ck_assert_ptr_nonnull(strstr(conv_text, "could not be read"));
	/* garbage only in the signature */
	again();
	fake_put(0, 0, "bob", false);
	X509_free(cert);
	cert = tu_load_cert("bob.crt");
	ck_assert_int_eq(open_piv(&tok, cert), PS_OK);
	F.card[0].garbage = true;
	ck_assert_int_eq(login(tok, key_for(tok, cert), cert, "123456"),
	    PS_ERR_TOKEN);
	ps_token_close(tok);
	/* a card that says 61xx forever */
	again();
	fake_put(0, 0, "bob", false);
	F.card[0].endless = true;
	ck_assert_int_eq(open_piv(&tok, cert), PS_ERR_TOKEN);
	ck_assert(tu_log_contains("GET RESPONSE"));
	X509_free(cert);
}
END_TEST

START_TEST(token_two_readers)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *k;
	X509 *alice = tu_load_cert("alice.crt"), *bob = tu_load_cert("bob.crt");

	F.nreaders = 2;
	fake_put(0, 0, "bob", false);
	fake_put(1, 0, "alice", false);
	ck_assert_int_eq(open_piv(&tok, alice), PS_OK);
	ck_assert_str_eq(tok->ops->secret_prompt(tok),
	    "PIN for Fake Reader B 01 00: ");
	ck_assert_ptr_nonnull(k = key_for(tok, alice));
	ck_assert_int_eq(login(tok, k, alice, "123456"), PS_OK);
	ps_token_close(tok);
	/* neither card has a wanted key: the first PIV card, all read */
	again();
	F.nreaders = 2;
	fake_put(0, 0, "bob", false);
	fake_put(1, 0, "carol", false);
	ck_assert_int_eq(open_piv(&tok, alice), PS_OK);
	ck_assert_str_eq(tok->ops->secret_prompt(tok),
	    "PIN for Fake Reader A 00 00: ");
	ck_assert_ptr_nonnull(key_for(tok, bob));
	ps_token_close(tok);
	/* the first reader's card is not PIV */
	again();
	F.nreaders = 2;
	fake_put(0, 0, "bob", false);
	F.card[0].not_piv = true;
	fake_put(1, 0, "bob", false);
	ck_assert_int_eq(open_piv(&tok, NULL), PS_OK);
	ck_assert_str_eq(tok->ops->secret_prompt(tok),
	    "PIN for Fake Reader B 01 00: ");
	ps_token_close(tok);
	/* reader= narrows the choice */
	again();
	F.nreaders = 2;
	fake_put(0, 0, "alice", false);
	fake_put(1, 0, "alice", false);
	cfg.reader = strdup("Reader B");
	ck_assert_int_eq(open_piv(&tok, alice), PS_OK);
	ck_assert_str_eq(tok->ops->secret_prompt(tok),
	    "PIN for Fake Reader B 01 00: ");
	ps_token_close(tok);
	X509_free(alice);
	X509_free(bob);
}
END_TEST

START_TEST(token_no_card)
{
	struct ps_token *tok = NULL;

	/* no pcscd */
	F.no_service = true;
	ck_assert_int_eq(open_piv(&tok, NULL), PS_ERR_NO_TOKEN);
	ck_assert(tu_log_contains("pcscd"));
	/* no reader */
	again();
	F.nreaders = 0;
	ck_assert_int_eq(open_piv(&tok, NULL), PS_ERR_NO_TOKEN);
	ck_assert_ptr_nonnull(strstr(conv_text, "No smart card reader"));
	/* reader, no card, no waiting */
	again();
	ck_assert_int_eq(open_piv(&tok, NULL), PS_ERR_NO_TOKEN);
	ck_assert_int_eq(F.waits, 0);
	ck_assert_ptr_nonnull(strstr(conv_text, "No smart card found"));
	/* waiting: times out */
	again();
	cfg.card_timeout = 1;
	ck_assert_int_eq(open_piv(&tok, NULL), PS_ERR_NO_TOKEN);
	ck_assert_int_eq(F.waits, 1);
	ck_assert_ptr_nonnull(strstr(conv_text, "Please insert"));
	/* waiting: the card arrives */
	again();
	cfg.card_timeout = 5;
	fake_put(0, 0, "alice", false);
	F.card[0].present = false;
	F.insert_on_wait = true;
	ck_assert_int_eq(open_piv(&tok, NULL), PS_OK);
	ck_assert_int_eq(F.waits, 1);
	ps_token_close(tok);
	/* a card without PIV */
	again();
	fake_put(0, 0, "alice", false);
	F.card[0].not_piv = true;
	ck_assert_int_eq(open_piv(&tok, NULL), PS_ERR_NO_TOKEN);
}
END_TEST

START_TEST(token_auto)
{
	struct ps_token_params p;
	struct ps_token *tok = NULL;
	X509 *alice = tu_load_cert("alice.crt"), *bob = tu_load_cert("bob.crt");

	memset(&p, 0, sizeof(p));
	p.cfg = &cfg;
	p.log = &tu_log;
	p.conv = &test_conv;
	p.user = "nobody-here";
	p.home = "/nonexistent";
	p.uid = 65534;
	p.gid = 65534;
	p.want_key = want_cert_key;
	p.want_key_arg = alice;
	cfg.card_timeout = 30;
	/* a card with the wanted key: the card, with the real conv back */
	fake_put(0, 0, "alice", false);
	ck_assert_int_eq(ps_token_open(PS_BACKEND_AUTO, &p, &tok), PS_OK);
	ck_assert_str_eq(tok->ops->name, "piv");
	ck_assert_ptr_eq(tok->params.conv, &test_conv);
	ck_assert_ptr_eq(tok->params.cfg, &cfg);
	ps_token_close(tok);
	tok = NULL;
	/* no card: no waiting and no "insert" message, keystore tried */
	F.card[0].present = false;
	conv_text[0] = '\0';
	ck_assert_int_ne(ps_token_open(PS_BACKEND_AUTO, &p, &tok), PS_OK);
	ck_assert_ptr_null(tok);
	ck_assert_int_eq(F.waits, 0);
	ck_assert_ptr_null(strstr(conv_text, "insert your smart"));
	/* a card without the wanted key: the keystore is tried instead */
	F.card[0].present = true;
	p.want_key_arg = bob;
	tu_log_reset();
	ck_assert_int_ne(ps_token_open(PS_BACKEND_AUTO, &p, &tok), PS_OK);
	ck_assert(tu_log_contains("holds no wanted key"));
	X509_free(alice);
	X509_free(bob);
}
END_TEST

START_TEST(read_certificate)
{
	X509 *got = NULL, *want = tu_load_cert("carol.crt");

	fake_put(0, 1, "carol", true);
	ck_assert_int_eq(ps_piv_read_certificate(&cfg, &tu_log, "9c", &got),
	    PS_OK);
	ck_assert_int_eq(X509_cmp(want, got), 0);
	X509_free(got);
	ck_assert_int_eq(ps_piv_read_certificate(&cfg, &tu_log, "9a", &got),
	    PS_ERR_NOT_FOUND);
	ck_assert_ptr_null(got);
	ck_assert_int_eq(ps_piv_read_certificate(&cfg, &tu_log, "zz", &got),
	    PS_ERR_INVALID);
	F.card[0].present = false;
	ck_assert_int_eq(ps_piv_read_certificate(&cfg, &tu_log, "9c", &got),
	    PS_ERR_NO_TOKEN);
	X509_free(want);
}
END_TEST

/* Transport rules straight through ps_pcsc_transmit. */
START_TEST(transport_rules)
{
	struct ps_pcsc *p = NULL;
	struct ps_apdu a;
	unsigned char resp[PS_PIV_RESP_MAX];
	size_t len;
	uint16_t sw;

	fake_put(0, 0, "alice", false);
	ck_assert_int_eq(ps_pcsc_open(&cfg, &tu_log, &p), PS_OK);
	ck_assert_int_eq(ps_pcsc_connect(p, F.names[0]), PS_OK);
	ps_piv_cmd_get_data(&a, 0x5FC105);
	/* small cap: refused, never overflowed */
	ck_assert_int_eq(ps_pcsc_transmit(p, &a, resp, 100, &len, &sw),
	    PS_ERR_TOKEN);
	F.card[0].chunk = 17;
	F.card[0].exact_le = true;
	ck_assert_int_eq(ps_pcsc_transmit(p, &a, resp, sizeof(resp), &len,
	    &sw), PS_OK);
	ck_assert_uint_eq(sw, 0x9000);
	ck_assert_uint_eq(len, F.card[0].objlen[0]);
	ck_assert_mem_eq(resp, F.card[0].obj[0], len);
	/* chaining: 600 bytes go as 255 + 255 + 90 */
	F.nlog = 0;
	memset(&a, 0, sizeof(a));
	a.ins = 0xDB;
	a.lc = 600;
	ck_assert_int_eq(ps_pcsc_transmit(p, &a, resp, sizeof(resp), &len,
	    &sw), PS_OK);
	ck_assert_uint_eq(sw, 0x6D00);
	ck_assert_uint_eq(F.nlog, 3);
	ck_assert_uint_eq(F.log[0].cla, 0x10);
	ck_assert_uint_eq(F.log[1].cla, 0x10);
	ck_assert_uint_eq(F.log[2].cla, 0x00);
	ck_assert_uint_eq(F.log[2].lc, 90);
	ck_assert_uint_ge(ps_pcsc_apdu_count(p), 3);
	/* removal mid-operation */
	F.card[0].present = false;
	ck_assert_int_eq(ps_pcsc_transmit(p, &a, resp, sizeof(resp), &len,
	    &sw), PS_ERR_TOKEN);
	ck_assert(ps_pcsc_card_gone(p));
	ps_pcsc_close(p);
}
END_TEST

static Suite *
piv_suite(void)
{
	Suite *s = suite_create("piv");
	TCase *tc = tcase_create("parse");
	TCase *tk = tcase_create("token");

	tcase_add_test(tc, builders);
	tcase_add_test(tc, slots_and_sw);
	tcase_add_test(tc, tlv_forms);
	tcase_add_test(tc, cert_object_good);
	tcase_add_loop_test(tc, cert_object_truncated, 0, 2);
	tcase_add_test(tc, cert_object_bad);
	tcase_add_test(tc, gzip_bomb);
	tcase_add_test(tc, garbage_never_parses);
	tcase_add_test(tc, auth_response);
	tcase_add_loop_test(tc, sign_roundtrip, 0, 3);
	tcase_add_test(tc, sign_input_edges);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tk, setup, teardown);
	tcase_add_loop_test(tk, token_login_good, 0,
	    (int)(sizeof(good_cases) / sizeof(good_cases[0])));
	tcase_add_test(tk, token_reads_all_without_hint);
	tcase_add_test(tk, token_wrong_pin);
	tcase_add_test(tk, token_last_try_kept);
	tcase_add_test(tk, token_blocked);
	tcase_add_test(tk, token_already_verified);
	tcase_add_loop_test(tk, token_removed, 0, 5);
	tcase_add_test(tk, token_garbage);
	tcase_add_test(tk, token_two_readers);
	tcase_add_test(tk, token_no_card);
	tcase_add_test(tk, token_auto);
	tcase_add_test(tk, read_certificate);
	tcase_add_test(tk, transport_rules);
	tcase_set_timeout(tk, 60);
	suite_add_tcase(s, tk);
	return s;
}

int
main(void)
{
	return tu_run(piv_suite());
}
