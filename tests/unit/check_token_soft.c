/*
 * check_token_soft.c - unit tests for the keystore token (src/token/token_soft.c)
 * and backend selection (src/token/token.c): unlocking every keystore format,
 * signing so that the REGISTERED certificate verifies it, refusing bad
 * files and unsafe modes, path patterns, and (as root) reading the file
 * with the user's privileges.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <check.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "challenge.h"
#include "config.h"
#include "conv.h"
#include "ps_status.h"
#include "testutil.h"
#include "token.h"
#include "util.h"

#define OTHER_UID 12345
#define OTHER_GID 12345

/* ------------------------------------------------------------ harness */

static char conv_msgs[4096];

static void
conv_record(void *arg, const char *msg)
{
	size_t used = strlen(conv_msgs);

	(void)arg;
	snprintf(conv_msgs + used, sizeof(conv_msgs) - used, "%s\n", msg);
}

static const struct ps_conv test_conv = { NULL, conv_record, conv_record,
    NULL };

struct env {
	char *dir;		/* acts as the user's home */
	struct ps_config cfg;
	struct ps_token_params p;
};

static void
env_init(struct env *e, const char *pattern)
{
	memset(e, 0, sizeof(*e));
	e->dir = tu_mkdtemp();
	e->cfg.keystore = strdup(pattern != NULL ? pattern : "%h/ks.pfx");
	e->p.cfg = &e->cfg;
	e->p.log = &tu_log;
	e->p.conv = &test_conv;
	e->p.user = "alice";
	e->p.uid = geteuid();
	e->p.gid = getegid();
	e->p.home = e->dir;
	tu_log_reset();
	conv_msgs[0] = '\0';
}

static void
env_free(struct env *e)
{
	tu_rmrf(e->dir);
	free(e->dir);
	free(e->cfg.keystore);
}

static char *
env_path(const struct env *e, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", e->dir, name) < 0)
		abort();
	return p;
}

static unsigned char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(1024 * 1024);
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, 1024 * 1024, f);
	fclose(f);
	*len = n;
	return buf;
}

/* Copy fixture `fixture` to DIR/name with `mode`. */
static char *
install(const struct env *e, const char *fixture, const char *name, int mode)
{
	char *src = tu_fixture(fixture), *dst = env_path(e, name);
	size_t len;
	unsigned char *data = slurp(src, &len);

	tu_write_file(dst, data, len, mode);
	free(data);
	free(src);
	return dst;
}

/* Write the concatenation of fixtures to DIR/name. */
static char *
install_concat(const struct env *e, const char *name, const char **fixtures)
{
	char *dst = env_path(e, name);
	unsigned char *all = NULL;
	size_t total = 0, len;

	for (; *fixtures != NULL; fixtures++) {
		char *src = tu_fixture(*fixtures);
		unsigned char *d = slurp(src, &len);

		all = realloc(all, total + len);
		memcpy(all + total, d, len);
		total += len;
		free(d);
		free(src);
	}
	tu_write_file(dst, all, total, 0600);
	free(all);
	return dst;
}

static int
open_tok(struct env *e, struct ps_token **tok)
{
	tu_log_reset();
	conv_msgs[0] = '\0';
	return ps_token_open(PS_BACKEND_SOFT, &e->p, tok);
}

static void
expect_open_fails(struct env *e, int want, const char *logged)
{
	struct ps_token *tok = (struct ps_token *)&tok;
	int r = open_tok(e, &tok);

	ck_assert_msg(r == want, "open: got %s (%d), want %s",
	    ps_status_str(r), r, ps_status_str(want));
	ck_assert_ptr_null(tok);
	ck_assert_msg(tu_log_contains(logged), "log lacks '%s': %s", logged,
	    tu_log_text());
}

/*
 * Sign a fresh challenge with the token's one key and verify it with the
 * REGISTERED certificate `crt`, as the module does.
 */
