/*
 * auth.c - the login and account flows of DESIGN.md, free of PAM.
 *
 * Order matters for safety: only registered certificates that pass policy
 * NOW are candidates; the token must hold one of their keys; the token's
 * signature over a fresh, context-bound challenge is verified with the
 * REGISTERED public key, never with anything the token reports.
 *
 * ps_authenticate picks the flow by mode: the local one lives here, the
 * remote challenge and sshauth flows in remote.c and sshauth.c; all of
 * them start from ps_usable_keys, so they refuse for the same reasons.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "challenge.h"
#include "lifecycle.h"
#include "policy.h"
#include "ps_status.h"
#include "registry.h"
#include "remote.h"
#include "token.h"
#include "util.h"

/* The user's passwd entry, copied out so nothing points into NSS buffers. */
struct user_info {
	uid_t uid;
	gid_t gid;
	char *home;
	bool known;
};

static int
user_info_lookup(const char *user, struct user_info *ui)
{
	struct passwd pw, *res = NULL;
	char *buf;
	long size = sysconf(_SC_GETPW_R_SIZE_MAX);
	int e;

	memset(ui, 0, sizeof(*ui));
	if (size < 1024)
		size = 16384;
	if ((buf = malloc((size_t)size)) == NULL)
		return PS_ERR_NOMEM;
	e = getpwnam_r(user, &pw, buf, (size_t)size, &res);
	if (e == 0 && res != NULL) {
		ui->uid = pw.pw_uid;
		ui->gid = pw.pw_gid;
		ui->known = true;
		if (pw.pw_dir != NULL && (ui->home = strdup(pw.pw_dir)) == NULL) {
			free(buf);
			return PS_ERR_NOMEM;
		}
	}
	free(buf);
	return PS_OK;
}

/*
 * Move the entries whose certificate passes policy now to the front of
 * the list and count them in *usable (the refused ones stay behind them,
 * so the list still frees everything). Returns PS_OK when at least one is
 * usable; otherwise PS_ERR_EXPIRED when every refusal was an expiry, else
 * PS_ERR_POLICY.
 */
static int
filter_by_policy(const struct ps_log *log, const struct ps_policy *policy,
    const char *user, struct ps_reg_list *list, time_t now, size_t *usable)
{
	size_t i, kept = 0;
	bool only_expired = true;
	char why[256];
	int r;

	for (i = 0; i < list->count; i++) {
		struct ps_reg_entry *e = &list->entries[i];

		r = ps_policy_check(policy, e->cert, now, why, sizeof(why));
		if (r == PS_OK) {
			if (kept != i) {
				struct ps_reg_entry tmp = list->entries[kept];

				list->entries[kept] = *e;
				*e = tmp;
			}
			kept++;
			continue;
		}
		if (r != PS_ERR_EXPIRED)
			only_expired = false;
		ps_log_notice(log, "user %s: registered key %.16s refused: %s",
		    user, e->fingerprint, why);
	}
	*usable = kept;
	if (kept == 0)
		return only_expired ? PS_ERR_EXPIRED : PS_ERR_POLICY;
	return PS_OK;
}

/* The usable registered keys, as the token backends see them. */
struct registered_keys {
	const struct ps_reg_list *list;
	size_t usable;
};

/* Index of the usable registered entry with public key `pub`, or -1. */
static long
registered_index(const struct registered_keys *rk, EVP_PKEY *pub)
{
	size_t j;

	if (pub == NULL)
		return -1;
	for (j = 0; j < rk->usable; j++) {
		EVP_PKEY *reg = X509_get0_pubkey(rk->list->entries[j].cert);

		if (reg != NULL && EVP_PKEY_eq(reg, pub) == 1)
			return (long)j;
	}
	return -1;
}

/* token.h's want_key: lets a card stop reading slots (and a reader search
 * stop) as soon as it meets a registered key. */
static bool
want_registered_key(void *arg, EVP_PKEY *pub)
{
	return registered_index(arg, pub) >= 0;
}

