/*
 * token.h - one interface over where private keys live.
 *
 * Backends: token_soft.c (PKCS#12 / encrypted PEM keystore file, read
 * with the user's privileges) and token_piv.c (PIV card application over
 * pcsc-lite). A backend can list the public keys it holds, unlock them
 * with a PIN or password, and sign a digest. It never hands out private
 * key bytes.
 */
#ifndef PS_TOKEN_H
#define PS_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "config.h"
#include "conv.h"
#include "log.h"

struct ps_token_key {
	EVP_PKEY *pub;		/* owned by the token */
	X509 *cert;		/* certificate stored with the key, may be NULL */
	char label[64];		/* for messages: "slot 9A", "keystore" */
	int id;			/* backend-private: PIV key reference, index */
};

/* Everything a backend may need to find the user's token. */
struct ps_token_params {
	const struct ps_config *cfg;
	const struct ps_log *log;
	const struct ps_conv *conv;	/* "insert your card", tries left */
	const char *user;
	uid_t uid;
	gid_t gid;
	const char *home;
	/*
	 * Optional hint: true for a public key the caller is looking for
	 * (the user's registered keys). A backend that reads keys one at a
	 * time (PIV: one GET DATA per slot) may stop at the first wanted one
	 * and prefer the card that holds it. NULL: list every key. The
	 * caller still matches keys itself; this only saves card reads.
	 */
	bool (*want_key)(void *arg, EVP_PKEY *pub);
	void *want_key_arg;
};

struct ps_token;

struct ps_token_ops {
	const char *name;
	/* true when list_keys works before unlock (cards); false when the
	 * keystore must be decrypted first (PKCS#12, encrypted PEM) */
	bool lists_without_secret;
	/* Find the token. PS_ERR_NO_TOKEN (with a user message sent) when
	 * there is none; PS_ERR_UNSAFE for a keystore with unsafe modes. */
	int (*open)(struct ps_token *tok);
	int (*list_keys)(struct ps_token *tok, const struct ps_token_key **keys,
	    size_t *count);
	/* Optional (may be NULL): called right before asking for the secret
	 * for `key`. PS_ERR_PIN_LOCKED (user already told) when asking is
	 * pointless: the PIN is blocked or too few tries are left to risk
	 * one. unlock() checks again; this only spares the user a prompt. */
	int (*check_ready)(struct ps_token *tok, const struct ps_token_key *key);
	/* The question to ask for the secret (e.g. "PIN for card ...: "). */
	const char *(*secret_prompt)(struct ps_token *tok);
	/* Unlock with a PIN/password. `key` is the key about to be used
	 * (NULL for keystores, which unlock as a whole). PS_ERR_BAD_SECRET,
	 * PS_ERR_PIN_LOCKED, PS_ERR_TOKEN. */
	int (*unlock)(struct ps_token *tok, const struct ps_token_key *key,
	    const char *secret);
	/* Sign `digest` (made with `md`): RSA PKCS#1 v1.5 or DER ECDSA.
	 * *sig is malloc'd. */
	int (*sign)(struct ps_token *tok, const struct ps_token_key *key,
	    const EVP_MD *md, const unsigned char *digest, size_t digest_len,
	    unsigned char **sig, size_t *sig_len);
	/* Release everything, wiping secrets. */
	void (*close)(struct ps_token *tok);
};

struct ps_token {
	const struct ps_token_ops *ops;
	struct ps_token_params params;
	void *impl;
};

extern const struct ps_token_ops ps_token_soft_ops;
extern const struct ps_token_ops ps_token_piv_ops;

/*
 * Open a token of kind `backend`. For PS_BACKEND_AUTO: a PIV card when
 * one is present, else the keystore. PS_ERR_NO_TOKEN when none.
 */
int ps_token_open(enum ps_backend backend, const struct ps_token_params *p,
    struct ps_token **out);
void ps_token_close(struct ps_token *tok);

#endif /* PS_TOKEN_H */