static void
sign_and_verify(struct ps_token *tok, const char *crt)
{
	const struct ps_token_key *keys = NULL;
	size_t n = 0, dlen = 0, siglen = 0;
	X509 *reg = tu_load_cert(crt);
	EVP_PKEY *regpub = X509_get0_pubkey(reg);
	struct ps_challenge c;
	unsigned char d[EVP_MAX_MD_SIZE], *sig = NULL;
	const EVP_MD *md = ps_challenge_md_for_key(regpub);

	ck_assert_int_eq(tok->ops->list_keys(tok, &keys, &n), PS_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_nonnull(keys[0].pub);
	ck_assert_int_eq(EVP_PKEY_eq(keys[0].pub, regpub), 1);
	ck_assert_str_eq(keys[0].label, "keystore");
	ck_assert_int_eq(ps_challenge_new(&c, "h", "login", "alice", "", 1000,
	    60), PS_OK);
	ck_assert_int_eq(ps_challenge_digest(&c, md, d, &dlen), PS_OK);
	ck_assert_int_eq(tok->ops->sign(tok, &keys[0], md, d, dlen, &sig,
	    &siglen), PS_OK);
	ck_assert_int_eq(ps_challenge_verify(&tu_log, &c, regpub, sig, siglen),
	    PS_OK);
	/* `pub` is public only: it cannot sign */
	free(sig);
	sig = NULL;
	ck_assert_int_ne(ps_sign_digest_with_key(keys[0].pub, md, d, dlen,
	    &sig, &siglen), PS_OK);
	ck_assert_ptr_null(sig);
	ps_challenge_clear(&c);
	X509_free(reg);
}

static void
unlock_ok(struct env *e, const char *file, const char *crt, bool has_cert)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *keys = NULL;
	size_t n = 0;
	X509 *reg;

	ck_assert_int_eq(open_tok(e, &tok), PS_OK);
	ck_assert_str_eq(tok->ops->name, "keystore");
	ck_assert(!tok->ops->lists_without_secret);
	/* nothing is listed before the password */
	ck_assert_int_ne(tok->ops->list_keys(tok, &keys, &n), PS_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, tu_password()), PS_OK);
	sign_and_verify(tok, crt);
	ck_assert_int_eq(tok->ops->list_keys(tok, &keys, &n), PS_OK);
	if (has_cert) {
		reg = tu_load_cert(crt);
		ck_assert_ptr_nonnull(keys[0].cert);
		ck_assert_int_eq(X509_cmp(keys[0].cert, reg), 0);
		X509_free(reg);
	} else
		ck_assert_ptr_null(keys[0].cert);
	ps_token_close(tok);
	(void)file;
}

/* ------------------------------------------------------------ formats */

static const char *users[] = { "alice", "bob", "carol" };

/*
 * The keystore fixture <user><suffix>, installed as `as` under
 * keystore=pattern (NULL: the default), unlocks and signs as <user>.crt.
 */
static void
format_case(const char *user, const char *pattern, const char *suffix,
    const char *as, bool has_cert)
{
	struct env e;
	char fx[64], crt[64];
	char *path;

	env_init(&e, pattern);
	snprintf(fx, sizeof(fx), "%s%s", user, suffix);
	snprintf(crt, sizeof(crt), "%s.crt", user);
	path = install(&e, fx, as, 0600);
	unlock_ok(&e, path, crt, has_cert);
	free(path);
	env_free(&e);
}

START_TEST(test_pfx_unlock_sign)
{
	format_case(users[_i], NULL, ".pfx", "ks.pfx", true);
}
END_TEST

START_TEST(test_legacy_pfx_unlock_sign)
{
	format_case(users[_i], NULL, "-legacy.pfx", "ks.pfx", true);
}
END_TEST

START_TEST(test_pem_unlock_sign)
{
	format_case(users[_i], "%h/ks.pem", ".key.enc.pem", "ks.pem",
	    false);
}
END_TEST

