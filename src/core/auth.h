/*
 * auth.h - the authentication and account flows, without PAM.
 *
 * pam/pam_personalsign.c only parses arguments, fetches PAM items and
 * maps the ps_status these return onto PAM codes; tests drive the same
 * functions directly.
 */
#ifndef PS_AUTH_H
#define PS_AUTH_H

#include <time.h>

#include "cert.h"
#include "config.h"
#include "conv.h"
#include "log.h"
#include "registry.h"

struct ps_auth_request {
	const char *user;
	const char *service;	/* PAM_SERVICE, "" if unknown */
	const char *rhost;	/* PAM_RHOST, NULL or "" when local */
	const char *authtok;	/* earlier module's password, may be NULL */
	time_t now;		/* 0: time(NULL) */
};

struct ps_auth_result {
	char fingerprint[PS_FP_HEX_LEN + 1];	/* the key that signed */
	time_t not_after;
	/* true when the PIN/password came from authtok (use/try_first_pass) */
	int used_authtok;
};

/*
 * The whole login: registry lookup, policy, token, unlock, challenge,
 * signature, verification with the REGISTERED key. PS_OK only when that
 * verification succeeded. Errors: PS_ERR_NOT_FOUND (user has no usable
 * registration), PS_ERR_POLICY / PS_ERR_EXPIRED (every registered
 * certificate refused), PS_ERR_NO_TOKEN, PS_ERR_BAD_SECRET,
 * PS_ERR_PIN_LOCKED, PS_ERR_AUTH, PS_ERR_CONV, PS_ERR_UNSAFE, ...
 * That is mode=local; ps_effective_mode() says which flow runs, and the
 * remote ones (remote.h) return the same kinds of codes.
 */
int ps_authenticate(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const struct ps_auth_request *req,
    struct ps_auth_result *result);

/*
 * Record in `result` the registered entry a login was accepted with: its
 * fingerprint and expiry (0 when unreadable). Every mode (local, remote,
 * sshauth) reports through this, so the PAM module sees them alike.
 */
void ps_auth_result_set(struct ps_auth_result *result,
    const struct ps_reg_entry *e);

/*
 * ps_authenticate, plus what sshd reported in the PAM environment as
 * SSH_AUTH_INFO_0 (NULL when absent; never taken from the process
 * environment), which mode=sshauth needs. ps_authenticate() is this with
 * NULL.
 */
int ps_authenticate_ssh(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const struct ps_auth_request *req,
    const char *ssh_auth_info, struct ps_auth_result *result);

/*
 * The mode a login runs in: cfg->mode, except that "auto" means remote
 * for a remote session (rhost set) unless allow_remote_token, else local.
 * ps_authenticate dispatches on it (remote and sshauth: remote.h).
 */
enum ps_mode ps_effective_mode(const struct ps_config *cfg,
    const char *rhost);

/*
 * The user's registered entries that pass policy at `now`: they are the
 * first *usable entries of *list (the caller frees the list with
 * ps_reg_list_free on every return). Every flow that accepts a key (local,
 * remote, sshauth, authorized_keys) starts here, so all refuse for the
 * same reasons. PS_ERR_INVALID (bad user name), PS_ERR_NOT_FOUND,
 * PS_ERR_EXPIRED / PS_ERR_POLICY (every entry refused; the user is told
 * through conv, which may be NULL), or a registry error.
 */
int ps_usable_keys(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const char *user, time_t now,
    struct ps_reg_list *list, size_t *usable);

struct ps_account_result {
	time_t not_after;	/* of the best (latest-expiring) certificate */
	int days_left;		/* whole days until not_after, >= 0 */
	char fingerprint[PS_FP_HEX_LEN + 1];
	/* on a refusal: why, for the user ("expired on 2026-01-31",
	 * "revoked on ...", "issuer not trusted: ..."); "" otherwise */
	char why[256];
};

/*
 * Account phase: look at the user's registered certificates (or only
 * `fingerprint` when not NULL: the key used to authenticate). PS_OK when
 * one is usable (result filled; the caller warns when days_left <=
 * expiry_warn_days), PS_ERR_EXPIRED when all have expired,
 * PS_ERR_POLICY when refused otherwise, PS_ERR_NOT_FOUND.
 */
int ps_account_check(const struct ps_config *cfg, const struct ps_log *log,
    const char *user, const char *fingerprint, time_t now,
    struct ps_account_result *result);

#endif /* PS_AUTH_H */