/* The first key on the token that is a usable registered one. */
static int
match_token_key(struct ps_token *tok, const struct registered_keys *rk,
    const struct ps_token_key **key, size_t *entry)
{
	const struct ps_token_key *keys;
	size_t nkeys, i;
	long j;
	int r;

	if ((r = tok->ops->list_keys(tok, &keys, &nkeys)) != PS_OK)
		return r;
	for (i = 0; i < nkeys; i++) {
		if ((j = registered_index(rk, keys[i].pub)) >= 0) {
			*key = &keys[i];
			*entry = (size_t)j;
			return PS_OK;
		}
	}
	return PS_ERR_NO_TOKEN;
}

/*
 * Ask for (or reuse) the PIN/password and unlock. With try_first_pass a
 * wrong earlier password falls back to one prompt; with use_first_pass it
 * does not.
 */
static int
unlock_token(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const struct ps_auth_request *req,
    struct ps_token *tok, const struct ps_token_key *key,
    struct ps_auth_result *result)
{
	char *secret = NULL;
	int r;

	if ((cfg->use_first_pass || cfg->try_first_pass) &&
	    req->authtok != NULL) {
		r = tok->ops->unlock(tok, key, req->authtok);
		if (r == PS_OK) {
			result->used_authtok = 1;
			return PS_OK;
		}
		if (cfg->use_first_pass || r != PS_ERR_BAD_SECRET)
			return r;
		ps_log_debug(log, "try_first_pass: earlier password did not "
		    "unlock the %s token, asking", tok->ops->name);
	} else if (cfg->use_first_pass) {
		ps_log_err(log, "use_first_pass: no password from an earlier "
		    "module");
		return PS_ERR_CONV;
	}
	if (tok->ops->check_ready != NULL && key != NULL &&
	    (r = tok->ops->check_ready(tok, key)) != PS_OK)
		return r;
	r = ps_conv_prompt(conv, 0, tok->ops->secret_prompt(tok), &secret);
	if (r != PS_OK) {
		ps_log_err(log, "could not ask user %s for the %s secret",
		    req->user, tok->ops->name);
		return PS_ERR_CONV;
	}
	r = tok->ops->unlock(tok, key, secret);
	ps_free_secret(secret);
	return r;
}

void
ps_auth_result_set(struct ps_auth_result *result,
    const struct ps_reg_entry *e)
{
	memcpy(result->fingerprint, e->fingerprint,
	    sizeof(result->fingerprint));
	if (ps_cert_validity(e->cert, NULL, &result->not_after) != PS_OK)
		result->not_after = 0;
}

static bool
is_remote(const struct ps_auth_request *req)
{
	return req->rhost != NULL && req->rhost[0] != '\0';
}

/*
 * The local flow: the token is on this machine (console, su, sudo, screen
 * lock).
 */
static int
authenticate_local(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const struct ps_auth_request *req,
    struct ps_auth_result *result)
{
	struct ps_reg_list list = { NULL, 0 };
	struct ps_token *tok = NULL;
	struct ps_token_params params;
	struct registered_keys rk;
	struct user_info ui = { 0, 0, NULL, false };
	const struct ps_token_key *key = NULL;
	size_t entry = 0, usable = 0;
	time_t now = req->now != 0 ? req->now : time(NULL);
	int r;

