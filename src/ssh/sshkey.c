/*
 * sshkey.c - SSH public key blobs <-> EVP_PKEY for RSA and NIST P-256 /
 * P-384 (sshkey.h), with OpenSSL 3's provider API only (OSSL_PARAM,
 * EVP_PKEY_fromdata, EVP_PKEY_get_bn_param): no RSA_* or EC_KEY_*.
 *
 * The parser reads text an SSH server passed on from a client, so every
 * field is length-checked by the wire reader, sizes are bounded before
 * any big-number work, and the assembled key is put through OpenSSL's
 * public-key check (point on the curve, sane modulus) before anyone may
 * compare it with a registered key.
 */
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>

#include "ps_status.h"
#include "sshkey.h"
#include "util.h"
#include "wire.h"

#define TYPE_NAME_MAX	64
#define RSA_E_MAX	64	/* bytes; real keys use 65537 */

struct curve {
	const char *ssh_type;	/* key type name */
	const char *ssh_curve;	/* curve identifier inside the blob */
	const char *group;	/* OpenSSL group name */
	int nid;
	size_t field_len;	/* bytes per coordinate */
};

static const struct curve curves[] = {
	{ "ecdsa-sha2-nistp256", "nistp256", "P-256", NID_X9_62_prime256v1, 32 },
	{ "ecdsa-sha2-nistp384", "nistp384", "P-384", NID_secp384r1, 48 },
};
#define NCURVES (sizeof(curves) / sizeof(curves[0]))

static const struct curve *
curve_by_type(const unsigned char *name, size_t len)
{
	size_t i;

	for (i = 0; i < NCURVES; i++)
		if (strlen(curves[i].ssh_type) == len &&
		    memcmp(curves[i].ssh_type, name, len) == 0)
			return &curves[i];
	return NULL;
}

static const struct curve *
curve_by_nid(int nid)
{
	size_t i;

	for (i = 0; i < NCURVES; i++)
		if (curves[i].nid == nid)
			return &curves[i];
	return NULL;
}

static bool
is_rsa_type(const void *name, size_t len)
{
	return len == 7 && memcmp(name, "ssh-rsa", 7) == 0;
}

bool
ps_sshkey_type_supported(const char *name, size_t len)
{
	if (name == NULL)
		return false;
	return is_rsa_type(name, len) ||
	    curve_by_type((const unsigned char *)name, len) != NULL;
}

/* ------------------------------------------------------------ parsing */

/* OpenSSL's own sanity check of a public key it was handed. */
static int
check_public(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx;
	int ok;

	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL)
		return PS_ERR_CRYPTO;
	ok = EVP_PKEY_public_check(ctx);
	EVP_PKEY_CTX_free(ctx);
	return ok == 1 ? PS_OK : PS_ERR_INVALID;
}

static int
pkey_from_params(const char *alg, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	int r = PS_ERR_INVALID;

	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL)) == NULL) {
		r = PS_ERR_CRYPTO;
		goto out;
	}
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	if ((r = check_public(pkey)) != PS_OK)
		goto out;
	*out = pkey;
	pkey = NULL;
	r = PS_OK;
 out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return r;
}

static size_t
magnitude_bits(const unsigned char *mag, size_t len)
{
	unsigned char top = mag[0];
	size_t bits = (len - 1) * 8;

	while (top != 0) {
		bits++;
		top >>= 1;
	}
	return bits;
}

