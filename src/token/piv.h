/*
 * piv.h - the PIV card application (NIST SP 800-73-4) as pure data:
 * building command APDUs and parsing what a card answers. No I/O here;
 * pcsc.c carries the bytes and token_piv.c runs the login sequence.
 *
 * Everything a card sends is untrusted input: every parser checks every
 * length against the buffer it came in and fails with PS_ERR_TOKEN
 * (reason logged) rather than read past it.
 */
#ifndef PS_PIV_H
#define PS_PIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "config.h"
#include "log.h"

/* Largest command body we ever build (GENERAL AUTHENTICATE, RSA-4096). */
#define PS_APDU_DATA_MAX	1024
/* Largest response body accepted from the card (after GET RESPONSE). */
#define PS_PIV_RESP_MAX		16384
/* Largest certificate accepted, also the cap for inflating a gzip one. */
#define PS_PIV_CERT_MAX		16384
#define PS_PIV_PIN_MIN		6
#define PS_PIV_PIN_MAX		8

/* ISO 7816-4 status words used by PIV. */
#define PS_SW_OK		0x9000
#define PS_SW_SECURITY		0x6982	/* security status not satisfied */
#define PS_SW_BLOCKED		0x6983	/* authentication method blocked */
#define PS_SW_NOT_FOUND		0x6A82	/* data object / application absent */

/* Algorithm identifiers (SP 800-78-4 Table 6-2; 05/16 are Yubico's). */
#define PS_PIV_ALG_RSA2048	0x07
#define PS_PIV_ALG_RSA3072	0x05
#define PS_PIV_ALG_RSA4096	0x16
#define PS_PIV_ALG_P256		0x11
#define PS_PIV_ALG_P384		0x14

/* A command APDU before it is cut into short APDUs by the transport. */
struct ps_apdu {
	unsigned char cla, ins, p1, p2;
	size_t lc;			/* bytes of data used */
	unsigned char data[PS_APDU_DATA_MAX];
	unsigned ne;			/* expected response bytes: 0 none,
					 * 1..256 (256 is encoded Le=00) */
};

/* Wipe a command (it may hold a PIN). */
void ps_apdu_clear(struct ps_apdu *a);

/*
 * Encode one short APDU: header with `cla`, the given data slice (at most
 * 255 bytes) and Le from `ne`. PS_ERR_INTERNAL when it does not fit.
 */
int ps_apdu_encode_short(const struct ps_apdu *a, unsigned char cla,
    const unsigned char *data, size_t lc, unsigned ne, unsigned char *out,
    size_t cap, size_t *outlen);

/* Split a response into body length and status word; PS_ERR_TOKEN when it
 * is shorter than the two SW bytes. */
int ps_apdu_split(const unsigned char *resp, size_t len, size_t *body_len,
    uint16_t *sw);

/* Key slots we read: 9A, 9C, 9D, 9E. */
struct ps_piv_slot {
	unsigned char key_ref;		/* 0x9A ... */
	uint32_t object;		/* certificate data object, 0x5FC105 ... */
	const char *name;		/* "9A" */
	bool pin_always;		/* PIN must be verified right before use */
};
#define PS_PIV_NSLOTS 4
extern const struct ps_piv_slot ps_piv_slots[PS_PIV_NSLOTS];
/* By name ("9a", "9A"); NULL when it is not one of ours. */
const struct ps_piv_slot *ps_piv_slot_by_name(const char *name);
const struct ps_piv_slot *ps_piv_slot_by_ref(unsigned char key_ref);

/* Command builders. Each fills *a completely. */
void ps_piv_cmd_select(struct ps_apdu *a);
void ps_piv_cmd_get_data(struct ps_apdu *a, uint32_t object);
/* VERIFY of the PIV PIN: PS_ERR_BAD_SECRET (nothing built) unless the PIN
 * is 6..8 bytes with no 0xFF. The caller wipes *a with ps_apdu_clear. */
int ps_piv_cmd_verify(struct ps_apdu *a, const char *pin);
/* Empty VERIFY: asks for the retry counter without spending a try. */
void ps_piv_cmd_verify_status(struct ps_apdu *a);
/* VERIFY with P1=FF: reset the PIN's security status (log out). */
void ps_piv_cmd_verify_reset(struct ps_apdu *a);
void ps_piv_cmd_get_response(struct ps_apdu *a, unsigned ne);
/* GENERAL AUTHENTICATE: 7C{82 00, 81 input}. PS_ERR_INTERNAL when the
 * input does not fit. */
int ps_piv_cmd_general_auth(struct ps_apdu *a, unsigned char alg,
    unsigned char key_ref, const unsigned char *in, size_t inlen);

/* One BER-TLV (ISO 7816-4 / SP 800-73-4 Part 2 5.1) data object. */
struct ps_tlv {
	uint32_t tag;			/* 1..3 tag bytes, big-endian */
	const unsigned char *value;	/* points into the parsed buffer */
	size_t len;
};

