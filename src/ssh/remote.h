/*
 * remote.h - logging in when the card or keystore is on the CLIENT:
 *
 *   mode=remote   the module shows a challenge as one line of text, the
 *                 user runs personalsign-respond on their own computer
 *                 and pastes back the response line;
 *   mode=sshauth  sshd has already verified a public key (ExposeAuthInfo,
 *                 AuthenticationMethods publickey,keyboard-interactive);
 *                 the module accepts when that key is registered.
 *
 * Wire forms (both single lines of base64url, no spaces, so they survive
 * copy and paste and any shell without quoting):
 *
 *   personalsign-challenge:B64URL(canonical challenge text, challenge.h)
 *   personalsign-response:B64URL(payload)
 *
 *   payload = byte    version (1)
 *             string  SHA-256 of the canonical challenge text (32 bytes)
 *             string  SHA-256 of the signing key's SubjectPublicKeyInfo
 *             string  signature over the challenge (challenge.h scheme)
 *
 * ("string" as in SSH: uint32 length, bytes.) The response names the
 * challenge by hash rather than carrying it, so that it stays short: the
 * OpenSSH client reads a keyboard-interactive answer into a 1024-byte
 * buffer, and an RSA-4096 response is about 800 characters.
 */
#ifndef PS_REMOTE_H
#define PS_REMOTE_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <openssl/evp.h>

#include "auth.h"
#include "challenge.h"
#include "config.h"
#include "conv.h"
#include "log.h"
#include "registry.h"

#define PS_CHALLENGE_LINE_PREFIX	"personalsign-challenge:"
#define PS_RESPONSE_LINE_PREFIX		"personalsign-response:"
#define PS_RESPONSE_VERSION		1
/* the last line of the prompt that shows the challenge */
#define PS_RESPONSE_PROMPT		"PersonalSign response: "
#define PS_RESPONSE_HASH_LEN		32
/* RSA-4096, the largest key policy accepts */
#define PS_RESPONSE_SIG_MAX		512
/* what an OpenSSH client can send back as one keyboard-interactive answer */
#define PS_RESPONSE_LINE_MAX		1023
/* SSH_AUTH_INFO_0 longer than this is not something sshd wrote */
#define PS_SSH_AUTH_INFO_MAX		(64 * 1024)

/* ------------------------------------------------------------ challenge line */

/* "personalsign-challenge:..." for `c` (malloc'd). */
int ps_challenge_line_encode(const struct ps_challenge *c, char **line);

/*
 * Parse a challenge line (surrounding whitespace ignored; anything else
 * must be exact). On PS_OK *c holds the challenge and, when hash is not
 * NULL, hash[PS_RESPONSE_HASH_LEN] its text's SHA-256. PS_ERR_INVALID for
 * anything that is not a complete, canonical challenge line.
 */
int ps_challenge_line_parse(const char *line, size_t len,
    struct ps_challenge *c, unsigned char *hash);

/* SHA-256 of the canonical text of `c`. */
int ps_challenge_hash(const struct ps_challenge *c, unsigned char *hash);

/* ------------------------------------------------------------ response line */

struct ps_response {
	unsigned char challenge_hash[PS_RESPONSE_HASH_LEN];
	unsigned char key_hash[PS_RESPONSE_HASH_LEN];	/* = fingerprint */
	unsigned char sig[PS_RESPONSE_SIG_MAX];
	size_t sig_len;
};

/* The response line for a signature by the key `pub` (malloc'd). */
int ps_response_line_encode(const struct ps_challenge *c, EVP_PKEY *pub,
    const unsigned char *sig, size_t sig_len, char **line);

/* Strict parse (surrounding whitespace ignored). PS_ERR_INVALID for a
 * line that is garbled, cut short, padded, or of another version. */
int ps_response_line_parse(const char *line, size_t len,
    struct ps_response *resp);

/* ------------------------------------------------------------ verifying */

/*
 * Decide on `answer` to the challenge `issued`, at time `now`, given the
 * user's registered entries of which the first `usable` passed policy.
 * PS_OK: *entry is the index of the registered key that signed, and the
 * challenge has been recorded as used (ps_replay_mark). Otherwise a
 * refusal with a one-line message for the user in why[whylen]:
 * PS_ERR_AUTH (garbled, answers another challenge, expired, unknown key,
 * bad signature, already used), or the replay cache's PS_ERR_UNSAFE /
 * PS_ERR_IO (the server cannot record use: fail closed).
 */
int ps_remote_check(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_reg_list *list, size_t usable,
    const struct ps_challenge *issued, const char *answer, time_t now,
    size_t *entry, char *why, size_t whylen);

/* The flows ps_authenticate dispatches to (see auth.h). */
int ps_remote_authenticate(const struct ps_config *cfg,
    const struct ps_log *log, const struct ps_conv *conv,
    const struct ps_auth_request *req, struct ps_auth_result *result);
int ps_sshauth_authenticate(const struct ps_config *cfg,
    const struct ps_log *log, const struct ps_conv *conv,
    const struct ps_auth_request *req, const char *ssh_auth_info,
    struct ps_auth_result *result);

/*
 * sshauth: the index of the first usable entry whose key is one that
 * SSH_AUTH_INFO_0 (`info`, info_len bytes) reports as verified by a
 * "publickey" method. PS_ERR_AUTH when none is; PS_ERR_INVALID when the
 * text is not what sshd writes (too long, NUL bytes). Malformed or
 * unsupported keys in it are skipped, never matched.
 */
int ps_sshauth_match(const struct ps_log *log, const char *info,
    size_t info_len, const struct ps_reg_list *list, size_t usable,
    size_t *entry);

/* ------------------------------------------------------------ authorized_keys */

/*
 * One authorized_keys line for a registered certificate:
 *   expiry-time="YYYYMMDDHHMMSSZ" TYPE BASE64 EMAIL personalsign:FP16
 * (malloc'd, no newline). PS_ERR_POLICY for a key SSH cannot carry.
 */
int ps_authorized_keys_line(X509 *cert, char **line);

/*
 * Print `user`'s currently usable registered keys (policy-checked at
 * `now`; retired and expired ones never appear) to `out`, one line each,
 * for sshd's AuthorizedKeysCommand. Returns PS_OK, or what
 * ps_usable_keys returned (PS_ERR_NOT_FOUND, PS_ERR_EXPIRED, PS_ERR_POLICY:
 * nothing to print, which sshd reads as "no keys"), PS_ERR_IO when `out`
 * cannot be written.
 */
int ps_authorized_keys(const struct ps_config *cfg, const struct ps_log *log,
    const char *user, time_t now, FILE *out);

#endif /* PS_REMOTE_H */