/* A PEM keystore with the CA first, then the key, then the user's cert:
 * the certificate reported is the one matching the key. */
START_TEST(test_pem_with_certs)
{
	static const char *parts[] = { "ca.crt", "bob.key.enc.pem", "bob.crt",
	    NULL };
	struct env e;
	char *path;

	env_init(&e, "%h/ks.pem");
	path = install_concat(&e, "ks.pem", parts);
	unlock_ok(&e, path, "bob.crt", true);
	free(path);
	env_free(&e);
}
END_TEST

static void
wrong_then_right(const char *fixture, const char *crt)
{
	struct env e;
	struct ps_token *tok = NULL;
	char *path;

	env_init(&e, NULL);
	path = install(&e, fixture, "ks.pfx", 0600);
	ck_assert_int_eq(open_tok(&e, &tok), PS_OK);
	tu_log_reset();
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, "wrong horse 42"),
	    PS_ERR_BAD_SECRET);
	ck_assert_msg(tu_log_contains("wrong password"), "%s", tu_log_text());
	ck_assert(!tu_log_contains("wrong horse"));
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, ""), PS_ERR_BAD_SECRET);
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, NULL), PS_ERR_BAD_SECRET);
	/* a failed unlock leaves it locked; the right password still works */
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, tu_password()), PS_OK);
	sign_and_verify(tok, crt);
	/* and a later wrong password locks it again */
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, "nope"), PS_ERR_BAD_SECRET);
	{
		const struct ps_token_key *keys = NULL;
		size_t n = 0;

		ck_assert_int_ne(tok->ops->list_keys(tok, &keys, &n), PS_OK);
	}
	ps_token_close(tok);
	free(path);
	env_free(&e);
}

START_TEST(test_wrong_password)
{
	wrong_then_right("alice.pfx", "alice.crt");
	wrong_then_right("bob-legacy.pfx", "bob.crt");
	wrong_then_right("carol.key.enc.pem", "carol.crt");
}
END_TEST

START_TEST(test_prompt_and_sign_misuse)
{
	struct env e;
	struct ps_token *tok = NULL;
	struct ps_token_key fake;
	unsigned char d[32] = { 0 }, *sig = NULL;
	size_t siglen = 0;
	char *path;

	env_init(&e, "%h/.personalsign/%u.pfx");
	path = env_path(&e, ".personalsign");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	free(path);
	path = install(&e, "alice.pfx", ".personalsign/alice.pfx", 0600);
	ck_assert_int_eq(open_tok(&e, &tok), PS_OK);
	ck_assert_str_eq(tok->ops->secret_prompt(tok), "Password for "
	    "PersonalSign keystore ~/.personalsign/alice.pfx: ");
	/* signing before unlock, or with a key that is not ours */
	ck_assert_int_eq(tok->ops->sign(tok, &fake, EVP_sha256(), d, 32, &sig,
	    &siglen), PS_ERR_INTERNAL);
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, tu_password()), PS_OK);
	memset(&fake, 0, sizeof(fake));
	tu_log_reset();
	ck_assert_int_eq(tok->ops->sign(tok, &fake, EVP_sha256(), d, 32, &sig,
	    &siglen), PS_ERR_INTERNAL);
	ck_assert_ptr_null(sig);
	ck_assert(tu_log_contains("not this unlocked keystore"));
	ps_token_close(tok);
	ps_token_close(NULL);
	free(path);
	env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ bad files */

static void
expect_unlock_fails(struct env *e, int want, const char *logged)
{
	struct ps_token *tok = NULL;
	const struct ps_token_key *keys = NULL;
	size_t n = 0;
	int r;

	ck_assert_int_eq(open_tok(e, &tok), PS_OK);
	tu_log_reset();
	r = tok->ops->unlock(tok, NULL, tu_password());
	ck_assert_msg(r == want, "unlock: got %s, want %s (log: %s)",
	    ps_status_str(r), ps_status_str(want), tu_log_text());
	ck_assert_msg(tu_log_contains(logged), "log lacks '%s': %s", logged,
	    tu_log_text());
	ck_assert_int_ne(tok->ops->list_keys(tok, &keys, &n), PS_OK);
	ps_token_close(tok);
}

