/*
 * challenge.c - the text a token signs at login, and the one definition of
 * the signature scheme (RSA PKCS#1 v1.5 or ECDSA over SHA-256/SHA-384)
 * shared by signing and verifying (see challenge.h).
 *
 * The text is parsed back in remote mode from what a client pasted, so
 * the parser is deliberately unforgiving: exactly one spelling of each
 * challenge is accepted, which keeps replay caches keyed on the text sound.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

#include "challenge.h"
#include "ps_status.h"
#include "util.h"
#include "wire.h"

/* A signature longer than this (RSA-8192) is not from a supported key. */
#define SIG_MAX		1024

/* ------------------------------------------------------------ fields */

/*
 * Printable ASCII only: these fields are shown to the user by
 * personalsign-respond, so neither control characters (C0, DEL) nor bytes
 * that some terminals read as C1 controls may appear.
 */
static bool
field_valid(const char *s, size_t len, bool allow_empty)
{
	size_t i;

	if (s == NULL || len > PS_CHALLENGE_FIELD_MAX)
		return false;
	if (len == 0 && !allow_empty)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static bool
cstr_field_valid(const char *s, bool allow_empty)
{
	if (s == NULL)
		return false;
	return field_valid(s, strnlen(s, PS_CHALLENGE_FIELD_MAX + 1),
	    allow_empty);
}

static bool
challenge_valid(const struct ps_challenge *c)
{
	return cstr_field_valid(c->host, true) &&
	    cstr_field_valid(c->service, true) &&
	    cstr_field_valid(c->user, false) &&
	    cstr_field_valid(c->rhost, true) &&
	    c->issued >= 0 && c->expires >= c->issued;
}

static int
get_random(unsigned char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = getrandom(buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return PS_ERR_CRYPTO;
		got += (size_t)n;
	}
	return PS_OK;
}

static int
dup_field(const char *s, char **out)
{
	if ((*out = strdup(s)) == NULL)
		return PS_ERR_NOMEM;
	return PS_OK;
}

int
ps_challenge_new(struct ps_challenge *c, const char *host,
    const char *service, const char *user, const char *rhost, time_t now,
    unsigned lifetime)
{
	int r;

	if (c == NULL)
		return PS_ERR_INVALID;
	memset(c, 0, sizeof(*c));
	if (rhost == NULL)
		rhost = "";
	if (!cstr_field_valid(host, true) || !cstr_field_valid(service, true) ||
	    !cstr_field_valid(user, false) || !cstr_field_valid(rhost, true))
		return PS_ERR_INVALID;
	if (now < 0 || lifetime == 0 ||
	    (long long)now > LLONG_MAX - (long long)lifetime)
		return PS_ERR_INVALID;
	if ((r = dup_field(host, &c->host)) != PS_OK ||
	    (r = dup_field(service, &c->service)) != PS_OK ||
	    (r = dup_field(user, &c->user)) != PS_OK ||
	    (r = dup_field(rhost, &c->rhost)) != PS_OK)
		goto out;
	c->issued = (long long)now;
	c->expires = (long long)now + (long long)lifetime;
	r = get_random(c->nonce, sizeof(c->nonce));
 out:
	if (r != PS_OK)
		ps_challenge_clear(c);
	return r;
}

int
ps_challenge_encode(const struct ps_challenge *c, char **text, size_t *len)
{
	char *nonce = NULL, *buf = NULL;
	int n, r = PS_ERR_INVALID;

	*text = NULL;
	*len = 0;
	if (c == NULL || !challenge_valid(c))
		return PS_ERR_INVALID;
	if ((r = ps_b64_encode(c->nonce, sizeof(c->nonce), true, &nonce)) !=
	    PS_OK)
		return r;
	r = PS_ERR_NOMEM;
	if ((buf = malloc(PS_CHALLENGE_TEXT_MAX + 1)) == NULL)
		goto out;
	r = PS_ERR_INVALID;
	n = snprintf(buf, PS_CHALLENGE_TEXT_MAX + 1,
	    "%s\nhost=%s\nservice=%s\nuser=%s\nrhost=%s\n"
	    "issued=%lld\nexpires=%lld\nnonce=%s\n",
	    PS_CHALLENGE_CONTEXT, c->host, c->service, c->user, c->rhost,
	    c->issued, c->expires, nonce);
	if (n < 0 || n > PS_CHALLENGE_TEXT_MAX)
		goto out;
	*text = buf;
	*len = (size_t)n;
	buf = NULL;
	r = PS_OK;
 out:
	free(nonce);
	free(buf);
	return r;
}

/* ------------------------------------------------------------ parsing */

struct cursor {
	const char *p;
	size_t left;
};

/* The next line without its '\n'; a missing '\n' is an error. */
static int
next_line(struct cursor *cur, const char **line, size_t *len)
{
	const char *nl;

	if (cur->left == 0 ||
	    (nl = memchr(cur->p, '\n', cur->left)) == NULL)
		return PS_ERR_INVALID;
	*line = cur->p;
	*len = (size_t)(nl - cur->p);
	cur->left -= *len + 1;
	cur->p = nl + 1;
	return PS_OK;
}

/* The value of the next line, "KEY=VALUE"; VALUE may be empty. */
static int
next_value(struct cursor *cur, const char *key, const char **val,
    size_t *vlen)
{
	const char *line;
	size_t len, klen = strlen(key);

	if (next_line(cur, &line, &len) != PS_OK)
		return PS_ERR_INVALID;
	if (len <= klen || memcmp(line, key, klen) != 0 || line[klen] != '=')
		return PS_ERR_INVALID;
	*val = line + klen + 1;
	*vlen = len - klen - 1;
	return PS_OK;
}

static int
parse_field(struct cursor *cur, const char *key, bool allow_empty,
    char **out)
{
	const char *val;
	size_t vlen;

	if (next_value(cur, key, &val, &vlen) != PS_OK ||
	    !field_valid(val, vlen, allow_empty))
		return PS_ERR_INVALID;
	if ((*out = strndup(val, vlen)) == NULL)
		return PS_ERR_NOMEM;
	return PS_OK;
}

/* A non-negative decimal: digits only, no leading zero, no overflow. */
static int
parse_number(struct cursor *cur, const char *key, long long *out)
{
	const char *val;
	size_t vlen, i;
	long long v = 0;

	if (next_value(cur, key, &val, &vlen) != PS_OK || vlen == 0 ||
	    vlen > 19 || (val[0] == '0' && vlen > 1))
		return PS_ERR_INVALID;
	for (i = 0; i < vlen; i++) {
		if (val[i] < '0' || val[i] > '9')
			return PS_ERR_INVALID;
		if (v > (LLONG_MAX - (val[i] - '0')) / 10)
			return PS_ERR_INVALID;
		v = v * 10 + (val[i] - '0');
	}
	*out = v;
	return PS_OK;
}

/*
 * The nonce: unpadded base64url of exactly PS_NONCE_LEN bytes. The strict
 * decoder accepts one spelling per value, so exactly one text (of
 * ps_b64_len(PS_NONCE_LEN, true) characters) gives each nonce.
 */
static int
parse_nonce(struct cursor *cur, unsigned char *nonce)
{
	const char *val;
	unsigned char *raw = NULL;
	size_t vlen, rawlen = 0;
	int r;

	if (next_value(cur, "nonce", &val, &vlen) != PS_OK)
		return PS_ERR_INVALID;
	if ((r = ps_b64_decode(val, vlen, true, PS_NONCE_LEN, &raw,
	    &rawlen)) != PS_OK)
		return r;
	if (rawlen == PS_NONCE_LEN)
		memcpy(nonce, raw, PS_NONCE_LEN);
	free(raw);
	return rawlen == PS_NONCE_LEN ? PS_OK : PS_ERR_INVALID;
}

static int
parse_context(struct cursor *cur)
{
	const char *line;
	size_t len;

	if (next_line(cur, &line, &len) != PS_OK ||
	    len != strlen(PS_CHALLENGE_CONTEXT) ||
	    memcmp(line, PS_CHALLENGE_CONTEXT, len) != 0)
		return PS_ERR_INVALID;
	return PS_OK;
}

int
ps_challenge_parse(const char *text, size_t len, struct ps_challenge *c)
{
	struct ps_challenge tmp;
	struct cursor cur;
	int r = PS_ERR_INVALID;

	if (c == NULL)
		return PS_ERR_INVALID;
	memset(c, 0, sizeof(*c));
	memset(&tmp, 0, sizeof(tmp));
	if (text == NULL || len == 0 || len > PS_CHALLENGE_TEXT_MAX ||
	    memchr(text, '\0', len) != NULL)
		return PS_ERR_INVALID;
	cur.p = text;
	cur.left = len;
	if ((r = parse_context(&cur)) != PS_OK ||
	    (r = parse_field(&cur, "host", true, &tmp.host)) != PS_OK ||
	    (r = parse_field(&cur, "service", true, &tmp.service)) != PS_OK ||
	    (r = parse_field(&cur, "user", false, &tmp.user)) != PS_OK ||
	    (r = parse_field(&cur, "rhost", true, &tmp.rhost)) != PS_OK ||
	    (r = parse_number(&cur, "issued", &tmp.issued)) != PS_OK ||
	    (r = parse_number(&cur, "expires", &tmp.expires)) != PS_OK ||
	    (r = parse_nonce(&cur, tmp.nonce)) != PS_OK)
		goto out;
	if (cur.left != 0 || tmp.expires < tmp.issued) {
		r = PS_ERR_INVALID;
		goto out;
	}
	*c = tmp;
	memset(&tmp, 0, sizeof(tmp));
	r = PS_OK;
 out:
	ps_challenge_clear(&tmp);
	return r;
}

/* ------------------------------------------------------------ scheme */

static bool
key_is_p384(EVP_PKEY *pkey)
{
	char group[64];
	size_t glen = 0;

	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
		return false;
	if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1)
		return false;
	return OBJ_txt2nid(group) == NID_secp384r1;
}

