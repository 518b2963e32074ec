/*
 * check_openvpn.c - the OpenVPN plugin's per-client state machine, called
 * the way OpenVPN calls it: TLS_VERIFY per chain depth, then
 * AUTH_USER_PASS_VERIFY with the user name and tls_digest_sha256_0 of the
 * session. The real-OpenVPN test (tests/openvpn) cannot produce a digest
 * that differs from the verified certificate, a call without TLS_VERIFY
 * or without a per-client context; these cases pin that every one of
 * them is refused.
 *
 * The plugin source is compiled in, so the test calls its entry points
 * directly (no dlopen, works in the sanitizer build).
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../openvpn/openvpn-plugin-personalsign.c"

#include "testutil.h"

static char *world;
static openvpn_plugin_handle_t handle;

static void
quiet_vlog(openvpn_plugin_log_flags_t flags, const char *name,
    const char *fmt, va_list ap)
{
	(void)flags;
	(void)name;
	(void)fmt;
	(void)ap;
}

static void
quiet_log(openvpn_plugin_log_flags_t flags, const char *name,
    const char *fmt, ...)
{
	(void)flags;
	(void)name;
	(void)fmt;
}

static void
setup(void)
{
	static struct openvpn_plugin_callbacks cb = {
		.plugin_log = quiet_log, .plugin_vlog = quiet_vlog,
	};
	static const char *const users[][2] = {
		{ "alice", "alice.crt" }, { "bob", "bob.crt" },
	};
	struct ps_reg_change why = { "test", "unit test" };
	struct openvpn_plugin_args_open_return ret;
	struct ps_registry *reg;
	char *regdir, *ca, *reg_arg, *ca_arg;
	const char *argv[4], *envp[] = { NULL };
	size_t i;
	X509 *x;

	world = tu_mkdtemp();
	ck_assert_int_eq(chmod(world, 0755), 0);
	ck_assert(asprintf(&regdir, "%s/registry", world) > 0);
	ck_assert_int_eq(mkdir(regdir, 0755), 0);
	reg = tu_registry_open(regdir, true);
	for (i = 0; i < 2; i++) {
		x = tu_load_cert(users[i][1]);
		ck_assert_int_eq(ps_registry_add(reg, users[i][0], x, &why),
		    PS_OK);
		X509_free(x);
	}
	ps_registry_close(reg);
	ca = tu_fixture("ca.crt");
	ck_assert(asprintf(&reg_arg, "registry=%s", regdir) > 0);
	ck_assert(asprintf(&ca_arg, "ca_file=%s", ca) > 0);
	argv[0] = "openvpn-plugin-personalsign.so";
	argv[1] = reg_arg;
	argv[2] = ca_arg;
	argv[3] = NULL;
	{
		struct openvpn_plugin_args_open_in in = {
			.type_mask = 0xffff, .argv = argv, .envp = envp,
			.callbacks = &cb, .ssl_api = SSLAPI_OPENSSL,
		};

		memset(&ret, 0, sizeof(ret));
		ck_assert_int_eq(openvpn_plugin_open_v3(
		    OPENVPN_PLUGINv3_STRUCTVER, &in, &ret),
		    OPENVPN_PLUGIN_FUNC_SUCCESS);
	}
	ck_assert_ptr_nonnull(ret.handle);
	handle = ret.handle;
	free(reg_arg);
	free(ca_arg);
	free(ca);
	free(regdir);
}

static void
teardown(void)
{
	openvpn_plugin_close_v1(handle);
	handle = NULL;
	tu_rmrf(world);
	free(world);
}

/* OpenVPN's tls_digest_sha256_0 form of a fixture: "AB:CD:..." */
static char *
digest_env(const char *crt)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;
	X509 *x = tu_load_cert(crt);
	char *s = malloc(strlen("tls_digest_sha256_0=") + 3 * 32 + 1), *p;

	ck_assert_ptr_nonnull(s);
	ck_assert(X509_digest(x, EVP_sha256(), md, &n) == 1 && n == 32);
	p = s + sprintf(s, "tls_digest_sha256_0=");
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s%02X", i ? ":" : "", md[i]);
	X509_free(x);
	return s;
}

static int
tls_verify(void *client, int depth, const char *crt)
{
	struct openvpn_plugin_args_func_return ret;
	const char *argv[] = { "plugin", depth ? "1" : "0", "CN=test", NULL };
	const char *envp[] = { "untrusted_ip=192.0.2.1",
	    "untrusted_port=1194", NULL };
	X509 *x = crt != NULL ? tu_load_cert(crt) : NULL;
	struct openvpn_plugin_args_func_in in = {
		.type = OPENVPN_PLUGIN_TLS_VERIFY, .argv = argv, .envp = envp,
		.handle = handle, .per_client_context = client,
		.current_cert_depth = depth, .current_cert = x,
	};
	int r;

	memset(&ret, 0, sizeof(ret));
	r = openvpn_plugin_func_v3(OPENVPN_PLUGINv3_STRUCTVER, &in, &ret);
	X509_free(x);
	return r;
}

/* AUTH_USER_PASS_VERIFY for `user` in a session whose certificate is
 * `session_crt` (NULL: no tls_digest_sha256_0 in the environment). */
