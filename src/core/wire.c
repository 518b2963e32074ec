/*
 * wire.c - bounds-checked SSH wire format and strict base64 (wire.h).
 *
 * Modelled on the discipline of OpenSSH's sshbuf: a parser only ever asks
 * the cursor for the next field and the cursor says no when the bytes are
 * not there, so no parser does pointer arithmetic of its own.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ps_status.h"
#include "util.h"
#include "wire.h"

/* ------------------------------------------------------------ reading */

void
ps_rd_init(struct ps_rd *rd, const void *data, size_t len)
{
	rd->p = data;
	rd->left = data != NULL ? len : 0;
}

static int
rd_bytes(struct ps_rd *rd, size_t n, const unsigned char **out)
{
	if (n > rd->left)
		return PS_ERR_INVALID;
	*out = rd->p;
	rd->p += n;
	rd->left -= n;
	return PS_OK;
}

int
ps_rd_u8(struct ps_rd *rd, uint8_t *v)
{
	const unsigned char *b;

	if (rd_bytes(rd, 1, &b) != PS_OK)
		return PS_ERR_INVALID;
	*v = b[0];
	return PS_OK;
}

int
ps_rd_u32(struct ps_rd *rd, uint32_t *v)
{
	const unsigned char *b;

	if (rd_bytes(rd, 4, &b) != PS_OK)
		return PS_ERR_INVALID;
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	    (uint32_t)b[2] << 8 | (uint32_t)b[3];
	return PS_OK;
}

int
ps_rd_string(struct ps_rd *rd, size_t max, const unsigned char **s,
    size_t *len)
{
	uint32_t n;

	if (ps_rd_u32(rd, &n) != PS_OK || n > max || n > rd->left)
		return PS_ERR_INVALID;
	*len = n;
	return rd_bytes(rd, n, s);
}

int
ps_rd_string_eq(struct ps_rd *rd, const char *expect)
{
	const unsigned char *s;
	size_t len, want = strlen(expect);

	if (ps_rd_string(rd, want, &s, &len) != PS_OK || len != want ||
	    memcmp(s, expect, len) != 0)
		return PS_ERR_INVALID;
	return PS_OK;
}

int
ps_rd_mpint_positive(struct ps_rd *rd, size_t max,
    const unsigned char **mag, size_t *len)
{
	const unsigned char *s;
	size_t n;

	/* one more byte than the magnitude for the sign byte */
	if (max == SIZE_MAX || ps_rd_string(rd, max + 1, &s, &n) != PS_OK)
		return PS_ERR_INVALID;
	if (n == 0 || (s[0] & 0x80) != 0)
		return PS_ERR_INVALID;		/* zero or negative */
	if (s[0] == 0) {
		/* a leading zero only to clear the sign bit of the next */
		if (n == 1 || (s[1] & 0x80) == 0)
			return PS_ERR_INVALID;
		s++;
		n--;
	}
	if (n > max)
		return PS_ERR_INVALID;
	*mag = s;
	*len = n;
	return PS_OK;
}

int
ps_rd_done(const struct ps_rd *rd)
{
	return rd->left == 0 ? PS_OK : PS_ERR_INVALID;
}

/* ------------------------------------------------------------ writing */

void
ps_wr_init(struct ps_wr *w, size_t max)
{
	memset(w, 0, sizeof(*w));
	w->max = max;
}

static int
wr_reserve(struct ps_wr *w, size_t n)
{
	unsigned char *nb;
	size_t want;

	if (w->err != PS_OK)
		return w->err;
	if (n > w->max || w->len > w->max - n) {
		w->err = PS_ERR_INVALID;
		return w->err;
	}
	if (w->len + n <= w->cap)
		return PS_OK;
	want = w->cap < 64 ? 64 : w->cap;
	while (want < w->len + n)
		want = want > w->max / 2 ? w->max : want * 2;
	/* grow by copying, so the old buffer can be wiped (it may hold a
	 * signature or a key) */
	if ((nb = malloc(want)) == NULL) {
		w->err = PS_ERR_NOMEM;
		return w->err;
	}
	if (w->len > 0)
		memcpy(nb, w->buf, w->len);
	ps_freezero(w->buf, w->cap);
	w->buf = nb;
	w->cap = want;
	return PS_OK;
}

static int
wr_bytes(struct ps_wr *w, const void *p, size_t n)
{
	int r;

	if ((r = wr_reserve(w, n)) != PS_OK)
		return r;
	if (n > 0)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
	return PS_OK;
}

int
ps_wr_u8(struct ps_wr *w, uint8_t v)
{
	return wr_bytes(w, &v, 1);
}

