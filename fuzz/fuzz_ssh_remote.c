/*
 * fuzz_ssh_remote.c - libFuzzer target for every parser of text that
 * reaches the SSH paths from outside: the pasted response line, the
 * challenge line personalsign-respond reads, SSH public key blobs and
 * "TYPE BASE64" text, and SSH_AUTH_INFO_0.
 *
 * The first input byte picks the parser, the rest is its input. Whatever
 * parses must also survive the next step (a parsed key is compared with
 * a real one, a parsed challenge is re-encoded and must round-trip).
 *
 * Built and run by fuzz/run.sh (with every core source).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "challenge.h"
#include "ps_status.h"
#include "registry.h"
#include "remote.h"
#include "sshkey.h"

static EVP_PKEY *reference;

static void
fuzz_response(const char *s, size_t n)
{
	struct ps_response r;

	(void)ps_response_line_parse(s, n, &r);
}

static void
fuzz_challenge(const char *s, size_t n)
{
	struct ps_challenge c;
	char *line = NULL;

	if (ps_challenge_line_parse(s, n, &c, NULL) != PS_OK)
		return;
	/* what parses must re-encode to a line that parses the same */
	if (ps_challenge_line_encode(&c, &line) != PS_OK)
		abort();
	free(line);
	ps_challenge_clear(&c);
}

static void
fuzz_blob(const unsigned char *p, size_t n)
{
	EVP_PKEY *k = NULL;
	unsigned char *blob = NULL;
	size_t len = 0;

	if (ps_sshkey_from_blob(p, n, &k) != PS_OK)
		return;
	(void)EVP_PKEY_eq(k, reference);
	/* a parsed key encodes back to exactly the bytes it came from */
	if (ps_sshkey_to_blob(k, &blob, &len) != PS_OK || len != n ||
	    memcmp(blob, p, n) != 0)
		abort();
	free(blob);
	EVP_PKEY_free(k);
}

static void
fuzz_text(const char *s, size_t n)
{
	const char *sp = memchr(s, ' ', n);
	EVP_PKEY *k = NULL;

	if (sp == NULL)
		return;
	if (ps_sshkey_from_text(s, (size_t)(sp - s), sp + 1,
	    n - (size_t)(sp - s) - 1, &k) == PS_OK)
		EVP_PKEY_free(k);
}

static void
fuzz_auth_info(const char *s, size_t n)
{
	struct ps_reg_list list = { NULL, 0 };
	size_t entry;

	(void)ps_sshauth_match(NULL, s, n, &list, 0, &entry);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	if (reference == NULL)
		reference = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	/* text parsers get a copy without the selector and no NUL after it,
	 * so reads past the end are caught */
	if ((s = malloc(size - 1 + (size == 1))) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	switch (data[0] % 5) {
	case 0: fuzz_response(s, size - 1); break;
	case 1: fuzz_challenge(s, size - 1); break;
	case 2: fuzz_blob((unsigned char *)s, size - 1); break;
	case 3: fuzz_text(s, size - 1); break;
	case 4: fuzz_auth_info(s, size - 1); break;
	}
	free(s);
	return 0;
}