static int
user_pass(void *client, const char *user, const char *session_crt)
{
	struct openvpn_plugin_args_func_return ret;
	const char *argv[] = { "plugin", NULL };
	char *digest = session_crt != NULL ? digest_env(session_crt) : NULL;
	char *uenv = NULL;
	const char *envp[5];
	struct openvpn_plugin_args_func_in in = {
		.type = OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY, .argv = argv,
		.envp = envp, .handle = handle, .per_client_context = client,
	};
	int n = 0, r;

	if (user != NULL)
		ck_assert(asprintf(&uenv, "username=%s", user) > 0);
	envp[n++] = "untrusted_ip=192.0.2.1";
	if (uenv != NULL)
		envp[n++] = uenv;
	envp[n++] = "password=ignored";
	if (digest != NULL)
		envp[n++] = digest;
	envp[n] = NULL;
	memset(&ret, 0, sizeof(ret));
	r = openvpn_plugin_func_v3(OPENVPN_PLUGINv3_STRUCTVER, &in, &ret);
	free(digest);
	free(uenv);
	return r;
}

#define OK	OPENVPN_PLUGIN_FUNC_SUCCESS
#define ERR	OPENVPN_PLUGIN_FUNC_ERROR

START_TEST(owner_of_the_verified_certificate_only)
{
	void *cl = openvpn_plugin_client_constructor_v1(handle);

	ck_assert_ptr_nonnull(cl);
	ck_assert_int_eq(tls_verify(cl, 1, "ca.crt"), OK);
	ck_assert_int_eq(tls_verify(cl, 0, "alice.crt"), OK);
	ck_assert_int_eq(user_pass(cl, "alice", "alice.crt"), OK);
	/* another user's name, none, an empty one */
	ck_assert_int_eq(user_pass(cl, "bob", "alice.crt"), ERR);
	ck_assert_int_eq(user_pass(cl, NULL, "alice.crt"), ERR);
	ck_assert_int_eq(user_pass(cl, "", "alice.crt"), ERR);
	ck_assert_int_eq(user_pass(cl, "alice2", "alice.crt"), ERR);
	ck_assert_int_eq(user_pass(cl, "alic", "alice.crt"), ERR);
	openvpn_plugin_client_destructor_v1(handle, cl);
}
END_TEST

START_TEST(session_certificate_must_be_the_verified_one)
{
	void *cl = openvpn_plugin_client_constructor_v1(handle);

	ck_assert_int_eq(tls_verify(cl, 0, "alice.crt"), OK);
	/* the session's certificate is bob's, or unknown */
	ck_assert_int_eq(user_pass(cl, "alice", "bob.crt"), ERR);
	ck_assert_int_eq(user_pass(cl, "bob", "bob.crt"), ERR);
	ck_assert_int_eq(user_pass(cl, "alice", NULL), ERR);
	ck_assert_int_eq(user_pass(cl, "alice", "alice.crt"), OK);
	openvpn_plugin_client_destructor_v1(handle, cl);
}
END_TEST

START_TEST(no_verified_certificate_no_login)
{
	void *cl = openvpn_plugin_client_constructor_v1(handle);
	void *other = openvpn_plugin_client_constructor_v1(handle);

	/* never verified; and no per-client context at all */
	ck_assert_int_eq(user_pass(cl, "alice", "alice.crt"), ERR);
	ck_assert_int_eq(user_pass(NULL, "alice", "alice.crt"), ERR);
	ck_assert_int_eq(tls_verify(NULL, 0, "alice.crt"), ERR);
	/* verified for one client is not verified for another */
	ck_assert_int_eq(tls_verify(other, 0, "alice.crt"), OK);
	ck_assert_int_eq(user_pass(cl, "alice", "alice.crt"), ERR);
	/* a new handshake starts from nothing: the chain walk resets */
	ck_assert_int_eq(tls_verify(other, 1, "ca.crt"), OK);
	ck_assert_int_eq(user_pass(other, "alice", "alice.crt"), ERR);
	/* a refused certificate after an accepted one leaves nothing */
	ck_assert_int_eq(tls_verify(cl, 0, "alice.crt"), OK);
	ck_assert_int_eq(tls_verify(cl, 0, "ivan.crt"), ERR);
	ck_assert_int_eq(user_pass(cl, "alice", "alice.crt"), ERR);
	ck_assert_int_eq(user_pass(cl, "ivan", "ivan.crt"), ERR);
	/* no certificate at depth 0 */
	ck_assert_int_eq(tls_verify(cl, 0, NULL), ERR);
	openvpn_plugin_client_destructor_v1(handle, other);
	openvpn_plugin_client_destructor_v1(handle, cl);
}
END_TEST

START_TEST(unexpected_calls_refused)
{
	struct openvpn_plugin_args_func_return ret;
	void *cl = openvpn_plugin_client_constructor_v1(handle);
	const char *envp[] = { NULL };
	struct openvpn_plugin_args_func_in in = {
		.type = OPENVPN_PLUGIN_CLIENT_CONNECT_V2, .envp = envp,
		.handle = handle, .per_client_context = cl,
	};
	struct openvpn_plugin_args_func_in nohandle = {
		.type = OPENVPN_PLUGIN_TLS_VERIFY, .envp = envp,
		.handle = NULL, .per_client_context = cl,
	};

	ck_assert_int_eq(openvpn_plugin_func_v3(OPENVPN_PLUGINv3_STRUCTVER,
	    &in, &ret), ERR);
	ck_assert_int_eq(openvpn_plugin_func_v3(OPENVPN_PLUGINv3_STRUCTVER,
	    &nohandle, &ret), ERR);
	ck_assert_int_eq(openvpn_plugin_func_v3(OPENVPN_PLUGINv3_STRUCTVER,
	    NULL, &ret), ERR);
	openvpn_plugin_client_destructor_v1(handle, cl);
}
END_TEST

static Suite *
openvpn_suite(void)
{
	Suite *s = suite_create("openvpn");
	TCase *tc = tcase_create("plugin");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, owner_of_the_verified_certificate_only);
	tcase_add_test(tc, session_certificate_must_be_the_verified_one);
	tcase_add_test(tc, no_verified_certificate_no_login);
	tcase_add_test(tc, unexpected_calls_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(openvpn_suite());
}
