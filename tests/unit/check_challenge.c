/*
 * check_challenge.c - unit tests for src/core/challenge.c: the canonical
 * challenge text, its strict parser, and the signature scheme shared by
 * signing and verifying.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "challenge.h"
#include "ps_status.h"
#include "testutil.h"

#define NOW 1760000000

/* A known-good text: nonce is 32 bytes 0x00..0x1f. */
#define GOOD_NONCE "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define GOOD_TEXT \
	"pam_personalsign/v1\n" \
	"host=h1.example.test\n" \
	"service=sshd\n" \
	"user=alice\n" \
	"rhost=192.0.2.7\n" \
	"issued=1760000000\n" \
	"expires=1760000060\n" \
	"nonce=" GOOD_NONCE "\n"

static int
parse_str(const char *text, struct ps_challenge *c)
{
	return ps_challenge_parse(text, strlen(text), c);
}

/* Parse `text` and expect PS_ERR_INVALID with the struct left empty. */
static void
expect_reject(const char *text, size_t len, const char *what)
{
	struct ps_challenge c;
	int r;

	memset(&c, 0xa5, sizeof(c));
	r = ps_challenge_parse(text, len, &c);
	ck_assert_msg(r == PS_ERR_INVALID, "%s: got %d, want PS_ERR_INVALID",
	    what, r);
	ck_assert_msg(c.host == NULL && c.user == NULL && c.issued == 0,
	    "%s: output not cleared", what);
	ps_challenge_clear(&c);
}

/* GOOD_TEXT with the first `from` replaced by `to`. */
static char *
mutate(const char *from, const char *to)
{
	const char *good = GOOD_TEXT;
	const char *at = strstr(good, from);
	char *out;

	ck_assert_ptr_nonnull(at);
	if (asprintf(&out, "%.*s%s%s", (int)(at - good), good, to,
	    at + strlen(from)) < 0)
		abort();
	return out;
}

static void
expect_mutation_rejected(const char *from, const char *to)
{
	char *t = mutate(from, to);
	char what[256];

	snprintf(what, sizeof(what), "'%s' -> '%s'", from, to);
	expect_reject(t, strlen(t), what);
	free(t);
}

/* ------------------------------------------------------------ new/encode */

START_TEST(test_new_encode_parse_round_trip)
{
	struct ps_challenge c, p;
	char *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;

	ck_assert_int_eq(ps_challenge_new(&c, "h1.example.test", "sshd",
	    "alice", "192.0.2.7", NOW, 60), PS_OK);
	ck_assert_int_eq(c.issued, NOW);
	ck_assert_int_eq(c.expires, NOW + 60);
	ck_assert_int_eq(ps_challenge_encode(&c, &t1, &l1), PS_OK);
	ck_assert_uint_eq(strlen(t1), l1);
	ck_assert_int_eq(ps_challenge_parse(t1, l1, &p), PS_OK);
	ck_assert_str_eq(p.host, "h1.example.test");
	ck_assert_str_eq(p.service, "sshd");
	ck_assert_str_eq(p.user, "alice");
	ck_assert_str_eq(p.rhost, "192.0.2.7");
	ck_assert_int_eq(p.issued, NOW);
	ck_assert_int_eq(p.expires, NOW + 60);
	ck_assert_mem_eq(p.nonce, c.nonce, PS_NONCE_LEN);
	ck_assert_int_eq(ps_challenge_encode(&p, &t2, &l2), PS_OK);
	ck_assert_uint_eq(l1, l2);
	ck_assert_mem_eq(t1, t2, l1);
	free(t1);
	free(t2);
	ps_challenge_clear(&c);
	ps_challenge_clear(&p);
}
END_TEST

