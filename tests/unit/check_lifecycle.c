/*
 * check_lifecycle.c - unit tests for src/registry/lifecycle.c: who counts as the
 * same person, what may renew or reissue what (newer, different key,
 * policy), which registered entry a new certificate replaces, applying
 * a renewal (idempotently), proof of possession, and auto_renew at login
 * with a fake token holding the old and the new key - a keystore (already
 * unlocked) and a card (asks for the PIN once more).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <check.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "challenge.h"
#include "config.h"
#include "lifecycle.h"
#include "policy.h"
#include "ps_status.h"
#include "registry.h"
#include "testutil.h"
#include "token.h"
#include "util.h"

static char *dir;		/* scratch, under $TMPDIR (trusted) */
static char *regdir;
static const struct ps_reg_change why_test = { "tester", "unit test" };

static void
setup(void)
{
	dir = tu_mkdtemp();
	if ((regdir = ps_strdup_printf("%s/reg", dir)) == NULL)
		abort();
	tu_log_reset();
}

static void
teardown(void)
{
	tu_rmrf(dir);
	free(dir);
	free(regdir);
}

static void
cfg_make(struct ps_config *cfg)
{
	char *ca = tu_fixture("ca.crt");

	ck_assert_int_eq(ps_config_init(cfg), PS_OK);
	tu_cfg_set(cfg, "ca_file", ca);
	tu_cfg_set(cfg, "registry", regdir);
	tu_cfg_set(cfg, "auto_renew", NULL);
	free(ca);
}

static struct ps_policy *
policy_make(void)
{
	struct ps_config cfg;
	struct ps_policy *p;

	cfg_make(&cfg);
	p = tu_policy_new(&cfg);
	ps_config_free(&cfg);
	return p;
}

static struct ps_registry *
reg_open(void)
{
	return tu_registry_open(regdir, true);
}

static void
reg_add(const char *user, const char *crt)
{
	struct ps_registry *reg = reg_open();
	X509 *x = tu_load_cert(crt);

	ck_assert_int_eq(ps_registry_add(reg, user, x, &why_test), PS_OK);
	X509_free(x);
	ps_registry_close(reg);
}

/* State of fp for user, or -1 when not usable. */
static int
state_of(const char *user, const char *fp)
{
	struct ps_registry *reg = reg_open();
	struct ps_reg_list list = { NULL, 0 };
	int st = -1;
	size_t i;

	if (ps_registry_lookup_user(reg, user, &list) == PS_OK)
		for (i = 0; i < list.count; i++)
			if (strcmp(list.entries[i].fingerprint, fp) == 0)
				st = (int)list.entries[i].state;
	ps_reg_list_free(&list);
	ps_registry_close(reg);
	return st;
}

/*
 * A certificate by the fixture CA for `key` with alice's e-mail and the
 * given validity (seconds relative to alice's own dates).
 */
static X509 *
alice_like(EVP_PKEY *key, long nb_delta, long na_delta)
{
	X509 *alice = tu_load_cert("alice.crt");
	X509 *ca = tu_load_cert("ca.crt");
	EVP_PKEY *cakey = tu_load_key("ca.key");
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	time_t nb, na;

	ck_assert_int_eq(ps_cert_validity(alice, &nb, &na), PS_OK);
	ck_assert_int_eq(X509_set_version(x, 2), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242), 1);
	ck_assert_ptr_nonnull(ASN1_TIME_set(X509_getm_notBefore(x),
	    nb + nb_delta));
	ck_assert_ptr_nonnull(ASN1_TIME_set(X509_getm_notAfter(x),
	    na + na_delta));
	ck_assert_int_eq(X509_set_subject_name(x, X509_get_subject_name(alice)),
	    1);
	ck_assert_int_eq(X509_set_issuer_name(x, X509_get_subject_name(ca)), 1);
	ck_assert_int_eq(X509_set_pubkey(x, key), 1);
	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    "email:alice@example.test");
	ck_assert_ptr_nonnull(ext);
	ck_assert_int_eq(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	ck_assert_int_gt(X509_sign(x, cakey, EVP_sha256()), 0);
	EVP_PKEY_free(cakey);
	X509_free(ca);
	X509_free(alice);
	return x;
}