	r = ps_usable_keys(cfg, log, conv, req->user, now, &list, &usable);
	if (r != PS_OK)
		goto out;
	if (is_remote(req) && !cfg->allow_remote_token) {
		ps_log_notice(log, "user %s: remote session from %s: not "
		    "using a token on this machine (allow_remote_token is "
		    "off)", req->user, req->rhost);
		ps_conv_error(conv, "PersonalSign: a local card or keystore "
		    "cannot be used for a remote login.");
		r = PS_ERR_NO_TOKEN;
		goto out;
	}
	if ((r = user_info_lookup(req->user, &ui)) != PS_OK)
		goto out;
	if (!ui.known) {
		/* A token is opened as its owner: without an account there is
		 * no one to open it as. */
		ps_log_err(log, "user %s is registered but has no account on "
		    "this system", req->user);
		/* not NOT_FOUND: nouserok must not turn this into IGNORE */
		r = PS_ERR_INVALID;
		goto out;
	}
	memset(&params, 0, sizeof(params));
	params.cfg = cfg;
	params.log = log;
	params.conv = conv;
	params.user = req->user;
	params.uid = ui.uid;
	params.gid = ui.gid;
	params.home = ui.home;
	rk.list = &list;
	rk.usable = usable;
	/* With auto_renew the token must show every key it holds, the
	 * renewed one included, not stop at the first registered one. */
	params.want_key = cfg->auto_renew ? NULL : want_registered_key;
	params.want_key_arg = &rk;
	if ((r = ps_token_open(cfg->backend, &params, &tok)) != PS_OK)
		goto out;
	if (tok->ops->lists_without_secret) {
		r = match_token_key(tok, &rk, &key, &entry);
		if (r == PS_ERR_NO_TOKEN) {
			ps_log_notice(log, "user %s: the %s token holds none "
			    "of the user's registered keys", req->user,
			    tok->ops->name);
			ps_conv_error(conv, "This card holds no key "
			    "registered for %s.", req->user);
		}
		if (r != PS_OK)
			goto out;
	}
	r = unlock_token(cfg, log, conv, req, tok, key, result);
	if (r != PS_OK) {
		ps_log_notice(log, "user %s: could not unlock the %s token: %s",
		    req->user, tok->ops->name, ps_status_str(r));
		goto out;
	}
	if (key == NULL) {
		r = match_token_key(tok, &rk, &key, &entry);
		if (r == PS_ERR_NO_TOKEN) {
			ps_log_notice(log, "user %s: the keystore holds none "
			    "of the user's registered keys", req->user);
			ps_conv_error(conv, "Your keystore does not hold the "
			    "key registered for %s.", req->user);
		}
		if (r != PS_OK)
			goto out;
	}
	/* verified with the REGISTERED key, never one the token reports */
	r = ps_prove_possession(log, tok, key,
	    X509_get0_pubkey(list.entries[entry].cert), req->service,
	    req->user, req->rhost, now);
	if (r != PS_OK)
		goto out;
	ps_auth_result_set(result, &list.entries[entry]);
	ps_log_info(log, "user %s authenticated with key %.16s (%s)",
	    req->user, result->fingerprint, key->label);
	/* auto_renew: a renewed key on the same token; never changes r */
	ps_auto_renew(cfg, log, conv, req->user, req->service, tok,
	    &list.entries[entry], now);
	r = PS_OK;
 out:
	ps_token_close(tok);
	ps_reg_list_free(&list);
	free(ui.home);
	return r;
}

int
ps_usable_keys(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const char *user, time_t now,
    struct ps_reg_list *list, size_t *usable)
{
	struct ps_registry *reg = NULL;
	struct ps_policy *policy = NULL;
	int r;

	list->entries = NULL;
	list->count = 0;
	*usable = 0;
	if (!ps_user_name_valid(user)) {
		ps_log_err(log, "refusing an invalid user name");
		return PS_ERR_INVALID;
	}
	if ((r = ps_registry_open(cfg, log, &reg)) != PS_OK)
		goto out;
	r = ps_registry_lookup_user(reg, user, list);
	if (r != PS_OK) {
		if (r == PS_ERR_NOT_FOUND)
			ps_log_info(log, "user %s has no registered key", user);
		goto out;
	}
	if ((r = ps_policy_new(cfg, log, &policy)) != PS_OK)
		goto out;
	r = filter_by_policy(log, policy, user, list, now, usable);
	if (r != PS_OK)
		ps_conv_error(conv, "Your registered PersonalSign certificate "
		    "%s. Please contact your administrator.",
		    r == PS_ERR_EXPIRED ? "has expired" : "is not accepted");
 out:
	if (r != PS_OK) {
		ps_reg_list_free(list);
		list->entries = NULL;
		list->count = 0;
		*usable = 0;
	}
	ps_policy_free(policy);
	ps_registry_close(reg);
	return r;
}