/* "ssh-rsa": mpint e, mpint n (RFC 4253 6.6). */
static int
parse_rsa(struct ps_rd *rd, EVP_PKEY **out)
{
	const unsigned char *e, *n;
	size_t elen, nlen, nbits;
	OSSL_PARAM_BLD *bld = NULL;
	BIGNUM *be = NULL, *bn = NULL;
	int r = PS_ERR_INVALID;

	if (ps_rd_mpint_positive(rd, RSA_E_MAX, &e, &elen) != PS_OK ||
	    ps_rd_mpint_positive(rd, PS_SSHKEY_RSA_MAX_BITS / 8, &n,
	    &nlen) != PS_OK || ps_rd_done(rd) != PS_OK)
		return PS_ERR_INVALID;
	nbits = magnitude_bits(n, nlen);
	if (nbits < PS_SSHKEY_RSA_MIN_BITS || nbits > PS_SSHKEY_RSA_MAX_BITS)
		return PS_ERR_INVALID;
	/* e odd and at least 3; n odd */
	if ((e[elen - 1] & 1) == 0 || (elen == 1 && e[0] < 3) ||
	    (n[nlen - 1] & 1) == 0)
		return PS_ERR_INVALID;
	if ((be = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
	    (bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	r = pkey_from_params("RSA", bld, out);
 out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(be);
	BN_free(bn);
	return r;
}

/* "ecdsa-sha2-*": string curve, string Q (RFC 5656 3.1), uncompressed. */
static int
parse_ecdsa(struct ps_rd *rd, const struct curve *c, EVP_PKEY **out)
{
	const unsigned char *q;
	size_t qlen;
	OSSL_PARAM_BLD *bld = NULL;
	int r;

	if (ps_rd_string_eq(rd, c->ssh_curve) != PS_OK ||
	    ps_rd_string(rd, 1 + 2 * c->field_len, &q, &qlen) != PS_OK ||
	    ps_rd_done(rd) != PS_OK)
		return PS_ERR_INVALID;
	if (qlen != 1 + 2 * c->field_len || q[0] != 0x04)
		return PS_ERR_INVALID;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		return PS_ERR_NOMEM;
	if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    c->group, 0) != 1 || OSSL_PARAM_BLD_push_octet_string(bld,
	    OSSL_PKEY_PARAM_PUB_KEY, q, qlen) != 1) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	r = pkey_from_params("EC", bld, out);
 out:
	OSSL_PARAM_BLD_free(bld);
	return r;
}

int
ps_sshkey_from_blob(const unsigned char *blob, size_t len, EVP_PKEY **out)
{
	const unsigned char *type;
	const struct curve *c;
	struct ps_rd rd;
	size_t tlen;

	if (out == NULL)
		return PS_ERR_INTERNAL;
	*out = NULL;
	if (blob == NULL || len == 0 || len > PS_SSHKEY_BLOB_MAX)
		return PS_ERR_INVALID;
	ps_rd_init(&rd, blob, len);
	if (ps_rd_string(&rd, TYPE_NAME_MAX, &type, &tlen) != PS_OK ||
	    tlen == 0)
		return PS_ERR_INVALID;
	if (is_rsa_type(type, tlen))
		return parse_rsa(&rd, out);
	if ((c = curve_by_type(type, tlen)) != NULL)
		return parse_ecdsa(&rd, c, out);
	return PS_ERR_POLICY;
}

int
ps_sshkey_from_text(const char *type, size_t typelen, const char *b64,
    size_t b64len, EVP_PKEY **out)
{
	unsigned char *blob = NULL;
	const unsigned char *btype;
	struct ps_rd rd;
	size_t len = 0, btlen;
	int r;

	if (out == NULL)
		return PS_ERR_INTERNAL;
	*out = NULL;
	if (type == NULL || typelen == 0 || typelen > TYPE_NAME_MAX)
		return PS_ERR_INVALID;
	if (!ps_sshkey_type_supported(type, typelen))
		return PS_ERR_POLICY;
	r = ps_b64_decode(b64, b64len, false, PS_SSHKEY_BLOB_MAX, &blob, &len);
	if (r != PS_OK)
		return r;
	/* the name outside must be the name inside */
	ps_rd_init(&rd, blob, len);
	if (ps_rd_string(&rd, TYPE_NAME_MAX, &btype, &btlen) != PS_OK ||
	    btlen != typelen || memcmp(btype, type, typelen) != 0) {
		r = PS_ERR_INVALID;
		goto out;
	}
	r = ps_sshkey_from_blob(blob, len, out);
 out:
	free(blob);
	return r;
}

/* ------------------------------------------------------------ encoding */

/* Big-endian magnitude of a BIGNUM parameter, optionally left-padded to
 * `pad` bytes (0: minimal). */
static int
get_bn_bytes(EVP_PKEY *pkey, const char *param, size_t pad,
    unsigned char **out, size_t *len)
{
	BIGNUM *bn = NULL;
	unsigned char *buf = NULL;
	int n, r = PS_ERR_CRYPTO;

	*out = NULL;
	*len = 0;
	if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
		goto out;
	n = BN_num_bytes(bn);
	if (n <= 0 || (pad != 0 && (size_t)n > pad))
		goto out;
	if (pad == 0)
		pad = (size_t)n;
	if ((buf = malloc(pad)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if (BN_bn2binpad(bn, buf, (int)pad) != (int)pad)
		goto out;
	*out = buf;
	*len = pad;
	buf = NULL;
	r = PS_OK;
 out:
	free(buf);
	BN_free(bn);
	return r;
}

static int
blob_rsa(EVP_PKEY *pkey, struct ps_wr *w)
{
	unsigned char *e = NULL, *n = NULL;
	size_t elen, nlen;
	int r;

	if ((r = get_bn_bytes(pkey, OSSL_PKEY_PARAM_RSA_E, 0, &e,
	    &elen)) != PS_OK ||
	    (r = get_bn_bytes(pkey, OSSL_PKEY_PARAM_RSA_N, 0, &n,
	    &nlen)) != PS_OK)
		goto out;
	ps_wr_cstring(w, "ssh-rsa");
	ps_wr_mpint(w, e, elen);
	ps_wr_mpint(w, n, nlen);
	r = w->err;
 out:
	free(e);
	free(n);
	return r;
}

static const struct curve *
curve_of(EVP_PKEY *pkey)
{
	char group[64];
	size_t glen = 0;
	int nid;

	if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1)
		return NULL;
	if ((nid = OBJ_txt2nid(group)) == NID_undef)
		nid = EC_curve_nist2nid(group);
	return curve_by_nid(nid);
}

static int
blob_ecdsa(EVP_PKEY *pkey, struct ps_wr *w)
{
	const struct curve *c = curve_of(pkey);
	unsigned char *x = NULL, *y = NULL;
	unsigned char q[1 + 2 * 66];
	size_t xlen, ylen;
	int r;

	if (c == NULL)
		return PS_ERR_POLICY;
	if ((r = get_bn_bytes(pkey, OSSL_PKEY_PARAM_EC_PUB_X, c->field_len,
	    &x, &xlen)) != PS_OK ||
	    (r = get_bn_bytes(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, c->field_len,
	    &y, &ylen)) != PS_OK)
		goto out;
	q[0] = 0x04;
	memcpy(q + 1, x, xlen);
	memcpy(q + 1 + xlen, y, ylen);
	ps_wr_cstring(w, c->ssh_type);
	ps_wr_cstring(w, c->ssh_curve);
	ps_wr_string(w, q, 1 + xlen + ylen);
	r = w->err;
 out:
	free(x);
	free(y);
	return r;
}

int
ps_sshkey_to_blob(EVP_PKEY *pkey, unsigned char **blob, size_t *len)
{
	struct ps_wr w;
	int r;

	if (blob == NULL || len == NULL)
		return PS_ERR_INTERNAL;
	*blob = NULL;
	*len = 0;
	if (pkey == NULL)
		return PS_ERR_INVALID;
	ps_wr_init(&w, PS_SSHKEY_BLOB_MAX);
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		r = blob_rsa(pkey, &w);
		break;
	case EVP_PKEY_EC:
		r = blob_ecdsa(pkey, &w);
		break;
	default:
		r = PS_ERR_POLICY;
		break;
	}
	if (r != PS_OK) {
		ps_wr_free(&w);
		return r;
	}
	*blob = w.buf;
	*len = w.len;
	return PS_OK;
}

int
ps_sshkey_to_text(EVP_PKEY *pkey, char **text)
{
	unsigned char *blob = NULL;
	const unsigned char *type;
	char *b64 = NULL;
	struct ps_rd rd;
	size_t len = 0, tlen;
	int r;

	*text = NULL;
	if ((r = ps_sshkey_to_blob(pkey, &blob, &len)) != PS_OK)
		return r;
	ps_rd_init(&rd, blob, len);
	if (ps_rd_string(&rd, TYPE_NAME_MAX, &type, &tlen) != PS_OK) {
		r = PS_ERR_INTERNAL;
		goto out;
	}
	if ((r = ps_b64_encode(blob, len, false, &b64)) != PS_OK)
		goto out;
	if ((*text = ps_strdup_printf("%.*s %s", (int)tlen, (const char *)type,
	    b64)) == NULL)
		r = PS_ERR_NOMEM;
 out:
	free(b64);
	free(blob);
	return r;
}