static void
bad_content(const void *data, size_t len, int want, const char *logged)
{
	struct env e;
	char *path;

	env_init(&e, NULL);
	path = env_path(&e, "ks.pfx");
	tu_write_file(path, data, len, 0600);
	expect_unlock_fails(&e, want, logged);
	free(path);
	env_free(&e);
}

static void
bad_fixture(const char *fixture, int want, const char *logged)
{
	char *src = tu_fixture(fixture);
	size_t len;
	unsigned char *d = slurp(src, &len);

	bad_content(d, len, want, logged);
	free(d);
	free(src);
}

START_TEST(test_truncated_and_garbage)
{
	static const char text[] = "this is not a keystore\n";
	static const unsigned char der_short[] = { 0x30, 0x82, 0x01 };
	static const unsigned char der_huge[] = { 0x30, 0x84, 0xff, 0xff, 0xff,
	    0xff, 0x00 };
	char *src = tu_fixture("alice.pfx");
	size_t len;
	unsigned char *d = slurp(src, &len);

	bad_fixture("truncated.pfx", PS_ERR_TOKEN, "is truncated");
	bad_fixture("garbage.bin", PS_ERR_TOKEN, "ks.pfx");
	bad_fixture("empty.cer", PS_ERR_TOKEN, "is empty");
	bad_content(text, sizeof(text) - 1, PS_ERR_TOKEN,
	    "is not a PKCS#12 or PEM keystore");
	bad_content("\0\0\0\0", 4, PS_ERR_TOKEN,
	    "is not a PKCS#12 or PEM keystore");
	bad_content(der_short, sizeof(der_short), PS_ERR_TOKEN, "is truncated");
	bad_content(der_huge, sizeof(der_huge), PS_ERR_TOKEN, "is truncated");
	bad_content(d, len - 1, PS_ERR_TOKEN, "is truncated");
	/* a well-formed PKCS#12 followed by junk */
	d = realloc(d, len + 5);
	memcpy(d + len, "junk!", 5);
	bad_content(d, len + 5, PS_ERR_TOKEN, "5 bytes of trailing data");
	/* DER that is a certificate, not a PKCS#12 */
	bad_fixture("alice.der", PS_ERR_TOKEN,
	    "is not a usable PKCS#12 keystore");
	free(d);
	free(src);
}
END_TEST

START_TEST(test_bad_pem)
{
	static const char *two_keys[] = { "alice.key.enc.pem", "bob.key.enc.pem",
	    NULL };
	char *src = tu_fixture("alice.key.enc.pem");
	size_t len;
	unsigned char *d = slurp(src, &len);
	struct env e;
	char *path;

	/* cut in the middle of the base64 */
	bad_content(d, len / 2, PS_ERR_TOKEN, "truncated or malformed");
	/* base64 damaged */
	d[len / 2] = '*';
	bad_content(d, len, PS_ERR_TOKEN, "truncated or malformed");
	bad_fixture("alice.key", PS_ERR_TOKEN, "unencrypted private key");
	bad_fixture("alice.crt", PS_ERR_TOKEN, "holds no private key");
	bad_fixture("alice.p7b", PS_ERR_TOKEN, "unexpected PEM block \"PKCS7\"");
	bad_content("-----BEGIN FOO-----\n", 20, PS_ERR_TOKEN,
	    "truncated or malformed after 0 complete block(s)");
	bad_content("x\n-----BEGIN \n", 14, PS_ERR_TOKEN,
	    "is not a PKCS#12 or PEM keystore");
	env_init(&e, NULL);
	path = install_concat(&e, "ks.pfx", two_keys);
	expect_unlock_fails(&e, PS_ERR_TOKEN, "more than one private key");
	free(path);
	env_free(&e);
	free(d);
	free(src);
}
END_TEST