static void
expect_renewal(const struct ps_policy *p, enum ps_identity_mode mode,
    enum ps_renew_kind kind, X509 *old, X509 *cand, int want,
    const char *why_want)
{
	char why[512] = "";
	int r;

	r = ps_renewal_check(p, mode, kind, old, cand, time(NULL), why,
	    sizeof(why));
	ck_assert_msg(r == want, "rc %s want %s; why: %s", ps_status_str(r),
	    ps_status_str(want), why);
	if (why_want != NULL)
		ck_assert_msg(strstr(why, why_want) != NULL, "why \"%s\" lacks "
		    "\"%s\"", why, why_want);
}

/* ------------------------------------------------------------ a fake token */

struct fake {
	struct ps_token_key keys[4];
	EVP_PKEY *priv[4];
	size_t n;
	bool card;		/* needs the PIN before each signature */
	bool unlocked[4];
	int unlocks;
	int signs;
};

static int
fake_list(struct ps_token *tok, const struct ps_token_key **keys,
    size_t *count)
{
	struct fake *f = tok->impl;

	*keys = f->keys;
	*count = f->n;
	return PS_OK;
}

static const char *
fake_prompt(struct ps_token *tok)
{
	(void)tok;
	return "PIN: ";
}

static int
fake_unlock(struct ps_token *tok, const struct ps_token_key *key,
    const char *secret)
{
	struct fake *f = tok->impl;

	f->unlocks++;
	if (strcmp(secret, "1234") != 0)
		return PS_ERR_BAD_SECRET;
	if (key != NULL)
		f->unlocked[key->id] = true;
	return PS_OK;
}

static int
fake_sign(struct ps_token *tok, const struct ps_token_key *key,
    const EVP_MD *md, const unsigned char *digest, size_t len,
    unsigned char **sig, size_t *siglen)
{
	struct fake *f = tok->impl;

	if (f->card && !f->unlocked[key->id])
		return PS_ERR_INTERNAL;
	f->unlocked[key->id] = false;
	f->signs++;
	return ps_sign_digest_with_key(f->priv[key->id], md, digest, len, sig,
	    siglen);
}

static const struct ps_token_ops fake_keystore_ops = {
	.name = "fake keystore",
	.lists_without_secret = false,
	.list_keys = fake_list,
	.secret_prompt = fake_prompt,
	.unlock = fake_unlock,
	.sign = fake_sign,
};
static const struct ps_token_ops fake_card_ops = {
	.name = "fake card",
	.lists_without_secret = true,
	.list_keys = fake_list,
	.secret_prompt = fake_prompt,
	.unlock = fake_unlock,
	.sign = fake_sign,
};

/* Key `name` (fixture .crt + .key); sign_with: another fixture's key. */
static void
fake_add(struct fake *f, const char *name, const char *sign_with)
{
	char crt[64], key[64];
	size_t i = f->n++;

	snprintf(crt, sizeof(crt), "%s.crt", name);
	snprintf(key, sizeof(key), "%s.key", sign_with ? sign_with : name);
	f->keys[i].cert = tu_load_cert(crt);
	f->keys[i].pub = X509_get_pubkey(f->keys[i].cert);
	f->keys[i].id = (int)i;
	snprintf(f->keys[i].label, sizeof(f->keys[i].label), "slot %zu", i);
	f->priv[i] = tu_load_key(key);
}

static void
fake_free(struct fake *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		X509_free(f->keys[i].cert);
		EVP_PKEY_free(f->keys[i].pub);
		EVP_PKEY_free(f->priv[i]);
	}
}

/* A conversation with one scripted answer that records what it said. */
static char conv_said[2048];
static const char *conv_answer;
static int conv_prompts;

static int
conv_prompt_fn(void *arg, int echo, const char *msg, char **answer)
{
	(void)arg;
	(void)echo;
	(void)msg;
	conv_prompts++;
	if (conv_answer == NULL)
		return PS_ERR_CONV;
	*answer = strdup(conv_answer);
	return *answer != NULL ? PS_OK : PS_ERR_NOMEM;
}

static void
conv_say(void *arg, const char *msg)
{
	(void)arg;
	strncat(conv_said, msg, sizeof(conv_said) - strlen(conv_said) - 2);
	strcat(conv_said, "\n");
}

static const struct ps_conv test_conv = { conv_prompt_fn, conv_say, conv_say,
    NULL };

