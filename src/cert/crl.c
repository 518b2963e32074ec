/*
 * crl.c - CRL indexes (built by personalsign-enroll crl-update) and the
 * per-login revocation lookup over them (crl.h).
 *
 * Index file (all integers big-endian):
 *
 *     0  magic "PSCRLIX1"
 *     8  u32 version (1)          12  u32 entry size (24)
 *    16  u64 number of entries    24  i64 thisUpdate
 *    32  i64 nextUpdate           40  i64 time the index was built
 *    48  SHA-256 of the CRL file (32 bytes)
 *    80  SHA-256 of the signing CA's public key (the subjectPublicKey
 *        BIT STRING, as X509_pubkey_digest; 64 hex digits)
 *   144  u32 issuer name DER length
 *   148  u32 offset of the first entry (header + name, 8-aligned)
 *   152  u32 scope: 0 every certificate, 1 end entities only, 2 CAs only
 *   156  reserved, zero up to 192
 *   192  issuer name (DER), zero padding
 *   then entries: first 15 bytes of SHA-256(sign byte || magnitude of the
 *   serial number), 1 byte CRLReason (0xff none), i64 revocationDate;
 *   sorted by the 15 bytes, no duplicates.
 *
 * Hashing the serial gives fixed-width entries whatever the CA's serial
 * length; a collision (2^-120 per pair) could only make a good
 * certificate look revoked, never the other way round.
 *
 * The index files are trusted like the CA file: root-owned, in a
 * directory nobody else may write. Their size and header are checked on
 * every open, their sortedness only when they are built.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "crl.h"
#include "ps_status.h"
#include "util.h"

#define IX_MAGIC		"PSCRLIX1"
#define IX_VERSION		2
#define IX_HEADER_SIZE		192
#define IX_ENTRY_SIZE		24
#define IX_HASH_LEN		15
#define IX_REASON_NONE		0xff
#define IX_NAME_MAX		4096
#define IX_MAX_PER_HASH		64	/* issuers sharing one name hash */
#define IX_FILE_NAME_LEN	16	/* "hhhhhhhh.nn" + NUL, with room */
#define SERIAL_MAX		128	/* bytes of magnitude we hash */

#define MANIFEST_FILE		"MANIFEST"
#define MANIFEST_MAGIC		"pscrl-manifest 1"
#define MANIFEST_MAX		(4 * 1024 * 1024)
#define LOCK_FILE		"lock"
#define CRL_NAME_MAX		255

enum scope {
	SCOPE_ALL = 0,
	SCOPE_USER = 1,		/* onlyContainsUserCerts */
	SCOPE_CA = 2,		/* onlyContainsCACerts */
};

/* What identifies a file's content without reading it. */
struct fsig {
	long long size;
	long long mtime_ns;
	long long ctime_ns;
	unsigned long long ino;
	unsigned long long dev;
};

enum mf_status {
	MF_INDEXED,		/* this CRL is its issuer's index */
	MF_OLDER,		/* a newer CRL of the same issuer is */
	MF_INVALID,		/* not a usable CRL (crl-update said why) */
};

static const char *const mf_status_names[] = { "indexed", "older", "invalid" };

struct mf_entry {
	char name[CRL_NAME_MAX + 1];
	unsigned char sha[32];
	enum mf_status status;
	char index[IX_FILE_NAME_LEN];	/* "-" unless indexed */
	struct fsig sig;
	bool present;		/* in the directory, unchanged */
};

struct ps_crl_view {
	struct ps_log log;
	char *dir;
	bool have_manifest;
	struct mf_entry *mf;
	size_t nmf;
	/* files to read at lookup: new, changed, or not covered by an index */
	char **changed;
	size_t nchanged;
	X509_CRL **parsed;	/* [nchanged], NULL when unusable */
	bool parsed_done;
	int parse_status;	/* PS_OK, or why a known CRL became unusable */
};

/* One candidate answer for a lookup. */
struct cand {
	bool found;
	long long this_update;
	long long next_update;
	bool revoked;
	long long revoked_at;
	int reason;
	bool indexed;
};

/* A mapped index file. */
struct ix_map {
	unsigned char *base;
	size_t size;
	uint64_t count;
	long long this_update;
	long long next_update;
	unsigned char crl_sha[32];
	char signer[PS_FP_HEX_LEN + 1];
	const unsigned char *issuer_der;
	uint32_t issuer_len;
	uint32_t scope;
	const unsigned char *entries;
};

/* ------------------------------------------------------------ bytes */

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void
put_u64(unsigned char *p, uint64_t v)
{
	put_u32(p, (uint32_t)(v >> 32));
	put_u32(p + 4, (uint32_t)v);
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t
get_u64(const unsigned char *p)
{
	return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

static size_t
align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* ------------------------------------------------------------ small helpers */

/* ASN1_TIME -> seconds since the epoch (UTC). */
static int
asn1_time_ll(const ASN1_TIME *t, long long *out)
{
	struct tm tm;
	time_t tt;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return PS_ERR_INVALID;
	if ((tt = timegm(&tm)) == (time_t)-1)
		return PS_ERR_INVALID;
	*out = (long long)tt;
	return PS_OK;
}

static int
sha256(const unsigned char *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != 32)
		return PS_ERR_CRYPTO;
	return PS_OK;
}

/*
 * The fixed-width key of a serial number: the first IX_HASH_LEN bytes of
 * SHA-256(sign || minimal big-endian magnitude). Going through a BIGNUM
 * makes it independent of how the INTEGER was encoded.
 */
static int
serial_key(const ASN1_INTEGER *serial, BIGNUM *bn, EVP_MD_CTX *md,
    unsigned char out[IX_HASH_LEN])
{
	unsigned char buf[1 + SERIAL_MAX], digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	int n;

	if (serial == NULL || ASN1_INTEGER_to_BN(serial, bn) == NULL)
		return PS_ERR_INVALID;
	if (BN_num_bytes(bn) > SERIAL_MAX)
		return PS_ERR_INVALID;
	buf[0] = BN_is_negative(bn) ? 1 : 0;
	if ((n = BN_bn2bin(bn, buf + 1)) < 0)
		return PS_ERR_INVALID;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, buf, (size_t)n + 1) != 1 ||
	    EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen < IX_HASH_LEN)
		return PS_ERR_CRYPTO;
	memcpy(out, digest, IX_HASH_LEN);
	return PS_OK;
}

/* The key for one certificate, with its own scratch objects. */
static int
cert_serial_key(X509 *cert, unsigned char out[IX_HASH_LEN])
{
	BIGNUM *bn = BN_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int r = PS_ERR_NOMEM;

	if (bn != NULL && md != NULL)
		r = serial_key(X509_get0_serialNumber(cert), bn, md, out);
	BN_free(bn);
	EVP_MD_CTX_free(md);
	return r;
}

/*
 * Which key signed a CRL: the digest of the CA's public key bits. Not the
 * registry's SPKI fingerprint: re-encoding a key through OpenSSL 3's
 * encoders costs ~800,000 instructions, this one hashes bytes the
 * certificate already holds.
 */
static int
signer_fp(const X509 *ca, char out[PS_FP_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (X509_pubkey_digest(ca, EVP_sha256(), md, &len) != 1 || len != 32) {
		ERR_clear_error();
		return PS_ERR_CRYPTO;
	}
	ps_hex_encode(md, len, out);
	return PS_OK;
}

/* Names crl-update and the lookup agree to consider: plain, printable. */
static bool
crl_name_ok(const char *name)
{
	size_t i, len = strlen(name);

	if (len == 0 || len > CRL_NAME_MAX || name[0] == '.')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-' || c == '+' || c == '@' || c == '=' || c == ','))
			return false;
	}
	return true;
}

