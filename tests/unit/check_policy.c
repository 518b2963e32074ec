/*
 * check_policy.c - unit tests for src/cert/policy.c: validity with clock skew,
 * trust anchors from a file, a .p7b and a directory (and intermediates),
 * trust-path checks, cert_policy, key usage / EKU, unsupported keys, bad
 * configuration, and concurrent checks on one shared policy. Revocation
 * has its own suite (check_crl.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <check.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "config.h"
#include "policy.h"
#include "ps_status.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

/* A configuration; ca_fixture names a fixture file for ca_file or NULL. */
static void
cfg_make(struct ps_config *cfg, const char *ca_fixture, const char *eku,
    const char *skew)
{
	ck_assert_int_eq(ps_config_init(cfg), PS_OK);
	if (ca_fixture != NULL) {
		char *path = tu_fixture(ca_fixture);

		tu_cfg_set(cfg, "ca_file", path);
		free(path);
	}
	if (eku != NULL)
		tu_cfg_set(cfg, "eku", eku);
	if (skew != NULL)
		tu_cfg_set(cfg, "clock_skew", skew);
}

static struct ps_policy *
policy_make(const char *ca_fixture, const char *eku, const char *skew)
{
	struct ps_config cfg;
	struct ps_policy *p;

	cfg_make(&cfg, ca_fixture, eku, skew);
	p = tu_policy_new(&cfg);
	ck_assert_ptr_nonnull(p);
	ps_config_free(&cfg);
	return p;
}

/* Check the fixture certificate `name` and compare code and reason. */
static void
expect_check(const struct ps_policy *p, const char *name, time_t now,
    int want, const char *why_want)
{
	X509 *x = tu_load_cert(name);
	char why[256];
	int r;

	memset(why, 'X', sizeof(why));
	r = ps_policy_check(p, x, now, why, sizeof(why));
	ck_assert_msg(r == want, "%s: rc %d (%s) want %d; why: %s", name, r,
	    ps_status_str(r), want, why);
	if (why_want != NULL)
		ck_assert_str_eq(why, why_want);
	else if (want == PS_OK)
		ck_assert_str_eq(why, "");
	X509_free(x);
}

static time_t
not_before_of(const char *name)
{
	X509 *x = tu_load_cert(name);
	time_t nb;

	ck_assert_int_eq(ps_cert_validity(x, &nb, NULL), PS_OK);
	X509_free(x);
	return nb;
}

static time_t
not_after_of(const char *name)
{
	X509 *x = tu_load_cert(name);
	time_t na;

	ck_assert_int_eq(ps_cert_validity(x, NULL, &na), PS_OK);
	X509_free(x);
	return na;
}

/*
 * A leaf issued by the fixture CA with the given key and extensions
 * (ku/eku in openssl.cnf syntax, NULL to leave out).
 */
static X509 *
issue(EVP_PKEY *key, const char *ku, const char *eku)
{
	X509 *ca = tu_load_cert("ca.crt");
	EVP_PKEY *cakey = tu_load_key("ca.key");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	ck_assert_int_eq(X509_set_version(x, 2), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 777), 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	ck_assert_int_eq(X509_NAME_add_entry_by_NID(name, NID_commonName,
	    MBSTRING_UTF8, (const unsigned char *)"made", -1, -1, 0), 1);
	ck_assert_int_eq(X509_set_subject_name(x, name), 1);
	ck_assert_int_eq(X509_set_issuer_name(x, X509_get_subject_name(ca)),
	    1);
	ck_assert_int_eq(X509_set_pubkey(x, key), 1);
	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	if (ku != NULL) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, ku);
		ck_assert_ptr_nonnull(ext);
		ck_assert_int_eq(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	if (eku != NULL) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage, eku);
		ck_assert_ptr_nonnull(ext);
		ck_assert_int_eq(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	ck_assert_int_gt(X509_sign(x, cakey, EVP_sha256()), 0);
	X509_NAME_free(name);
	EVP_PKEY_free(cakey);
	X509_free(ca);
	return x;
}

static EVP_PKEY *
p256(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	ck_assert_ptr_nonnull(k);
	return k;
}

static void
expect_check_x(const struct ps_policy *p, X509 *x, time_t now, int want,
    const char *why_want)
{
	char why[256];
	int r;

	r = ps_policy_check(p, x, now, why, sizeof(why));
	ck_assert_msg(r == want, "rc %d (%s) want %d; why: %s", r,
	    ps_status_str(r), want, why);
	if (why_want != NULL)
		ck_assert_str_eq(why, why_want);
}

/* ------------------------------------------------------------ basics */

