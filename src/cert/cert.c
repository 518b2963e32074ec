/*
 * cert.c - turn whatever certificate file an admin or user has (PEM, DER,
 * PKCS#7, PKCS#12 incl. legacy ciphers) into X509 objects, and read the
 * fingerprint, identity, validity and key type of a certificate.
 *
 * The format is decided from the bytes, never from the file name: admins
 * get ".cer" files that are PEM, DER or even PKCS#7. Everything here
 * parses untrusted input, so every structure must be consumed exactly and
 * every failure says why in one log line.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "ps_status.h"
#include "util.h"

#define NOT_A_CERT "not a certificate in PEM, DER, PKCS#7 or PKCS#12 format"
#define PEM_BEGIN "-----BEGIN "

/* Label used in log lines for in-memory input (files use their path). */
#define MEM_LABEL "certificate data"

/* ------------------------------------------------------------ stacks */

static void
certs_free(STACK_OF(X509) *sk)
{
	sk_X509_pop_free(sk, X509_free);
}

/* Append x to sk, taking ownership of x in every case. */
static int
certs_push(STACK_OF(X509) *sk, X509 *x)
{
	if (sk_X509_push(sk, x) <= 0) {
		X509_free(x);
		return PS_ERR_NOMEM;
	}
	return PS_OK;
}

/* Append a new reference to x. */
static int
certs_push_ref(STACK_OF(X509) *sk, X509 *x)
{
	if (!X509_up_ref(x))
		return PS_ERR_CRYPTO;
	return certs_push(sk, x);
}

/*
 * Bundles list the chain in any order (DER SET OF even sorts it), yet
 * callers want the person's certificate first: move non-CA certificates
 * before CA ones, keeping the relative order inside each group.
 */
static int
certs_end_entity_first(STACK_OF(X509) *sk)
{
	STACK_OF(X509) *cas = NULL;
	X509 *x;
	int i, n, r = PS_ERR_NOMEM;

	if ((cas = sk_X509_new_null()) == NULL)
		goto out;
	n = sk_X509_num(sk);
	for (i = 0; i < n;) {
		x = sk_X509_value(sk, i);
		if (X509_check_ca(x) == 0) {
			i++;
			continue;
		}
		if (sk_X509_push(cas, x) <= 0)
			goto out;
		(void)sk_X509_delete(sk, i);
		n--;
	}
	while ((x = sk_X509_shift(cas)) != NULL) {
		if (sk_X509_push(sk, x) <= 0) {
			X509_free(x);
			goto out;
		}
	}
	r = PS_OK;
 out:
	certs_free(cas);
	return r;
}

/*
 * A fresh copy of x decoded in the default library context, so that it
 * holds no reference to the private context a PKCS#12 was opened in.
 */
static X509 *
cert_redecode(X509 *x)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	X509 *copy = NULL;
	int len;

	if ((len = i2d_X509(x, &der)) <= 0)
		return NULL;
	p = der;
	copy = d2i_X509(NULL, &p, len);
	if (copy != NULL && p != der + len) {
		X509_free(copy);
		copy = NULL;
	}
	OPENSSL_free(der);
	return copy;
}

/* ------------------------------------------------------------ DER helpers */

/*
 * Decode the outer DER header. *total is the size the structure claims
 * (0 for indefinite-length BER). False when there is no sane header.
 */
static bool
der_outer_len(const unsigned char *data, size_t len, size_t *total)
{
	const unsigned char *p = data;
	long body = 0;
	int tag, class, ret;

	*total = 0;
	ret = ASN1_get_object(&p, &body, &tag, &class, (long)len);
	ERR_clear_error();
	if (ret & 0x80) {
		/* "too long" is still a readable header: that is truncation */
		if (p == data || body < 0)
			return false;
	}
	if (tag != V_ASN1_SEQUENCE)
		return false;
	if (ret & 0x01)		/* indefinite length */
		return true;
	*total = (size_t)(p - data) + (size_t)body;
	return true;
}

/* True when the DER is an encrypted PKCS#8 key (EncryptedPrivateKeyInfo). */
static bool
der_is_encrypted_key(const unsigned char *data, size_t len)
{
	const unsigned char *p = data;
	const X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *obj = NULL;
	X509_SIG *sig;
	bool yes = false;
	int nid;

	if ((sig = d2i_X509_SIG(NULL, &p, (long)len)) == NULL)
		return false;
	if (p == data + len) {
		X509_SIG_get0(sig, &alg, NULL);
		X509_ALGOR_get0(&obj, NULL, NULL, alg);
		nid = OBJ_obj2nid(obj);
		/* only a PBE algorithm makes it a key rather than a DigestInfo */
		yes = nid == NID_pbes2 ||
		    EVP_PBE_find(EVP_PBE_TYPE_OUTER, nid, NULL, NULL, NULL) == 1;
	}
	X509_SIG_free(sig);
	return yes;
}

/* True when the DER is an unencrypted private key (PKCS#8, PKCS#1, SEC1). */
static bool
der_is_plain_key(const unsigned char *data, size_t len)
{
	const unsigned char *p = data;
	EVP_PKEY *pkey;
	bool yes;

	if ((pkey = d2i_AutoPrivateKey(NULL, &p, (long)len)) == NULL)
		return false;
	yes = p == data + len;
	EVP_PKEY_free(pkey);
	return yes;
}

