/*
 * token_piv.c - the PIV smart card token backend (token.h) over pcsc.c
 * and piv.c, plus ps_piv_read_certificate for personalsign-enroll.
 *
 * A login costs as few card round trips as the protocol allows:
 *   open:   SELECT, GET DATA of slot 9A (then 9C, 9D, 9E only while no
 *           wanted key has turned up)
 *   prompt: empty VERIFY first (check_ready: a blocked PIN or a last
 *           try is refused without asking for the PIN)
 *   unlock: SELECT (another program may have selected another applet
 *           while the user typed), empty VERIFY (tries left), VERIFY
 *   sign:   GENERAL AUTHENTICATE, VERIFY P1=FF (log out, so nobody else
 *           can use the PIN we verified)
 * plus GET RESPONSE rounds for long answers. unlock and sign run in one
 * PC/SC transaction so nothing comes between VERIFY and the signature
 * (slot 9C wants exactly that); the PIN prompt happens outside any
 * transaction, so other programs are not locked out while a user types.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conv.h"
#include "pcsc.h"
#include "piv.h"
#include "ps_status.h"
#include "token.h"
#include "util.h"

/* The keys read from one card. */
struct piv_keys {
	struct ps_token_key key[PS_PIV_NSLOTS];
	unsigned char alg[PS_PIV_NSLOTS];
	size_t inlen[PS_PIV_NSLOTS];	/* RSA modulus / EC field bytes */
	size_t count;
	size_t slots_read;		/* ps_piv_slots[0..slots_read) done */
	bool wanted;			/* holds a key the caller wants */
};

struct piv_impl {
	struct ps_pcsc *pcsc;
	struct piv_keys keys;
	bool unlocked;			/* VERIFY succeeded, sign may follow */
	int unlocked_ref;
	bool need_reset;		/* logout failed: reset on disconnect */
	char prompt[320];
};

/* What card scanning needs, shared by the token and the enroll helper. */
struct scan {
	const struct ps_config *cfg;
	const struct ps_log *log;
	const struct ps_conv *conv;
	struct ps_pcsc *pcsc;
	bool (*want_key)(void *arg, EVP_PKEY *pub);
	void *want_key_arg;
	bool read_all;			/* no hint: read every slot */
};

static void
keys_clear(struct piv_keys *k)
{
	size_t i;

	for (i = 0; i < k->count; i++) {
		EVP_PKEY_free(k->key[i].pub);
		X509_free(k->key[i].cert);
	}
	memset(k, 0, sizeof(*k));
}

static int
send_cmd(struct ps_pcsc *pcsc, const struct ps_apdu *a, unsigned char *resp,
    size_t cap, size_t *len, uint16_t *sw)
{
	return ps_pcsc_transmit(pcsc, a, resp, cap, len, sw);
}

/* SELECT the PIV application. PS_ERR_NOT_FOUND when the card has none. */
static int
select_piv(struct ps_pcsc *pcsc, const struct ps_log *log)
{
	struct ps_apdu a;
	unsigned char resp[512];
	size_t len;
	uint16_t sw;
	int r;

	ps_piv_cmd_select(&a);
	if ((r = send_cmd(pcsc, &a, resp, sizeof(resp), &len, &sw)) != PS_OK)
		return r;
	if (sw == PS_SW_OK)
		return PS_OK;
	ps_log_debug(log, "piv: card in '%s' has no PIV application: %04X "
	    "(%s)", ps_pcsc_reader(pcsc), sw, ps_piv_sw_str(sw));
	return PS_ERR_NOT_FOUND;
}

/*
 * GET DATA of one certificate object. PS_ERR_NOT_FOUND for an empty slot
 * (or one the card will not show), PS_ERR_TOKEN for a malformed answer.
 */
