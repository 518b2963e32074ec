/*
 * pcsc.c - the PC/SC transport of the PIV backend over pcsc-lite (see
 * pcsc.h): reader discovery, waiting for a card without polling, and the
 * ISO 7816-4 transport rules (GET RESPONSE, wrong Le, chaining) that
 * sit between a PIV command and the short APDUs a reader carries.
 */
#include <stdlib.h>
#include <string.h>

#include "pcsc.h"
#include "ps_status.h"
#include "util.h"

/* One short response: 256 data bytes + SW1 SW2. */
#define SHORT_RESP_MAX		258
/* One short command: header, Lc, 255 data bytes, Le. */
#define SHORT_CMD_MAX		261
/* A card that keeps saying 61xx must not keep us forever: at most this
 * many exchanges per command, and only a few in a row that bring no
 * data (a wrong-Le re-send, an empty 61xx). Cards that hand out small
 * chunks (T=0 readers, 64-byte buffers) stay well inside. */
#define MAX_EXCHANGES		1024
#define MAX_STALLS		4
/* pcsc-lite's limit is 128; refuse anything absurd from the daemon. */
#define READER_NAME_MAX		256
#define READERS_LEN_MAX		65536

const struct ps_pcsc_ops ps_pcsc_lite_ops = {
	.establish = SCardEstablishContext,
	.release = SCardReleaseContext,
	.list_readers = SCardListReaders,
	.get_status_change = SCardGetStatusChange,
	.connect = SCardConnect,
	.disconnect = SCardDisconnect,
	.begin = SCardBeginTransaction,
	.end = SCardEndTransaction,
	.transmit = SCardTransmit,
};

static const struct ps_pcsc_ops *override_ops;

struct ps_pcsc {
	const struct ps_pcsc_ops *ops;
	const struct ps_log *log;
	SCARDCONTEXT ctx;
	bool have_ctx;
	SCARDHANDLE card;
	bool have_card;
	bool in_txn;
	bool gone;
	DWORD proto;
	char *reader;
	unsigned long apdus;
};

void
ps_pcsc_set_ops(const struct ps_pcsc_ops *ops)
{
	override_ops = ops;
}

void
ps_readers_free(struct ps_readers *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->count; i++)
		free(r->names[i]);
	free(r->names);
	r->names = NULL;
	r->count = 0;
}

static const char *
rv_str(LONG rv)
{
	return pcsc_stringify_error(rv);
}

static bool
rv_means_no_service(LONG rv)
{
	return rv == SCARD_E_NO_SERVICE || rv == SCARD_E_SERVICE_STOPPED;
}

/* The card left (or was reset, losing every state we built on it). */
static bool
rv_means_card_gone(LONG rv)
{
	return rv == SCARD_W_REMOVED_CARD || rv == SCARD_E_NO_SMARTCARD ||
	    rv == SCARD_W_RESET_CARD || rv == SCARD_E_READER_UNAVAILABLE ||
	    rv == SCARD_W_UNPOWERED_CARD || rv == SCARD_E_UNKNOWN_READER;
}

/* The reader lost the card in the middle of an exchange: pcscd reports
 * the removal only at its next poll, until then a pulled card looks like
 * this (IFD communication error, or an answer without a status word). */
static bool
rv_means_card_mute(LONG rv)
{
	return rv == SCARD_E_NOT_TRANSACTED ||
	    rv == SCARD_W_UNRESPONSIVE_CARD || rv == SCARD_F_COMM_ERROR;
}