/* ------------------------------------------------------------ PKCS#7 */

/* Collect the certificates of a signedData PKCS#7 into sk. */
static int
pkcs7_certs(const struct ps_log *log, const char *what, PKCS7 *p7,
    STACK_OF(X509) *sk)
{
	STACK_OF(X509) *certs = NULL;
	int i, r;

	if (PKCS7_type_is_signed(p7) && p7->d.sign != NULL)
		certs = p7->d.sign->cert;
	else if (PKCS7_type_is_signedAndEnveloped(p7) &&
	    p7->d.signed_and_enveloped != NULL)
		certs = p7->d.signed_and_enveloped->cert;
	if (sk_X509_num(certs) <= 0) {
		ps_log_err(log, "%s: PKCS#7 bundle holds no certificate", what);
		return PS_ERR_INVALID;
	}
	for (i = 0; i < sk_X509_num(certs); i++) {
		if ((r = certs_push_ref(sk, sk_X509_value(certs, i))) != PS_OK)
			return r;
	}
	return PS_OK;
}

/* ------------------------------------------------------------ PKCS#12 */

/*
 * A private library context with "default" + "legacy" loaded, made the
 * thread's default only while a PKCS#12 is being parsed, so that legacy
 * algorithms never become available to the host process.
 */
struct p12_env {
	OSSL_LIB_CTX *libctx;
	OSSL_LIB_CTX *prev;	/* thread default to restore; NULL: not active */
	OSSL_PROVIDER *deflt;
	OSSL_PROVIDER *legacy;
};

static void
p12_env_deactivate(struct p12_env *env)
{
	if (env->prev != NULL) {
		(void)OSSL_LIB_CTX_set0_default(env->prev);
		env->prev = NULL;
	}
}

static void
p12_env_free(struct p12_env *env)
{
	p12_env_deactivate(env);
	if (env->legacy != NULL)
		(void)OSSL_PROVIDER_unload(env->legacy);
	if (env->deflt != NULL)
		(void)OSSL_PROVIDER_unload(env->deflt);
	OSSL_LIB_CTX_free(env->libctx);
	memset(env, 0, sizeof(*env));
}

static int
p12_env_activate(const struct ps_log *log, struct p12_env *env)
{
	memset(env, 0, sizeof(*env));
	if ((env->libctx = OSSL_LIB_CTX_new()) == NULL) {
		ps_log_err(log, "cannot create an OpenSSL library context");
		return PS_ERR_CRYPTO;
	}
	if ((env->deflt = OSSL_PROVIDER_load(env->libctx, "default")) == NULL) {
		ps_log_openssl(log, "load default provider");
		ps_log_err(log, "cannot load the OpenSSL default provider");
		p12_env_free(env);
		return PS_ERR_CRYPTO;
	}
	/* Missing legacy provider only matters for legacy files, which then
	 * fail with a message saying so. */
	if ((env->legacy = OSSL_PROVIDER_load(env->libctx, "legacy")) == NULL) {
		ps_log_openssl(log, "load legacy provider");
		ps_log_debug(log, "OpenSSL legacy provider not available");
	}
	if ((env->prev = OSSL_LIB_CTX_set0_default(env->libctx)) == NULL) {
		ps_log_err(log, "cannot switch OpenSSL library context");
		p12_env_free(env);
		return PS_ERR_CRYPTO;
	}
	return PS_OK;
}

/* OSSL_PARAM_clear_free only exists from OpenSSL 3.2: wipe by hand. */
static void
params_clear_free(OSSL_PARAM *params)
{
	OSSL_PARAM *p;

	if (params == NULL)
		return;
	for (p = params; p->key != NULL; p++) {
		/* *_PTR values point at data the key owns, not at a copy */
		if (p->data == NULL || p->data_type == OSSL_PARAM_UTF8_PTR ||
		    p->data_type == OSSL_PARAM_OCTET_PTR)
			continue;
		OPENSSL_cleanse(p->data, p->data_size);
	}
	OSSL_PARAM_free(params);
}

/*
 * Copy a key out of the private context into the default one: the private
 * context (and the provider that implements the key) is freed before the
 * caller gets the key.
 */
static int
pkey_to_default_ctx(EVP_PKEY *in, EVP_PKEY **out)
{
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	const char *type;
	int r = PS_ERR_CRYPTO;

	*out = NULL;
	if ((type = EVP_PKEY_get0_type_name(in)) == NULL)
		goto out;
	if (EVP_PKEY_todata(in, EVP_PKEY_KEYPAIR, &params) != 1)
		goto out;
	if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL)
		goto out;
	if (EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, out, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	r = PS_OK;
 out:
	EVP_PKEY_CTX_free(pctx);
	params_clear_free(params);
	return r;
}

static int
p12_decode(const struct ps_log *log, const char *what,
    const unsigned char *data, size_t len, PKCS12 **out)
{
	const unsigned char *p = data;
	PKCS12 *p12;

	*out = NULL;
	if ((p12 = d2i_PKCS12(NULL, &p, (long)len)) == NULL) {
		ps_log_openssl(log, what);
		ps_log_err(log, "%s: malformed or truncated PKCS#12 file", what);
		return PS_ERR_INVALID;
	}
	if (p != data + len) {
		ps_log_err(log, "%s: trailing data after PKCS#12 structure",
		    what);
		PKCS12_free(p12);
		return PS_ERR_INVALID;
	}
	*out = p12;
	return PS_OK;
}

