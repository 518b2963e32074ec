/*
 * pam_personalsign.c - the PAM entry points and nothing else: read the
 * options, fetch PAM items, run the flow in src/core/auth.c and map its result
 * onto a PAM code.
 *
 * PAM_IGNORE is returned in exactly one case: a user with no registered
 * key when `nouserok` is set. Every other failure is a failure: peers
 * shipped authentication bypasses in 2025 by returning PAM_IGNORE where
 * authentication was impossible (CVE-2025-24531, CVE-2025-23013).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "auth.h"
#include "config.h"
#include "ps_status.h"
#include "util.h"

#define DATA_FINGERPRINT "pam_personalsign_fingerprint"

struct module_ctx {
	pam_handle_t *pamh;
	int silent;
};

static void
log_to_syslog(void *arg, enum ps_log_level level, const char *msg)
{
	static const int prio[] = {
		[PS_LOG_ERR] = LOG_ERR, [PS_LOG_WARN] = LOG_WARNING,
		[PS_LOG_NOTICE] = LOG_NOTICE, [PS_LOG_INFO] = LOG_INFO,
		[PS_LOG_DEBUG] = LOG_DEBUG,
	};
	struct module_ctx *ctx = arg;

	pam_syslog(ctx->pamh, prio[level], "%s", msg);
}

static int
conv_prompt(void *arg, int echo, const char *msg, char **answer)
{
	struct module_ctx *ctx = arg;
	int r;

	*answer = NULL;
	r = pam_prompt(ctx->pamh, echo ? PAM_PROMPT_ECHO_ON :
	    PAM_PROMPT_ECHO_OFF, answer, "%s", msg);
	if (r != PAM_SUCCESS || *answer == NULL) {
		ps_free_secret(*answer);
		*answer = NULL;
		return PS_ERR_CONV;
	}
	return PS_OK;
}

static void
conv_info(void *arg, const char *msg)
{
	struct module_ctx *ctx = arg;

	if (!ctx->silent)
		pam_info(ctx->pamh, "%s", msg);
}

static void
conv_error(void *arg, const char *msg)
{
	struct module_ctx *ctx = arg;

	if (!ctx->silent)
		pam_error(ctx->pamh, "%s", msg);
}

/* Options, user name and logging: what every entry point needs first. */
static int
module_begin(pam_handle_t *pamh, int flags, int argc, const char **argv,
    struct module_ctx *ctx, struct ps_log *log, struct ps_config *cfg,
    const char **user)
{
	int r;

	ctx->pamh = pamh;
	ctx->silent = (flags & PAM_SILENT) != 0;
	log->fn = log_to_syslog;
	log->arg = ctx;
	log->debug = 0;
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "debug") == 0)
			log->debug = 1;
	if (ps_config_from_args(cfg, argc, argv, log) != PS_OK) {
		pam_syslog(pamh, LOG_ERR, "configuration error, refusing");
		return PAM_SERVICE_ERR;
	}
	log->debug = cfg->debug;
	r = pam_get_user(pamh, user, NULL);
	if (r != PAM_SUCCESS || *user == NULL || **user == '\0') {
		pam_syslog(pamh, LOG_ERR, "cannot determine the user name");
		ps_config_free(cfg);
		return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_USER_UNKNOWN;
	}
	return PAM_SUCCESS;
}

static int
auth_status_to_pam(int status, const struct ps_config *cfg)
{
	switch (status) {
	case PS_OK:
		return PAM_SUCCESS;
	case PS_ERR_NOT_FOUND:
		return cfg->nouserok ? PAM_IGNORE : PAM_USER_UNKNOWN;
	case PS_ERR_INVALID:
		return PAM_USER_UNKNOWN;
	case PS_ERR_NO_TOKEN:
	case PS_ERR_UNSAFE:
	case PS_ERR_IO:
	case PS_ERR_TOKEN:
		return PAM_AUTHINFO_UNAVAIL;
	case PS_ERR_PIN_LOCKED:
		return PAM_MAXTRIES;
	case PS_ERR_CONV:
		return PAM_CONV_ERR;
	case PS_ERR_NOMEM:
		return PAM_BUF_ERR;
	case PS_ERR_CRYPTO:
	case PS_ERR_INTERNAL:
		return PAM_SYSTEM_ERR;
	default:
		/* policy, expiry, wrong secret, bad signature, unknown */
		return PAM_AUTH_ERR;
	}
}

static void
free_data(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	free(data);
}