START_TEST(test_encode_exact_format)
{
	struct ps_challenge c;
	char *t = NULL;
	size_t len = 0, i;

	memset(&c, 0, sizeof(c));
	c.host = strdup("h1.example.test");
	c.service = strdup("sshd");
	c.user = strdup("alice");
	c.rhost = strdup("192.0.2.7");
	c.issued = NOW;
	c.expires = NOW + 60;
	for (i = 0; i < PS_NONCE_LEN; i++)
		c.nonce[i] = (unsigned char)i;
	ck_assert_int_eq(ps_challenge_encode(&c, &t, &len), PS_OK);
	ck_assert_str_eq(t, GOOD_TEXT);
	ck_assert_uint_eq(len, strlen(GOOD_TEXT));
	free(t);
	ps_challenge_clear(&c);
}
END_TEST

/* The nonce spelling must be RFC 4648 base64url without padding, as any
 * other implementation (a client tool) would produce it. */
START_TEST(test_nonce_is_standard_base64url)
{
	struct ps_challenge c;
	unsigned char std[64];
	char *t = NULL, *line;
	size_t len = 0, n, i;

	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "u", "", NOW, 30),
	    PS_OK);
	ck_assert_int_eq(ps_challenge_encode(&c, &t, &len), PS_OK);
	n = (size_t)EVP_EncodeBlock(std, c.nonce, PS_NONCE_LEN);
	ck_assert_uint_eq(n, 44);
	ck_assert_int_eq(std[43], '=');
	std[43] = '\0';
	for (i = 0; i < 43; i++) {
		if (std[i] == '+')
			std[i] = '-';
		else if (std[i] == '/')
			std[i] = '_';
	}
	line = strstr(t, "\nnonce=");
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(strncmp(line + 7, (char *)std, 43), 0);
	ck_assert_str_eq(line + 7 + 43, "\n");
	free(t);
	ps_challenge_clear(&c);
}
END_TEST

START_TEST(test_nonces_differ)
{
	struct ps_challenge a, b;
	static const unsigned char zero[PS_NONCE_LEN];

	ck_assert_int_eq(ps_challenge_new(&a, "h", "s", "alice", "", NOW, 60),
	    PS_OK);
	ck_assert_int_eq(ps_challenge_new(&b, "h", "s", "alice", "", NOW, 60),
	    PS_OK);
	ck_assert_mem_ne(a.nonce, b.nonce, PS_NONCE_LEN);
	ck_assert_mem_ne(a.nonce, zero, PS_NONCE_LEN);
	ps_challenge_clear(&a);
	ps_challenge_clear(&b);
}
END_TEST

START_TEST(test_new_local_session)
{
	struct ps_challenge c;
	char *t = NULL;
	size_t len = 0;

	ck_assert_int_eq(ps_challenge_new(&c, "h", "", "bob", NULL, NOW, 60),
	    PS_OK);
	ck_assert_str_eq(c.rhost, "");
	ck_assert_str_eq(c.service, "");
	ck_assert_int_eq(ps_challenge_encode(&c, &t, &len), PS_OK);
	ck_assert_ptr_nonnull(strstr(t, "\nservice=\nuser=bob\nrhost=\n"));
	free(t);
	ps_challenge_clear(&c);
}
END_TEST

START_TEST(test_new_rejects_bad_fields)
{
	struct ps_challenge c;
	char longf[PS_CHALLENGE_FIELD_MAX + 2];

	memset(longf, 'a', sizeof(longf) - 1);
	longf[sizeof(longf) - 1] = '\0';	/* 256 bytes */

	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "", "", NOW, 60),
	    PS_ERR_INVALID);
	ck_assert_ptr_null(c.host);
	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", NULL, "", NOW, 60),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, NULL, "s", "u", "", NOW, 60),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, "h\nuser=root", "s", "u", "",
	    NOW, 60), PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, "h", "s\r", "u", "", NOW, 60),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "u\x1b[2J", "", NOW,
	    60), PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "u", "r\x7f", NOW, 60),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "u", "r\x9b", NOW, 60),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "u", "\t", NOW, 60),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, longf, "s", "u", "", NOW, 60),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "u", "", NOW, 0),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "u", "", -1, 60),
	    PS_ERR_INVALID);
	ck_assert_ptr_null(c.host);
	/* exactly the maximum is fine */
	longf[PS_CHALLENGE_FIELD_MAX] = '\0';
	ck_assert_int_eq(ps_challenge_new(&c, longf, longf, longf, longf, NOW,
	    60), PS_OK);
	ps_challenge_clear(&c);
}
END_TEST