/*
 * Check the integrity MAC with the password; *pass is set to the spelling
 * of the password that worked (PKCS#12 tells an absent password from an
 * empty one). PS_ERR_BAD_SECRET when the MAC does not match. Files
 * without a MAC are refused: nothing vouches for their certificates, and
 * OpenSSL 3.0 cannot parse them while later versions can, so accepting
 * them would make behaviour depend on the library version.
 */
static int
p12_check_mac(const struct ps_log *log, const char *what, PKCS12 *p12,
    const char *password, const char **pass)
{
	*pass = password != NULL ? password : "";
	if (!PKCS12_mac_present(p12)) {
		ps_log_err(log, "%s: PKCS#12 has no integrity MAC (not "
		    "supported)", what);
		return PS_ERR_INVALID;
	}
	ERR_clear_error();
	if (**pass != '\0') {
		if (PKCS12_verify_mac(p12, *pass, -1) == 1)
			return PS_OK;
	} else {
		if (PKCS12_verify_mac(p12, NULL, 0) == 1) {
			*pass = NULL;
			return PS_OK;
		}
		if (PKCS12_verify_mac(p12, "", 0) == 1)
			return PS_OK;
	}
	/* verify_mac raises an error only when it could not compute a MAC */
	if (ERR_peek_error() != 0) {
		ps_log_openssl(log, what);
		ps_log_err(log, "%s: cannot check the PKCS#12 integrity MAC "
		    "(malformed or unsupported)", what);
		return PS_ERR_INVALID;
	}
	ps_log_err(log, "%s: wrong password (PKCS#12 MAC check failed)", what);
	return PS_ERR_BAD_SECRET;
}

/* Map a failed PKCS12_parse (after a good MAC) to a status and a reason. */
static int
p12_parse_error(const struct ps_log *log, const char *what,
    const struct p12_env *env)
{
	unsigned long e;
	bool bad_decrypt = false, unsupported = false;

	while ((e = ERR_get_error()) != 0) {
		int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		ps_log_debug(log, "%s: openssl: %s", what, buf);

		if ((lib == ERR_LIB_EVP && reason == EVP_R_BAD_DECRYPT) ||
		    (lib == ERR_LIB_PKCS12 &&
		    reason == PKCS12_R_PKCS12_CIPHERFINAL_ERROR))
			bad_decrypt = true;
		if (reason == ERR_R_UNSUPPORTED ||
		    (lib == ERR_LIB_EVP && (reason == EVP_R_UNSUPPORTED_CIPHER ||
		    reason == EVP_R_UNKNOWN_CIPHER)))
			unsupported = true;
	}
	if (unsupported) {
		ps_log_err(log, "%s: PKCS#12 uses an unsupported algorithm%s",
		    what, env->legacy == NULL ?
		    " (OpenSSL legacy provider not available)" : "");
		return PS_ERR_INVALID;
	}
	if (bad_decrypt) {
		ps_log_err(log, "%s: wrong password (PKCS#12 decryption "
		    "failed)", what);
		return PS_ERR_BAD_SECRET;
	}
	ps_log_err(log, "%s: malformed PKCS#12 contents", what);
	return PS_ERR_INVALID;
}

/*
 * Parse inside the private context. The key returned still belongs to it;
 * the certificates are re-decoded in the caller's context afterwards.
 */
static int
p12_parse_active(const struct ps_log *log, const char *what,
    const struct p12_env *env, const unsigned char *data, size_t len,
    const char *password, EVP_PKEY **key, X509 **cert,
    STACK_OF(X509) **extra)
{
	PKCS12 *p12 = NULL;
	const char *pass;
	int r;

	if ((r = p12_decode(log, what, data, len, &p12)) != PS_OK)
		goto out;
	if ((r = p12_check_mac(log, what, p12, password, &pass)) != PS_OK)
		goto out;
	ERR_clear_error();
	if (PKCS12_parse(p12, pass, key, cert, extra) != 1) {
		r = p12_parse_error(log, what, env);
		goto out;
	}
	r = PS_OK;
 out:
	PKCS12_free(p12);
	return r;
}

/* Re-decode cert and extra (in place) in the now-current context. */
static int
p12_move_certs(X509 **cert, STACK_OF(X509) **extra)
{
	STACK_OF(X509) *moved = NULL;
	X509 *x;
	int r = PS_ERR_NOMEM;

	if (*cert != NULL) {
		x = cert_redecode(*cert);
		X509_free(*cert);
		*cert = x;
		if (x == NULL)
			return PS_ERR_CRYPTO;
	}
	if ((moved = sk_X509_new_null()) == NULL)
		return PS_ERR_NOMEM;
	while (*extra != NULL && (x = sk_X509_shift(*extra)) != NULL) {
		X509 *copy = cert_redecode(x);

		X509_free(x);
		if (copy == NULL) {
			r = PS_ERR_CRYPTO;
			goto out;
		}
		if ((r = certs_push(moved, copy)) != PS_OK)
			goto out;
	}
	if ((r = certs_end_entity_first(moved)) != PS_OK)
		goto out;
	certs_free(*extra);
	*extra = moved;
	moved = NULL;
	r = PS_OK;
 out:
	certs_free(moved);
	return r;
}