int
ps_wr_u32(struct ps_wr *w, uint32_t v)
{
	unsigned char b[4];

	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
	return wr_bytes(w, b, sizeof(b));
}

int
ps_wr_string(struct ps_wr *w, const void *s, size_t len)
{
	int r;

	if (len > UINT32_MAX) {
		if (w->err == PS_OK)
			w->err = PS_ERR_INVALID;
		return w->err;
	}
	if ((r = ps_wr_u32(w, (uint32_t)len)) != PS_OK)
		return r;
	return wr_bytes(w, s, len);
}

int
ps_wr_cstring(struct ps_wr *w, const char *s)
{
	return ps_wr_string(w, s, strlen(s));
}

int
ps_wr_mpint(struct ps_wr *w, const unsigned char *mag, size_t len)
{
	bool pad;
	int r;

	while (len > 0 && mag[0] == 0) {
		mag++;
		len--;
	}
	if (len == 0 || len >= UINT32_MAX) {
		/* zero is never a valid key component */
		if (w->err == PS_OK)
			w->err = PS_ERR_INVALID;
		return w->err;
	}
	pad = (mag[0] & 0x80) != 0;
	if ((r = ps_wr_u32(w, (uint32_t)(len + (pad ? 1 : 0)))) != PS_OK)
		return r;
	if (pad && (r = ps_wr_u8(w, 0)) != PS_OK)
		return r;
	return wr_bytes(w, mag, len);
}

void
ps_wr_free(struct ps_wr *w)
{
	if (w == NULL)
		return;
	ps_freezero(w->buf, w->cap);
	memset(w, 0, sizeof(*w));
}

/* ------------------------------------------------------------ base64 */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
ps_b64_len(size_t n, bool url)
{
	if (url)
		return (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
	return ((n + 2) / 3) * 4;
}

int
ps_b64_encode(const unsigned char *in, size_t len, bool url, char **out)
{
	const char *abc = url ? b64_url : b64_std;
	size_t i, o = 0, rest;
	uint32_t v;
	char *buf;

	*out = NULL;
	if (len > (SIZE_MAX / 4) - 4)
		return PS_ERR_INVALID;
	if ((buf = malloc(ps_b64_len(len, url) + 1)) == NULL)
		return PS_ERR_NOMEM;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		buf[o++] = abc[(v >> 18) & 63];
		buf[o++] = abc[(v >> 12) & 63];
		buf[o++] = abc[(v >> 6) & 63];
		buf[o++] = abc[v & 63];
	}
	rest = len - i;
	if (rest > 0) {
		v = (uint32_t)in[i] << 16;
		if (rest == 2)
			v |= (uint32_t)in[i + 1] << 8;
		buf[o++] = abc[(v >> 18) & 63];
		buf[o++] = abc[(v >> 12) & 63];
		if (rest == 2)
			buf[o++] = abc[(v >> 6) & 63];
		else if (!url)
			buf[o++] = '=';
		if (!url)
			buf[o++] = '=';
	}
	buf[o] = '\0';
	*out = buf;
	return PS_OK;
}

static int
b64_value(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/* Number of data characters once padding is accounted for, or -1. */
static long long
b64_data_chars(const char *in, size_t inlen, bool url)
{
	size_t pad = 0;

	if (url)
		return inlen % 4 == 1 ? -1 : (long long)inlen;
	if (inlen % 4 != 0)
		return -1;
	if (inlen >= 1 && in[inlen - 1] == '=')
		pad++;
	if (inlen >= 2 && in[inlen - 2] == '=')
		pad++;
	return (long long)(inlen - pad);
}

int
ps_b64_decode(const char *in, size_t inlen, bool url, size_t max,
    unsigned char **out, size_t *outlen)
{
	unsigned char *buf = NULL;
	long long data;
	size_t i, o = 0, need;
	uint32_t acc = 0;
	int bits = 0, v, r = PS_ERR_INVALID;

	*out = NULL;
	*outlen = 0;
	if (in == NULL || (data = b64_data_chars(in, inlen, url)) < 0)
		return PS_ERR_INVALID;
	need = ((size_t)data * 3) / 4;
	if (need > max || need == 0)
		return PS_ERR_INVALID;
	if ((buf = malloc(need)) == NULL)
		return PS_ERR_NOMEM;
	for (i = 0; i < (size_t)data; i++) {
		if ((v = b64_value((unsigned char)in[i], url)) < 0)
			goto out;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* the unused low bits of the last character must be zero */
	if (o != need || acc != 0)
		goto out;
	*out = buf;
	*outlen = o;
	buf = NULL;
	r = PS_OK;
 out:
	ps_freezero(buf, need);
	return r;
}
