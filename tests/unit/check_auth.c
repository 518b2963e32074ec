/*
 * check_auth.c - the login and account flows of auth.c, driven without
 * PAM: a real file registry, real keystores, a scripted conversation.
 * The user is the one running the tests (a token is opened as its owner,
 * so the user must exist).
 */
#include <check.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "auth.h"
#include "cert.h"
#include "ps_status.h"
#include "registry.h"
#include "testutil.h"
#include "util.h"

struct script {
	const char *answers[4];
	int next;
	int prompts;
	char said[2048];
};

static int
script_prompt(void *arg, int echo, const char *msg, char **answer)
{
	struct script *s = arg;

	(void)echo;
	(void)msg;
	s->prompts++;
	if (s->next >= 4 || s->answers[s->next] == NULL)
		return PS_ERR_CONV;
	*answer = strdup(s->answers[s->next++]);
	return *answer ? PS_OK : PS_ERR_NOMEM;
}

static void
script_say(void *arg, const char *msg)
{
	struct script *s = arg;

	strncat(s->said, msg, sizeof(s->said) - strlen(s->said) - 2);
	strcat(s->said, "\n");
}

static char *world, *me;
static struct ps_config cfg;

/* Register CERT for the test user and install KEYSTORE as theirs. */
static void
setup_user(const char *cert, const char *keystore)
{
	struct ps_registry *reg;
	struct ps_reg_change why = { "test", "unit test" };
	STACK_OF(X509) *certs = NULL;
	char *path, *ks, *cmd;

	ck_assert(asprintf(&cmd, "rm -rf '%s/registry' '%s/ks'", world, world) > 0);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	ck_assert(asprintf(&ks, "%s/ks", world) > 0);
	ck_assert_int_eq(mkdir(ks, 0700), 0);
	free(ks);
	ck_assert_int_eq(ps_registry_file_open(cfg.registry_dir, &tu_log, true,
	    &reg), PS_OK);
	if (cert != NULL) {
		path = tu_fixture(cert);
		ck_assert_int_eq(ps_cert_load_file(&tu_log, path, NULL, &certs),
		    PS_OK);
		free(path);
		ck_assert_int_eq(ps_registry_add(reg, me,
		    sk_X509_value(certs, 0), &why), PS_OK);
		sk_X509_pop_free(certs, X509_free);
	}
	ps_registry_close(reg);
	if (keystore != NULL) {
		path = tu_fixture(keystore);
		ck_assert(asprintf(&cmd, "cp '%s' '%s/ks/%s.pfx' && chmod 600 "
		    "'%s/ks/%s.pfx'", path, world, me, world, me) > 0);
		ck_assert_int_eq(system(cmd), 0);
		free(cmd);
		free(path);
	}
}

static void
setup(void)
{
	struct passwd *pw = getpwuid(geteuid());
	char err[128];
	char *v;

	ck_assert_ptr_nonnull(pw);
	me = strdup(pw->pw_name);
	world = tu_mkdtemp();
	chmod(world, 0755);
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	ck_assert(asprintf(&v, "%s/registry", world) > 0);
	ck_assert_int_eq(ps_config_set(&cfg, "registry", v, err, sizeof(err)), PS_OK);
	free(v);
	ck_assert(asprintf(&v, "%s/ks/%%u.pfx", world) > 0);
	ck_assert_int_eq(ps_config_set(&cfg, "keystore", v, err, sizeof(err)), PS_OK);
	free(v);
}

static void
teardown(void)
{
	ps_config_free(&cfg);
	tu_rmrf(world);
	free(world);
	free(me);
}

static int
login(struct script *s, const char *rhost, const char *authtok,
    struct ps_auth_result *res)
{
	struct ps_conv conv = { script_prompt, script_say, script_say, s };
	struct ps_auth_request req = { me, "check", rhost, authtok, 0 };

	return ps_authenticate(&cfg, &tu_log, &conv, &req, res);
}

START_TEST(login_each_key_type)
{
	static const char *users[] = { "alice", "bob", "carol" };
	struct ps_auth_result res;
	char crt[32], pfx[32], fp[PS_FP_HEX_LEN + 1];
	X509 *x;

	for (size_t i = 0; i < 3; i++) {
		struct script s = { { tu_password() }, 0, 0, "" };

		snprintf(crt, sizeof(crt), "%s.crt", users[i]);
		snprintf(pfx, sizeof(pfx), "%s.pfx", users[i]);
		setup_user(crt, pfx);
		ck_assert_int_eq(login(&s, NULL, NULL, &res), PS_OK);
		ck_assert_int_eq(s.prompts, 1);
		x = tu_load_cert(crt);
		ck_assert_int_eq(ps_cert_fingerprint(x, fp), PS_OK);
		ck_assert_str_eq(res.fingerprint, fp);
		ck_assert_int_gt(res.not_after, time(NULL));
		X509_free(x);
	}
}
END_TEST

