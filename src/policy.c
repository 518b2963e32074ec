/*
 * policy.c - decide whether a registered certificate may be used to log
 * in at a given moment: key type, validity (with clock-skew allowance),
 * chain to the configured trust anchors, key usage and extended key usage.
 *
 * Everything that touches files happens once in ps_policy_new; the check
 * runs on every login, possibly from several OpenVPN threads at once, so
 * it only reads the policy and builds its verification context per call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

#include "cert.h"
#include "policy.h"
#include "ps_status.h"
#include "util.h"

/* EKU bits we can require (subset of OpenSSL's XKU_* flags). */
#define EKU_DEFAULT (XKU_SSL_CLIENT | XKU_SMIME)

struct ps_policy {
	int clock_skew;			/* seconds, >= 0 */
	bool eku_any;			/* no EKU restriction */
	uint32_t eku_mask;		/* one of these must be present */
	char *ca_file;
	char *ca_dir;
	char *crl_dir;			/* for revocation checks (later) */
	enum ps_crl_policy crl;
	X509_STORE *store;		/* trust anchors; NULL: none configured */
	struct ps_log log;
};

/* ------------------------------------------------------------ EKU list */

struct eku_name {
	const char *name;
	uint32_t bit;			/* 0: "any" */
};

static const struct eku_name eku_names[] = {
	{ "clientAuth", XKU_SSL_CLIENT },
	{ "emailProtection", XKU_SMIME },
	{ "any", 0 },
};

/* One comma-separated item, surrounding blanks already stripped. */
static int
eku_item(const struct ps_log *log, const char *item, size_t len,
    struct ps_policy *p)
{
	size_t i;

	for (i = 0; i < sizeof(eku_names) / sizeof(eku_names[0]); i++) {
		if (strlen(eku_names[i].name) != len ||
		    strncasecmp(eku_names[i].name, item, len) != 0)
			continue;
		if (eku_names[i].bit == 0)
			p->eku_any = true;
		p->eku_mask |= eku_names[i].bit;
		return PS_OK;
	}
	ps_log_err(log, "eku: unknown usage '%.*s' (use clientAuth, "
	    "emailProtection or any)", (int)(len > 64 ? 64 : len), item);
	return PS_ERR_INVALID;
}

static int
parse_eku(const struct ps_log *log, const char *list, struct ps_policy *p)
{
	const char *s, *end;
	size_t len;
	int r;

	if (list == NULL) {
		p->eku_mask = EKU_DEFAULT;
		return PS_OK;
	}
	for (s = list;; s = end + 1) {
		end = strchr(s, ',');
		len = end != NULL ? (size_t)(end - s) : strlen(s);
		while (len > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			len--;
		}
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0) {
			ps_log_err(log, "eku: empty usage in list '%s'", list);
			return PS_ERR_INVALID;
		}
		if ((r = eku_item(log, s, len, p)) != PS_OK)
			return r;
		if (end == NULL)
			break;
	}
	return PS_OK;
}

/* ------------------------------------------------------------ anchors */

/*
 * A missing or unreadable CA must never look like "user not found" (which
 * nouserok turns into PAM_IGNORE): keep only codes that mean refusal.
 */
static int
ca_load_status(int r)
{
	switch (r) {
	case PS_ERR_NOMEM:
	case PS_ERR_IO:
	case PS_ERR_UNSAFE:
	case PS_ERR_INVALID:
		return r;
	case PS_ERR_NOT_FOUND:
		return PS_ERR_IO;
	default:
		return PS_ERR_INVALID;
	}
}

static int
store_add_certs(const struct ps_log *log, const char *path, X509_STORE *store,
    STACK_OF(X509) *certs, int *added)
{
	int i;

	for (i = 0; i < sk_X509_num(certs); i++) {
		if (X509_STORE_add_cert(store, sk_X509_value(certs, i)) != 1) {
			ps_log_openssl(log, path);
			ps_log_err(log, "%s: cannot add CA certificate to the "
			    "trust store", path);
			return PS_ERR_CRYPTO;
		}
		(*added)++;
	}
	return PS_OK;
}

static int
load_ca_file(const struct ps_log *log, const char *path, X509_STORE *store,
    int *added)
{
	STACK_OF(X509) *certs = NULL;
	int r;

	if ((r = ps_cert_load_file(log, path, NULL, &certs)) != PS_OK) {
		ps_log_err(log, "ca_file %s: cannot load trust anchors", path);
		return ca_load_status(r);
	}
	r = store_add_certs(log, path, store, certs, added);
	sk_X509_pop_free(certs, X509_free);
	return r;
}