START_TEST(test_too_large)
{
	struct env e;
	char *path;
	unsigned char *big = calloc(1, 256 * 1024 + 1);

	env_init(&e, NULL);
	path = env_path(&e, "ks.pfx");
	tu_write_file(path, big, 256 * 1024 + 1, 0600);
	expect_open_fails(&e, PS_ERR_TOKEN, "larger than 256 KiB");
	free(path);
	free(big);
	env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ file safety */

START_TEST(test_missing_keystore)
{
	struct env e;

	env_init(&e, "%h/.personalsign/keystore.pfx");
	expect_open_fails(&e, PS_ERR_NO_TOKEN, "does not exist");
	ck_assert_str_eq(conv_msgs, "No PersonalSign keystore at "
	    "~/.personalsign/keystore.pfx\n");
	env_free(&e);
}
END_TEST

START_TEST(test_symlink_refused)
{
	struct env e;
	char *target, *link;

	env_init(&e, NULL);
	target = install(&e, "alice.pfx", "real.pfx", 0600);
	link = env_path(&e, "ks.pfx");
	ck_assert_int_eq(symlink(target, link), 0);
	expect_open_fails(&e, PS_ERR_UNSAFE, "is a symbolic link");
	ck_assert_ptr_nonnull(strstr(conv_msgs, "is a symbolic link"));
	/* a dangling one too */
	unlink(target);
	expect_open_fails(&e, PS_ERR_UNSAFE, "is a symbolic link");
	free(target);
	free(link);
	env_free(&e);
}
END_TEST

START_TEST(test_writable_modes_refused)
{
	struct env e;
	char *path;

	env_init(&e, NULL);
	path = install(&e, "alice.pfx", "ks.pfx", 0620);
	expect_open_fails(&e, PS_ERR_UNSAFE, "is writable by its group");
	ck_assert_int_eq(chmod(path, 0602), 0);
	expect_open_fails(&e, PS_ERR_UNSAFE, "is writable by others");
	ck_assert_int_eq(chmod(path, 0644), 0);	/* readable is fine */
	{
		struct ps_token *tok = NULL;

		ck_assert_int_eq(open_tok(&e, &tok), PS_OK);
		ps_token_close(tok);
	}
	free(path);
	env_free(&e);
}
END_TEST

START_TEST(test_not_regular_refused)
{
	struct env e;
	char *path;

	env_init(&e, NULL);
	path = env_path(&e, "ks.pfx");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	expect_open_fails(&e, PS_ERR_UNSAFE, "is not a regular file");
	ck_assert_int_eq(rmdir(path), 0);
	/* a FIFO must not block the login */
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	expect_open_fails(&e, PS_ERR_UNSAFE, "is not a regular file");
	free(path);
	env_free(&e);
}
END_TEST

START_TEST(test_foreign_owner_refused)
{
	struct env e;
	char *path;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP test_foreign_owner_refused: needs root "
		    "to chown\n");
		return;
	}
	env_init(&e, NULL);
	path = install(&e, "alice.pfx", "ks.pfx", 0600);
	ck_assert_int_eq(chown(path, OTHER_UID, OTHER_GID), 0);
	/* root reading for root: the file must be root's */
	expect_open_fails(&e, PS_ERR_UNSAFE, "owned by uid 12345");
	ck_assert_ptr_nonnull(strstr(conv_msgs, "owned by someone else"));
	free(path);
	env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ patterns */