static int
read_slot_cert(struct ps_pcsc *pcsc, const struct ps_log *log,
    const struct ps_piv_slot *slot, X509 **cert)
{
	struct ps_apdu a;
	unsigned char *resp;
	size_t len = 0;
	uint16_t sw = 0;
	int r;

	*cert = NULL;
	if ((resp = malloc(PS_PIV_RESP_MAX)) == NULL) {
		ps_log_err(log, "piv: out of memory");
		return PS_ERR_NOMEM;
	}
	ps_piv_cmd_get_data(&a, slot->object);
	r = send_cmd(pcsc, &a, resp, PS_PIV_RESP_MAX, &len, &sw);
	if (r != PS_OK)
		goto out;
	if (sw == PS_SW_NOT_FOUND) {
		ps_log_debug(log, "piv: slot %s is empty", slot->name);
		r = PS_ERR_NOT_FOUND;
		goto out;
	}
	if (sw != PS_SW_OK) {
		ps_log_notice(log, "piv: reading slot %s: %04X (%s)",
		    slot->name, sw, ps_piv_sw_str(sw));
		r = PS_ERR_NOT_FOUND;
		goto out;
	}
	r = ps_piv_cert_from_object(log, resp, len, cert);
	if (r != PS_OK)
		ps_log_err(log, "piv: slot %s of the card in '%s' holds a "
		    "malformed certificate object", slot->name,
		    ps_pcsc_reader(pcsc));
 out:
	free(resp);
	return r;
}

/* Add the key of `cert` (read from `slot`) to k; takes the certificate. */
static int
keys_add(struct piv_keys *k, const struct ps_log *log,
    const struct ps_piv_slot *slot, X509 *cert)
{
	struct ps_token_key *tk = &k->key[k->count];
	EVP_PKEY *pub;
	unsigned char alg;
	size_t inlen;

	if ((pub = X509_get_pubkey(cert)) == NULL) {
		ps_log_openssl(log, "piv: X509_get_pubkey");
		ps_log_notice(log, "piv: slot %s: certificate has an unreadable "
		    "public key; skipped", slot->name);
		X509_free(cert);
		return PS_ERR_NOT_FOUND;
	}
	if (ps_piv_alg_for_key(log, pub, &alg, &inlen) != PS_OK) {
		ps_log_notice(log, "piv: slot %s: key type not usable; skipped",
		    slot->name);
		EVP_PKEY_free(pub);
		X509_free(cert);
		return PS_ERR_NOT_FOUND;
	}
	memset(tk, 0, sizeof(*tk));
	tk->pub = pub;
	tk->cert = cert;
	tk->id = slot->key_ref;
	snprintf(tk->label, sizeof(tk->label), "slot %s", slot->name);
	k->alg[k->count] = alg;
	k->inlen[k->count] = inlen;
	k->count++;
	return PS_OK;
}

/*
 * Read slots in order until one holds a wanted key (or all of them when
 * read_all). Empty or unusable slots are skipped; a malformed answer
 * fails the card.
 */
static int
read_keys(const struct scan *s, struct piv_keys *k)
{
	const struct ps_piv_slot *slot;
	X509 *cert;
	int r;

	while (k->slots_read < PS_PIV_NSLOTS) {
		slot = &ps_piv_slots[k->slots_read++];
		r = read_slot_cert(s->pcsc, s->log, slot, &cert);
		if (r == PS_ERR_NOT_FOUND)
			continue;
		if (r != PS_OK)
			return r;
		if (keys_add(k, s->log, slot, cert) != PS_OK)
			continue;
		ps_log_debug(s->log, "piv: slot %s holds a certificate",
		    slot->name);
		if (s->want_key != NULL && s->want_key(s->want_key_arg,
		    k->key[k->count - 1].pub)) {
			k->wanted = true;
			if (!s->read_all)
				return PS_OK;
		}
	}
	return PS_OK;
}

/*
 * Look at the card in `reader`: PIV? which keys? PS_OK with k filled,
 * PS_ERR_NOT_FOUND when it is not a PIV card (or no card after all).
 */
static int
probe_card(const struct scan *s, const char *reader, struct piv_keys *k,
    bool read_keys_now)
{
	int r;

	memset(k, 0, sizeof(*k));
	r = ps_pcsc_connect(s->pcsc, reader);
	if (r == PS_ERR_NO_TOKEN)
		return PS_ERR_NOT_FOUND;
	if (r != PS_OK)
		return r;
	if ((r = ps_pcsc_begin(s->pcsc)) != PS_OK)
		return r;
	r = select_piv(s->pcsc, s->log);
	if (r == PS_OK && read_keys_now)
		r = read_keys(s, k);
	ps_pcsc_end(s->pcsc);
	if (r != PS_OK)
		keys_clear(k);
	return r;
}

/* The best of two failures: a broken card says more than no card. */
static int
worse(int a, int b)
{
	if (a == PS_ERR_NOMEM || b == PS_ERR_NOMEM)
		return PS_ERR_NOMEM;
	if (a == PS_ERR_TOKEN || b == PS_ERR_TOKEN)
		return PS_ERR_TOKEN;
	return a != PS_OK ? a : b;
}

