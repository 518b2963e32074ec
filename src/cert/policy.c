/*
 * policy.c - decide whether a registered certificate may be used to log
 * in at a given moment: key type, validity (with clock-skew allowance),
 * chain to the configured trust anchors, revocation by CRL, key usage and
 * extended key usage.
 *
 * ps_policy_new runs on every login in the module, so it stays cheap: it
 * checks that the trust paths are safe and loads the anchors, and never
 * reads a CRL. The check runs on every login, possibly from several
 * OpenVPN threads at once, so it only reads the policy and builds its
 * verification context (and its view of crl_dir) per call.
 *
 * cert_policy= picks the checks, in the spirit of pam_pkcs11's option of
 * the same name: "ca" (chain to ca_file/ca_dir), "crl" (revocation, what
 * a missing or stale CRL means is crl=), "no_ca", "no_crl", "none". Left
 * unset it is as strict as the configuration allows: ca when anchors are
 * configured, and crl too when crl_dir is. Validity, key type and usage
 * are always checked. A combination that cannot be honoured (ca without
 * anchors, crl without crl_dir or without anchors to verify CRLs with) is
 * a configuration error, never a silent downgrade.
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
#include "crl.h"
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
	char *crl_dir;
	enum ps_crl_policy crl;		/* missing / stale CRL: refuse? */
	bool check_chain;		/* cert_policy: ca */
	bool check_revocation;		/* cert_policy: crl */
	X509_STORE *store;		/* trust anchors; NULL: none loaded */
	struct ps_log log;
};

/* cert_policy items: what each says about the chain and CRL checks. */
enum { CP_UNSET = -1, CP_OFF = 0, CP_ON = 1 };

struct cp_name {
	const char *name;
	int ca;
	int crl;
	const char *unsupported;	/* non-NULL: refused with this hint */
};

static const struct cp_name cp_names[] = {
	{ "ca", CP_ON, CP_UNSET, NULL },
	{ "no_ca", CP_OFF, CP_UNSET, NULL },
	{ "crl", CP_UNSET, CP_ON, NULL },
	{ "crl_offline", CP_UNSET, CP_ON, NULL },	/* pam_pkcs11 name */
	{ "no_crl", CP_UNSET, CP_OFF, NULL },
	{ "none", CP_OFF, CP_OFF, NULL },
	/* the login signature is always checked with the registered key */
	{ "signature", CP_UNSET, CP_UNSET, NULL },
	{ "crl_online", 0, 0, "nothing is fetched over the network at "
	    "login: put CRLs in crl_dir and run personalsign-enroll "
	    "crl-update" },
	{ "crl_auto", 0, 0, "nothing is fetched over the network at login: "
	    "put CRLs in crl_dir and run personalsign-enroll crl-update" },
	{ "ocsp_on", 0, 0, "OCSP is not supported: use CRLs (crl_dir)" },
};

/* Both wanted settings, as cert_policy gives them. */
struct cp_want {
	int ca;
	int crl;
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

/*
 * Call item() for each comma-separated item of `list`, blanks around
 * items stripped. An empty item is an error: "a,,b" is a typo.
 */
static int
parse_list(const struct ps_log *log, const char *what, const char *list,
    int (*item)(const struct ps_log *, const char *, size_t, void *),
    void *arg)
{
	const char *s, *end;
	size_t len;
	int r;

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
			ps_log_err(log, "%s: empty item in list '%s'", what,
			    list);
			return PS_ERR_INVALID;
		}
		if ((r = item(log, s, len, arg)) != PS_OK)
			return r;
		if (end == NULL)
			break;
	}
	return PS_OK;
}

static int
eku_list_item(const struct ps_log *log, const char *item, size_t len,
    void *arg)
{
	return eku_item(log, item, len, arg);
}

static int
parse_eku(const struct ps_log *log, const char *list, struct ps_policy *p)
{
	if (list == NULL) {
		p->eku_mask = EKU_DEFAULT;
		return PS_OK;
	}
	return parse_list(log, "eku", list, eku_list_item, p);
}

/* ------------------------------------------------------------ cert_policy */