START_TEST(test_pattern_expansion)
{
	struct env e;
	struct ps_token *tok = NULL;
	char *path;

	/* %u and %h */
	env_init(&e, "%h/%u-ks.pfx");
	path = install(&e, "alice.pfx", "alice-ks.pfx", 0600);
	ck_assert_int_eq(open_tok(&e, &tok), PS_OK);
	ck_assert_str_eq(tok->ops->secret_prompt(tok),
	    "Password for PersonalSign keystore ~/alice-ks.pfx: ");
	ps_token_close(tok);
	free(path);
	/* another user name selects another file */
	e.p.user = "bob";
	expect_open_fails(&e, PS_ERR_NO_TOKEN, "bob-ks.pfx does not exist");
	env_free(&e);

	/* %% is a literal percent sign */
	env_init(&e, "%h/50%%.pfx");
	path = install(&e, "alice.pfx", "50%.pfx", 0600);
	ck_assert_int_eq(open_tok(&e, &tok), PS_OK);
	ps_token_close(tok);
	free(path);
	env_free(&e);
}
END_TEST

START_TEST(test_pattern_default)
{
	struct env e;
	struct ps_token *tok = NULL;
	char *path;

	env_init(&e, NULL);
	free(e.cfg.keystore);
	e.cfg.keystore = NULL;
	path = env_path(&e, ".personalsign");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	free(path);
	path = install(&e, "bob.pfx", ".personalsign/keystore.pfx", 0600);
	ck_assert_int_eq(open_tok(&e, &tok), PS_OK);
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, tu_password()), PS_OK);
	sign_and_verify(tok, "bob.crt");
	ps_token_close(tok);
	free(path);
	env_free(&e);
}
END_TEST

START_TEST(test_pattern_errors)
{
	struct env e;

	env_init(&e, "%h/%x.pfx");
	expect_open_fails(&e, PS_ERR_INVALID, "unknown escape '%x'");
	env_free(&e);
	env_init(&e, "%h/ks%");
	expect_open_fails(&e, PS_ERR_INVALID, "lone '%'");
	env_free(&e);
	env_init(&e, "keystores/%u.pfx");
	expect_open_fails(&e, PS_ERR_INVALID, "is not absolute");
	env_free(&e);
	env_init(&e, "%u/ks.pfx");
	expect_open_fails(&e, PS_ERR_INVALID, "is not absolute");
	env_free(&e);
	env_init(&e, "%h/ks.pfx");
	e.p.home = NULL;
	expect_open_fails(&e, PS_ERR_INVALID, "no absolute home directory");
	e.p.home = "relative/home";
	expect_open_fails(&e, PS_ERR_INVALID, "no absolute home directory");
	env_free(&e);
	env_init(&e, "/tmp/%u.pfx");
	e.p.user = "../etc/shadow";
	expect_open_fails(&e, PS_ERR_INVALID, "invalid user name");
	env_free(&e);
}
END_TEST

START_TEST(test_pattern_too_long)
{
	struct env e;
	char *pat = malloc(5000);

	memset(pat, 'a', 4999);
	pat[0] = '/';
	pat[4999] = '\0';
	env_init(&e, pat);
	expect_open_fails(&e, PS_ERR_INVALID, "path too long");
	env_free(&e);
	free(pat);
}
END_TEST

/* ------------------------------------------------------------ backends */