static int
p12_parse(const struct ps_log *log, const char *what,
    const unsigned char *data, size_t len, const char *password,
    EVP_PKEY **keyp, X509 **certp, STACK_OF(X509) **extrap)
{
	struct p12_env env;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *extra = NULL;
	int r;

	*keyp = NULL;
	*certp = NULL;
	*extrap = NULL;
	if ((r = p12_env_activate(log, &env)) != PS_OK)
		return r;
	r = p12_parse_active(log, what, &env, data, len, password, &key,
	    &cert, &extra);
	p12_env_deactivate(&env);
	if (r != PS_OK)
		goto out;
	if ((r = p12_move_certs(&cert, &extra)) != PS_OK) {
		ps_log_err(log, "%s: cannot copy PKCS#12 certificates: %s",
		    what, ps_status_str(r));
		goto out;
	}
	if (key != NULL) {
		EVP_PKEY *moved = NULL;

		if ((r = pkey_to_default_ctx(key, &moved)) != PS_OK) {
			ps_log_openssl(log, what);
			ps_log_err(log, "%s: cannot copy PKCS#12 private key",
			    what);
			goto out;
		}
		EVP_PKEY_free(key);
		key = moved;
	}
	*keyp = key;
	*certp = cert;
	*extrap = extra;
	key = NULL;
	cert = NULL;
	extra = NULL;
 out:
	/* the key's provider lives in env: free the key first */
	EVP_PKEY_free(key);
	X509_free(cert);
	certs_free(extra);
	p12_env_free(&env);
	ERR_clear_error();
	return r;
}