START_TEST(test_valid_with_ca)
{
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	time_t now = time(NULL);

	expect_check(p, "alice.crt", now, PS_OK, NULL);
	expect_check(p, "bob.crt", now, PS_OK, NULL);
	expect_check(p, "carol.crt", now, PS_OK, NULL);
	expect_check(p, "alice2.crt", now, PS_OK, NULL);
	expect_check(p, "gina.crt", now, PS_OK, NULL);
	ps_policy_free(p);
}
END_TEST

START_TEST(test_expired)
{
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	struct ps_policy *nca = policy_make(NULL, NULL, NULL);
	time_t now = time(NULL);

	expect_check(p, "erin.crt", now, PS_ERR_EXPIRED, "expired on 2021-01-01");
	expect_check(nca, "erin.crt", now, PS_ERR_EXPIRED,
	    "expired on 2021-01-01");
	/* gina runs out in 30 days */
	expect_check(p, "gina.crt", now + 31 * 86400, PS_ERR_EXPIRED, NULL);
	ps_policy_free(p);
	ps_policy_free(nca);
}
END_TEST

START_TEST(test_not_yet_valid)
{
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	struct ps_policy *nca = policy_make(NULL, NULL, NULL);
	time_t now = time(NULL);

	expect_check(p, "frank.crt", now, PS_ERR_POLICY,
	    "not valid before 2099-01-01");
	expect_check(nca, "frank.crt", now, PS_ERR_POLICY,
	    "not valid before 2099-01-01");
	ps_policy_free(p);
	ps_policy_free(nca);
}
END_TEST

START_TEST(test_wrong_eku)
{
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	struct ps_policy *nca = policy_make(NULL, NULL, NULL);
	time_t now = time(NULL);

	expect_check(p, "henry.crt", now, PS_ERR_POLICY,
	    "wrong key usage: extended key usage lacks clientAuth or "
	    "emailProtection");
	expect_check(nca, "henry.crt", now, PS_ERR_POLICY,
	    "wrong key usage: extended key usage lacks clientAuth or "
	    "emailProtection");
	ps_policy_free(p);
	ps_policy_free(nca);
}
END_TEST

START_TEST(test_untrusted_issuer)
{
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	struct ps_policy *nca = policy_make(NULL, NULL, NULL);
	struct ps_policy *imp = policy_make("imposter-ca.crt", NULL, NULL);
	time_t now = time(NULL);

	expect_check(p, "imposter-alice.crt", now, PS_ERR_POLICY,
	    "issuer not trusted: unable to get local issuer certificate");
	/* without a CA the registry is the trust decision: time etc. only */
	expect_check(nca, "imposter-alice.crt", now, PS_OK, NULL);
	/* and the other way round */
	expect_check(imp, "imposter-alice.crt", now, PS_OK, NULL);
	expect_check(imp, "alice.crt", now, PS_ERR_POLICY,
	    "issuer not trusted: unable to get local issuer certificate");
	ps_policy_free(p);
	ps_policy_free(nca);
	ps_policy_free(imp);
}
END_TEST

/* ------------------------------------------------------------ clock skew */

START_TEST(test_clock_skew_leaf)
{
	/* _i: 0 no CA, 1 with CA (OpenSSL's own time check must agree) */
	const char *ca = _i == 0 ? NULL : "ca.crt";
	struct ps_policy *p = policy_make(ca, NULL, NULL);	/* 300 s */
	struct ps_policy *p0 = policy_make(ca, NULL, "0");
	struct ps_policy *p60 = policy_make(ca, NULL, "60");
	time_t nb = not_before_of("alice.crt");
	time_t na = not_after_of("alice.crt");

	/* the CA was made after alice's notBefore: test the end only with
	 * the CA, the start below in test_clock_skew_chain */
	if (ca == NULL) {
		expect_check(p, "alice.crt", nb - 300, PS_OK, NULL);
		expect_check(p, "alice.crt", nb - 301, PS_ERR_POLICY, NULL);
		expect_check(p0, "alice.crt", nb, PS_OK, NULL);
		expect_check(p0, "alice.crt", nb - 1, PS_ERR_POLICY, NULL);
		expect_check(p60, "alice.crt", nb - 60, PS_OK, NULL);
		expect_check(p60, "alice.crt", nb - 61, PS_ERR_POLICY, NULL);
	}
	expect_check(p, "alice.crt", na + 300, PS_OK, NULL);
	expect_check(p, "alice.crt", na + 301, PS_ERR_EXPIRED, NULL);
	expect_check(p0, "alice.crt", na, PS_OK, NULL);
	expect_check(p0, "alice.crt", na + 1, PS_ERR_EXPIRED, NULL);
	expect_check(p60, "alice.crt", na + 60, PS_OK, NULL);
	expect_check(p60, "alice.crt", na + 61, PS_ERR_EXPIRED, NULL);
	/* erin's boundary, with the date in the reason (the CA did not
	 * exist yet in 2021, so with it the chain fails first) */
	expect_check(p, "erin.crt", 1609459200 + 300,
	    ca == NULL ? PS_OK : PS_ERR_POLICY, NULL);
	expect_check(p, "erin.crt", 1609459200 + 301, PS_ERR_EXPIRED,
	    "expired on 2021-01-01");
	expect_check(p, "erin.crt", 1577836800 - 301, PS_ERR_POLICY,
	    "not valid before 2020-01-01");
	ps_policy_free(p);
	ps_policy_free(p0);
	ps_policy_free(p60);
}
END_TEST