/*
 * Choose among the readers that hold a card: the first PIV card holding
 * a wanted key, else the first PIV card. On PS_OK the chosen card is
 * connected and *out holds what was read from it. PS_ERR_NOT_FOUND when
 * no card is a usable PIV card (*failure says whether one was broken).
 */
static int
scan_readers(const struct scan *s, const struct ps_readers *rd,
    const bool *present, bool read_keys_now, struct piv_keys *out,
    int *failure)
{
	struct piv_keys first, cur;
	size_t i, first_idx = 0;
	bool have_first = false;
	int r;

	memset(&first, 0, sizeof(first));
	*failure = PS_OK;
	for (i = 0; i < rd->count; i++) {
		if (!present[i])
			continue;
		r = probe_card(s, rd->names[i], &cur, read_keys_now);
		if (r == PS_ERR_NOMEM)
			goto fail;
		if (r != PS_OK) {
			if (r != PS_ERR_NOT_FOUND)
				*failure = worse(*failure, r);
			continue;
		}
		if (cur.wanted || s->want_key == NULL || !read_keys_now) {
			keys_clear(&first);
			*out = cur;
			return PS_OK;
		}
		if (!have_first) {
			first = cur;
			first_idx = i;
			have_first = true;
		} else {
			keys_clear(&cur);
		}
	}
	if (!have_first)
		return PS_ERR_NOT_FOUND;
	/* No card holds a wanted key: use the first PIV card, so the caller
	 * can say "this card holds no registered key". */
	r = ps_pcsc_connect(s->pcsc, rd->names[first_idx]);
	if (r != PS_OK) {
		keys_clear(&first);
		return r == PS_ERR_NO_TOKEN ? PS_ERR_NOT_FOUND : r;
	}
	*out = first;
	return PS_OK;
 fail:
	keys_clear(&first);
	return PS_ERR_NOMEM;
}

static unsigned
ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		return 0;
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? (unsigned)ms : 0;
}

/* Say why there is no card, to the log and (when there is one) the user. */
static int
no_card(const struct scan *s, size_t nreaders, int failure)
{
	if (failure == PS_ERR_TOKEN) {
		ps_log_err(s->log, "piv: no usable PIV card: the card did "
		    "not answer properly");
		ps_conv_error(s->conv, "Your smart card could not be read.");
		return PS_ERR_TOKEN;
	}
	if (nreaders == 0) {
		ps_log_err(s->log, "piv: no smart card reader%s%s",
		    s->cfg->reader ? " matching " : "",
		    s->cfg->reader ? s->cfg->reader : "");
		ps_conv_error(s->conv, "No smart card reader found.");
	} else {
		ps_log_err(s->log, "piv: no PIV card in %zu reader%s",
		    nreaders, nreaders == 1 ? "" : "s");
		ps_conv_error(s->conv, "No smart card found. Please insert "
		    "your card and try again.");
	}
	return PS_ERR_NO_TOKEN;
}

/*
 * Find and connect to the card to use, waiting up to cfg->card_timeout
 * seconds for one to be inserted.
 */
static int
find_card(const struct scan *s, bool read_keys_now, struct piv_keys *out)
{
	struct ps_readers rd = { NULL, 0 };
	struct timespec deadline;
	bool *present = NULL, told = false;
	int r, failure = PS_OK;
	unsigned left;

	if (clock_gettime(CLOCK_MONOTONIC, &deadline) != 0) {
		ps_log_err(s->log, "piv: no monotonic clock");
		return PS_ERR_INTERNAL;
	}
	deadline.tv_sec += s->cfg->card_timeout;
	for (;;) {
		free(present);
		present = NULL;
		ps_readers_free(&rd);
		r = ps_pcsc_list_readers(s->pcsc, s->cfg->reader, &rd);
		if (r != PS_OK)
			goto out;
		if ((present = calloc(rd.count + 1, sizeof(*present))) ==
		    NULL) {
			ps_log_err(s->log, "piv: out of memory");
			r = PS_ERR_NOMEM;
			goto out;
		}
		if (rd.count > 0 &&
		    (r = ps_pcsc_cards_present(s->pcsc, &rd, present)) != PS_OK)
			goto out;
		r = scan_readers(s, &rd, present, read_keys_now, out, &failure);
		if (r != PS_ERR_NOT_FOUND)
			goto out;
		if ((left = ms_left(&deadline)) == 0)
			break;
		if (!told) {
			ps_conv_info(s->conv, "Please insert your smart card.");
			ps_log_info(s->log, "piv: waiting up to %d s for a card",
			    s->cfg->card_timeout);
			told = true;
		}
		r = ps_pcsc_wait_change(s->pcsc, &rd, left);
		if (r == PS_ERR_NOT_FOUND)
			break;
		if (r != PS_OK)
			goto out;
	}
	r = no_card(s, rd.count, failure);
 out:
	free(present);
	ps_readers_free(&rd);
	return r;
}

