/*
 * sshauth.c - mode=sshauth (remote.h): sshd has already verified a public
 * key signature; accept when that key is a registered PersonalSign key of
 * this user that passes policy now.
 *
 * With AuthenticationMethods publickey,keyboard-interactive, sshd puts
 * what earlier methods proved into the PAM environment as SSH_AUTH_INFO_0,
 * one line per method: "publickey ssh-rsa AAAA...". That variable is
 * read with pam_getenv by the module (sshd wipes the process environment
 * of its PAM child, and a variable from anywhere else would be the
 * client's word, not sshd's). Only "publickey" lines count; anything we
 * cannot parse is skipped, so a malformed line can never match.
 */
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

#include "cert.h"
#include "ps_status.h"
#include "remote.h"
#include "sshkey.h"
#include "util.h"

#define METHOD_PUBLICKEY	"publickey"

/* The next space-separated token of line[0..len) from *pos. */
static bool
next_token(const char *line, size_t len, size_t *pos, const char **tok,
    size_t *tlen)
{
	size_t i = *pos, start;

	while (i < len && line[i] == ' ')
		i++;
	start = i;
	while (i < len && line[i] != ' ')
		i++;
	if (i == start)
		return false;
	*tok = line + start;
	*tlen = i - start;
	*pos = i;
	return true;
}

/* The key of one "publickey TYPE BASE64[ info]" line; NULL for any other
 * line, an unsupported key type, or a malformed key. */
static EVP_PKEY *
line_key(const struct ps_log *log, const char *line, size_t len)
{
	const char *method, *type, *b64;
	size_t pos = 0, mlen, tlen, blen;
	EVP_PKEY *key = NULL;
	int r;

	if (!next_token(line, len, &pos, &method, &mlen) ||
	    mlen != strlen(METHOD_PUBLICKEY) ||
	    memcmp(method, METHOD_PUBLICKEY, mlen) != 0)
		return NULL;
	if (!next_token(line, len, &pos, &type, &tlen) ||
	    !next_token(line, len, &pos, &b64, &blen)) {
		ps_log_warn(log, "SSH_AUTH_INFO_0: publickey line without a "
		    "key: ignored");
		return NULL;
	}
	r = ps_sshkey_from_text(type, tlen, b64, blen, &key);
	if (r == PS_ERR_POLICY) {
		ps_log_debug(log, "SSH_AUTH_INFO_0: %.*s key is not a "
		    "PersonalSign key type: ignored", (int)tlen, type);
		return NULL;
	}
	if (r != PS_OK) {
		ps_log_warn(log, "SSH_AUTH_INFO_0: malformed %.*s key: "
		    "ignored (%s)", (int)(tlen > 40 ? 40 : tlen), type,
		    ps_status_str(r));
		return NULL;
	}
	return key;
}

static bool
key_registered(EVP_PKEY *key, const struct ps_reg_list *list, size_t usable,
    size_t *entry)
{
	EVP_PKEY *reg;
	size_t i;

	for (i = 0; i < usable && i < list->count; i++) {
		reg = X509_get0_pubkey(list->entries[i].cert);
		if (reg != NULL && EVP_PKEY_eq(reg, key) == 1) {
			*entry = i;
			return true;
		}
	}
	return false;
}

int
ps_sshauth_match(const struct ps_log *log, const char *info,
    size_t info_len, const struct ps_reg_list *list, size_t usable,
    size_t *entry)
{
	const char *line, *nl;
	size_t left = info_len, len;
	EVP_PKEY *key;
	bool found = false;

	if (info == NULL || info_len > PS_SSH_AUTH_INFO_MAX ||
	    memchr(info, '\0', info_len) != NULL)
		return PS_ERR_INVALID;
	for (line = info; left > 0 && !found; ) {
		nl = memchr(line, '\n', left);
		len = nl != NULL ? (size_t)(nl - line) : left;
		if ((key = line_key(log, line, len)) != NULL) {
			found = key_registered(key, list, usable, entry);
			EVP_PKEY_free(key);
		}
		if (nl == NULL)
			break;
		left -= len + 1;
		line = nl + 1;
	}
	return found ? PS_OK : PS_ERR_AUTH;
}

int
ps_sshauth_authenticate(const struct ps_config *cfg, const struct ps_log *log,
    const struct ps_conv *conv, const struct ps_auth_request *req,
    const char *info, struct ps_auth_result *result)
{
	struct ps_reg_list list = { NULL, 0 };
	size_t usable = 0, entry = 0;
	time_t now = req->now != 0 ? req->now : time(NULL);
	int r;

	memset(result, 0, sizeof(*result));
	if (info == NULL || info[0] == '\0') {
		ps_log_err(log, "user %s: mode=sshauth but sshd reported no "
		    "earlier authentication (SSH_AUTH_INFO_0 is empty): use "
		    "AuthenticationMethods publickey,keyboard-interactive",
		    req->user);
		ps_conv_error(conv, "PersonalSign: log in with your registered "
		    "key first (ssh -i or your card's PKCS#11 module).");
		return PS_ERR_NO_TOKEN;
	}
	r = ps_usable_keys(cfg, log, conv, req->user, now, &list, &usable);
	if (r != PS_OK)
		goto out;
	r = ps_sshauth_match(log, info, strnlen(info, PS_SSH_AUTH_INFO_MAX + 1),
	    &list, usable, &entry);
	if (r != PS_OK) {
		ps_log_notice(log, "user %s: the SSH key sshd verified is not "
		    "a usable registered key%s", req->user,
		    r == PS_ERR_INVALID ? " (SSH_AUTH_INFO_0 malformed)" : "");
		ps_conv_error(conv, "PersonalSign: the SSH key you used is not "
		    "a registered PersonalSign key of %s.", req->user);
		r = PS_ERR_AUTH;
		goto out;
	}
	ps_auth_result_set(result, &list.entries[entry]);
	ps_log_info(log, "user %s authenticated by sshd with registered key "
	    "%.16s", req->user, result->fingerprint);
 out:
	ps_reg_list_free(&list);
	return r;
}
