/*
 * fuzz_core_parsers.c - libFuzzer target for the parsers that read what
 * admins and users hand in: certificate files in every format (PEM, DER,
 * PKCS#7, PKCS#12), challenge texts, and configuration text. The first
 * input byte picks the parser; the rest is its input.
 *
 * A challenge that parses must encode back to exactly the same bytes
 * (there is one spelling of each challenge); anything else aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509.h>

#include "cert.h"
#include "challenge.h"
#include "config.h"
#include "ps_status.h"

static const struct ps_log quiet = { NULL, NULL, 0 };

static void
fuzz_cert(const uint8_t *data, size_t len)
{
	STACK_OF(X509) *certs = NULL;
	char fp[PS_FP_HEX_LEN + 1];
	struct ps_identity id;
	time_t nb, na;

	if (ps_cert_load_mem(&quiet, data, len, "pw", &certs) != PS_OK)
		return;
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);

		memset(&id, 0, sizeof(id));
		(void)ps_cert_fingerprint(x, fp);
		if (ps_cert_identity(x, &id) == PS_OK)
			ps_identity_clear(&id);
		(void)ps_cert_validity(x, &nb, &na);
		(void)ps_cert_key_supported(&quiet, x);
	}
	sk_X509_pop_free(certs, X509_free);
}

static void
fuzz_challenge(const uint8_t *data, size_t len)
{
	struct ps_challenge c;
	char *text = NULL;
	size_t tlen = 0;

	memset(&c, 0, sizeof(c));
	if (ps_challenge_parse((const char *)data, len, &c) != PS_OK)
		return;
	if (ps_challenge_encode(&c, &text, &tlen) != PS_OK ||
	    tlen != len || memcmp(text, data, len) != 0)
		abort();
	free(text);
	ps_challenge_clear(&c);
}

static void
fuzz_config(const uint8_t *data, size_t len)
{
	struct ps_config cfg;
	char *text;

	if (ps_config_init(&cfg) != PS_OK)
		return;
	if ((text = malloc(len + 1)) != NULL) {
		memcpy(text, data, len);
		(void)ps_config_parse_text(&cfg, text, len, "fuzz", &quiet);
		free(text);
	}
	ps_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_cert(data + 1, len - 1);
		break;
	case 1:
		fuzz_challenge(data + 1, len - 1);
		break;
	default:
		fuzz_config(data + 1, len - 1);
		break;
	}
	return 0;
}
