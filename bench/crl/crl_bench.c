/*
 * crl_bench.c - what revocation checking costs a login, with a CRL of 10
 * serials and one of 1,000,000 (bench/README.md, "CRL lookup").
 *
 *   crl_bench gen DIR N          a CA, two users (one revoked), a CRL of N
 *                                serials (DER) in DIR/crl, DIR/conf
 *   crl_bench update DIR         personalsign-enroll crl-update, timed
 *   crl_bench run DIR CALLS ROUNDS good|revoked
 *                                per-login policy cost: ps_policy_new,
 *                                ps_policy_check, ps_policy_free - what
 *                                the PAM module does on every login -
 *                                median of ROUNDS rounds of CALLS logins
 *
 * bench_login() is one login's policy work and is never inlined, so that
 * callgrind --toggle-collect=bench_login counts exactly that.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "crl.h"
#include "log.h"
#include "policy.h"
#include "ps_status.h"

#define FIRST_REVOKED	1000000L	/* serials FIRST.. are on the CRL */

static void
die(const char *what)
{
	fprintf(stderr, "crl_bench: %s\n", what);
	exit(1);
}

static void
quiet_log(void *arg, enum ps_log_level level, const char *msg)
{
	(void)arg;
	if (level <= PS_LOG_ERR)
		fprintf(stderr, "log: %s\n", msg);
}

static const struct ps_log bench_log = { quiet_log, NULL, 0 };

static char *
path_of(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		die("out of memory");
	return p;
}

static void
write_pem_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || PEM_write_X509(f, x) != 1 || fclose(f) != 0)
		die("cannot write a certificate");
	if (chmod(path, 0644) != 0)
		die("chmod");
}

static void
add_ext(X509 *ca, X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, ca != NULL ? ca : x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL ||
	    X509_add_ext(x, ext, -1) != 1)
		die("extension");
	X509_EXTENSION_free(ext);
}

/* A certificate; ca NULL: self-signed CA. */
static X509 *
make_cert(X509 *ca, EVP_PKEY *cakey, EVP_PKEY *key, const char *cn,
    long serial)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	if (x == NULL || name == NULL ||
	    X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), serial) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365) == NULL ||
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca) :
	    name) != 1 || X509_set_pubkey(x, key) != 1)
		die("certificate");
	if (ca == NULL) {
		add_ext(NULL, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(NULL, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(ca, x, NID_key_usage, "critical,digitalSignature");
		add_ext(ca, x, NID_ext_key_usage, "clientAuth,emailProtection");
	}
	if (X509_sign(x, cakey != NULL ? cakey : key, EVP_sha256()) <= 0)
		die("signing a certificate");
	X509_NAME_free(name);
	return x;
}

/* N serials FIRST_REVOKED.., DER, signed by the CA. */
static void
make_crl(X509 *ca, EVP_PKEY *cakey, long n, const char *path)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	ASN1_INTEGER *s = ASN1_INTEGER_new();
	FILE *f;
	long i;

	if (crl == NULL || t == NULL || s == NULL ||
	    X509_CRL_set_version(crl, 1) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 ||
	    X509_gmtime_adj(t, -60) == NULL ||
	    X509_CRL_set1_lastUpdate(crl, t) != 1 ||
	    X509_gmtime_adj(t, 86400L * 30) == NULL ||
	    X509_CRL_set1_nextUpdate(crl, t) != 1 ||
	    X509_gmtime_adj(t, -86400) == NULL)
		die("CRL");
	for (i = 0; i < n; i++) {
		X509_REVOKED *rev = X509_REVOKED_new();

		if (rev == NULL ||
		    ASN1_INTEGER_set(s, FIRST_REVOKED + i) != 1 ||
		    X509_REVOKED_set_serialNumber(rev, s) != 1 ||
		    X509_REVOKED_set_revocationDate(rev, t) != 1 ||
		    X509_CRL_add0_revoked(crl, rev) != 1)
			die("CRL entry");
	}
	if (X509_CRL_sort(crl) != 1 ||
	    X509_CRL_sign(crl, cakey, EVP_sha256()) <= 0)
		die("signing the CRL");
	if ((f = fopen(path, "wb")) == NULL || i2d_X509_CRL_fp(f, crl) != 1 ||
	    fclose(f) != 0 || chmod(path, 0644) != 0)
		die("writing the CRL");
	ASN1_INTEGER_free(s);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
}