START_TEST(test_encode_rejects_injected_struct)
{
	struct ps_challenge c;
	char *t = (char *)"x";
	size_t len = 7;

	ck_assert_int_eq(ps_challenge_new(&c, "h", "s", "alice", "", NOW, 60),
	    PS_OK);
	free(c.user);
	c.user = strdup("alice\nuser=root");
	ck_assert_int_eq(ps_challenge_encode(&c, &t, &len), PS_ERR_INVALID);
	ck_assert_ptr_null(t);
	ck_assert_uint_eq(len, 0);
	free(c.user);
	c.user = strdup("alice");
	c.expires = c.issued - 1;
	ck_assert_int_eq(ps_challenge_encode(&c, &t, &len), PS_ERR_INVALID);
	ps_challenge_clear(&c);
}
END_TEST

/* ------------------------------------------------------------ parse */

START_TEST(test_parse_good_text)
{
	struct ps_challenge c;
	size_t i;

	ck_assert_int_eq(parse_str(GOOD_TEXT, &c), PS_OK);
	ck_assert_str_eq(c.host, "h1.example.test");
	ck_assert_str_eq(c.rhost, "192.0.2.7");
	for (i = 0; i < PS_NONCE_LEN; i++)
		ck_assert_uint_eq(c.nonce[i], i);
	ps_challenge_clear(&c);
}
END_TEST

START_TEST(test_parse_rejects_structure)
{
	const char *good = GOOD_TEXT;
	char *t;
	size_t len = strlen(good);

	/* missing final newline, and nothing may follow the last one */
	expect_reject(good, len - 1, "no final newline");
	if (asprintf(&t, "%sextra=1\n", good) < 0)
		abort();
	expect_reject(t, strlen(t), "extra line");
	free(t);
	if (asprintf(&t, "%s\n", good) < 0)
		abort();
	expect_reject(t, strlen(t), "trailing empty line");
	free(t);
	if (asprintf(&t, "%sx", good) < 0)
		abort();
	expect_reject(t, strlen(t), "trailing byte");
	free(t);
	expect_reject(good, 0, "empty");
	expect_reject(NULL, 10, "NULL");
	/* missing lines */
	expect_mutation_rejected("pam_personalsign/v1\n", "");
	expect_mutation_rejected("service=sshd\n", "");
	expect_mutation_rejected("rhost=192.0.2.7\n", "");
	expect_mutation_rejected("nonce=" GOOD_NONCE "\n", "");
	/* reordered */
	expect_mutation_rejected("host=h1.example.test\nservice=sshd\n",
	    "service=sshd\nhost=h1.example.test\n");
	expect_mutation_rejected("issued=1760000000\nexpires=1760000060\n",
	    "expires=1760000060\nissued=1760000000\n");
	/* duplicated */
	expect_mutation_rejected("user=alice\n", "user=alice\nuser=root\n");
	/* wrong context / keys */
	expect_mutation_rejected("pam_personalsign/v1", "pam_personalsign/v2");
	expect_mutation_rejected("pam_personalsign/v1", "pam_personalsign/v1 ");
	expect_mutation_rejected("host=", "Host=");
	expect_mutation_rejected("host=", "hosts=");
	expect_mutation_rejected("host=", " host=");
	expect_mutation_rejected("host=", "host:");
	expect_mutation_rejected("user=alice", "user");
	/* empty user */
	expect_mutation_rejected("user=alice", "user=");
}
END_TEST