/*
 * Parse the TLV at the start of buf[0..len): tag of at most 3 bytes,
 * length in the short form or 81/82 long form (no indefinite length, no
 * 83+), value entirely inside the buffer. *used = header + value bytes.
 * PS_ERR_TOKEN on anything else.
 */
int ps_tlv_parse(const unsigned char *buf, size_t len, struct ps_tlv *out,
    size_t *used);
/*
 * Find `tag` among the TLVs that exactly fill buf[0..len) (every one must
 * parse; trailing bytes are an error). PS_ERR_NOT_FOUND when well formed
 * but absent, PS_ERR_TOKEN when malformed or when `tag` occurs twice.
 */
int ps_tlv_find(const unsigned char *buf, size_t len, uint32_t tag,
    struct ps_tlv *out);

/*
 * Retry counter and outcome from a VERIFY status word:
 * 9000 -> PS_OK (*tries = -1: unknown, already verified),
 * 63Cx -> PS_ERR_BAD_SECRET with *tries = x (empty VERIFY: x tries left),
 * 6983 -> PS_ERR_PIN_LOCKED with *tries = 0, anything else -> PS_ERR_TOKEN.
 */
int ps_piv_verify_sw(uint16_t sw, int *tries);

/* A short English description of a status word, for log lines. */
const char *ps_piv_sw_str(uint16_t sw);

/*
 * Inflate a gzip (or zlib) stream into a malloc'd buffer of at most `cap`
 * bytes. PS_ERR_TOKEN when malformed, truncated, followed by trailing
 * bytes, or larger than the cap (a compression bomb stops at the cap).
 */
int ps_piv_inflate(const struct ps_log *log, const unsigned char *in,
    size_t inlen, size_t cap, unsigned char **out, size_t *outlen);

/*
 * The certificate data object from a GET DATA response body:
 * 53{70 cert, 71 CertInfo, FE LRC}, inflated when CertInfo says gzip.
 * *der is malloc'd. PS_ERR_TOKEN when malformed.
 */
int ps_piv_parse_cert_object(const struct ps_log *log,
    const unsigned char *body, size_t len, unsigned char **der,
    size_t *derlen);
/* The same, all the way to an X509 (exactly one DER certificate). */
int ps_piv_cert_from_object(const struct ps_log *log,
    const unsigned char *body, size_t len, X509 **out);

/* The raw signature inside a GENERAL AUTHENTICATE response 7C{82 sig}. */
int ps_piv_parse_auth_response(const struct ps_log *log,
    const unsigned char *body, size_t len, const unsigned char **sig,
    size_t *siglen);

/*
 * What GENERAL AUTHENTICATE needs for `pub`: the algorithm identifier and
 * the size of its input (RSA: the modulus; EC: the field). PS_ERR_INVALID
 * for a key type PIV cannot sign with.
 */
int ps_piv_alg_for_key(const struct ps_log *log, EVP_PKEY *pub,
    unsigned char *alg, size_t *inlen);

/*
 * The card-side input for signing `digest` made with `md`:
 * RSA: EMSA-PKCS1-v1_5 block 00 01 FF.. 00 DigestInfo of `inlen` bytes
 * (the card then does the raw RSA operation); EC: the digest truncated or
 * left-padded to the field size (ECDSA's own conversion).
 */
int ps_piv_sign_input(const struct ps_log *log, unsigned char alg,
    const EVP_MD *md, const unsigned char *digest, size_t dlen,
    unsigned char *out, size_t inlen);

/*
 * Check a signature returned by the card and give it back in the form
 * ps_challenge_verify takes (malloc'd): RSA: exactly `inlen` bytes;
 * EC: a DER SEQUENCE{r, s} with 0 < r, s of at most `inlen` bytes,
 * re-encoded canonically. PS_ERR_TOKEN when it is not one.
 */
int ps_piv_finish_signature(const struct ps_log *log, unsigned char alg,
    size_t inlen, const unsigned char *sig, size_t siglen,
    unsigned char **out, size_t *outlen);

/*
 * For `personalsign-enroll --from-card`: read the certificate in `slot`
 * ("9a", "9c", "9d", "9e") of the first PIV card (cfg->reader narrows the
 * readers, cfg->pcsc_socket finds pcscd, cfg->card_timeout waits for a
 * card). No PIN is needed. PS_ERR_NO_TOKEN when there is no card,
 * PS_ERR_NOT_FOUND when the slot is empty, PS_ERR_INVALID for a bad slot
 * name, PS_ERR_TOKEN for a card that answers garbage.
 */
int ps_piv_read_certificate(const struct ps_config *cfg,
    const struct ps_log *log, const char *slot, X509 **out);

#endif /* PS_PIV_H */
