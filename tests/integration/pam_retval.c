/*
 * pam_retval.c - asserts the EXACT return code of every PAM entry point,
 * through a real libpam stack built with pam_start_confdir (the pattern of
 * Linux-PAM's own tst-*-retval tests).
 *
 *   pam_retval MODULE REGISTRY PASSWORD
 *
 * Needs a world prepared by test-pam-soft.sh: users alice (registered,
 * keystore with PASSWORD), dave (not registered), erin (expired
 * registration), resolved through nss_wrapper.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <security/pam_appl.h>

static int failures, passes;
static const char *answer;

static int
conv_fn(int n, const struct pam_message **msg, struct pam_response **out,
    void *arg)
{
	struct pam_response *resp = calloc((size_t)n, sizeof(*resp));

	(void)arg;
	if (resp == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		    msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			if (answer == NULL ||
			    (resp[i].resp = strdup(answer)) == NULL) {
				for (int j = 0; j < i; j++)
					free(resp[j].resp);
				free(resp);
				return PAM_CONV_ERR;
			}
		}
	}
	*out = resp;
	return PAM_SUCCESS;
}

#define EXPECT(what, want, got) do { \
	int got_ = (got); \
	if (got_ == (want)) { \
		passes++; \
		printf("ok - %s: %s\n", what, #want); \
	} else { \
		failures++; \
		printf("not ok - %s: got %d (%s), want %s\n", what, got_, \
		    pam_strerror(pamh, got_), #want); \
	} \
} while (0)

static void
write_service(const char *dir, const char *name, const char *module,
    const char *registry, const char *extra)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(2);
	}
	fprintf(f, "auth required %s registry=%s %s\n", module, registry, extra);
	fprintf(f, "account required %s registry=%s %s\n", module, registry, extra);
	fprintf(f, "password required %s registry=%s %s\n", module, registry, extra);
	fprintf(f, "session required %s registry=%s %s\n", module, registry, extra);
	fclose(f);
}

static pam_handle_t *
start(const char *service, const char *user, const char *confdir)
{
	struct pam_conv conv = { conv_fn, NULL };
	pam_handle_t *pamh = NULL;

	if (pam_start_confdir(service, user, &conv, confdir, &pamh) !=
	    PAM_SUCCESS) {
		fprintf(stderr, "pam_start_confdir failed\n");
		exit(2);
	}
	return pamh;
}

int
main(int argc, char **argv)
{
	char confdir[] = "/tmp/ps-retval-XXXXXX";
	pam_handle_t *pamh;

	if (argc != 4) {
		fprintf(stderr, "usage: pam_retval MODULE REGISTRY PASSWORD\n");
		return 2;
	}
	if (mkdtemp(confdir) == NULL)
		return 2;
	write_service(confdir, "ps", argv[1], argv[2], "");
	write_service(confdir, "ps-nouserok", argv[1], argv[2], "nouserok");
	write_service(confdir, "ps-badopt", argv[1], argv[2], "no_such_option");

	/* a registered user with the right password */
	answer = argv[3];
	pamh = start("ps", "alice", confdir);
	EXPECT("alice authenticate", PAM_SUCCESS, pam_authenticate(pamh, 0));
	EXPECT("alice setcred", PAM_SUCCESS, pam_setcred(pamh, PAM_ESTABLISH_CRED));
	EXPECT("alice acct_mgmt", PAM_SUCCESS, pam_acct_mgmt(pamh, 0));
	EXPECT("alice open_session (not provided)", PAM_MODULE_UNKNOWN,
	    pam_open_session(pamh, 0));
	EXPECT("alice close_session (not provided)", PAM_MODULE_UNKNOWN,
	    pam_close_session(pamh, 0));
	EXPECT("alice chauthtok (not provided)", PAM_MODULE_UNKNOWN,
	    pam_chauthtok(pamh, 0));
	pam_end(pamh, PAM_SUCCESS);

	/* wrong password */
	answer = "not the password";
	pamh = start("ps", "alice", confdir);
	EXPECT("alice wrong password", PAM_AUTH_ERR, pam_authenticate(pamh, 0));
	pam_end(pamh, PAM_SUCCESS);

	/* no answer */
	answer = NULL;
	pamh = start("ps", "alice", confdir);
	EXPECT("alice conversation fails", PAM_CONV_ERR, pam_authenticate(pamh, 0));
	pam_end(pamh, PAM_SUCCESS);

	/* unregistered user: USER_UNKNOWN; with nouserok the module ignores
	 * it, and a stack with nothing else deciding must still fail */
	answer = argv[3];
	pamh = start("ps", "dave", confdir);
	EXPECT("dave authenticate", PAM_USER_UNKNOWN, pam_authenticate(pamh, 0));
	EXPECT("dave acct_mgmt", PAM_USER_UNKNOWN, pam_acct_mgmt(pamh, 0));
	pam_end(pamh, PAM_SUCCESS);
	pamh = start("ps-nouserok", "dave", confdir);
	EXPECT("dave nouserok authenticate (module ignored, stack fails)",
	    PAM_PERM_DENIED, pam_authenticate(pamh, 0));
	pam_end(pamh, PAM_SUCCESS);

	/* expired registration */
	pamh = start("ps", "erin", confdir);
	EXPECT("erin authenticate", PAM_AUTH_ERR, pam_authenticate(pamh, 0));
	EXPECT("erin acct_mgmt", PAM_ACCT_EXPIRED, pam_acct_mgmt(pamh, 0));
	pam_end(pamh, PAM_SUCCESS);

	/* a typo in the options */
	pamh = start("ps-badopt", "alice", confdir);
	EXPECT("unknown option authenticate", PAM_SERVICE_ERR,
	    pam_authenticate(pamh, 0));
	EXPECT("unknown option acct_mgmt", PAM_SERVICE_ERR, pam_acct_mgmt(pamh, 0));
	pam_end(pamh, PAM_SUCCESS);

	{
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", confdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cleanup of %s failed\n", confdir);
	}
	printf("%d passed, %d failed\n", passes, failures);
	return failures == 0 ? 0 : 1;
}