static void
impl_free(struct piv_impl *pi)
{
	if (pi == NULL)
		return;
	keys_clear(&pi->keys);
	ps_pcsc_close(pi->pcsc);
	ps_freezero(pi, sizeof(*pi));
}

static int
piv_open(struct ps_token *tok)
{
	const struct ps_token_params *tp = &tok->params;
	struct piv_impl *pi;
	struct scan s;
	int r;

	if (tp->cfg == NULL)
		return PS_ERR_INTERNAL;
	if ((pi = calloc(1, sizeof(*pi))) == NULL) {
		ps_log_err(tp->log, "piv: out of memory");
		return PS_ERR_NOMEM;
	}
	tok->impl = pi;
	if ((r = ps_pcsc_open(tp->cfg, tp->log, &pi->pcsc)) != PS_OK) {
		ps_conv_error(tp->conv, "The smart card service is not "
		    "available.");
		return r;
	}
	memset(&s, 0, sizeof(s));
	s.cfg = tp->cfg;
	s.log = tp->log;
	s.conv = tp->conv;
	s.pcsc = pi->pcsc;
	s.want_key = tp->want_key;
	s.want_key_arg = tp->want_key_arg;
	s.read_all = tp->want_key == NULL;
	if ((r = find_card(&s, true, &pi->keys)) != PS_OK)
		return r;
	snprintf(pi->prompt, sizeof(pi->prompt), "PIN for %s: ",
	    ps_pcsc_reader(pi->pcsc));
	ps_log_debug(tp->log, "piv: using the card in '%s' (%zu key%s read, "
	    "%lu APDUs)", ps_pcsc_reader(pi->pcsc), pi->keys.count,
	    pi->keys.count == 1 ? "" : "s", ps_pcsc_apdu_count(pi->pcsc));
	return PS_OK;
}

static int
piv_list_keys(struct ps_token *tok, const struct ps_token_key **keys,
    size_t *count)
{
	struct piv_impl *pi = tok->impl;

	if (pi == NULL || pi->pcsc == NULL)
		return PS_ERR_INTERNAL;
	*keys = pi->keys.key;
	*count = pi->keys.count;
	return PS_OK;
}

static const char *
piv_secret_prompt(struct ps_token *tok)
{
	struct piv_impl *pi = tok->impl;

	return pi != NULL && pi->prompt[0] != '\0' ? pi->prompt : "PIN: ";
}

/* Index of `key` in our list, or -1 when it is not one of ours. */
static int
key_index(const struct piv_impl *pi, const struct ps_token_key *key)
{
	size_t i;

	for (i = 0; i < pi->keys.count; i++)
		if (key == &pi->keys.key[i])
			return (int)i;
	return -1;
}

/*
 * VERIFY P1=FF: forget that the PIN was verified. A card that cannot is
 * reset when we disconnect instead.
 */
static void
logout(struct piv_impl *pi, const struct ps_log *log)
{
	struct ps_apdu a;
	unsigned char resp[64];
	size_t len;
	uint16_t sw;

	if (ps_pcsc_card_gone(pi->pcsc))
		return;
	ps_piv_cmd_verify_reset(&a);
	if (send_cmd(pi->pcsc, &a, resp, sizeof(resp), &len, &sw) != PS_OK ||
	    sw != PS_SW_OK) {
		ps_log_debug(log, "piv: card cannot log out (VERIFY P1=FF); "
		    "it will be reset");
		pi->need_reset = true;
	}
}

static void
tell_locked(const struct ps_conv *conv)
{
	ps_conv_error(conv, "The PIN of your card is blocked. Contact your "
	    "administrator to unblock it.");
}