/* Map a failed card call to a status, with one log line. */
static int
card_error(struct ps_pcsc *p, const char *what, LONG rv)
{
	if (rv == SCARD_W_RESET_CARD) {
		p->gone = true;
		ps_log_err(p->log, "pcsc: %s: the card in '%s' was reset by "
		    "another program", what, p->reader ? p->reader : "?");
		return PS_ERR_TOKEN;
	}
	if (rv_means_card_gone(rv)) {
		p->gone = true;
		ps_log_err(p->log, "pcsc: %s: the card was removed from '%s'",
		    what, p->reader ? p->reader : "?");
		return PS_ERR_TOKEN;
	}
	if (rv_means_card_mute(rv)) {
		p->gone = true;
		ps_log_err(p->log, "pcsc: %s: the card in '%s' stopped "
		    "answering (removed?): %s", what,
		    p->reader ? p->reader : "?", rv_str(rv));
		return PS_ERR_TOKEN;
	}
	if (rv_means_no_service(rv)) {
		p->gone = true;
		ps_log_err(p->log, "pcsc: %s: pcscd went away", what);
		return PS_ERR_TOKEN;
	}
	ps_log_err(p->log, "pcsc: %s: %s (0x%08lx)", what, rv_str(rv),
	    (unsigned long)(uint32_t)rv);
	return PS_ERR_TOKEN;
}

static void
point_at_socket(const struct ps_config *cfg, const struct ps_log *log)
{
	const char *cur;

	if (cfg == NULL || cfg->pcsc_socket == NULL ||
	    cfg->pcsc_socket[0] == '\0')
		return;
	cur = getenv("PCSCLITE_CSOCK_NAME");
	if (cur != NULL && strcmp(cur, cfg->pcsc_socket) == 0)
		return;
	/* pcsc-lite reads this once per process, at its first call. */
	if (setenv("PCSCLITE_CSOCK_NAME", cfg->pcsc_socket, 1) != 0)
		ps_log_warn(log, "pcsc: cannot set PCSCLITE_CSOCK_NAME");
	else
		ps_log_debug(log, "pcsc: using pcscd at %s", cfg->pcsc_socket);
}

int
ps_pcsc_open(const struct ps_config *cfg, const struct ps_log *log,
    struct ps_pcsc **out)
{
	struct ps_pcsc *p;
	LONG rv;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		ps_log_err(log, "pcsc: out of memory");
		return PS_ERR_NOMEM;
	}
	p->ops = override_ops != NULL ? override_ops : &ps_pcsc_lite_ops;
	p->log = log;
	point_at_socket(cfg, log);
	rv = p->ops->establish(SCARD_SCOPE_SYSTEM, NULL, NULL, &p->ctx);
	if (rv != SCARD_S_SUCCESS) {
		if (rv_means_no_service(rv))
			ps_log_err(log, "pcsc: the smart card service (pcscd) "
			    "is not running%s%s",
			    cfg && cfg->pcsc_socket ? " at " : "",
			    cfg && cfg->pcsc_socket ? cfg->pcsc_socket : "");
		else
			ps_log_err(log, "pcsc: cannot reach pcscd: %s",
			    rv_str(rv));
		free(p);
		return PS_ERR_NO_TOKEN;
	}
	p->have_ctx = true;
	*out = p;
	return PS_OK;
}

void
ps_pcsc_close(struct ps_pcsc *p)
{
	LONG rv;

	if (p == NULL)
		return;
	ps_pcsc_disconnect(p, false);
	if (p->have_ctx && (rv = p->ops->release(p->ctx)) != SCARD_S_SUCCESS)
		ps_log_debug(p->log, "pcsc: release context: %s", rv_str(rv));
	free(p->reader);
	free(p);
}

/* Split pcsc-lite's multi-string, keeping names that contain filter. */
static int
split_readers(const struct ps_log *log, const char *buf, size_t len,
    const char *filter, struct ps_readers *out)
{
	size_t pos = 0, n, cap = 0;
	char **v;

	if (len == 0 || buf[len - 1] != '\0') {
		ps_log_err(log, "pcsc: malformed reader list from pcscd");
		return PS_ERR_TOKEN;
	}
	while (pos < len && buf[pos] != '\0') {
		n = strnlen(buf + pos, len - pos);
		if (n >= READER_NAME_MAX) {
			ps_log_err(log, "pcsc: reader name too long");
			return PS_ERR_TOKEN;
		}
		if (filter == NULL || filter[0] == '\0' ||
		    strstr(buf + pos, filter) != NULL) {
			if (out->count == cap) {
				cap = cap ? cap * 2 : 4;
				v = reallocarray(out->names, cap, sizeof(*v));
				if (v == NULL)
					goto nomem;
				out->names = v;
			}
			if ((out->names[out->count] = strdup(buf + pos)) ==
			    NULL)
				goto nomem;
			out->count++;
		}
		pos += n + 1;
	}
	return PS_OK;
 nomem:
	ps_log_err(log, "pcsc: out of memory");
	return PS_ERR_NOMEM;
}

