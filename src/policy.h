/*
 * policy.h - may this certificate be used to log in right now?
 *
 * Time (with a clock-skew allowance), key type, and - when a CA is
 * configured - the chain to the trust anchors, key usage / EKU and
 * revocation. The same code serves the module, the OpenVPN plugin and the
 * admin helper, so they all refuse for the same reasons and say so in the
 * same words.
 */
#ifndef PS_POLICY_H
#define PS_POLICY_H

#include <stddef.h>
#include <time.h>
#include <openssl/x509.h>

#include "config.h"
#include "log.h"

struct ps_policy;

/* Build a policy from the configuration (loads the trust anchors once). */
int ps_policy_new(const struct ps_config *cfg, const struct ps_log *log,
    struct ps_policy **out);
void ps_policy_free(struct ps_policy *policy);

/*
 * Check `cert` at time `now`. PS_OK, PS_ERR_EXPIRED (expired), or
 * PS_ERR_POLICY (not yet valid, untrusted issuer, wrong usage, revoked,
 * unsupported key). `why` receives one line for logs and users, e.g.
 * "expired on 2026-01-31".
 */
int ps_policy_check(const struct ps_policy *policy, X509 *cert, time_t now,
    char *why, size_t whylen);

#endif /* PS_POLICY_H */