START_TEST(test_parse_rejects_bad_numbers)
{
	expect_mutation_rejected("issued=1760000000", "issued=+1760000000");
	expect_mutation_rejected("issued=1760000000", "issued=-1760000000");
	expect_mutation_rejected("issued=1760000000", "issued=01760000000");
	expect_mutation_rejected("issued=1760000000", "issued= 1760000000");
	expect_mutation_rejected("issued=1760000000", "issued=1760000000 ");
	expect_mutation_rejected("issued=1760000000", "issued=0x68e7b800");
	expect_mutation_rejected("issued=1760000000", "issued=17600e0000");
	expect_mutation_rejected("issued=1760000000", "issued=");
	expect_mutation_rejected("expires=1760000060",
	    "expires=9223372036854775808");
	expect_mutation_rejected("expires=1760000060",
	    "expires=99999999999999999999");
	/* expires before issued */
	expect_mutation_rejected("expires=1760000060", "expires=1759999999");
}
END_TEST

START_TEST(test_parse_number_limits)
{
	struct ps_challenge c;
	char *t;

	t = mutate("expires=1760000060", "expires=9223372036854775807");
	ck_assert_int_eq(parse_str(t, &c), PS_OK);
	ck_assert(c.expires == 9223372036854775807LL);
	ps_challenge_clear(&c);
	free(t);
	t = mutate("issued=1760000000", "issued=0");
	ck_assert_int_eq(parse_str(t, &c), PS_OK);
	ck_assert_int_eq(c.issued, 0);
	ps_challenge_clear(&c);
	free(t);
}
END_TEST

START_TEST(test_parse_rejects_bad_nonce)
{
	/* characters outside the base64url alphabet */
	expect_mutation_rejected("nonce=AAEC", "nonce=+AEC");
	expect_mutation_rejected("nonce=AAEC", "nonce=/AEC");
	expect_mutation_rejected("nonce=AAEC", "nonce= AEC");
	expect_mutation_rejected("nonce=AAEC", "nonce=.AEC");
	expect_mutation_rejected("Hh8\n", "Hh8=\n");
	expect_mutation_rejected("Hh8\n", "H\xc3\xa9\n");
	/* wrong lengths: 42, 44 chars, empty */
	expect_mutation_rejected("Hh8\n", "Hh\n");
	expect_mutation_rejected("Hh8\n", "Hh8A\n");
	expect_mutation_rejected("nonce=" GOOD_NONCE, "nonce=");
	expect_mutation_rejected("nonce=" GOOD_NONCE,
	    "nonce=" GOOD_NONCE GOOD_NONCE);
	/* non-canonical: unused low bits of the last char set */
	expect_mutation_rejected("Hh8\n", "Hh9\n");
	expect_mutation_rejected("Hh8\n", "Hh_\n");
}
END_TEST

START_TEST(test_parse_rejects_hostile_bytes)
{
	char buf[PS_CHALLENGE_TEXT_MAX + 64];
	const char *good = GOOD_TEXT;
	size_t len = strlen(good);
	char *t;

	/* NUL inside, even when the length covers it */
	memcpy(buf, good, len);
	buf[10] = '\0';
	expect_reject(buf, len, "NUL inside");
	memcpy(buf, good, len + 1);
	expect_reject(buf, len + 1, "NUL after the final newline");
	/* CR line ends, a CR inside a value */
	expect_mutation_rejected("user=alice\n", "user=alice\r\n");
	expect_mutation_rejected("host=h1", "host=h\r1");
	expect_mutation_rejected("service=sshd", "service=ss\thd");
	expect_mutation_rejected("rhost=192", "rhost=\x1b]192");
	expect_mutation_rejected("rhost=192", "rhost=\x7f" "192");
	expect_mutation_rejected("rhost=192", "rhost=\xc2\x9b" "192");
	/* a field over PS_CHALLENGE_FIELD_MAX */
	memcpy(buf, "host=", 5);
	memset(buf + 5, 'a', PS_CHALLENGE_FIELD_MAX + 1);
	buf[5 + PS_CHALLENGE_FIELD_MAX + 1] = '\0';
	t = mutate("host=h1.example.test", buf);
	expect_reject(t, strlen(t), "256-byte host");
	free(t);
	/* the text as a whole over PS_CHALLENGE_TEXT_MAX */
	memcpy(buf, good, len);
	memset(buf + len, '\n', sizeof(buf) - len);
	expect_reject(buf, PS_CHALLENGE_TEXT_MAX + 1, "too long");
}
END_TEST

