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
/*
 * AUTO: look for a card without telling the user "insert your card",
 * since the keystore may be what they use; the keystore backend speaks
 * for itself when neither is there.
 */
static int
open_auto(const struct ps_token_params *p, struct ps_token **out)
{
	struct ps_token_params quiet = *p;
	int r;

	quiet.conv = NULL;
	r = open_backend(&ps_token_piv_ops, &quiet, out);
	if (r == PS_OK) {
		(*out)->params.conv = p->conv;
		return PS_OK;
	}
	if (r != PS_ERR_NO_TOKEN)
		return r;
	ps_log_debug(p->log, "token: no PIV card, trying the keystore");
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