/*
 * Tries left before the PIN blocks, without spending one: the empty
 * VERIFY. A card that says "already verified" is logged out and asked
 * again; if it still says so, its counter was just reset by a correct
 * PIN (*tries = -1: unknown but full).
 */
static int
pin_tries(struct piv_impl *pi, const struct ps_log *log, int *tries)
{
	struct ps_apdu a;
	unsigned char resp[64];
	size_t len;
	uint16_t sw;
	int r, round;

	for (round = 0; round < 2; round++) {
		ps_piv_cmd_verify_status(&a);
		r = send_cmd(pi->pcsc, &a, resp, sizeof(resp), &len, &sw);
		if (r != PS_OK)
			return r;
		r = ps_piv_verify_sw(sw, tries);
		if (r == PS_ERR_BAD_SECRET)
			return PS_OK;	/* 63Cx: the normal answer */
		if (r != PS_OK) {
			if (r == PS_ERR_TOKEN)
				ps_log_err(log, "piv: reading the PIN retry "
				    "counter: %04X (%s)", sw, ps_piv_sw_str(sw));
			return r;
		}
		if (round == 0)
			logout(pi, log);
	}
	*tries = -1;
	return PS_OK;
}

static int
verify_pin(struct piv_impl *pi, const struct ps_token_params *tp,
    const char *pin)
{
	struct ps_apdu a;
	unsigned char resp[64];
	size_t len;
	uint16_t sw;
	int r, tries;

	if (ps_piv_cmd_verify(&a, pin) != PS_OK) {
		ps_log_notice(tp->log, "piv: PIN of the wrong length; not sent "
		    "to the card");
		ps_conv_error(tp->conv, "A card PIN has %d to %d characters.",
		    PS_PIV_PIN_MIN, PS_PIV_PIN_MAX);
		return PS_ERR_BAD_SECRET;
	}
	r = send_cmd(pi->pcsc, &a, resp, sizeof(resp), &len, &sw);
	ps_apdu_clear(&a);
	if (r != PS_OK)
		return r;
	r = ps_piv_verify_sw(sw, &tries);
	if (r == PS_ERR_BAD_SECRET) {
		ps_log_notice(tp->log, "piv: wrong PIN; %d tr%s left", tries,
		    tries == 1 ? "y" : "ies");
		ps_conv_error(tp->conv, "Wrong PIN. %d tr%s left before the "
		    "card is blocked.", tries, tries == 1 ? "y" : "ies");
	} else if (r == PS_ERR_PIN_LOCKED) {
		ps_log_notice(tp->log, "piv: wrong PIN; the PIN is now blocked");
		tell_locked(tp->conv);
	} else if (r != PS_OK) {
		ps_log_err(tp->log, "piv: VERIFY: %04X (%s)", sw,
		    ps_piv_sw_str(sw));
	}
	return r;
}

/* Refuse before trying when a wrong PIN could block the card. */
static int
check_tries(const struct ps_token_params *tp, int tries)
{
	if (tries == 0) {
		ps_log_notice(tp->log, "piv: the PIN is blocked");
		tell_locked(tp->conv);
		return PS_ERR_PIN_LOCKED;
	}
	if (tries > 0 && tries <= tp->cfg->min_pin_retries) {
		ps_log_notice(tp->log, "piv: only %d PIN tr%s left "
		    "(min_pin_retries=%d): not trying", tries,
		    tries == 1 ? "y" : "ies", tp->cfg->min_pin_retries);
		ps_conv_error(tp->conv, "Only %d PIN tr%s left on your card: "
		    "not trying. Contact your administrator to unblock it.",
		    tries, tries == 1 ? "y" : "ies");
		return PS_ERR_PIN_LOCKED;
	}
	return PS_OK;
}

static void
tell_if_gone(struct piv_impl *pi, const struct ps_token_params *tp)
{
	if (ps_pcsc_card_gone(pi->pcsc))
		ps_conv_error(tp->conv, "The smart card was removed or stopped "
		    "responding.");
}

/*
 * Before the PIN prompt: is there any point asking? One APDU when the
 * card still has the PIV application selected from open(), which it has
 * unless another program got in between; then select and ask again.
 */
