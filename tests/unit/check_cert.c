/*
 * check_cert.c - unit tests for src/cert/cert.c: every certificate format the
 * fixtures come in, the PKCS#12 helper (modern and legacy ciphers, wrong
 * passwords), malformed and hostile input, fingerprints, identity fields,
 * validity and key-type checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <check.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "ps_status.h"
#include "testutil.h"
#include "util.h"

#define NOT_A_CERT "not a certificate in PEM, DER, PKCS#7 or PKCS#12 format"
#define KEY_NOT_CERT "contains a private key, not a certificate"

/* ------------------------------------------------------------ helpers */

static unsigned char *
read_fixture(const char *name, size_t *len)
{
	char *path = tu_fixture(name);
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	free(path);
	*len = (size_t)n;
	return buf;
}

/*
 * What `openssl x509 -pubkey | openssl pkey -pubin -outform DER |
 * sha256sum` prints, computed independently of cert.c.
 */
static void
expected_fp(X509 *x, char out[PS_FP_HEX_LEN + 1])
{
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int len, i;

	len = i2d_PUBKEY(X509_get0_pubkey(x), &der);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(EVP_Digest(der, (size_t)len, md, &mdlen,
	    EVP_sha256(), NULL), 1);
	ck_assert_uint_eq(mdlen, 32);
	for (i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
	OPENSSL_free(der);
}

static void
expected_fp_of(const char *crt, char out[PS_FP_HEX_LEN + 1])
{
	X509 *x = tu_load_cert(crt);

	expected_fp(x, out);
	X509_free(x);
}

static void
assert_fp(X509 *x, const char *expected)
{
	char fp[PS_FP_HEX_LEN + 1];

	ck_assert_int_eq(ps_cert_fingerprint(x, fp), PS_OK);
	ck_assert_uint_eq(strlen(fp), PS_FP_HEX_LEN);
	ck_assert_str_eq(fp, expected);
}

static bool
is_ca_cert(X509 *x)
{
	X509 *ca = tu_load_cert("ca.crt");
	bool same = X509_cmp(x, ca) == 0;

	X509_free(ca);
	return same;
}

/* Load bytes, expect failure `want` and a log line containing `needle`. */
static void
expect_mem_fail(const void *data, size_t len, const char *password, int want,
    const char *needle)
{
	STACK_OF(X509) *sk = (STACK_OF(X509) *)1;
	int r;

	tu_log_reset();
	r = ps_cert_load_mem(&tu_log, data, len, password, &sk);
	ck_assert_msg(r == want, "rc %d (%s), want %d; log: %s", r,
	    ps_status_str(r), want, tu_log_text());
	ck_assert_ptr_null(sk);
	if (needle != NULL)
		ck_assert_msg(tu_log_contains(needle), "log lacks '%s': %s",
		    needle, tu_log_text());
}

static void
expect_file_fail(const char *name, const char *password, int want,
    const char *needle)
{
	STACK_OF(X509) *sk = (STACK_OF(X509) *)1;
	char *path = tu_fixture(name);
	int r;

	tu_log_reset();
	r = ps_cert_load_file(&tu_log, path, password, &sk);
	ck_assert_msg(r == want, "%s: rc %d (%s), want %d; log: %s", name, r,
	    ps_status_str(r), want, tu_log_text());
	ck_assert_ptr_null(sk);
	if (needle != NULL)
		ck_assert_msg(tu_log_contains(needle), "%s: log lacks '%s': %s",
		    name, needle, tu_log_text());
	/* the path names the file in the message */
	if (needle != NULL)
		ck_assert(tu_log_contains(path));
	free(path);
}

static STACK_OF(X509) *
load_mem_ok(const void *data, size_t len, const char *password)
{
	STACK_OF(X509) *sk = NULL;
	int r;

	tu_log_reset();
	r = ps_cert_load_mem(&tu_log, data, len, password, &sk);
	ck_assert_msg(r == PS_OK, "rc %d (%s); log: %s", r, ps_status_str(r),
	    tu_log_text());
	ck_assert_ptr_nonnull(sk);
	ck_assert_int_gt(sk_X509_num(sk), 0);
	return sk;
}

static void
free_certs(STACK_OF(X509) *sk)
{
	sk_X509_pop_free(sk, X509_free);
}

/* DER or PEM bytes of an object, malloc'd via a memory BIO. */
static unsigned char *
bio_bytes(BIO *bio, size_t *len)
{
	char *p = NULL;
	long n = BIO_get_mem_data(bio, &p);
	unsigned char *copy;

	ck_assert_int_gt(n, 0);
	copy = malloc((size_t)n);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, p, (size_t)n);
	*len = (size_t)n;
	return copy;
}

static unsigned char *
cert_der(X509 *x, size_t *len)
{
	unsigned char *der = NULL, *copy;
	int n = i2d_X509(x, &der);

	ck_assert_int_gt(n, 0);
	copy = malloc((size_t)n);
	memcpy(copy, der, (size_t)n);
	OPENSSL_free(der);
	*len = (size_t)n;
	return copy;
}

/* A PKCS#12 made in memory; cert/ca/key may be NULL. */
static unsigned char *
make_p12(const char *pass, EVP_PKEY *key, X509 *cert, STACK_OF(X509) *ca,
    int mac_iter, size_t *len)
{
	PKCS12 *p12;
	BIO *bio = BIO_new(BIO_s_mem());
	unsigned char *out;

	p12 = PKCS12_create(pass, "test", key, cert, ca, 0, 0, 0, mac_iter, 0);
	ck_assert_ptr_nonnull(p12);
	ck_assert_int_eq(i2d_PKCS12_bio(bio, p12), 1);
	out = bio_bytes(bio, len);
	BIO_free(bio);
	PKCS12_free(p12);
	return out;
}

/* ------------------------------------------------------------ formats */

static const char *const users[] = { "alice", "bob", "carol" };

struct fmt {
	const char *suffix;
	int count;		/* certificates expected */
	bool password;
};

static const struct fmt formats[] = {
	{ ".crt", 1, false },
	{ ".der", 1, false },
	{ ".cer", 1, false },
	{ ".p7b", 2, false },
	{ ".p7b.der", 2, false },
	{ ".pfx", 2, true },
	{ "-legacy.pfx", 2, true },
};
#define N_FORMATS ((int)(sizeof(formats) / sizeof(formats[0])))