/*
 * The skew applies to the CA too: mkpki.sh makes the CA an hour after
 * alice's notBefore, so just before the CA's start alice is valid but
 * her issuer is not.
 */
START_TEST(test_clock_skew_chain)
{
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	struct ps_policy *p0 = policy_make("ca.crt", NULL, "0");
	time_t ca_nb = not_before_of("ca.crt");

	ck_assert_int_gt((long long)ca_nb - 400,
	    (long long)not_before_of("alice.crt"));
	expect_check(p, "alice.crt", ca_nb - 300, PS_OK, NULL);
	expect_check(p, "alice.crt", ca_nb - 301, PS_ERR_POLICY,
	    "issuer not trusted: certificate is not yet valid");
	expect_check(p0, "alice.crt", ca_nb, PS_OK, NULL);
	expect_check(p0, "alice.crt", ca_nb - 1, PS_ERR_POLICY,
	    "issuer not trusted: certificate is not yet valid");
	ps_policy_free(p);
	ps_policy_free(p0);
}
END_TEST

/* ------------------------------------------------------------ EKU config */

START_TEST(test_eku_config)
{
	struct ps_policy *p;
	time_t now = time(NULL);

	p = policy_make("ca.crt", "any", NULL);
	expect_check(p, "henry.crt", now, PS_OK, NULL);
	ps_policy_free(p);

	p = policy_make("ca.crt", "clientAuth", NULL);
	expect_check(p, "alice.crt", now, PS_OK, NULL);
	expect_check(p, "henry.crt", now, PS_ERR_POLICY,
	    "wrong key usage: extended key usage lacks clientAuth");
	ps_policy_free(p);

	p = policy_make(NULL, " emailProtection , clientAuth ", NULL);
	expect_check(p, "bob.crt", now, PS_OK, NULL);
	expect_check(p, "henry.crt", now, PS_ERR_POLICY,
	    "wrong key usage: extended key usage lacks clientAuth or "
	    "emailProtection");
	ps_policy_free(p);

	p = policy_make(NULL, "EMAILPROTECTION", NULL);
	expect_check(p, "henry.crt", now, PS_ERR_POLICY,
	    "wrong key usage: extended key usage lacks emailProtection");
	ps_policy_free(p);
}
END_TEST

START_TEST(test_eku_only_one_allowed)
{
	EVP_PKEY *k = p256();
	X509 *email_only = issue(k, "digitalSignature", "emailProtection");
	X509 *client_only = issue(k, "digitalSignature", "clientAuth");
	X509 *no_eku = issue(k, "digitalSignature", NULL);
	X509 *any_eku = issue(k, "digitalSignature", "anyExtendedKeyUsage");
	struct ps_policy *p = policy_make("ca.crt", "clientAuth", NULL);
	struct ps_policy *d = policy_make("ca.crt", NULL, NULL);
	time_t now = time(NULL);

	expect_check_x(p, email_only, now, PS_ERR_POLICY,
	    "wrong key usage: extended key usage lacks clientAuth");
	expect_check_x(p, client_only, now, PS_OK, "");
	expect_check_x(p, no_eku, now, PS_OK, "");
	/* anyExtendedKeyUsage is not one of the named usages */
	expect_check_x(p, any_eku, now, PS_ERR_POLICY, NULL);
	expect_check_x(d, email_only, now, PS_OK, "");
	expect_check_x(d, client_only, now, PS_OK, "");
	ps_policy_free(p);
	ps_policy_free(d);
	X509_free(email_only);
	X509_free(client_only);
	X509_free(no_eku);
	X509_free(any_eku);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_eku_config_errors)
{
	static const char *const bad[] = { "bogus", "serverAuth",
	    "clientAuth,", ",clientAuth", "clientAuth,,any", " ", "client Auth" };
	struct ps_config cfg;
	struct ps_policy *p = (struct ps_policy *)1;

	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	free(cfg.eku);
	cfg.eku = strdup(bad[_i]);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_INVALID);
	ck_assert_ptr_null(p);
	ck_assert_msg(tu_log_contains("eku: "), "log: %s", tu_log_text());
	ps_config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------ key usage */