enum ps_mode
ps_effective_mode(const struct ps_config *cfg, const char *rhost)
{
	bool remote = rhost != NULL && rhost[0] != '\0';

	if (cfg->mode != PS_MODE_AUTO)
		return cfg->mode;
	/* A remote session cannot reach a card on this machine unless the
	 * admin said so; ask the client to sign instead. */
	return remote && !cfg->allow_remote_token ? PS_MODE_REMOTE :
	    PS_MODE_LOCAL;
}

int
ps_authenticate(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const struct ps_auth_request *req,
    struct ps_auth_result *result)
{
	return ps_authenticate_ssh(cfg, log, conv, req, NULL, result);
}

int
ps_authenticate_ssh(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const struct ps_auth_request *req,
    const char *ssh_auth_info, struct ps_auth_result *result)
{
	memset(result, 0, sizeof(*result));
	if (!ps_user_name_valid(req->user)) {
		ps_log_err(log, "refusing an invalid user name");
		return PS_ERR_INVALID;
	}
	switch (ps_effective_mode(cfg, req->rhost)) {
	case PS_MODE_LOCAL:
		return authenticate_local(cfg, log, conv, req, result);
	case PS_MODE_REMOTE:
		return ps_remote_authenticate(cfg, log, conv, req, result);
	case PS_MODE_SSHAUTH:
		return ps_sshauth_authenticate(cfg, log, conv, req,
		    ssh_auth_info, result);
	case PS_MODE_AUTO:
		break;
	}
	ps_log_err(log, "internal error: no authentication mode chosen");
	return PS_ERR_INTERNAL;
}

int
ps_account_check(const struct ps_config *cfg, const struct ps_log *log,
    const char *user, const char *fingerprint, time_t now,
    struct ps_account_result *result)
{
	struct ps_registry *reg = NULL;
	struct ps_policy *policy = NULL;
	struct ps_reg_list list = { NULL, 0 };
	bool any_expired = false, any = false, found = false;
	char why[256];
	time_t not_after;
	size_t i;
	int r;

	memset(result, 0, sizeof(*result));
	if (now == 0)
		now = time(NULL);
	if (!ps_user_name_valid(user)) {
		ps_log_err(log, "refusing an invalid user name");
		return PS_ERR_INVALID;
	}
	if ((r = ps_registry_open(cfg, log, &reg)) != PS_OK)
		goto out;
	if ((r = ps_registry_lookup_user(reg, user, &list)) != PS_OK)
		goto out;
	if ((r = ps_policy_new(cfg, log, &policy)) != PS_OK)
		goto out;
	for (i = 0; i < list.count; i++) {
		struct ps_reg_entry *e = &list.entries[i];

		if (fingerprint != NULL &&
		    strcmp(fingerprint, e->fingerprint) != 0)
			continue;
		found = true;
		r = ps_policy_check(policy, e->cert, now, why, sizeof(why));
		if (r != PS_OK && result->why[0] == '\0')
			snprintf(result->why, sizeof(result->why), "%s", why);
		if (r != PS_OK) {
			if (r == PS_ERR_EXPIRED)
				any_expired = true;
			ps_log_notice(log, "user %s: registered key %.16s: %s",
			    user, e->fingerprint, why);
			continue;
		}
		if (ps_cert_validity(e->cert, NULL, &not_after) != PS_OK)
			continue;
		if (!any || not_after > result->not_after) {
			result->not_after = not_after;
			memcpy(result->fingerprint, e->fingerprint,
			    sizeof(result->fingerprint));
		}
		any = true;
	}
	if (!found) {
		ps_log_err(log, "user %s: key %.16s used to authenticate is "
		    "no longer registered", user, fingerprint ? fingerprint : "");
		r = PS_ERR_NOT_FOUND;
	} else if (!any) {
		r = any_expired ? PS_ERR_EXPIRED : PS_ERR_POLICY;
	} else {
		long long secs = (long long)result->not_after - (long long)now;

		result->why[0] = '\0';

		result->days_left = secs > 0 ? (int)(secs / 86400) : 0;
		r = PS_OK;
	}
 out:
	ps_reg_list_free(&list);
	ps_policy_free(policy);
	ps_registry_close(reg);
	return r;
}