START_TEST(test_backend_selection)
{
	struct env e;
	struct ps_token *tok = (struct ps_token *)&tok;
	char *path;

	env_init(&e, NULL);
	path = install(&e, "carol.pfx", "ks.pfx", 0600);
	tu_log_reset();
#ifdef PS_HAVE_PIV
	/* no pcscd behind this socket: no card, and AUTO falls back */
	setenv("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm", 1);
#endif
	ck_assert_int_eq(ps_token_open(PS_BACKEND_PIV, &e.p, &tok),
	    PS_ERR_NO_TOKEN);
	ck_assert_ptr_null(tok);
#ifndef PS_HAVE_PIV
	ck_assert(tu_log_contains("PIV backend not available"));
#endif
	ck_assert_int_eq(ps_token_open(PS_BACKEND_AUTO, &e.p, &tok), PS_OK);
	ck_assert_ptr_eq(tok->ops, &ps_token_soft_ops);
	ps_token_close(tok);
	ck_assert_int_eq(ps_token_open((enum ps_backend)42, &e.p, &tok),
	    PS_ERR_INTERNAL);
	ck_assert_ptr_null(tok);
	ck_assert_int_eq(ps_token_open(PS_BACKEND_SOFT, NULL, &tok),
	    PS_ERR_INTERNAL);
	free(path);
	env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ as root */

static bool
need_root(const char *test)
{
	if (geteuid() == 0)
		return true;
	fprintf(stderr, "SKIP %s: not running as root, the privilege drop "
	    "cannot be tested\n", test);
	return false;
}

/* A home the dropped child can traverse. */
static void
env_init_other(struct env *e, const char *pattern)
{
	env_init(e, pattern);
	ck_assert_int_eq(chmod(e->dir, 0711), 0);
	e->p.uid = OTHER_UID;
	e->p.gid = OTHER_GID;
}

START_TEST(test_root_reads_as_user)
{
	struct env e;
	struct ps_token *tok = NULL;
	char *path;

	if (!need_root("test_root_reads_as_user"))
		return;
	env_init_other(&e, NULL);
	path = install(&e, "alice.pfx", "ks.pfx", 0600);
	ck_assert_int_eq(chown(path, OTHER_UID, OTHER_GID), 0);
	ck_assert_int_eq(open_tok(&e, &tok), PS_OK);
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, tu_password()), PS_OK);
	sign_and_verify(tok, "alice.crt");
	ps_token_close(tok);
	free(path);
	env_free(&e);
}
END_TEST

/* Root could read this file; the user cannot, so neither may we. */
START_TEST(test_root_file_unreadable_by_user)
{
	struct env e;
	char *path;

	if (!need_root("test_root_file_unreadable_by_user"))
		return;
	env_init_other(&e, NULL);
	path = install(&e, "alice.pfx", "ks.pfx", 0600);
	ck_assert_int_eq(chown(path, 0, 0), 0);
	expect_open_fails(&e, PS_ERR_IO,
	    "cannot be read as uid 12345: Permission denied");
	/* nor a file of another user */
	ck_assert_int_eq(chown(path, OTHER_UID + 1, OTHER_GID + 1), 0);
	expect_open_fails(&e, PS_ERR_IO, "Permission denied");
	/* nor one behind a directory the user cannot enter */
	ck_assert_int_eq(chown(path, OTHER_UID, OTHER_GID), 0);
	ck_assert_int_eq(chmod(e.dir, 0700), 0);
	expect_open_fails(&e, PS_ERR_IO, "Permission denied");
	free(path);
	env_free(&e);
}
END_TEST

START_TEST(test_root_child_checks)
{
	struct env e;
	char *path, *link;

	if (!need_root("test_root_child_checks"))
		return;
	env_init_other(&e, NULL);
	path = install(&e, "alice.pfx", "real.pfx", 0620);
	ck_assert_int_eq(chown(path, OTHER_UID, OTHER_GID), 0);
	link = env_path(&e, "ks.pfx");
	ck_assert_int_eq(rename(path, link), 0);
	expect_open_fails(&e, PS_ERR_UNSAFE, "is writable by its group");
	ck_assert_int_eq(rename(link, path), 0);
	ck_assert_int_eq(symlink(path, link), 0);
	expect_open_fails(&e, PS_ERR_UNSAFE, "is a symbolic link");
	unlink(link);
	expect_open_fails(&e, PS_ERR_NO_TOKEN, "does not exist");
	ck_assert_str_eq(conv_msgs, "No PersonalSign keystore at ~/ks.pfx\n");
	/* the user's own file, owned by a third uid but readable: refused */
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(chown(path, OTHER_UID + 1, OTHER_GID), 0);
	ck_assert_int_eq(rename(path, link), 0);
	expect_open_fails(&e, PS_ERR_UNSAFE, "owned by uid 12346");
	free(path);
	free(link);
	env_free(&e);
}
END_TEST