static void
fsig_of(const struct stat *st, struct fsig *s)
{
	s->size = (long long)st->st_size;
	s->mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL +
	    st->st_mtim.tv_nsec;
	s->ctime_ns = (long long)st->st_ctim.tv_sec * 1000000000LL +
	    st->st_ctim.tv_nsec;
	s->ino = (unsigned long long)st->st_ino;
	s->dev = (unsigned long long)st->st_dev;
}

static bool
fsig_eq(const struct fsig *a, const struct fsig *b)
{
	return a->size == b->size && a->mtime_ns == b->mtime_ns &&
	    a->ctime_ns == b->ctime_ns && a->ino == b->ino && a->dev == b->dev;
}

const char *
ps_crl_reason_name(int reason)
{
	static const char *const names[] = {
		"unspecified", "keyCompromise", "cACompromise",
		"affiliationChanged", "superseded", "cessationOfOperation",
		"certificateHold", NULL, "removeFromCRL",
		"privilegeWithdrawn", "aACompromise",
	};

	if (reason < 0 || (size_t)reason >= sizeof(names) / sizeof(names[0]))
		return NULL;
	return names[reason];
}

/* ------------------------------------------------------------ parsing */

/* Exactly one CRL, PEM or DER. *why is set on failure. */
static X509_CRL *
crl_parse(const unsigned char *data, size_t len, const char **why)
{
	const unsigned char *p = data;
	X509_CRL *crl = NULL, *extra = NULL;
	BIO *bio = NULL;

	*why = "not a CRL (PEM or DER)";
	if (len == 0 || len > LONG_MAX) {
		*why = len == 0 ? "empty file" : "too large";
		return NULL;
	}
	if (len > 11 && memcmp(data, "-----BEGIN ", 11) == 0) {
		if (len > INT_MAX ||
		    (bio = BIO_new_mem_buf(data, (int)len)) == NULL)
			goto out;
		crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		if (crl != NULL &&
		    (extra = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) !=
		    NULL) {
			*why = "more than one CRL in one file (split them)";
			X509_CRL_free(crl);
			crl = NULL;
		}
		goto out;
	}
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	if (crl != NULL && p != data + len) {
		*why = "data after the CRL";
		X509_CRL_free(crl);
		crl = NULL;
	}
 out:
	X509_CRL_free(extra);
	BIO_free(bio);
	ERR_clear_error();
	return crl;
}

static bool
ext_nid_in(int nid, const int *allowed, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (allowed[i] == nid)
			return true;
	return false;
}

/* The CRL's own extensions: a full, direct CRL we understand. */
static int
crl_check_exts(X509_CRL *crl, const char **why)
{
	static const int critical_ok[] = { NID_issuing_distribution_point };
	X509_EXTENSION *ext;
	int i, nid, n = X509_CRL_get_ext_count(crl);

	for (i = 0; i < n; i++) {
		if ((ext = X509_CRL_get_ext(crl, i)) == NULL) {
			*why = "unreadable extension";
			return PS_ERR_INVALID;
		}
		nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
		if (nid == NID_delta_crl) {
			*why = "delta CRLs are not supported (give the full "
			    "CRL)";
			return PS_ERR_INVALID;
		}
		if (X509_EXTENSION_get_critical(ext) &&
		    !ext_nid_in(nid, critical_ok,
		    sizeof(critical_ok) / sizeof(critical_ok[0]))) {
			*why = "unsupported critical extension";
			return PS_ERR_INVALID;
		}
	}
	return PS_OK;
}

/* Which certificates the CRL covers, from its issuingDistributionPoint. */
static int
crl_scope(X509_CRL *crl, enum scope *scope, const char **why)
{
	ISSUING_DIST_POINT *idp;
	int crit = -1, r = PS_OK;

	*scope = SCOPE_ALL;
	idp = X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit,
	    NULL);
	if (idp == NULL) {
		ERR_clear_error();
		if (crit == -1)
			return PS_OK;
		*why = "malformed issuingDistributionPoint";
		return PS_ERR_INVALID;
	}
	if (idp->indirectCRL) {
		*why = "indirect CRLs are not supported";
		r = PS_ERR_INVALID;
	} else if (idp->onlysomereasons != NULL) {
		*why = "CRLs covering only some reasons are not supported";
		r = PS_ERR_INVALID;
	} else if (idp->onlyattr) {
		*why = "covers attribute certificates only";
		r = PS_ERR_INVALID;
	} else if (idp->onlyuser && idp->onlyCA) {
		*why = "covers neither users nor CAs";
		r = PS_ERR_INVALID;
	} else if (idp->onlyuser) {
		*scope = SCOPE_USER;
	} else if (idp->onlyCA) {
		*scope = SCOPE_CA;
	}
	ISSUING_DIST_POINT_free(idp);
	return r;
}

/* One entry's extensions: nothing that makes the CRL indirect. */
static int
entry_check_exts(const X509_REVOKED *rev, const char **why)
{
	static const int known[] = {
		NID_crl_reason, NID_invalidity_date, NID_hold_instruction_code,
	};
	X509_EXTENSION *ext;
	int i, nid, n = X509_REVOKED_get_ext_count(rev);

	for (i = 0; i < n; i++) {
		if ((ext = X509_REVOKED_get_ext(rev, i)) == NULL) {
			*why = "unreadable entry extension";
			return PS_ERR_INVALID;
		}
		nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
		if (nid == NID_certificate_issuer) {
			*why = "indirect CRLs are not supported";
			return PS_ERR_INVALID;
		}
		if (X509_EXTENSION_get_critical(ext) &&
		    !ext_nid_in(nid, known, sizeof(known) / sizeof(known[0]))) {
			*why = "unsupported critical entry extension";
			return PS_ERR_INVALID;
		}
	}
	return PS_OK;
}

/* CRLReason of an entry, -1 when absent. */
static int
entry_reason(const X509_REVOKED *rev, const char **why, int *reason)
{
	ASN1_ENUMERATED *e;
	int crit = -1;
	long v;

	*reason = -1;
	e = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit, NULL);
	if (e == NULL) {
		ERR_clear_error();
		if (crit == -1)
			return PS_OK;
		*why = "malformed reasonCode";
		return PS_ERR_INVALID;
	}
	v = ASN1_ENUMERATED_get(e);
	ASN1_ENUMERATED_free(e);
	if (v < 0 || v > 10) {
		*why = "unknown reasonCode";
		return PS_ERR_INVALID;
	}
	*reason = (int)v;
	return PS_OK;
}

