/*
 * sshkey.h - SSH public keys (RFC 4253 section 6.6, RFC 5656 section 3.1)
 * to and from OpenSSL EVP_PKEYs, for the key types a PersonalSign
 * certificate can hold: ssh-rsa, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384.
 *
 * Used to print registered keys as authorized_keys lines and to read the
 * key sshd reports in SSH_AUTH_INFO_0. The parser is strict: exact field
 * sequence, minimal mpints, uncompressed EC points on the named curve, no
 * trailing bytes, bounded sizes.
 */
#ifndef PS_SSHKEY_H
#define PS_SSHKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>

/* Largest key blob accepted: RSA-16384 with room to spare. */
#define PS_SSHKEY_BLOB_MAX	4096
/* RSA modulus sizes accepted when parsing (OpenSSH's own bounds). */
#define PS_SSHKEY_RSA_MIN_BITS	1024
#define PS_SSHKEY_RSA_MAX_BITS	16384

/* True when `name[len]` is one of the three types above. */
bool ps_sshkey_type_supported(const char *name, size_t len);

/*
 * Parse a key blob. PS_OK; PS_ERR_POLICY for a well-formed blob of a type
 * we do not handle (ssh-ed25519, certificates, ...); PS_ERR_INVALID for
 * anything malformed; PS_ERR_NOMEM / PS_ERR_CRYPTO.
 */
int ps_sshkey_from_blob(const unsigned char *blob, size_t len,
    EVP_PKEY **out);

/*
 * Parse "TYPE BASE64" (what follows the options of an authorized_keys
 * line, or the key in an SSH_AUTH_INFO_0 line): the type named in the
 * text must match the type inside the blob.
 */
int ps_sshkey_from_text(const char *type, size_t typelen, const char *b64,
    size_t b64len, EVP_PKEY **out);

/* The blob of an RSA / P-256 / P-384 key (malloc'd). PS_ERR_POLICY for
 * any other key. */
int ps_sshkey_to_blob(EVP_PKEY *pkey, unsigned char **blob, size_t *len);

/* "TYPE BASE64" (malloc'd, NUL-terminated). */
int ps_sshkey_to_text(EVP_PKEY *pkey, char **text);

#endif /* PS_SSHKEY_H */
