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

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/x509.h>

#include "config.h"
#include "crl.h"
#include "log.h"

struct ps_policy;

/*
 * Build a policy from the configuration: cert_policy, eku, clock_skew,
 * ca_file / ca_dir (loaded once; they, and crl_dir, must pass
 * ps_path_trusted), crl_dir and crl. Cheap enough to run per login: no
 * CRL is read here. PS_ERR_INVALID for contradictory or unknown options,
 * PS_ERR_UNSAFE for an untrusted path, PS_ERR_IO for a missing one.
 */
int ps_policy_new(const struct ps_config *cfg, const struct ps_log *log,
    struct ps_policy **out);
void ps_policy_free(struct ps_policy *policy);

/*
 * Check `cert` at time `now`. PS_OK, PS_ERR_EXPIRED (expired), or
 * PS_ERR_POLICY (not yet valid, untrusted issuer, wrong usage, revoked,
 * unsupported key, or under crl=require a missing or stale CRL). `why`
 * receives one line for logs and users: "expired on 2026-01-31", "not
 * valid before ...", "issuer not trusted: ...", "revoked on 2025-03-01
 * (keyCompromise)", "wrong key usage: ...", "CRL for ISSUER is stale
 * since DATE".
 */
int ps_policy_check(const struct ps_policy *policy, X509 *cert, time_t now,
    char *why, size_t whylen);

/* Does this policy look at CRLs (cert_policy / crl_dir / crl)? */
bool ps_policy_checks_revocation(const struct ps_policy *policy);

/*
 * personalsign-enroll crl-update: rebuild crl_dir's index, verifying each
 * CRL with the policy's trust anchors (crl.h). PS_ERR_INVALID when the
 * policy has no crl_dir or no anchors, or when some CRL file was not
 * usable (the others are indexed all the same).
 */
int ps_policy_crl_update(const struct ps_policy *policy,
    const struct ps_log *log, struct ps_crl_update_report *report);

#endif /* PS_POLICY_H */