/* thisUpdate and nextUpdate (PS_CRL_NO_NEXT_UPDATE when absent). */
static int
crl_times(X509_CRL *crl, long long *this_update, long long *next_update,
    const char **why)
{
	const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);

	if (asn1_time_ll(X509_CRL_get0_lastUpdate(crl), this_update) != PS_OK) {
		*why = "unreadable thisUpdate";
		return PS_ERR_INVALID;
	}
	*next_update = PS_CRL_NO_NEXT_UPDATE;
	if (nu != NULL && asn1_time_ll(nu, next_update) != PS_OK) {
		*why = "unreadable nextUpdate";
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

/* Does a CRL of this scope speak about this certificate? */
static bool
scope_covers(enum scope scope, X509 *cert)
{
	bool is_ca = X509_check_ca(cert) != 0;

	return scope == SCOPE_ALL || (scope == SCOPE_USER && !is_ca) ||
	    (scope == SCOPE_CA && is_ca);
}

/* Prefer the newest CRL; at equal age, the one that says revoked. */
static void
cand_offer(struct cand *best, const struct cand *c)
{
	if (!best->found || c->this_update > best->this_update ||
	    (c->this_update == best->this_update && c->revoked &&
	    !best->revoked))
		*best = *c;
}

/* ------------------------------------------------------------ manifest */

static int
parse_ll(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return (errno != 0 || end == s || *end != '\0') ? -1 : 0;
}

static int
parse_ull(const char *s, unsigned long long *out)
{
	char *end;

	if (*s == '-' || *s == '+')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return (errno != 0 || end == s || *end != '\0') ? -1 : 0;
}

static int
parse_sha_hex(const char *s, unsigned char out[32])
{
	size_t i;

	if (!ps_hex_valid(s, 64))
		return -1;
	for (i = 0; i < 64; i++) {
		unsigned v = (unsigned)(s[i] <= '9' ? s[i] - '0' :
		    s[i] - 'a' + 10);

		out[i / 2] = (unsigned char)(i % 2 == 0 ? v << 4 :
		    (out[i / 2] | v));
	}
	return 0;
}

/* "hhhhhhhh.N": a name crl-update gives an index file. */
static bool
index_name_ok(const char *s)
{
	size_t i, len = strlen(s);

	if (len < 10 || len >= IX_FILE_NAME_LEN || s[8] != '.')
		return false;
	for (i = 0; i < 8; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	for (i = 9; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* SHA STATUS INDEX SIZE MTIME CTIME INO DEV NAME */
static int
parse_mf_line(char *line, struct mf_entry *e)
{
	char *f[9], *save = NULL, *tok;
	unsigned long long u;
	size_t n = 0, i;

	memset(e, 0, sizeof(*e));
	for (tok = strtok_r(line, " ", &save); tok != NULL && n < 9;
	    tok = strtok_r(NULL, " ", &save))
		f[n++] = tok;
	if (n != 9 || tok != NULL)
		return -1;
	if (parse_sha_hex(f[0], e->sha) != 0)
		return -1;
	for (i = 0; i < 3; i++)
		if (strcmp(f[1], mf_status_names[i]) == 0)
			break;
	if (i == 3)
		return -1;
	e->status = (enum mf_status)i;
	if (e->status == MF_INDEXED ? !index_name_ok(f[2]) :
	    strcmp(f[2], "-") != 0)
		return -1;
	snprintf(e->index, sizeof(e->index), "%s", f[2]);
	if (parse_ll(f[3], &e->sig.size) != 0 ||
	    parse_ll(f[4], &e->sig.mtime_ns) != 0 ||
	    parse_ll(f[5], &e->sig.ctime_ns) != 0 ||
	    parse_ull(f[6], &e->sig.ino) != 0 ||
	    parse_ull(f[7], &u) != 0)
		return -1;
	e->sig.dev = u;
	if (!crl_name_ok(f[8]))
		return -1;
	snprintf(e->name, sizeof(e->name), "%s", f[8]);
	return 0;
}

static int
mf_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mf_entry *)a)->name,
	    ((const struct mf_entry *)b)->name);
}

/* Parse the manifest text (NUL-terminated, modified in place). */
static int
parse_manifest(const struct ps_log *log, const char *path, char *text,
    struct mf_entry **out, size_t *count)
{
	struct mf_entry *list = NULL, *nl;
	char *line, *next;
	size_t n = 0, lineno = 0;
	int r = PS_ERR_INVALID;

	*out = NULL;
	*count = 0;
	for (line = text; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) == NULL) {
			ps_log_err(log, "%s:%zu: truncated line", path, lineno);
			goto out;
		}
		*next++ = '\0';
		if (lineno == 1) {
			if (strcmp(line, MANIFEST_MAGIC) != 0) {
				ps_log_err(log, "%s: not a CRL manifest", path);
				goto out;
			}
			continue;
		}
		if ((nl = reallocarray(list, n + 1, sizeof(*nl))) == NULL) {
			r = PS_ERR_NOMEM;
			goto out;
		}
		list = nl;
		if (parse_mf_line(line, &list[n]) != 0) {
			ps_log_err(log, "%s:%zu: malformed line", path, lineno);
			goto out;
		}
		n++;
	}
	if (lineno == 0) {
		ps_log_err(log, "%s: empty", path);
		goto out;
	}
	if (n > 1)
		qsort(list, n, sizeof(*list), mf_cmp);
	*out = list;
	*count = n;
	list = NULL;
	r = PS_OK;
 out:
	free(list);
	return r;
}

/* dir/.index/MANIFEST; PS_ERR_NOT_FOUND (silent) when crl-update never ran. */
static int
read_manifest(const struct ps_log *log, const char *dir,
    struct mf_entry **out, size_t *count)
{
	struct ps_file_rules rules;
	unsigned char *data = NULL;
	char *ixdir = NULL, *path = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	*count = 0;
	ixdir = ps_strdup_printf("%s/%s", dir, PS_CRL_INDEX_DIR);
	path = ps_strdup_printf("%s/%s/%s", dir, PS_CRL_INDEX_DIR,
	    MANIFEST_FILE);
	if (ixdir == NULL || path == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if ((r = ps_dir_check(log, ixdir)) != PS_OK)
		goto out;
	ps_file_rules_trusted(&rules, MANIFEST_MAX);
	if ((r = ps_read_file(log, path, &rules, &data, &len)) != PS_OK)
		goto out;
	if (memchr(data, '\0', len) != NULL) {
		ps_log_err(log, "%s: contains a NUL byte", path);
		r = PS_ERR_INVALID;
		goto out;
	}
	r = parse_manifest(log, path, (char *)data, out, count);
 out:
	free(data);
	free(path);
	free(ixdir);
	return r;
}

/* ------------------------------------------------------------ view */

static struct mf_entry *
mf_find(const struct ps_crl_view *v, const char *name)
{
	struct mf_entry key;

	if (v->nmf == 0 || strlen(name) > CRL_NAME_MAX)
		return NULL;
	memset(&key, 0, sizeof(key));
	memcpy(key.name, name, strlen(name) + 1);
	return bsearch(&key, v->mf, v->nmf, sizeof(*v->mf), mf_cmp);
}

static int
changed_add(struct ps_crl_view *v, const char *name)
{
	char **nc, *copy;

	if ((copy = strdup(name)) == NULL)
		return PS_ERR_NOMEM;
	if ((nc = reallocarray(v->changed, v->nchanged + 1, sizeof(*nc))) ==
	    NULL) {
		free(copy);
		return PS_ERR_NOMEM;
	}
	nc[v->nchanged++] = copy;
	v->changed = nc;
	return PS_OK;
}

/* One directory entry: known and unchanged, or to be read at lookup. */
static int
view_classify(struct ps_crl_view *v, int dfd, const char *name)
{
	struct mf_entry *e;
	struct stat st;
	struct fsig sig;

	if (name[0] == '.')
		return PS_OK;
	if (!crl_name_ok(name)) {
		ps_log_debug(&v->log, "crl_dir %s: ignoring \"%s\" (name not "
		    "allowed for a CRL file)", v->dir, name);
		return PS_OK;
	}
	if (fstatat(dfd, name, &st, 0) != 0) {
		ps_log_warn(&v->log, "crl_dir %s: skipping %s: %s", v->dir,
		    name, strerror(errno));
		return PS_OK;
	}
	if (!S_ISREG(st.st_mode))
		return PS_OK;
	fsig_of(&st, &sig);
	if ((e = mf_find(v, name)) != NULL && fsig_eq(&e->sig, &sig)) {
		e->present = true;
		return PS_OK;
	}
	return changed_add(v, name);
}

static int
view_scan(struct ps_crl_view *v)
{
	struct dirent *de;
	DIR *d;
	int r = PS_OK;

	if ((d = opendir(v->dir)) == NULL) {
		ps_log_err(&v->log, "crl_dir %s: cannot open: %s", v->dir,
		    strerror(errno));
		return PS_ERR_IO;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if ((r = view_classify(v, dirfd(d), de->d_name)) != PS_OK)
			break;
	}
	if (r == PS_OK && errno != 0) {
		ps_log_err(&v->log, "crl_dir %s: cannot read: %s", v->dir,
		    strerror(errno));
		r = PS_ERR_IO;
	}
	closedir(d);
	return r;
}

/*
 * When a CRL that was some issuer's index disappeared or changed, the
 * older CRLs of that issuer (known to the manifest, never indexed) may be
 * the best left: read those too.
 */
static int
view_add_orphans(struct ps_crl_view *v)
{
	bool lost = false;
	size_t i;
	int r;

	for (i = 0; i < v->nmf; i++)
		if (v->mf[i].status == MF_INDEXED && !v->mf[i].present)
			lost = true;
	if (!lost)
		return PS_OK;
	for (i = 0; i < v->nmf; i++) {
		if (v->mf[i].status != MF_OLDER || !v->mf[i].present)
			continue;
		v->mf[i].present = false;
		if ((r = changed_add(v, v->mf[i].name)) != PS_OK)
			return r;
	}
	return PS_OK;
}

int
ps_crl_view_open(const struct ps_log *log, const char *dir,
    struct ps_crl_view **out)
{
	struct ps_crl_view *v;
	int r;

