/*
 * token.c - choosing and opening a token backend (see token.h).
 *
 * Contract with the backends: ops->open() fills tok->impl; ops->close()
 * must cope with a token whose open() failed half way (impl NULL or
 * partly filled), because ps_token_open() calls it on every failure so
 * that a backend cannot leak by forgetting its own cleanup. Backends read
 * tok->params at the time of use: ps_token_open() may change params.conv
 * after open() returns.
 */
#include <stdlib.h>
#include <string.h>

#include "ps_status.h"
#include "token.h"
#include "util.h"

static int
open_backend(const struct ps_token_ops *ops, const struct ps_token_params *p,
    struct ps_token **out)
{
	struct ps_token *tok;
	int r;

	if ((tok = calloc(1, sizeof(*tok))) == NULL) {
		ps_log_err(p->log, "token: out of memory");
		return PS_ERR_NOMEM;
	}
	tok->ops = ops;
	tok->params = *p;
	r = ops->open(tok);
	if (r != PS_OK) {
		ps_token_close(tok);
		return r;
	}
	*out = tok;
	return PS_OK;
}

#ifdef PS_HAVE_PIV
/* True when the caller gave a want_key hint and no key of `tok` fits it. */
static bool
holds_no_wanted_key(struct ps_token *tok, const struct ps_token_params *p)
{
	const struct ps_token_key *keys;
	size_t n, i;

	if (p->want_key == NULL)
		return false;
	if (tok->ops->list_keys(tok, &keys, &n) != PS_OK)
		return false;
	for (i = 0; i < n; i++)
		if (keys[i].pub != NULL && p->want_key(p->want_key_arg,
		    keys[i].pub))
			return false;
	return true;
}

/*
 * AUTO: take a card only when one is already there (no waiting, no
 * "insert your card": the keystore may be what they use) and it holds a
 * wanted key when the caller said which; otherwise the keystore, which
 * speaks for itself when it is missing too. The quiet parameters point
 * at locals, so the real ones are put back before returning.
 */
static int
open_auto(const struct ps_token_params *p, struct ps_token **out)
{
	struct ps_token_params quiet = *p;
	struct ps_config nowait;
	int r;

	if (p->cfg == NULL)
		return PS_ERR_INTERNAL;
	nowait = *p->cfg;
	nowait.card_timeout = 0;
	quiet.cfg = &nowait;
	quiet.conv = NULL;
	r = open_backend(&ps_token_piv_ops, &quiet, out);
	if (r == PS_OK) {
		(*out)->params.cfg = p->cfg;
		(*out)->params.conv = p->conv;
		if (!holds_no_wanted_key(*out, p))
			return PS_OK;
		ps_log_debug(p->log, "token: the card holds no wanted key, "
		    "trying the keystore");
		ps_token_close(*out);
		*out = NULL;
	} else if (r != PS_ERR_NO_TOKEN) {
		return r;
	} else {
		ps_log_debug(p->log, "token: no PIV card, trying the keystore");
	}
	return open_backend(&ps_token_soft_ops, p, out);
}
#endif

int
ps_token_open(enum ps_backend backend, const struct ps_token_params *p,
    struct ps_token **out)
{
	if (out == NULL)
		return PS_ERR_INTERNAL;
	*out = NULL;
	if (p == NULL)
		return PS_ERR_INTERNAL;
	switch (backend) {
	case PS_BACKEND_SOFT:
		return open_backend(&ps_token_soft_ops, p, out);
	case PS_BACKEND_PIV:
#ifdef PS_HAVE_PIV
		return open_backend(&ps_token_piv_ops, p, out);
#else
		ps_log_err(p->log, "token: PIV backend not available in this "
		    "build");
		return PS_ERR_NO_TOKEN;
#endif
	case PS_BACKEND_AUTO:
#ifdef PS_HAVE_PIV
		return open_auto(p, out);
#else
		return open_backend(&ps_token_soft_ops, p, out);
#endif
	}
	ps_log_err(p->log, "token: unknown backend %d", (int)backend);
	return PS_ERR_INTERNAL;
}

void
ps_token_close(struct ps_token *tok)
{
	if (tok == NULL)
		return;
	if (tok->ops != NULL && tok->ops->close != NULL)
		tok->ops->close(tok);
	ps_freezero(tok, sizeof(*tok));
}
