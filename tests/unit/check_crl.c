/*
 * check_crl.c - unit tests for src/cert/crl.c and the revocation half of
 * src/cert/policy.c: the index crl-update builds (PEM and DER CRLs, several
 * issuers, an intermediate), lookups through it and without it (a CRL
 * dropped in after the last crl-update still counts), stale and missing
 * CRLs under crl=require and crl=ifpresent, damaged indexes failing
 * closed, untrusted directories, and a CRL of many serials checked
 * against OpenSSL's own lookup.
 */
#include <errno.h>
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
#include "crl.h"
#include "policy.h"
#include "ps_status.h"
#include "testutil.h"
#include "util.h"

#define ROOT_NAME "O=PSTest,CN=PSTest Root CA"

/* ------------------------------------------------------------ helpers */

static void
copy_fixture(const char *name, const char *dir, const char *as)
{
	char to[1024];

	snprintf(to, sizeof(to), "%s/%s", dir, as != NULL ? as : name);
	tu_copy_fixture(name, to);
}

/* A policy with ca_file=fixture CA, crl_dir=dir and crl=mode. */
static struct ps_policy *
crl_policy(const char *ca, const char *dir, const char *mode)
{
	struct ps_config cfg;
	struct ps_policy *p;
	char *path = tu_fixture(ca);

	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_file", path);
	tu_cfg_set(&cfg, "crl_dir", dir);
	if (mode != NULL)
		tu_cfg_set(&cfg, "crl", mode);
	p = tu_policy_new(&cfg);
	ps_config_free(&cfg);
	free(path);
	return p;
}

static int
update(struct ps_policy *p, struct ps_crl_update_report *rep)
{
	tu_log_reset();
	return ps_policy_crl_update(p, &tu_log, rep);
}

static void
expect(const struct ps_policy *p, const char *name, int want,
    const char *why_want)
{
	X509 *x = tu_load_cert(name);
	char why[512];
	int r;

	r = ps_policy_check(p, x, time(NULL), why, sizeof(why));
	ck_assert_msg(r == want, "%s: rc %d (%s) want %d; why: %s; log: %s",
	    name, r, ps_status_str(r), want, why, tu_log_text());
	if (why_want != NULL)
		ck_assert_msg(strstr(why, why_want) != NULL,
		    "%s: why \"%s\" lacks \"%s\"", name, why, why_want);
	X509_free(x);
}

/* A CRL by the fixture CA `ca` revoking `n` serials (serials[i], or
 * first..first+n-1 when serials is NULL), written to path. */
static void
make_crl(const char *ca, const char *path, const long *serials, long n,
    long first, time_t last, time_t next, int reason, bool der)
{
	char name[64];
	X509 *cax;
	EVP_PKEY *key;
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	FILE *f;
	long i;

	snprintf(name, sizeof(name), "%s.crt", ca);
	cax = tu_load_cert(name);
	snprintf(name, sizeof(name), "%s.key", ca);
	key = tu_load_key(name);
	ck_assert_ptr_nonnull(crl);
	ck_assert_int_eq(X509_CRL_set_version(crl, 1), 1);
	ck_assert_int_eq(X509_CRL_set_issuer_name(crl,
	    X509_get_subject_name(cax)), 1);
	ck_assert_ptr_nonnull(ASN1_TIME_set(t, last));
	ck_assert_int_eq(X509_CRL_set1_lastUpdate(crl, t), 1);
	ck_assert_ptr_nonnull(ASN1_TIME_set(t, next));
	ck_assert_int_eq(X509_CRL_set1_nextUpdate(crl, t), 1);
	for (i = 0; i < n; i++) {
		X509_REVOKED *rev = X509_REVOKED_new();
		ASN1_INTEGER *s = ASN1_INTEGER_new();

		ck_assert_int_eq(ASN1_INTEGER_set(s, serials != NULL ?
		    serials[i] : first + i), 1);
		ck_assert_int_eq(X509_REVOKED_set_serialNumber(rev, s), 1);
		ck_assert_ptr_nonnull(ASN1_TIME_set(t, last - 3600));
		ck_assert_int_eq(X509_REVOKED_set_revocationDate(rev, t), 1);
		if (reason >= 0) {
			ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();

			ck_assert_int_eq(ASN1_ENUMERATED_set(e, reason), 1);
			ck_assert_int_eq(X509_REVOKED_add1_ext_i2d(rev,
			    NID_crl_reason, e, 0, 0), 1);
			ASN1_ENUMERATED_free(e);
		}
		ck_assert_int_eq(X509_CRL_add0_revoked(crl, rev), 1);
		ASN1_INTEGER_free(s);
	}
	ck_assert_int_eq(X509_CRL_sort(crl), 1);
	ck_assert_int_gt(X509_CRL_sign(crl, key, EVP_sha256()), 0);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	if (der)
		ck_assert_int_eq(i2d_X509_CRL_fp(f, crl), 1);
	else
		ck_assert_int_eq(PEM_write_X509_CRL(f, crl), 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0644), 0);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	EVP_PKEY_free(key);
	X509_free(cax);
}

