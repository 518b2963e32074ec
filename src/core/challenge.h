/*
 * challenge.h - what the token signs, and checking the signature.
 *
 * A challenge is a small structured text, not bare random bytes:
 *
 *   pam_personalsign/v1
 *   host=HOST
 *   service=SERVICE
 *   user=USER
 *   rhost=RHOST
 *   issued=UNIXTIME
 *   expires=UNIXTIME
 *   nonce=BASE64URL(32 random bytes)
 *
 * (each line ends in '\n'). The fixed first line separates these
 * signatures from every other use of a PersonalSign key: an S/MIME or
 * document signature covers DER signed attributes or a document hash, so
 * a login signature can never be replayed as one, nor one of those as a
 * login. The token signs a digest of the canonical text (SHA-384 for
 * P-384 keys, SHA-256 otherwise); the module verifies it with the
 * REGISTERED public key only.
 */
#ifndef PS_CHALLENGE_H
#define PS_CHALLENGE_H

#include <stddef.h>
#include <time.h>
#include <openssl/evp.h>

#include "log.h"

#define PS_CHALLENGE_CONTEXT	"pam_personalsign/v1"
#define PS_NONCE_LEN		32
#define PS_CHALLENGE_FIELD_MAX	255	/* longest host/service/user/rhost */
#define PS_CHALLENGE_TEXT_MAX	2048

struct ps_challenge {
	char *host;
	char *service;
	char *user;
	char *rhost;		/* "" for a local session */
	long long issued;
	long long expires;
	unsigned char nonce[PS_NONCE_LEN];
};

/*
 * A fresh challenge: nonce from the OS CSPRNG, issued = now,
 * expires = now + lifetime. Fields must be printable ASCII (no control
 * characters), at most PS_CHALLENGE_FIELD_MAX bytes; user must not be
 * empty; rhost NULL means "". PS_ERR_INVALID for bad fields, a negative
 * `now` or lifetime 0; PS_ERR_CRYPTO when the CSPRNG fails.
 */
int ps_challenge_new(struct ps_challenge *c, const char *host,
    const char *service, const char *user, const char *rhost, time_t now,
    unsigned lifetime);

/* Canonical text (malloc'd, NUL-terminated). */
int ps_challenge_encode(const struct ps_challenge *c, char **text,
    size_t *len);

/* Strict parse of the canonical text; anything else is PS_ERR_INVALID. */
int ps_challenge_parse(const char *text, size_t len, struct ps_challenge *c);

/* The digest a key of this type signs (NULL only for a NULL key). */
const EVP_MD *ps_challenge_md_for_key(EVP_PKEY *pkey);

/* Digest of the canonical text with `md` into out (>= EVP_MAX_MD_SIZE). */
int ps_challenge_digest(const struct ps_challenge *c, const EVP_MD *md,
    unsigned char *out, size_t *outlen);

/*
 * Verify `sig` (RSA PKCS#1 v1.5, or DER ECDSA) over the challenge with
 * `registered_key`. PS_OK only when it verifies; PS_ERR_AUTH otherwise.
 */
int ps_challenge_verify(const struct ps_log *log,
    const struct ps_challenge *c, EVP_PKEY *registered_key,
    const unsigned char *sig, size_t siglen);

void ps_challenge_clear(struct ps_challenge *c);

/*
 * Sign `digest` (len must be the size of `md`) with a private RSA or EC
 * key using the same scheme ps_challenge_verify checks: RSA PKCS#1 v1.5
 * or DER ECDSA. *sig is malloc'd. PS_ERR_INVALID for bad arguments or an
 * unsupported key type, PS_ERR_CRYPTO when OpenSSL fails (its error queue
 * is left for the caller to log), PS_ERR_NOMEM.
 */
int ps_sign_digest_with_key(EVP_PKEY *priv, const EVP_MD *md,
    const unsigned char *digest, size_t len, unsigned char **sig,
    size_t *siglen);

#endif /* PS_CHALLENGE_H */