START_TEST(test_parse_field_at_maximum)
{
	struct ps_challenge c;
	char val[5 + PS_CHALLENGE_FIELD_MAX + 1];
	char *t;

	memcpy(val, "host=", 5);
	memset(val + 5, 'a', PS_CHALLENGE_FIELD_MAX);
	val[5 + PS_CHALLENGE_FIELD_MAX] = '\0';
	t = mutate("host=h1.example.test", val);
	ck_assert_int_eq(parse_str(t, &c), PS_OK);
	ck_assert_uint_eq(strlen(c.host), PS_CHALLENGE_FIELD_MAX);
	ps_challenge_clear(&c);
	free(t);
}
END_TEST

/* ------------------------------------------------------------ sign/verify */

struct signer {
	const char *key;	/* fixture private key */
	const char *cert;	/* fixture certificate */
	const char *mdname;
	size_t mdlen;
};

static const struct signer signers[] = {
	{ "alice.key", "alice.crt", "SHA256", 32 },
	{ "bob.key", "bob.crt", "SHA256", 32 },
	{ "carol.key", "carol.crt", "SHA384", 48 },
};

static void
make_challenge(struct ps_challenge *c, const char *user)
{
	ck_assert_int_eq(ps_challenge_new(c, "h1.example.test", "login", user,
	    "", NOW, 60), PS_OK);
}

static void
sign_challenge(EVP_PKEY *priv, const struct ps_challenge *c,
    unsigned char **sig, size_t *siglen)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	const EVP_MD *md = ps_challenge_md_for_key(priv);
	size_t dlen = 0;

	ck_assert_ptr_nonnull(md);
	ck_assert_int_eq(ps_challenge_digest(c, md, d, &dlen), PS_OK);
	ck_assert_int_eq(ps_sign_digest_with_key(priv, md, d, dlen, sig,
	    siglen), PS_OK);
	ck_assert_ptr_nonnull(*sig);
	ck_assert_uint_gt(*siglen, 0);
}

START_TEST(test_sign_verify_ok)
{
	const struct signer *s = &signers[_i];
	EVP_PKEY *priv = tu_load_key(s->key);
	X509 *cert = tu_load_cert(s->cert);
	struct ps_challenge c;
	unsigned char *sig = NULL;
	unsigned char d[EVP_MAX_MD_SIZE];
	size_t siglen = 0, dlen = 0;
	const EVP_MD *md;

	md = ps_challenge_md_for_key(X509_get0_pubkey(cert));
	ck_assert_str_eq(EVP_MD_get0_name(md), s->mdname);
	make_challenge(&c, "alice");
	ck_assert_int_eq(ps_challenge_digest(&c, md, d, &dlen), PS_OK);
	ck_assert_uint_eq(dlen, s->mdlen);
	sign_challenge(priv, &c, &sig, &siglen);
	tu_log_reset();
	ck_assert_int_eq(ps_challenge_verify(&tu_log, &c,
	    X509_get0_pubkey(cert), sig, siglen), PS_OK);
	free(sig);
	ps_challenge_clear(&c);
	X509_free(cert);
	EVP_PKEY_free(priv);
}
END_TEST

/*
 * What is signed is the digest of the canonical text, with a standard
 * scheme: an independent EVP_DigestVerify over the text (PKCS#1 v1.5 is
 * OpenSSL's RSA default) accepts the signature.
 */