/* Loop index i: user i / N_FORMATS, format i % N_FORMATS. */
START_TEST(test_every_format_file)
{
	const char *user = users[_i / N_FORMATS];
	const struct fmt *f = &formats[_i % N_FORMATS];
	char name[64], crt[64], fp[PS_FP_HEX_LEN + 1];
	STACK_OF(X509) *sk = NULL;
	char *path;
	int r;

	snprintf(name, sizeof(name), "%s%s", user, f->suffix);
	snprintf(crt, sizeof(crt), "%s.crt", user);
	expected_fp_of(crt, fp);
	path = tu_fixture(name);
	tu_log_reset();
	r = ps_cert_load_file(&tu_log, path,
	    f->password ? tu_password() : NULL, &sk);
	ck_assert_msg(r == PS_OK, "%s: %s; log: %s", name, ps_status_str(r),
	    tu_log_text());
	ck_assert_int_eq(sk_X509_num(sk), f->count);
	assert_fp(sk_X509_value(sk, 0), fp);
	ck_assert(!is_ca_cert(sk_X509_value(sk, 0)));
	if (f->count == 2)
		ck_assert(is_ca_cert(sk_X509_value(sk, 1)));
	free_certs(sk);
	free(path);
}
END_TEST

START_TEST(test_every_format_mem)
{
	const char *user = users[_i / N_FORMATS];
	const struct fmt *f = &formats[_i % N_FORMATS];
	char name[64], crt[64], fp[PS_FP_HEX_LEN + 1];
	STACK_OF(X509) *sk;
	unsigned char *data;
	size_t len;

	snprintf(name, sizeof(name), "%s%s", user, f->suffix);
	snprintf(crt, sizeof(crt), "%s.crt", user);
	expected_fp_of(crt, fp);
	data = read_fixture(name, &len);
	sk = load_mem_ok(data, len, f->password ? tu_password() : NULL);
	ck_assert_int_eq(sk_X509_num(sk), f->count);
	assert_fp(sk_X509_value(sk, 0), fp);
	free_certs(sk);
	free(data);
}
END_TEST

START_TEST(test_pem_with_leading_text_and_bom)
{
	static const char bag[] = "Bag Attributes\n    friendlyName: alice\n"
	    "subject=/CN=alice test\n\n  \t\n";
	static const unsigned char bom[] = { 0xef, 0xbb, 0xbf };
	char fp[PS_FP_HEX_LEN + 1];
	unsigned char *pem, *buf;
	STACK_OF(X509) *sk;
	size_t len;

	expected_fp_of("alice.crt", fp);
	pem = read_fixture("alice.cer", &len);	/* CRLF line ends */
	buf = malloc(sizeof(bag) + sizeof(bom) + len);
	memcpy(buf, bag, sizeof(bag) - 1);
	memcpy(buf + sizeof(bag) - 1, pem, len);
	sk = load_mem_ok(buf, sizeof(bag) - 1 + len, NULL);
	ck_assert_int_eq(sk_X509_num(sk), 1);
	assert_fp(sk_X509_value(sk, 0), fp);
	free_certs(sk);

	/* Notepad's byte-order mark in front of the BEGIN line */
	memcpy(buf, bom, sizeof(bom));
	memcpy(buf + sizeof(bom), pem, len);
	sk = load_mem_ok(buf, sizeof(bom) + len, NULL);
	assert_fp(sk_X509_value(sk, 0), fp);
	free_certs(sk);
	free(buf);
	free(pem);
}
END_TEST

START_TEST(test_pem_bundle_end_entity_first)
{
	unsigned char *ca, *alice, *bob, *buf;
	size_t calen, alen, blen;
	char afp[PS_FP_HEX_LEN + 1], bfp[PS_FP_HEX_LEN + 1];
	STACK_OF(X509) *sk;

	expected_fp_of("alice.crt", afp);
	expected_fp_of("bob.crt", bfp);
	ca = read_fixture("ca.crt", &calen);
	alice = read_fixture("alice.crt", &alen);
	bob = read_fixture("bob.crt", &blen);
	buf = malloc(calen + alen + blen);
	/* CA first in the file, then alice, then bob */
	memcpy(buf, ca, calen);
	memcpy(buf + calen, alice, alen);
	memcpy(buf + calen + alen, bob, blen);
	sk = load_mem_ok(buf, calen + alen + blen, NULL);
	ck_assert_int_eq(sk_X509_num(sk), 3);
	assert_fp(sk_X509_value(sk, 0), afp);
	assert_fp(sk_X509_value(sk, 1), bfp);
	ck_assert(is_ca_cert(sk_X509_value(sk, 2)));
	free_certs(sk);
	free(buf);
	free(ca);
	free(alice);
	free(bob);
}
END_TEST

START_TEST(test_pem_cert_and_key_together)
{
	unsigned char *key, *crt, *buf;
	size_t klen, clen;
	char fp[PS_FP_HEX_LEN + 1];
	STACK_OF(X509) *sk;

	expected_fp_of("alice.crt", fp);
	key = read_fixture("alice.key", &klen);
	crt = read_fixture("alice.crt", &clen);
	buf = malloc(klen + clen);
	memcpy(buf, key, klen);
	memcpy(buf + klen, crt, clen);
	sk = load_mem_ok(buf, klen + clen, NULL);
	ck_assert_int_eq(sk_X509_num(sk), 1);
	assert_fp(sk_X509_value(sk, 0), fp);
	free_certs(sk);
	free(buf);
	free(key);
	free(crt);
}
END_TEST

/* ------------------------------------------------------------ PKCS#12 */

START_TEST(test_pfx_wrong_password)
{
	expect_file_fail("alice.pfx", "wrong horse 42", PS_ERR_BAD_SECRET,
	    "wrong password");
	expect_file_fail("alice-legacy.pfx", "wrong horse 42",
	    PS_ERR_BAD_SECRET, "wrong password");
	expect_file_fail("bob.pfx", NULL, PS_ERR_BAD_SECRET, "wrong password");
	expect_file_fail("carol-legacy.pfx", "", PS_ERR_BAD_SECRET,
	    "wrong password");
}
END_TEST