static int
check_size(const struct ps_log *log, const char *what, size_t len)
{
	if (len == 0) {
		ps_log_err(log, "%s: empty file", what);
		return PS_ERR_INVALID;
	}
	if (len > PS_CERT_FILE_MAX) {
		ps_log_err(log, "%s: too large (%zu bytes, limit %d)", what,
		    len, PS_CERT_FILE_MAX);
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

int
ps_pkcs12_parse(const struct ps_log *log, const unsigned char *data,
    size_t len, const char *password, EVP_PKEY **key, X509 **cert,
    STACK_OF(X509) **extra)
{
	const char *what = "PKCS#12 keystore";
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	STACK_OF(X509) *e = NULL;
	int r;

	if (key != NULL)
		*key = NULL;
	if (cert != NULL)
		*cert = NULL;
	if (extra != NULL)
		*extra = NULL;
	if (data == NULL) {
		ps_log_err(log, "%s: no data", what);
		return PS_ERR_INVALID;
	}
	if ((r = check_size(log, what, len)) != PS_OK)
		return r;
	if ((r = p12_parse(log, what, data, len, password, &k, &c, &e))
	    != PS_OK)
		goto out;
	if (key != NULL && k == NULL) {
		ps_log_err(log, "%s: holds no private key", what);
		r = PS_ERR_INVALID;
		goto out;
	}
	if (key != NULL) {
		*key = k;
		k = NULL;
	}
	if (cert != NULL) {
		*cert = c;
		c = NULL;
	}
	if (extra != NULL) {
		*extra = e;
		e = NULL;
	}
	r = PS_OK;
 out:
	EVP_PKEY_free(k);
	X509_free(c);
	certs_free(e);
	return r;
}

/* Certificates of a PKCS#12 for ps_cert_load_mem: the key's one first. */
static int
load_pkcs12(const struct ps_log *log, const char *what,
    const unsigned char *data, size_t len, const char *password,
    STACK_OF(X509) *sk)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *extra = NULL;
	X509 *x;
	int r;

	if ((r = p12_parse(log, what, data, len, password, &key, &cert,
	    &extra)) != PS_OK)
		goto out;
	if (cert == NULL && sk_X509_num(extra) <= 0) {
		if (key != NULL)
			ps_log_err(log, "%s: contains a private key, not a "
			    "certificate", what);
		else
			ps_log_err(log, "%s: PKCS#12 holds no certificate",
			    what);
		r = PS_ERR_INVALID;
		goto out;
	}
	if (cert != NULL) {
		r = certs_push(sk, cert);
		cert = NULL;
		if (r != PS_OK)
			goto out;
	}
	while ((x = sk_X509_shift(extra)) != NULL) {
		if ((r = certs_push(sk, x)) != PS_OK)
			goto out;
	}
	r = PS_OK;
 out:
	EVP_PKEY_free(key);
	X509_free(cert);
	certs_free(extra);
	return r;
}

/* ------------------------------------------------------------ DER */

/*
 * Try the binary formats. *matched is false when the bytes are none of
 * them (the caller then tries PEM or reports); errors inside a
 * recognised structure are reported here.
 */
static int
load_der(const struct ps_log *log, const char *what,
    const unsigned char *data, size_t len, const char *password,
    STACK_OF(X509) *sk, bool *matched)
{
	const unsigned char *p;
	X509 *x;
	PKCS7 *p7;
	PKCS12 *p12;
	int r;

	*matched = true;
	p = data;
	if ((x = d2i_X509(NULL, &p, (long)len)) != NULL) {
		if (p == data + len)
			return certs_push(sk, x);
		X509_free(x);
	}
	p = data;
	if ((p7 = d2i_PKCS7(NULL, &p, (long)len)) != NULL) {
		r = PS_ERR_INVALID;
		if (p == data + len)
			r = pkcs7_certs(log, what, p7, sk);
		PKCS7_free(p7);
		if (p == data + len)
			return r;
	}
	p = data;
	if ((p12 = d2i_PKCS12(NULL, &p, (long)len)) != NULL) {
		bool whole = p == data + len;

		PKCS12_free(p12);
		if (whole) {
			ERR_clear_error();
			return load_pkcs12(log, what, data, len, password, sk);
		}
	}
	if (der_is_encrypted_key(data, len) || der_is_plain_key(data, len)) {
		ERR_clear_error();
		ps_log_err(log, "%s: contains a private key, not a certificate",
		    what);
		return PS_ERR_INVALID;
	}
	ERR_clear_error();
	*matched = false;
	return PS_ERR_INVALID;
}

/* ------------------------------------------------------------ PEM */

static bool
pem_is_cert(const char *name)
{
	return strcmp(name, PEM_STRING_X509) == 0 ||
	    strcmp(name, PEM_STRING_X509_OLD) == 0;
}

static bool
pem_is_pkcs7(const char *name)
{
	return strcmp(name, PEM_STRING_PKCS7) == 0 ||
	    strcmp(name, PEM_STRING_PKCS7_SIGNED) == 0;
}

static bool
pem_is_key(const char *name)
{
	return strstr(name, "PRIVATE KEY") != NULL;
}

/* Decode one PEM block's DER payload into sk according to its label. */
static int
pem_block(const struct ps_log *log, const char *what, int blockno,
    const char *name, const unsigned char *der, long len,
    STACK_OF(X509) *sk)
{
	const unsigned char *p = der;
	X509 *x;
	PKCS7 *p7;
	int r;

	if (pem_is_cert(name)) {
		x = d2i_X509(NULL, &p, len);
		if (x == NULL || p != der + len) {
			X509_free(x);
			ps_log_openssl(log, what);
			ps_log_err(log, "%s: malformed certificate in PEM block "
			    "%d", what, blockno);
			return PS_ERR_INVALID;
		}
		return certs_push(sk, x);
	}
	p7 = d2i_PKCS7(NULL, &p, len);
	if (p7 == NULL || p != der + len) {
		PKCS7_free(p7);
		ps_log_openssl(log, what);
		ps_log_err(log, "%s: malformed PKCS#7 in PEM block %d", what,
		    blockno);
		return PS_ERR_INVALID;
	}
	r = pkcs7_certs(log, what, p7, sk);
	PKCS7_free(p7);
	return r;
}

/* What the PEM blocks of a file held, for the final verdict. */
struct pem_seen {
	int blocks;
	bool key;
	char other[64];		/* label of the first unusable block */
};

/*
 * Read one PEM block. Returns 1 with a block, 0 at the end of input,
 * -1 when the input is not well-formed PEM.
 */
static int
pem_next(BIO *bio, char **name, unsigned char **der, long *len)
{
	char *header = NULL;
	unsigned long e;

	*name = NULL;
	*der = NULL;
	*len = 0;
	ERR_clear_error();
	if (PEM_read_bio(bio, name, &header, der, len) == 1) {
		OPENSSL_free(header);
		return 1;
	}
	e = ERR_peek_last_error();
	ERR_clear_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		return 0;
	return -1;
}

static int
load_pem(const struct ps_log *log, const char *what,
    const unsigned char *data, size_t len, STACK_OF(X509) *sk)
{
	struct pem_seen seen;
	BIO *bio = NULL;
	char *name = NULL;
	unsigned char *der = NULL;
	long derlen = 0;
	int got, r = PS_ERR_INVALID;

	memset(&seen, 0, sizeof(seen));
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	while ((got = pem_next(bio, &name, &der, &derlen)) == 1) {
		seen.blocks++;
		if (pem_is_cert(name) || pem_is_pkcs7(name)) {
			r = pem_block(log, what, seen.blocks, name, der,
			    derlen, sk);
			if (r != PS_OK)
				goto out;
		} else if (pem_is_key(name)) {
			seen.key = true;
		} else if (seen.other[0] == '\0') {
			snprintf(seen.other, sizeof(seen.other), "%s", name);
		}
		/* the payload may be a private key: wipe, never just free */
		OPENSSL_clear_free(der, (size_t)derlen);
		OPENSSL_free(name);
		der = NULL;
		name = NULL;
	}
	if (got < 0) {
		ps_log_err(log, "%s: malformed PEM data after %d block(s)",
		    what, seen.blocks);
		r = PS_ERR_INVALID;
		goto out;
	}
	if (sk_X509_num(sk) > 0) {
		r = PS_OK;
		goto out;
	}
	r = PS_ERR_INVALID;
	if (seen.key)
		ps_log_err(log, "%s: contains a private key, not a certificate",
		    what);
	else if (seen.other[0] != '\0')
		ps_log_err(log, "%s: " NOT_A_CERT " (PEM holds %s)", what,
		    seen.other);
	else
		ps_log_err(log, "%s: " NOT_A_CERT " (no PEM block found)",
		    what);
 out:
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)derlen);
	OPENSSL_free(name);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

/* ------------------------------------------------------------ loading */

static bool
has_pem_marker(const unsigned char *data, size_t len)
{
	return memmem(data, len, PEM_BEGIN, strlen(PEM_BEGIN)) != NULL;
}