static int
cmd_gen(const char *dir, long n)
{
	EVP_PKEY *cakey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *k2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *ca, *good, *revoked;
	char *p, *crldir, *conf;
	FILE *f;

	if (cakey == NULL || k1 == NULL || k2 == NULL)
		die("keygen");
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die("mkdir");
	crldir = path_of(dir, "crl");
	if (mkdir(crldir, 0755) != 0 && errno != EEXIST)
		die("mkdir crl");
	ca = make_cert(NULL, NULL, cakey, "CRL bench CA", 1);
	good = make_cert(ca, cakey, k1, "good user", 42);
	/* in the middle of the revoked range */
	revoked = make_cert(ca, cakey, k2, "revoked user",
	    FIRST_REVOKED + n / 2);
	write_pem_cert(p = path_of(dir, "ca.crt"), ca);
	free(p);
	write_pem_cert(p = path_of(dir, "good.crt"), good);
	free(p);
	write_pem_cert(p = path_of(dir, "revoked.crt"), revoked);
	free(p);
	make_crl(ca, cakey, n, p = path_of(crldir, "ca.crl"));
	free(p);
	conf = path_of(dir, "conf");
	if ((f = fopen(conf, "w")) == NULL ||
	    fprintf(f, "ca_file = %s/ca.crt\ncrl_dir = %s\ncrl = require\n",
	    dir, crldir) < 0 || fclose(f) != 0 || chmod(conf, 0644) != 0)
		die("writing conf");
	free(conf);
	free(crldir);
	X509_free(ca);
	X509_free(good);
	X509_free(revoked);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	return 0;
}

static void
load_cfg(const char *dir, struct ps_config *cfg)
{
	char *conf = path_of(dir, "conf");

	if (ps_config_init(cfg) != PS_OK ||
	    ps_config_load_file(cfg, conf, &bench_log) != PS_OK)
		die("configuration");
	free(conf);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmd_update(const char *dir)
{
	struct ps_crl_update_report rep;
	struct ps_config cfg;
	struct ps_policy *p = NULL;
	double t0;
	int r;

	load_cfg(dir, &cfg);
	t0 = now_s();
	if (ps_policy_new(&cfg, &bench_log, &p) != PS_OK)
		die("policy");
	r = ps_policy_crl_update(p, &bench_log, &rep);
	printf("crl-update: %s, %zu serials indexed in %.2f s\n",
	    ps_status_str(r), rep.serials, now_s() - t0);
	ps_policy_free(p);
	ps_config_free(&cfg);
	return r == PS_OK ? 0 : 1;
}

int bench_login(const struct ps_config *cfg, X509 *cert);

/* One login's worth of policy work, as in the PAM module. */
__attribute__((noinline)) int
bench_login(const struct ps_config *cfg, X509 *cert)
{
	struct ps_policy *p = NULL;
	char why[256];
	int r;

	if ((r = ps_policy_new(cfg, &bench_log, &p)) != PS_OK)
		return r;
	r = ps_policy_check(p, cert, time(NULL), why, sizeof(why));
	ps_policy_free(p);
	return r;
}

static int
dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
cmd_run(const char *dir, long calls, int rounds, const char *which)
{
	struct ps_config cfg;
	double *per = calloc((size_t)rounds, sizeof(double)), t0;
	bool revoked = strcmp(which, "revoked") == 0;
	char *crt = path_of(dir, revoked ? "revoked.crt" : "good.crt");
	FILE *f = fopen(crt, "r");
	X509 *x;
	long i;
	int k, want = revoked ? PS_ERR_POLICY : PS_OK;

	if (per == NULL || f == NULL ||
	    (x = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
		die("certificate");
	fclose(f);
	load_cfg(dir, &cfg);
	if (bench_login(&cfg, x) != want)	/* warm the page cache */
		die("unexpected policy answer");
	for (k = 0; k < rounds; k++) {
		t0 = now_s();
		for (i = 0; i < calls; i++)
			if (bench_login(&cfg, x) != want)
				die("unexpected policy answer");
		per[k] = (now_s() - t0) / (double)calls;
	}
	qsort(per, (size_t)rounds, sizeof(double), dbl_cmp);
	printf("%s: median %.1f us per login (%d rounds of %ld; min %.1f, "
	    "max %.1f)\n", which, per[rounds / 2] * 1e6, rounds, calls,
	    per[0] * 1e6, per[rounds - 1] * 1e6);
	X509_free(x);
	ps_config_free(&cfg);
	free(crt);
	free(per);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "gen") == 0)
		return cmd_gen(argv[2], atol(argv[3]));
	if (argc == 3 && strcmp(argv[1], "update") == 0)
		return cmd_update(argv[2]);
	if (argc == 6 && strcmp(argv[1], "run") == 0)
		return cmd_run(argv[2], atol(argv[3]), atoi(argv[4]), argv[5]);
	fprintf(stderr, "usage: crl_bench gen DIR N | update DIR | "
	    "run DIR CALLS ROUNDS good|revoked\n");
	return 2;
}
