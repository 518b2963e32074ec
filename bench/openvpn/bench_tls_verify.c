/*
 * bench_tls_verify.c - what one OPENVPN_PLUGIN_TLS_VERIFY call of the
 * personalsign OpenVPN plugin costs, and whether that grows with the
 * number of registered users.
 *
 *   bench_tls_verify gen DIR USERS
 *       A test CA (DIR/ca.crt) and USERS users, each with a NEW EC P-256
 *       key and a certificate from that CA, enrolled into DIR/registry
 *       through the core's own ps_registry_add (the real file format and
 *       key index). DIR/probe.crt is one registered certificate (the
 *       middle user's), DIR/stranger.crt one that is not registered.
 *       Keys are never reused: the registry is indexed by key.
 *
 *   bench_tls_verify run PLUGIN.so DIR CALLS ROUNDS accept|refuse
 *       dlopen the built plugin, open it the way OpenVPN does (plugin API
 *       v3, options registry= and ca_file=), and call
 *       openvpn_plugin_func_v3(TLS_VERIFY, depth 0) with probe.crt
 *       (accept) or stranger.crt (refuse) CALLS times per round. Prints
 *       ns per call for every round and the median, and the total number
 *       of calls (to divide callgrind's instruction count by). Any call
 *       with the wrong result aborts the run.
 *
 * Built by bench/openvpn/run.sh against the core sources; not installed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <openvpn/openvpn-plugin.h>

#include "cert.h"
#include "log.h"
#include "ps_status.h"
#include "registry.h"

#define MAX_ROUNDS	50
#define WARMUP_CALLS	20

/* ------------------------------------------------------------ gen */

static EVP_PKEY *
new_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static int
add_ext(X509 *issuer, X509 *subject, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, subject, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(subject, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static int
set_name(X509 *x, const char *cn, const char *email)
{
	X509_NAME *n = X509_get_subject_name(x);

	if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1)
		return -1;
	if (email != NULL && X509_NAME_add_entry_by_txt(n, "emailAddress",
	    MBSTRING_ASC, (const unsigned char *)email, -1, -1, 0) != 1)
		return -1;
	return 0;
}

/* A certificate for `key`; self-signed CA when ca == NULL. */
static X509 *
make_cert(X509 *ca, EVP_PKEY *cakey, EVP_PKEY *key, const char *cn,
    const char *email, uint64_t serial)
{
	X509 *x = X509_new();
	X509 *issuer;
	int bad = 0;

	if (x == NULL)
		return NULL;
	issuer = ca != NULL ? ca : x;
	bad |= X509_set_version(x, X509_VERSION_3) != 1;
	bad |= ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) != 1;
	bad |= X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL;
	bad |= X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) == NULL;
	bad |= X509_set_pubkey(x, key) != 1;
	bad |= set_name(x, cn, email) != 0;
	if (!bad)
		bad |= X509_set_issuer_name(x,
		    X509_get_subject_name(issuer)) != 1;
	if (!bad && ca == NULL) {
		bad |= add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		bad |= add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
		bad |= add_ext(x, x, NID_subject_key_identifier, "hash");
	} else if (!bad) {
		bad |= add_ext(ca, x, NID_basic_constraints, "CA:FALSE");
		bad |= add_ext(ca, x, NID_key_usage,
		    "critical,digitalSignature,keyAgreement");
		bad |= add_ext(ca, x, NID_ext_key_usage,
		    "clientAuth,emailProtection");
		bad |= add_ext(ca, x, NID_authority_key_identifier, "keyid");
	}
	if (!bad)
		bad |= X509_sign(x, cakey, EVP_sha256()) <= 0;
	if (bad) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int
write_pem(const char *dir, const char *name, X509 *x)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	ok = PEM_write_X509(f, x);
	if (fclose(f) != 0 || ok != 1) {
		fprintf(stderr, "%s: write failed\n", path);
		return -1;
	}
	return 0;
}