	if (out == NULL || dir == NULL)
		return PS_ERR_INTERNAL;
	*out = NULL;
	if ((v = calloc(1, sizeof(*v))) == NULL ||
	    (v->dir = strdup(dir)) == NULL) {
		free(v);
		ps_log_err(log, "crl: out of memory");
		return PS_ERR_NOMEM;
	}
	if (log != NULL)
		v->log = *log;
	r = read_manifest(log, dir, &v->mf, &v->nmf);
	if (r == PS_OK)
		v->have_manifest = true;
	else if (r != PS_ERR_NOT_FOUND)
		goto out;
	if ((r = view_scan(v)) != PS_OK || (r = view_add_orphans(v)) != PS_OK)
		goto out;
	if (!v->have_manifest && v->nchanged > 0)
		ps_log_warn(log, "crl_dir %s has never been indexed: reading "
		    "its CRLs at every login; run personalsign-enroll "
		    "crl-update", dir);
	*out = v;
	v = NULL;
	r = PS_OK;
 out:
	if (r == PS_ERR_NOMEM)
		ps_log_err(log, "crl: out of memory");
	ps_crl_view_free(v);
	return r;
}

void
ps_crl_view_free(struct ps_crl_view *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->nchanged; i++) {
		free(v->changed[i]);
		if (v->parsed != NULL)
			X509_CRL_free(v->parsed[i]);
	}
	free(v->changed);
	free(v->parsed);
	free(v->mf);
	free(v->dir);
	free(v);
}

/* ------------------------------------------------------------ index: read */

static void
ix_unmap(struct ix_map *m)
{
	if (m->base != NULL)
		munmap(m->base, m->size);
	memset(m, 0, sizeof(*m));
}

static int
ix_parse_header(struct ix_map *m, const char **why)
{
	const unsigned char *h = m->base;
	size_t off, avail;

	if (m->size < IX_HEADER_SIZE || memcmp(h, IX_MAGIC, 8) != 0) {
		*why = "not a CRL index";
		return PS_ERR_INVALID;
	}
	if (get_u32(h + 8) != IX_VERSION || get_u32(h + 12) != IX_ENTRY_SIZE) {
		*why = "unsupported index version";
		return PS_ERR_INVALID;
	}
	m->count = get_u64(h + 16);
	m->this_update = (long long)get_u64(h + 24);
	m->next_update = (long long)get_u64(h + 32);
	memcpy(m->crl_sha, h + 48, 32);
	memcpy(m->signer, h + 80, PS_FP_HEX_LEN);
	m->signer[PS_FP_HEX_LEN] = '\0';
	m->issuer_len = get_u32(h + 144);
	off = get_u32(h + 148);
	m->scope = get_u32(h + 152);
	if (!ps_hex_valid(m->signer, PS_FP_HEX_LEN) || m->issuer_len == 0 ||
	    m->issuer_len > IX_NAME_MAX || m->scope > SCOPE_CA ||
	    off != align8(IX_HEADER_SIZE + (size_t)m->issuer_len) ||
	    off > m->size) {
		*why = "damaged header";
		return PS_ERR_INVALID;
	}
	avail = m->size - off;
	if (avail % IX_ENTRY_SIZE != 0 || m->count != avail / IX_ENTRY_SIZE) {
		*why = "size does not match the number of entries";
		return PS_ERR_INVALID;
	}
	m->issuer_der = h + IX_HEADER_SIZE;
	m->entries = h + off;
	return PS_OK;
}

/* Map one index file read-only. PS_ERR_NOT_FOUND (silent) when absent. */
static int
ix_map_open(const struct ps_log *log, const char *path, struct ix_map *m)
{
	struct stat st;
	const char *why = NULL;
	void *base;
	int fd, r;

	memset(m, 0, sizeof(*m));
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return PS_ERR_NOT_FOUND;
		ps_log_err(log, "CRL index %s: cannot open: %s", path,
		    strerror(errno));
		return PS_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ps_log_err(log, "CRL index %s: not a regular file", path);
		r = PS_ERR_INVALID;
		goto out;
	}
	if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		ps_log_err(log, "CRL index %s: owned by uid %lu or writable by "
		    "others: refusing to trust it", path,
		    (unsigned long)st.st_uid);
		r = PS_ERR_UNSAFE;
		goto out;
	}
	if (st.st_size < IX_HEADER_SIZE || (uintmax_t)st.st_size > SIZE_MAX) {
		ps_log_err(log, "CRL index %s: bad size", path);
		r = PS_ERR_INVALID;
		goto out;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (base == MAP_FAILED) {
		ps_log_err(log, "CRL index %s: cannot map: %s", path,
		    strerror(errno));
		r = PS_ERR_IO;
		goto out;
	}
	m->base = base;
	m->size = (size_t)st.st_size;
	if ((r = ix_parse_header(m, &why)) != PS_OK) {
		ps_log_err(log, "CRL index %s: %s (run personalsign-enroll "
		    "crl-update)", path, why);
		ix_unmap(m);
	}
 out:
	close(fd);
	return r;
}

