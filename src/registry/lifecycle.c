/*
 * lifecycle.c - renewal rules, proof of possession and auto_renew
 * (lifecycle.h).
 *
 * Everything that decides whether a new certificate may replace a
 * registered one is here, so that the admin tool and the module cannot
 * drift apart. Registering is always "add the new key, then supersede or
 * retire the old one": two atomic, audited registry changes; a crash in
 * between leaves both keys active (nothing lost, nothing half-written)
 * and running the same command again completes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "challenge.h"
#include "lifecycle.h"
#include "ps_status.h"
#include "util.h"

#define HOST_MAX		256
#define PROOF_LIFETIME		60

int
ps_identity_mode_parse(const struct ps_log *log, const char *s,
    enum ps_identity_mode *out)
{
	*out = PS_IDENTITY_EMAIL;
	if (s == NULL || strcmp(s, "email") == 0)
		return PS_OK;
	if (strcmp(s, "subject") == 0) {
		*out = PS_IDENTITY_SUBJECT;
		return PS_OK;
	}
	ps_log_err(log, "identity: \"%s\" is not email or subject", s);
	return PS_ERR_INVALID;
}

/* printable copy of certificate text for messages */
static void
shown(const char *in, char *out, size_t outlen)
{
	size_t i = 0;

	if (in == NULL || *in == '\0')
		in = "(none)";
	for (; *in != '\0' && i + 1 < outlen; in++)
		out[i++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
	out[i] = '\0';
}

static int
same_email(X509 *old, X509 *cand, char *why, size_t whylen)
{
	struct ps_identity a, b;
	char sa[256], sb[256];
	int r = PS_ERR_POLICY;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (ps_cert_identity(old, &a) != PS_OK ||
	    ps_cert_identity(cand, &b) != PS_OK) {
		snprintf(why, whylen, "cannot read the e-mail addresses");
		goto out;
	}
	shown(a.email, sa, sizeof(sa));
	shown(b.email, sb, sizeof(sb));
	if (a.email == NULL) {
		snprintf(why, whylen, "the registered certificate names no "
		    "e-mail address (use identity=subject)");
		goto out;
	}
	if (b.email == NULL) {
		snprintf(why, whylen, "different person: the new certificate "
		    "names no e-mail address (the registered one: %s)", sa);
		goto out;
	}
	/* e-mail domains are case-insensitive, and so are CAs in practice */
	if (strcasecmp(a.email, b.email) != 0) {
		snprintf(why, whylen, "different person: the new certificate "
		    "names %s, the registered one %s", sb, sa);
		goto out;
	}
	r = PS_OK;
 out:
	ps_identity_clear(&a);
	ps_identity_clear(&b);
	return r;
}

static int
same_subject(X509 *old, X509 *cand, char *why, size_t whylen)
{
	struct ps_identity a, b;
	char sa[256], sb[256];
	int r = PS_OK;

	/* an empty subject (the SAN names the holder) names no one */
	if (X509_NAME_entry_count(X509_get_subject_name(old)) == 0) {
		snprintf(why, whylen, "the registered certificate has an empty "
		    "subject (use identity=email)");
		return PS_ERR_POLICY;
	}
	if (X509_NAME_cmp(X509_get_subject_name(old),
	    X509_get_subject_name(cand)) == 0)
		return PS_OK;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (ps_cert_identity(old, &a) != PS_OK)
		memset(&a, 0, sizeof(a));
	if (ps_cert_identity(cand, &b) != PS_OK)
		memset(&b, 0, sizeof(b));
	shown(a.subject, sa, sizeof(sa));
	shown(b.subject, sb, sizeof(sb));
	snprintf(why, whylen, "different person: the new certificate names "
	    "\"%s\", the registered one \"%s\"", sb, sa);
	r = PS_ERR_POLICY;
	ps_identity_clear(&a);
	ps_identity_clear(&b);
	return r;
}

int
ps_same_person(enum ps_identity_mode mode, X509 *registered, X509 *cand,
    char *why, size_t whylen)
{
	if (registered == NULL || cand == NULL) {
		snprintf(why, whylen, "no certificate");
		return PS_ERR_INVALID;
	}
	if (mode == PS_IDENTITY_SUBJECT)
		return same_subject(registered, cand, why, whylen);
	return same_email(registered, cand, why, whylen);
}

static bool
same_key(X509 *a, X509 *b)
{
	char fa[PS_FP_HEX_LEN + 1], fb[PS_FP_HEX_LEN + 1];

	return ps_cert_fingerprint(a, fa) == PS_OK &&
	    ps_cert_fingerprint(b, fb) == PS_OK && strcmp(fa, fb) == 0;
}

static int
check_newer(enum ps_renew_kind kind, X509 *old, X509 *cand, char *why,
    size_t whylen)
{
	time_t onb, ona, nnb, nna;
	char d[11];

	if (ps_cert_validity(old, &onb, &ona) != PS_OK ||
	    ps_cert_validity(cand, &nnb, &nna) != PS_OK) {
		snprintf(why, whylen, "unreadable validity dates");
		return PS_ERR_POLICY;
	}
	if (nnb < onb) {
		ps_format_date((long long)onb, d);
		snprintf(why, whylen, "older certificate: it was issued before "
		    "the registered one (valid from %s)", d);
		return PS_ERR_POLICY;
	}
	if (kind == PS_RENEW && nna <= ona) {
		ps_format_date((long long)ona, d);
		snprintf(why, whylen, "not newer: it does not outlast the "
		    "registered certificate (valid until %s; a reissue may, "
		    "use reissue)", d);
		return PS_ERR_POLICY;
	}
	return PS_OK;
}

int
ps_renewal_check(const struct ps_policy *policy,
    enum ps_identity_mode mode, enum ps_renew_kind kind, X509 *old,
    X509 *cand, time_t now, char *why, size_t whylen)
{
	char pwhy[256];
	int r;

	if (old == NULL || cand == NULL || policy == NULL) {
		snprintf(why, whylen, "no certificate");
		return PS_ERR_INVALID;
	}
	if (X509_check_ca(cand) != 0) {
		snprintf(why, whylen, "a CA certificate, not a personal one");
		return PS_ERR_POLICY;
	}
	if (same_key(old, cand)) {
		snprintf(why, whylen, "same key as the registered certificate "
		    "(a renewal or reissue brings a new key pair)");
		return PS_ERR_POLICY;
	}
	if ((r = ps_same_person(mode, old, cand, why, whylen)) != PS_OK)
		return r;
	r = ps_policy_check(policy, cand, now, pwhy, sizeof(pwhy));
	if (r != PS_OK) {
		snprintf(why, whylen, "%s", pwhy[0] != '\0' ? pwhy :
		    ps_status_str(r));
		return r == PS_ERR_EXPIRED ? r : PS_ERR_POLICY;
	}
	return check_newer(kind, old, cand, why, whylen);
}

int
ps_renewal_find_old(const struct ps_reg_list *list,
    enum ps_identity_mode mode, X509 *cand, const char *want_fp,
    size_t *index, char *why, size_t whylen)
{
	char pwhy[512] = "";
	size_t i, hits = 0;

	for (i = 0; want_fp != NULL && i < list->count; i++) {
		if (strcmp(list->entries[i].fingerprint, want_fp) == 0) {
			*index = i;
			return PS_OK;
		}
	}
	if (want_fp != NULL) {
		snprintf(why, whylen, "no usable registered key %.16s",
		    want_fp);
		return PS_ERR_NOT_FOUND;
	}
	for (i = 0; i < list->count; i++) {
		const struct ps_reg_entry *e = &list->entries[i];

		if (e->state != PS_KEY_ACTIVE)
			continue;
		if (ps_same_person(mode, e->cert, cand, pwhy, sizeof(pwhy)) !=
		    PS_OK)
			continue;
		if (hits++ == 0)
			*index = i;
	}
	if (hits == 1)
		return PS_OK;
	if (hits > 1) {
		snprintf(why, whylen, "%zu current certificates name the same "
		    "person: say which one with --old FINGERPRINT", hits);
		return PS_ERR_EXISTS;
	}
	if (pwhy[0] != '\0') {
		snprintf(why, whylen, "%s", pwhy);
		return PS_ERR_POLICY;
	}
	snprintf(why, whylen, "no current (active) certificate to replace");
	return PS_ERR_NOT_FOUND;
}

/* Is `fp` registered (usable) for `user` already? */
static int
registered_to(struct ps_registry *reg, const char *fp, const char *user,
    bool *yes)
{
	char *owner = NULL;
	int r;

	*yes = false;
	r = ps_registry_find_key(reg, fp, &owner);
	if (r == PS_ERR_NOT_FOUND)
		return PS_OK;
	if (r != PS_OK)
		return r;
	if (strcmp(owner, user) != 0) {
		ps_log_err(reg->log, "key %.16s is already registered to user "
		    "%s", fp, owner);
		r = PS_ERR_EXISTS;
	} else {
		*yes = true;
	}
	free(owner);
	return r;
}

int
ps_renewal_apply(struct ps_registry *reg, const char *user, X509 *cand,
    const char *old_fp, bool retire_old, const struct ps_reg_change *why)
{
	char fp[PS_FP_HEX_LEN + 1];
	bool already = false;
	int r;

	if (reg == NULL || cand == NULL || old_fp == NULL)
		return PS_ERR_INTERNAL;
	if (ps_cert_fingerprint(cand, fp) != PS_OK) {
		ps_log_err(reg->log, "cannot compute the new key's "
		    "fingerprint");
		return PS_ERR_INVALID;
	}
	if ((r = registered_to(reg, fp, user, &already)) != PS_OK)
		return r;
	if (already)
		ps_log_info(reg->log, "key %.16s is registered for %s already: "
		    "completing the replacement", fp, user);
	else if ((r = ps_registry_add(reg, user, cand, why)) != PS_OK)
		return r;
	if (retire_old)
		return ps_registry_set_state(reg, user, old_fp,
		    PS_KEY_RETIRED, NULL, why);
	return ps_registry_set_state(reg, user, old_fp, PS_KEY_SUPERSEDED, fp,
	    why);
}

int
ps_prove_possession(const struct ps_log *log, struct ps_token *tok,
    const struct ps_token_key *key, EVP_PKEY *pub, const char *service,
    const char *user, const char *rhost, time_t now)
{
	struct ps_challenge chal;
	unsigned char digest[EVP_MAX_MD_SIZE], *sig = NULL;
	char host[HOST_MAX + 1];
	size_t dlen = 0, siglen = 0;
	const EVP_MD *md;
	int r;

	memset(&chal, 0, sizeof(chal));
	if (tok == NULL || key == NULL)
		return PS_ERR_INTERNAL;
	/* a certificate whose key cannot be read proves nothing */
	if (pub == NULL)
		return PS_ERR_CRYPTO;
	if (gethostname(host, sizeof(host) - 1) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	r = ps_challenge_new(&chal, host, service != NULL ? service : "",
	    user, rhost != NULL ? rhost : "", now, PROOF_LIFETIME);
	if (r != PS_OK)
		goto out;
	md = ps_challenge_md_for_key(pub);
	if ((r = ps_challenge_digest(&chal, md, digest, &dlen)) != PS_OK)
		goto out;
	r = tok->ops->sign(tok, key, md, digest, dlen, &sig, &siglen);
	if (r != PS_OK) {
		ps_log_err(log, "user %s: the %s token could not sign with "
		    "%s: %s", user, tok->ops->name, key->label,
		    ps_status_str(r));
		goto out;
	}
	if ((r = ps_challenge_verify(log, &chal, pub, sig, siglen)) != PS_OK) {
		ps_log_err(log, "user %s: the signature made with %s does "
		    "not verify with the certificate's key", user, key->label);
		r = PS_ERR_AUTH;
	}
 out:
	free(sig);
	ps_wipe(digest, sizeof(digest));
	ps_challenge_clear(&chal);
	return r;
}

/* ------------------------------------------------------------ auto_renew */

/* The newest key on the token whose certificate renews `used`. */
static const struct ps_token_key *
find_renewal(const struct ps_log *log, const struct ps_policy *policy,
    enum ps_identity_mode mode, struct ps_token *tok,
    const struct ps_reg_entry *used, time_t now)
{
	const struct ps_token_key *keys, *best = NULL;
	time_t na, best_na = 0;
	char why[512];
	size_t n = 0, i;

	if (tok->ops->list_keys(tok, &keys, &n) != PS_OK)
		return NULL;
	for (i = 0; i < n; i++) {
		if (keys[i].cert == NULL || keys[i].pub == NULL ||
		    EVP_PKEY_eq(keys[i].pub, X509_get0_pubkey(used->cert)) == 1)
			continue;
		/* the certificate must be for the key the token holds */
		if (EVP_PKEY_eq(keys[i].pub, X509_get0_pubkey(keys[i].cert)) !=
		    1)
			continue;
		if (ps_renewal_check(policy, mode, PS_RENEW, used->cert,
		    keys[i].cert, now, why, sizeof(why)) != PS_OK) {
			ps_log_debug(log, "auto_renew: %s: not a renewal: %s",
			    keys[i].label, why);
			continue;
		}
		if (ps_cert_validity(keys[i].cert, NULL, &na) != PS_OK)
			continue;
		if (best == NULL || na > best_na) {
			best = &keys[i];
			best_na = na;
		}
	}
	return best;
}

/*
 * Has the registry ever seen this key: usable (for anyone), or in the
 * user's history (retired, removed)? Then auto_renew leaves it alone:
 * only keys never registered before are registered at login, and a
 * retired key on a card does not ask for a PIN at every login.
 */
static bool
known_key(const struct ps_config *cfg, const struct ps_log *log,
    const char *user, const char *fp)
{
	struct ps_registry *reg = NULL;
	struct ps_reg_history h = { NULL, 0, 0 };
	char *owner = NULL;
	bool known = true;	/* when in doubt, do nothing */
	size_t i;
	int r;

	if (ps_registry_open(cfg, log, &reg) != PS_OK)
		return true;
	r = ps_registry_find_key(reg, fp, &owner);
	free(owner);
	if (r != PS_ERR_NOT_FOUND)
		goto out;
	if (ps_registry_history(reg, user, &h) != PS_OK)
		goto out;
	known = false;
	for (i = 0; i < h.count && !known; i++)
		known = strcmp(h.events[i].fingerprint, fp) == 0;
 out:
	ps_reg_history_free(&h);
	ps_registry_close(reg);
	return known;
}

/* Cards sign only after a PIN; keystores stay unlocked after login. */
static int
unlock_again(const struct ps_conv *conv, struct ps_token *tok,
    const struct ps_token_key *key, X509 *cert)
{
	char *pin = NULL, date[11], msg[256];
	time_t na = 0;
	int r;

	if (!tok->ops->lists_without_secret)
		return PS_OK;
	/* a blocked PIN, or too few tries left: do not even ask */
	if (tok->ops->check_ready != NULL &&
	    (r = tok->ops->check_ready(tok, key)) != PS_OK)
		return r;
	if (ps_cert_validity(cert, NULL, &na) != PS_OK)
		na = 0;
	ps_format_date((long long)na, date);
	snprintf(msg, sizeof(msg), "Your card holds a renewed PersonalSign "
	    "certificate (valid until %s). PIN to register it (empty: "
	    "skip): ", date);
	if ((r = ps_conv_prompt(conv, 0, msg, &pin)) != PS_OK)
		return PS_ERR_CONV;
	if (pin == NULL || pin[0] == '\0') {
		ps_free_secret(pin);
		return PS_ERR_CONV;
	}
	r = tok->ops->unlock(tok, key, pin);
	ps_free_secret(pin);
	return r;
}

static int
register_renewal(const struct ps_config *cfg, const struct ps_log *log,
    const char *user, const char *service, X509 *cand,
    const struct ps_reg_entry *used)
{
	struct ps_registry *reg = NULL;
	struct ps_reg_change why;
	char reason[160];
	int r;

	snprintf(reason, sizeof(reason), "auto_renew at login (%s): proved "
	    "possession of the registered and the new key",
	    service != NULL && service[0] != '\0' ? service : "unknown");
	why.actor = user;
	why.reason = reason;
	if ((r = ps_registry_open_for_writing(cfg, log, &reg)) != PS_OK)
		return r;
	r = ps_renewal_apply(reg, user, cand, used->fingerprint, false, &why);
	ps_registry_close(reg);
	return r;
}

static void
tell_user(const struct ps_conv *conv, X509 *cand, X509 *old)
{
	time_t nna = 0, ona = 0;
	char nd[11], od[11];

	if (ps_cert_validity(cand, NULL, &nna) != PS_OK ||
	    ps_cert_validity(old, NULL, &ona) != PS_OK)
		return;
	ps_format_date((long long)nna, nd);
	ps_format_date((long long)ona, od);
	ps_conv_info(conv, "PersonalSign: your renewed certificate (valid "
	    "until %s) is now registered. The old one stays usable until %s.",
	    nd, od);
}

void
ps_auto_renew(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const char *user, const char *service,
    struct ps_token *tok, const struct ps_reg_entry *used, time_t now)
{
	struct ps_policy *policy = NULL;
	const struct ps_token_key *key;
	enum ps_identity_mode mode;
	char fp[PS_FP_HEX_LEN + 1];
	int r;

	if (cfg == NULL || !cfg->auto_renew || tok == NULL || used == NULL ||
	    used->cert == NULL || !ps_user_name_valid(user))
		return;
	if (ps_identity_mode_parse(log, cfg->identity, &mode) != PS_OK ||
	    ps_policy_new(cfg, log, &policy) != PS_OK)
		return;
	key = find_renewal(log, policy, mode, tok, used, now);
	ps_policy_free(policy);
	if (key == NULL)
		return;
	if (ps_cert_fingerprint(key->cert, fp) != PS_OK)
		return;
	if (known_key(cfg, log, user, fp)) {
		ps_log_debug(log, "auto_renew: user %s: key %.16s on %s is "
		    "known to the registry already", user, fp, key->label);
		return;
	}
	ps_log_info(log, "auto_renew: user %s: %s holds key %.16s renewing "
	    "%.16s", user, key->label, fp, used->fingerprint);
	if ((r = unlock_again(conv, tok, key, key->cert)) != PS_OK) {
		ps_log_notice(log, "auto_renew: user %s: renewed key %.16s not "
		    "registered: %s", user, fp, r == PS_ERR_CONV ?
		    "skipped" : ps_status_str(r));
		return;
	}
	r = ps_prove_possession(log, tok, key, X509_get0_pubkey(key->cert),
	    service, user, NULL, now);
	if (r == PS_OK)
		r = register_renewal(cfg, log, user, service, key->cert, used);
	if (r != PS_OK) {
		ps_log_notice(log, "auto_renew: user %s: renewed key %.16s not "
		    "registered: %s", user, fp, ps_status_str(r));
		return;
	}
	ps_log_notice(log, "auto_renew: user %s: registered renewed key %.16s, "
	    "%.16s superseded", user, fp, used->fingerprint);
	tell_user(conv, key->cert, used->cert);
}