/* One registered user: a new key, a certificate, an enrolment. */
static int
gen_user(struct ps_registry *reg, X509 *ca, EVP_PKEY *cakey, long i,
    X509 **keep)
{
	static const struct ps_reg_change why = { "bench", "benchmark" };
	char user[32], email[64];
	EVP_PKEY *key = new_key();
	X509 *x = NULL;
	int r = -1;

	snprintf(user, sizeof(user), "user%07ld", i);
	snprintf(email, sizeof(email), "%s@bench.test", user);
	if (key == NULL ||
	    (x = make_cert(ca, cakey, key, user, email, 1000 + i)) == NULL) {
		fprintf(stderr, "cannot make a certificate for %s\n", user);
		goto out;
	}
	if (ps_registry_add(reg, user, x, &why) != PS_OK) {
		fprintf(stderr, "cannot enroll %s\n", user);
		goto out;
	}
	if (keep != NULL) {
		*keep = x;
		x = NULL;
	}
	r = 0;
 out:
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

static int
cmd_gen(const char *dir, long users)
{
	struct ps_log log = { ps_log_to_stderr, (void *)"bench", 0 };
	struct ps_registry *reg = NULL;
	EVP_PKEY *cakey = NULL, *skey = NULL;
	X509 *ca = NULL, *probe = NULL, *stranger = NULL;
	char path[4096];
	long i;
	int r = 1;

	snprintf(path, sizeof(path), "%s/registry", dir);
	if ((cakey = new_key()) == NULL ||
	    (ca = make_cert(NULL, cakey, cakey, "Bench CA", NULL, 1)) == NULL ||
	    write_pem(dir, "ca.crt", ca) != 0) {
		fprintf(stderr, "cannot make the CA\n");
		goto out;
	}
	if (ps_registry_file_open(path, &log, true, &reg) != PS_OK)
		goto out;
	for (i = 1; i <= users; i++) {
		if (gen_user(reg, ca, cakey, i, i == users / 2 + 1 ?
		    &probe : NULL) != 0)
			goto out;
		if (i % 10000 == 0)
			fprintf(stderr, "%ld users\n", i);
	}
	if ((skey = new_key()) == NULL || (stranger = make_cert(ca, cakey,
	    skey, "stranger", "stranger@bench.test", 999)) == NULL ||
	    write_pem(dir, "probe.crt", probe) != 0 ||
	    write_pem(dir, "stranger.crt", stranger) != 0)
		goto out;
	r = 0;
 out:
	ps_registry_close(reg);
	X509_free(stranger);
	X509_free(probe);
	X509_free(ca);
	EVP_PKEY_free(skey);
	EVP_PKEY_free(cakey);
	return r;
}

/* ------------------------------------------------------------ run */

struct plugin_api {
	void *dl;
	int (*open3)(const int, struct openvpn_plugin_args_open_in const *,
	    struct openvpn_plugin_args_open_return *);
	int (*func3)(const int, struct openvpn_plugin_args_func_in const *,
	    struct openvpn_plugin_args_func_return *);
	void (*close1)(openvpn_plugin_handle_t);
	void *(*ctor)(openvpn_plugin_handle_t);
	void (*dtor)(openvpn_plugin_handle_t, void *);
};

static int verbose;

static void
bench_vlog(openvpn_plugin_log_flags_t flags, const char *name,
    const char *fmt, va_list ap)
{
	/* OpenVPN would format and write these; formatting is measured
	 * inside the plugin, writing is not */
	if (!verbose && !(flags & PLOG_ERR))
		return;
	fprintf(stderr, "PLUGIN %s: ", name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void
bench_log(openvpn_plugin_log_flags_t flags, const char *name,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vlog(flags, name, fmt, ap);
	va_end(ap);
}

static int
load_plugin(const char *path, struct plugin_api *api)
{
	memset(api, 0, sizeof(*api));
	if ((api->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return -1;
	}
	*(void **)&api->open3 = dlsym(api->dl, "openvpn_plugin_open_v3");
	*(void **)&api->func3 = dlsym(api->dl, "openvpn_plugin_func_v3");
	*(void **)&api->close1 = dlsym(api->dl, "openvpn_plugin_close_v1");
	*(void **)&api->ctor = dlsym(api->dl,
	    "openvpn_plugin_client_constructor_v1");
	*(void **)&api->dtor = dlsym(api->dl,
	    "openvpn_plugin_client_destructor_v1");
	if (api->open3 == NULL || api->func3 == NULL || api->close1 == NULL ||
	    api->ctor == NULL || api->dtor == NULL) {
		fprintf(stderr, "%s: missing entry points\n", path);
		return -1;
	}
	return 0;
}

static X509 *
read_cert(const char *dir, const char *name)
{
	char path[4096];
	X509 *x = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		fprintf(stderr, "%s: not a certificate\n", path);
	return x;
}

static openvpn_plugin_handle_t
open_plugin(const struct plugin_api *api, const char *dir)
{
	static struct openvpn_plugin_callbacks cb = {
		.plugin_log = bench_log, .plugin_vlog = bench_vlog,
	};
	char reg[4200], ca[4200];
	const char *argv[] = { "openvpn-plugin-personalsign.so", reg, ca,
	    NULL };
	const char *envp[] = { NULL };
	struct openvpn_plugin_args_open_in in = {
		.type_mask = 0xffff, .argv = argv, .envp = envp,
		.callbacks = &cb, .ssl_api = SSLAPI_OPENSSL,
		.ovpn_version = "2.6.14", .ovpn_version_major = 2,
		.ovpn_version_minor = 6, .ovpn_version_patch = ".14",
	};
	struct openvpn_plugin_args_open_return ret;

	snprintf(reg, sizeof(reg), "registry=%s/registry", dir);
	snprintf(ca, sizeof(ca), "ca_file=%s/ca.crt", dir);
	memset(&ret, 0, sizeof(ret));
	if (api->open3(OPENVPN_PLUGINv3_STRUCTVER, &in, &ret) !=
	    OPENVPN_PLUGIN_FUNC_SUCCESS || ret.handle == NULL) {
		fprintf(stderr, "plugin open failed\n");
		return NULL;
	}
	return ret.handle;
}

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CALLS TLS_VERIFY calls; -1 when one of them gave the wrong answer. */
static long long
call_loop(const struct plugin_api *api, openvpn_plugin_handle_t h,
    void *client, X509 *cert, long calls, int want)
{
	const char *argv[] = { "openvpn-plugin-personalsign.so", "0",
	    "CN=bench", NULL };
	const char *envp[] = { "untrusted_ip=192.0.2.1",
	    "untrusted_port=50000", NULL };
	struct openvpn_plugin_args_func_in in = {
		.type = OPENVPN_PLUGIN_TLS_VERIFY, .argv = argv, .envp = envp,
		.handle = h, .per_client_context = client,
		.current_cert_depth = 0, .current_cert = cert,
	};
	struct openvpn_plugin_args_func_return ret;
	long long t0;
	long i;

	memset(&ret, 0, sizeof(ret));
	t0 = now_ns();
	for (i = 0; i < calls; i++)
		if (api->func3(OPENVPN_PLUGINv3_STRUCTVER, &in, &ret) != want)
			return -1;
	return now_ns() - t0;
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static int
cmd_run(const char *plugin, const char *dir, long calls, int rounds,
    const char *mode)
{
	struct plugin_api api;
	openvpn_plugin_handle_t h = NULL;
	void *client = NULL;
	X509 *cert = NULL;
	long long ns[MAX_ROUNDS];
	int want, i, r = 1;

	want = strcmp(mode, "accept") == 0 ? OPENVPN_PLUGIN_FUNC_SUCCESS :
	    OPENVPN_PLUGIN_FUNC_ERROR;
	if (load_plugin(plugin, &api) != 0 || (h = open_plugin(&api,
	    dir)) == NULL || (client = api.ctor(h)) == NULL)
		goto out;
	if ((cert = read_cert(dir, want == OPENVPN_PLUGIN_FUNC_SUCCESS ?
	    "probe.crt" : "stranger.crt")) == NULL)
		goto out;
	if (call_loop(&api, h, client, cert, WARMUP_CALLS, want) < 0) {
		fprintf(stderr, "warm-up call gave the wrong result\n");
		goto out;
	}
	for (i = 0; i < rounds; i++) {
		if ((ns[i] = call_loop(&api, h, client, cert, calls,
		    want)) < 0) {
			fprintf(stderr, "a call gave the wrong result\n");
			goto out;
		}
		printf("round %d: %lld ns/call\n", i + 1, ns[i] / calls);
	}
	qsort(ns, (size_t)rounds, sizeof(ns[0]), cmp_ll);
	printf("median: %lld ns/call (%s, %ld calls x %d rounds)\n",
	    ns[rounds / 2] / calls, mode, calls, rounds);
	printf("total calls: %ld\n", WARMUP_CALLS + calls * rounds);
	r = 0;
 out:
	X509_free(cert);
	if (client != NULL)
		api.dtor(h, client);
	if (h != NULL)
		api.close1(h);
	/* not dlclose'd: valgrind then still knows the plugin's symbols */
	return r;
}

int
main(int argc, char **argv)
{
	long n, calls;
	int rounds;

	verbose = getenv("BENCH_VERBOSE") != NULL;
	if (argc == 4 && strcmp(argv[1], "gen") == 0) {
		n = strtol(argv[3], NULL, 10);
		if (n < 1 || mkdir(argv[2], 0755) != 0) {
			fprintf(stderr, "gen: need a new directory and a user "
			    "count >= 1\n");
			return 2;
		}
		return cmd_gen(argv[2], n);
	}
	if (argc == 7 && strcmp(argv[1], "run") == 0) {
		calls = strtol(argv[4], NULL, 10);
		rounds = (int)strtol(argv[5], NULL, 10);
		if (calls < 1 || rounds < 1 || rounds > MAX_ROUNDS ||
		    (strcmp(argv[6], "accept") != 0 &&
		    strcmp(argv[6], "refuse") != 0)) {
			fprintf(stderr, "run: bad arguments\n");
			return 2;
		}
		return cmd_run(argv[2], argv[3], calls, rounds, argv[6]);
	}
	fprintf(stderr, "usage: %s gen DIR USERS\n"
	    "       %s run PLUGIN.so DIR CALLS ROUNDS accept|refuse\n",
	    argv[0], argv[0]);
	return 2;
}
