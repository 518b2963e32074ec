/*
 * cert.h - loading X.509 certificates from every form an admin or user
 * gets them in, and reading what identifies them.
 *
 * Formats: PEM (also Windows "Base-64 encoded X.509" with CRLF line ends),
 * DER, PKCS#7 bundles (.p7b, PEM or DER), and the certificates inside a
 * PKCS#12 keystore (.pfx/.p12), including legacy RC2-40 / 3DES files from
 * older Windows and CA exports. A file that holds a private key and no
 * certificate is refused with a message saying so.
 */
#ifndef PS_CERT_H
#define PS_CERT_H

#include <stddef.h>
#include <time.h>
#include <openssl/x509.h>

#include "log.h"

/* SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex. */
#define PS_FP_HEX_LEN 64

/* Largest certificate file accepted (a .p7b bundle of a long chain fits). */
#define PS_CERT_FILE_MAX (1024 * 1024)

/*
 * Parse every certificate in `data`. `password` is only used for PKCS#12
 * (NULL tries the empty password). The first certificate in *out is the
 * end-entity one when the format says which (PKCS#12: the one matching the
 * key); otherwise file order, except that non-CA certificates are moved
 * (stably) before CA certificates, so a .p7b or PEM chain yields the
 * end-entity first. Returns PS_OK, PS_ERR_INVALID (with a reason
 * logged at error level), PS_ERR_BAD_SECRET (PKCS#12 MAC failed),
 * PS_ERR_NOMEM.
 */
int ps_cert_load_mem(const struct ps_log *log, const unsigned char *data,
    size_t len, const char *password, STACK_OF(X509) **out);

/* Same from a file (any owner; size capped at PS_CERT_FILE_MAX; symbolic
 * links are followed; PS_ERR_NOT_FOUND when it does not exist). */
int ps_cert_load_file(const struct ps_log *log, const char *path,
    const char *password, STACK_OF(X509) **out);

/*
 * Open a PKCS#12 keystore, legacy RC2-40 / 3DES ones included: OpenSSL 3
 * needs its "legacy" provider for those, which is loaded into a private
 * library context for this call only, never into the process-wide one
 * (this runs inside sshd, sudo, openvpn). The objects returned belong to
 * the default library context. Any of key, cert, extra may be NULL when
 * not wanted. *key: the private key (PS_ERR_INVALID when asked for and the
 * file holds none); *cert: the certificate matching it, NULL when none
 * does; *extra: every other certificate, non-CA ones first (never NULL on
 * PS_OK). `password` NULL tries the empty password. Returns PS_OK,
 * PS_ERR_BAD_SECRET (MAC or decryption failed: wrong password),
 * PS_ERR_INVALID (malformed, truncated, unsupported algorithm),
 * PS_ERR_NOMEM, PS_ERR_CRYPTO. A reason is logged on every error.
 */
int ps_pkcs12_parse(const struct ps_log *log, const unsigned char *data,
    size_t len, const char *password, EVP_PKEY **key, X509 **cert,
    STACK_OF(X509) **extra);

/* Fingerprint of the certificate's public key into out[PS_FP_HEX_LEN + 1]. */
int ps_cert_fingerprint(const X509 *cert, char *out);
int ps_pkey_fingerprint(EVP_PKEY *pkey, char *out);

/* The person a certificate names. Strings are malloc'd, NULL if absent. */
struct ps_identity {
	char *email;		/* first rfc822Name SAN, else subject emailAddress */
	char *common_name;
	char *subject;		/* RFC 2253 one-line subject */
	char *issuer;
	char *serial;		/* hex */
};
int ps_cert_identity(const X509 *cert, struct ps_identity *id);
void ps_identity_clear(struct ps_identity *id);

/* notBefore / notAfter as time_t. */
int ps_cert_validity(const X509 *cert, time_t *not_before, time_t *not_after);

/*
 * PS_OK when the key type is one we can verify: RSA 2048..4096 bits,
 * EC P-256 or P-384. PS_ERR_POLICY otherwise (reason logged).
 */
int ps_cert_key_supported(const struct ps_log *log, const X509 *cert);
/* The same check, with the reason ("unsupported key type ...") written to
 * why[whylen] instead of logged (used by policy.c). */
int ps_cert_key_check(const X509 *cert, char *why, size_t whylen);

/* PEM text of one certificate, malloc'd and NUL-terminated. */
int ps_cert_to_pem(const X509 *cert, char **pem, size_t *len);

#endif /* PS_CERT_H */