START_TEST(test_pkcs12_parse_modern_and_legacy)
{
	static const char *const files[] = { "alice.pfx", "alice-legacy.pfx",
	    "bob.pfx", "bob-legacy.pfx", "carol.pfx", "carol-legacy.pfx" };
	const char *name = files[_i];
	char user[16], crt[32], fp[PS_FP_HEX_LEN + 1], kfp[PS_FP_HEX_LEN + 1];
	unsigned char *data, sig[1024];
	size_t len, siglen = sizeof(sig);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *extra = NULL;
	EVP_MD_CTX *md;
	int r;

	snprintf(user, sizeof(user), "%.*s", (int)strcspn(name, ".-"), name);
	snprintf(crt, sizeof(crt), "%s.crt", user);
	expected_fp_of(crt, fp);
	data = read_fixture(name, &len);
	tu_log_reset();
	r = ps_pkcs12_parse(&tu_log, data, len, tu_password(), &key, &cert,
	    &extra);
	ck_assert_msg(r == PS_OK, "%s: %s; log: %s", name, ps_status_str(r),
	    tu_log_text());
	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(cert);
	ck_assert_ptr_nonnull(extra);
	assert_fp(cert, fp);
	ck_assert_int_eq(ps_pkey_fingerprint(key, kfp), PS_OK);
	ck_assert_str_eq(kfp, fp);
	ck_assert_int_eq(sk_X509_num(extra), 1);
	ck_assert(is_ca_cert(sk_X509_value(extra, 0)));

	/* the key lives on after the private library context is gone */
	md = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key),
	    1);
	ck_assert_int_eq(EVP_DigestSign(md, sig, &siglen,
	    (const unsigned char *)"challenge", 9), 1);
	EVP_MD_CTX_free(md);
	md = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    X509_get0_pubkey(cert)), 1);
	ck_assert_int_eq(EVP_DigestVerify(md, sig, siglen,
	    (const unsigned char *)"challenge", 9), 1);
	EVP_MD_CTX_free(md);

	EVP_PKEY_free(key);
	X509_free(cert);
	free_certs(extra);
	free(data);
}
END_TEST

START_TEST(test_pkcs12_legacy_not_global)
{
	unsigned char *data;
	size_t len;
	X509 *cert = NULL;
	EVP_CIPHER *rc2;
	OSSL_LIB_CTX *before, *after;

	before = OSSL_LIB_CTX_set0_default(NULL);
	data = read_fixture("alice-legacy.pfx", &len);
	tu_log_reset();
	ck_assert_int_eq(ps_pkcs12_parse(&tu_log, data, len, tu_password(),
	    NULL, &cert, NULL), PS_OK);
	ck_assert_ptr_nonnull(cert);
	after = OSSL_LIB_CTX_set0_default(NULL);
	/* the thread's default context is restored, legacy is not loaded */
	ck_assert_ptr_eq(before, after);
	ck_assert_int_eq(OSSL_PROVIDER_available(NULL, "legacy"), 0);
	rc2 = EVP_CIPHER_fetch(NULL, "RC2-40-CBC", NULL);
	ck_assert_ptr_null(rc2);
	ERR_clear_error();
	X509_free(cert);
	free(data);

	/* and it is restored on the error path too */
	data = read_fixture("alice-legacy.pfx", &len);
	ck_assert_int_eq(ps_pkcs12_parse(&tu_log, data, len, "nope", NULL,
	    &cert, NULL), PS_ERR_BAD_SECRET);
	ck_assert_ptr_null(cert);
	ck_assert_ptr_eq(OSSL_LIB_CTX_set0_default(NULL), before);
	free(data);
}
END_TEST

START_TEST(test_pkcs12_parse_errors)
{
	unsigned char *data;
	size_t len;
	EVP_PKEY *key = (EVP_PKEY *)1;
	X509 *cert = (X509 *)1;
	STACK_OF(X509) *extra = (STACK_OF(X509) *)1;

	data = read_fixture("truncated.pfx", &len);
	tu_log_reset();
	ck_assert_int_eq(ps_pkcs12_parse(&tu_log, data, len, tu_password(),
	    &key, &cert, &extra), PS_ERR_INVALID);
	ck_assert(tu_log_contains("malformed or truncated PKCS#12"));
	ck_assert_ptr_null(key);
	ck_assert_ptr_null(cert);
	ck_assert_ptr_null(extra);
	free(data);

	data = read_fixture("alice.crt", &len);
	tu_log_reset();
	ck_assert_int_eq(ps_pkcs12_parse(&tu_log, data, len, tu_password(),
	    &key, NULL, NULL), PS_ERR_INVALID);
	ck_assert(tu_log_contains("malformed or truncated PKCS#12"));
	free(data);

	tu_log_reset();
	ck_assert_int_eq(ps_pkcs12_parse(&tu_log, (const unsigned char *)"",
	    0, tu_password(), &key, NULL, NULL), PS_ERR_INVALID);
	ck_assert(tu_log_contains("empty file"));

	/* trailing bytes after a valid PKCS#12 */
	data = read_fixture("alice.pfx", &len);
	data = realloc(data, len + 4);
	memcpy(data + len, "JUNK", 4);
	tu_log_reset();
	ck_assert_int_eq(ps_pkcs12_parse(&tu_log, data, len + 4,
	    tu_password(), &key, NULL, NULL), PS_ERR_INVALID);
	ck_assert(tu_log_contains("trailing data"));
	free(data);
}
END_TEST