START_TEST(test_signature_is_standard_over_text)
{
	const struct signer *s = &signers[_i];
	EVP_PKEY *priv = tu_load_key(s->key);
	X509 *cert = tu_load_cert(s->cert);
	struct ps_challenge c;
	unsigned char *sig = NULL;
	char *text = NULL;
	size_t siglen = 0, len = 0;
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();

	make_challenge(&c, "alice");
	sign_challenge(priv, &c, &sig, &siglen);
	ck_assert_int_eq(ps_challenge_encode(&c, &text, &len), PS_OK);
	ck_assert_int_eq(EVP_DigestVerifyInit(mctx, NULL,
	    EVP_get_digestbyname(s->mdname), NULL, X509_get0_pubkey(cert)), 1);
	ck_assert_int_eq(EVP_DigestVerify(mctx, sig, siglen,
	    (unsigned char *)text, len), 1);
	EVP_MD_CTX_free(mctx);
	free(text);
	free(sig);
	ps_challenge_clear(&c);
	X509_free(cert);
	EVP_PKEY_free(priv);
}
END_TEST

static void
expect_verify_fails(const struct ps_challenge *c, EVP_PKEY *pub,
    const unsigned char *sig, size_t siglen, const char *logged)
{
	tu_log_reset();
	ck_assert_int_eq(ps_challenge_verify(&tu_log, c, pub, sig, siglen),
	    PS_ERR_AUTH);
	ck_assert_msg(tu_log_contains(logged), "log lacks '%s': %s", logged,
	    tu_log_text());
}

START_TEST(test_verify_refuses_other_key)
{
	EVP_PKEY *alice = tu_load_key("alice.key");
	X509 *alice2 = tu_load_cert("alice2.crt");
	X509 *bob = tu_load_cert("bob.crt");
	X509 *carol = tu_load_cert("carol.crt");
	X509 *imp = tu_load_cert("imposter-alice.crt");
	EVP_PKEY *bobk = tu_load_key("bob.key");
	struct ps_challenge c;
	unsigned char *sig = NULL, *bsig = NULL;
	size_t siglen = 0, bsiglen = 0;

	make_challenge(&c, "alice");
	sign_challenge(alice, &c, &sig, &siglen);
	expect_verify_fails(&c, X509_get0_pubkey(alice2), sig, siglen,
	    "does not verify");
	expect_verify_fails(&c, X509_get0_pubkey(imp), sig, siglen,
	    "does not verify");
	expect_verify_fails(&c, X509_get0_pubkey(bob), sig, siglen,
	    "does not verify");
	/* an ECDSA signature on P-256 presented for the P-384 key */
	sign_challenge(bobk, &c, &bsig, &bsiglen);
	expect_verify_fails(&c, X509_get0_pubkey(carol), bsig, bsiglen,
	    "does not verify");
	free(sig);
	free(bsig);
	ps_challenge_clear(&c);
	X509_free(alice2);
	X509_free(bob);
	X509_free(carol);
	X509_free(imp);
	EVP_PKEY_free(alice);
	EVP_PKEY_free(bobk);
}
END_TEST