/* Binary search; *entry points at the match. */
static bool
ix_search(const struct ix_map *m, const unsigned char key[IX_HASH_LEN],
    const unsigned char **entry)
{
	uint64_t lo = 0, hi = m->count;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const unsigned char *e = m->entries + mid * IX_ENTRY_SIZE;
		int c = memcmp(key, e, IX_HASH_LEN);

		if (c == 0) {
			*entry = e;
			return true;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* Is the index about this issuer, signed by this key, for this cert? */
static bool
ix_matches(const struct ix_map *m, X509 *cert, const char *signer_fp)
{
	const unsigned char *p = m->issuer_der;
	X509_NAME *name;
	bool same;

	if (strcmp(m->signer, signer_fp) != 0 ||
	    !scope_covers((enum scope)m->scope, cert))
		return false;
	if ((name = d2i_X509_NAME(NULL, &p, (long)m->issuer_len)) == NULL) {
		ERR_clear_error();
		return false;
	}
	same = X509_NAME_cmp(name, X509_get_issuer_name(cert)) == 0;
	X509_NAME_free(name);
	return same;
}

/* The manifest must still vouch for the CRL this index was built from. */
static bool
ix_current(const struct ps_crl_view *v, const struct ix_map *m)
{
	size_t i;

	for (i = 0; i < v->nmf; i++)
		if (v->mf[i].status == MF_INDEXED && v->mf[i].present &&
		    memcmp(v->mf[i].sha, m->crl_sha, 32) == 0)
			return true;
	return false;
}

static void
ix_answer(const struct ix_map *m, const unsigned char key[IX_HASH_LEN],
    struct cand *c)
{
	const unsigned char *e = NULL;

	memset(c, 0, sizeof(*c));
	c->found = true;
	c->indexed = true;
	c->this_update = m->this_update;
	c->next_update = m->next_update;
	c->reason = -1;
	if (ix_search(m, key, &e)) {
		c->revoked = true;
		c->reason = e[IX_HASH_LEN] == IX_REASON_NONE ? -1 :
		    e[IX_HASH_LEN];
		c->revoked_at = (long long)get_u64(e + IX_HASH_LEN + 1);
	}
}

static int
index_candidates(struct ps_crl_view *v, X509 *cert, X509 *issuer,
    const unsigned char key[IX_HASH_LEN], struct cand *best)
{
	char signer[PS_FP_HEX_LEN + 1], *path = NULL;
	struct ix_map m;
	struct cand c;
	unsigned long h;
	int ok = 0, n, r = PS_OK;

	if (!v->have_manifest)
		return PS_OK;
	h = X509_NAME_hash_ex(X509_get_issuer_name(cert), NULL, NULL, &ok);
	if (!ok || signer_fp(issuer, signer) != PS_OK) {
		ERR_clear_error();
		ps_log_err(&v->log, "crl: cannot hash the issuer");
		return PS_ERR_CRYPTO;
	}
	for (n = 0; n < IX_MAX_PER_HASH; n++) {
		free(path);
		path = ps_strdup_printf("%s/%s/%08lx.%d", v->dir,
		    PS_CRL_INDEX_DIR, h & 0xffffffffUL, n);
		if (path == NULL) {
			r = PS_ERR_NOMEM;
			break;
		}
		r = ix_map_open(&v->log, path, &m);
		if (r == PS_ERR_NOT_FOUND) {
			r = PS_OK;
			break;
		}
		if (r != PS_OK)
			break;
		if (ix_matches(&m, cert, signer) && ix_current(v, &m)) {
			ix_answer(&m, key, &c);
			cand_offer(best, &c);
		}
		ix_unmap(&m);
	}
	free(path);
	return r;
}

/* ------------------------------------------------------------ direct reads */

/* Read and parse every changed file once per view. */
static int
view_parse_changed(struct ps_crl_view *v)
{
	struct ps_file_rules rules;
	struct mf_entry *e;
	unsigned char *data;
	const char *why;
	char *path;
	size_t i, len;
	int r;

	if (v->parsed_done)
		return v->parse_status;
	if (v->nchanged > 0 &&
	    (v->parsed = calloc(v->nchanged, sizeof(*v->parsed))) == NULL)
		return PS_ERR_NOMEM;
	ps_file_rules_trusted(&rules, PS_CRL_FILE_MAX);
	for (i = 0; i < v->nchanged; i++) {
		if ((path = ps_strdup_printf("%s/%s", v->dir, v->changed[i])) ==
		    NULL)
			return PS_ERR_NOMEM;
		ps_log_warn(&v->log, "crl_dir: %s is new or changed since the "
		    "last crl-update (or its index is gone): reading it at "
		    "this login; run personalsign-enroll crl-update", path);
		data = NULL;
		why = "unreadable";
		r = ps_read_file(&v->log, path, &rules, &data, &len);
		if (r == PS_OK) {
			v->parsed[i] = crl_parse(data, len, &why);
			if (v->parsed[i] == NULL)
				ps_log_warn(&v->log, "crl_dir: %s: %s", path,
				    why);
		} else if (r == PS_ERR_NOMEM) {
			free(path);
			return r;
		}
		/* a file crl-update found to be a usable CRL that no longer
		 * reads is damaged, not absent: never "no CRL" */
		if (v->parsed[i] == NULL && (e = mf_find(v, v->changed[i])) !=
		    NULL && e->status != MF_INVALID) {
			ps_log_err(&v->log, "crl_dir: %s was a usable CRL at "
			    "the last crl-update and is now %s", path, why);
			v->parse_status = PS_ERR_INVALID;
		}
		free(data);
		free(path);
	}
	v->parsed_done = true;
	return v->parse_status;
}

/* What one directly read CRL says, if it is the issuer's at all. */
static int
parsed_candidate(struct ps_crl_view *v, X509_CRL *crl, X509 *cert,
    X509 *issuer, struct cand *c)
{
	X509_REVOKED *rev = NULL;
	enum scope scope;
	const char *why = NULL;
	int r;

	memset(c, 0, sizeof(*c));
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl),
	    X509_get_issuer_name(cert)) != 0)
		return PS_OK;
	if (crl_check_exts(crl, &why) != PS_OK ||
	    crl_scope(crl, &scope, &why) != PS_OK) {
		ps_log_warn(&v->log, "crl_dir %s: a CRL of the issuer is not "
		    "usable: %s", v->dir, why);
		return PS_OK;
	}
	if (!scope_covers(scope, cert))
		return PS_OK;
	if (X509_CRL_verify(crl, X509_get0_pubkey(issuer)) != 1) {
		ERR_clear_error();
		ps_log_debug(&v->log, "crl_dir %s: a CRL naming the issuer is "
		    "not signed by its key", v->dir);
		return PS_OK;
	}
	if ((r = crl_times(crl, &c->this_update, &c->next_update, &why)) !=
	    PS_OK) {
		ps_log_warn(&v->log, "crl_dir %s: %s", v->dir, why);
		return PS_OK;
	}
	c->found = true;
	c->reason = -1;
	r = X509_CRL_get0_by_serial(crl, &rev,
	    (ASN1_INTEGER *)X509_get0_serialNumber(cert));
	if (r == 1 && rev != NULL) {
		if (entry_check_exts(rev, &why) != PS_OK ||
		    entry_reason(rev, &why, &c->reason) != PS_OK ||
		    asn1_time_ll(X509_REVOKED_get0_revocationDate(rev),
		    &c->revoked_at) != PS_OK) {
			/* listed, but unreadable: revoked all the same */
			c->reason = -1;
			c->revoked_at = c->this_update;
		}
		c->revoked = c->reason != 8;	/* removeFromCRL */
	}
	ERR_clear_error();
	return PS_OK;
}