START_TEST(test_pkcs12_made_in_memory)
{
	EVP_PKEY *key = tu_load_key("alice.key"), *got = NULL;
	X509 *alice = tu_load_cert("alice.crt"), *ca = tu_load_cert("ca.crt");
	X509 *cert = NULL;
	STACK_OF(X509) *chain = sk_X509_new_null(), *sk, *extra = NULL;
	char fp[PS_FP_HEX_LEN + 1];
	unsigned char *p12;
	size_t len;

	expected_fp(alice, fp);

	/* empty password: NULL opens it */
	p12 = make_p12("", key, alice, NULL, 0, &len);
	sk = load_mem_ok(p12, len, NULL);
	ck_assert_int_eq(sk_X509_num(sk), 1);
	assert_fp(sk_X509_value(sk, 0), fp);
	free_certs(sk);
	free(p12);

	/* no integrity MAC: refused whatever the password */
	p12 = make_p12(tu_password(), key, alice, NULL, -1, &len);
	expect_mem_fail(p12, len, tu_password(), PS_ERR_INVALID,
	    "no integrity MAC");
	expect_mem_fail(p12, len, "wrong", PS_ERR_INVALID, "no integrity MAC");
	free(p12);

	/* certificates only, CA listed first: the person's comes first */
	ck_assert_int_gt(sk_X509_push(chain, ca), 0);
	ck_assert_int_gt(sk_X509_push(chain, alice), 0);
	p12 = make_p12(tu_password(), NULL, NULL, chain, 0, &len);
	sk = load_mem_ok(p12, len, tu_password());
	ck_assert_int_eq(sk_X509_num(sk), 2);
	assert_fp(sk_X509_value(sk, 0), fp);
	ck_assert(is_ca_cert(sk_X509_value(sk, 1)));
	free_certs(sk);
	/* ... and a keystore needs a key */
	tu_log_reset();
	ck_assert_int_eq(ps_pkcs12_parse(&tu_log, p12, len, tu_password(),
	    &got, &cert, &extra), PS_ERR_INVALID);
	ck_assert(tu_log_contains("holds no private key"));
	ck_assert_ptr_null(got);
	ck_assert_ptr_null(cert);
	ck_assert_ptr_null(extra);
	/* without asking for the key it opens */
	ck_assert_int_eq(ps_pkcs12_parse(&tu_log, p12, len, tu_password(),
	    NULL, &cert, &extra), PS_OK);
	ck_assert_ptr_null(cert);
	ck_assert_int_eq(sk_X509_num(extra), 2);
	assert_fp(sk_X509_value(extra, 0), fp);
	free_certs(extra);
	free(p12);

	/* a key and no certificate */
	p12 = make_p12(tu_password(), key, NULL, NULL, 0, &len);
	expect_mem_fail(p12, len, tu_password(), PS_ERR_INVALID, KEY_NOT_CERT);
	free(p12);

	sk_X509_free(chain);
	X509_free(alice);
	X509_free(ca);
	EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------ bad input */

START_TEST(test_bad_fixture_files)
{
	expect_file_fail("empty.cer", NULL, PS_ERR_INVALID, "empty file");
	expect_file_fail("garbage.bin", NULL, PS_ERR_INVALID, NOT_A_CERT);
	expect_file_fail("truncated.pfx", tu_password(), PS_ERR_INVALID,
	    "truncated");
	expect_file_fail("truncated.pfx", tu_password(), PS_ERR_INVALID,
	    NOT_A_CERT);
	expect_file_fail("does-not-exist.crt", NULL, PS_ERR_NOT_FOUND,
	    "no such file");
}
END_TEST

START_TEST(test_private_key_files)
{
	static const char *const keys[] = { "alice.key", "bob.key",
	    "carol.key", "alice.key.enc.pem", "bob.key.enc.pem" };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		expect_file_fail(keys[i], tu_password(), PS_ERR_INVALID,
		    KEY_NOT_CERT);
		/* no key material in the log (base64 DER starts "MI") */
		ck_assert(!tu_log_contains("MII"));
		ck_assert(!tu_log_contains("MIG"));
	}
}
END_TEST

/* DER encodings of private keys: PKCS#8, traditional, encrypted PKCS#8. */
START_TEST(test_private_key_der)
{
	static const char *const keys[] = { "alice.key", "bob.key",
	    "carol.key" };
	EVP_PKEY *key = tu_load_key(keys[_i]);
	unsigned char *der = NULL, *buf;
	size_t len;
	BIO *bio;
	int n;

	/* traditional (PKCS#1 RSAPrivateKey / SEC1 ECPrivateKey) */
	n = i2d_PrivateKey(key, &der);
	ck_assert_int_gt(n, 0);
	expect_mem_fail(der, (size_t)n, NULL, PS_ERR_INVALID, KEY_NOT_CERT);
	OPENSSL_free(der);

	/* unencrypted PKCS#8 */
	bio = BIO_new(BIO_s_mem());
	ck_assert_int_eq(i2d_PKCS8PrivateKey_bio(bio, key, NULL, NULL, 0,
	    NULL, NULL), 1);
	buf = bio_bytes(bio, &len);
	expect_mem_fail(buf, len, NULL, PS_ERR_INVALID, KEY_NOT_CERT);
	free(buf);
	BIO_free(bio);

	/* encrypted PKCS#8 */
	bio = BIO_new(BIO_s_mem());
	ck_assert_int_eq(i2d_PKCS8PrivateKey_bio(bio, key,
	    EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"pw"), 1);
	buf = bio_bytes(bio, &len);
	expect_mem_fail(buf, len, NULL, PS_ERR_INVALID, KEY_NOT_CERT);
	free(buf);
	BIO_free(bio);

	EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_pem_without_certificate)
{
	static const char csr_hdr[] = "-----BEGIN CERTIFICATE REQUEST-----\n";
	X509 *x = tu_load_cert("alice.crt");
	BIO *bio = BIO_new(BIO_s_mem());
	unsigned char *buf;
	size_t len;

	/* a public key alone */
	ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, X509_get0_pubkey(x)), 1);
	buf = bio_bytes(bio, &len);
	expect_mem_fail(buf, len, NULL, PS_ERR_INVALID,
	    NOT_A_CERT " (PEM holds PUBLIC KEY)");
	free(buf);
	BIO_free(bio);
	X509_free(x);

	/* a block label we do not take, with a well-formed body */
	{
		char text[256];

		snprintf(text, sizeof(text), "%sTUlJQg==\n"
		    "-----END CERTIFICATE REQUEST-----\n", csr_hdr);
		expect_mem_fail(text, strlen(text), NULL, PS_ERR_INVALID,
		    "PEM holds CERTIFICATE REQUEST");
	}
	/* plain text with no PEM at all */
	expect_mem_fail("hello, this is not a certificate\n", 33, NULL,
	    PS_ERR_INVALID, NOT_A_CERT);
	/* whitespace only */
	expect_mem_fail(" \r\n\t\n", 5, NULL, PS_ERR_INVALID, NOT_A_CERT);
}
END_TEST