static int
cp_set(const struct ps_log *log, int *field, int value, const char *which)
{
	if (value == CP_UNSET)
		return PS_OK;
	if (*field != CP_UNSET && *field != value) {
		ps_log_err(log, "cert_policy: %s and no_%s contradict each "
		    "other", which, which);
		return PS_ERR_INVALID;
	}
	*field = value;
	return PS_OK;
}

static int
cp_item(const struct ps_log *log, const char *item, size_t len, void *arg)
{
	struct cp_want *want = arg;
	size_t i;
	int r;

	for (i = 0; i < sizeof(cp_names) / sizeof(cp_names[0]); i++) {
		const struct cp_name *n = &cp_names[i];

		if (strlen(n->name) != len || strncmp(n->name, item, len) != 0)
			continue;
		if (n->unsupported != NULL) {
			ps_log_err(log, "cert_policy: %s is not supported: %s",
			    n->name, n->unsupported);
			return PS_ERR_INVALID;
		}
		if ((r = cp_set(log, &want->ca, n->ca, "ca")) != PS_OK)
			return r;
		return cp_set(log, &want->crl, n->crl, "crl");
	}
	ps_log_err(log, "cert_policy: unknown item '%.*s' (use ca, no_ca, "
	    "crl, no_crl or none)", (int)(len > 64 ? 64 : len), item);
	return PS_ERR_INVALID;
}

/* Chain check: as asked, else whenever anchors are configured. */
static int
resolve_chain(const struct ps_log *log, const struct cp_want *want,
    struct ps_policy *p)
{
	bool have_ca = p->ca_file != NULL || p->ca_dir != NULL;