PAM_EXTERN int
pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct module_ctx ctx;
	struct ps_log log;
	struct ps_config cfg;
	struct ps_conv conv = { conv_prompt, conv_info, conv_error, &ctx };
	struct ps_auth_request req;
	struct ps_auth_result result;
	const void *item;
	const char *user = NULL;
	char *fp;
	int r, status;

	r = module_begin(pamh, flags, argc, argv, &ctx, &log, &cfg, &user);
	if (r != PAM_SUCCESS)
		return r;
	memset(&req, 0, sizeof(req));
	req.user = user;
	if (pam_get_item(pamh, PAM_SERVICE, &item) == PAM_SUCCESS && item)
		req.service = item;
	if (pam_get_item(pamh, PAM_RHOST, &item) == PAM_SUCCESS && item)
		req.rhost = item;
	if ((cfg.use_first_pass || cfg.try_first_pass) &&
	    pam_get_item(pamh, PAM_AUTHTOK, &item) == PAM_SUCCESS && item)
		req.authtok = item;

	/* sshauth: what sshd proved, from the PAM environment only */
	status = ps_authenticate_ssh(&cfg, &log, &conv, &req,
	    pam_getenv(pamh, "SSH_AUTH_INFO_0"), &result);
	r = auth_status_to_pam(status, &cfg);
	if (status == PS_OK) {
		fp = strdup(result.fingerprint);
		if (fp == NULL || pam_set_data(pamh, DATA_FINGERPRINT, fp,
		    free_data) != PAM_SUCCESS) {
			free(fp);
			r = PAM_BUF_ERR;
		}
	} else {
		pam_syslog(pamh, LOG_NOTICE, "authentication of %s failed: %s",
		    ps_user_name_valid(user) ? user : "(invalid name)",
		    ps_status_str(status));
	}
	ps_config_free(&cfg);
	return r;
}

PAM_EXTERN int
pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	/* No credentials to establish: the key never leaves the token. */
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}

PAM_EXTERN int
pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct module_ctx ctx;
	struct ps_log log;
	struct ps_config cfg;
	struct ps_account_result result;
	const void *data = NULL;
	const char *user = NULL, *fp = NULL;
	char date[11], msg[400];
	int r, status;

	r = module_begin(pamh, flags, argc, argv, &ctx, &log, &cfg, &user);
	if (r != PAM_SUCCESS)
		return r;
	if (pam_get_data(pamh, DATA_FINGERPRINT, &data) == PAM_SUCCESS)
		fp = data;
	status = ps_account_check(&cfg, &log, user, fp, 0, &result);
	switch (status) {
	case PS_OK:
		if (result.days_left <= cfg.expiry_warn_days) {
			ps_format_date(result.not_after, date);
			snprintf(msg, sizeof(msg), "Your PersonalSign "
			    "certificate expires on %s (in %d day%s). Please "
			    "renew it.", date, result.days_left,
			    result.days_left == 1 ? "" : "s");
			conv_info(&ctx, msg);
		}
		r = PAM_SUCCESS;
		break;
	case PS_ERR_EXPIRED:
		pam_syslog(pamh, LOG_NOTICE, "account %s: every registered "
		    "certificate has expired", user);
		snprintf(msg, sizeof(msg), "Your PersonalSign certificate %s. "
		    "Please contact your administrator.", result.why[0] ?
		    result.why : "has expired");
		conv_error(&ctx, msg);
		r = PAM_ACCT_EXPIRED;
		break;
	case PS_ERR_NOT_FOUND:
		r = (fp == NULL && cfg.nouserok) ? PAM_IGNORE : PAM_USER_UNKNOWN;
		break;
	case PS_ERR_INVALID:
		r = PAM_USER_UNKNOWN;
		break;
	case PS_ERR_POLICY:
		pam_syslog(pamh, LOG_NOTICE, "account %s: no registered "
		    "certificate passes policy: %s", user, result.why);
		snprintf(msg, sizeof(msg), "Your PersonalSign certificate is "
		    "not accepted: %s. Please contact your administrator.",
		    result.why[0] ? result.why : "refused by policy");
		conv_error(&ctx, msg);
		r = PAM_PERM_DENIED;
		break;
	case PS_ERR_NOMEM:
		r = PAM_BUF_ERR;
		break;
	case PS_ERR_UNSAFE:
	case PS_ERR_IO:
		r = PAM_AUTHINFO_UNAVAIL;
		break;
	default:
		r = PAM_SYSTEM_ERR;
		break;
	}
	ps_config_free(&cfg);
	return r;
}