START_TEST(test_pem_malformed)
{
	unsigned char *pem;
	char *buf;
	size_t len;

	pem = read_fixture("alice.crt", &len);
	buf = malloc(len + 1);

	/* cut before the END line */
	memcpy(buf, pem, len / 2);
	expect_mem_fail(buf, len / 2, NULL, PS_ERR_INVALID,
	    "malformed PEM data");

	/* a base64 character replaced by '!' */
	memcpy(buf, pem, len);
	buf[40] = '!';
	expect_mem_fail(buf, len, NULL, PS_ERR_INVALID, "malformed PEM");

	/* valid base64 whose DER is not a certificate */
	snprintf(buf, len, "-----BEGIN CERTIFICATE-----\nMIIBAAECAwQF\n"
	    "-----END CERTIFICATE-----\n");
	expect_mem_fail(buf, strlen(buf), NULL, PS_ERR_INVALID,
	    "malformed certificate in PEM block 1");

	/* a good certificate followed by a broken one: all refused */
	memcpy(buf, pem, len);
	{
		size_t n = len + 64;
		char *two = malloc(n);

		memcpy(two, pem, len);
		snprintf(two + len, n - len, "-----BEGIN CERTIFICATE-----\n"
		    "AAAA\n-----END CERTIFICATE-----\n");
		expect_mem_fail(two, strlen(two), NULL, PS_ERR_INVALID,
		    "malformed certificate in PEM block 2");
		free(two);
	}

	/* a PKCS7 label with garbage */
	snprintf(buf, len, "-----BEGIN PKCS7-----\nMIIBAAECAwQF\n"
	    "-----END PKCS7-----\n");
	expect_mem_fail(buf, strlen(buf), NULL, PS_ERR_INVALID,
	    "malformed PKCS#7 in PEM block 1");
	free(buf);
	free(pem);
}
END_TEST

START_TEST(test_der_truncated_and_trailing)
{
	X509 *x = tu_load_cert("alice.crt");
	unsigned char *der, *buf;
	size_t len, n;

	der = cert_der(x, &len);
	expect_mem_fail(der, len / 2, NULL, PS_ERR_INVALID, "truncated");
	expect_mem_fail(der, 1, NULL, PS_ERR_INVALID, NOT_A_CERT);

	buf = malloc(len + 3);
	memcpy(buf, der, len);
	memcpy(buf + len, "\0\0\0", 3);
	expect_mem_fail(buf, len + 3, NULL, PS_ERR_INVALID, "trailing data");

	/* every prefix fails cleanly */
	for (n = 1; n < len; n++) {
		STACK_OF(X509) *sk = NULL;

		ck_assert_int_eq(ps_cert_load_mem(NULL, der, n, NULL, &sk),
		    PS_ERR_INVALID);
		ck_assert_ptr_null(sk);
	}
	free(buf);
	free(der);
	X509_free(x);
}
END_TEST

/* Flip every byte of a DER certificate: never a crash, never a leak. */
START_TEST(test_der_bitflips)
{
	X509 *x = tu_load_cert("bob.crt");
	unsigned char *der;
	size_t len, i;
	int r;

	der = cert_der(x, &len);
	for (i = 0; i < len; i++) {
		STACK_OF(X509) *sk = NULL;

		der[i] ^= 0xa5;
		r = ps_cert_load_mem(NULL, der, len, NULL, &sk);
		ck_assert(r == PS_OK || r == PS_ERR_INVALID);
		ck_assert((r == PS_OK) == (sk != NULL));
		if (sk != NULL) {
			struct ps_identity id;
			char fp[PS_FP_HEX_LEN + 1];

			/* whatever parsed must be safe to inspect */
			(void)ps_cert_fingerprint(sk_X509_value(sk, 0), fp);
			if (ps_cert_identity(sk_X509_value(sk, 0), &id) ==
			    PS_OK)
				ps_identity_clear(&id);
			(void)ps_cert_key_check(sk_X509_value(sk, 0), NULL, 0);
		}
		free_certs(sk);
		der[i] ^= 0xa5;
	}
	free(der);
	X509_free(x);
}
END_TEST

START_TEST(test_pfx_prefixes)
{
	unsigned char *data;
	size_t len, n;

	data = read_fixture("bob-legacy.pfx", &len);
	for (n = 1; n < len; n += 97) {
		STACK_OF(X509) *sk = NULL;

		ck_assert_int_eq(ps_cert_load_mem(NULL, data, n, tu_password(),
		    &sk), PS_ERR_INVALID);
		ck_assert_ptr_null(sk);
	}
	free(data);
}
END_TEST

START_TEST(test_pkcs7_without_certificates)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	int n;

	ck_assert_int_eq(PKCS7_set_type(p7, NID_pkcs7_signed), 1);
	ck_assert_int_eq(PKCS7_content_new(p7, NID_pkcs7_data), 1);
	n = i2d_PKCS7(p7, &der);
	ck_assert_int_gt(n, 0);
	expect_mem_fail(der, (size_t)n, NULL, PS_ERR_INVALID,
	    "PKCS#7 bundle holds no certificate");
	OPENSSL_free(der);
	PKCS7_free(p7);
}
END_TEST

START_TEST(test_size_limits_and_nulls)
{
	unsigned char *big = calloc(1, PS_CERT_FILE_MAX + 1);
	STACK_OF(X509) *sk = (STACK_OF(X509) *)1;

	ck_assert_ptr_nonnull(big);
	big[0] = 0x30;
	expect_mem_fail(big, PS_CERT_FILE_MAX + 1, NULL, PS_ERR_INVALID,
	    "too large");
	free(big);
	expect_mem_fail(NULL, 10, NULL, PS_ERR_INVALID, "no data");
	expect_mem_fail("", 0, NULL, PS_ERR_INVALID, "empty file");
	tu_log_reset();
	ck_assert_int_eq(ps_cert_load_file(&tu_log, NULL, NULL, &sk),
	    PS_ERR_INVALID);
	ck_assert_ptr_null(sk);
}
END_TEST

