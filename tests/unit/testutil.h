/*
 * testutil.h - shared helpers for the libcheck unit tests: fixture paths
 * (made by tests/fixtures/mkpki.sh into $PS_FIXTURES), temporary
 * directories, and a log sink that records what the core said so tests
 * can assert on the message.
 */
#ifndef PS_TESTUTIL_H
#define PS_TESTUTIL_H

#include <stdbool.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "log.h"

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

/* A log that keeps every message (joined by '\n') for assertions. */
extern struct ps_log tu_log;
const char *tu_log_text(void);
bool tu_log_contains(const char *needle);
void tu_log_reset(void);

#endif /* PS_TESTUTIL_H */