START_TEST(test_key_usage)
{
	EVP_PKEY *k = p256();
	X509 *ke_only = issue(k, "keyEncipherment", "clientAuth");
	X509 *no_ku = issue(k, NULL, "clientAuth");
	X509 *ds = issue(k, "critical,digitalSignature,nonRepudiation", NULL);
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	struct ps_policy *nca = policy_make(NULL, NULL, NULL);
	time_t now = time(NULL);

	expect_check_x(p, ke_only, now, PS_ERR_POLICY,
	    "wrong key usage: digitalSignature not allowed");
	expect_check_x(nca, ke_only, now, PS_ERR_POLICY,
	    "wrong key usage: digitalSignature not allowed");
	expect_check_x(p, no_ku, now, PS_OK, "");
	expect_check_x(p, ds, now, PS_OK, "");
	/* the CA certificate itself: keyCertSign only */
	expect_check(nca, "ca.crt", now, PS_ERR_POLICY,
	    "wrong key usage: digitalSignature not allowed");
	expect_check(p, "ca.crt", now, PS_ERR_POLICY,
	    "wrong key usage: digitalSignature not allowed");
	ps_policy_free(p);
	ps_policy_free(nca);
	X509_free(ke_only);
	X509_free(no_ku);
	X509_free(ds);
	EVP_PKEY_free(k);
}
END_TEST

/* A keyUsage extension whose value does not decode is not "absent". */
START_TEST(test_malformed_extension)
{
	EVP_PKEY *k = p256(), *cakey = tu_load_key("ca.key");
	X509 *x = issue(k, NULL, NULL);
	ASN1_OCTET_STRING *junk = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext;
	struct ps_policy *nca = policy_make(NULL, NULL, NULL);
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	char why[256];

	ck_assert_int_eq(ASN1_OCTET_STRING_set(junk,
	    (const unsigned char *)"\x04\x02\xff", 3), 1);
	ext = X509_EXTENSION_create_by_NID(NULL, NID_key_usage, 1, junk);
	ck_assert_ptr_nonnull(ext);
	ck_assert_int_eq(X509_add_ext(x, ext, -1), 1);
	ck_assert_int_gt(X509_sign(x, cakey, EVP_sha256()), 0);
	expect_check_x(nca, x, time(NULL), PS_ERR_POLICY,
	    "wrong key usage: certificate extensions are malformed");
	/* OpenSSL's chain check refuses it as well */
	ck_assert_int_eq(ps_policy_check(p, x, time(NULL), why, sizeof(why)),
	    PS_ERR_POLICY);
	ck_assert_ptr_nonnull(strstr(why, "issuer not trusted: "));
	ps_policy_free(nca);
	ps_policy_free(p);
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(junk);
	X509_free(x);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_unsupported_key)
{
	EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	X509 *a = issue(rsa1024, "digitalSignature", "clientAuth");
	X509 *b = issue(p521, "digitalSignature", "clientAuth");
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	time_t now = time(NULL);

	expect_check_x(p, a, now, PS_ERR_POLICY,
	    "unsupported key type RSA-1024 (need 2048 to 4096 bits)");
	expect_check_x(p, b, now, PS_ERR_POLICY,
	    "unsupported key type EC secp521r1 (need P-256 or P-384)");
	ps_policy_free(p);
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(p521);
}
END_TEST

START_TEST(test_null_arguments)
{
	struct ps_policy *p = policy_make(NULL, NULL, NULL), *q = NULL;
	X509 *x = tu_load_cert("alice.crt");
	char why[64];

	ck_assert_int_eq(ps_policy_check(p, NULL, time(NULL), why,
	    sizeof(why)), PS_ERR_INVALID);
	ck_assert_str_eq(why, "no certificate");
	ck_assert_int_eq(ps_policy_check(NULL, x, time(NULL), why,
	    sizeof(why)), PS_ERR_INTERNAL);
	/* no room for a reason is fine, the code still tells */
	ck_assert_int_eq(ps_policy_check(p, x, time(NULL), NULL, 0), PS_OK);
	ck_assert_int_eq(ps_policy_check(p, x, 0, NULL, 0), PS_ERR_POLICY);
	/* a short buffer is truncated, still terminated */
	ck_assert_int_eq(ps_policy_check(p, x, 0, why, 8), PS_ERR_POLICY);
	ck_assert_str_eq(why, "not val");
	ck_assert_int_eq(ps_policy_new(NULL, &tu_log, &q), PS_ERR_INTERNAL);
	ck_assert_ptr_null(q);
	ps_policy_free(NULL);
	ps_policy_free(p);
	X509_free(x);
}
END_TEST

/* ------------------------------------------------------------ anchors */