/* Links are followed: the caller chose the path. */
START_TEST(test_load_file_symlink)
{
	char *dir = tu_mkdtemp(), path[512], *target = tu_fixture("bob.der");
	char fp[PS_FP_HEX_LEN + 1];
	STACK_OF(X509) *sk = NULL;

	expected_fp_of("bob.crt", fp);
	snprintf(path, sizeof(path), "%s/link.cer", dir);
	ck_assert_int_eq(symlink(target, path), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_cert_load_file(&tu_log, path, NULL, &sk), PS_OK);
	assert_fp(sk_X509_value(sk, 0), fp);
	free_certs(sk);

	snprintf(path, sizeof(path), "%s/dangling.cer", dir);
	ck_assert_int_eq(symlink("/nonexistent/ps-unit.cer", path), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_cert_load_file(&tu_log, path, NULL, &sk),
	    PS_ERR_NOT_FOUND);
	ck_assert_ptr_null(sk);
	ck_assert(tu_log_contains("dangling.cer: no such file"));

	/* a directory is not a certificate */
	tu_log_reset();
	ck_assert_int_eq(ps_cert_load_file(&tu_log, dir, NULL, &sk),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("not a regular file"));
	tu_rmrf(dir);
	free(dir);
	free(target);
}
END_TEST

START_TEST(test_load_file_too_large)
{
	char *dir = tu_mkdtemp(), path[512];
	unsigned char *big = calloc(1, PS_CERT_FILE_MAX + 10);
	STACK_OF(X509) *sk = NULL;

	snprintf(path, sizeof(path), "%s/big.cer", dir);
	tu_write_file(path, big, PS_CERT_FILE_MAX + 10, 0644);
	tu_log_reset();
	ck_assert_int_eq(ps_cert_load_file(&tu_log, path, NULL, &sk),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("too large"));
	ck_assert_ptr_null(sk);
	free(big);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ------------------------------------------------------------ fingerprints */

START_TEST(test_fingerprint_matches_key)
{
	static const char *const u[] = { "alice", "bob", "carol", "alice2" };
	char crt[32], key[32], fp[PS_FP_HEX_LEN + 1], kfp[PS_FP_HEX_LEN + 1];
	char exp[PS_FP_HEX_LEN + 1];
	X509 *x;
	EVP_PKEY *k;

	snprintf(crt, sizeof(crt), "%s.crt", u[_i]);
	snprintf(key, sizeof(key), "%s.key", u[_i]);
	x = tu_load_cert(crt);
	k = tu_load_key(key);
	expected_fp(x, exp);
	ck_assert_int_eq(ps_cert_fingerprint(x, fp), PS_OK);
	ck_assert_str_eq(fp, exp);
	ck_assert(ps_hex_valid(fp, PS_FP_HEX_LEN));
	/* a private key hashes to the same SubjectPublicKeyInfo */
	ck_assert_int_eq(ps_pkey_fingerprint(k, kfp), PS_OK);
	ck_assert_str_eq(kfp, fp);
	ck_assert_int_eq(ps_pkey_fingerprint(X509_get0_pubkey(x), kfp), PS_OK);
	ck_assert_str_eq(kfp, fp);
	EVP_PKEY_free(k);
	X509_free(x);
}
END_TEST

START_TEST(test_fingerprint_differs)
{
	char a[PS_FP_HEX_LEN + 1], a2[PS_FP_HEX_LEN + 1],
	    imp[PS_FP_HEX_LEN + 1];
	X509 *x;

	x = tu_load_cert("alice.crt");
	ck_assert_int_eq(ps_cert_fingerprint(x, a), PS_OK);
	X509_free(x);
	x = tu_load_cert("alice2.crt");
	ck_assert_int_eq(ps_cert_fingerprint(x, a2), PS_OK);
	X509_free(x);
	x = tu_load_cert("imposter-alice.crt");
	ck_assert_int_eq(ps_cert_fingerprint(x, imp), PS_OK);
	X509_free(x);
	ck_assert_str_ne(a, a2);
	ck_assert_str_ne(a, imp);
	ck_assert_int_eq(ps_cert_fingerprint(NULL, a), PS_ERR_INVALID);
	ck_assert_str_eq(a, "");
	ck_assert_int_eq(ps_pkey_fingerprint(NULL, a), PS_ERR_INVALID);
}
END_TEST

/* ------------------------------------------------------------ identity */

START_TEST(test_identity_fixtures)
{
	struct ps_identity id;
	X509 *x = tu_load_cert("alice.crt");

	ck_assert_int_eq(ps_cert_identity(x, &id), PS_OK);
	ck_assert_str_eq(id.email, "alice@example.test");
	ck_assert_str_eq(id.common_name, "alice test");
	ck_assert_str_eq(id.subject,
	    "O=PSTest,emailAddress=alice@example.test,CN=alice test");
	ck_assert_str_eq(id.issuer, "O=PSTest,CN=PSTest Root CA");
	/* mkpki.sh numbers from 1000 and issues alice first */
	ck_assert_str_eq(id.serial, "1000");
	ps_identity_clear(&id);
	ck_assert_ptr_null(id.email);
	ck_assert_ptr_null(id.subject);
	X509_free(x);

	x = tu_load_cert("imposter-alice.crt");
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_OK);
	ck_assert_str_eq(id.email, "alice@example.test");
	ck_assert_str_eq(id.issuer, "O=PSTest,CN=PSTest Imposter CA");
	ps_identity_clear(&id);
	X509_free(x);

	/* the CA names nobody by e-mail */
	x = tu_load_cert("ca.crt");
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_OK);
	ck_assert_ptr_null(id.email);
	ck_assert_str_eq(id.common_name, "PSTest Root CA");
	ck_assert_str_eq(id.subject, id.issuer);
	ps_identity_clear(&id);
	X509_free(x);

	ck_assert_int_eq(ps_cert_identity(NULL, &id), PS_ERR_INVALID);
	ck_assert_ptr_null(id.email);
}
END_TEST

/* A self-signed P-256 certificate with the given subject and SAN. */
static X509 *
make_cert(EVP_PKEY *key, X509_NAME *name, GENERAL_NAMES *san, long serial)
{
	X509 *x = X509_new();

	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(X509_set_version(x, 2), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	ck_assert_int_eq(X509_set_subject_name(x, name), 1);
	ck_assert_int_eq(X509_set_issuer_name(x, name), 1);
	ck_assert_int_eq(X509_set_pubkey(x, key), 1);
	if (san != NULL)
		ck_assert_int_eq(X509_add1_ext_i2d(x, NID_subject_alt_name, san, 0,
		    X509V3_ADD_DEFAULT), 1);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	return x;
}

static GENERAL_NAME *
gn_string(int type, const char *s, int len)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

	ck_assert_int_eq(ASN1_STRING_set(ia5, s, len), 1);
	GENERAL_NAME_set0_value(gn, type, ia5);
	return gn;
}