static int
piv_check_ready(struct ps_token *tok, const struct ps_token_key *key)
{
	const struct ps_token_params *tp = &tok->params;
	struct piv_impl *pi = tok->impl;
	int r, tries = -1;

	if (pi == NULL || pi->pcsc == NULL || key == NULL ||
	    key_index(pi, key) < 0)
		return PS_ERR_INTERNAL;
	if ((r = ps_pcsc_begin(pi->pcsc)) != PS_OK)
		goto out_gone;
	r = pin_tries(pi, tp->log, &tries);
	if (r == PS_ERR_TOKEN && select_piv(pi->pcsc, tp->log) == PS_OK)
		r = pin_tries(pi, tp->log, &tries);
	ps_pcsc_end(pi->pcsc);
	if (r == PS_ERR_PIN_LOCKED)
		return check_tries(tp, 0);
	if (r != PS_OK)
		goto out_gone;
	return check_tries(tp, tries);
 out_gone:
	tell_if_gone(pi, tp);
	return r;
}

/*
 * Every slot, 9E included, is unlocked with the PIN: 9E needs none on
 * the card, but a login must be card AND PIN, never the card alone.
 * The transaction begun here lasts until sign() (or close) ends it.
 */
static int
piv_unlock(struct ps_token *tok, const struct ps_token_key *key,
    const char *secret)
{
	const struct ps_token_params *tp = &tok->params;
	struct piv_impl *pi = tok->impl;
	int r, tries = -1;

	if (pi == NULL || pi->pcsc == NULL || key == NULL ||
	    key_index(pi, key) < 0) {
		ps_log_err(tp->log, "piv: unlock of a key this card does not "
		    "hold");
		return PS_ERR_INTERNAL;
	}
	if (pi->unlocked) {
		logout(pi, tp->log);
		pi->unlocked = false;
		ps_pcsc_end(pi->pcsc);
	}
	if ((r = ps_pcsc_begin(pi->pcsc)) != PS_OK)
		goto out;
	if ((r = select_piv(pi->pcsc, tp->log)) != PS_OK) {
		if (r == PS_ERR_NOT_FOUND) {
			ps_log_err(tp->log, "piv: the card no longer selects "
			    "the PIV application");
			r = PS_ERR_TOKEN;
		}
		goto out;
	}
	if ((r = pin_tries(pi, tp->log, &tries)) != PS_OK) {
		if (r == PS_ERR_PIN_LOCKED)
			r = check_tries(tp, 0);
		goto out;
	}
	if ((r = check_tries(tp, tries)) != PS_OK)
		goto out;
	if ((r = verify_pin(pi, tp, secret)) != PS_OK)
		goto out;
	pi->unlocked = true;
	pi->unlocked_ref = key->id;
	ps_log_debug(tp->log, "piv: PIN verified for %s", key->label);
 out:
	if (r != PS_OK) {
		tell_if_gone(pi, tp);
		ps_pcsc_end(pi->pcsc);
	}
	return r;
}

static int
general_authenticate(struct piv_impl *pi, const struct ps_log *log,
    int idx, const EVP_MD *md, const unsigned char *digest, size_t dlen,
    unsigned char **sig, size_t *siglen)
{
	unsigned char in[PS_APDU_DATA_MAX / 2], *resp = NULL;
	const unsigned char *raw;
	unsigned char alg = pi->keys.alg[idx];
	size_t inlen = pi->keys.inlen[idx], len = 0, rawlen;
	struct ps_apdu a;
	uint16_t sw = 0;
	int r;

	if (inlen > sizeof(in))
		return PS_ERR_INTERNAL;
	r = ps_piv_sign_input(log, alg, md, digest, dlen, in, inlen);
	if (r != PS_OK)
		goto out;
	r = ps_piv_cmd_general_auth(&a, alg, (unsigned char)pi->keys.key[idx].id,
	    in, inlen);
	if (r != PS_OK)
		goto out;
	if ((resp = malloc(PS_PIV_RESP_MAX)) == NULL) {
		ps_log_err(log, "piv: out of memory");
		r = PS_ERR_NOMEM;
		goto out;
	}
	r = send_cmd(pi->pcsc, &a, resp, PS_PIV_RESP_MAX, &len, &sw);
	if (r != PS_OK)
		goto out;
	if (sw != PS_SW_OK) {
		ps_log_err(log, "piv: the card refused to sign with %s: %04X "
		    "(%s)", pi->keys.key[idx].label, sw, ps_piv_sw_str(sw));
		r = PS_ERR_TOKEN;
		goto out;
	}
	r = ps_piv_parse_auth_response(log, resp, len, &raw, &rawlen);
	if (r != PS_OK)
		goto out;
	r = ps_piv_finish_signature(log, alg, inlen, raw, rawlen, sig, siglen);
 out:
	ps_wipe(in, sizeof(in));
	ps_apdu_clear(&a);
	free(resp);
	return r;
}