/*
 * Files in a CA directory that are not certificates (CRLs, READMEs) are
 * expected: their load errors are demoted to debug so that one warning
 * per file says it was skipped.
 */
static void
demote_to_debug(void *arg, enum ps_log_level level, const char *msg)
{
	(void)level;
	ps_log_debug((const struct ps_log *)arg, "%s", msg);
}

/*
 * The path of a directory entry worth reading: regular files, and links
 * to them (c_rehash hash links, /etc/ssl/certs style), since whatever the
 * admin's directory links to is meant to be trusted. *path is malloc'd;
 * PS_ERR_NOT_FOUND means "skip".
 */
static int
ca_dir_entry(const struct ps_log *log, const char *dir, const char *name,
    char **path)
{
	char *full;
	struct stat st;

	*path = NULL;
	if (name[0] == '.')
		return PS_ERR_NOT_FOUND;
	if ((full = ps_strdup_printf("%s/%s", dir, name)) == NULL)
		return PS_ERR_NOMEM;
	if (stat(full, &st) != 0) {
		int err = errno;
		bool link = lstat(full, &st) == 0 && S_ISLNK(st.st_mode);

		ps_log_warn(log, "ca_dir: skipping %s: %s%s", full,
		    strerror(err), link ? " (dangling link)" : "");
		free(full);
		return PS_ERR_NOT_FOUND;
	}
	if (!S_ISREG(st.st_mode)) {
		free(full);
		return PS_ERR_NOT_FOUND;
	}
	*path = full;
	return PS_OK;
}

static int
load_ca_dir(const struct ps_log *log, const char *dir, X509_STORE *store,
    int *added)
{
	struct ps_log quiet = { demote_to_debug, (void *)log,
	    log != NULL ? log->debug : 0 };
	STACK_OF(X509) *certs;
	struct dirent *de;
	DIR *d;
	char *path;
	int r = PS_OK;

	if ((d = opendir(dir)) == NULL) {
		ps_log_err(log, "ca_dir %s: cannot open: %s", dir,
		    strerror(errno));
		return errno == ENOMEM ? PS_ERR_NOMEM : PS_ERR_IO;
	}
	while ((de = readdir(d)) != NULL) {
		r = ca_dir_entry(log, dir, de->d_name, &path);
		if (r == PS_ERR_NOT_FOUND)
			continue;
		if (r != PS_OK)
			break;
		certs = NULL;
		if (ps_cert_load_file(&quiet, path, NULL, &certs) != PS_OK) {
			ps_log_warn(log, "ca_dir: skipping %s: not a "
			    "certificate file", path);
			free(path);
			continue;
		}
		r = store_add_certs(log, path, store, certs, added);
		sk_X509_pop_free(certs, X509_free);
		free(path);
		if (r != PS_OK)
			break;
	}
	r = r == PS_ERR_NOT_FOUND ? PS_OK : r;
	closedir(d);
	return r;
}

static int
load_store(const struct ps_log *log, struct ps_policy *p)
{
	int r, added = 0;

	if ((p->store = X509_STORE_new()) == NULL) {
		ps_log_err(log, "cannot create a trust store");
		return PS_ERR_NOMEM;
	}
	if (p->ca_file != NULL &&
	    (r = load_ca_file(log, p->ca_file, p->store, &added)) != PS_OK)
		return r;
	if (p->ca_dir != NULL &&
	    (r = load_ca_dir(log, p->ca_dir, p->store, &added)) != PS_OK)
		return r;
	if (added == 0) {
		ps_log_err(log, "no CA certificate found in %s",
		    p->ca_dir != NULL ? p->ca_dir : p->ca_file);
		return PS_ERR_INVALID;
	}
	ps_log_debug(log, "policy: %d trust anchor certificate(s) loaded",
	    added);
	return PS_OK;
}

/* ------------------------------------------------------------ lifecycle */

/*
 * Revocation checking comes later. Until then a configuration that asks
 * for it is refused rather than silently accepting revoked certificates;
 * crl=off states that running without it is intended.
 */