int
ps_pcsc_list_readers(struct ps_pcsc *p, const char *filter,
    struct ps_readers *out)
{
	DWORD len = 0;
	char *buf = NULL;
	LONG rv;
	int r;

	out->names = NULL;
	out->count = 0;
	rv = p->ops->list_readers(p->ctx, NULL, NULL, &len);
	if (rv == SCARD_E_NO_READERS_AVAILABLE)
		return PS_OK;
	if (rv != SCARD_S_SUCCESS)
		goto fail;
	if (len == 0 || len > READERS_LEN_MAX) {
		ps_log_err(p->log, "pcsc: pcscd reports a reader list of %lu "
		    "bytes", (unsigned long)len);
		return PS_ERR_TOKEN;
	}
	if ((buf = calloc(1, len)) == NULL) {
		ps_log_err(p->log, "pcsc: out of memory");
		return PS_ERR_NOMEM;
	}
	rv = p->ops->list_readers(p->ctx, NULL, buf, &len);
	if (rv == SCARD_E_NO_READERS_AVAILABLE) {
		free(buf);
		return PS_OK;
	}
	if (rv != SCARD_S_SUCCESS) {
		free(buf);
		goto fail;
	}
	r = split_readers(p->log, buf, len, filter, out);
	free(buf);
	if (r != PS_OK)
		ps_readers_free(out);
	return r;
 fail:
	if (rv_means_no_service(rv)) {
		ps_log_err(p->log, "pcsc: the smart card service (pcscd) is "
		    "not running");
		return PS_ERR_NO_TOKEN;
	}
	ps_log_err(p->log, "pcsc: cannot list readers: %s", rv_str(rv));
	return PS_ERR_TOKEN;
}

static bool
state_has_card(DWORD s)
{
	return (s & SCARD_STATE_PRESENT) != 0 && (s & SCARD_STATE_MUTE) == 0;
}

/* Current state of every reader in `r`, plus pcscd's reader-list slot. */
static int
snapshot(struct ps_pcsc *p, const struct ps_readers *r,
    SCARD_READERSTATE *st, DWORD n)
{
	size_t i;
	LONG rv;

	memset(st, 0, n * sizeof(*st));
	for (i = 0; i < r->count; i++) {
		st[i].szReader = r->names[i];
		st[i].dwCurrentState = SCARD_STATE_UNAWARE;
	}
	st[r->count].szReader = "\\\\?PnP?\\Notification";
	st[r->count].dwCurrentState = SCARD_STATE_UNAWARE;
	rv = p->ops->get_status_change(p->ctx, 0, st, n);
	if (rv == SCARD_S_SUCCESS || rv == SCARD_E_TIMEOUT)
		return PS_OK;
	if (rv_means_no_service(rv)) {
		ps_log_err(p->log, "pcsc: the smart card service (pcscd) is "
		    "not running");
		return PS_ERR_NO_TOKEN;
	}
	ps_log_err(p->log, "pcsc: cannot read reader states: %s", rv_str(rv));
	return PS_ERR_TOKEN;
}