static int
parsed_candidates(struct ps_crl_view *v, X509 *cert, X509 *issuer,
    struct cand *best)
{
	struct cand c;
	size_t i;
	int r;

	if (v->nchanged == 0)
		return PS_OK;
	if ((r = view_parse_changed(v)) != PS_OK)
		return r;
	for (i = 0; i < v->nchanged; i++) {
		if (v->parsed[i] == NULL)
			continue;
		if ((r = parsed_candidate(v, v->parsed[i], cert, issuer, &c)) !=
		    PS_OK)
			return r;
		if (c.found)
			cand_offer(best, &c);
	}
	return PS_OK;
}

int
ps_crl_lookup(struct ps_crl_view *v, X509 *cert, X509 *issuer,
    struct ps_crl_answer *ans)
{
	unsigned char key[IX_HASH_LEN];
	struct cand best;
	int r;

	if (ans == NULL)
		return PS_ERR_INTERNAL;
	memset(ans, 0, sizeof(*ans));
	ans->reason = -1;
	if (v == NULL || cert == NULL || issuer == NULL)
		return PS_ERR_INTERNAL;
	memset(&best, 0, sizeof(best));
	if ((r = cert_serial_key(cert, key)) != PS_OK) {
		ps_log_err(&v->log, "crl: cannot read the certificate's serial "
		    "number");
		return r;
	}
	if ((r = index_candidates(v, cert, issuer, key, &best)) != PS_OK ||
	    (r = parsed_candidates(v, cert, issuer, &best)) != PS_OK) {
		if (r == PS_ERR_NOMEM)
			ps_log_err(&v->log, "crl: out of memory");
		return r;
	}
	ans->found = best.found;
	ans->revoked = best.revoked;
	ans->revoked_at = best.revoked_at;
	ans->reason = best.reason;
	ans->this_update = best.this_update;
	ans->next_update = best.next_update;
	ans->indexed = best.indexed;
	return PS_OK;
}

/* ------------------------------------------------------------ update */

/* One CRL file as crl-update sees it. */
struct crl_item {
	char name[CRL_NAME_MAX + 1];
	unsigned char sha[32];
	struct fsig sig;
	enum mf_status status;
	char index[IX_FILE_NAME_LEN];
	/* usable CRLs only */
	X509_NAME *issuer;
	unsigned char *issuer_der;
	int issuer_len;
	unsigned long name_hash;
	char signer[PS_FP_HEX_LEN + 1];
	enum scope scope;
	long long this_update;
	long long next_update;
	unsigned char *entries;		/* sorted, IX_ENTRY_SIZE each */
	size_t count;
};

struct update {
	const struct ps_log *log;
	const char *dir;
	char *ixdir;
	X509_STORE *store;
	STACK_OF(X509) *anchors;
	struct crl_item *items;
	size_t nitems;
	struct ps_crl_update_report *rep;
	bool any_invalid;
};

static void
item_clear(struct crl_item *it)
{
	X509_NAME_free(it->issuer);
	OPENSSL_free(it->issuer_der);
	free(it->entries);
	it->issuer = NULL;
	it->issuer_der = NULL;
	it->entries = NULL;
}

static int
entry_cmp(const void *a, const void *b)
{
	return memcmp(a, b, IX_HASH_LEN);
}

/* Sort the entries and drop repeated serials (keeping the earliest). */
static void
entries_sort(struct crl_item *it)
{
	size_t i, out = 0;

	if (it->count > 1)
		qsort(it->entries, it->count, IX_ENTRY_SIZE, entry_cmp);
	for (i = 0; i < it->count; i++) {
		unsigned char *e = it->entries + i * IX_ENTRY_SIZE;

		if (out > 0) {
			unsigned char *prev = it->entries +
			    (out - 1) * IX_ENTRY_SIZE;

			if (memcmp(prev, e, IX_HASH_LEN) == 0) {
				if (get_u64(e + IX_HASH_LEN + 1) <
				    get_u64(prev + IX_HASH_LEN + 1))
					memcpy(prev, e, IX_ENTRY_SIZE);
				continue;
			}
		}
		if (out != i)
			memcpy(it->entries + out * IX_ENTRY_SIZE, e,
			    IX_ENTRY_SIZE);
		out++;
	}
	it->count = out;
}

/* The revoked serials of a CRL into it->entries. */
static int
entries_extract(X509_CRL *crl, struct crl_item *it, const char **why)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	BIGNUM *bn = BN_new();
	long long when;
	size_t n = (size_t)(revs != NULL ? sk_X509_REVOKED_num(revs) : 0);
	size_t i;
	int reason, r = PS_ERR_NOMEM;

	it->count = 0;
	if (md == NULL || bn == NULL ||
	    (n > 0 && (it->entries = calloc(n, IX_ENTRY_SIZE)) == NULL))
		goto out;
	for (i = 0; i < n; i++) {
		const X509_REVOKED *rev = sk_X509_REVOKED_value(revs, (int)i);
		unsigned char *e = it->entries + it->count * IX_ENTRY_SIZE;

		if ((r = entry_check_exts(rev, why)) != PS_OK ||
		    (r = entry_reason(rev, why, &reason)) != PS_OK)
			goto out;
		if (asn1_time_ll(X509_REVOKED_get0_revocationDate(rev),
		    &when) != PS_OK) {
			*why = "unreadable revocationDate";
			r = PS_ERR_INVALID;
			goto out;
		}
		if (reason == 8)	/* removeFromCRL: not revoked */
			continue;
		if (serial_key(X509_REVOKED_get0_serialNumber(rev), bn, md,
		    e) != PS_OK) {
			*why = "unreadable or oversized serial number";
			r = PS_ERR_INVALID;
			goto out;
		}
		e[IX_HASH_LEN] = reason < 0 ? IX_REASON_NONE :
		    (unsigned char)reason;
		put_u64(e + IX_HASH_LEN + 1, (uint64_t)when);
		it->count++;
	}
	entries_sort(it);
	r = PS_OK;
 out:
	EVP_MD_CTX_free(md);
	BN_free(bn);
	ERR_clear_error();
	return r;
}

/* The trust store certificate whose key signed the CRL. */
static int
find_signer(struct update *u, X509_CRL *crl, char signer[PS_FP_HEX_LEN + 1],
    const char **why)
{
	const X509_NAME *issuer = X509_CRL_get_issuer(crl);
	bool named = false;
	int i;

	for (i = 0; i < sk_X509_num(u->anchors); i++) {
		X509 *ca = sk_X509_value(u->anchors, i);
		uint32_t ku = X509_get_key_usage(ca);

		if (X509_NAME_cmp(X509_get_subject_name(ca), issuer) != 0)
			continue;
		named = true;
		if (ku != UINT32_MAX && !(ku & KU_CRL_SIGN))
			continue;
		if (X509_CRL_verify(crl, X509_get0_pubkey(ca)) != 1)
			continue;
		ERR_clear_error();
		return signer_fp(ca, signer);
	}
	ERR_clear_error();
	*why = named ? "signature does not verify with the issuer's key "
	    "(or the issuer may not sign CRLs)" :
	    "issuer is not among the trust anchors (ca_file, ca_dir)";
	return PS_ERR_INVALID;
}