START_TEST(test_verify_refuses_tampering)
{
	const struct signer *s = &signers[_i];
	EVP_PKEY *priv = tu_load_key(s->key);
	X509 *cert = tu_load_cert(s->cert);
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	struct ps_challenge c, other;
	unsigned char *sig = NULL, *big = NULL;
	unsigned char garbage[256];
	size_t siglen = 0, bit;

	make_challenge(&c, "alice");
	make_challenge(&other, "alice");
	sign_challenge(priv, &c, &sig, &siglen);
	ck_assert_int_eq(ps_challenge_verify(&tu_log, &c, pub, sig, siglen),
	    PS_OK);

	/* a flipped bit anywhere: first byte, middle, last */
	for (bit = 0; bit < 3; bit++) {
		size_t at = bit == 0 ? 0 : bit == 1 ? siglen / 2 : siglen - 1;

		sig[at] ^= 0x01;
		expect_verify_fails(&c, pub, sig, siglen, "does not verify");
		sig[at] ^= 0x01;
	}
	/* a signature for a different challenge (other nonce) */
	expect_verify_fails(&other, pub, sig, siglen, "does not verify");
	/* same nonce, different user */
	free(other.user);
	other.user = strdup("mallory");
	memcpy(other.nonce, c.nonce, PS_NONCE_LEN);
	expect_verify_fails(&other, pub, sig, siglen, "does not verify");
	/* truncated and extended */
	expect_verify_fails(&c, pub, sig, siglen - 1, "does not verify");
	/* empty, NULL, oversized */
	expect_verify_fails(&c, pub, sig, 0, "signature length 0");
	expect_verify_fails(&c, pub, NULL, siglen, "signature length 0");
	big = calloc(1, 1025);
	memcpy(big, sig, siglen);
	expect_verify_fails(&c, pub, big, 1025, "signature length 1025");
	/* garbage of a plausible length */
	memset(garbage, 0x5a, sizeof(garbage));
	expect_verify_fails(&c, pub, garbage, siglen, "does not verify");
	expect_verify_fails(&c, pub, garbage, 1, "does not verify");
	free(big);
	free(sig);
	ps_challenge_clear(&c);
	ps_challenge_clear(&other);
	X509_free(cert);
	EVP_PKEY_free(priv);
}
END_TEST

/* Only PKCS#1 v1.5: an RSA-PSS signature over the same digest is refused. */
START_TEST(test_verify_refuses_rsa_pss)
{
	EVP_PKEY *priv = tu_load_key("alice.key");
	X509 *cert = tu_load_cert("alice.crt");
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	unsigned char d[EVP_MAX_MD_SIZE], sig[512];
	struct ps_challenge c;
	size_t dlen = 0, siglen = sizeof(sig);

	make_challenge(&c, "alice");
	ck_assert_int_eq(ps_challenge_digest(&c, EVP_sha256(), d, &dlen), PS_OK);
	ck_assert_int_eq(EVP_PKEY_sign_init(ctx), 1);
	ck_assert_int_gt(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()), 0);
	ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(ctx,
	    RSA_PKCS1_PSS_PADDING), 0);
	ck_assert_int_eq(EVP_PKEY_sign(ctx, sig, &siglen, d, dlen), 1);
	expect_verify_fails(&c, X509_get0_pubkey(cert), sig, siglen,
	    "does not verify");
	EVP_PKEY_CTX_free(ctx);
	ps_challenge_clear(&c);
	X509_free(cert);
	EVP_PKEY_free(priv);
}
END_TEST

START_TEST(test_verify_refuses_unusable_key)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct ps_challenge c;
	unsigned char sig[64] = { 1 };

	ck_assert_ptr_nonnull(ed);
	make_challenge(&c, "alice");
	expect_verify_fails(&c, NULL, sig, sizeof(sig), "no usable registered key");
	expect_verify_fails(&c, ed, sig, sizeof(sig), "no usable registered key");
	ck_assert_ptr_null(ps_challenge_md_for_key(NULL));
	EVP_PKEY_free(ed);
	ps_challenge_clear(&c);
}
END_TEST

START_TEST(test_verify_refuses_invalid_challenge)
{
	EVP_PKEY *priv = tu_load_key("bob.key");
	X509 *cert = tu_load_cert("bob.crt");
	struct ps_challenge c;
	unsigned char *sig = NULL;
	size_t siglen = 0;

	make_challenge(&c, "bob");
	sign_challenge(priv, &c, &sig, &siglen);
	free(c.host);
	c.host = strdup("bad\nhost");
	expect_verify_fails(&c, X509_get0_pubkey(cert), sig, siglen,
	    "cannot digest the challenge");
	free(sig);
	ps_challenge_clear(&c);
	X509_free(cert);
	EVP_PKEY_free(priv);
}
END_TEST

