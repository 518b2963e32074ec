/*
 * status.c - names for ps_status codes, for log lines.
 */
#include "ps_status.h"

const char *
ps_status_str(int status)
{
	switch (status) {
	case PS_OK:		return "success";
	case PS_ERR_NOMEM:	return "out of memory";
	case PS_ERR_INVALID:	return "invalid input";
	case PS_ERR_IO:		return "I/O error";
	case PS_ERR_UNSAFE:	return "unsafe ownership or permissions";
	case PS_ERR_NOT_FOUND:	return "not found";
	case PS_ERR_EXISTS:	return "already exists";
	case PS_ERR_POLICY:	return "refused by certificate policy";
	case PS_ERR_EXPIRED:	return "certificate expired";
	case PS_ERR_NO_TOKEN:	return "no token with a registered key";
	case PS_ERR_BAD_SECRET:	return "wrong PIN or password";
	case PS_ERR_PIN_LOCKED:	return "PIN blocked or too few tries left";
	case PS_ERR_AUTH:	return "signature verification failed";
	case PS_ERR_CONV:	return "conversation failed";
	case PS_ERR_CRYPTO:	return "cryptographic library error";
	case PS_ERR_TOKEN:	return "token error";
	case PS_ERR_INTERNAL:	return "internal error";
	}
	return "unknown error";
}
