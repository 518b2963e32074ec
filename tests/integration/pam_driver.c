/*
 * pam_driver.c - runs a real PAM transaction with scripted answers, for
 * the integration tests.
 *
 *   pam_driver [--acct|--acct-only] [--rhost HOST] [--confdir DIR]
 *              SERVICE USER [ANSWER...]
 *
 * Each prompt takes the next ANSWER (none left: the conversation fails,
 * as a user who hits Ctrl-D would). Every message is printed on stdout as
 * "PROMPT: ...", "INFO: ..." or "ERROR: ...", then "AUTH: <code>" and,
 * with --acct, "ACCT: <code>" (pam_acct_mgmt runs whatever the auth
 * result, so both phases can be asserted; --acct-only skips auth), where
 * <code> is the PAM_* name. The exit status is 0 when every step returned
 * PAM_SUCCESS, 1 otherwise. Without --confdir the service file is found
 * the usual way (tests use pam_wrapper's PAM_WRAPPER_SERVICE_DIR).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <security/pam_appl.h>

struct script {
	char **answers;
	int count;
	int next;
};

static const char *
pam_code_name(int code)
{
	switch (code) {
	case PAM_SUCCESS:		return "PAM_SUCCESS";
	case PAM_AUTH_ERR:		return "PAM_AUTH_ERR";
	case PAM_USER_UNKNOWN:		return "PAM_USER_UNKNOWN";
	case PAM_IGNORE:		return "PAM_IGNORE";
	case PAM_AUTHINFO_UNAVAIL:	return "PAM_AUTHINFO_UNAVAIL";
	case PAM_MAXTRIES:		return "PAM_MAXTRIES";
	case PAM_CONV_ERR:		return "PAM_CONV_ERR";
	case PAM_SERVICE_ERR:		return "PAM_SERVICE_ERR";
	case PAM_SYSTEM_ERR:		return "PAM_SYSTEM_ERR";
	case PAM_BUF_ERR:		return "PAM_BUF_ERR";
	case PAM_ACCT_EXPIRED:		return "PAM_ACCT_EXPIRED";
	case PAM_PERM_DENIED:		return "PAM_PERM_DENIED";
	case PAM_CRED_INSUFFICIENT:	return "PAM_CRED_INSUFFICIENT";
	case PAM_MODULE_UNKNOWN:	return "PAM_MODULE_UNKNOWN";
	case PAM_NEW_AUTHTOK_REQD:	return "PAM_NEW_AUTHTOK_REQD";
	case PAM_ABORT:			return "PAM_ABORT";
	case PAM_INCOMPLETE:		return "PAM_INCOMPLETE";
	default:			return "PAM_OTHER";
	}
}

static void
free_responses(struct pam_response *resp, int n)
{
	for (int i = 0; i < n; i++)
		free(resp[i].resp);
	free(resp);
}

static int
conversation(int n, const struct pam_message **msg, struct pam_response **out,
    void *arg)
{
	struct script *s = arg;
	struct pam_response *resp;

	*out = NULL;
	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	if ((resp = calloc((size_t)n, sizeof(*resp))) == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
		case PAM_PROMPT_ECHO_ON:
			printf("PROMPT: %s\n", msg[i]->msg);
			if (s->next >= s->count) {
				free_responses(resp, n);
				return PAM_CONV_ERR;
			}
			resp[i].resp = strdup(s->answers[s->next++]);
			if (resp[i].resp == NULL) {
				free_responses(resp, n);
				return PAM_BUF_ERR;
			}
			break;
		case PAM_TEXT_INFO:
			printf("INFO: %s\n", msg[i]->msg);
			break;
		case PAM_ERROR_MSG:
			printf("ERROR: %s\n", msg[i]->msg);
			break;
		default:
			free_responses(resp, n);
			return PAM_CONV_ERR;
		}
	}
	fflush(stdout);
	*out = resp;
	return PAM_SUCCESS;
}

int
main(int argc, char **argv)
{
	struct script script = { NULL, 0, 0 };
	struct pam_conv conv = { conversation, &script };
	const char *rhost = NULL, *confdir = NULL;
	pam_handle_t *pamh = NULL;
	int acct = 0, auth = 1, r, rv = 0, i = 1;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--acct") == 0)
			acct = 1;
		else if (strcmp(argv[i], "--acct-only") == 0)
			acct = 1, auth = 0;
		else if (strcmp(argv[i], "--rhost") == 0 && i + 1 < argc)
			rhost = argv[++i];
		else if (strcmp(argv[i], "--confdir") == 0 && i + 1 < argc)
			confdir = argv[++i];
		else
			break;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: pam_driver [--acct|--acct-only] [--rhost HOST] "
		    "[--confdir DIR] SERVICE USER [ANSWER...]\n");
		return 2;
	}
	script.answers = argv + i + 2;
	script.count = argc - i - 2;
	if (confdir != NULL)
		r = pam_start_confdir(argv[i], argv[i + 1], &conv, confdir, &pamh);
	else
		r = pam_start(argv[i], argv[i + 1], &conv, &pamh);
	if (r != PAM_SUCCESS) {
		fprintf(stderr, "pam_start: %s\n", pam_code_name(r));
		return 2;
	}
	if (rhost != NULL && pam_set_item(pamh, PAM_RHOST, rhost) != PAM_SUCCESS) {
		fprintf(stderr, "pam_set_item(PAM_RHOST) failed\n");
		pam_end(pamh, PAM_SYSTEM_ERR);
		return 2;
	}
	if (auth) {
		r = pam_authenticate(pamh, 0);
		printf("AUTH: %s\n", pam_code_name(r));
		if (r != PAM_SUCCESS)
			rv = 1;
	}
	if (acct) {
		r = pam_acct_mgmt(pamh, 0);
		printf("ACCT: %s\n", pam_code_name(r));
		if (r != PAM_SUCCESS)
			rv = 1;
	}
	fflush(stdout);
	pam_end(pamh, rv == 0 ? PAM_SUCCESS : PAM_AUTH_ERR);
	return rv;
}