START_TEST(test_ca_file_p7b)
{
	/* alice.p7b holds alice and the root: the root anchors the chain */
	struct ps_policy *p = policy_make("alice.p7b", NULL, NULL);
	struct ps_policy *d = policy_make("bob.p7b.der", NULL, NULL);
	time_t now = time(NULL);

	expect_check(p, "alice.crt", now, PS_OK, NULL);
	expect_check(p, "carol.crt", now, PS_OK, NULL);
	expect_check(p, "imposter-alice.crt", now, PS_ERR_POLICY,
	    "issuer not trusted: unable to get local issuer certificate");
	expect_check(d, "alice.crt", now, PS_OK, NULL);
	expect_check(d, "imposter-alice.crt", now, PS_ERR_POLICY, NULL);
	ps_policy_free(p);
	ps_policy_free(d);
}
END_TEST

/*
 * A leaf alone in ca_file is not a trust anchor for itself: the chain
 * must reach a root (no partial chains).
 */
START_TEST(test_no_partial_chain)
{
	struct ps_policy *p = policy_make("alice.crt", NULL, NULL);

	expect_check(p, "alice.crt", time(NULL), PS_ERR_POLICY,
	    "issuer not trusted: unable to get local issuer certificate");
	expect_check(p, "bob.crt", time(NULL), PS_ERR_POLICY, NULL);
	ps_policy_free(p);
}
END_TEST

/* A bundle of both CAs trusts both; PEM concatenation. */
START_TEST(test_ca_file_bundle)
{
	char *dir = tu_mkdtemp(), path[512], *a, *b;
	FILE *out, *in;
	struct ps_config cfg;
	struct ps_policy *p = NULL;
	char buf[4096];
	size_t n;
	int i;

	snprintf(path, sizeof(path), "%s/bundle.pem", dir);
	a = tu_fixture("ca.crt");
	b = tu_fixture("imposter-ca.crt");
	out = fopen(path, "w");
	ck_assert_ptr_nonnull(out);
	for (i = 0; i < 2; i++) {
		in = fopen(i == 0 ? a : b, "r");
		ck_assert_ptr_nonnull(in);
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
		fclose(in);
	}
	fclose(out);
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_file", path);
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	ps_config_free(&cfg);
	/* everything is in memory now: the files may go */
	tu_rmrf(dir);
	expect_check(p, "alice.crt", time(NULL), PS_OK, NULL);
	expect_check(p, "imposter-alice.crt", time(NULL), PS_OK, NULL);
	ps_policy_free(p);
	free(a);
	free(b);
	free(dir);
}
END_TEST

START_TEST(test_ca_dir)
{
	char *dir = tu_mkdtemp(), path[512], link_to[512];
	struct ps_config cfg;
	struct ps_policy *p = NULL;
	time_t now = time(NULL);

	snprintf(path, sizeof(path), "%s/root.pem", dir);
	tu_copy_fixture("ca.crt", path);
	snprintf(link_to, sizeof(link_to), "%s/abcd1234.0", dir);
	ck_assert_int_eq(symlink(path, link_to), 0);
	snprintf(path, sizeof(path), "%s/README", dir);
	tu_write_file(path, "trust anchors\n", 14, 0644);
	snprintf(path, sizeof(path), "%s/dangling.0", dir);
	ck_assert_int_eq(symlink("/nonexistent/ps-unit", path), 0);
	snprintf(path, sizeof(path), "%s/subdir", dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);

	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_dir", dir);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	ps_config_free(&cfg);
	ck_assert_msg(tu_log_contains("README: not a certificate file"),
	    "log: %s", tu_log_text());
	ck_assert(tu_log_contains("(dangling link)"));
	tu_rmrf(dir);
	expect_check(p, "alice.crt", now, PS_OK, NULL);
	expect_check(p, "imposter-alice.crt", now, PS_ERR_POLICY,
	    "issuer not trusted: unable to get local issuer certificate");
	ps_policy_free(p);
	free(dir);
}
END_TEST

/* ca_file and ca_dir together: anchors from both. */
START_TEST(test_ca_file_and_dir)
{
	char *dir = tu_mkdtemp(), path[512], *ca;
	struct ps_config cfg;
	struct ps_policy *p = NULL;

	snprintf(path, sizeof(path), "%s/imposter.der", dir);
	tu_copy_fixture("imposter-ca.crt", path);
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	ca = tu_fixture("ca.crt");
	tu_cfg_set(&cfg, "ca_file", ca);
	tu_cfg_set(&cfg, "ca_dir", dir);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	expect_check(p, "alice.crt", time(NULL), PS_OK, NULL);
	expect_check(p, "imposter-alice.crt", time(NULL), PS_OK, NULL);
	ps_policy_free(p);
	ps_config_free(&cfg);
	tu_rmrf(dir);
	free(dir);
	free(ca);
}
END_TEST