/* More than a pipe buffer through the child: a PEM keystore with a long
 * comment before the key arrives whole. */
START_TEST(test_root_large_transfer)
{
	struct env e;
	struct ps_token *tok = NULL;
	char *src, *path;
	unsigned char *key, *all;
	size_t klen, pad = 200 * 1024, i;

	if (!need_root("test_root_large_transfer"))
		return;
	env_init_other(&e, NULL);
	src = tu_fixture("carol.key.enc.pem");
	key = slurp(src, &klen);
	all = malloc(pad + klen);
	for (i = 0; i < pad; i++)
		all[i] = (i % 64 == 63) ? '\n' : 'x';
	memcpy(all + pad, key, klen);
	path = env_path(&e, "ks.pfx");
	tu_write_file(path, all, pad + klen, 0600);
	ck_assert_int_eq(chown(path, OTHER_UID, OTHER_GID), 0);
	ck_assert_int_eq(open_tok(&e, &tok), PS_OK);
	ck_assert_int_eq(tok->ops->unlock(tok, NULL, tu_password()), PS_OK);
	sign_and_verify(tok, "carol.crt");
	ps_token_close(tok);
	free(path);
	free(all);
	free(key);
	free(src);
	env_free(&e);
}
END_TEST

START_TEST(test_root_unknown_user)
{
	struct env e;

	if (!need_root("test_root_unknown_user"))
		return;
	env_init_other(&e, NULL);
	e.p.uid = (uid_t)-1;
	expect_open_fails(&e, PS_ERR_INVALID, "no uid/gid");
	e.p.uid = OTHER_UID;
	e.p.gid = (gid_t)-1;
	expect_open_fails(&e, PS_ERR_INVALID, "no uid/gid");
	env_free(&e);
}
END_TEST

static Suite *
token_soft_suite(void)
{
	Suite *s = suite_create("token_soft");
	TCase *tc;

	tc = tcase_create("formats");
	tcase_add_loop_test(tc, test_pfx_unlock_sign, 0, 3);
	tcase_add_loop_test(tc, test_legacy_pfx_unlock_sign, 0, 3);
	tcase_add_loop_test(tc, test_pem_unlock_sign, 0, 3);
	tcase_add_test(tc, test_pem_with_certs);
	tcase_add_test(tc, test_wrong_password);
	tcase_add_test(tc, test_prompt_and_sign_misuse);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad files");
	tcase_add_test(tc, test_truncated_and_garbage);
	tcase_add_test(tc, test_bad_pem);
	tcase_add_test(tc, test_too_large);
	suite_add_tcase(s, tc);

	tc = tcase_create("file safety");
	tcase_add_test(tc, test_missing_keystore);
	tcase_add_test(tc, test_symlink_refused);
	tcase_add_test(tc, test_writable_modes_refused);
	tcase_add_test(tc, test_not_regular_refused);
	tcase_add_test(tc, test_foreign_owner_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("patterns");
	tcase_add_test(tc, test_pattern_expansion);
	tcase_add_test(tc, test_pattern_default);
	tcase_add_test(tc, test_pattern_errors);
	tcase_add_test(tc, test_pattern_too_long);
	tcase_add_test(tc, test_backend_selection);
	suite_add_tcase(s, tc);

	tc = tcase_create("privilege drop");
	tcase_add_test(tc, test_root_reads_as_user);
	tcase_add_test(tc, test_root_file_unreadable_by_user);
	tcase_add_test(tc, test_root_child_checks);
	tcase_add_test(tc, test_root_large_transfer);
	tcase_add_test(tc, test_root_unknown_user);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(token_soft_suite());
}