static long
serial_of(const char *name)
{
	X509 *x = tu_load_cert(name);
	long v = ASN1_INTEGER_get(X509_get0_serialNumber(x));

	X509_free(x);
	return v;
}

static bool
exists(const char *dir, const char *name)
{
	char path[1024];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

/* ------------------------------------------------------------ tests */

START_TEST(test_update_and_lookup)
{
	char *dir = tu_mkdtemp();
	struct ps_crl_update_report rep;
	struct ps_policy *p;

	copy_fixture("ca.crl", dir, NULL);
	p = crl_policy("ca.crt", dir, "require");
	ck_assert_int_eq(update(p, &rep), PS_OK);
	ck_assert_uint_eq(rep.files, 1);
	ck_assert_uint_eq(rep.indexed, 1);
	ck_assert_uint_eq(rep.serials, 1);
	ck_assert(exists(dir, ".index/MANIFEST"));
	tu_log_reset();
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked on ");
	expect(p, "rose.crt", PS_ERR_POLICY, "(keyCompromise)");
	expect(p, "alice.crt", PS_OK, NULL);
	expect(p, "bob.crt", PS_OK, NULL);
	/* indexed: nothing was read at login */
	ck_assert_msg(!tu_log_contains("reading it at this login"), "%s",
	    tu_log_text());
	/* still refused for an untrusted issuer, before any CRL */
	expect(p, "imposter-alice.crt", PS_ERR_POLICY, "issuer not trusted");
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* The reason line names the date exactly. */
START_TEST(test_revoked_date)
{
	char *dir = tu_mkdtemp(), path[1024], want[64], date[11];
	time_t last = time(NULL) - 86400 * 3;
	long s = serial_of("bob.crt");
	struct ps_policy *p;

	snprintf(path, sizeof(path), "%s/bob.crl", dir);
	make_crl("ca", path, &s, 1, 0, last, time(NULL) + 86400, -1, false);
	p = crl_policy("ca.crt", dir, "require");
	ck_assert_int_eq(update(p, NULL), PS_OK);
	ps_format_date(last - 3600, date);
	snprintf(want, sizeof(want), "revoked on %s", date);
	expect(p, "bob.crt", PS_ERR_POLICY, want);
	{
		X509 *x = tu_load_cert("bob.crt");
		char why[256];

		ck_assert_int_eq(ps_policy_check(p, x, time(NULL), why,
		    sizeof(why)), PS_ERR_POLICY);
		ck_assert_str_eq(why, want);	/* no reason given */
		X509_free(x);
	}
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A CRL dropped in without crl-update is read at login, with a warning. */
START_TEST(test_unindexed_is_read)
{
	char *dir = tu_mkdtemp(), path[1024];
	struct ps_policy *p;
	long s;

	copy_fixture("ca.crl", dir, NULL);
	p = crl_policy("ca.crt", dir, "require");
	tu_log_reset();
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked on ");
	ck_assert(tu_log_contains("never been indexed"));
	expect(p, "alice.crt", PS_OK, NULL);

	/* indexed, then replaced in place by a CRL that also revokes alice */
	ck_assert_int_eq(update(p, NULL), PS_OK);
	sleep(1);	/* a new mtime even on coarse file systems */
	s = serial_of("alice.crt");
	snprintf(path, sizeof(path), "%s/ca.crl", dir);
	make_crl("ca", path, &s, 1, 0, time(NULL) - 10, time(NULL) + 86400,
	    1, false);
	tu_log_reset();
	expect(p, "alice.crt", PS_ERR_POLICY, "(keyCompromise)");
	ck_assert(tu_log_contains("is new or changed since the last "
	    "crl-update"));
	/* the old index must not speak for the new file: rose is not on it */
	expect(p, "rose.crt", PS_OK, NULL);
	ck_assert_int_eq(update(p, NULL), PS_OK);
	tu_log_reset();
	expect(p, "alice.crt", PS_ERR_POLICY, "revoked");
	expect(p, "rose.crt", PS_OK, NULL);
	ck_assert(!tu_log_contains("since the last crl-update"));
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* Intermediate: leaf checked against int-ca's DER CRL, int-ca against
 * the root's CRL; both are required under crl=require. */
START_TEST(test_intermediate_chain)
{
	char *dir = tu_mkdtemp();
	struct ps_crl_update_report rep;
	struct ps_policy *p;

	copy_fixture("int-ca.crl.der", dir, NULL);
	p = crl_policy("chain.p7b", dir, "require");
	ck_assert_int_eq(update(p, &rep), PS_OK);
	expect(p, "ted.crt", PS_ERR_POLICY, "revoked on ");
	/* the root's CRL is missing: int-ca cannot be checked */
	expect(p, "dave.crt", PS_ERR_POLICY, "no CRL for " ROOT_NAME);
	copy_fixture("ca.crl", dir, NULL);
	ck_assert_int_eq(update(p, &rep), PS_OK);
	ck_assert_uint_eq(rep.indexed, 2);
	expect(p, "dave.crt", PS_OK, NULL);
	expect(p, "ted.crt", PS_ERR_POLICY, "revoked");
	expect(p, "alice.crt", PS_OK, NULL);
	expect(p, "rose.crt", PS_ERR_POLICY, "keyCompromise");
	ps_policy_free(p);

	/* ifpresent: the missing CRL is fine, the listed serial is not */
	p = crl_policy("chain.pem", dir, "ifpresent");
	expect(p, "dave.crt", PS_OK, NULL);
	expect(p, "ted.crt", PS_ERR_POLICY, "revoked");
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A revoked intermediate takes its whole subtree with it. */
START_TEST(test_revoked_intermediate)
{
	char *dir = tu_mkdtemp(), path[1024];
	long s = serial_of("int-ca.crt");
	struct ps_policy *p;

	snprintf(path, sizeof(path), "%s/root.crl", dir);
	make_crl("ca", path, &s, 1, 0, time(NULL) - 60, time(NULL) + 86400, 2,
	    true);
	p = crl_policy("chain.pem", dir, "ifpresent");
	ck_assert_int_eq(update(p, NULL), PS_OK);
	expect(p, "dave.crt", PS_ERR_POLICY, "issuer not trusted: CA "
	    "O=PSTest,CN=PSTest Intermediate CA revoked on ");
	expect(p, "alice.crt", PS_OK, NULL);
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_stale_and_missing)
{
	char *dir = tu_mkdtemp();
	struct ps_policy *p;

	p = crl_policy("ca.crt", dir, "require");
	expect(p, "alice.crt", PS_ERR_POLICY, "no CRL for " ROOT_NAME);
	ps_policy_free(p);
	p = crl_policy("ca.crt", dir, "ifpresent");
	tu_log_reset();
	expect(p, "alice.crt", PS_OK, NULL);
	ck_assert(tu_log_contains("no CRL for " ROOT_NAME
	    " (accepted: crl=ifpresent)"));
	ps_policy_free(p);

	copy_fixture("ca-stale.crl", dir, NULL);
	p = crl_policy("ca.crt", dir, "require");
	ck_assert_int_eq(update(p, NULL), PS_OK);
	{
		X509 *x = tu_load_cert("alice.crt");
		char why[256];

		ck_assert_int_eq(ps_policy_check(p, x, time(NULL), why,
		    sizeof(why)), PS_ERR_POLICY);
		ck_assert_str_eq(why, "CRL for " ROOT_NAME " is stale since "
		    "2020-02-01");
		X509_free(x);
	}
	/* a stale CRL still revokes what it lists */
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked");
	ps_policy_free(p);
	p = crl_policy("ca.crt", dir, "ifpresent");
	tu_log_reset();
	expect(p, "alice.crt", PS_OK, NULL);
	ck_assert(tu_log_contains("is stale since 2020-02-01 (accepted"));
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked");
	ps_policy_free(p);

	/* the fresh CRL next to it is newer: it wins */
	copy_fixture("ca.crl", dir, NULL);
	p = crl_policy("ca.crt", dir, "require");
	ck_assert_int_eq(update(p, NULL), PS_OK);
	expect(p, "alice.crt", PS_OK, NULL);
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A CRL whose thisUpdate is ahead of the clock (beyond the skew). */
START_TEST(test_not_yet_valid_crl)
{
	char *dir = tu_mkdtemp(), path[1024];
	struct ps_policy *p;

	snprintf(path, sizeof(path), "%s/future.crl", dir);
	make_crl("ca", path, NULL, 0, 0, time(NULL) + 86400 * 2,
	    time(NULL) + 86400 * 9, -1, false);
	p = crl_policy("ca.crt", dir, "require");
	ck_assert_int_eq(update(p, NULL), PS_OK);
	expect(p, "alice.crt", PS_ERR_POLICY, "is not valid before");
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* Files crl-update cannot use are reported, the rest still indexed. */
START_TEST(test_update_invalid_files)
{
	char *dir = tu_mkdtemp(), path[1024];
	struct ps_crl_update_report rep;
	struct ps_policy *p;

	copy_fixture("ca.crl", dir, NULL);
	copy_fixture("imposter-ca.crl", dir, NULL);
	copy_fixture("garbage.bin", dir, "junk.crl");
	copy_fixture("alice.crt", dir, NULL);
	snprintf(path, sizeof(path), "%s/two.crl", dir);
	{
		/* two CRLs in one PEM file */
		char *a = tu_fixture("ca.crl"), cmd[4096];

		snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s'", a, a, path);
		ck_assert_int_eq(system(cmd), 0);
		ck_assert_int_eq(chmod(path, 0644), 0);
		free(a);
	}
	p = crl_policy("ca.crt", dir, "require");
	ck_assert_int_eq(update(p, &rep), PS_ERR_INVALID);
	ck_assert(tu_log_contains("issuer is not among the trust anchors"));
	ck_assert(tu_log_contains("junk.crl: not usable: not a CRL"));
	ck_assert(tu_log_contains("more than one CRL in one file"));
	ck_assert_uint_eq(rep.files, 5);
	ck_assert_uint_eq(rep.indexed, 1);
	ck_assert_uint_eq(rep.invalid, 4);
	/* the good one works, and the bad ones are not re-read per login */
	tu_log_reset();
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked");
	expect(p, "alice.crt", PS_OK, NULL);
	ck_assert_msg(!tu_log_contains("at this login"), "%s", tu_log_text());
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A CRL signed by another key than its issuer name claims. */
START_TEST(test_forged_crl)
{
	char *dir = tu_mkdtemp(), path[1024];
	struct ps_crl_update_report rep;
	struct ps_policy *p;

	/* the imposter CA signs a CRL naming the real root as issuer */
	snprintf(path, sizeof(path), "%s/forged.crl", dir);
	{
		X509 *root = tu_load_cert("ca.crt");
		EVP_PKEY *key = tu_load_key("imposter-ca.key");
		X509_CRL *crl = X509_CRL_new();
		ASN1_TIME *t = ASN1_TIME_new();
		FILE *f;

		ck_assert_int_eq(X509_CRL_set_version(crl, 1), 1);
		ck_assert_int_eq(X509_CRL_set_issuer_name(crl,
		    X509_get_subject_name(root)), 1);
		ASN1_TIME_set(t, time(NULL) + 3600);	/* newer than ca.crl */
		X509_CRL_set1_lastUpdate(crl, t);
		ASN1_TIME_set(t, time(NULL) + 86400);
		X509_CRL_set1_nextUpdate(crl, t);
		ck_assert_int_gt(X509_CRL_sign(crl, key, EVP_sha256()), 0);
		f = fopen(path, "w");
		ck_assert_int_eq(PEM_write_X509_CRL(f, crl), 1);
		fclose(f);
		chmod(path, 0644);
		ASN1_TIME_free(t);
		X509_CRL_free(crl);
		EVP_PKEY_free(key);
		X509_free(root);
	}
	copy_fixture("ca.crl", dir, NULL);
	p = crl_policy("ca.crt", dir, "require");
	/* read directly (not indexed yet): the forged one is ignored */
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked");
	ck_assert_int_eq(update(p, &rep), PS_ERR_INVALID);
	ck_assert(tu_log_contains("signature does not verify"));
	ck_assert_uint_eq(rep.indexed, 1);
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked");
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A damaged or foreign index never reads as "not revoked". */
START_TEST(test_damaged_index)
{
	char *dir = tu_mkdtemp(), ixdir[1024], cmd[2048];
	struct ps_policy *p;
	FILE *f;

	copy_fixture("ca.crl", dir, NULL);
	p = crl_policy("ca.crt", dir, "ifpresent");
	ck_assert_int_eq(update(p, NULL), PS_OK);
	snprintf(ixdir, sizeof(ixdir), "%s/.index", dir);
	/* truncate every index file by one byte */
	snprintf(cmd, sizeof(cmd), "for f in '%s'/*.[0-9]; do "
	    "truncate -s -1 \"$f\"; done", ixdir);
	ck_assert_int_eq(system(cmd), 0);
	tu_log_reset();
	expect(p, "alice.crt", PS_ERR_POLICY, "cannot check revocation for "
	    ROOT_NAME);
	ck_assert(tu_log_contains("size does not match"));

	/* a manifest that does not parse */
	ck_assert_int_eq(update(p, NULL), PS_OK);
	snprintf(cmd, sizeof(cmd), "%s/MANIFEST", ixdir);
	f = fopen(cmd, "a");
	ck_assert_ptr_nonnull(f);
	fputs("garbage line\n", f);
	fclose(f);
	expect(p, "alice.crt", PS_ERR_POLICY, "cannot check revocation: "
	    "crl_dir");

	/* index writable by others */
	ck_assert_int_eq(update(p, NULL), PS_OK);
	snprintf(cmd, sizeof(cmd), "chmod 666 '%s'/*.0", ixdir);
	ck_assert_int_eq(system(cmd), 0);
	tu_log_reset();
	expect(p, "alice.crt", PS_ERR_POLICY, "cannot check revocation");
	ck_assert(tu_log_contains("refusing to trust it"));
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* An indexed CRL damaged in place never reads as "no CRL" either. */
START_TEST(test_damaged_crl_file)
{
	char *dir = tu_mkdtemp();
	struct ps_policy *p;

	copy_fixture("ca.crl", dir, NULL);
	p = crl_policy("ca.crt", dir, "ifpresent");
	ck_assert_int_eq(update(p, NULL), PS_OK);
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked");
	sleep(1);	/* a new mtime even on coarse file systems */
	copy_fixture("garbage.bin", dir, "ca.crl");
	tu_log_reset();
	expect(p, "rose.crt", PS_ERR_POLICY, "cannot check revocation for "
	    ROOT_NAME);
	ck_assert(tu_log_contains("was a usable CRL at the last crl-update"));
	expect(p, "alice.crt", PS_ERR_POLICY, "cannot check revocation");
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* Many serials: the index agrees with OpenSSL's lookup on every probe. */
START_TEST(test_many_serials)
{
	char *dir = tu_mkdtemp(), path[1024];
	struct ps_crl_update_report rep;
	struct ps_crl_view *view = NULL;
	struct ps_crl_answer a;
	X509 *ca = tu_load_cert("ca.crt"), *leaf = tu_load_cert("alice.crt");
	long probes[] = { 1, 2, 49999, 50000, 50001, 69999, 70000, 70001,
	    99999, 123456789 };
	struct ps_policy *p;
	size_t i;

	snprintf(path, sizeof(path), "%s/big.crl", dir);
	make_crl("ca", path, NULL, 20000, 50000, time(NULL) - 60,
	    time(NULL) + 86400, 4, true);
	p = crl_policy("ca.crt", dir, "require");
	ck_assert_int_eq(update(p, &rep), PS_OK);
	ck_assert_uint_eq(rep.serials, 20000);
	ck_assert_int_eq(ps_crl_view_open(&tu_log, dir, &view), PS_OK);
	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		X509 *x = X509_dup(leaf);
		bool want = probes[i] >= 50000 && probes[i] < 70000;

		ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x),
		    probes[i]), 1);
		ck_assert_int_eq(ps_crl_lookup(view, x, ca, &a), PS_OK);
		ck_assert(a.found);
		ck_assert(a.indexed);
		ck_assert_msg(a.revoked == want, "serial %ld", probes[i]);
		if (want)
			ck_assert_int_eq(a.reason, 4);
		X509_free(x);
	}
	ps_crl_view_free(view);
	ps_policy_free(p);
	X509_free(ca);
	X509_free(leaf);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* The same CRL under two names (a copy as HASH.r0): one index. */
START_TEST(test_duplicate_files)
{
	char *dir = tu_mkdtemp();
	struct ps_crl_update_report rep;
	struct ps_policy *p;

	copy_fixture("ca.crl", dir, NULL);
	copy_fixture("ca.crl", dir, "abcdef01.r0");
	p = crl_policy("ca.crt", dir, "require");
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked");
	ck_assert_int_eq(update(p, &rep), PS_OK);
	ck_assert_uint_eq(rep.indexed, 1);
	ck_assert_uint_eq(rep.older, 1);
	expect(p, "rose.crt", PS_ERR_POLICY, "revoked");
	expect(p, "alice.crt", PS_OK, NULL);
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A removed CRL file takes its index with it; an older one steps in. */
START_TEST(test_removed_file)
{
	char *dir = tu_mkdtemp(), path[1024];
	struct ps_policy *p;

	copy_fixture("ca.crl", dir, NULL);
	copy_fixture("ca-stale.crl", dir, NULL);
	p = crl_policy("ca.crt", dir, "require");
	ck_assert_int_eq(update(p, NULL), PS_OK);
	expect(p, "alice.crt", PS_OK, NULL);
	snprintf(path, sizeof(path), "%s/ca.crl", dir);
	ck_assert_int_eq(unlink(path), 0);
	expect(p, "alice.crt", PS_ERR_POLICY, "is stale since 2020-02-01");
	snprintf(path, sizeof(path), "%s/ca-stale.crl", dir);
	ck_assert_int_eq(unlink(path), 0);
	expect(p, "alice.crt", PS_ERR_POLICY, "no CRL for");
	ps_policy_free(p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* crl_dir must be trusted like ca_file. */
START_TEST(test_untrusted_crl_dir)
{
	char *dir = tu_mkdtemp(), *ca = tu_fixture("ca.crt");
	struct ps_config cfg;
	struct ps_policy *p = NULL;

	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	tu_cfg_set(&cfg, "ca_file", ca);
	tu_cfg_set(&cfg, "crl_dir", dir);
	tu_log_reset();
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_ERR_UNSAFE);
	ck_assert(tu_log_contains("writable by group or others"));
	ck_assert_int_eq(chmod(dir, 0700), 0);
	ck_assert_int_eq(ps_policy_new(&cfg, &tu_log, &p), PS_OK);
	ps_policy_free(p);
	ps_config_free(&cfg);
	free(ca);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_reason_names)
{
	ck_assert_str_eq(ps_crl_reason_name(1), "keyCompromise");
	ck_assert_str_eq(ps_crl_reason_name(6), "certificateHold");
	ck_assert_ptr_null(ps_crl_reason_name(7));
	ck_assert_ptr_null(ps_crl_reason_name(-1));
	ck_assert_ptr_null(ps_crl_reason_name(11));
}
END_TEST

static Suite *
crl_suite(void)
{
	Suite *s = suite_create("crl");
	TCase *tc = tcase_create("crl");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_update_and_lookup);
	tcase_add_test(tc, test_revoked_date);
	tcase_add_test(tc, test_unindexed_is_read);
	tcase_add_test(tc, test_intermediate_chain);
	tcase_add_test(tc, test_revoked_intermediate);
	tcase_add_test(tc, test_stale_and_missing);
	tcase_add_test(tc, test_not_yet_valid_crl);
	tcase_add_test(tc, test_update_invalid_files);
	tcase_add_test(tc, test_forged_crl);
	tcase_add_test(tc, test_damaged_index);
	tcase_add_test(tc, test_damaged_crl_file);
	tcase_add_test(tc, test_many_serials);
	tcase_add_test(tc, test_duplicate_files);
	tcase_add_test(tc, test_removed_file);
	tcase_add_test(tc, test_untrusted_crl_dir);
	tcase_add_test(tc, test_reason_names);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(crl_suite());
}