static void
conv_reset(const char *answer)
{
	conv_said[0] = '\0';
	conv_answer = answer;
	conv_prompts = 0;
}

/* The registered entry of `crt` for `user`, for ps_auto_renew. */
static void
entry_of(const char *user, const char *crt, struct ps_reg_list *list,
    const struct ps_reg_entry **e)
{
	struct ps_registry *reg = reg_open();
	char fp[PS_FP_HEX_LEN + 1];
	size_t i;

	tu_fp_of(crt, fp);
	*e = NULL;
	ck_assert_int_eq(ps_registry_lookup_user(reg, user, list), PS_OK);
	for (i = 0; i < list->count; i++)
		if (strcmp(list->entries[i].fingerprint, fp) == 0)
			*e = &list->entries[i];
	ck_assert_ptr_nonnull(*e);
	ps_registry_close(reg);
}

static void
auto_renew(const struct ps_token_ops *ops, struct fake *f, bool enabled)
{
	struct ps_config cfg;
	struct ps_token tok;
	struct ps_reg_list list = { NULL, 0 };
	const struct ps_reg_entry *used;

	cfg_make(&cfg);
	if (!enabled)
		tu_cfg_set(&cfg, "auto_renew", "no");
	memset(&tok, 0, sizeof(tok));
	tok.ops = ops;
	tok.impl = f;
	entry_of("alice", "alice.crt", &list, &used);
	ps_auto_renew(&cfg, &tu_log, &test_conv, "alice", "login", &tok, used,
	    time(NULL));
	ps_reg_list_free(&list);
	ps_config_free(&cfg);
}

/* ------------------------------------------------------------ tests */

START_TEST(test_identity_mode)
{
	enum ps_identity_mode m;

	ck_assert_int_eq(ps_identity_mode_parse(&tu_log, NULL, &m), PS_OK);
	ck_assert_int_eq(m, PS_IDENTITY_EMAIL);
	ck_assert_int_eq(ps_identity_mode_parse(&tu_log, "subject", &m), PS_OK);
	ck_assert_int_eq(m, PS_IDENTITY_SUBJECT);
	ck_assert_int_eq(ps_identity_mode_parse(&tu_log, "cn", &m),
	    PS_ERR_INVALID);
}
END_TEST

START_TEST(test_same_person)
{
	X509 *a = tu_load_cert("alice.crt"), *a2 = tu_load_cert("alice2.crt");
	X509 *b = tu_load_cert("bob.crt"), *same = tu_load_cert("alice-samekey.crt");
	char why[512];

	ck_assert_int_eq(ps_same_person(PS_IDENTITY_EMAIL, a, a2, why,
	    sizeof(why)), PS_OK);
	ck_assert_int_eq(ps_same_person(PS_IDENTITY_EMAIL, a, b, why,
	    sizeof(why)), PS_ERR_POLICY);
	ck_assert_str_eq(why, "different person: the new certificate names "
	    "bob@example.test, the registered one alice@example.test");
	/* by subject, alice2 (CN "alice2 test") is someone else */
	ck_assert_int_eq(ps_same_person(PS_IDENTITY_SUBJECT, a, a2, why,
	    sizeof(why)), PS_ERR_POLICY);
	ck_assert(strstr(why, "CN=alice2 test") != NULL);
	ck_assert_int_eq(ps_same_person(PS_IDENTITY_SUBJECT, a, same, why,
	    sizeof(why)), PS_OK);
	{
		/* two empty subjects are not the same person */
		X509 *e1 = X509_new(), *e2 = X509_new();

		ck_assert_int_eq(ps_same_person(PS_IDENTITY_SUBJECT, e1, e2,
		    why, sizeof(why)), PS_ERR_POLICY);
		ck_assert(strstr(why, "empty subject") != NULL);
		X509_free(e1);
		X509_free(e2);
	}
	X509_free(a);
	X509_free(a2);
	X509_free(b);
	X509_free(same);
}
END_TEST