/* The reason for bytes that are no known format, as precise as we can. */
static void
log_unknown(const struct ps_log *log, const char *what,
    const unsigned char *data, size_t len)
{
	size_t total;

	if (data[0] == 0x30 && der_outer_len(data, len, &total) &&
	    total > len) {
		ps_log_err(log, "%s: " NOT_A_CERT " (truncated: DER header "
		    "says %zu bytes, have %zu)", what, total, len);
		return;
	}
	if (data[0] == 0x30 && der_outer_len(data, len, &total) &&
	    total > 0 && total < len) {
		ps_log_err(log, "%s: " NOT_A_CERT " (%zu bytes of trailing "
		    "data after the DER structure)", what, len - total);
		return;
	}
	ps_log_err(log, "%s: " NOT_A_CERT, what);
}

static int
load_any(const struct ps_log *log, const char *what,
    const unsigned char *data, size_t len, const char *password,
    STACK_OF(X509) *sk)
{
	static const unsigned char bom[] = { 0xef, 0xbb, 0xbf };
	bool matched = false;
	int r;

	if ((r = check_size(log, what, len)) != PS_OK)
		return r;
	if (data[0] == 0x30) {
		r = load_der(log, what, data, len, password, sk, &matched);
		if (matched)
			return r;
	}
	if (has_pem_marker(data, len)) {
		/* Notepad saves a byte-order mark that hides the first line */
		if (len >= sizeof(bom) && memcmp(data, bom, sizeof(bom)) == 0) {
			data += sizeof(bom);
			len -= sizeof(bom);
		}
		return load_pem(log, what, data, len, sk);
	}
	log_unknown(log, what, data, len);
	return PS_ERR_INVALID;
}

static int
load_to_stack(const struct ps_log *log, const char *what,
    const unsigned char *data, size_t len, const char *password,
    STACK_OF(X509) **out)
{
	STACK_OF(X509) *sk = NULL;
	int r;

	if (out == NULL) {
		ps_log_err(log, "%s: no output given", what);
		return PS_ERR_INTERNAL;
	}
	*out = NULL;
	if (data == NULL) {
		ps_log_err(log, "%s: no data", what);
		return PS_ERR_INVALID;
	}
	if ((sk = sk_X509_new_null()) == NULL) {
		ps_log_err(log, "%s: out of memory", what);
		return PS_ERR_NOMEM;
	}
	if ((r = load_any(log, what, data, len, password, sk)) != PS_OK)
		goto out;
	if (sk_X509_num(sk) <= 0) {
		/* every format path fills sk or fails; be sure anyway */
		ps_log_err(log, "%s: " NOT_A_CERT, what);
		r = PS_ERR_INVALID;
		goto out;
	}
	if ((r = certs_end_entity_first(sk)) != PS_OK) {
		ps_log_err(log, "%s: out of memory", what);
		goto out;
	}
	*out = sk;
	sk = NULL;
 out:
	certs_free(sk);
	ERR_clear_error();
	return r;
}

int
ps_cert_load_mem(const struct ps_log *log, const unsigned char *data,
    size_t len, const char *password, STACK_OF(X509) **out)
{
	return load_to_stack(log, MEM_LABEL, data, len, password, out);
}

int
ps_cert_load_file(const struct ps_log *log, const char *path,
    const char *password, STACK_OF(X509) **out)
{
	struct ps_file_rules rules;
	unsigned char *data = NULL;
	char *real;
	size_t len = 0;
	int r;

	if (out != NULL)
		*out = NULL;
	if (path == NULL) {
		ps_log_err(log, "certificate file: no path given");
		return PS_ERR_INVALID;
	}
	/*
	 * Admins name certificates through links (~/Downloads, hash links in
	 * a CA directory); whoever chose the path decided to trust it, so
	 * links are followed here, unlike for registry files.
	 */
	if ((real = realpath(path, NULL)) == NULL) {
		if (errno == ENOENT || errno == ENOTDIR) {
			ps_log_err(log, "%s: no such file", path);
			return PS_ERR_NOT_FOUND;
		}
		ps_log_err(log, "%s: cannot resolve path: %s", path,
		    strerror(errno));
		return errno == ENOMEM ? PS_ERR_NOMEM : PS_ERR_IO;
	}
	memset(&rules, 0, sizeof(rules));
	rules.max_size = PS_CERT_FILE_MAX;
	r = ps_read_file(log, real, &rules, &data, &len);
	if (r == PS_ERR_NOT_FOUND)
		ps_log_err(log, "%s: no such file", path);
	if (r != PS_OK)
		goto out;
	r = load_to_stack(log, path, data, len, password, out);
	/* a keystore or key file may have been passed by mistake */
	ps_freezero(data, len + 1);
 out:
	free(real);
	return r;
}

/* ------------------------------------------------------------ fingerprint */

static int
fingerprint_der(const unsigned char *der, int len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen * 2 != PS_FP_HEX_LEN)
		return PS_ERR_CRYPTO;
	ps_hex_encode(md, mdlen, out);
	return PS_OK;
}

int
ps_cert_fingerprint(const X509 *cert, char *out)
{
	X509_PUBKEY *spki;
	unsigned char *der = NULL;
	int len, r;

	out[0] = '\0';
	if (cert == NULL || (spki = X509_get_X509_PUBKEY(cert)) == NULL)
		return PS_ERR_INVALID;
	if ((len = i2d_X509_PUBKEY(spki, &der)) <= 0) {
		ERR_clear_error();
		return PS_ERR_CRYPTO;
	}
	r = fingerprint_der(der, len, out);
	OPENSSL_free(der);
	return r;
}

