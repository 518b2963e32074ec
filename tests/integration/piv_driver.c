/*
 * piv_driver.c - test driver for tests/integration/test-piv-backend.sh:
 * one card login through the core API, without PAM: ps_token_open,
 * list_keys (matched against the "registered" certificate given on the
 * command line, as auth.c does), unlock with the PIN, sign a fresh
 * challenge, ps_challenge_verify with the registered key.
 *
 * usage: piv_driver [options] REGISTERED-CERT.pem
 *   --pin PIN          PIN to unlock with (default 123456)
 *   --socket PATH      pcsc_socket= (sets PCSCLITE_CSOCK_NAME itself)
 *   --reader TEXT      reader= substring
 *   --timeout SECONDS  card_timeout=
 *   --min-retries N    min_pin_retries=
 *   --backend piv|auto (default piv)
 *   --no-hint          do not pass the want_key hint (read every slot)
 *   --expect STATUS    exit 0 only when the outcome is STATUS (ok,
 *                      bad_secret, pin_locked, token, no_token, ...)
 * Prints "result: STATUS", "reader: ...", "slot: ...", "elapsed_ms: N"
 * and every message for the user as "conv: ..." on stdout; log lines go
 * to stderr. Exit 0 when the outcome is the expected one, 1 when not,
 * 2 for usage errors.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/pem.h>

#include "challenge.h"
#include "config.h"
#include "conv.h"
#include "log.h"
#include "ps_status.h"
#include "token.h"
#include "util.h"

static const char *const status_names[] = {
	[PS_OK] = "ok",
	[PS_ERR_NOMEM] = "nomem",
	[PS_ERR_INVALID] = "invalid",
	[PS_ERR_IO] = "io",
	[PS_ERR_UNSAFE] = "unsafe",
	[PS_ERR_NOT_FOUND] = "not_found",
	[PS_ERR_EXISTS] = "exists",
	[PS_ERR_POLICY] = "policy",
	[PS_ERR_EXPIRED] = "expired",
	[PS_ERR_NO_TOKEN] = "no_token",
	[PS_ERR_BAD_SECRET] = "bad_secret",
	[PS_ERR_PIN_LOCKED] = "pin_locked",
	[PS_ERR_AUTH] = "auth",
	[PS_ERR_CONV] = "conv",
	[PS_ERR_CRYPTO] = "crypto",
	[PS_ERR_TOKEN] = "token",
	[PS_ERR_INTERNAL] = "internal",
};

static const char *
status_name(int r)
{
	if (r < 0 || (size_t)r >= sizeof(status_names) / sizeof(*status_names) ||
	    status_names[r] == NULL)
		return "unknown";
	return status_names[r];
}

static void
conv_say(void *arg, const char *msg)
{
	printf("conv: %s\n", msg);
	fflush(stdout);
}

static const struct ps_conv conv = { NULL, conv_say, conv_say, NULL };

static bool
want_registered(void *arg, EVP_PKEY *pub)
{
	return EVP_PKEY_eq(X509_get0_pubkey(arg), pub) == 1;
}

static X509 *
load_pem(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL) {
		perror(path);
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		fprintf(stderr, "%s: not a PEM certificate\n", path);
	return x;
}

static const struct ps_token_key *
find_key(struct ps_token *tok, X509 *registered)
{
	const struct ps_token_key *keys;
	size_t n, i;

	if (tok->ops->list_keys(tok, &keys, &n) != PS_OK)
		return NULL;
	for (i = 0; i < n; i++)
		if (keys[i].pub != NULL && want_registered(registered,
		    keys[i].pub))
			return &keys[i];
	return NULL;
}

/* Sign a fresh challenge on the token, verify with the registered key. */
static int
sign_and_verify(const struct ps_log *log, struct ps_token *tok,
    const struct ps_token_key *key, X509 *registered)
{
	struct ps_challenge c;
	unsigned char digest[EVP_MAX_MD_SIZE], *sig = NULL;
	size_t dlen = 0, siglen = 0;
	EVP_PKEY *pub = X509_get0_pubkey(registered);
	const EVP_MD *md = ps_challenge_md_for_key(pub);
	int r;

	memset(&c, 0, sizeof(c));
	r = ps_challenge_new(&c, "testhost", "piv-driver", "pstest", "",
	    time(NULL), 60);
	if (r != PS_OK)
		goto out;
	if ((r = ps_challenge_digest(&c, md, digest, &dlen)) != PS_OK)
		goto out;
	if ((r = tok->ops->sign(tok, key, md, digest, dlen, &sig, &siglen)) !=
	    PS_OK)
		goto out;
	r = ps_challenge_verify(log, &c, pub, sig, siglen);
 out:
	free(sig);
	ps_challenge_clear(&c);
	return r;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 +
	    (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static int
run(struct ps_config *cfg, enum ps_backend backend, bool hint,
    const char *pin, X509 *registered)
{
	struct ps_log log = { ps_log_to_stderr, (void *)"piv_driver", 1 };
	struct ps_token_params p;
	struct ps_token *tok = NULL;
	const struct ps_token_key *key;
	int r;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.log = &log;
	p.conv = &conv;
	p.user = "pstest";
	p.uid = getuid();
	p.gid = getgid();
	p.home = "/nonexistent";
	if (hint) {
		p.want_key = want_registered;
		p.want_key_arg = registered;
	}
	if ((r = ps_token_open(backend, &p, &tok)) != PS_OK)
		return r;
	printf("backend: %s\n", tok->ops->name);
	printf("prompt: %s\n", tok->ops->secret_prompt(tok));
	if ((key = find_key(tok, registered)) == NULL) {
		printf("conv: This card holds no key registered for pstest.\n");
		r = PS_ERR_NO_TOKEN;
		goto out;
	}
	printf("slot: %s\n", key->label);
	if ((r = tok->ops->unlock(tok, key, pin)) != PS_OK)
		goto out;
	r = sign_and_verify(&log, tok, key, registered);
 out:
	ps_token_close(tok);
	return r;
}

static int
set_opt(struct ps_config *cfg, const char *key, const char *value)
{
	char err[256];

	if (ps_config_set(cfg, key, value, err, sizeof(err)) != PS_OK) {
		fprintf(stderr, "piv_driver: %s\n", err);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pin", required_argument, NULL, 'p' },
		{ "socket", required_argument, NULL, 's' },
		{ "reader", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "min-retries", required_argument, NULL, 'm' },
		{ "backend", required_argument, NULL, 'b' },
		{ "no-hint", no_argument, NULL, 'n' },
		{ "expect", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	struct ps_config cfg;
	struct timespec t0;
	enum ps_backend backend = PS_BACKEND_PIV;
	const char *pin = "123456", *expect = NULL;
	bool hint = true;
	X509 *registered = NULL;
	int c, r, rc = 2;

	if (ps_config_init(&cfg) != PS_OK)
		return 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pin = optarg; break;
		case 's': if (set_opt(&cfg, "pcsc_socket", optarg)) goto out; break;
		case 'r': if (set_opt(&cfg, "reader", optarg)) goto out; break;
		case 't': if (set_opt(&cfg, "card_timeout", optarg)) goto out; break;
		case 'm': if (set_opt(&cfg, "min_pin_retries", optarg)) goto out; break;
		case 'b':
			if (strcmp(optarg, "auto") == 0)
				backend = PS_BACKEND_AUTO;
			else if (strcmp(optarg, "piv") != 0)
				goto out;
			break;
		case 'n': hint = false; break;
		case 'e': expect = optarg; break;
		default: goto out;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: piv_driver [options] CERT.pem\n");
		goto out;
	}
	if ((registered = load_pem(argv[optind])) == NULL)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = run(&cfg, backend, hint, pin, registered);
	printf("result: %s\n", status_name(r));
	printf("elapsed_ms: %ld\n", ms_since(&t0));
	rc = expect == NULL ? (r == PS_OK ? 0 : 1) :
	    strcmp(expect, status_name(r)) == 0 ? 0 : 1;
 out:
	X509_free(registered);
	ps_config_free(&cfg);
	return rc;
}
