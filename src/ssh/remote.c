/*
 * remote.c - remote challenge mode (remote.h): the challenge and response
 * lines, and the login flow that shows one and checks the other.
 *
 * The server makes the challenge inside the same PAM transaction that
 * reads the answer, so a response is bound to this login by construction;
 * the checks below exist to say precisely why a pasted line is refused
 * (garbled, for another challenge, expired, unknown key, bad signature,
 * used before), and to keep a challenge from ever being accepted twice.
 * Cheap checks run first; the replay cache is written only for a response
 * whose signature verified, so strangers cannot fill it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cert.h"
#include "ps_status.h"
#include "remote.h"
#include "replay.h"
#include "util.h"
#include "wire.h"

#define HOST_NAME_MAX_LEN	256
/* the largest challenge line: prefix + base64url of the longest text */
#define CHALLENGE_LINE_MAX	(sizeof(PS_CHALLENGE_LINE_PREFIX) + \
	(PS_CHALLENGE_TEXT_MAX / 3 + 1) * 4)
#define PAYLOAD_MAX		(1 + 3 * 4 + 2 * PS_RESPONSE_HASH_LEN + \
	PS_RESPONSE_SIG_MAX)

/* ------------------------------------------------------------ helpers */

/* Drop ASCII whitespace around a pasted line (terminals add CR/LF). */
static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)(*s)[0])) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* After the prefix, the base64url body; PS_ERR_INVALID without it. */
static int
strip_prefix(const char *line, size_t len, const char *prefix,
    const char **body, size_t *blen)
{
	size_t plen = strlen(prefix);

	if (line == NULL)
		return PS_ERR_INVALID;
	trim(&line, &len);
	if (len <= plen || memcmp(line, prefix, plen) != 0)
		return PS_ERR_INVALID;
	*body = line + plen;
	*blen = len - plen;
	return PS_OK;
}

static int
sha256(const void *data, size_t len, unsigned char *out)
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != PS_RESPONSE_HASH_LEN)
		return PS_ERR_CRYPTO;
	return PS_OK;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* A registry fingerprint (lower-case hex) back into bytes. */
static int
fingerprint_bytes(const char *hex, unsigned char *out)
{
	size_t i;
	int hi, lo;

	if (!ps_hex_valid(hex, PS_FP_HEX_LEN))
		return PS_ERR_INVALID;
	for (i = 0; i < PS_FP_HEX_LEN / 2; i++) {
		if ((hi = hex_value(hex[2 * i])) < 0 ||
		    (lo = hex_value(hex[2 * i + 1])) < 0)
			return PS_ERR_INVALID;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return PS_OK;
}

/* ------------------------------------------------------------ challenge line */

int
ps_challenge_hash(const struct ps_challenge *c, unsigned char *hash)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	if ((r = ps_challenge_encode(c, &text, &len)) != PS_OK)
		return r;
	r = sha256(text, len, hash);
	free(text);
	return r;
}

int
ps_challenge_line_encode(const struct ps_challenge *c, char **line)
{
	char *text = NULL, *b64 = NULL;
	size_t len = 0;
	int r;

	*line = NULL;
	if ((r = ps_challenge_encode(c, &text, &len)) != PS_OK)
		return r;
	if ((r = ps_b64_encode((unsigned char *)text, len, true, &b64)) != PS_OK)
		goto out;
	if ((*line = ps_strdup_printf("%s%s", PS_CHALLENGE_LINE_PREFIX,
	    b64)) == NULL)
		r = PS_ERR_NOMEM;
 out:
	free(b64);
	free(text);
	return r;
}