int
ps_pkey_fingerprint(EVP_PKEY *pkey, char *out)
{
	unsigned char *der = NULL;
	int len, r;

	out[0] = '\0';
	if (pkey == NULL)
		return PS_ERR_INVALID;
	if ((len = i2d_PUBKEY(pkey, &der)) <= 0) {
		ERR_clear_error();
		return PS_ERR_CRYPTO;
	}
	r = fingerprint_der(der, len, out);
	OPENSSL_free(der);
	return r;
}

/* ------------------------------------------------------------ identity */

/* Copy bytes that must be a C string: empty or embedded NUL is refused. */
static int
bytes_to_cstr(const unsigned char *s, int len, char **out)
{
	char *copy;

	*out = NULL;
	if (s == NULL || len <= 0 || memchr(s, '\0', (size_t)len) != NULL)
		return PS_ERR_INVALID;
	if ((copy = malloc((size_t)len + 1)) == NULL)
		return PS_ERR_NOMEM;
	memcpy(copy, s, (size_t)len);
	copy[len] = '\0';
	*out = copy;
	return PS_OK;
}

/* The first rfc822Name of the subjectAltName; *out NULL when none. */
static int
san_email(const X509 *cert, char **out)
{
	GENERAL_NAMES *names;
	const GENERAL_NAME *gn;
	int crit = -1, i, r = PS_OK;

	*out = NULL;
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (names == NULL) {
		ERR_clear_error();
		/* -1: absent; otherwise duplicated (-2) or undecodable */
		return crit == -1 ? PS_OK : PS_ERR_INVALID;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type != GEN_EMAIL)
			continue;
		r = bytes_to_cstr(ASN1_STRING_get0_data(gn->d.rfc822Name),
		    ASN1_STRING_length(gn->d.rfc822Name), out);
		break;
	}
	GENERAL_NAMES_free(names);
	return r;
}

/*
 * The UTF-8 value of one attribute of a name (the last one, the most
 * specific, when repeated); *out NULL when absent.
 */
static int
name_attr(const X509_NAME *name, int nid, char **out)
{
	const X509_NAME_ENTRY *ne;
	unsigned char *utf8 = NULL;
	int i, last = -1, len, r;

	*out = NULL;
	while ((i = X509_NAME_get_index_by_NID(name, nid, last)) >= 0)
		last = i;
	if (last < 0)
		return PS_OK;
	ne = X509_NAME_get_entry(name, last);
	if (ne == NULL)
		return PS_ERR_INVALID;
	len = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(ne));
	if (len < 0) {
		ERR_clear_error();
		return PS_ERR_INVALID;
	}
	r = bytes_to_cstr(utf8, len, out);
	OPENSSL_free(utf8);
	return r;
}

/* RFC 2253 text of a name: escaped, so free of NULs and control bytes. */
static int
name_rfc2253(const X509_NAME *name, char **out)
{
	BIO *bio;
	char *text = NULL;
	long len;
	int r = PS_ERR_NOMEM;

	*out = NULL;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return PS_ERR_NOMEM;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
		r = PS_ERR_INVALID;
		goto out;
	}
	len = BIO_get_mem_data(bio, &text);
	if (len < 0 || len > INT_MAX) {
		r = PS_ERR_INVALID;
		goto out;
	}
	if (len == 0) {
		/* an empty subject is legal (the SAN names the holder) */
		r = (*out = strdup("")) != NULL ? PS_OK : PS_ERR_NOMEM;
		goto out;
	}
	r = bytes_to_cstr((const unsigned char *)text, (int)len, out);
 out:
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