const EVP_MD *
ps_challenge_md_for_key(EVP_PKEY *pkey)
{
	if (pkey == NULL)
		return NULL;
	return key_is_p384(pkey) ? EVP_sha384() : EVP_sha256();
}

/* Only plain RSA and EC keys: the scheme is PKCS#1 v1.5 or ECDSA. */
static bool
key_type_supported(EVP_PKEY *pkey)
{
	int id = EVP_PKEY_get_base_id(pkey);

	return id == EVP_PKEY_RSA || id == EVP_PKEY_EC;
}

/*
 * The scheme, in one place: the digest algorithm, and for RSA PKCS#1 v1.5
 * padding (never PSS: PIV cards sign raw, and the card path pads with
 * v1.5 too). Call after EVP_PKEY_sign_init / EVP_PKEY_verify_init.
 */
static int
scheme_setup(EVP_PKEY_CTX *ctx, EVP_PKEY *pkey, const EVP_MD *md)
{
	if (EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0)
		return PS_ERR_CRYPTO;
	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
		return PS_ERR_CRYPTO;
	return PS_OK;
}

static bool
digest_len_ok(const EVP_MD *md, size_t len)
{
	int n = EVP_MD_get_size(md);

	return n > 0 && (size_t)n == len;
}

int
ps_sign_digest_with_key(EVP_PKEY *priv, const EVP_MD *md,
    const unsigned char *digest, size_t len, unsigned char **sig,
    size_t *siglen)
{
	EVP_PKEY_CTX *ctx = NULL;
	unsigned char *buf = NULL;
	size_t cap = 0;
	int r = PS_ERR_CRYPTO;

	if (sig == NULL || siglen == NULL)
		return PS_ERR_INVALID;
	*sig = NULL;
	*siglen = 0;
	if (priv == NULL || md == NULL || digest == NULL ||
	    !digest_len_ok(md, len) || !key_type_supported(priv))
		return PS_ERR_INVALID;
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) == NULL)
		goto out;
	if (EVP_PKEY_sign_init(ctx) <= 0 ||
	    scheme_setup(ctx, priv, md) != PS_OK)
		goto out;
	if (EVP_PKEY_sign(ctx, NULL, &cap, digest, len) <= 0 || cap == 0 ||
	    cap > SIG_MAX)
		goto out;
	if ((buf = malloc(cap)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if (EVP_PKEY_sign(ctx, buf, &cap, digest, len) <= 0)
		goto out;
	*sig = buf;
	*siglen = cap;
	buf = NULL;
	r = PS_OK;
 out:
	free(buf);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

int
ps_challenge_digest(const struct ps_challenge *c, const EVP_MD *md,
    unsigned char *out, size_t *outlen)
{
	char *text = NULL;
	size_t len = 0;
	unsigned int dlen = 0;
	int r;

	*outlen = 0;
	if (md == NULL)
		return PS_ERR_INVALID;
	if ((r = ps_challenge_encode(c, &text, &len)) != PS_OK)
		return r;
	if (EVP_Digest(text, len, out, &dlen, md, NULL) != 1) {
		r = PS_ERR_CRYPTO;
		goto out;
	}
	*outlen = dlen;
	r = PS_OK;
 out:
	free(text);
	return r;
}

int
ps_challenge_verify(const struct ps_log *log,
    const struct ps_challenge *c, EVP_PKEY *registered_key,
    const unsigned char *sig, size_t siglen)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	EVP_PKEY_CTX *ctx = NULL;
	const EVP_MD *md;
	size_t dlen = 0;
	int r = PS_ERR_AUTH, v;

	if (registered_key == NULL || !key_type_supported(registered_key)) {
		ps_log_err(log, "challenge verify: no usable registered key "
		    "(RSA or EC required)");
		return PS_ERR_AUTH;
	}
	if (sig == NULL || siglen == 0 || siglen > SIG_MAX) {
		ps_log_debug(log, "challenge verify: signature length %zu "
		    "refused (1..%d bytes)", sig == NULL ? 0 : siglen, SIG_MAX);
		return PS_ERR_AUTH;
	}
	md = ps_challenge_md_for_key(registered_key);
	if ((r = ps_challenge_digest(c, md, digest, &dlen)) != PS_OK) {
		ps_log_err(log, "challenge verify: cannot digest the "
		    "challenge: %s", ps_status_str(r));
		r = PS_ERR_AUTH;
		goto out;
	}
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, registered_key,
	    NULL)) == NULL || EVP_PKEY_verify_init(ctx) <= 0 ||
	    scheme_setup(ctx, registered_key, md) != PS_OK) {
		ps_log_openssl(log, "challenge verify setup");
		ps_log_err(log, "challenge verify: OpenSSL could not set up "
		    "the verification");
		r = PS_ERR_AUTH;
		goto out;
	}
	v = EVP_PKEY_verify(ctx, sig, siglen, digest, dlen);
	if (v != 1) {
		ps_log_openssl(log, "challenge verify");
		ps_log_debug(log, "challenge verify: signature does not verify "
		    "with the registered %s key", EVP_MD_get0_name(md));
		r = PS_ERR_AUTH;
		goto out;
	}
	r = PS_OK;
 out:
	ps_wipe(digest, sizeof(digest));
	EVP_PKEY_CTX_free(ctx);
	return r;
}

void
ps_challenge_clear(struct ps_challenge *c)
{
	if (c == NULL)
		return;
	free(c->host);
	free(c->service);
	free(c->user);
	free(c->rhost);
	ps_wipe(c, sizeof(*c));
}