/* Everything about a parsed CRL that the index needs. */
static int
item_from_crl(struct update *u, X509_CRL *crl, struct crl_item *it,
    const char **why)
{
	int ok = 0, r;

	if ((r = crl_check_exts(crl, why)) != PS_OK ||
	    (r = crl_scope(crl, &it->scope, why)) != PS_OK ||
	    (r = crl_times(crl, &it->this_update, &it->next_update, why)) !=
	    PS_OK ||
	    (r = find_signer(u, crl, it->signer, why)) != PS_OK)
		return r;
	if ((it->issuer = X509_NAME_dup(X509_CRL_get_issuer(crl))) == NULL)
		return PS_ERR_NOMEM;
	it->issuer_len = i2d_X509_NAME(it->issuer, &it->issuer_der);
	if (it->issuer_len <= 0 || it->issuer_len > IX_NAME_MAX) {
		*why = "issuer name too long";
		return PS_ERR_INVALID;
	}
	it->name_hash = X509_NAME_hash_ex(it->issuer, NULL, NULL, &ok) &
	    0xffffffffUL;
	if (!ok) {
		*why = "cannot hash the issuer name";
		return PS_ERR_CRYPTO;
	}
	return entries_extract(crl, it, why);
}

/* Read, hash and judge one file. Only PS_ERR_NOMEM/IO stop the update. */
static int
item_load(struct update *u, int dfd, const char *name, struct crl_item *it)
{
	struct ps_file_rules rules;
	unsigned char *data = NULL;
	const char *why = "unreadable";
	char *path = NULL;
	struct stat st;
	X509_CRL *crl = NULL;
	size_t len = 0;
	int r;

	memset(it, 0, sizeof(*it));
	snprintf(it->name, sizeof(it->name), "%s", name);
	snprintf(it->index, sizeof(it->index), "-");
	it->status = MF_INVALID;
	if ((path = ps_strdup_printf("%s/%s", u->dir, name)) == NULL)
		return PS_ERR_NOMEM;
	ps_file_rules_trusted(&rules, PS_CRL_FILE_MAX);
	/* the signature recorded is the one of what we read */
	if (fstatat(dfd, name, &st, 0) != 0) {
		ps_log_err(u->log, "%s: cannot stat: %s", path,
		    strerror(errno));
		r = PS_ERR_IO;
		goto out;
	}
	fsig_of(&st, &it->sig);
	r = ps_read_file(u->log, path, &rules, &data, &len);
	if (r == PS_ERR_NOMEM)
		goto out;
	if (r == PS_OK)
		r = sha256(data, len, it->sha);
	if (r == PS_OK && (crl = crl_parse(data, len, &why)) == NULL)
		r = PS_ERR_INVALID;
	if (r == PS_OK)
		r = item_from_crl(u, crl, it, &why);
	if (r == PS_ERR_NOMEM)
		goto out;
	if (r != PS_OK) {
		ps_log_err(u->log, "%s: not usable: %s", path, why);
		item_clear(it);
		u->any_invalid = true;
		u->rep->invalid++;
		r = PS_OK;
		goto out;
	}
	it->status = MF_OLDER;	/* until chosen as its issuer's newest */
 out:
	X509_CRL_free(crl);
	free(data);
	free(path);
	return r;
}

static int
update_scan(struct update *u)
{
	struct crl_item *ni;
	struct dirent *de;
	DIR *d;
	int r = PS_OK;

	if ((d = opendir(u->dir)) == NULL) {
		ps_log_err(u->log, "crl_dir %s: cannot open: %s", u->dir,
		    strerror(errno));
		return PS_ERR_IO;
	}
	for (;;) {
		struct stat st;

		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (!crl_name_ok(de->d_name)) {
			ps_log_err(u->log, "crl_dir %s: a file name with "
			    "characters other than A-Z a-z 0-9 . _ - + @ = , "
			    "is ignored: rename it", u->dir);
			u->any_invalid = true;
			u->rep->invalid++;
			continue;
		}
		ni = reallocarray(u->items, u->nitems + 1, sizeof(*ni));
		if (ni == NULL) {
			r = PS_ERR_NOMEM;
			break;
		}
		u->items = ni;
		u->rep->files++;
		r = item_load(u, dirfd(d), de->d_name, &u->items[u->nitems]);
		u->nitems++;
		if (r != PS_OK)
			break;
	}
	if (r == PS_OK && errno != 0) {
		ps_log_err(u->log, "crl_dir %s: cannot read: %s", u->dir,
		    strerror(errno));
		r = PS_ERR_IO;
	}
	closedir(d);
	return r;
}

static bool
same_group(const struct crl_item *a, const struct crl_item *b)
{
	return a->name_hash == b->name_hash && a->scope == b->scope &&
	    strcmp(a->signer, b->signer) == 0 &&
	    X509_NAME_cmp(a->issuer, b->issuer) == 0;
}

/* a is a better index for its group than b. */
static bool
newer(const struct crl_item *a, const struct crl_item *b)
{
	if (a->this_update != b->this_update)
		return a->this_update > b->this_update;
	return strcmp(a->name, b->name) < 0;
}

