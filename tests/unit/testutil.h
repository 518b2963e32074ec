/*
 * testutil.h - shared helpers for the libcheck unit tests: fixture paths
 * (made by tests/fixtures/mkpki.sh into $PS_FIXTURES), temporary
 * directories, a log sink that records what the core said so tests
 * can assert on the message, the suite runner every main() uses, and
 * set-ups that must succeed (configuration, policy, registry).
 */
#ifndef PS_TESTUTIL_H
#define PS_TESTUTIL_H

#include <stdbool.h>
#include <check.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cert.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "registry.h"

/* Full path of a fixture file; the returned string is malloc'd. */
char *tu_fixture(const char *name);
/* Keystore password used by every fixture .pfx / .key.enc.pem. */
const char *tu_password(void);
X509 *tu_load_cert(const char *name);		/* PEM, aborts on failure */
EVP_PKEY *tu_load_key(const char *name);	/* unencrypted PEM */

/* A fresh private directory (mode 0700) under $TMPDIR; malloc'd path. */
char *tu_mkdtemp(void);
/* rm -rf a test directory. */
void tu_rmrf(const char *path);
/* Write a file with contents and mode. */
void tu_write_file(const char *path, const void *data, size_t len, int mode);
/* Copy a fixture file (under 64 KiB) to the path `to`, mode 0644. */
void tu_copy_fixture(const char *name, const char *to);

/* A log that keeps every message (joined by '\n') for assertions. */
extern struct ps_log tu_log;
const char *tu_log_text(void);
bool tu_log_contains(const char *needle);
void tu_log_reset(void);

/* Run every test of s; EXIT_SUCCESS when none failed (for main). */
int tu_run(Suite *s);

/* ps_config_set that must succeed; a failure names key, value, error. */
void tu_cfg_set(struct ps_config *cfg, const char *key, const char *value);
/* Fingerprint of a fixture certificate (PEM). */
void tu_fp_of(const char *crt, char fp[PS_FP_HEX_LEN + 1]);
/* ps_policy_new that must succeed (the log is reset first, shown on
 * failure). */
struct ps_policy *tu_policy_new(const struct ps_config *cfg);
/* ps_registry_file_open of dir that must succeed. */
struct ps_registry *tu_registry_open(const char *dir, bool rw);

#endif /* PS_TESTUTIL_H */