static void
name_add(X509_NAME *name, int nid, int type, const char *s, int len)
{
	ck_assert_int_eq(X509_NAME_add_entry_by_NID(name, nid, type,
	    (const unsigned char *)s, len, -1, 0), 1);
}

START_TEST(test_identity_made)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	struct ps_identity id;
	GENERAL_NAMES *san;
	X509_NAME *name;
	X509 *x;

	ck_assert_ptr_nonnull(key);

	/* DNS name first, then two e-mails: the first e-mail wins over the
	 * subject's emailAddress; the last CN is the most specific */
	name = X509_NAME_new();
	name_add(name, NID_commonName, MBSTRING_UTF8, "Outer", -1);
	name_add(name, NID_commonName, MBSTRING_UTF8, "J\xc3\xbcrgen Test", -1);
	name_add(name, NID_pkcs9_emailAddress, MBSTRING_ASC, "subj@x.test", -1);
	san = GENERAL_NAMES_new();
	sk_GENERAL_NAME_push(san, gn_string(GEN_DNS, "host.x.test", -1));
	sk_GENERAL_NAME_push(san, gn_string(GEN_EMAIL, "first@x.test", -1));
	sk_GENERAL_NAME_push(san, gn_string(GEN_EMAIL, "second@x.test", -1));
	x = make_cert(key, name, san, 0x1abcdef);
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_OK);
	ck_assert_str_eq(id.email, "first@x.test");
	ck_assert_str_eq(id.common_name, "J\xc3\xbcrgen Test");
	ck_assert_str_eq(id.serial, "01abcdef");
	/* RFC 2253 escapes non-ASCII bytes */
	ck_assert_ptr_nonnull(strstr(id.subject, "CN=J\\C3\\BCrgen Test"));
	ps_identity_clear(&id);
	X509_free(x);
	GENERAL_NAMES_free(san);

	/* no SAN: the subject's emailAddress */
	x = make_cert(key, name, NULL, 2);
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_OK);
	ck_assert_str_eq(id.email, "subj@x.test");
	ck_assert_str_eq(id.serial, "02");
	ps_identity_clear(&id);
	X509_free(x);
	X509_NAME_free(name);

	/* a NUL inside the SAN e-mail ("admin@x.test\0.evil") is refused */
	name = X509_NAME_new();
	name_add(name, NID_commonName, MBSTRING_UTF8, "nul", -1);
	san = GENERAL_NAMES_new();
	sk_GENERAL_NAME_push(san, gn_string(GEN_EMAIL,
	    "admin@x.test\0.evil.test", 23));
	x = make_cert(key, name, san, 3);
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_ERR_INVALID);
	ck_assert_ptr_null(id.email);
	ck_assert_ptr_null(id.common_name);
	ck_assert_ptr_null(id.subject);
	X509_free(x);
	GENERAL_NAMES_free(san);
	X509_NAME_free(name);

	/* ... and inside the subject's emailAddress */
	name = X509_NAME_new();
	name_add(name, NID_pkcs9_emailAddress, V_ASN1_IA5STRING,
	    "admin@x.test\0.evil", 18);
	x = make_cert(key, name, NULL, 4);
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_ERR_INVALID);
	ck_assert_ptr_null(id.email);
	X509_free(x);
	X509_NAME_free(name);

	/* ... and inside the CN */
	name = X509_NAME_new();
	name_add(name, NID_commonName, V_ASN1_UTF8STRING, "root\0x", 6);
	x = make_cert(key, name, NULL, 5);
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_ERR_INVALID);
	X509_free(x);
	X509_NAME_free(name);

	/* a newline in the CN: kept raw in the CN, escaped in the subject */
	name = X509_NAME_new();
	name_add(name, NID_commonName, MBSTRING_UTF8, "evil\nroot", -1);
	x = make_cert(key, name, NULL, 6);
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_OK);
	ck_assert_str_eq(id.common_name, "evil\nroot");
	ck_assert_ptr_null(strchr(id.subject, '\n'));
	ck_assert_ptr_null(id.email);
	ps_identity_clear(&id);
	X509_free(x);
	X509_NAME_free(name);

	/* empty subject */
	name = X509_NAME_new();
	x = make_cert(key, name, NULL, 7);
	ck_assert_int_eq(ps_cert_identity(x, &id), PS_OK);
	ck_assert_str_eq(id.subject, "");
	ck_assert_ptr_null(id.common_name);
	ps_identity_clear(&id);
	X509_free(x);
	X509_NAME_free(name);

	EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------ validity */

START_TEST(test_validity)
{
	X509 *x = tu_load_cert("erin.crt");
	time_t nb = 0, na = 0;

	ck_assert_int_eq(ps_cert_validity(x, &nb, &na), PS_OK);
	ck_assert_int_eq((long long)nb, 1577836800LL);	/* 2020-01-01 */
	ck_assert_int_eq((long long)na, 1609459200LL);	/* 2021-01-01 */
	na = 0;
	ck_assert_int_eq(ps_cert_validity(x, NULL, &na), PS_OK);
	ck_assert_int_eq((long long)na, 1609459200LL);
	ck_assert_int_eq(ps_cert_validity(x, &nb, NULL), PS_OK);
	X509_free(x);

	x = tu_load_cert("frank.crt");
	ck_assert_int_eq(ps_cert_validity(x, &nb, &na), PS_OK);
	ck_assert_int_eq((long long)nb, 4070908800LL);	/* 2099-01-01 */
	ck_assert_int_eq((long long)na, 4102444800LL);	/* 2100-01-01 */
	X509_free(x);

	x = tu_load_cert("alice.crt");
	ck_assert_int_eq(ps_cert_validity(x, &nb, &na), PS_OK);
	ck_assert_int_eq(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), nb), 0);
	ck_assert_int_eq(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), na), 0);
	X509_free(x);
	ck_assert_int_eq(ps_cert_validity(NULL, &nb, &na), PS_ERR_INVALID);
}
END_TEST

/* ------------------------------------------------------------ key types */