int
ps_challenge_line_parse(const char *line, size_t len, struct ps_challenge *c,
    unsigned char *hash)
{
	unsigned char *text = NULL;
	const char *body;
	size_t blen, tlen = 0;
	int r;

	memset(c, 0, sizeof(*c));
	if (line == NULL || len > CHALLENGE_LINE_MAX)
		return PS_ERR_INVALID;
	if ((r = strip_prefix(line, len, PS_CHALLENGE_LINE_PREFIX, &body,
	    &blen)) != PS_OK)
		return r;
	if ((r = ps_b64_decode(body, blen, true, PS_CHALLENGE_TEXT_MAX, &text,
	    &tlen)) != PS_OK)
		return r;
	if ((r = ps_challenge_parse((const char *)text, tlen, c)) != PS_OK)
		goto out;
	if (hash != NULL && (r = sha256(text, tlen, hash)) != PS_OK)
		ps_challenge_clear(c);
 out:
	free(text);
	return r;
}

/* ------------------------------------------------------------ response line */

int
ps_response_line_encode(const struct ps_challenge *c, EVP_PKEY *pub,
    const unsigned char *sig, size_t sig_len, char **line)
{
	unsigned char chash[PS_RESPONSE_HASH_LEN], khash[PS_RESPONSE_HASH_LEN];
	char fp[PS_FP_HEX_LEN + 1], *b64 = NULL;
	struct ps_wr w;
	int r;

	*line = NULL;
	if (sig == NULL || sig_len == 0 || sig_len > PS_RESPONSE_SIG_MAX)
		return PS_ERR_INVALID;
	if ((r = ps_challenge_hash(c, chash)) != PS_OK ||
	    (r = ps_pkey_fingerprint(pub, fp)) != PS_OK ||
	    (r = fingerprint_bytes(fp, khash)) != PS_OK)
		return r;
	ps_wr_init(&w, PAYLOAD_MAX);
	ps_wr_u8(&w, PS_RESPONSE_VERSION);
	ps_wr_string(&w, chash, sizeof(chash));
	ps_wr_string(&w, khash, sizeof(khash));
	ps_wr_string(&w, sig, sig_len);
	if ((r = w.err) != PS_OK)
		goto out;
	if ((r = ps_b64_encode(w.buf, w.len, true, &b64)) != PS_OK)
		goto out;
	if ((*line = ps_strdup_printf("%s%s", PS_RESPONSE_LINE_PREFIX,
	    b64)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if (strlen(*line) > PS_RESPONSE_LINE_MAX) {
		free(*line);
		*line = NULL;
		r = PS_ERR_INVALID;
	}
 out:
	free(b64);
	ps_wr_free(&w);
	return r;
}

/* A string field that must be exactly `want` bytes long. */
static int
rd_fixed(struct ps_rd *rd, unsigned char *out, size_t want)
{
	const unsigned char *s;
	size_t len;

	if (ps_rd_string(rd, want, &s, &len) != PS_OK || len != want)
		return PS_ERR_INVALID;
	memcpy(out, s, want);
	return PS_OK;
}

static int
parse_payload(const unsigned char *p, size_t len, struct ps_response *resp)
{
	const unsigned char *sig;
	struct ps_rd rd;
	uint8_t version;

	ps_rd_init(&rd, p, len);
	if (ps_rd_u8(&rd, &version) != PS_OK ||
	    version != PS_RESPONSE_VERSION ||
	    rd_fixed(&rd, resp->challenge_hash, PS_RESPONSE_HASH_LEN) != PS_OK ||
	    rd_fixed(&rd, resp->key_hash, PS_RESPONSE_HASH_LEN) != PS_OK ||
	    ps_rd_string(&rd, PS_RESPONSE_SIG_MAX, &sig, &resp->sig_len) !=
	    PS_OK || resp->sig_len == 0 || ps_rd_done(&rd) != PS_OK)
		return PS_ERR_INVALID;
	memcpy(resp->sig, sig, resp->sig_len);
	return PS_OK;
}

int
ps_response_line_parse(const char *line, size_t len, struct ps_response *resp)
{
	unsigned char *payload = NULL;
	const char *body;
	size_t blen, plen = 0;
	int r;

	memset(resp, 0, sizeof(*resp));
	if (line == NULL || len > PS_RESPONSE_LINE_MAX + 64)
		return PS_ERR_INVALID;
	if ((r = strip_prefix(line, len, PS_RESPONSE_LINE_PREFIX, &body,
	    &blen)) != PS_OK)
		return r;
	if ((r = ps_b64_decode(body, blen, true, PAYLOAD_MAX, &payload,
	    &plen)) != PS_OK)
		return r;
	r = parse_payload(payload, plen, resp);
	if (r != PS_OK)
		memset(resp, 0, sizeof(*resp));
	free(payload);
	return r;
}

/* ------------------------------------------------------------ verifying */

static int
find_entry(const struct ps_reg_list *list, size_t usable,
    const unsigned char *key_hash, size_t *entry)
{
	char fp[PS_FP_HEX_LEN + 1];
	size_t i;

	ps_hex_encode(key_hash, PS_RESPONSE_HASH_LEN, fp);
	for (i = 0; i < usable && i < list->count; i++) {
		if (strcmp(list->entries[i].fingerprint, fp) == 0) {
			*entry = i;
			return PS_OK;
		}
	}
	return PS_ERR_NOT_FOUND;
}

static int
refuse(int status, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
refuse(int status, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return status;
}

/* The signature, checked with the REGISTERED key of the named entry. */
static int
check_signature(const struct ps_log *log, const struct ps_reg_list *list,
    size_t usable, const struct ps_challenge *issued,
    const struct ps_response *resp, size_t *entry)
{
	EVP_PKEY *pub;

	if (find_entry(list, usable, resp->key_hash, entry) != PS_OK)
		return PS_ERR_NOT_FOUND;
	if ((pub = X509_get0_pubkey(list->entries[*entry].cert)) == NULL)
		return PS_ERR_AUTH;
	return ps_challenge_verify(log, issued, pub, resp->sig, resp->sig_len);
}

int
ps_remote_check(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_reg_list *list, size_t usable,
    const struct ps_challenge *issued, const char *answer, time_t now,
    size_t *entry, char *why, size_t whylen)
{
	unsigned char chash[PS_RESPONSE_HASH_LEN];
	struct ps_response resp;
	int r;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (answer == NULL || ps_response_line_parse(answer, strlen(answer),
	    &resp) != PS_OK)
		return refuse(PS_ERR_AUTH, why, whylen, "PersonalSign: "
		    "that is not a complete response line (it starts with "
		    "%s).", PS_RESPONSE_LINE_PREFIX);
	if (ps_challenge_hash(issued, chash) != PS_OK) {
		r = refuse(PS_ERR_INTERNAL, why, whylen, "PersonalSign: "
		    "internal error; please tell your administrator.");
		goto out;
	}
	if (CRYPTO_memcmp(chash, resp.challenge_hash, sizeof(chash)) != 0) {
		r = refuse(PS_ERR_AUTH, why, whylen, "PersonalSign: that "
		    "response answers a different challenge (an earlier login, "
		    "another host or another user).");
		goto out;
	}
	if ((long long)now > issued->expires) {
		r = refuse(PS_ERR_AUTH, why, whylen, "PersonalSign: the "
		    "challenge expired %lld s ago; log in again for a new one.",
		    (long long)now - issued->expires);
		goto out;
	}
	r = check_signature(log, list, usable, issued, &resp, entry);
	if (r == PS_ERR_NOT_FOUND) {
		r = refuse(PS_ERR_AUTH, why, whylen, "PersonalSign: the key "
		    "that signed is not a valid registered key of %s.",
		    issued->user);
		goto out;
	}
	if (r != PS_OK) {
		r = refuse(PS_ERR_AUTH, why, whylen, "PersonalSign: the "
		    "signature does not verify with your registered key.");
		goto out;
	}
	r = ps_replay_mark(cfg, log, issued->nonce, sizeof(issued->nonce),
	    issued->expires, now);
	if (r == PS_ERR_EXISTS)
		r = refuse(PS_ERR_AUTH, why, whylen, "PersonalSign: this "
		    "response has already been used.");
	else if (r != PS_OK)
		r = refuse(r, why, whylen, "PersonalSign: the server cannot "
		    "record this login; please tell your administrator.");
 out:
	ps_wipe(&resp, sizeof(resp));
	return r;
}

/* ------------------------------------------------------------ the flow */

static void
local_host_name(char *host, size_t len)
{
	if (gethostname(host, len - 1) != 0 || host[0] == '\0')
		snprintf(host, len, "localhost");
	host[len - 1] = '\0';
}

/*
 * Show the challenge and read the answer. The challenge is part of the
 * prompt itself rather than a separate message, so that it survives
 * PAM_SILENT and applications that drop informational messages.
 */
static int
ask(const struct ps_log *log, const struct ps_conv *conv,
    const struct ps_challenge *chal, unsigned lifetime, char **answer)
{
	char *line = NULL, *prompt = NULL;
	int r;

	*answer = NULL;
	if ((r = ps_challenge_line_encode(chal, &line)) != PS_OK) {
		ps_log_err(log, "cannot encode the challenge: %s",
		    ps_status_str(r));
		return r == PS_ERR_NOMEM ? r : PS_ERR_INTERNAL;
	}
	prompt = ps_strdup_printf("PersonalSign: sign this login with your "
	    "card or keystore (valid for %u s). On your own computer run:\n"
	    "personalsign-respond %s\n%s", lifetime, line,
	    PS_RESPONSE_PROMPT);
	free(line);
	if (prompt == NULL)
		return PS_ERR_NOMEM;
	r = ps_conv_prompt(conv, 1, prompt, answer);
	free(prompt);
	if (r != PS_OK) {
		ps_log_notice(log, "user %s: no response to the challenge "
		    "could be read", chal->user);
		return PS_ERR_CONV;
	}
	return PS_OK;
}

int
ps_remote_authenticate(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const struct ps_auth_request *req,
    struct ps_auth_result *result)
{
	struct ps_reg_list list = { NULL, 0 };
	struct ps_challenge chal;
	char host[HOST_NAME_MAX_LEN + 1], why[256];
	char *answer = NULL;
	const char *rhost = req->rhost != NULL ? req->rhost : "";
	size_t usable = 0, entry = 0;
	time_t now = req->now != 0 ? req->now : time(NULL);
	int r;

	memset(&chal, 0, sizeof(chal));
	memset(result, 0, sizeof(*result));
	r = ps_usable_keys(cfg, log, conv, req->user, now, &list, &usable);
	if (r != PS_OK)
		goto out;
	local_host_name(host, sizeof(host));
	r = ps_challenge_new(&chal, host, req->service ? req->service : "",
	    req->user, rhost, now, (unsigned)cfg->challenge_lifetime);
	if (r != PS_OK) {
		/* a host, service or remote host name we cannot put into a
		 * challenge: the server's problem, not the user's */
		ps_log_err(log, "user %s from %s: cannot make a challenge: %s",
		    req->user, rhost[0] ? rhost : "(local)", ps_status_str(r));
		if (r != PS_ERR_NOMEM)
			r = PS_ERR_INTERNAL;
		goto out;
	}
	if ((r = ask(log, conv, &chal, (unsigned)cfg->challenge_lifetime,
	    &answer)) != PS_OK)
		goto out;
	if (req->now == 0)
		now = time(NULL);	/* the user took their time */
	r = ps_remote_check(cfg, log, &list, usable, &chal, answer, now,
	    &entry, why, sizeof(why));
	if (r != PS_OK) {
		ps_log_notice(log, "user %s from %s: remote response refused: "
		    "%s", req->user, rhost[0] ? rhost : "(local)", why);
		ps_conv_error(conv, "%s", why);
		goto out;
	}
	ps_auth_result_set(result, &list.entries[entry]);
	ps_log_info(log, "user %s from %s authenticated remotely with key "
	    "%.16s", req->user, rhost[0] ? rhost : "(local)",
	    result->fingerprint);
 out:
	ps_free_secret(answer);
	ps_challenge_clear(&chal);
	ps_reg_list_free(&list);
	return r;
}