START_TEST(refusals)
{
	struct ps_auth_result res;
	struct script wrong = { { "wrong" }, 0, 0, "" };
	struct script silent = { { NULL }, 0, 0, "" };
	struct script right = { { tu_password() }, 0, 0, "" };

	setup_user("alice.crt", "alice.pfx");
	ck_assert_int_eq(login(&wrong, NULL, NULL, &res), PS_ERR_BAD_SECRET);
	ck_assert_str_eq(res.fingerprint, "");
	ck_assert_int_eq(login(&silent, NULL, NULL, &res), PS_ERR_CONV);

	/* remote session: the local keystore is not touched */
	tu_log_reset();
	ck_assert_int_eq(login(&right, "192.0.2.1", NULL, &res), PS_ERR_NO_TOKEN);
	ck_assert_int_eq(right.prompts, 0);
	ck_assert(tu_log_contains("remote session"));

	/* keystore holds another person's key */
	setup_user("ivan.crt", "alice.pfx");
	right.next = 0;
	ck_assert_int_eq(login(&right, NULL, NULL, &res), PS_ERR_NO_TOKEN);
	ck_assert_ptr_nonnull(strstr(right.said, "does not hold the key"));

	/* nothing registered */
	setup_user(NULL, "alice.pfx");
	right.next = right.prompts = 0;
	ck_assert_int_eq(login(&right, NULL, NULL, &res), PS_ERR_NOT_FOUND);
	ck_assert_int_eq(right.prompts, 0);
}
END_TEST

START_TEST(policy_refusals)
{
	struct ps_auth_result res;
	struct script s = { { tu_password() }, 0, 0, "" };
	/* The admin tool refuses expired certificates; the registry layer
	 * itself does not, which is how an entry enrolled while it was valid
	 * looks once it has expired. */
	setup_user("erin.crt", "erin.pfx");
	tu_log_reset();
	ck_assert_int_eq(login(&s, NULL, NULL, &res), PS_ERR_EXPIRED);
	ck_assert_int_eq(s.prompts, 0);
	ck_assert(tu_log_contains("expired on 2021-01-01"));
	ck_assert_ptr_nonnull(strstr(s.said, "has expired"));

	/* not yet valid: refused by policy, not as expired */
	setup_user("frank.crt", "frank.pfx");
	s.next = s.prompts = 0;
	tu_log_reset();
	ck_assert_int_eq(login(&s, NULL, NULL, &res), PS_ERR_POLICY);
	ck_assert_int_eq(s.prompts, 0);
	ck_assert(tu_log_contains("not valid before 2099-01-01"));
}
END_TEST

START_TEST(first_pass)
{
	struct ps_auth_result res;
	struct script none = { { NULL }, 0, 0, "" };
	struct script right = { { tu_password() }, 0, 0, "" };

	setup_user("bob.crt", "bob.pfx");
	cfg.use_first_pass = true;
	ck_assert_int_eq(login(&none, NULL, tu_password(), &res), PS_OK);
	ck_assert_int_eq(none.prompts, 0);
	ck_assert_int_eq(res.used_authtok, 1);
	ck_assert_int_eq(login(&none, NULL, "wrong", &res), PS_ERR_BAD_SECRET);
	ck_assert_int_eq(none.prompts, 0);
	ck_assert_int_eq(login(&none, NULL, NULL, &res), PS_ERR_CONV);
	cfg.use_first_pass = false;
	cfg.try_first_pass = true;
	ck_assert_int_eq(login(&right, NULL, "wrong", &res), PS_OK);
	ck_assert_int_eq(right.prompts, 1);
	ck_assert_int_eq(res.used_authtok, 0);
	cfg.try_first_pass = false;
}
END_TEST

START_TEST(account)
{
	struct ps_account_result acct;
	char fp[PS_FP_HEX_LEN + 1];
	X509 *x;

	setup_user("gina.crt", NULL);
	ck_assert_int_eq(ps_account_check(&cfg, &tu_log, me, NULL, 0, &acct),
	    PS_OK);
	ck_assert(acct.days_left == 29 || acct.days_left == 30);
	ck_assert_str_eq(acct.why, "");
	x = tu_load_cert("gina.crt");
	ck_assert_int_eq(ps_cert_fingerprint(x, fp), PS_OK);
	X509_free(x);
	ck_assert_str_eq(acct.fingerprint, fp);
	ck_assert_int_eq(ps_account_check(&cfg, &tu_log, me, fp, 0, &acct), PS_OK);
	/* the key used to log in was removed meanwhile */
	fp[0] = fp[0] == 'a' ? 'b' : 'a';
	ck_assert_int_eq(ps_account_check(&cfg, &tu_log, me, fp, 0, &acct),
	    PS_ERR_NOT_FOUND);
	/* thirty-one days later it has expired */
	ck_assert_int_eq(ps_account_check(&cfg, &tu_log, me, NULL,
	    time(NULL) + 31 * 86400, &acct), PS_ERR_EXPIRED);
	ck_assert_ptr_nonnull(strstr(acct.why, "expired on "));
	ck_assert_int_eq(ps_account_check(&cfg, &tu_log, "../etc", NULL, 0,
	    &acct), PS_ERR_INVALID);
	setup_user(NULL, NULL);
	ck_assert_int_eq(ps_account_check(&cfg, &tu_log, me, NULL, 0, &acct),
	    PS_ERR_NOT_FOUND);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, login_each_key_type);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, policy_refusals);
	tcase_add_test(tc, first_pass);
	tcase_add_test(tc, account);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