/* Serial number as lower-case hex without separators ("-" if negative). */
static int
serial_hex(const X509 *cert, char **out)
{
	const ASN1_INTEGER *serial;
	BIGNUM *bn = NULL;
	char *hex = NULL, *p;
	int r = PS_ERR_INVALID;

	*out = NULL;
	if ((serial = X509_get0_serialNumber(cert)) == NULL)
		goto out;
	if ((bn = ASN1_INTEGER_to_BN(serial, NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL)
		goto out;
	for (p = hex; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	if ((*out = strdup(hex)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	r = PS_OK;
 out:
	OPENSSL_free(hex);
	BN_free(bn);
	ERR_clear_error();
	return r;
}

int
ps_cert_identity(const X509 *cert, struct ps_identity *id)
{
	const X509_NAME *subject, *issuer;
	int r;

	if (id == NULL)
		return PS_ERR_INTERNAL;
	memset(id, 0, sizeof(*id));
	if (cert == NULL)
		return PS_ERR_INVALID;
	subject = X509_get_subject_name(cert);
	issuer = X509_get_issuer_name(cert);
	if (subject == NULL || issuer == NULL) {
		r = PS_ERR_INVALID;
		goto out;
	}
	if ((r = san_email(cert, &id->email)) != PS_OK)
		goto out;
	if (id->email == NULL &&
	    (r = name_attr(subject, NID_pkcs9_emailAddress, &id->email))
	    != PS_OK)
		goto out;
	if ((r = name_attr(subject, NID_commonName, &id->common_name))
	    != PS_OK)
		goto out;
	if ((r = name_rfc2253(subject, &id->subject)) != PS_OK ||
	    (r = name_rfc2253(issuer, &id->issuer)) != PS_OK ||
	    (r = serial_hex(cert, &id->serial)) != PS_OK)
		goto out;
	r = PS_OK;
 out:
	if (r != PS_OK)
		ps_identity_clear(id);
	return r;
}

void
ps_identity_clear(struct ps_identity *id)
{
	if (id == NULL)
		return;
	free(id->email);
	free(id->common_name);
	free(id->subject);
	free(id->issuer);
	free(id->serial);
	memset(id, 0, sizeof(*id));
}

/* ------------------------------------------------------------ validity */

static int
asn1_time_to_time_t(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;
	time_t v;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		ERR_clear_error();
		return PS_ERR_INVALID;
	}
	v = timegm(&tm);
	/* -1 is also 1969-12-31T23:59:59, which no certificate uses */
	if (v == (time_t)-1)
		return PS_ERR_INVALID;
	*out = v;
	return PS_OK;
}

int
ps_cert_validity(const X509 *cert, time_t *not_before, time_t *not_after)
{
	time_t nb, na;
	int r;

	if (cert == NULL)
		return PS_ERR_INVALID;
	if ((r = asn1_time_to_time_t(X509_get0_notBefore(cert), &nb)) != PS_OK ||
	    (r = asn1_time_to_time_t(X509_get0_notAfter(cert), &na)) != PS_OK)
		return r;
	if (not_before != NULL)
		*not_before = nb;
	if (not_after != NULL)
		*not_after = na;
	return PS_OK;
}

/* ------------------------------------------------------------ key type */

/* RSA exponents of 1 (or even) make signatures meaningless. */
static bool
rsa_exponent_ok(const EVP_PKEY *pkey)
{
	BIGNUM *e = NULL;
	bool ok;

	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
		ERR_clear_error();
		return false;
	}
	ok = BN_is_odd(e) && !BN_is_one(e);
	BN_free(e);
	return ok;
}

static int
check_rsa(const EVP_PKEY *pkey, char *why, size_t whylen)
{
	int bits = EVP_PKEY_get_bits(pkey);

	if (bits < 2048 || bits > 4096) {
		snprintf(why, whylen, "unsupported key type RSA-%d (need 2048 "
		    "to 4096 bits)", bits);
		return PS_ERR_POLICY;
	}
	if (!rsa_exponent_ok(pkey)) {
		snprintf(why, whylen, "unsupported key type RSA-%d with an "
		    "invalid public exponent", bits);
		return PS_ERR_POLICY;
	}
	return PS_OK;
}

static int
check_ec(const EVP_PKEY *pkey, char *why, size_t whylen)
{
	char group[80];
	size_t glen = 0;
	int nid;

	if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1) {
		ERR_clear_error();
		snprintf(why, whylen, "unsupported key type EC without a "
		    "named curve");
		return PS_ERR_POLICY;
	}
	if ((nid = OBJ_txt2nid(group)) == NID_undef)
		nid = EC_curve_nist2nid(group);
	ERR_clear_error();
	if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1) {
		snprintf(why, whylen, "unsupported key type EC %s (need P-256 "
		    "or P-384)", group);
		return PS_ERR_POLICY;
	}
	return PS_OK;
}

int
ps_cert_key_check(const X509 *cert, char *why, size_t whylen)
{
	const EVP_PKEY *pkey;
	const char *type;
	char dummy[1];

	if (why == NULL || whylen == 0) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	if (cert == NULL || (pkey = X509_get0_pubkey(cert)) == NULL) {
		ERR_clear_error();
		snprintf(why, whylen, "unsupported key type: the public key "
		    "cannot be decoded");
		return PS_ERR_POLICY;
	}
	/* RSA-PSS keys are a distinct type and refused: we verify PKCS#1 */
	if (EVP_PKEY_is_a(pkey, "RSA"))
		return check_rsa(pkey, why, whylen);
	if (EVP_PKEY_is_a(pkey, "EC"))
		return check_ec(pkey, why, whylen);
	type = EVP_PKEY_get0_type_name(pkey);
	snprintf(why, whylen, "unsupported key type %s (need RSA or EC)",
	    type != NULL ? type : "unknown");
	return PS_ERR_POLICY;
}

int
ps_cert_key_supported(const struct ps_log *log, const X509 *cert)
{
	char why[160];
	int r;

	if ((r = ps_cert_key_check(cert, why, sizeof(why))) != PS_OK)
		ps_log_err(log, "%s", why);
	return r;
}

/* ------------------------------------------------------------ PEM out */

int
ps_cert_to_pem(const X509 *cert, char **pem, size_t *len)
{
	BIO *bio = NULL;
	char *text = NULL, *copy;
	long n;
	int r = PS_ERR_CRYPTO;

	*pem = NULL;
	if (len != NULL)
		*len = 0;
	if (cert == NULL)
		return PS_ERR_INVALID;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return PS_ERR_NOMEM;
	if (PEM_write_bio_X509(bio, cert) != 1)
		goto out;
	if ((n = BIO_get_mem_data(bio, &text)) <= 0)
		goto out;
	if ((copy = malloc((size_t)n + 1)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	memcpy(copy, text, (size_t)n);
	copy[n] = '\0';
	*pem = copy;
	if (len != NULL)
		*len = (size_t)n;
	r = PS_OK;
 out:
	BIO_free(bio);
	ERR_clear_error();
	return r;
}
