/*
 * crl.h - revocation by CRL at a per-login cost that does not grow with
 * the size of the CRLs.
 *
 * The admin (or cron) keeps the CAs' CRLs in crl_dir: PEM or DER, one CRL
 * per file, any name that does not start with '.'. `personalsign-enroll
 * crl-update` verifies every CRL's signature against the trust anchors
 * and writes into crl_dir/.index/:
 *
 *   HHHHHHHH.N   one binary index per issuer (name and signing key): the
 *                CRL's thisUpdate/nextUpdate, its SHA-256, the issuer name
 *                and signer, then fixed-width (24-byte) entries sorted by
 *                a hash of the serial number, each with its revocation
 *                time and reason. HHHHHHHH is OpenSSL's issuer name hash,
 *                N counts collisions (c_rehash style).
 *   MANIFEST     every file crl-update looked at: SHA-256, what it made of
 *                it (indexed / older / invalid), size, times and inode.
 *   lock         serialises crl-update runs.
 *
 * Every file is replaced atomically and the manifest last, so a login
 * sees the old set or the new one. A login reads the manifest, stats the
 * CRL files (O(files)) and binary-searches the issuer's index through a
 * read-only mapping (O(log serials) pages touched).
 *
 * A CRL file that is new or changed since the last crl-update is still
 * honoured: it is parsed and verified at the login itself, with a warning
 * asking for crl-update. That is slow for a big CRL, but a revocation
 * never waits for the index.
 */
#ifndef PS_CRL_H
#define PS_CRL_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/x509.h>

#include "log.h"

#define PS_CRL_INDEX_DIR	".index"
/* Largest CRL file read (a CA's CRL of a million serials is ~40 MiB). */
#define PS_CRL_FILE_MAX		(256L * 1024 * 1024)
/* nextUpdate of a CRL that has none. */
#define PS_CRL_NO_NEXT_UPDATE	253402300799LL	/* 9999-12-31T23:59:59Z */

/* What the freshest CRL covering a certificate says about it. */
struct ps_crl_answer {
	bool found;		/* a CRL of the certificate's issuer exists */
	bool revoked;
	long long revoked_at;	/* revocationDate */
	int reason;		/* CRLReason code, -1 when the entry has none */
	long long this_update;
	long long next_update;	/* PS_CRL_NO_NEXT_UPDATE when absent */
	bool indexed;		/* from the index, not parsed at this login */
};

/* One login's view of crl_dir: the manifest and what changed since. */
struct ps_crl_view;

/*
 * Read dir's manifest and compare it with the files in dir. Cheap: no CRL
 * is read here. PS_ERR_IO / PS_ERR_UNSAFE / PS_ERR_INVALID (damaged
 * manifest) are logged; a missing .index (crl-update never ran) is not an
 * error, every CRL file is then read at lookup.
 */
int ps_crl_view_open(const struct ps_log *log, const char *dir,
    struct ps_crl_view **out);
void ps_crl_view_free(struct ps_crl_view *view);

/*
 * What the freshest CRL of `cert`'s issuer says about `cert`. `issuer` is
 * the certificate that issued it (from the verified chain): only a CRL
 * signed by its key counts. ans->found is false when there is none. Any
 * error (damaged index, unreadable CRL) is returned and logged; callers
 * must refuse then, whatever their crl= setting.
 */
int ps_crl_lookup(struct ps_crl_view *view, X509 *cert, X509 *issuer,
    struct ps_crl_answer *ans);

struct ps_crl_update_report {
	size_t files;		/* CRL files looked at */
	size_t indexed;		/* CRLs indexed (one per issuer and scope) */
	size_t older;		/* superseded by a newer CRL of their issuer */
	size_t invalid;		/* not usable: see the log */
	size_t serials;		/* revoked serials indexed, all issuers */
};

/*
 * Rebuild dir/.index from the CRL files in dir, verifying each CRL's
 * signature with a certificate of `store` (the trust anchors and
 * intermediates). Invalid files are logged at error level and recorded,
 * and the result is PS_ERR_INVALID after everything else was indexed;
 * PS_OK when every file was usable.
 */
int ps_crl_update(const struct ps_log *log, const char *dir,
    X509_STORE *store, struct ps_crl_update_report *report);

/* "keyCompromise", ... for a CRLReason code; NULL when unknown or -1. */
const char *ps_crl_reason_name(int reason);

#endif /* PS_CRL_H */