START_TEST(test_ca_config_errors)
{
	char *dir = tu_mkdtemp(), path[512], *f;
	struct ps_config cfg;
	struct ps_policy *p = (struct ps_policy *)1;

	/* a missing ca_file must never read as "not found" (nouserok) */
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	snprintf(path, sizeof(path), "%s/missing.pem", dir);
	tu_cfg_set(&cfg, "ca_file", path);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_IO);
	ck_assert_ptr_null(p);
	ck_assert(tu_log_contains("no such file"));
	ck_assert(tu_log_contains("cannot load trust anchors"));
	ps_config_free(&cfg);

	/* garbage, empty, a private key */
	f = tu_fixture("garbage.bin");
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_file", f);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_INVALID);
	ck_assert(tu_log_contains("not a certificate"));
	ps_config_free(&cfg);
	free(f);

	f = tu_fixture("empty.cer");
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_file", f);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_INVALID);
	ck_assert(tu_log_contains("empty file"));
	ps_config_free(&cfg);
	free(f);

	f = tu_fixture("ca.key");
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_file", f);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_INVALID);
	ck_assert(tu_log_contains("contains a private key"));
	ps_config_free(&cfg);
	free(f);

	/* a .pfx needs a password we do not have */
	f = tu_fixture("alice.pfx");
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_file", f);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_INVALID);
	ck_assert(tu_log_contains("wrong password"));
	ps_config_free(&cfg);
	free(f);

	/* an empty ca_dir and a missing one */
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_dir", dir);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_INVALID);
	ck_assert(tu_log_contains("no CA certificate found in"));
	ps_config_free(&cfg);

	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_dir", path);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_IO);
	ck_assert(tu_log_contains("cannot open"));
	ps_config_free(&cfg);

	/* a directory with only junk */
	snprintf(path, sizeof(path), "%s/junk.pem", dir);
	tu_write_file(path, "junk", 4, 0644);
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_dir", dir);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_INVALID);
	ck_assert(tu_log_contains("junk.pem: not a certificate file"));
	ck_assert(tu_log_contains("no CA certificate found in"));
	ps_config_free(&cfg);

	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* cert_policy: what it turns on and off, and what it refuses. */
START_TEST(test_cert_policy)
{
	struct ps_policy *p;
	struct ps_config cfg;
	time_t now = time(NULL);

	/* no_ca: anchors configured but the chain deliberately not checked */
	cfg_make(&cfg, "ca.crt", NULL, NULL);
	tu_cfg_set(&cfg, "cert_policy", "no_ca");
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	expect_check(p, "imposter-alice.crt", now, PS_OK, NULL);
	expect_check(p, "erin.crt", now, PS_ERR_EXPIRED, NULL);
	expect_check(p, "henry.crt", now, PS_ERR_POLICY, NULL);
	ck_assert(!ps_policy_checks_revocation(p));
	ps_policy_free(p);
	ps_config_free(&cfg);

	/* ca, spelled out, with blanks */
	cfg_make(&cfg, "ca.crt", NULL, NULL);
	tu_cfg_set(&cfg, "cert_policy", " ca , no_crl ,signature");
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	expect_check(p, "imposter-alice.crt", now, PS_ERR_POLICY,
	    "issuer not trusted: unable to get local issuer certificate");
	ps_policy_free(p);
	ps_config_free(&cfg);

	/* default with a CA: the chain is checked (strict) */
	p = policy_make("ca.crt", NULL, NULL);
	expect_check(p, "imposter-alice.crt", now, PS_ERR_POLICY, NULL);
	ck_assert(!ps_policy_checks_revocation(p));	/* no crl_dir */
	ps_policy_free(p);
}
END_TEST

struct cp_case {
	const char *ca;		/* fixture or NULL */
	bool crl_dir;
	const char *crl;	/* crl= or NULL */
	const char *cert_policy;
	int want;
	const char *log;
};

static const struct cp_case cp_cases[] = {
	{ "ca.crt", false, NULL, "cq", PS_ERR_INVALID, "unknown item 'cq'" },
	{ "ca.crt", false, NULL, "ca,,crl", PS_ERR_INVALID, "empty item" },
	{ "ca.crt", false, NULL, "ca,no_ca", PS_ERR_INVALID,
	    "ca and no_ca contradict" },
	{ "ca.crt", true, NULL, "none,crl", PS_ERR_INVALID,
	    "crl and no_crl contradict" },
	{ "ca.crt", true, NULL, "ocsp_on", PS_ERR_INVALID,
	    "OCSP is not supported" },
	{ "ca.crt", true, NULL, "crl_online", PS_ERR_INVALID,
	    "run personalsign-enroll crl-update" },
	{ NULL, false, NULL, "ca", PS_ERR_INVALID,
	    "cert_policy=ca needs ca_file or ca_dir" },
	{ "ca.crt", false, NULL, "crl", PS_ERR_INVALID,
	    "cert_policy=crl needs crl_dir" },
	{ "ca.crt", false, "require", NULL, PS_ERR_INVALID,
	    "crl=require needs crl_dir" },
	{ "ca.crt", true, "require", "no_crl", PS_ERR_INVALID,
	    "contradicts crl=require" },
	{ "ca.crt", true, "off", "crl", PS_ERR_INVALID,
	    "cert_policy=crl contradicts crl=off" },
	{ NULL, true, NULL, NULL, PS_ERR_INVALID,
	    "CRL signatures are verified with the CAs" },
	{ "ca.crt", true, NULL, "no_ca", PS_ERR_INVALID,
	    "(cert_policy=no_ca)" },
	/* fine: revocation off, or nothing to revoke with */
	{ "ca.crt", true, "off", NULL, PS_OK, NULL },
	{ NULL, true, "off", NULL, PS_OK, NULL },
	{ "ca.crt", true, NULL, "no_crl", PS_OK, NULL },
	{ "ca.crt", true, "ifpresent", "crl_offline", PS_OK, NULL },
	{ NULL, false, NULL, "none", PS_OK, NULL },
};

