/*
 * pcsc.h - the PC/SC transport under the PIV backend: finding a reader
 * with a card, and exchanging APDUs with it (ISO 7816-4 GET RESPONSE,
 * wrong-Le re-send, command chaining) over pcsc-lite.
 *
 * pcsc-lite is reached only through struct ps_pcsc_ops so that unit tests
 * and the fuzzer can play the card (the idea of libfido2's fuzz/pcsc.c).
 */
#ifndef PS_PCSC_H
#define PS_PCSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <winscard.h>

#include "config.h"
#include "log.h"
#include "piv.h"

/* The pcsc-lite calls we use, with pcsc-lite's own signatures. */
struct ps_pcsc_ops {
	LONG (*establish)(DWORD scope, LPCVOID r1, LPCVOID r2,
	    LPSCARDCONTEXT ctx);
	LONG (*release)(SCARDCONTEXT ctx);
	LONG (*list_readers)(SCARDCONTEXT ctx, LPCSTR groups, LPSTR readers,
	    LPDWORD len);
	LONG (*get_status_change)(SCARDCONTEXT ctx, DWORD timeout_ms,
	    SCARD_READERSTATE *states, DWORD count);
	LONG (*connect)(SCARDCONTEXT ctx, LPCSTR reader, DWORD share,
	    DWORD protocols, LPSCARDHANDLE card, LPDWORD active);
	LONG (*disconnect)(SCARDHANDLE card, DWORD disposition);
	LONG (*begin)(SCARDHANDLE card);
	LONG (*end)(SCARDHANDLE card, DWORD disposition);
	LONG (*transmit)(SCARDHANDLE card, const SCARD_IO_REQUEST *send_pci,
	    LPCBYTE send, DWORD send_len, SCARD_IO_REQUEST *recv_pci,
	    LPBYTE recv, LPDWORD recv_len);
};

/* The real thing. */
extern const struct ps_pcsc_ops ps_pcsc_lite_ops;

/*
 * For unit tests and fuzzers only: make every later ps_pcsc_open() use
 * `ops` (NULL: back to pcsc-lite). Not thread-safe by design.
 */
void ps_pcsc_set_ops(const struct ps_pcsc_ops *ops);

/* Reader names: a malloc'd array of malloc'd strings. */
struct ps_readers {
	char **names;
	size_t count;
};
void ps_readers_free(struct ps_readers *r);

struct ps_pcsc;

/*
 * Point pcsc-lite at cfg->pcsc_socket (PCSCLITE_CSOCK_NAME; sshd clears
 * the environment and pcsc-lite reads it once per process) and open a
 * context. PS_ERR_NO_TOKEN when pcscd is not running (reason logged).
 */
int ps_pcsc_open(const struct ps_config *cfg, const struct ps_log *log,
    struct ps_pcsc **out);
void ps_pcsc_close(struct ps_pcsc *p);

/*
 * Readers whose name contains `filter` (NULL or "": all), in pcscd's
 * order. An empty list is PS_OK with count 0.
 */
int ps_pcsc_list_readers(struct ps_pcsc *p, const char *filter,
    struct ps_readers *out);

/*
 * Which of `r` hold a card right now: present[i] is set for reader i.
 * `present` has r->count entries.
 */
int ps_pcsc_cards_present(struct ps_pcsc *p, const struct ps_readers *r,
    bool *present);

/*
 * Block until a card is inserted or removed, or a reader comes or goes,
 * or `timeout_ms` passes (no polling: SCardGetStatusChange). PS_OK on a
 * change, PS_ERR_NOT_FOUND on timeout, PS_ERR_NO_TOKEN when pcscd went
 * away.
 */
int ps_pcsc_wait_change(struct ps_pcsc *p, const struct ps_readers *r,
    unsigned timeout_ms);

/*
 * Connect (shared, T=0 or T=1) to the card in `reader`, dropping any
 * earlier connection. PS_ERR_NO_TOKEN when there is no card; PS_ERR_TOKEN
 * when it cannot be used (mute, held exclusively by another program).
 */
int ps_pcsc_connect(struct ps_pcsc *p, const char *reader);
/* Disconnect; `reset` resets the card (drops every security state). */
void ps_pcsc_disconnect(struct ps_pcsc *p, bool reset);
const char *ps_pcsc_reader(const struct ps_pcsc *p);

/* Exclusive use of the card for a command sequence. */
int ps_pcsc_begin(struct ps_pcsc *p);
void ps_pcsc_end(struct ps_pcsc *p);

/*
 * Send `cmd` and collect the whole answer: data > 255 bytes goes by
 * command chaining, 61xx is followed by GET RESPONSE until the card is
 * done, 6Cxx re-sends with the Le the card asked for. The body (at most
 * `cap` bytes, else PS_ERR_TOKEN) goes to resp, the final status word to
 * *sw. Any SW is PS_OK here: interpreting it is the caller's job.
 * PS_ERR_TOKEN when the card was removed or reset (ps_pcsc_card_gone then
 * says true) or answered something that is not an APDU response.
 * The encoded command is wiped (it may carry a PIN).
 */
int ps_pcsc_transmit(struct ps_pcsc *p, const struct ps_apdu *cmd,
    unsigned char *resp, size_t cap, size_t *resp_len, uint16_t *sw);

/* True after the card was removed or reset under us. */
bool ps_pcsc_card_gone(const struct ps_pcsc *p);
/* APDUs exchanged since ps_pcsc_open (for debug logs and tests). */
unsigned long ps_pcsc_apdu_count(const struct ps_pcsc *p);

#endif /* PS_PCSC_H */