static int
check_crl_config(const struct ps_log *log, const struct ps_policy *p)
{
	if (p->crl == PS_CRL_REQUIRE) {
		ps_log_err(log, "crl=require: revocation checking is not "
		    "available in this version");
		return PS_ERR_INVALID;
	}
	if (p->crl_dir != NULL && p->crl != PS_CRL_OFF) {
		ps_log_err(log, "crl_dir %s: revocation checking is not "
		    "available in this version (set crl=off to run without "
		    "it)", p->crl_dir);
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

static int
copy_opt(const char *in, char **out)
{
	*out = NULL;
	if (in == NULL)
		return PS_OK;
	return (*out = strdup(in)) != NULL ? PS_OK : PS_ERR_NOMEM;
}

int
ps_policy_new(const struct ps_config *cfg, const struct ps_log *log,
    struct ps_policy **out)
{
	struct ps_policy *p = NULL;
	int r;

	if (out == NULL)
		return PS_ERR_INTERNAL;
	*out = NULL;
	if (cfg == NULL) {
		ps_log_err(log, "policy: no configuration");
		return PS_ERR_INTERNAL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		ps_log_err(log, "policy: out of memory");
		return PS_ERR_NOMEM;
	}
	if (log != NULL)
		p->log = *log;
	p->clock_skew = cfg->clock_skew > 0 ? cfg->clock_skew : 0;
	p->crl = cfg->crl;
	if ((r = copy_opt(cfg->ca_file, &p->ca_file)) != PS_OK ||
	    (r = copy_opt(cfg->ca_dir, &p->ca_dir)) != PS_OK ||
	    (r = copy_opt(cfg->crl_dir, &p->crl_dir)) != PS_OK) {
		ps_log_err(log, "policy: out of memory");
		goto out;
	}
	if ((r = check_crl_config(log, p)) != PS_OK ||
	    (r = parse_eku(log, cfg->eku, p)) != PS_OK)
		goto out;
	if ((p->ca_file != NULL || p->ca_dir != NULL) &&
	    (r = load_store(log, p)) != PS_OK)
		goto out;
	*out = p;
	p = NULL;
	r = PS_OK;
 out:
	ps_policy_free(p);
	ERR_clear_error();
	return r;
}

void
ps_policy_free(struct ps_policy *policy)
{
	if (policy == NULL)
		return;
	X509_STORE_free(policy->store);
	free(policy->ca_file);
	free(policy->ca_dir);
	free(policy->crl_dir);
	free(policy);
}

/* ------------------------------------------------------------ checks */

static int
check_time(const struct ps_policy *p, const X509 *cert, time_t now,
    char *why, size_t whylen)
{
	time_t nb, na;
	char date[11];

	if (ps_cert_validity(cert, &nb, &na) != PS_OK) {
		snprintf(why, whylen, "unreadable validity dates");
		return PS_ERR_POLICY;
	}
	/* certificate times fit in years 0..9999, so these cannot overflow */
	if ((long long)now < (long long)nb - p->clock_skew) {
		ps_format_date((long long)nb, date);
		snprintf(why, whylen, "not valid before %s", date);
		return PS_ERR_POLICY;
	}
	if ((long long)now > (long long)na + p->clock_skew) {
		ps_format_date((long long)na, date);
		snprintf(why, whylen, "expired on %s", date);
		return PS_ERR_EXPIRED;
	}
	return PS_OK;
}

/* What the verify callback needs to know, per check. */
struct verify_state {
	time_t now;
	int clock_skew;
};

/*
 * OpenSSL checks validity at exactly `now`; we allow the configured skew
 * on every certificate of the chain, as check_time does for the leaf.
 */
static int
verify_cb(int ok, X509_STORE_CTX *ctx)
{
	const struct verify_state *st;
	X509 *x;
	time_t nb, na;
	int err;

	if (ok)
		return ok;
	err = X509_STORE_CTX_get_error(ctx);
	if (err != X509_V_ERR_CERT_NOT_YET_VALID &&
	    err != X509_V_ERR_CERT_HAS_EXPIRED)
		return 0;
	st = X509_STORE_CTX_get_app_data(ctx);
	x = X509_STORE_CTX_get_current_cert(ctx);
	if (st == NULL || x == NULL ||
	    ps_cert_validity(x, &nb, &na) != PS_OK)
		return 0;
	if ((long long)st->now < (long long)nb - st->clock_skew ||
	    (long long)st->now > (long long)na + st->clock_skew)
		return 0;
	X509_STORE_CTX_set_error(ctx, X509_V_OK);
	return 1;
}

static int
check_chain(const struct ps_policy *p, X509 *cert, time_t now, char *why,
    size_t whylen)
{
	struct verify_state st = { now, p->clock_skew };
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	int ok, err, r = PS_ERR_POLICY;

	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, p->store, cert, NULL) != 1) {
		snprintf(why, whylen, "issuer not trusted: cannot set up "
		    "verification");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	/* the chain must end at a configured root, not at any anchor */
	X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_time(param, now);
	X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
	if (X509_STORE_CTX_set_app_data(ctx, &st) != 1) {
		snprintf(why, whylen, "issuer not trusted: cannot set up "
		    "verification");
		goto out;
	}
	ok = X509_verify_cert(ctx);
	if (ok == 1) {
		r = PS_OK;
		goto out;
	}
	err = X509_STORE_CTX_get_error(ctx);
	if (ok < 0 || err == X509_V_OK)
		err = X509_V_ERR_UNSPECIFIED;
	snprintf(why, whylen, "issuer not trusted: %s",
	    X509_verify_cert_error_string(err));
	ps_log_debug(&p->log, "policy: chain verification failed at depth "
	    "%d: %s", X509_STORE_CTX_get_error_depth(ctx),
	    X509_verify_cert_error_string(err));
 out:
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

static int
check_extensions_decoded(X509 *cert, char *why, size_t whylen)
{
	/* a usage extension we cannot read must not count as "absent" */
	if (X509_get_extension_flags(cert) & EXFLAG_INVALID) {
		snprintf(why, whylen, "wrong key usage: certificate extensions "
		    "are malformed");
		return PS_ERR_POLICY;
	}
	return PS_OK;
}

static int
check_key_usage(X509 *cert, char *why, size_t whylen)
{
	uint32_t ku = X509_get_key_usage(cert);

	if (ku != UINT32_MAX && !(ku & KU_DIGITAL_SIGNATURE)) {
		snprintf(why, whylen, "wrong key usage: digitalSignature not "
		    "allowed");
		return PS_ERR_POLICY;
	}
	return PS_OK;
}

static void
eku_wanted(uint32_t mask, char *buf, size_t buflen)
{
	size_t i;
	int n = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(eku_names) / sizeof(eku_names[0]); i++) {
		if (eku_names[i].bit == 0 || !(mask & eku_names[i].bit))
			continue;
		n += snprintf(buf + n, buflen - (size_t)n, "%s%s",
		    n > 0 ? " or " : "", eku_names[i].name);
		if (n < 0 || (size_t)n >= buflen)
			return;
	}
}

static int
check_eku(const struct ps_policy *p, X509 *cert, char *why, size_t whylen)
{
	uint32_t xku;
	char wanted[64];

	if (p->eku_any)
		return PS_OK;
	xku = X509_get_extended_key_usage(cert);
	if (xku == UINT32_MAX || (xku & p->eku_mask) != 0)
		return PS_OK;
	eku_wanted(p->eku_mask, wanted, sizeof(wanted));
	snprintf(why, whylen, "wrong key usage: extended key usage lacks %s",
	    wanted);
	return PS_ERR_POLICY;
}

int
ps_policy_check(const struct ps_policy *policy, X509 *cert, time_t now,
    char *why, size_t whylen)
{
	char dummy[1];
	int r;

	if (why == NULL || whylen == 0) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	if (policy == NULL) {
		snprintf(why, whylen, "no certificate policy");
		return PS_ERR_INTERNAL;
	}
	if (cert == NULL) {
		snprintf(why, whylen, "no certificate");
		return PS_ERR_INVALID;
	}
	if ((r = ps_cert_key_check(cert, why, whylen)) != PS_OK)
		return r;
	if ((r = check_time(policy, cert, now, why, whylen)) != PS_OK)
		return r;
	if (policy->store != NULL &&
	    (r = check_chain(policy, cert, now, why, whylen)) != PS_OK)
		return r;
	if ((r = check_extensions_decoded(cert, why, whylen)) != PS_OK ||
	    (r = check_key_usage(cert, why, whylen)) != PS_OK ||
	    (r = check_eku(policy, cert, why, whylen)) != PS_OK)
		return r;
	why[0] = '\0';
	return PS_OK;
}