START_TEST(test_renewal_check)
{
	struct ps_policy *p = policy_make();
	X509 *a = tu_load_cert("alice.crt"), *a2 = tu_load_cert("alice2.crt");
	X509 *a3 = tu_load_cert("alice3.crt"), *imp =
	    tu_load_cert("imposter-alice.crt");
	X509 *same = tu_load_cert("alice-samekey.crt"), *ca =
	    tu_load_cert("ca.crt");
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *older = alice_like(k, -86400, 86400 * 10);
	X509 *later = alice_like(k, 0, 86400 * 10);

	expect_renewal(p, PS_IDENTITY_EMAIL, PS_RENEW, a, a2, PS_OK, NULL);
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_RENEW, a, a3, PS_ERR_POLICY,
	    "not newer: it does not outlast");
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_REISSUE, a, a3, PS_OK, NULL);
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_RENEW, a2, a, PS_ERR_POLICY,
	    "not newer");
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_RENEW, a, same, PS_ERR_POLICY,
	    "same key as the registered certificate");
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_RENEW, a, imp, PS_ERR_POLICY,
	    "issuer not trusted");
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_RENEW, a, older, PS_ERR_POLICY,
	    "older certificate: it was issued before the registered one");
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_REISSUE, a, older,
	    PS_ERR_POLICY, "older certificate");
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_RENEW, a, later, PS_OK, NULL);
	expect_renewal(p, PS_IDENTITY_EMAIL, PS_RENEW, a, ca, PS_ERR_POLICY,
	    "a CA certificate");
	expect_renewal(p, PS_IDENTITY_SUBJECT, PS_RENEW, a, a2, PS_ERR_POLICY,
	    "different person");
	X509_free(a);
	X509_free(a2);
	X509_free(a3);
	X509_free(imp);
	X509_free(same);
	X509_free(ca);
	X509_free(older);
	X509_free(later);
	EVP_PKEY_free(k);
	ps_policy_free(p);
}
END_TEST

START_TEST(test_find_old)
{
	struct ps_registry *reg;
	struct ps_reg_list list = { NULL, 0 };
	X509 *a2 = tu_load_cert("alice2.crt"), *carol = tu_load_cert("carol.crt");
	char why[512], fa[PS_FP_HEX_LEN + 1];
	size_t idx = 99;

	reg_add("alice", "alice.crt");
	reg_add("alice", "bob.crt");	/* a second person's key (odd, legal) */
	tu_fp_of("alice.crt", fa);
	reg = reg_open();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_int_eq(ps_renewal_find_old(&list, PS_IDENTITY_EMAIL, a2,
	    NULL, &idx, why, sizeof(why)), PS_OK);
	ck_assert_str_eq(list.entries[idx].fingerprint, fa);
	ck_assert_int_eq(ps_renewal_find_old(&list, PS_IDENTITY_EMAIL, carol,
	    NULL, &idx, why, sizeof(why)), PS_ERR_POLICY);
	ck_assert(strstr(why, "different person") != NULL);
	ck_assert_int_eq(ps_renewal_find_old(&list, PS_IDENTITY_EMAIL, a2,
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    &idx, why, sizeof(why)), PS_ERR_NOT_FOUND);
	ps_reg_list_free(&list);

	/* two current certificates of alice: say which */
	X509_free(carol);
	carol = tu_load_cert("alice3.crt");
	ck_assert_int_eq(ps_registry_add(reg, "alice", carol, &why_test),
	    PS_OK);
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_int_eq(ps_renewal_find_old(&list, PS_IDENTITY_EMAIL, a2,
	    NULL, &idx, why, sizeof(why)), PS_ERR_EXISTS);
	ck_assert(strstr(why, "--old FINGERPRINT") != NULL);
	ck_assert_int_eq(ps_renewal_find_old(&list, PS_IDENTITY_EMAIL, a2, fa,
	    &idx, why, sizeof(why)), PS_OK);
	ck_assert_str_eq(list.entries[idx].fingerprint, fa);
	ps_reg_list_free(&list);
	ps_registry_close(reg);
	X509_free(a2);
	X509_free(carol);
}
END_TEST