START_TEST(test_sign_rejects_bad_arguments)
{
	EVP_PKEY *priv = tu_load_key("alice.key");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	unsigned char d[48] = { 0 };
	unsigned char *sig = (unsigned char *)"x";
	size_t siglen = 9;

	/* digest length must match md */
	ck_assert_int_eq(ps_sign_digest_with_key(priv, EVP_sha256(), d, 48,
	    &sig, &siglen), PS_ERR_INVALID);
	ck_assert_ptr_null(sig);
	ck_assert_uint_eq(siglen, 0);
	ck_assert_int_eq(ps_sign_digest_with_key(priv, EVP_sha384(), d, 32,
	    &sig, &siglen), PS_ERR_INVALID);
	ck_assert_int_eq(ps_sign_digest_with_key(priv, NULL, d, 32, &sig,
	    &siglen), PS_ERR_INVALID);
	ck_assert_int_eq(ps_sign_digest_with_key(NULL, EVP_sha256(), d, 32,
	    &sig, &siglen), PS_ERR_INVALID);
	ck_assert_int_eq(ps_sign_digest_with_key(ed, EVP_sha256(), d, 32,
	    &sig, &siglen), PS_ERR_INVALID);
	ck_assert_ptr_null(sig);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(priv);
}
END_TEST

START_TEST(test_digest_is_of_canonical_text)
{
	struct ps_challenge c;
	unsigned char d[EVP_MAX_MD_SIZE], want[EVP_MAX_MD_SIZE];
	unsigned int wlen = 0;
	size_t dlen = 0;

	ck_assert_int_eq(parse_str(GOOD_TEXT, &c), PS_OK);
	ck_assert_int_eq(ps_challenge_digest(&c, EVP_sha384(), d, &dlen),
	    PS_OK);
	ck_assert_int_eq(EVP_Digest(GOOD_TEXT, strlen(GOOD_TEXT), want, &wlen,
	    EVP_sha384(), NULL), 1);
	ck_assert_uint_eq(dlen, wlen);
	ck_assert_mem_eq(d, want, dlen);
	ck_assert_int_eq(ps_challenge_digest(&c, NULL, d, &dlen),
	    PS_ERR_INVALID);
	ps_challenge_clear(&c);
}
END_TEST

static Suite *
challenge_suite(void)
{
	Suite *s = suite_create("challenge");
	TCase *tc;

	tc = tcase_create("text");
	tcase_add_test(tc, test_new_encode_parse_round_trip);
	tcase_add_test(tc, test_encode_exact_format);
	tcase_add_test(tc, test_nonce_is_standard_base64url);
	tcase_add_test(tc, test_nonces_differ);
	tcase_add_test(tc, test_new_local_session);
	tcase_add_test(tc, test_new_rejects_bad_fields);
	tcase_add_test(tc, test_encode_rejects_injected_struct);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_good_text);
	tcase_add_test(tc, test_parse_rejects_structure);
	tcase_add_test(tc, test_parse_rejects_bad_numbers);
	tcase_add_test(tc, test_parse_number_limits);
	tcase_add_test(tc, test_parse_rejects_bad_nonce);
	tcase_add_test(tc, test_parse_rejects_hostile_bytes);
	tcase_add_test(tc, test_parse_field_at_maximum);
	suite_add_tcase(s, tc);

	tc = tcase_create("signature");
	tcase_add_loop_test(tc, test_sign_verify_ok, 0, 3);
	tcase_add_loop_test(tc, test_signature_is_standard_over_text, 0, 3);
	tcase_add_loop_test(tc, test_verify_refuses_tampering, 0, 3);
	tcase_add_test(tc, test_verify_refuses_other_key);
	tcase_add_test(tc, test_verify_refuses_rsa_pss);
	tcase_add_test(tc, test_verify_refuses_unusable_key);
	tcase_add_test(tc, test_verify_refuses_invalid_challenge);
	tcase_add_test(tc, test_sign_rejects_bad_arguments);
	tcase_add_test(tc, test_digest_is_of_canonical_text);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(challenge_suite());
}
