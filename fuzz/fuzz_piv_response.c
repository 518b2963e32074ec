/*
 * fuzz_piv_response.c - libFuzzer target: whatever a card (or a reader
 * pretending to be one) answers must never crash, hang or over-read the
 * PIV code. The first input byte picks a parser; the default feeds the
 * rest as a stream of card responses to the whole token_piv login
 * (open, list, unlock, sign) through a fake pcsc-lite.
 *
 * Build and run: fuzz/run.sh SECONDS
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pcsc.h"
#include "piv.h"
#include "ps_status.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Discard everything, but format it: the format paths are code too. */
static void
sink(void *arg, enum ps_log_level level, const char *msg)
{
	(void)arg;
	(void)level;
	(void)msg;
}

static struct ps_log fuzz_log = { sink, NULL, 1 };

/* ------------------------------------------------------------------ */
/* the card: every SCardTransmit returns the next length-prefixed chunk */

static const uint8_t *card_data;
static size_t card_left;

static bool
next_chunk(const uint8_t **p, size_t *n)
{
	size_t len;

	if (card_left < 2)
		return false;
	len = (size_t)card_data[0] << 8 | card_data[1];
	card_data += 2;
	card_left -= 2;
	if (len > card_left)
		len = card_left;
	*p = card_data;
	*n = len;
	card_data += len;
	card_left -= len;
	return true;
}

static LONG
f_establish(DWORD scope, LPCVOID a, LPCVOID b, LPSCARDCONTEXT ctx)
{
	*ctx = 1;
	return SCARD_S_SUCCESS;
}

static LONG
f_release(SCARDCONTEXT ctx)
{
	return SCARD_S_SUCCESS;
}

static LONG
f_list(SCARDCONTEXT ctx, LPCSTR groups, LPSTR buf, LPDWORD len)
{
	static const char names[] = "Fuzz Reader 00 00\0Fuzz Reader 01 00\0";

	if (buf != NULL) {
		if (*len < sizeof(names))
			return SCARD_E_INSUFFICIENT_BUFFER;
		memcpy(buf, names, sizeof(names));
	}
	*len = sizeof(names);
	return SCARD_S_SUCCESS;
}

static LONG
f_status(SCARDCONTEXT ctx, DWORD timeout, SCARD_READERSTATE *st, DWORD n)
{
	DWORD i;

	if (timeout > 0)
		return SCARD_E_TIMEOUT;
	for (i = 0; i < n; i++)
		st[i].dwEventState = SCARD_STATE_PRESENT;
	return SCARD_S_SUCCESS;
}

static LONG
f_connect(SCARDCONTEXT ctx, LPCSTR reader, DWORD share, DWORD protos,
    LPSCARDHANDLE h, LPDWORD active)
{
	*h = 1;
	*active = SCARD_PROTOCOL_T1;
	return card_left > 0 ? SCARD_S_SUCCESS : SCARD_E_NO_SMARTCARD;
}

static LONG
f_disconnect(SCARDHANDLE h, DWORD how)
{
	return SCARD_S_SUCCESS;
}

static LONG
f_begin(SCARDHANDLE h)
{
	return SCARD_S_SUCCESS;
}

static LONG
f_end(SCARDHANDLE h, DWORD how)
{
	return SCARD_S_SUCCESS;
}

static LONG
f_transmit(SCARDHANDLE h, const SCARD_IO_REQUEST *pci, LPCBYTE cmd,
    DWORD len, SCARD_IO_REQUEST *rpci, LPBYTE out, LPDWORD outlen)
{
	const uint8_t *p;
	size_t n;

	if (!next_chunk(&p, &n))
		return SCARD_W_REMOVED_CARD;
	/* A reader never writes past the buffer; the card may say anything
	 * that fits, including fewer than the two SW bytes. */
	if (n > *outlen)
		n = *outlen;
	memcpy(out, p, n);
	*outlen = (DWORD)n;
	return SCARD_S_SUCCESS;
}

static const struct ps_pcsc_ops fuzz_ops = {
	.establish = f_establish,
	.release = f_release,
	.list_readers = f_list,
	.get_status_change = f_status,
	.connect = f_connect,
	.disconnect = f_disconnect,
	.begin = f_begin,
	.end = f_end,
	.transmit = f_transmit,
};

/* ------------------------------------------------------------------ */
/* targets */

static void
fuzz_tlv(const uint8_t *d, size_t n)
{
	struct ps_tlv t;
	size_t used;
	static const uint32_t tags[] = { 0x53, 0x70, 0x71, 0xFE, 0x7C, 0x82,
	    0x5FC105 };
	size_t i;

	if (ps_tlv_parse(d, n, &t, &used) == PS_OK) {
		if (used > n || t.value < d || t.value + t.len > d + n)
			abort();
	}
	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (ps_tlv_find(d, n, tags[i], &t) == PS_OK &&
		    (t.value < d || t.value + t.len > d + n))
			abort();
}