START_TEST(test_apply)
{
	struct ps_registry *reg;
	X509 *a2 = tu_load_cert("alice2.crt"), *a3 = tu_load_cert("alice3.crt");
	char fa[PS_FP_HEX_LEN + 1], fa2[PS_FP_HEX_LEN + 1];
	char fa3[PS_FP_HEX_LEN + 1];

	tu_fp_of("alice.crt", fa);
	tu_fp_of("alice2.crt", fa2);
	tu_fp_of("alice3.crt", fa3);
	reg_add("alice", "alice.crt");
	reg = reg_open();
	ck_assert_int_eq(ps_renewal_apply(reg, "alice", a2, fa, false,
	    &why_test), PS_OK);
	ck_assert_int_eq(state_of("alice", fa), PS_KEY_SUPERSEDED);
	ck_assert_int_eq(state_of("alice", fa2), PS_KEY_ACTIVE);
	/* interrupted and run again: completes, adds nothing twice */
	ck_assert_int_eq(ps_renewal_apply(reg, "alice", a2, fa, false,
	    &why_test), PS_OK);
	ck_assert_int_eq(state_of("alice", fa2), PS_KEY_ACTIVE);
	/* retiring variant */
	ck_assert_int_eq(ps_renewal_apply(reg, "alice", a3, fa2, true,
	    &why_test), PS_OK);
	ck_assert_int_eq(state_of("alice", fa2), -1);
	ck_assert_int_eq(state_of("alice", fa3), PS_KEY_ACTIVE);
	/* someone else's key */
	ck_assert_int_eq(ps_renewal_apply(reg, "bob", a3, fa, false,
	    &why_test), PS_ERR_EXISTS);
	ps_registry_close(reg);
	X509_free(a2);
	X509_free(a3);
}
END_TEST

START_TEST(test_prove_possession)
{
	struct fake f;
	struct ps_token tok;
	X509 *a = tu_load_cert("alice.crt");

	memset(&f, 0, sizeof(f));
	fake_add(&f, "alice", NULL);
	fake_add(&f, "alice2", "bob");	/* signs with the wrong key */
	memset(&tok, 0, sizeof(tok));
	tok.ops = &fake_keystore_ops;
	tok.impl = &f;
	ck_assert_int_eq(ps_prove_possession(&tu_log, &tok, &f.keys[0],
	    X509_get0_pubkey(a), "test", "alice", NULL, time(NULL)), PS_OK);
	ck_assert_int_eq(ps_prove_possession(&tu_log, &tok, &f.keys[1],
	    X509_get0_pubkey(f.keys[1].cert), "test", "alice", NULL,
	    time(NULL)), PS_ERR_AUTH);
	/* verified with the key given, never the token's */
	ck_assert_int_eq(ps_prove_possession(&tu_log, &tok, &f.keys[0],
	    X509_get0_pubkey(f.keys[1].cert), "test", "alice", NULL,
	    time(NULL)), PS_ERR_AUTH);
	fake_free(&f);
	X509_free(a);
}
END_TEST

/* A keystore holding the old and the renewed key: registered at login. */
START_TEST(test_auto_renew_keystore)
{
	struct ps_reg_history h;
	struct ps_registry *reg;
	char fa[PS_FP_HEX_LEN + 1], fa2[PS_FP_HEX_LEN + 1];
	struct fake f;

	tu_fp_of("alice.crt", fa);
	tu_fp_of("alice2.crt", fa2);
	reg_add("alice", "alice.crt");
	memset(&f, 0, sizeof(f));
	fake_add(&f, "alice", NULL);
	fake_add(&f, "bob", NULL);	/* not a renewal: someone else */
	fake_add(&f, "alice2", NULL);
	conv_reset(NULL);
	auto_renew(&fake_keystore_ops, &f, true);
	ck_assert_int_eq(state_of("alice", fa2), PS_KEY_ACTIVE);
	ck_assert_int_eq(state_of("alice", fa), PS_KEY_SUPERSEDED);
	ck_assert_int_eq(f.signs, 1);
	ck_assert_int_eq(conv_prompts, 0);
	ck_assert_msg(strstr(conv_said, "your renewed certificate (valid until "
	    "20") != NULL && strstr(conv_said, "is now registered. The old one "
	    "stays usable until") != NULL, "said: %s", conv_said);
	reg = reg_open();
	ck_assert_int_eq(ps_registry_history(reg, "alice", &h), PS_OK);
	ck_assert_uint_eq(h.count, 3);
	ck_assert_str_eq(h.events[1].actor, "alice");
	ck_assert(strstr(h.events[1].reason, "auto_renew at login (login)") !=
	    NULL);
	ps_reg_history_free(&h);
	ps_registry_close(reg);

	/* the next login: known key, nothing happens */
	conv_reset(NULL);
	auto_renew(&fake_keystore_ops, &f, true);
	ck_assert_int_eq(f.signs, 1);
	ck_assert_str_eq(conv_said, "");
	fake_free(&f);
}
END_TEST