static int
piv_sign(struct ps_token *tok, const struct ps_token_key *key,
    const EVP_MD *md, const unsigned char *digest, size_t digest_len,
    unsigned char **sig, size_t *sig_len)
{
	const struct ps_token_params *tp = &tok->params;
	struct piv_impl *pi = tok->impl;
	int idx, r;

	*sig = NULL;
	*sig_len = 0;
	if (pi == NULL || pi->pcsc == NULL || key == NULL ||
	    (idx = key_index(pi, key)) < 0) {
		ps_log_err(tp->log, "piv: signing with a key this card does "
		    "not hold");
		return PS_ERR_INTERNAL;
	}
	if (!pi->unlocked || pi->unlocked_ref != key->id) {
		ps_log_err(tp->log, "piv: signing with %s before its PIN was "
		    "verified", key->label);
		return PS_ERR_INTERNAL;
	}
	r = general_authenticate(pi, tp->log, idx, md, digest, digest_len,
	    sig, sig_len);
	logout(pi, tp->log);
	pi->unlocked = false;
	ps_pcsc_end(pi->pcsc);
	if (r != PS_OK)
		tell_if_gone(pi, tp);
	ps_log_debug(tp->log, "piv: %lu APDUs exchanged with the card",
	    ps_pcsc_apdu_count(pi->pcsc));
	return r;
}

static void
piv_close(struct ps_token *tok)
{
	struct piv_impl *pi = tok->impl;

	if (pi == NULL)
		return;
	if (pi->pcsc != NULL) {
		if (pi->unlocked)
			logout(pi, tok->params.log);
		ps_pcsc_disconnect(pi->pcsc, pi->need_reset);
	}
	impl_free(pi);
	tok->impl = NULL;
}

const struct ps_token_ops ps_token_piv_ops = {
	.name = "piv",
	.lists_without_secret = true,
	.open = piv_open,
	.list_keys = piv_list_keys,
	.check_ready = piv_check_ready,
	.secret_prompt = piv_secret_prompt,
	.unlock = piv_unlock,
	.sign = piv_sign,
	.close = piv_close,
};

/* Read one slot of the card already selected; used by enrolment. */
static int
read_one(const struct scan *s, const struct ps_piv_slot *slot, X509 **out)
{
	int r;

	if ((r = ps_pcsc_begin(s->pcsc)) != PS_OK)
		return r;
	if ((r = select_piv(s->pcsc, s->log)) == PS_OK)
		r = read_slot_cert(s->pcsc, s->log, slot, out);
	else if (r == PS_ERR_NOT_FOUND)
		r = PS_ERR_TOKEN;
	ps_pcsc_end(s->pcsc);
	if (r == PS_ERR_NOT_FOUND)
		ps_log_err(s->log, "piv: slot %s of the card in '%s' holds no "
		    "usable certificate", slot->name, ps_pcsc_reader(s->pcsc));
	return r;
}

int
ps_piv_read_certificate(const struct ps_config *cfg,
    const struct ps_log *log, const char *slot_name, X509 **out)
{
	const struct ps_piv_slot *slot;
	struct piv_keys none;
	struct scan s;
	int r;

	if (out == NULL || cfg == NULL)
		return PS_ERR_INTERNAL;
	*out = NULL;
	if ((slot = ps_piv_slot_by_name(slot_name ? slot_name : "9a")) ==
	    NULL) {
		ps_log_err(log, "piv: unknown slot '%s' (use 9a, 9c, 9d or 9e)",
		    slot_name);
		return PS_ERR_INVALID;
	}
	memset(&s, 0, sizeof(s));
	memset(&none, 0, sizeof(none));
	s.cfg = cfg;
	s.log = log;
	if ((r = ps_pcsc_open(cfg, log, &s.pcsc)) != PS_OK)
		return r;
	if ((r = find_card(&s, false, &none)) == PS_OK)
		r = read_one(&s, slot, out);
	keys_clear(&none);
	ps_pcsc_close(s.pcsc);
	return r;
}