static void
fuzz_cert(const uint8_t *d, size_t n)
{
	X509 *x = NULL;

	if (ps_piv_cert_from_object(&fuzz_log, d, n, &x) == PS_OK && x == NULL)
		abort();
	X509_free(x);
}

static void
fuzz_inflate(const uint8_t *d, size_t n)
{
	unsigned char *out = NULL;
	size_t outlen = 0;

	if (ps_piv_inflate(&fuzz_log, d, n, PS_PIV_CERT_MAX, &out, &outlen) ==
	    PS_OK && outlen > PS_PIV_CERT_MAX)
		abort();
	free(out);
}

static void
fuzz_signature(const uint8_t *d, size_t n)
{
	static const unsigned char algs[] = { PS_PIV_ALG_RSA2048,
	    PS_PIV_ALG_P256, PS_PIV_ALG_P384, 0x00 };
	static const size_t inlens[] = { 256, 32, 48, 32 };
	const unsigned char *sig;
	unsigned char *out;
	size_t siglen, outlen, i;

	if (ps_piv_parse_auth_response(&fuzz_log, d, n, &sig, &siglen) !=
	    PS_OK) {
		sig = d;
		siglen = n;
	}
	for (i = 0; i < sizeof(algs); i++) {
		out = NULL;
		(void)ps_piv_finish_signature(&fuzz_log, algs[i], inlens[i],
		    sig, siglen, &out, &outlen);
		free(out);
	}
}

static void
fuzz_sw(const uint8_t *d, size_t n)
{
	int tries;
	size_t i;

	for (i = 0; i + 1 < n; i += 2) {
		uint16_t sw = (uint16_t)(d[i] << 8 | d[i + 1]);

		(void)ps_piv_verify_sw(sw, &tries);
		(void)ps_piv_sw_str(sw);
	}
}

static bool
want_any(void *arg, EVP_PKEY *pub)
{
	(void)pub;
	return *(const bool *)arg;
}

/* The whole login against a card that answers `d`. */
static void
fuzz_token(const uint8_t *d, size_t n, uint8_t flags)
{
	struct ps_config cfg;
	struct ps_token_params p;
	struct ps_token *tok = NULL;
	const struct ps_token_key *keys;
	unsigned char digest[48], *sig = NULL;
	size_t nkeys = 0, siglen = 0;
	bool want = flags & 1;

	card_data = d;
	card_left = n;
	if (ps_config_init(&cfg) != PS_OK)
		return;
	cfg.min_pin_retries = flags >> 4 & 3;
	memset(&p, 0, sizeof(p));
	p.cfg = &cfg;
	p.log = &fuzz_log;
	p.user = "fuzz";
	if (flags & 2) {
		p.want_key = want_any;
		p.want_key_arg = &want;
	}
	if (ps_token_open(PS_BACKEND_PIV, &p, &tok) != PS_OK)
		goto out;
	if (tok->ops->list_keys(tok, &keys, &nkeys) != PS_OK || nkeys == 0)
		goto out;
	(void)tok->ops->secret_prompt(tok);
	if (tok->ops->unlock(tok, &keys[nkeys - 1], (flags & 4) ? "12345678" :
	    "123456") != PS_OK)
		goto out;
	memset(digest, 0x5A, sizeof(digest));
	if (EVP_PKEY_get_bits(keys[nkeys - 1].pub) == 384)
		(void)tok->ops->sign(tok, &keys[nkeys - 1], EVP_sha384(),
		    digest, 48, &sig, &siglen);
	else
		(void)tok->ops->sign(tok, &keys[nkeys - 1], EVP_sha256(),
		    digest, 32, &sig, &siglen);
	free(sig);
 out:
	ps_token_close(tok);
	ps_config_free(&cfg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool inited;

	if (!inited) {
		ps_pcsc_set_ops(&fuzz_ops);
		inited = true;
	}
	if (size < 1)
		return 0;
	switch (data[0]) {
	case 0:
		fuzz_tlv(data + 1, size - 1);
		break;
	case 1:
		fuzz_cert(data + 1, size - 1);
		break;
	case 2:
		fuzz_inflate(data + 1, size - 1);
		break;
	case 3:
		fuzz_signature(data + 1, size - 1);
		break;
	case 4:
		fuzz_sw(data + 1, size - 1);
		break;
	default:
		if (size >= 2)
			fuzz_token(data + 2, size - 2, data[1]);
		break;
	}
	return 0;
}
