/*
 * lifecycle.h - renewal, reissue and self-service re-registration: the
 * rules personalsign-enroll (renew, reissue, self-renew) and the module's
 * auto_renew share, so that all of them accept and refuse the same new
 * certificates for the same reasons.
 *
 * A renewal or reissue always brings a NEW key pair. The new certificate
 * must name the same person as the registered one it replaces (identity=
 * email: the e-mail address of the SAN or subject; identity=subject: the
 * whole subject name), chain to the trust anchors and pass the rest of
 * the login policy, carry a different key, and be newer: a renewal ends
 * later and starts no earlier; a reissue (which CAs often give the old
 * expiry) starts no earlier. The old key is then superseded - usable
 * until it expires - or retired at once.
 */
#ifndef PS_LIFECYCLE_H
#define PS_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/x509.h>

#include "config.h"
#include "conv.h"
#include "log.h"
#include "policy.h"
#include "registry.h"
#include "token.h"

enum ps_identity_mode {
	PS_IDENTITY_EMAIL,	/* default */
	PS_IDENTITY_SUBJECT,
};

enum ps_renew_kind {
	PS_RENEW,		/* new notAfter later, notBefore not earlier */
	PS_REISSUE,		/* notBefore not earlier */
};

/* cfg->identity: NULL or "email", or "subject". PS_ERR_INVALID (logged). */
int ps_identity_mode_parse(const struct ps_log *log, const char *s,
    enum ps_identity_mode *out);

/* PS_OK when both name the same person; else PS_ERR_POLICY and why. */
int ps_same_person(enum ps_identity_mode mode, X509 *registered, X509 *cand,
    char *why, size_t whylen);

/*
 * May `cand` replace the registered certificate `old`? Checks, in this
 * order: not a CA certificate, not the same key, same person, the policy
 * at `now` (issuer, time, usage, revocation), newer. PS_OK, or
 * PS_ERR_POLICY / PS_ERR_EXPIRED with one line in why ("different
 * person: ...", "issuer not trusted: ...", "not newer than ...", "same
 * key as ...").
 */
int ps_renewal_check(const struct ps_policy *policy,
    enum ps_identity_mode mode, enum ps_renew_kind kind, X509 *old,
    X509 *cand, time_t now, char *why, size_t whylen);

/*
 * Which usable entry of `list` does `cand` replace? `want_fp` (may be
 * NULL) names it; otherwise the only active entry naming the same
 * person. PS_ERR_NOT_FOUND (no such entry / nobody the same person),
 * PS_ERR_POLICY (the user's certificates name someone else), PS_ERR_EXISTS
 * (several candidates: name one) - each with why.
 */
int ps_renewal_find_old(const struct ps_reg_list *list,
    enum ps_identity_mode mode, X509 *cand, const char *want_fp,
    size_t *index, char *why, size_t whylen);

/*
 * Register `cand` for `user` (unless it already is: re-running after an
 * interruption is fine), then mark `old_fp` superseded by it, or retired
 * when retire_old. Each step is atomic and audited.
 */
int ps_renewal_apply(struct ps_registry *reg, const char *user, X509 *cand,
    const char *old_fp, bool retire_old, const struct ps_reg_change *why);

/*
 * Proof of possession: the token signs a fresh challenge (bound to this
 * host, `service`, `user` and `rhost`, which may be NULL) with `key`,
 * verified with `pub` - the key of a registered or a new certificate,
 * never one the token reports. A local login is this proof with the
 * registered key; auto_renew and self-renewal make it for a new key too.
 * The token must be unlocked for `key`. PS_OK or PS_ERR_AUTH / token
 * errors.
 */
int ps_prove_possession(const struct ps_log *log, struct ps_token *tok,
    const struct ps_token_key *key, EVP_PKEY *pub, const char *service,
    const char *user, const char *rhost, time_t now);

/*
 * auto_renew, after a successful login with the registered entry `used`
 * on the still open token `tok`: when the token also holds a key whose
 * certificate renews `used` (ps_renewal_check) and is not registered,
 * prove possession of it (a card asks for the PIN once more; an empty
 * answer skips), register it superseding `used`, and tell the user.
 * Never changes the login's outcome: every failure is logged and the
 * registration simply does not happen. Does nothing unless
 * cfg->auto_renew.
 */
void ps_auto_renew(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const char *user, const char *service,
    struct ps_token *tok, const struct ps_reg_entry *used, time_t now);

#endif /* PS_LIFECYCLE_H */