	p->check_chain = want->ca == CP_UNSET ? have_ca : want->ca == CP_ON;
	if (p->check_chain && !have_ca) {
		ps_log_err(log, "cert_policy=ca needs ca_file or ca_dir");
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

/*
 * Revocation: as asked, else whenever crl_dir is set (or crl=require).
 * It needs the chain: a CRL is only believed when the issuer's key
 * signed it.
 */
static int
resolve_revocation(const struct ps_log *log, const struct cp_want *want,
    struct ps_policy *p)
{
	if (want->crl == CP_OFF) {
		if (p->crl == PS_CRL_REQUIRE) {
			ps_log_err(log, "cert_policy without crl contradicts "
			    "crl=require");
			return PS_ERR_INVALID;
		}
		p->check_revocation = false;
		return PS_OK;
	}
	if (want->crl == CP_ON && p->crl == PS_CRL_OFF) {
		ps_log_err(log, "cert_policy=crl contradicts crl=off");
		return PS_ERR_INVALID;
	}
	p->check_revocation = p->crl != PS_CRL_OFF &&
	    (want->crl == CP_ON || p->crl_dir != NULL ||
	    p->crl == PS_CRL_REQUIRE);
	if (!p->check_revocation)
		return PS_OK;
	if (p->crl_dir == NULL) {
		ps_log_err(log, "%s needs crl_dir", want->crl == CP_ON ?
		    "cert_policy=crl" : "crl=require");
		return PS_ERR_INVALID;
	}
	if (!p->check_chain) {
		ps_log_err(log, "revocation checking (crl_dir %s) needs the "
		    "chain check: CRL signatures are verified with the CAs of "
		    "ca_file or ca_dir%s", p->crl_dir, want->ca == CP_OFF ?
		    " (cert_policy=no_ca)" : "");
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

static int
parse_cert_policy(const struct ps_log *log, const char *list,
    struct ps_policy *p)
{
	struct cp_want want = { CP_UNSET, CP_UNSET };
	int r;

	if (list != NULL &&
	    (r = parse_list(log, "cert_policy", list, cp_item, &want)) != PS_OK)
		return r;
	if ((r = resolve_chain(log, &want, p)) != PS_OK)
		return r;
	return resolve_revocation(log, &want, p);
}

/* ------------------------------------------------------------ trust paths */

/*
 * ca_file, ca_dir and crl_dir decide who may log in: like the registry,
 * they and every directory above them must be writable by root alone. A
 * missing one is an I/O error, never "not found" (which nouserok would
 * turn into PAM_IGNORE).
 */
static int
trust_path(const struct ps_log *log, const char *what, const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		ps_log_err(log, "%s %s: cannot open: %s", what, path,
		    errno == ENOENT ? "no such file or directory" :
		    strerror(errno));
		ps_log_err(log, "%s %s: cannot load trust anchors", what, path);
		return errno == ENOMEM ? PS_ERR_NOMEM : PS_ERR_IO;
	}
	if (!ps_path_trusted(log, path)) {
		ps_log_err(log, "%s %s: refusing to trust it (it or a "
		    "directory above it may be changed by someone other than "
		    "root)", what, path);
		return PS_ERR_UNSAFE;
	}
	return PS_OK;
}

static int
check_trust_paths(const struct ps_log *log, const struct ps_policy *p)
{
	int r;

	if (p->check_chain && p->ca_file != NULL &&
	    (r = trust_path(log, "ca_file", p->ca_file)) != PS_OK)
		return r;
	if (p->check_chain && p->ca_dir != NULL &&
	    (r = trust_path(log, "ca_dir", p->ca_dir)) != PS_OK)
		return r;
	if (p->check_revocation &&
	    (r = trust_path(log, "crl_dir", p->crl_dir)) != PS_OK)
		return r;
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
	/* the directory is trusted; a file in it someone else may rewrite
	 * (or a link to one) is not an anchor */
	if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		ps_log_warn(log, "ca_dir: skipping %s: owned by uid %lu or "
		    "writable by others", full, (unsigned long)st.st_uid);
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
	if ((r = parse_eku(log, cfg->eku, p)) != PS_OK ||
	    (r = parse_cert_policy(log, cfg->cert_policy, p)) != PS_OK ||
	    (r = check_trust_paths(log, p)) != PS_OK)
		goto out;
	if (p->check_chain && (r = load_store(log, p)) != PS_OK)
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

/*
 * Build and verify the chain. On success *chain (when not NULL) gets the
 * verified chain, leaf first, for the revocation check.
 */
static int
check_chain(const struct ps_policy *p, X509 *cert, time_t now, char *why,
    size_t whylen, STACK_OF(X509) **chain)
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
		if (chain != NULL &&
		    (*chain = X509_STORE_CTX_get1_chain(ctx)) == NULL) {
			snprintf(why, whylen, "issuer not trusted: cannot "
			    "read the verified chain");
			r = PS_ERR_POLICY;
		}
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

/* ------------------------------------------------------------ revocation */

/* RFC 2253 text of a name for messages, truncated to fit. */
static void
name_text(const X509_NAME *name, char *out, size_t outlen)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *text = NULL;
	long n;

	snprintf(out, outlen, "(unreadable name)");
	if (bio == NULL)
		return;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(bio, &text)) > 0 && text != NULL)
		snprintf(out, outlen, "%.*s", n > 512 ? 512 : (int)n, text);
	BIO_free(bio);
	ERR_clear_error();
}

/* "revoked on DATE (reason)" for the leaf, with who for a CA. */
static int
say_revoked(X509 *cert, bool leaf, const struct ps_crl_answer *a,
    char *why, size_t whylen)
{
	const char *reason = ps_crl_reason_name(a->reason);
	char date[11], subject[256];

	ps_format_date(a->revoked_at, date);
	if (leaf) {
		snprintf(why, whylen, "revoked on %s%s%s%s", date,
		    reason != NULL ? " (" : "", reason != NULL ? reason : "",
		    reason != NULL ? ")" : "");
		return PS_ERR_POLICY;
	}
	name_text(X509_get_subject_name(cert), subject, sizeof(subject));
	snprintf(why, whylen, "issuer not trusted: CA %s revoked on %s%s%s%s",
	    subject, date, reason != NULL ? " (" : "",
	    reason != NULL ? reason : "", reason != NULL ? ")" : "");
	return PS_ERR_POLICY;
}

/*
 * A CRL that is missing, out of date or not yet valid: crl=require
 * refuses, crl=ifpresent logs and goes on with what it has (a stale CRL
 * still lists every revocation it knew of).
 */
static int
crl_doubt(const struct ps_policy *p, const char *msg, char *why,
    size_t whylen)
{
	if (p->crl == PS_CRL_REQUIRE) {
		snprintf(why, whylen, "%s", msg);
		return PS_ERR_POLICY;
	}
	ps_log_warn(&p->log, "%s (accepted: crl=ifpresent)", msg);
	return PS_OK;
}

/* Judge one certificate of the chain by its issuer's CRL. */
static int
check_one_crl(const struct ps_policy *p, struct ps_crl_view *view,
    X509 *cert, X509 *issuer, bool leaf, time_t now, char *why,
    size_t whylen)
{
	struct ps_crl_answer a;
	char name[256], date[11], msg[512];
	long long t = (long long)now;
	int r;

	name_text(X509_get_issuer_name(cert), name, sizeof(name));
	if ((r = ps_crl_lookup(view, cert, issuer, &a)) != PS_OK) {
		/* a damaged index or CRL never reads as "no CRL" */
		snprintf(why, whylen, "cannot check revocation for %s: %s",
		    name, ps_status_str(r));
		return PS_ERR_POLICY;
	}
	if (a.found && a.revoked)
		return say_revoked(cert, leaf, &a, why, whylen);
	if (!a.found) {
		snprintf(msg, sizeof(msg), "no CRL for %s", name);
		return crl_doubt(p, msg, why, whylen);
	}
	if (t > a.next_update + p->clock_skew) {
		ps_format_date(a.next_update, date);
		snprintf(msg, sizeof(msg), "CRL for %s is stale since %s", name,
		    date);
		return crl_doubt(p, msg, why, whylen);
	}
	if (a.this_update > t + p->clock_skew) {
		ps_format_date(a.this_update, date);
		snprintf(msg, sizeof(msg), "CRL for %s is not valid before %s",
		    name, date);
		return crl_doubt(p, msg, why, whylen);
	}
	return PS_OK;
}

/* Every certificate of the verified chain but its self-signed root. */
static int
check_revocation(const struct ps_policy *p, STACK_OF(X509) *chain,
    time_t now, char *why, size_t whylen)
{
	struct ps_crl_view *view = NULL;
	int i, n = sk_X509_num(chain), r;

	if ((r = ps_crl_view_open(&p->log, p->crl_dir, &view)) != PS_OK) {
		snprintf(why, whylen, "cannot check revocation: crl_dir %s: "
		    "%s", p->crl_dir, ps_status_str(r));
		return PS_ERR_POLICY;
	}
	for (i = 0, r = PS_OK; r == PS_OK && i + 1 < n; i++)
		r = check_one_crl(p, view, sk_X509_value(chain, i),
		    sk_X509_value(chain, i + 1), i == 0, now, why, whylen);
	ps_crl_view_free(view);
	return r;
}

/* The chain, then (when configured) its revocation status. */
static int
check_trust(const struct ps_policy *p, X509 *cert, time_t now, char *why,
    size_t whylen)
{
	STACK_OF(X509) *chain = NULL;
	int r;

	r = check_chain(p, cert, now, why, whylen,
	    p->check_revocation ? &chain : NULL);
	if (r == PS_OK && p->check_revocation)
		r = check_revocation(p, chain, now, why, whylen);
	sk_X509_pop_free(chain, X509_free);
	return r;
}

/* ------------------------------------------------------------ usage */

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
	if (policy->check_chain &&
	    (r = check_trust(policy, cert, now, why, whylen)) != PS_OK)
		return r;
	if ((r = check_extensions_decoded(cert, why, whylen)) != PS_OK ||
	    (r = check_key_usage(cert, why, whylen)) != PS_OK ||
	    (r = check_eku(policy, cert, why, whylen)) != PS_OK)
		return r;
	why[0] = '\0';
	return PS_OK;
}

int
ps_policy_crl_update(const struct ps_policy *policy,
    const struct ps_log *log, struct ps_crl_update_report *report)
{
	if (policy == NULL)
		return PS_ERR_INTERNAL;
	if (policy->store == NULL || policy->crl_dir == NULL) {
		ps_log_err(log, "crl-update needs crl_dir and ca_file or "
		    "ca_dir (CRL signatures are verified with those CAs)");
		return PS_ERR_INVALID;
	}
	return ps_crl_update(log, policy->crl_dir, policy->store, report);
}

bool
ps_policy_checks_revocation(const struct ps_policy *policy)
{
	return policy != NULL && policy->check_revocation;
}