int
ps_pcsc_cards_present(struct ps_pcsc *p, const struct ps_readers *r,
    bool *present)
{
	SCARD_READERSTATE *st;
	size_t i;
	int ret;

	if ((st = calloc(r->count + 1, sizeof(*st))) == NULL) {
		ps_log_err(p->log, "pcsc: out of memory");
		return PS_ERR_NOMEM;
	}
	ret = snapshot(p, r, st, (DWORD)(r->count + 1));
	for (i = 0; i < r->count; i++)
		present[i] = ret == PS_OK && state_has_card(st[i].dwEventState);
	free(st);
	return ret;
}

int
ps_pcsc_wait_change(struct ps_pcsc *p, const struct ps_readers *r,
    unsigned timeout_ms)
{
	SCARD_READERSTATE *st;
	DWORD n = (DWORD)(r->count + 1);
	size_t i;
	LONG rv;
	int ret;

	if ((st = calloc(n, sizeof(*st))) == NULL) {
		ps_log_err(p->log, "pcsc: out of memory");
		return PS_ERR_NOMEM;
	}
	if ((ret = snapshot(p, r, st, n)) != PS_OK)
		goto out;
	for (i = 0; i < n; i++)
		st[i].dwCurrentState = st[i].dwEventState &
		    ~(DWORD)SCARD_STATE_CHANGED;
	rv = p->ops->get_status_change(p->ctx, timeout_ms, st, n);
	if (rv == SCARD_S_SUCCESS || rv == SCARD_E_UNKNOWN_READER)
		ret = PS_OK;		/* something changed: look again */
	else if (rv == SCARD_E_TIMEOUT)
		ret = PS_ERR_NOT_FOUND;
	else if (rv_means_no_service(rv)) {
		ps_log_err(p->log, "pcsc: the smart card service (pcscd) "
		    "stopped");
		ret = PS_ERR_NO_TOKEN;
	} else {
		ps_log_err(p->log, "pcsc: waiting for a card failed: %s",
		    rv_str(rv));
		ret = PS_ERR_TOKEN;
	}
 out:
	free(st);
	return ret;
}

int
ps_pcsc_connect(struct ps_pcsc *p, const char *reader)
{
	LONG rv;

	ps_pcsc_disconnect(p, false);
	free(p->reader);
	if ((p->reader = strdup(reader)) == NULL) {
		ps_log_err(p->log, "pcsc: out of memory");
		return PS_ERR_NOMEM;
	}
	p->gone = false;
	rv = p->ops->connect(p->ctx, reader, SCARD_SHARE_SHARED,
	    SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &p->card, &p->proto);
	if (rv == SCARD_S_SUCCESS) {
		if (p->proto != SCARD_PROTOCOL_T0 &&
		    p->proto != SCARD_PROTOCOL_T1) {
			ps_log_err(p->log, "pcsc: card in '%s' speaks neither "
			    "T=0 nor T=1", reader);
			p->have_card = true;
			ps_pcsc_disconnect(p, false);
			return PS_ERR_TOKEN;
		}
		p->have_card = true;
		return PS_OK;
	}
	if (rv == SCARD_E_NO_SMARTCARD || rv == SCARD_W_REMOVED_CARD) {
		ps_log_debug(p->log, "pcsc: no card in '%s'", reader);
		return PS_ERR_NO_TOKEN;
	}
	if (rv_means_no_service(rv)) {
		ps_log_err(p->log, "pcsc: the smart card service (pcscd) is "
		    "not running");
		return PS_ERR_NO_TOKEN;
	}
	if (rv == SCARD_E_SHARING_VIOLATION)
		ps_log_err(p->log, "pcsc: the card in '%s' is held "
		    "exclusively by another program", reader);
	else if (rv == SCARD_W_UNRESPONSIVE_CARD ||
	    rv == SCARD_W_UNPOWERED_CARD || rv == SCARD_E_PROTO_MISMATCH)
		ps_log_err(p->log, "pcsc: the card in '%s' does not respond "
		    "(%s)", reader, rv_str(rv));
	else
		ps_log_err(p->log, "pcsc: cannot connect to '%s': %s", reader,
		    rv_str(rv));
	return PS_ERR_TOKEN;
}