START_TEST(test_cert_policy_errors)
{
	const struct cp_case *c = &cp_cases[_i];
	char *dir = tu_mkdtemp();
	struct ps_config cfg;
	struct ps_policy *p = (struct ps_policy *)1;
	int r;

	cfg_make(&cfg, c->ca, NULL, NULL);
	if (c->crl_dir)
		tu_cfg_set(&cfg, "crl_dir", dir);
	if (c->crl != NULL)
		tu_cfg_set(&cfg, "crl", c->crl);
	if (c->cert_policy != NULL)
		tu_cfg_set(&cfg, "cert_policy", c->cert_policy);
	tu_log_reset();
	r = ps_policy_new(&cfg, &tu_log, &p);
	ck_assert_msg(r == c->want, "case %d: %s; log: %s", _i,
	    ps_status_str(r), tu_log_text());
	if (c->log != NULL)
		ck_assert_msg(tu_log_contains(c->log), "case %d: log: %s", _i,
		    tu_log_text());
	if (r == PS_OK) {
		expect_check(p, "alice.crt", time(NULL), PS_OK, NULL);
		ps_policy_free(p);
	} else {
		ck_assert_ptr_null(p);
	}
	ps_config_free(&cfg);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/*
 * The trust paths decide who may log in: a ca_file, ca_dir or crl_dir
 * that someone other than root could change is refused, like the
 * registry.
 */
START_TEST(test_trust_paths)
{
	char *dir = tu_mkdtemp(), sub[512], path[600], link_to[600];
	struct ps_config cfg;
	struct ps_policy *p = NULL;

	snprintf(sub, sizeof(sub), "%s/trust", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	snprintf(path, sizeof(path), "%s/roots.pem", sub);
	tu_copy_fixture("ca.crt", path);

	/* a group-writable file */
	ck_assert_int_eq(chmod(path, 0664), 0);
	cfg_make(&cfg, NULL, NULL, NULL);
	tu_cfg_set(&cfg, "ca_file", path);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_UNSAFE);
	ck_assert(tu_log_contains("writable by group or others"));
	ck_assert(tu_log_contains("refusing to trust it"));
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	ps_policy_free(p);

	/* a world-writable directory above it */
	ck_assert_int_eq(chmod(sub, 0777), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_UNSAFE);
	ps_config_free(&cfg);

	/* the same for ca_dir */
	cfg_make(&cfg, NULL, NULL, NULL);
	tu_cfg_set(&cfg, "ca_dir", sub);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_UNSAFE);
	ck_assert_int_eq(chmod(sub, 0755), 0);
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	ps_policy_free(p);

	/* a file in ca_dir that others may write is no anchor */
	ck_assert_int_eq(chmod(path, 0666), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_INVALID);
	ck_assert(tu_log_contains("owned by uid 0 or writable by others") ||
	    tu_log_contains("writable by others"));
	ck_assert_int_eq(chmod(path, 0644), 0);
	ps_config_free(&cfg);

	/* a symlinked ca_file is judged by its target too */
	snprintf(link_to, sizeof(link_to), "%s/link.pem", dir);
	ck_assert_int_eq(symlink(path, link_to), 0);
	cfg_make(&cfg, NULL, NULL, NULL);
	tu_cfg_set(&cfg, "ca_file", link_to);
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	ps_policy_free(p);
	ck_assert_int_eq(chmod(path, 0646), 0);
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_UNSAFE);
	ps_config_free(&cfg);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A CA's intermediates as a .p7b or PEM bundle "just work"; without the
 * root the chain is incomplete. */
