/*
 * conv.c - NULL-tolerant wrappers around the ps_conv callbacks.
 */
#include <stdarg.h>
#include <stdio.h>

#include "conv.h"
#include "ps_status.h"
#include "util.h"

int
ps_conv_prompt(const struct ps_conv *conv, int echo, const char *msg,
    char **answer)
{
	*answer = NULL;
	if (conv == NULL || conv->prompt == NULL)
		return PS_ERR_CONV;
	if (conv->prompt(conv->arg, echo, msg, answer) != PS_OK ||
	    *answer == NULL) {
		/* a callback that failed half-way may still have answered */
		ps_free_secret(*answer);
		*answer = NULL;
		return PS_ERR_CONV;
	}
	return PS_OK;
}

void
ps_conv_info(const struct ps_conv *conv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (conv == NULL || conv->info == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conv->info(conv->arg, msg);
}

void
ps_conv_error(const struct ps_conv *conv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (conv == NULL || conv->error == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conv->error(conv->arg, msg);
}