/* A card asks for the PIN once more; an empty answer skips. */
START_TEST(test_auto_renew_card)
{
	char fa[PS_FP_HEX_LEN + 1], fa2[PS_FP_HEX_LEN + 1];
	struct fake f;

	tu_fp_of("alice.crt", fa);
	tu_fp_of("alice2.crt", fa2);
	reg_add("alice", "alice.crt");
	memset(&f, 0, sizeof(f));
	f.card = true;
	fake_add(&f, "alice", NULL);
	fake_add(&f, "alice2", NULL);
	conv_reset("");
	auto_renew(&fake_card_ops, &f, true);
	ck_assert_int_eq(conv_prompts, 1);
	ck_assert_int_eq(state_of("alice", fa2), -1);
	ck_assert_int_eq(state_of("alice", fa), PS_KEY_ACTIVE);
	conv_reset("0000");
	auto_renew(&fake_card_ops, &f, true);
	ck_assert_int_eq(state_of("alice", fa2), -1);
	conv_reset("1234");
	auto_renew(&fake_card_ops, &f, true);
	ck_assert_int_eq(state_of("alice", fa2), PS_KEY_ACTIVE);
	ck_assert_int_eq(state_of("alice", fa), PS_KEY_SUPERSEDED);
	ck_assert(strstr(conv_said, "is now registered") != NULL);
	fake_free(&f);
}
END_TEST

/* Off, no renewal on the token, or no proof: nothing is registered. */
START_TEST(test_auto_renew_refusals)
{
	char fa2[PS_FP_HEX_LEN + 1], fimp[PS_FP_HEX_LEN + 1];
	struct fake f;

	tu_fp_of("alice2.crt", fa2);
	tu_fp_of("imposter-alice.crt", fimp);
	reg_add("alice", "alice.crt");
	memset(&f, 0, sizeof(f));
	fake_add(&f, "alice", NULL);
	fake_add(&f, "alice2", NULL);
	conv_reset(NULL);
	auto_renew(&fake_keystore_ops, &f, false);
	ck_assert_int_eq(state_of("alice", fa2), -1);
	fake_free(&f);

	/* an imposter certificate with alice's e-mail, and a key that does
	 * not match its certificate */
	memset(&f, 0, sizeof(f));
	fake_add(&f, "alice", NULL);
	fake_add(&f, "imposter-alice", NULL);
	fake_add(&f, "alice2", "bob");
	tu_log_reset();
	auto_renew(&fake_keystore_ops, &f, true);
	ck_assert_int_eq(state_of("alice", fimp), -1);
	ck_assert_int_eq(state_of("alice", fa2), -1);
	ck_assert(tu_log_contains("not registered"));
	ck_assert_str_eq(conv_said, "");
	fake_free(&f);

	/* a key on the token that the registry retired once stays out */
	{
		struct ps_registry *reg = reg_open();
		X509 *x = tu_load_cert("alice2.crt");

		ck_assert_int_eq(ps_registry_add(reg, "alice", x, &why_test),
		    PS_OK);
		ck_assert_int_eq(ps_registry_set_state(reg, "alice", fa2,
		    PS_KEY_RETIRED, NULL, &why_test), PS_OK);
		ps_registry_close(reg);
		X509_free(x);
	}
	memset(&f, 0, sizeof(f));
	fake_add(&f, "alice", NULL);
	fake_add(&f, "alice2", NULL);
	auto_renew(&fake_keystore_ops, &f, true);
	ck_assert_int_eq(f.signs, 0);
	ck_assert_int_eq(state_of("alice", fa2), -1);
	fake_free(&f);
}
END_TEST

static Suite *
lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_identity_mode);
	tcase_add_test(tc, test_same_person);
	tcase_add_test(tc, test_renewal_check);
	tcase_add_test(tc, test_find_old);
	tcase_add_test(tc, test_apply);
	tcase_add_test(tc, test_prove_possession);
	tcase_add_test(tc, test_auto_renew_keystore);
	tcase_add_test(tc, test_auto_renew_card);
	tcase_add_test(tc, test_auto_renew_refusals);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(lifecycle_suite());
}