void
ps_pcsc_disconnect(struct ps_pcsc *p, bool reset)
{
	LONG rv;

	if (p == NULL || !p->have_card)
		return;
	ps_pcsc_end(p);
	rv = p->ops->disconnect(p->card, reset ? SCARD_RESET_CARD :
	    SCARD_LEAVE_CARD);
	if (rv != SCARD_S_SUCCESS)
		ps_log_debug(p->log, "pcsc: disconnect: %s", rv_str(rv));
	p->have_card = false;
}

const char *
ps_pcsc_reader(const struct ps_pcsc *p)
{
	return p != NULL && p->reader != NULL ? p->reader : "?";
}

int
ps_pcsc_begin(struct ps_pcsc *p)
{
	LONG rv;

	if (!p->have_card) {
		ps_log_err(p->log, "pcsc: no card connected");
		return PS_ERR_INTERNAL;
	}
	if (p->in_txn)
		return PS_OK;
	if ((rv = p->ops->begin(p->card)) != SCARD_S_SUCCESS)
		return card_error(p, "begin transaction", rv);
	p->in_txn = true;
	return PS_OK;
}

void
ps_pcsc_end(struct ps_pcsc *p)
{
	LONG rv;

	if (p == NULL || !p->have_card || !p->in_txn)
		return;
	p->in_txn = false;
	if ((rv = p->ops->end(p->card, SCARD_LEAVE_CARD)) != SCARD_S_SUCCESS)
		ps_log_debug(p->log, "pcsc: end transaction: %s", rv_str(rv));
}

bool
ps_pcsc_card_gone(const struct ps_pcsc *p)
{
	return p != NULL && p->gone;
}

unsigned long
ps_pcsc_apdu_count(const struct ps_pcsc *p)
{
	return p != NULL ? p->apdus : 0;
}

/* One SCardTransmit of an encoded short APDU. */
static int
exchange(struct ps_pcsc *p, const unsigned char *cmd, size_t cmdlen,
    unsigned char *resp, size_t *resplen)
{
	const SCARD_IO_REQUEST *pci = p->proto == SCARD_PROTOCOL_T0 ?
	    SCARD_PCI_T0 : SCARD_PCI_T1;
	DWORD rlen = SHORT_RESP_MAX;
	LONG rv;

	if (!p->have_card) {
		ps_log_err(p->log, "pcsc: no card connected");
		return PS_ERR_INTERNAL;
	}
	p->apdus++;
	rv = p->ops->transmit(p->card, pci, cmd, (DWORD)cmdlen, NULL, resp,
	    &rlen);
	if (rv != SCARD_S_SUCCESS)
		return card_error(p, "transmit", rv);
	if (rlen < 2) {
		p->gone = true;
		ps_log_err(p->log, "pcsc: the card in '%s' stopped answering "
		    "(removed?): %lu-byte response", ps_pcsc_reader(p),
		    (unsigned long)rlen);
		return PS_ERR_TOKEN;
	}
	if (rlen > SHORT_RESP_MAX) {
		ps_log_err(p->log, "pcsc: card sent a %lu-byte response",
		    (unsigned long)rlen);
		return PS_ERR_TOKEN;
	}
	*resplen = rlen;
	return PS_OK;
}

/* Send every chunk but the last with CLA bit 0x10 (ISO 7816-4 5.1.1.1);
 * the card must accept each with a bare 9000. Returns the offset of the
 * last chunk. */
