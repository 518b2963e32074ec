/*
 * authorized_keys.c - a user's registered keys as OpenSSH authorized_keys
 * lines (remote.h), for `personalsign-enroll authorized-keys USER` behind
 * sshd's AuthorizedKeysCommand.
 *
 * sshd runs the command on every publickey attempt, so it does one
 * registry lookup and one policy pass, like a login. Each line carries
 * expiry-time= from the certificate's notAfter, in UTC ("Z", sshd(8)), so
 * that sshd itself stops accepting the key at that second even if some
 * cache kept the line; retirement takes effect on the next connection
 * because the registry no longer returns the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cert.h"
#include "ps_status.h"
#include "remote.h"
#include "sshkey.h"
#include "util.h"

#define COMMENT_MAX	128

/* YYYYMMDDHHMMSSZ, the UTC form sshd's expiry-time= accepts. */
static int
expiry_time(time_t t, char out[16])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    strftime(out, 16, "%Y%m%d%H%M%SZ", &tm) != 15)
		return PS_ERR_INVALID;
	return PS_OK;
}

/*
 * The e-mail address for the comment, or "" when it has characters that
 * could confuse a reader of the line (the comment is free text to sshd,
 * but admins grep these).
 */
static void
comment_email(X509 *cert, char *out, size_t outlen)
{
	struct ps_identity id;
	size_t i, n;

	out[0] = '\0';
	memset(&id, 0, sizeof(id));
	if (ps_cert_identity(cert, &id) != PS_OK || id.email == NULL)
		goto out;
	n = strlen(id.email);
	if (n == 0 || n >= outlen)
		goto out;
	for (i = 0; i < n; i++) {
		char c = id.email[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("@._+-", c) != NULL))
			goto out;
	}
	memcpy(out, id.email, n + 1);
 out:
	ps_identity_clear(&id);
}

int
ps_authorized_keys_line(X509 *cert, char **line)
{
	char expiry[16], email[COMMENT_MAX], fp[PS_FP_HEX_LEN + 1];
	char *key = NULL;
	time_t not_after;
	int r;

	*line = NULL;
	if (cert == NULL)
		return PS_ERR_INVALID;
	if ((r = ps_cert_validity(cert, NULL, &not_after)) != PS_OK ||
	    (r = expiry_time(not_after, expiry)) != PS_OK ||
	    (r = ps_cert_fingerprint(cert, fp)) != PS_OK)
		return r;
	if ((r = ps_sshkey_to_text(X509_get0_pubkey(cert), &key)) != PS_OK)
		return r;
	comment_email(cert, email, sizeof(email));
	*line = ps_strdup_printf("expiry-time=\"%s\" %s %s%spersonalsign:%.16s",
	    expiry, key, email, email[0] != '\0' ? " " : "", fp);
	free(key);
	return *line != NULL ? PS_OK : PS_ERR_NOMEM;
}

int
ps_authorized_keys(const struct ps_config *cfg, const struct ps_log *log,
    const char *user, time_t now, FILE *out)
{
	struct ps_reg_list list = { NULL, 0 };
	size_t usable = 0, i, printed = 0;
	char *line;
	int r;

	if (now == 0)
		now = time(NULL);
	r = ps_usable_keys(cfg, log, NULL, user, now, &list, &usable);
	if (r != PS_OK)
		goto out;
	for (i = 0; i < usable; i++) {
		r = ps_authorized_keys_line(list.entries[i].cert, &line);
		if (r != PS_OK) {
			/* policy passed it, so this is odd: say so, go on */
			ps_log_warn(log, "user %s: key %.16s cannot be written "
			    "as an SSH key: %s", user,
			    list.entries[i].fingerprint, ps_status_str(r));
			continue;
		}
		if (fprintf(out, "%s\n", line) < 0) {
			free(line);
			r = PS_ERR_IO;
			goto out;
		}
		free(line);
		printed++;
	}
	if (fflush(out) != 0 || ferror(out)) {
		r = PS_ERR_IO;
		goto out;
	}
	r = printed > 0 ? PS_OK : PS_ERR_POLICY;
 out:
	ps_reg_list_free(&list);
	return r;
}
