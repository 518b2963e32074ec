/*
 * wire.h - bounds-checked byte strings for text that arrives from outside:
 * the SSH wire format (RFC 4251: uint32 length-prefixed strings, mpints),
 * which carries SSH public keys and the remote-mode response, and strict
 * base64 / base64url.
 *
 * Readers never touch a byte beyond what they were given and every read
 * is checked; writers refuse to grow past a stated maximum. Decoders accept
 * exactly one spelling of each value (no stray padding, no non-zero unused
 * bits, no leading zeros in mpints), so two different texts never decode
 * to the same bytes.
 */
#ifndef PS_WIRE_H
#define PS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ reading */

struct ps_rd {
	const unsigned char *p;
	size_t left;
};

void ps_rd_init(struct ps_rd *rd, const void *data, size_t len);
/* PS_OK, or PS_ERR_INVALID when the input is too short. */
int ps_rd_u8(struct ps_rd *rd, uint8_t *v);
int ps_rd_u32(struct ps_rd *rd, uint32_t *v);
/* A uint32 length then that many bytes; longer than `max`: PS_ERR_INVALID.
 * *s points into the input. */
int ps_rd_string(struct ps_rd *rd, size_t max, const unsigned char **s,
    size_t *len);
/* A string that must equal `expect` exactly. */
int ps_rd_string_eq(struct ps_rd *rd, const char *expect);
/*
 * A positive mpint in minimal form (no superfluous leading zero byte, not
 * zero, not negative); *mag / *len is its magnitude without the sign byte,
 * at most `max` bytes.
 */
int ps_rd_mpint_positive(struct ps_rd *rd, size_t max,
    const unsigned char **mag, size_t *len);
/* PS_OK when everything was consumed; trailing bytes are an error. */
int ps_rd_done(const struct ps_rd *rd);

/* ------------------------------------------------------------ writing */

struct ps_wr {
	unsigned char *buf;
	size_t len;
	size_t cap;
	size_t max;		/* refuse to grow beyond this */
	int err;		/* first error, sticky: check once at the end */
};

void ps_wr_init(struct ps_wr *w, size_t max);
int ps_wr_u8(struct ps_wr *w, uint8_t v);
int ps_wr_u32(struct ps_wr *w, uint32_t v);
int ps_wr_string(struct ps_wr *w, const void *s, size_t len);
int ps_wr_cstring(struct ps_wr *w, const char *s);
/* A positive magnitude (big-endian, leading zeros allowed on input) as a
 * minimal mpint. */
int ps_wr_mpint(struct ps_wr *w, const unsigned char *mag, size_t len);
/* Wipe and free. */
void ps_wr_free(struct ps_wr *w);

/* ------------------------------------------------------------ base64 */

/* Length of the encoding: url = base64url without padding, else padded
 * standard base64 (RFC 4648 sections 5 and 4). */
size_t ps_b64_len(size_t n, bool url);
/* malloc'd, NUL-terminated encoding of in[len]. */
int ps_b64_encode(const unsigned char *in, size_t len, bool url,
    char **out);
/*
 * Strict decode of exactly in[inlen] (no whitespace, the one canonical
 * spelling) into a malloc'd buffer of at most `max` bytes. PS_ERR_INVALID
 * for anything else.
 */
int ps_b64_decode(const char *in, size_t inlen, bool url, size_t max,
    unsigned char **out, size_t *outlen);

#endif /* PS_WIRE_H */