static int
send_chain(struct ps_pcsc *p, const struct ps_apdu *cmd, size_t *last)
{
	unsigned char tx[SHORT_CMD_MAX], rx[SHORT_RESP_MAX];
	size_t off = 0, txlen, rxlen, blen;
	uint16_t sw;
	int r = PS_OK;

	while (cmd->lc - off > 255) {
		r = ps_apdu_encode_short(cmd, cmd->cla | 0x10, cmd->data + off,
		    255, 0, tx, sizeof(tx), &txlen);
		if (r != PS_OK)
			break;
		r = exchange(p, tx, txlen, rx, &rxlen);
		if (r != PS_OK)
			break;
		if ((r = ps_apdu_split(rx, rxlen, &blen, &sw)) != PS_OK)
			break;
		if (sw != PS_SW_OK || blen != 0) {
			ps_log_err(p->log, "pcsc: card refused a chained "
			    "command: %04X (%s)", sw, ps_piv_sw_str(sw));
			r = PS_ERR_TOKEN;
			break;
		}
		off += 255;
	}
	ps_wipe(tx, sizeof(tx));
	*last = off;
	return r;
}

/* Append a response body to the caller's buffer, bounded by cap. */
static int
append(struct ps_pcsc *p, unsigned char *resp, size_t cap, size_t *have,
    const unsigned char *data, size_t n)
{
	if (n > cap - *have) {
		ps_log_err(p->log, "pcsc: card response longer than %zu bytes",
		    cap);
		return PS_ERR_TOKEN;
	}
	memcpy(resp + *have, data, n);
	*have += n;
	return PS_OK;
}

int
ps_pcsc_transmit(struct ps_pcsc *p, const struct ps_apdu *cmd,
    unsigned char *resp, size_t cap, size_t *resp_len, uint16_t *sw)
{
	unsigned char tx[SHORT_CMD_MAX], rx[SHORT_RESP_MAX];
	struct ps_apdu getresp;
	const struct ps_apdu *cur = cmd;
	size_t off = 0, txlen = 0, rxlen, blen, have = 0, lc;
	const unsigned char *data;
	unsigned ne = cmd->ne, rounds, stalls = 0;
	bool resent = false;
	int r;

	*resp_len = 0;
	*sw = 0;
	if (cmd->lc > sizeof(cmd->data) || cmd->ne > 256)
		return PS_ERR_INTERNAL;
	if ((r = send_chain(p, cmd, &off)) != PS_OK)
		return r;
	data = cmd->data + off;
	lc = cmd->lc - off;
	for (rounds = 0; ; rounds++) {
		if (rounds >= MAX_EXCHANGES || stalls > MAX_STALLS) {
			ps_log_err(p->log, "pcsc: card keeps asking for more "
			    "GET RESPONSE rounds");
			r = PS_ERR_TOKEN;
			break;
		}
		r = ps_apdu_encode_short(cur, cur->cla, data, lc, ne, tx,
		    sizeof(tx), &txlen);
		if (r != PS_OK)
			break;
		r = exchange(p, tx, txlen, rx, &rxlen);
		if (r != PS_OK)
			break;
		if ((r = ps_apdu_split(rx, rxlen, &blen, sw)) != PS_OK)
			break;
		if ((*sw & 0xFF00) == 0x6C00) {
			/* Wrong Le: send the same command again, once, with
			 * the length the card asked for. */
			if (resent) {
				ps_log_err(p->log, "pcsc: card asked twice "
				    "for a different Le");
				r = PS_ERR_TOKEN;
				break;
			}
			resent = true;
			stalls++;
			ne = (*sw & 0xFF) == 0 ? 256 : (*sw & 0xFF);
			continue;
		}
		resent = false;
		stalls = blen == 0 ? stalls + 1 : 0;
		if ((r = append(p, resp, cap, &have, rx, blen)) != PS_OK)
			break;
		if ((*sw & 0xFF00) != 0x6100)
			break;
		/* 61xx: more is waiting; GET RESPONSE carries no data. */
		ps_piv_cmd_get_response(&getresp, *sw & 0xFF);
		cur = &getresp;
		data = NULL;
		lc = 0;
		ne = getresp.ne;
	}
	ps_wipe(tx, sizeof(tx));
	ps_wipe(rx, sizeof(rx));
	if (r != PS_OK) {
		*sw = 0;
		return r;
	}
	*resp_len = have;
	return PS_OK;
}