START_TEST(test_intermediates)
{
	struct ps_policy *p7 = policy_make("chain.p7b", NULL, NULL);
	struct ps_policy *pem = policy_make("chain.pem", NULL, NULL);
	struct ps_policy *root = policy_make("ca.crt", NULL, NULL);
	struct ps_policy *only = policy_make("int-ca.crt", NULL, NULL);
	time_t now = time(NULL);

	expect_check(p7, "dave.crt", now, PS_OK, NULL);
	expect_check(p7, "alice.crt", now, PS_OK, NULL);
	expect_check(pem, "dave.crt", now, PS_OK, NULL);
	expect_check(root, "dave.crt", now, PS_ERR_POLICY,
	    "issuer not trusted: unable to get local issuer certificate");
	expect_check(only, "dave.crt", now, PS_ERR_POLICY, NULL);
	ps_policy_free(p7);
	ps_policy_free(pem);
	ps_policy_free(root);
	ps_policy_free(only);
}
END_TEST

/* The policy keeps its own copies: the config may be freed. */
START_TEST(test_config_copied)
{
	struct ps_config cfg;
	struct ps_policy *p = NULL;
	char *ca = tu_fixture("ca.crt");

	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_file", ca);
	tu_cfg_set(&cfg, "eku", "any");
	tu_cfg_set(&cfg, "clock_skew", "0");
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	ps_config_free(&cfg);
	memset(&cfg, 0xa5, sizeof(cfg));
	expect_check(p, "henry.crt", time(NULL), PS_OK, NULL);
	expect_check(p, "alice.crt", not_after_of("alice.crt") + 1,
	    PS_ERR_EXPIRED, NULL);
	ps_policy_free(p);
	free(ca);
}
END_TEST

/* ------------------------------------------------------------ threads */

struct thread_arg {
	const struct ps_policy *policy;
	X509 *good, *bad, *old;
	int failures;
};

static void *
check_thread(void *v)
{
	struct thread_arg *a = v;
	time_t now = time(NULL);
	char why[256];
	int i;

	for (i = 0; i < 100; i++) {
		if (ps_policy_check(a->policy, a->good, now, why,
		    sizeof(why)) != PS_OK)
			a->failures++;
		if (ps_policy_check(a->policy, a->bad, now, why,
		    sizeof(why)) != PS_ERR_POLICY ||
		    strstr(why, "issuer not trusted") == NULL)
			a->failures++;
		if (ps_policy_check(a->policy, a->old, now, why,
		    sizeof(why)) != PS_ERR_EXPIRED)
			a->failures++;
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct ps_policy *p = policy_make("ca.crt", NULL, NULL);
	struct thread_arg args[8];
	pthread_t t[8];
	int i;

	for (i = 0; i < 8; i++) {
		args[i].policy = p;
		/* each thread its own X509 objects, as each login has */
		args[i].good = tu_load_cert(i % 2 ? "alice.crt" : "bob.crt");
		args[i].bad = tu_load_cert("imposter-alice.crt");
		args[i].old = tu_load_cert("erin.crt");
		args[i].failures = 0;
		ck_assert_int_eq(pthread_create(&t[i], NULL, check_thread,
		    &args[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert_int_eq(args[i].failures, 0);
		X509_free(args[i].good);
		X509_free(args[i].bad);
		X509_free(args[i].old);
	}
	ps_policy_free(p);
}
END_TEST

static Suite *
policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc;

	tc = tcase_create("check");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_valid_with_ca);
	tcase_add_test(tc, test_expired);
	tcase_add_test(tc, test_not_yet_valid);
	tcase_add_test(tc, test_wrong_eku);
	tcase_add_test(tc, test_untrusted_issuer);
	tcase_add_loop_test(tc, test_clock_skew_leaf, 0, 2);
	tcase_add_test(tc, test_clock_skew_chain);
	tcase_add_test(tc, test_eku_config);
	tcase_add_test(tc, test_eku_only_one_allowed);
	tcase_add_loop_test(tc, test_eku_config_errors, 0, 7);
	tcase_add_test(tc, test_key_usage);
	tcase_add_test(tc, test_malformed_extension);
	tcase_add_test(tc, test_unsupported_key);
	tcase_add_test(tc, test_null_arguments);
	suite_add_tcase(s, tc);

	tc = tcase_create("anchors");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ca_file_p7b);
	tcase_add_test(tc, test_no_partial_chain);
	tcase_add_test(tc, test_ca_file_bundle);
	tcase_add_test(tc, test_ca_dir);
	tcase_add_test(tc, test_ca_file_and_dir);
	tcase_add_test(tc, test_ca_config_errors);
	tcase_add_test(tc, test_cert_policy);
	tcase_add_loop_test(tc, test_cert_policy_errors, 0,
	    sizeof(cp_cases) / sizeof(cp_cases[0]));
	tcase_add_test(tc, test_trust_paths);
	tcase_add_test(tc, test_intermediates);
	tcase_add_test(tc, test_config_copied);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(policy_suite());
}