START_TEST(test_key_supported_fixtures)
{
	static const char *const ok[] = { "alice.crt", "bob.crt", "carol.crt",
	    "alice2.crt" };
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		X509 *x = tu_load_cert(ok[i]);

		tu_log_reset();
		ck_assert_int_eq(ps_cert_key_supported(&tu_log, x), PS_OK);
		ck_assert_str_eq(tu_log_text(), "");
		X509_free(x);
	}
}
END_TEST

struct keycase {
	const char *type;
	const char *arg;	/* curve, or bits as text */
	int want;
	const char *why;
};

static const struct keycase keycases[] = {
	{ "RSA", "1024", PS_ERR_POLICY, "unsupported key type RSA-1024" },
	{ "RSA", "3072", PS_OK, NULL },
	{ "EC", "P-521", PS_ERR_POLICY, "unsupported key type EC secp521r1" },
	{ "EC", "secp256k1", PS_ERR_POLICY, "unsupported key type EC secp256k1" },
	{ "EC", "P-384", PS_OK, NULL },
	{ "ED25519", NULL, PS_ERR_POLICY, "unsupported key type ED25519" },
};

START_TEST(test_key_supported_made)
{
	const struct keycase *kc = &keycases[_i];
	EVP_PKEY *key;
	X509_NAME *name = X509_NAME_new();
	X509 *x;
	char why[160];

	if (strcmp(kc->type, "RSA") == 0)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
		    (size_t)atoi(kc->arg));
	else if (kc->arg != NULL)
		key = EVP_PKEY_Q_keygen(NULL, NULL, kc->type, kc->arg);
	else
		key = EVP_PKEY_Q_keygen(NULL, NULL, kc->type);
	ck_assert_ptr_nonnull(key);
	name_add(name, NID_commonName, MBSTRING_UTF8, "k", -1);
	x = X509_new();
	ck_assert_int_eq(X509_set_pubkey(x, key), 1);
	ck_assert_int_eq(X509_set_subject_name(x, name), 1);

	tu_log_reset();
	ck_assert_int_eq(ps_cert_key_supported(&tu_log, x), kc->want);
	ck_assert_int_eq(ps_cert_key_check(x, why, sizeof(why)), kc->want);
	if (kc->why != NULL) {
		ck_assert_msg(tu_log_contains(kc->why), "log: %s",
		    tu_log_text());
		ck_assert_ptr_nonnull(strstr(why, kc->why));
	} else {
		ck_assert_str_eq(why, "");
	}
	X509_free(x);
	X509_NAME_free(name);
	EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_key_check_no_key)
{
	X509 *x = X509_new();
	char why[160];

	ck_assert_int_eq(ps_cert_key_check(x, why, sizeof(why)),
	    PS_ERR_POLICY);
	ck_assert_ptr_nonnull(strstr(why, "unsupported key type"));
	ck_assert_int_eq(ps_cert_key_check(NULL, why, sizeof(why)),
	    PS_ERR_POLICY);
	X509_free(x);
}
END_TEST

/* ------------------------------------------------------------ PEM out */

START_TEST(test_to_pem_round_trip)
{
	X509 *x = tu_load_cert("carol.crt");
	unsigned char *file;
	char *pem = NULL;
	size_t len = 0, flen;
	STACK_OF(X509) *sk;

	file = read_fixture("carol.crt", &flen);
	ck_assert_int_eq(ps_cert_to_pem(x, &pem, &len), PS_OK);
	ck_assert_uint_eq(len, strlen(pem));
	ck_assert_uint_eq(len, flen);
	ck_assert_int_eq(memcmp(pem, file, flen), 0);
	sk = load_mem_ok(pem, len, NULL);
	ck_assert_int_eq(X509_cmp(sk_X509_value(sk, 0), x), 0);
	free_certs(sk);
	free(pem);
	free(file);
	X509_free(x);
	ck_assert_int_eq(ps_cert_to_pem(NULL, &pem, &len), PS_ERR_INVALID);
	ck_assert_ptr_null(pem);
}
END_TEST

static Suite *
cert_suite(void)
{
	Suite *s = suite_create("cert");
	TCase *tc;

	tc = tcase_create("formats");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_every_format_file, 0, 3 * N_FORMATS);
	tcase_add_loop_test(tc, test_every_format_mem, 0, 3 * N_FORMATS);
	tcase_add_test(tc, test_pem_with_leading_text_and_bom);
	tcase_add_test(tc, test_pem_bundle_end_entity_first);
	tcase_add_test(tc, test_pem_cert_and_key_together);
	suite_add_tcase(s, tc);

	tc = tcase_create("pkcs12");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pfx_wrong_password);
	tcase_add_loop_test(tc, test_pkcs12_parse_modern_and_legacy, 0, 6);
	tcase_add_test(tc, test_pkcs12_legacy_not_global);
	tcase_add_test(tc, test_pkcs12_parse_errors);
	tcase_add_test(tc, test_pkcs12_made_in_memory);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad_input");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_bad_fixture_files);
	tcase_add_test(tc, test_private_key_files);
	tcase_add_loop_test(tc, test_private_key_der, 0, 3);
	tcase_add_test(tc, test_pem_without_certificate);
	tcase_add_test(tc, test_pem_malformed);
	tcase_add_test(tc, test_der_truncated_and_trailing);
	tcase_add_test(tc, test_der_bitflips);
	tcase_add_test(tc, test_pfx_prefixes);
	tcase_add_test(tc, test_pkcs7_without_certificates);
	tcase_add_test(tc, test_size_limits_and_nulls);
	tcase_add_test(tc, test_load_file_too_large);
	tcase_add_test(tc, test_load_file_symlink);
	suite_add_tcase(s, tc);

	tc = tcase_create("inspect");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_fingerprint_matches_key, 0, 4);
	tcase_add_test(tc, test_fingerprint_differs);
	tcase_add_test(tc, test_identity_fixtures);
	tcase_add_test(tc, test_identity_made);
	tcase_add_test(tc, test_validity);
	tcase_add_test(tc, test_key_supported_fixtures);
	tcase_add_loop_test(tc, test_key_supported_made, 0,
	    (int)(sizeof(keycases) / sizeof(keycases[0])));
	tcase_add_test(tc, test_key_check_no_key);
	tcase_add_test(tc, test_to_pem_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(cert_suite());
}
