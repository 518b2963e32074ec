/*
 * ps_status.h - result codes shared by every part of libpersonalsign.
 *
 * The core never speaks PAM; callers (the PAM module, the OpenVPN plugin,
 * the tools) map these codes onto their own. PS_OK is the only success:
 * every other value must be treated as a refusal.
 */
#ifndef PS_STATUS_H
#define PS_STATUS_H

enum ps_status {
	PS_OK = 0,
	PS_ERR_NOMEM,		/* allocation failed */
	PS_ERR_INVALID,		/* malformed input: certificate, file, option */
	PS_ERR_IO,		/* a file or device could not be read/written */
	PS_ERR_UNSAFE,		/* ownership/permissions make a file untrustworthy */
	PS_ERR_NOT_FOUND,	/* nothing registered / no such entry */
	PS_ERR_EXISTS,		/* already registered */
	PS_ERR_POLICY,		/* certificate refused by policy */
	PS_ERR_EXPIRED,		/* certificate expired */
	PS_ERR_NO_TOKEN,	/* no card / keystore / matching key */
	PS_ERR_BAD_SECRET,	/* wrong PIN or password */
	PS_ERR_PIN_LOCKED,	/* PIN blocked, or too few tries left to risk one */
	PS_ERR_AUTH,		/* signature did not verify */
	PS_ERR_CONV,		/* the user could not be asked / cancelled */
	PS_ERR_CRYPTO,		/* OpenSSL failed unexpectedly */
	PS_ERR_TOKEN,		/* card/keystore answered garbage or went away */
	PS_ERR_INTERNAL,	/* a bug or impossible state */
};

/* A short English name for logs, never NULL. */
const char *ps_status_str(int status);

#endif /* PS_STATUS_H */