static int
item_order(const void *pa, const void *pb)
{
	const struct crl_item *a = pa, *b = pb;
	int c;

	if (a->status != b->status)
		return a->status == MF_INDEXED ? -1 : 1;
	if (a->name_hash != b->name_hash)
		return a->name_hash < b->name_hash ? -1 : 1;
	if ((c = strcmp(a->signer, b->signer)) != 0)
		return c;
	if (a->scope != b->scope)
		return a->scope < b->scope ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Pick each group's newest CRL and give it an index file name. */
static void
update_choose(struct update *u)
{
	size_t i, j;
	unsigned n;

	for (i = 0; i < u->nitems; i++) {
		struct crl_item *it = &u->items[i];
		bool best = it->status == MF_OLDER;

		for (j = 0; best && j < u->nitems; j++) {
			struct crl_item *o = &u->items[j];

			if (j != i && o->status != MF_INVALID &&
			    same_group(it, o) && newer(o, it))
				best = false;
		}
		if (best)
			it->status = MF_INDEXED;
	}
	if (u->nitems > 1)
		qsort(u->items, u->nitems, sizeof(*u->items), item_order);
	for (i = 0, n = 0; i < u->nitems; i++) {
		struct crl_item *it = &u->items[i];

		if (it->status != MF_INDEXED)
			continue;
		n = (i > 0 && u->items[i - 1].status == MF_INDEXED &&
		    u->items[i - 1].name_hash == it->name_hash) ? n + 1 : 0;
		snprintf(it->index, sizeof(it->index), "%08lx.%u",
		    it->name_hash, n);
		u->rep->indexed++;
		u->rep->serials += it->count;
	}
	for (i = 0; i < u->nitems; i++)
		if (u->items[i].status == MF_OLDER)
			u->rep->older++;
}

static int
write_index(struct update *u, const struct crl_item *it)
{
	size_t off = align8(IX_HEADER_SIZE + (size_t)it->issuer_len);
	size_t len = off + it->count * IX_ENTRY_SIZE;
	unsigned char *buf;
	char *path;
	int r;

	if (it->count > (SIZE_MAX - off) / IX_ENTRY_SIZE ||
	    (buf = calloc(1, len)) == NULL)
		return PS_ERR_NOMEM;
	memcpy(buf, IX_MAGIC, 8);
	put_u32(buf + 8, IX_VERSION);
	put_u32(buf + 12, IX_ENTRY_SIZE);
	put_u64(buf + 16, it->count);
	put_u64(buf + 24, (uint64_t)it->this_update);
	put_u64(buf + 32, (uint64_t)it->next_update);
	put_u64(buf + 40, (uint64_t)time(NULL));
	memcpy(buf + 48, it->sha, 32);
	memcpy(buf + 80, it->signer, PS_FP_HEX_LEN);
	put_u32(buf + 144, (uint32_t)it->issuer_len);
	put_u32(buf + 148, (uint32_t)off);
	put_u32(buf + 152, (uint32_t)it->scope);
	memcpy(buf + IX_HEADER_SIZE, it->issuer_der, (size_t)it->issuer_len);
	if (it->count > 0)
		memcpy(buf + off, it->entries, it->count * IX_ENTRY_SIZE);
	if ((path = ps_strdup_printf("%s/%s", u->ixdir, it->index)) == NULL) {
		free(buf);
		return PS_ERR_NOMEM;
	}
	r = ps_write_file_atomic(u->log, path, buf, len, 0644);
	free(path);
	free(buf);
	return r;
}

static int
item_name_cmp(const void *a, const void *b)
{
	return strcmp((*(struct crl_item *const *)a)->name,
	    (*(struct crl_item *const *)b)->name);
}

/* The manifest text: every file looked at, sorted by name. */
static int
format_manifest(struct update *u, char **text, size_t *len)
{
	struct crl_item **byname = NULL;
	char sha[65], *buf = NULL, *p;
	size_t i, cap, used;
	int n, r = PS_ERR_NOMEM;

	*text = NULL;
	cap = sizeof(MANIFEST_MAGIC) + 1 + u->nitems * (64 + 8 + 16 + 5 * 21 +
	    CRL_NAME_MAX + 16);
	if ((buf = malloc(cap)) == NULL ||
	    (u->nitems > 0 &&
	    (byname = calloc(u->nitems, sizeof(*byname))) == NULL))
		goto out;
	for (i = 0; i < u->nitems; i++)
		byname[i] = &u->items[i];
	if (u->nitems > 1)
		qsort(byname, u->nitems, sizeof(*byname), item_name_cmp);
	used = (size_t)snprintf(buf, cap, "%s\n", MANIFEST_MAGIC);
	for (i = 0; i < u->nitems; i++) {
		const struct crl_item *it = byname[i];

		ps_hex_encode(it->sha, 32, sha);
		p = buf + used;
		n = snprintf(p, cap - used, "%s %s %s %lld %lld %lld %llu %llu "
		    "%s\n", sha, mf_status_names[it->status], it->index,
		    it->sig.size, it->sig.mtime_ns, it->sig.ctime_ns,
		    it->sig.ino, it->sig.dev, it->name);
		if (n < 0 || (size_t)n >= cap - used) {
			r = PS_ERR_INTERNAL;
			goto out;
		}
		used += (size_t)n;
	}
	*text = buf;
	*len = used;
	buf = NULL;
	r = PS_OK;
 out:
	free(byname);
	free(buf);
	return r;
}

static bool
index_in_use(const struct update *u, const char *name)
{
	size_t i;

	for (i = 0; i < u->nitems; i++)
		if (u->items[i].status == MF_INDEXED &&
		    strcmp(u->items[i].index, name) == 0)
			return true;
	return false;
}

/* Drop index files no longer named by the manifest, and temporary files
 * of interrupted runs (we hold the lock: nobody else is writing). */
static int
update_prune(struct update *u)
{
	struct dirent *de;
	bool removed = false;
	DIR *d;
	int r = PS_OK;

	if ((d = opendir(u->ixdir)) == NULL) {
		ps_log_err(u->log, "%s: cannot open: %s", u->ixdir,
		    strerror(errno));
		return PS_ERR_IO;
	}
	while ((de = readdir(d)) != NULL) {
		bool stale = index_name_ok(de->d_name) &&
		    !index_in_use(u, de->d_name);

		if (!stale && strstr(de->d_name, ".tmp.") == NULL)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) != 0 && errno != ENOENT) {
			ps_log_err(u->log, "%s/%s: cannot remove: %s", u->ixdir,
			    de->d_name, strerror(errno));
			r = PS_ERR_IO;
			continue;
		}
		removed = true;
	}
	closedir(d);
	if (removed && ps_fsync_dir(u->ixdir, true) != PS_OK) {
		ps_log_err(u->log, "%s: cannot sync", u->ixdir);
		r = PS_ERR_IO;
	}
	return r;
}

static int
update_write(struct update *u)
{
	char *text = NULL, *path = NULL;
	size_t i, len = 0;
	int r;

	for (i = 0; i < u->nitems; i++) {
		if (u->items[i].status != MF_INDEXED)
			continue;
		if ((r = write_index(u, &u->items[i])) != PS_OK)
			return r;
	}
	if ((r = format_manifest(u, &text, &len)) != PS_OK)
		return r;
	if ((path = ps_strdup_printf("%s/%s", u->ixdir, MANIFEST_FILE)) ==
	    NULL) {
		free(text);
		return PS_ERR_NOMEM;
	}
	/* last: until it is in place, logins use the previous set */
	r = ps_write_file_atomic(u->log, path, text, len, 0644);
	free(path);
	free(text);
	if (r != PS_OK)
		return r;
	return update_prune(u);
}

/* dir/.index exists, is trusted, and is locked by us. */
static int
update_lock(struct update *u, int *fdp)
{
	char *path;
	int r;

	*fdp = -1;
	if (mkdir(u->ixdir, 0755) != 0 && errno != EEXIST) {
		ps_log_err(u->log, "%s: cannot create: %s", u->ixdir,
		    strerror(errno));
		return PS_ERR_IO;
	}
	if ((r = ps_dir_check(u->log, u->ixdir)) != PS_OK)
		return r;
	if ((path = ps_strdup_printf("%s/%s", u->ixdir, LOCK_FILE)) == NULL)
		return PS_ERR_NOMEM;
	r = ps_lock_file(u->log, path, fdp);
	free(path);
	return r;
}

static void
update_free(struct update *u)
{
	size_t i;

	for (i = 0; i < u->nitems; i++)
		item_clear(&u->items[i]);
	free(u->items);
	free(u->ixdir);
	sk_X509_pop_free(u->anchors, X509_free);
}

int
ps_crl_update(const struct ps_log *log, const char *dir, X509_STORE *store,
    struct ps_crl_update_report *report)
{
	struct ps_crl_update_report dummy;
	struct update u;
	int lock = -1, r;

	if (report == NULL)
		report = &dummy;
	memset(report, 0, sizeof(*report));
	memset(&u, 0, sizeof(u));
	if (dir == NULL || store == NULL)
		return PS_ERR_INTERNAL;
	u.log = log;
	u.dir = dir;
	u.store = store;
	u.rep = report;
	if (!ps_path_trusted(log, dir)) {
		r = PS_ERR_UNSAFE;
		goto out;
	}
	if ((u.ixdir = ps_strdup_printf("%s/%s", dir, PS_CRL_INDEX_DIR)) ==
	    NULL || (u.anchors = X509_STORE_get1_all_certs(store)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if ((r = update_lock(&u, &lock)) != PS_OK ||
	    (r = update_scan(&u)) != PS_OK)
		goto out;
	update_choose(&u);
	if ((r = update_write(&u)) != PS_OK)
		goto out;
	r = u.any_invalid ? PS_ERR_INVALID : PS_OK;
 out:
	if (r == PS_ERR_NOMEM)
		ps_log_err(log, "crl-update: out of memory");
	if (lock >= 0)
		close(lock);
	update_free(&u);
	ERR_clear_error();
	return r;
}
