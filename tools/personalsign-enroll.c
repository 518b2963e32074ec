/*
 * personalsign-enroll.c - the admin helper for the file registry: enroll a
 * user's exported certificate (.cer, .p7b, .pfx), list and show what is
 * registered, remove a mistaken enrolment; the certificate lifecycle
 * (renew, reissue, retire, history, expiring, and self-renew for users
 * through sudo); and crl-update, which indexes crl_dir for the logins.
 *
 * It runs as root and writes what the PAM module trusts, so it refuses
 * bad input before touching the registry: a failed command leaves the
 * registry byte-identical and says why in exactly one line on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "conv.h"
#include "lifecycle.h"
#include "log.h"
#include "piv.h"
#include "policy.h"
#include "ps_status.h"
#include "registry.h"
#include "remote.h"
#include "token.h"
#include "util.h"
#include "tool_common.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define EXIT_USAGE	2
#define MSG_MAX		1024
#define MAX_HELD_ERRORS	32

static char progname[] = "personalsign-enroll";

/*
 * Library errors are held back: a failing command prints one line built
 * from the last of them; a succeeding one (list skipping a bad entry)
 * prints them as warnings. Warnings are held too (a failing command
 * says one line, nothing else) and printed when the command succeeds.
 */
struct held_log {
	char errors[MAX_HELD_ERRORS][MSG_MAX];
	size_t count;
	size_t dropped;
	char warnings[MAX_HELD_ERRORS][MSG_MAX];
	size_t nwarn;
	bool quiet;
};

static struct held_log held;

static void
held_sink(void *arg, enum ps_log_level level, const char *msg)
{
	struct held_log *h = arg;

	switch (level) {
	case PS_LOG_ERR:
		if (h->count < MAX_HELD_ERRORS)
			snprintf(h->errors[h->count++], MSG_MAX, "%s", msg);
		else
			h->dropped++;
		return;
	case PS_LOG_WARN:
		if (h->nwarn < MAX_HELD_ERRORS)
			snprintf(h->warnings[h->nwarn++], MSG_MAX, "%s", msg);
		else
			h->dropped++;
		return;
	case PS_LOG_NOTICE:
	case PS_LOG_INFO:
		if (!h->quiet)
			ps_log_to_stderr(progname, level, msg);
		return;
	case PS_LOG_DEBUG:
		return;
	}
}

static struct ps_log lib_log = { held_sink, &held, 0 };
static struct ps_log out_log = { ps_log_to_stderr, progname, 0 };

static void
held_reset(void)
{
	held.count = 0;
	held.dropped = 0;
	held.nwarn = 0;
}

static void
held_flush_as_warnings(void)
{
	size_t i;

	for (i = 0; i < held.nwarn; i++)
		ps_log_warn(&out_log, "%s", held.warnings[i]);
	for (i = 0; i < held.count; i++)
		ps_log_warn(&out_log, "%s", held.errors[i]);
	if (held.dropped > 0)
		ps_log_warn(&out_log, "%zu more problems not shown",
		    held.dropped);
	held_reset();
}

/* The one line of a failed command: our context, then the library's
 * reason when it gave one. Returns the exit code. */
static int
fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(int status, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (held.count > 0)
		ps_log_err(&out_log, "%s: %s", msg,
		    held.errors[held.count - 1]);
	else if (status != PS_OK)
		ps_log_err(&out_log, "%s: %s", msg, ps_status_str(status));
	else
		ps_log_err(&out_log, "%s", msg);
	held_reset();
	return EXIT_FAILURE;
}

static int
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ps_log_err(&out_log, "%s (try --help)", msg);
	return EXIT_USAGE;
}

/* ------------------------------------------------------------ context */

enum report_format { FORMAT_TABLE, FORMAT_TSV, FORMAT_JSON };

/* Options of the lifecycle commands, for "does not go with" checks. */
enum {
	LOPT_RETIRE_OLD = 1 << 0,
	LOPT_OLD = 1 << 1,
	LOPT_COMPROMISED = 1 << 2,
	LOPT_DAYS = 1 << 3,
	LOPT_FORMAT = 1 << 4,
};

struct ctx {
	struct ps_config cfg;
	bool cfg_ready;
	char *registry;		/* absolute */
	const char *password_file;
	const char *reason;
	bool quiet;
	bool from_card;		/* enroll: read the certificate from a card */
	const char *slot;	/* --slot, default 9a */
	const char *pcsc_socket;
	char actor[PS_USER_NAME_MAX + 16];
	struct ps_reg_change why;
	const char *verb;	/* the command, for messages */
	bool cfg_override;	/* --config or --registry given */
	unsigned lopts;		/* lifecycle options given (LOPT_*) */
	bool retire_old;	/* renew --retire-old */
	bool compromised;	/* reissue --compromised */
	bool has_old;		/* --old FINGERPRINT */
	char old_fp[PS_FP_HEX_LEN + 1];
	int days;		/* expiring --days; -1: expiry_warn_days */
	enum report_format format;
};

/* Who is doing this, for the audit log: the sudo user behind root. */
static void
find_actor(struct ctx *c)
{
	const char *sudo_user = getenv("SUDO_USER");
	struct passwd *pw;

	if (getuid() == 0 && sudo_user != NULL && ps_user_name_valid(sudo_user)) {
		snprintf(c->actor, sizeof(c->actor), "%s", sudo_user);
		return;
	}
	pw = getpwuid(getuid());
	if (pw != NULL && ps_user_name_valid(pw->pw_name))
		snprintf(c->actor, sizeof(c->actor), "%s", pw->pw_name);
	else
		snprintf(c->actor, sizeof(c->actor), "uid=%lu",
		    (unsigned long)getuid());
}

/* The library only trusts absolute paths; admins type relative ones. */
static char *
absolute_path(const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/')
		return strdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	return ps_strdup_printf("%s/%s", cwd, path);
}

static int
load_config(struct ctx *c, const char *config_file, const char *registry)
{
	char *path = NULL;
	int r;

	if (ps_config_init(&c->cfg) != PS_OK)
		return fail(PS_ERR_NOMEM, "cannot initialise the configuration");
	c->cfg_ready = true;
	if (config_file != NULL) {
		if ((path = absolute_path(config_file)) == NULL)
			return fail(PS_ERR_NOMEM, "%s", config_file);
		r = ps_config_load_file(&c->cfg, path, &lib_log);
		free(path);
		if (r == PS_ERR_NOT_FOUND)
			return fail(PS_OK, "%s: configuration file not found",
			    config_file);
		if (r != PS_OK)
			return fail(r, "cannot read configuration");
	} else {
		r = ps_config_load_file(&c->cfg, PS_DEFAULT_CONFIG, &lib_log);
		if (r != PS_OK && r != PS_ERR_NOT_FOUND)
			return fail(r, "cannot read configuration");
		held_reset();
	}
	if (registry == NULL) {
		if (c->cfg.registry_backend != NULL &&
		    strcmp(c->cfg.registry_backend, "file") != 0)
			return fail(PS_OK, "the configured registry backend is "
			    "\"%s\": this tool manages the file registry only "
			    "(use --registry DIR)", c->cfg.registry_backend);
		registry = c->cfg.registry_dir != NULL ? c->cfg.registry_dir :
		    PS_DEFAULT_REGISTRY;
	}
	if ((c->registry = absolute_path(registry)) == NULL)
		return fail(PS_ERR_NOMEM, "%s", registry);
	return EXIT_SUCCESS;
}

static bool
registry_exists(const struct ctx *c)
{
	struct stat st;

	return lstat(c->registry, &st) == 0;
}

static int
open_registry(struct ctx *c, bool for_writing, struct ps_registry **reg)
{
	int r;

	r = ps_registry_file_open(c->registry, &lib_log, for_writing, reg);
	if (r != PS_OK)
		return fail(r, "cannot open registry %s", c->registry);
	return EXIT_SUCCESS;
}

static int
check_user(const char *user)
{
	if (ps_user_name_valid(user))
		return EXIT_SUCCESS;
	/* the log layer turns control characters into '?' */
	return fail(PS_OK, "invalid user name \"%s\"", user);
}

/* A fingerprint as admins paste it (upper case too) into out. */
static int
parse_fingerprint(const char *arg, char out[PS_FP_HEX_LEN + 1])
{
	size_t i, len = strlen(arg);

	if (len != PS_FP_HEX_LEN)
		return fail(PS_OK, "\"%s\" is not a key fingerprint (%d hex "
		    "digits, see list)", arg, PS_FP_HEX_LEN);
	for (i = 0; i < len; i++)
		out[i] = (char)(arg[i] >= 'A' && arg[i] <= 'F' ?
		    arg[i] - 'A' + 'a' : arg[i]);
	out[len] = '\0';
	if (!ps_hex_valid(out, PS_FP_HEX_LEN))
		return fail(PS_OK, "\"%s\" is not a key fingerprint (%d hex "
		    "digits, see list)", arg, PS_FP_HEX_LEN);
	return EXIT_SUCCESS;
}

/*
 * remove and retire: USER's key named by FINGERPRINT (args), in the
 * registry opened for writing. It must exist already: never create a
 * registry just to find nothing in it.
 */
static int
open_for_key(struct ctx *c, char **args, char fp[PS_FP_HEX_LEN + 1],
    struct ps_registry **reg)
{
	int rc;

	if ((rc = check_user(args[0])) != 0 ||
	    (rc = parse_fingerprint(args[1], fp)) != 0)
		return rc;
	if (!registry_exists(c))
		return fail(PS_OK, "cannot %s: registry %s does not exist",
		    c->verb, c->registry);
	return open_registry(c, true, reg);
}

/* ------------------------------------------------------------ output */

/* Text from certificates goes to a terminal: printable ASCII only. */
static void
clean(const char *in, char *out, size_t outlen, bool spaces_ok)
{
	size_t i = 0;

	if (in == NULL || *in == '\0') {
		snprintf(out, outlen, "-");
		return;
	}
	for (; *in != '\0' && i + 1 < outlen; in++) {
		unsigned char ch = (unsigned char)*in;

		if (ch == ' ' && !spaces_ok)
			ch = '_';
		else if (ch < 0x20 || ch >= 0x7f)
			ch = '?';
		out[i++] = (char)ch;
	}
	out[i] = '\0';
}

static void
print_field(const char *label, const char *value)
{
	char buf[MSG_MAX];

	clean(value, buf, sizeof(buf), true);
	printf("  %-14s %s\n", label, buf);
}

static void
format_time(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, outlen, "unknown");
}

static void
describe_key(X509 *cert, char *out, size_t outlen)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	char group[64];
	size_t glen = 0;

	if (pk == NULL) {
		snprintf(out, outlen, "unknown");
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		snprintf(out, outlen, "RSA %d bits", EVP_PKEY_get_bits(pk));
	} else if (EVP_PKEY_is_a(pk, "EC") &&
	    EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) == 1) {
		snprintf(out, outlen, "EC %s", group);
	} else {
		snprintf(out, outlen, "%s", EVP_PKEY_get0_type_name(pk) ?
		    EVP_PKEY_get0_type_name(pk) : "unknown");
	}
}

/* The names in cert; all empty when they cannot be read (still shown). */
static void
read_identity(X509 *cert, struct ps_identity *id)
{
	memset(id, 0, sizeof(*id));
	if (ps_cert_identity(cert, id) != PS_OK)
		memset(id, 0, sizeof(*id));
}

/* The last day cert is valid, YYYY-MM-DD, or "unknown". */
static void
expiry_date(X509 *cert, char out[11])
{
	time_t not_after;

	if (ps_cert_validity(cert, NULL, &not_after) == PS_OK)
		ps_format_date((long long)not_after, out);
	else
		snprintf(out, 11, "unknown");
}

/* "USER FINGERPRINT STATE EMAIL NOT-AFTER": whitespace-free fields. */
static void
print_list_line(const char *user, const struct ps_reg_entry *e)
{
	struct ps_identity id;
	char email[256], date[11];

	read_identity(e->cert, &id);
	clean(id.email, email, sizeof(email), false);
	expiry_date(e->cert, date);
	printf("%s %s %s %s %s\n", user, e->fingerprint,
	    ps_key_state_name(e->state), email, date);
	ps_identity_clear(&id);
}

static void
print_details(const char *user, const struct ps_reg_entry *e)
{
	struct ps_identity id;
	char buf[64], key[96];
	time_t not_before = 0, not_after = 0;

	read_identity(e->cert, &id);
	printf("%s\n", e->fingerprint);
	print_field("user", user);
	print_field("state", ps_key_state_name(e->state));
	if (e->superseded_by[0] != '\0')
		print_field("superseded by", e->superseded_by);
	format_time(e->enrolled, buf, sizeof(buf));
	print_field("enrolled", buf);
	print_field("subject", id.subject);
	print_field("email", id.email);
	print_field("issuer", id.issuer);
	print_field("serial", id.serial);
	if (ps_cert_validity(e->cert, &not_before, &not_after) == PS_OK) {
		format_time(not_before, buf, sizeof(buf));
		print_field("not before", buf);
		format_time(not_after, buf, sizeof(buf));
		print_field("not after", buf);
	}
	describe_key(e->cert, key, sizeof(key));
	print_field("key", key);
	ps_identity_clear(&id);
}

/* ------------------------------------------------------------ passwords */

static int
read_password_file(const char *path, char **out)
{
	struct ps_file_rules rules;
	unsigned char *data = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	memset(&rules, 0, sizeof(rules));
	rules.max_size = TOOL_SECRET_MAX;
	r = ps_read_file(&lib_log, path, &rules, &data, &len);
	if (r == PS_ERR_NOT_FOUND)
		return fail(PS_OK, "%s: no such password file", path);
	if (r != PS_OK)
		return fail(r, "cannot read password file %s", path);
	if (tool_first_line(data, len, out) != PS_OK)
		return fail(PS_ERR_NOMEM, "password");
	return EXIT_SUCCESS;
}

/* PS_ERR_CONV when there is no terminal to ask on. */
static int
prompt_password(const char *file, char **out)
{
	char prompt[MSG_MAX], name[256];

	clean(file, name, sizeof(name), true);
	snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
	return tool_ask_tty(prompt, out);
}

/* ------------------------------------------------------------ enroll */

/*
 * The end-entity certificate of FILE. A keystore is opened with the
 * password file, else the empty password, else a password asked for on
 * the terminal.
 */
static int
load_certificate(struct ctx *c, const char *user, const char *file,
    X509 **out)
{
	STACK_OF(X509) *sk = NULL;
	char *pw = NULL;
	int r, rc = EXIT_FAILURE;

	*out = NULL;
	if (c->password_file != NULL) {
		if ((rc = read_password_file(c->password_file, &pw)) != 0)
			return rc;
		rc = EXIT_FAILURE;
		r = ps_cert_load_file(&lib_log, file, pw, &sk);
	} else {
		r = ps_cert_load_file(&lib_log, file, NULL, &sk);
		if (r == PS_ERR_BAD_SECRET) {
			r = prompt_password(file, &pw);
			if (r == PS_ERR_CONV) {
				held_reset();
				rc = fail(PS_OK, "cannot %s %s: %s is a "
				    "password-protected keystore: give "
				    "--password-file (no terminal to ask on)",
				    c->verb, user, file);
				goto out;
			}
			held_reset();
			if (r == PS_OK)
				r = ps_cert_load_file(&lib_log, file, pw, &sk);
		}
	}
	if (r != PS_OK || sk == NULL || sk_X509_num(sk) < 1) {
		rc = fail(r, "cannot %s %s", c->verb, user);
		goto out;
	}
	*out = sk_X509_shift(sk);
	rc = EXIT_SUCCESS;
 out:
	sk_X509_pop_free(sk, X509_free);
	ps_free_secret(pw);
	return rc;
}

/* Would the module accept this certificate now? Same words as at login. */
static int
check_certificate(struct ctx *c, const char *user, const char *file,
    X509 *cert)
{
	struct ps_policy *policy = NULL;
	char why[256] = "";
	int r;

	if (X509_check_ca(cert) != 0)
		return fail(PS_OK, "cannot enroll %s: %s holds a CA "
		    "certificate, not a personal one", user, file);
	if ((r = ps_cert_key_supported(&lib_log, cert)) != PS_OK)
		return fail(r, "cannot enroll %s", user);
	if ((r = ps_policy_new(&c->cfg, &lib_log, &policy)) != PS_OK)
		return fail(r, "cannot enroll %s: certificate policy", user);
	r = ps_policy_check(policy, cert, time(NULL), why, sizeof(why));
	ps_policy_free(policy);
	if (r != PS_OK) {
		held_reset();
		return fail(PS_OK, "cannot enroll %s: certificate refused: %s",
		    user, why[0] != '\0' ? why : ps_status_str(r));
	}
	return EXIT_SUCCESS;
}

static void
print_enrolled(const char *user, X509 *cert)
{
	struct ps_identity id;
	char fp[PS_FP_HEX_LEN + 1] = "", date[11];

	read_identity(cert, &id);
	if (ps_cert_fingerprint(cert, fp) != PS_OK)
		fp[0] = '\0';
	expiry_date(cert, date);
	printf("enrolled %s\n", user);
	print_field("fingerprint", fp);
	print_field("subject", id.subject);
	print_field("email", id.email);
	print_field("not after", date);
	ps_identity_clear(&id);
}

static int
cmd_enroll(struct ctx *c, char **args)
{
	const char *user = args[0], *file = args[1];
	struct ps_registry *reg = NULL;
	X509 *cert = NULL;
	char err[256];
	int r, rc;

	if ((rc = check_user(user)) != 0)
		return rc;
	if (c->from_card) {
		if (file != NULL)
			return usage_error("enroll: give a FILE or --from-card, "
			    "not both");
		if (c->pcsc_socket != NULL && ps_config_set(&c->cfg,
		    "pcsc_socket", c->pcsc_socket, err, sizeof(err)) != PS_OK)
			return fail(PS_OK, "--pcsc-socket: %s", err);
		if ((r = ps_piv_read_certificate(&c->cfg, &lib_log, c->slot,
		    &cert)) != PS_OK)
			return fail(r, "cannot enroll %s from the card", user);
		file = "the card";
	} else if (file == NULL) {
		return usage_error("enroll: missing FILE (or --from-card)");
	} else if (c->slot != NULL || c->pcsc_socket != NULL) {
		return usage_error("enroll: --slot and --pcsc-socket go with "
		    "--from-card");
	} else if ((rc = load_certificate(c, user, file, &cert)) != 0) {
		return rc;
	}
	if ((rc = check_certificate(c, user, file, cert)) != 0)
		goto out;
	if ((rc = open_registry(c, true, &reg)) != 0)
		goto out;
	if ((r = ps_registry_add(reg, user, cert, &c->why)) != PS_OK) {
		rc = fail(r, "cannot enroll %s", user);
		goto out;
	}
	held_flush_as_warnings();
	if (!c->quiet)
		print_enrolled(user, cert);
	rc = EXIT_SUCCESS;
 out:
	ps_registry_close(reg);
	X509_free(cert);
	return rc;
}

/* ------------------------------------------------------------ list/show */

/* Print one user's usable keys; NOT_FOUND is the caller's to judge. */
static int
list_user(struct ps_registry *reg, const char *user, bool details)
{
	struct ps_reg_list list = { NULL, 0 };
	size_t i;
	int r;

	if ((r = ps_registry_lookup_user(reg, user, &list)) != PS_OK)
		return r;
	for (i = 0; i < list.count; i++) {
		if (details) {
			if (i > 0)
				printf("\n");
			print_details(user, &list.entries[i]);
		} else {
			print_list_line(user, &list.entries[i]);
		}
	}
	ps_reg_list_free(&list);
	return PS_OK;
}

static int
cmd_one_user(struct ctx *c, const char *user, bool details)
{
	struct ps_registry *reg = NULL;
	int r, rc;

	if ((rc = check_user(user)) != 0)
		return rc;
	if ((rc = open_registry(c, false, &reg)) != 0)
		return rc;
	r = list_user(reg, user, details);
	ps_registry_close(reg);
	if (r == PS_ERR_NOT_FOUND) {
		held_flush_as_warnings();
		return fail(PS_OK, "user %s has no usable registered key",
		    user);
	}
	if (r != PS_OK)
		return fail(r, "cannot read the keys of %s", user);
	held_flush_as_warnings();
	return EXIT_SUCCESS;
}

/*
 * fn(reg, user, arg) for every user in the registry, for list and
 * expiring. A user without usable keys (PS_ERR_NOT_FOUND) is skipped;
 * any other error stops with one line about that user.
 */
static int
for_each_user(struct ctx *c, int (*fn)(struct ps_registry *, const char *,
    void *), void *arg)
{
	struct ps_registry *reg = NULL;
	char **users = NULL;
	size_t n = 0, i;
	int r, rc;

	if ((rc = open_registry(c, false, &reg)) != 0)
		return rc;
	if ((r = ps_registry_list_users(reg, &users, &n)) != PS_OK) {
		rc = fail(r, "cannot list registry %s", c->registry);
		goto out;
	}
	for (i = 0; i < n; i++) {
		r = fn(reg, users[i], arg);
		if (r != PS_OK && r != PS_ERR_NOT_FOUND) {
			rc = fail(r, "cannot read the keys of %s", users[i]);
			goto out;
		}
	}
	rc = EXIT_SUCCESS;
 out:
	ps_user_names_free(users, n);
	ps_registry_close(reg);
	return rc;
}

static int
list_user_lines(struct ps_registry *reg, const char *user, void *arg)
{
	(void)arg;
	return list_user(reg, user, false);
}

static int
cmd_list_all(struct ctx *c)
{
	int rc;

	if ((rc = for_each_user(c, list_user_lines, NULL)) == 0)
		held_flush_as_warnings();
	return rc;
}

static int
cmd_list(struct ctx *c, char **args)
{
	if (args[0] != NULL)
		return cmd_one_user(c, args[0], false);
	return cmd_list_all(c);
}

static int
cmd_show(struct ctx *c, char **args)
{
	return cmd_one_user(c, args[0], true);
}

/* ------------------------------------------------------------ remove */

static int
cmd_remove(struct ctx *c, char **args)
{
	const char *user = args[0];
	char fp[PS_FP_HEX_LEN + 1];
	struct ps_registry *reg = NULL;
	int r, rc;

	if ((rc = open_for_key(c, args, fp, &reg)) != 0)
		return rc;
	r = ps_registry_remove(reg, user, fp, &c->why);
	ps_registry_close(reg);
	if (r != PS_OK)
		return fail(r, "cannot remove key %.16s of %s", fp, user);
	held_flush_as_warnings();
	if (!c->quiet)
		printf("removed key %s of %s\n", fp, user);
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------ authorized-keys */

/* sshd's AuthorizedKeysCommand: no usable key prints nothing, exit 0. */
static int
cmd_authorized_keys(struct ctx *c, char **args)
{
	char err[256];
	int r, rc;

	if ((rc = check_user(args[0])) != 0)
		return rc;
	if (ps_config_set(&c->cfg, "registry", c->registry, err,
	    sizeof(err)) != PS_OK)
		return fail(PS_OK, "%s", err);
	r = ps_authorized_keys(&c->cfg, &lib_log, args[0], time(NULL), stdout);
	if (r != PS_OK && r != PS_ERR_NOT_FOUND && r != PS_ERR_EXPIRED &&
	    r != PS_ERR_POLICY)
		return fail(r, "cannot list the SSH keys of %s", args[0]);
	held_flush_as_warnings();
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------ lifecycle */

/* "what: admin's --reason" or just what, for the audit log. */
static void
make_reason(const struct ctx *c, const char *what, char *out, size_t outlen)
{
	if (c->reason != NULL && c->reason[0] != '\0')
		snprintf(out, outlen, "%s: %s", what, c->reason);
	else
		snprintf(out, outlen, "%s", what);
}

static int
lifecycle_policy(struct ctx *c, const char *user, struct ps_policy **policy,
    enum ps_identity_mode *mode)
{
	int r;

	if ((r = ps_identity_mode_parse(&lib_log, c->cfg.identity, mode)) !=
	    PS_OK)
		return fail(r, "cannot %s %s: configuration", c->verb, user);
	if ((r = ps_policy_new(&c->cfg, &lib_log, policy)) != PS_OK)
		return fail(r, "cannot %s %s: certificate policy", c->verb,
		    user);
	return EXIT_SUCCESS;
}

static void
print_replaced(const char *verb, const char *user, X509 *cand,
    const struct ps_reg_entry *old, bool retired)
{
	char fp[PS_FP_HEX_LEN + 1] = "", nd[11], od[11];
	char line[160];

	if (ps_cert_fingerprint(cand, fp) != PS_OK)
		fp[0] = '\0';
	expiry_date(cand, nd);
	expiry_date(old->cert, od);
	printf("%s %s\n", verb, user);
	print_field("new key", fp);
	print_field("valid until", nd);
	print_field("old key", old->fingerprint);
	if (retired)
		snprintf(line, sizeof(line), "retired now");
	else
		snprintf(line, sizeof(line), "superseded, usable until %s", od);
	print_field("old key state", line);
}

/*
 * renew and reissue: the new certificate replaces one of USER's current
 * ones (the one naming the same person, or --old FINGERPRINT).
 */
static int
replace_cert(struct ctx *c, char **args, enum ps_renew_kind kind,
    bool retire_old, const char *reason_what, const char *done)
{
	const char *user = args[0], *file = args[1];
	struct ps_registry *reg = NULL;
	struct ps_policy *policy = NULL;
	struct ps_reg_list list = { NULL, 0 };
	struct ps_reg_change why = c->why;
	enum ps_identity_mode mode;
	char whytext[512], reason[PS_REG_REASON_MAX];
	X509 *cert = NULL;
	size_t idx = 0;
	int r, rc;

	if ((rc = check_user(user)) != 0)
		return rc;
	if (!registry_exists(c))
		return fail(PS_OK, "cannot %s %s: registry %s does not exist",
		    c->verb, user, c->registry);
	if ((rc = load_certificate(c, user, file, &cert)) != 0)
		return rc;
	if ((rc = lifecycle_policy(c, user, &policy, &mode)) != 0)
		goto out;
	if ((rc = open_registry(c, true, &reg)) != 0)
		goto out;
	r = ps_registry_lookup_user(reg, user, &list);
	if (r == PS_ERR_NOT_FOUND) {
		held_reset();
		rc = fail(PS_OK, "cannot %s %s: %s has no registered key (use "
		    "enroll)", c->verb, user, user);
		goto out;
	}
	if (r != PS_OK) {
		rc = fail(r, "cannot %s %s", c->verb, user);
		goto out;
	}
	if (ps_renewal_find_old(&list, mode, cert, c->has_old ? c->old_fp :
	    NULL, &idx, whytext, sizeof(whytext)) != PS_OK ||
	    ps_renewal_check(policy, mode, kind, list.entries[idx].cert, cert,
	    time(NULL), whytext, sizeof(whytext)) != PS_OK) {
		held_reset();
		rc = fail(PS_OK, "cannot %s %s: %s", c->verb, user, whytext);
		goto out;
	}
	make_reason(c, reason_what, reason, sizeof(reason));
	why.reason = reason;
	if ((r = ps_renewal_apply(reg, user, cert,
	    list.entries[idx].fingerprint, retire_old, &why)) != PS_OK) {
		rc = fail(r, "cannot %s %s", c->verb, user);
		goto out;
	}
	held_flush_as_warnings();
	if (!c->quiet)
		print_replaced(done, user, cert, &list.entries[idx],
		    retire_old);
	rc = EXIT_SUCCESS;
 out:
	ps_reg_list_free(&list);
	ps_registry_close(reg);
	ps_policy_free(policy);
	X509_free(cert);
	return rc;
}

static int
cmd_renew(struct ctx *c, char **args)
{
	return replace_cert(c, args, PS_RENEW, c->retire_old,
	    c->retire_old ? "renewal, old key retired" : "renewal",
	    "renewed");
}

/* A reissue replaces a lost or compromised key: the old one goes now. */
static int
cmd_reissue(struct ctx *c, char **args)
{
	return replace_cert(c, args, PS_REISSUE, true,
	    c->compromised ? "reissue after key compromise" : "reissue",
	    "reissued");
}

static int
cmd_retire(struct ctx *c, char **args)
{
	const char *user = args[0];
	char fp[PS_FP_HEX_LEN + 1];
	struct ps_registry *reg = NULL;
	int r, rc;

	if (c->reason == NULL || c->reason[0] == '\0')
		return usage_error("retire needs --reason TEXT (it goes into "
		    "the audit log)");
	if ((rc = open_for_key(c, args, fp, &reg)) != 0)
		return rc;
	r = ps_registry_set_state(reg, user, fp, PS_KEY_RETIRED, NULL,
	    &c->why);
	ps_registry_close(reg);
	if (r != PS_OK)
		return fail(r, "cannot retire key %.16s of %s", fp, user);
	held_flush_as_warnings();
	if (!c->quiet)
		printf("retired key %s of %s\n", fp, user);
	return EXIT_SUCCESS;
}

static int
cmd_history(struct ctx *c, char **args)
{
	const char *user = args[0];
	struct ps_registry *reg = NULL;
	struct ps_reg_history h = { NULL, 0, 0 };
	char when[40], actor[PS_REG_ACTOR_MAX], reason[PS_REG_REASON_MAX + 1];
	size_t i;
	int r, rc;

	if ((rc = check_user(user)) != 0)
		return rc;
	if ((rc = open_registry(c, false, &reg)) != 0)
		return rc;
	r = ps_registry_history(reg, user, &h);
	ps_registry_close(reg);
	if (r != PS_OK)
		return fail(r, "cannot read the history of %s", user);
	held_flush_as_warnings();
	if (h.count == 0) {
		ps_reg_history_free(&h);
		return fail(PS_OK, "no recorded change for %s", user);
	}
	printf("%-20s %-9s %-64s %-12s %s\n", "TIME (UTC)", "ACTION", "KEY",
	    "ACTOR", "REASON");
	for (i = 0; i < h.count; i++) {
		const struct ps_reg_event *e = &h.events[i];

		format_time(e->when, when, sizeof(when));
		when[19] = '\0';	/* drop " UTC": the header says so */
		clean(e->actor, actor, sizeof(actor), false);
		clean(e->reason, reason, sizeof(reason), true);
		printf("%-20s %-9s %-64s %-12s %s\n", when, e->action,
		    e->fingerprint, actor, reason);
	}
	ps_reg_history_free(&h);
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------ expiring */

struct expiry_row {
	time_t not_after;
	char user[PS_USER_NAME_MAX];
	char fingerprint[PS_FP_HEX_LEN + 1];
	char email[256];
};

struct expiry_report {
	struct expiry_row *rows;
	size_t count;
	time_t limit;		/* keys that expire before this are listed */
};

static int
row_cmp(const void *a, const void *b)
{
	const struct expiry_row *x = a, *y = b;
	int c;

	if (x->not_after != y->not_after)
		return x->not_after < y->not_after ? -1 : 1;
	if ((c = strcmp(x->user, y->user)) != 0)
		return c;
	return strcmp(x->fingerprint, y->fingerprint);
}

static int
report_add(struct expiry_report *rep, const char *user,
    const struct ps_reg_entry *e, time_t not_after)
{
	struct expiry_row *nr, *row;
	struct ps_identity id;

	nr = reallocarray(rep->rows, rep->count + 1, sizeof(*nr));
	if (nr == NULL)
		return PS_ERR_NOMEM;
	rep->rows = nr;
	row = &nr[rep->count++];
	memset(row, 0, sizeof(*row));
	row->not_after = not_after;
	snprintf(row->user, sizeof(row->user), "%s", user);
	memcpy(row->fingerprint, e->fingerprint, sizeof(row->fingerprint));
	read_identity(e->cert, &id);
	clean(id.email, row->email, sizeof(row->email), false);
	ps_identity_clear(&id);
	return PS_OK;
}

/* USER's active keys that expire before rep->limit (or have expired). */
static int
report_user(struct ps_registry *reg, const char *user, void *arg)
{
	struct expiry_report *rep = arg;
	struct ps_reg_list list = { NULL, 0 };
	time_t na;
	size_t i;
	int r;

	if ((r = ps_registry_lookup_user(reg, user, &list)) != PS_OK)
		return r;
	for (i = 0; i < list.count && r == PS_OK; i++) {
		const struct ps_reg_entry *e = &list.entries[i];

		if (e->state != PS_KEY_ACTIVE ||
		    ps_cert_validity(e->cert, NULL, &na) != PS_OK ||
		    na > rep->limit)
			continue;
		r = report_add(rep, user, e, na);
	}
	ps_reg_list_free(&list);
	return r;
}

static long long
days_left(time_t not_after, time_t now)
{
	long long s = (long long)not_after - (long long)now;

	/* whole days, rounded towards the past: expired is negative */
	return s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
}

/* JSON string body: the cleaned text has no control bytes left. */
static void
json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

static void
print_report(const struct expiry_report *rep, enum report_format fmt,
    time_t now)
{
	char date[11];
	size_t i;

	if (fmt == FORMAT_TABLE)
		printf("%-10s %6s  %-16s %-28s %s\n", "EXPIRES", "DAYS", "USER",
		    "EMAIL", "FINGERPRINT");
	else if (fmt == FORMAT_TSV)
		printf("expires\tdays\tuser\temail\tfingerprint\n");
	else
		printf("[");
	for (i = 0; i < rep->count; i++) {
		const struct expiry_row *row = &rep->rows[i];

		ps_format_date((long long)row->not_after, date);
		if (fmt == FORMAT_TABLE) {
			printf("%-10s %6lld  %-16s %-28s %s\n", date,
			    days_left(row->not_after, now), row->user,
			    row->email, row->fingerprint);
		} else if (fmt == FORMAT_TSV) {
			printf("%s\t%lld\t%s\t%s\t%s\n", date,
			    days_left(row->not_after, now), row->user,
			    row->email, row->fingerprint);
		} else {
			printf("%s\n  {\"user\": ", i > 0 ? "," : "");
			json_str(row->user);
			printf(", \"email\": ");
			json_str(row->email);
			printf(", \"fingerprint\": \"%s\", \"expires\": "
			    "\"%s\", \"not_after\": %lld, \"days_left\": %lld}",
			    row->fingerprint, date, (long long)row->not_after,
			    days_left(row->not_after, now));
		}
	}
	if (fmt == FORMAT_JSON)
		printf("%s]\n", rep->count > 0 ? "\n" : "");
}

static int
cmd_expiring(struct ctx *c, char **args)
{
	time_t now = time(NULL);
	int days = c->days >= 0 ? c->days : c->cfg.expiry_warn_days;
	struct expiry_report rep = { NULL, 0, now + (time_t)days * 86400 };
	int rc;

	(void)args;
	if ((rc = for_each_user(c, report_user, &rep)) == 0) {
		if (rep.count > 1)
			qsort(rep.rows, rep.count, sizeof(rep.rows[0]),
			    row_cmp);
		held_flush_as_warnings();
		print_report(&rep, c->format, now);
	}
	free(rep.rows);
	return rc;
}

/* ------------------------------------------------------------ crl-update */

static int
cmd_crl_update(struct ctx *c, char **args)
{
	struct ps_crl_update_report rep;
	struct ps_policy *policy = NULL;
	int r;

	(void)args;
	if (c->cfg.crl_dir == NULL)
		return fail(PS_OK, "crl-update: no crl_dir in the "
		    "configuration");
	if (c->cfg.ca_file == NULL && c->cfg.ca_dir == NULL)
		return fail(PS_OK, "crl-update: CRLs are verified with the CAs "
		    "of ca_file or ca_dir, and neither is configured");
	if ((r = ps_policy_new(&c->cfg, &lib_log, &policy)) != PS_OK)
		return fail(r, "crl-update: certificate policy");
	r = ps_policy_crl_update(policy, &lib_log, &rep);
	ps_policy_free(policy);
	if (r != PS_OK && r != PS_ERR_INVALID)
		return fail(r, "crl-update: cannot index %s", c->cfg.crl_dir);
	if (!c->quiet)
		printf("crl-update: %zu CRL file(s) in %s: %zu indexed (%zu "
		    "revoked serials), %zu older, %zu not usable\n", rep.files,
		    c->cfg.crl_dir, rep.indexed, rep.serials, rep.older,
		    rep.invalid);
	if (r == PS_ERR_INVALID) {
		held_flush_as_warnings();
		return fail(PS_OK, "crl-update: %zu file(s) in %s are not "
		    "usable CRLs (see above); the others are indexed",
		    rep.invalid, c->cfg.crl_dir);
	}
	held_flush_as_warnings();
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------ self-renew */

/*
 * The user renewing their own registration: run as root through sudo
 * (sudoers allows "personalsign-enroll self-renew *"), so SUDO_USER and
 * SUDO_UID name them. They prove possession of a registered key and of
 * the new one; nothing else they say is believed.
 */
struct invoker {
	char name[PS_USER_NAME_MAX];
	uid_t uid;
	gid_t gid;
	char *home;
};

static int
find_invoker(struct invoker *who)
{
	const char *name = getenv("SUDO_USER"), *suid = getenv("SUDO_UID");
	struct passwd pw, *res = NULL;
	char buf[16384], *end;
	unsigned long uid;

	memset(who, 0, sizeof(*who));
	if (getuid() != 0 || geteuid() != 0)
		return fail(PS_OK, "self-renew writes the registry: run it "
		    "through sudo (see personalsign-enroll(8))");
	if (name == NULL || !ps_user_name_valid(name))
		return fail(PS_OK, "self-renew registers the renewed "
		    "certificate of the user who runs it through sudo; "
		    "admins use renew");
	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return fail(PS_OK, "self-renew: no account \"%s\"", name);
	if (suid != NULL) {
		errno = 0;
		uid = strtoul(suid, &end, 10);
		if (errno != 0 || *end != '\0' ||
		    uid != (unsigned long)pw.pw_uid)
			return fail(PS_OK, "self-renew: SUDO_UID does not "
			    "match %s", name);
	}
	snprintf(who->name, sizeof(who->name), "%s", name);
	who->uid = pw.pw_uid;
	who->gid = pw.pw_gid;
	if ((who->home = strdup(pw.pw_dir != NULL ? pw.pw_dir : "/")) == NULL)
		return fail(PS_ERR_NOMEM, "self-renew");
	return EXIT_SUCCESS;
}

/* The tool's conversation: the terminal, and stderr for messages. */
static void
tool_say(void *arg, const char *msg)
{
	(void)arg;
	ps_log_notice(&out_log, "%s", msg);
}

static const struct ps_conv tool_conv = { tool_conv_prompt, tool_say,
    tool_say, NULL };

/* One secret: from --password-file (the user's own file), else asked. */
static int
self_secret(struct ctx *c, const struct invoker *who, struct ps_token *tok,
    char **secret)
{
	*secret = NULL;
	if (c->password_file == NULL)
		return ps_conv_prompt(&tool_conv, 0,
		    tok->ops->secret_prompt(tok), secret);
	/* read as root: only a file of the user's own, kept private */
	return tool_read_private_secret(&lib_log, c->password_file, who->uid,
	    secret);
}

static int
self_unlock(struct ctx *c, const struct invoker *who, struct ps_token *tok,
    const struct ps_token_key *key)
{
	char *secret = NULL;
	int r;

	if (key != NULL && tok->ops->check_ready != NULL &&
	    (r = tok->ops->check_ready(tok, key)) != PS_OK)
		return r;
	if ((r = self_secret(c, who, tok, &secret)) != PS_OK)
		return r;
	r = tok->ops->unlock(tok, key, secret);
	ps_free_secret(secret);
	return r;
}

/* The first key of tok that is one of the usable registered keys. */
static int
match_registered(struct ps_token *tok, const struct ps_reg_list *list,
    size_t usable, const struct ps_token_key **key, size_t *entry)
{
	const struct ps_token_key *keys;
	size_t n = 0, i, j;
	int r;

	if ((r = tok->ops->list_keys(tok, &keys, &n)) != PS_OK)
		return r;
	for (i = 0; i < n; i++)
		for (j = 0; j < usable; j++)
			if (keys[i].pub != NULL && EVP_PKEY_eq(keys[i].pub,
			    X509_get0_pubkey(list->entries[j].cert)) == 1) {
				*key = &keys[i];
				*entry = j;
				return PS_OK;
			}
	return PS_ERR_NO_TOKEN;
}

/* The usable entries first (policy now), their count in *usable. */
static void
keep_usable(const struct ps_policy *policy, struct ps_reg_list *list,
    size_t *usable)
{
	size_t i, kept = 0;
	char why[256];

	for (i = 0; i < list->count; i++) {
		if (ps_policy_check(policy, list->entries[i].cert, time(NULL),
		    why, sizeof(why)) != PS_OK)
			continue;
		if (kept != i) {
			struct ps_reg_entry tmp = list->entries[kept];

			list->entries[kept] = list->entries[i];
			list->entries[i] = tmp;
		}
		kept++;
	}
	*usable = kept;
}

/* Open a token as the user: the configured one, a keystore file, a card. */
static int
self_token(struct ctx *c, const struct invoker *who, enum ps_backend backend,
    const struct ps_config *cfg, struct ps_token **tok)
{
	struct ps_token_params p;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.log = &lib_log;
	p.conv = &tool_conv;
	p.user = who->name;
	p.uid = who->uid;
	p.gid = who->gid;
	p.home = who->home;
	(void)c;
	return ps_token_open(backend, &p, tok);
}

struct self_state {
	struct invoker who;
	struct ps_policy *policy;
	enum ps_identity_mode mode;
	struct ps_registry *reg;
	struct ps_reg_list list;
	size_t usable;
	struct ps_token *old_tok;
	struct ps_token *new_tok;	/* may be old_tok */
	const struct ps_token_key *old_key;
	size_t old_entry;
	const struct ps_token_key *new_key;
	struct ps_config new_cfg;	/* shallow copy; keystore is ours */
	char *new_keystore;
};

/* Step 1: a registered key, proven. */
static int
self_prove_old(struct ctx *c, struct self_state *s)
{
	int r;

	if ((r = self_token(c, &s->who, c->cfg.backend, &c->cfg,
	    &s->old_tok)) != PS_OK)
		return fail(r, "self-renew: no token with your registered key");
	if (s->old_tok->ops->lists_without_secret &&
	    (r = match_registered(s->old_tok, &s->list, s->usable,
	    &s->old_key, &s->old_entry)) != PS_OK)
		return fail(r, "self-renew: the %s holds none of your "
		    "registered keys", s->old_tok->ops->name);
	if ((r = self_unlock(c, &s->who, s->old_tok, s->old_key)) != PS_OK)
		return fail(r, "self-renew: cannot unlock the %s",
		    s->old_tok->ops->name);
	if (s->old_key == NULL &&
	    (r = match_registered(s->old_tok, &s->list, s->usable,
	    &s->old_key, &s->old_entry)) != PS_OK)
		return fail(r, "self-renew: your keystore holds none of your "
		    "registered keys");
	r = ps_prove_possession(&lib_log, s->old_tok, s->old_key,
	    X509_get0_pubkey(s->list.entries[s->old_entry].cert),
	    "personalsign-enroll", s->who.name, NULL, time(NULL));
	if (r != PS_OK)
		return fail(r, "self-renew: could not prove possession of your "
		    "registered key");
	return EXIT_SUCCESS;
}

/* The renewing key on the new token; why says what was wrong. */
static int
self_pick_new(struct self_state *s, char *why, size_t whylen)
{
	const struct ps_token_key *keys;
	X509 *old = s->list.entries[s->old_entry].cert;
	size_t n = 0, i;
	int r;

	snprintf(why, whylen, "it holds no certificate with its key");
	if ((r = s->new_tok->ops->list_keys(s->new_tok, &keys, &n)) != PS_OK)
		return r;
	for (i = 0; i < n; i++) {
		if (keys[i].cert == NULL || keys[i].pub == NULL ||
		    EVP_PKEY_eq(keys[i].pub, X509_get0_pubkey(keys[i].cert)) !=
		    1 || EVP_PKEY_eq(keys[i].pub, X509_get0_pubkey(old)) == 1)
			continue;
		if (ps_renewal_check(s->policy, s->mode, PS_RENEW, old,
		    keys[i].cert, time(NULL), why, whylen) == PS_OK) {
			s->new_key = &keys[i];
			return PS_OK;
		}
	}
	return PS_ERR_POLICY;
}

/* Step 2: the new key and certificate, proven. */
static int
self_prove_new(struct ctx *c, struct self_state *s, const char *file)
{
	char why[512], *path;
	bool same = c->from_card && s->old_tok->ops == &ps_token_piv_ops;
	int r;

	s->new_cfg = c->cfg;
	if (same) {
		s->new_tok = s->old_tok;
	} else if (c->from_card) {
		r = self_token(c, &s->who, PS_BACKEND_PIV, &c->cfg,
		    &s->new_tok);
		if (r != PS_OK)
			return fail(r, "self-renew: no card");
	} else {
		if ((path = absolute_path(file)) == NULL ||
		    (s->new_keystore = tool_keystore_pattern(path)) == NULL) {
			free(path);
			return fail(PS_ERR_NOMEM, "self-renew");
		}
		free(path);
		s->new_cfg.keystore = s->new_keystore;
		r = self_token(c, &s->who, PS_BACKEND_SOFT, &s->new_cfg,
		    &s->new_tok);
		if (r != PS_OK)
			return fail(r, "self-renew: cannot open %s", file);
		if ((r = self_unlock(c, &s->who, s->new_tok, NULL)) != PS_OK)
			return fail(r, "self-renew: cannot unlock %s", file);
	}
	if (self_pick_new(s, why, sizeof(why)) != PS_OK) {
		held_reset();
		return fail(PS_OK, "self-renew: %s holds no renewal of your "
		    "certificate: %s", c->from_card ? "the card" : file, why);
	}
	if (s->new_tok->ops->lists_without_secret &&
	    (r = self_unlock(c, &s->who, s->new_tok, s->new_key)) != PS_OK)
		return fail(r, "self-renew: cannot unlock the card");
	r = ps_prove_possession(&lib_log, s->new_tok, s->new_key,
	    X509_get0_pubkey(s->new_key->cert), "personalsign-enroll",
	    s->who.name, NULL, time(NULL));
	if (r != PS_OK)
		return fail(r, "self-renew: could not prove possession of the "
		    "new key");
	return EXIT_SUCCESS;
}

static int
self_begin(struct ctx *c, struct self_state *s, char **args)
{
	int r, rc;

	if ((rc = find_invoker(&s->who)) != 0)
		return rc;
	if (!c->cfg.allow_self_renew)
		return fail(PS_OK, "self-renew is not allowed on this system "
		    "(allow_self_renew is off)");
	if (s->who.uid != 0 && c->cfg_override)
		return fail(PS_OK, "self-renew: --config and --registry are "
		    "for root only");
	if ((args[0] == NULL) == !c->from_card)
		return usage_error("self-renew: give NEW.pfx or --from-card");
	if (!registry_exists(c))
		return fail(PS_OK, "self-renew: registry %s does not exist",
		    c->registry);
	c->verb = "renew";
	if ((rc = lifecycle_policy(c, s->who.name, &s->policy,
	    &s->mode)) != 0 || (rc = open_registry(c, true, &s->reg)) != 0)
		return rc;
	r = ps_registry_lookup_user(s->reg, s->who.name, &s->list);
	if (r != PS_OK)
		return fail(r == PS_ERR_NOT_FOUND ? PS_OK : r, "self-renew: "
		    "%s has no registered key", s->who.name);
	keep_usable(s->policy, &s->list, &s->usable);
	if (s->usable == 0)
		return fail(PS_OK, "self-renew: none of your registered "
		    "certificates is valid now: ask an administrator");
	return EXIT_SUCCESS;
}

static void
self_free(struct self_state *s)
{
	if (s->new_tok != s->old_tok)
		ps_token_close(s->new_tok);
	ps_token_close(s->old_tok);
	ps_reg_list_free(&s->list);
	ps_registry_close(s->reg);
	ps_policy_free(s->policy);
	free(s->new_keystore);
	free(s->who.home);
}

static int
cmd_self_renew(struct ctx *c, char **args)
{
	struct self_state s;
	struct ps_reg_change why;
	char reason[PS_REG_REASON_MAX];
	int r, rc;

	memset(&s, 0, sizeof(s));
	if ((rc = self_begin(c, &s, args)) != 0 ||
	    (rc = self_prove_old(c, &s)) != 0 ||
	    (rc = self_prove_new(c, &s, args[0])) != 0)
		goto out;
	make_reason(c, "self-renew: proved possession of the registered and "
	    "the new key", reason, sizeof(reason));
	why.actor = s.who.name;
	why.reason = reason;
	r = ps_renewal_apply(s.reg, s.who.name, s.new_key->cert,
	    s.list.entries[s.old_entry].fingerprint, false, &why);
	if (r != PS_OK) {
		rc = fail(r, "self-renew: cannot register the new key");
		goto out;
	}
	held_flush_as_warnings();
	if (!c->quiet)
		print_replaced("renewed", s.who.name, s.new_key->cert,
		    &s.list.entries[s.old_entry], false);
	rc = EXIT_SUCCESS;
 out:
	self_free(&s);
	return rc;
}

/* ------------------------------------------------------------ main */

struct command {
	const char *name;
	int min_args;
	int max_args;
	const char *synopsis;
	int (*run)(struct ctx *c, char **args);
	unsigned lopts;		/* lifecycle options it takes (LOPT_*) */
};

static const struct command commands[] = {
	{ "enroll", 1, 2, "enroll USER FILE | enroll USER --from-card",
	    cmd_enroll, 0 },
	{ "list", 0, 1, "list [USER]", cmd_list, 0 },
	{ "show", 1, 1, "show USER", cmd_show, 0 },
	{ "remove", 2, 2, "remove USER FINGERPRINT", cmd_remove, 0 },
	{ "authorized-keys", 1, 1, "authorized-keys USER",
	    cmd_authorized_keys, 0 },
	{ "renew", 2, 2, "renew USER FILE [--retire-old] [--old FINGERPRINT]",
	    cmd_renew, LOPT_RETIRE_OLD | LOPT_OLD },
	{ "reissue", 2, 2, "reissue USER FILE [--compromised] "
	    "[--old FINGERPRINT]", cmd_reissue, LOPT_COMPROMISED | LOPT_OLD },
	{ "retire", 2, 2, "retire USER FINGERPRINT --reason TEXT", cmd_retire,
	    0 },
	{ "history", 1, 1, "history USER", cmd_history, 0 },
	{ "expiring", 0, 0, "expiring [--days N] [--format table|tsv|json]",
	    cmd_expiring, LOPT_DAYS | LOPT_FORMAT },
	{ "self-renew", 0, 1, "self-renew NEW.pfx | self-renew --from-card",
	    cmd_self_renew, 0 },
	{ "crl-update", 0, 0, "crl-update", cmd_crl_update, 0 },
};

static void
print_help(void)
{
	printf("usage: %s [--registry DIR] [--config FILE] "
	    "[--password-file FILE]\n"
	    "       [--reason TEXT] [-q] COMMAND ...\n\n"
	    "commands:\n"
	    "  enroll USER FILE          register the certificate in FILE "
	    "(.cer, .crt, .der,\n"
	    "                            .p7b, .pfx/.p12) for USER\n"
	    "  enroll USER --from-card [--slot 9a]\n"
	    "                            register the certificate in a slot "
	    "of the PIV card\n"
	    "  list [USER]               list registered keys: user, "
	    "fingerprint, state,\n"
	    "                            e-mail, expiry date\n"
	    "  show USER                 show every registered key of USER "
	    "in detail\n"
	    "  remove USER FINGERPRINT   delete a registration outright\n"
	    "  authorized-keys USER      USER's valid keys as OpenSSH "
	    "authorized_keys lines\n"
	    "                            (for sshd's AuthorizedKeysCommand)\n"
	    "  renew USER FILE [--retire-old] [--old FINGERPRINT]\n"
	    "                            register USER's renewed certificate; "
	    "the old key stays\n"
	    "                            usable until it expires "
	    "(--retire-old: not)\n"
	    "  reissue USER FILE [--compromised] [--old FINGERPRINT]\n"
	    "                            register a reissued certificate, "
	    "retire the old key now\n"
	    "  retire USER FINGERPRINT --reason TEXT\n"
	    "                            never accept that key again\n"
	    "  history USER              every change of USER's keys, from "
	    "the audit log\n"
	    "  expiring [--days N] [--format table|tsv|json]\n"
	    "                            active keys expiring within N days "
	    "(default\n"
	    "                            expiry_warn_days), soonest first\n"
	    "  self-renew NEW.pfx | self-renew --from-card\n"
	    "                            (users, through sudo) register your "
	    "renewed\n"
	    "                            certificate by proving both keys\n"
	    "  crl-update                verify the CRLs in crl_dir and index "
	    "them for logins\n\n"
	    "options:\n"
	    "  --registry DIR        registry directory (default: from the "
	    "configuration,\n"
	    "                        else %s)\n"
	    "  --config FILE         configuration file (default %s)\n"
	    "  --password-file FILE  read a keystore password from the first "
	    "line of FILE\n"
	    "  --reason TEXT         reason recorded in the audit log\n"
	    "  --slot SLOT           PIV slot for --from-card: 9a (default), "
	    "9c, 9d, 9e\n"
	    "  --pcsc-socket PATH    pcscd socket for --from-card (default: "
	    "pcsc-lite's)\n"
	    "  -q, --quiet           print nothing on success but the "
	    "requested data\n"
	    "  -h, --help            show this help\n"
	    "  -V, --version         show the version\n\n"
	    "Exit status: 0 success, 1 error, 2 usage error.\n",
	    progname, PS_DEFAULT_REGISTRY, PS_DEFAULT_CONFIG);
}

/* Long-only options (no short letter). */
enum {
	LONGOPT_RETIRE_OLD = 256,
	LONGOPT_OLD,
	LONGOPT_COMPROMISED,
	LONGOPT_DAYS,
	LONGOPT_FORMAT,
};

static const struct option long_options[] = {
	{ "registry", required_argument, NULL, 'r' },
	{ "config", required_argument, NULL, 'c' },
	{ "password-file", required_argument, NULL, 'p' },
	{ "reason", required_argument, NULL, 'R' },
	{ "from-card", no_argument, NULL, 'C' },
	{ "slot", required_argument, NULL, 'S' },
	{ "pcsc-socket", required_argument, NULL, 'P' },
	{ "retire-old", no_argument, NULL, LONGOPT_RETIRE_OLD },
	{ "old", required_argument, NULL, LONGOPT_OLD },
	{ "compromised", no_argument, NULL, LONGOPT_COMPROMISED },
	{ "days", required_argument, NULL, LONGOPT_DAYS },
	{ "format", required_argument, NULL, LONGOPT_FORMAT },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

struct cli {
	const char *registry;
	const char *config;
	const char *old;	/* --old, checked once the command is known */
	bool help;
	bool version;
};

/* --days N and --format F of expiring. */
static int
parse_report_option(struct ctx *c, int ch, const char *arg)
{
	char *end;
	long v;

	if (ch == LONGOPT_DAYS) {
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno != 0 || end == arg || *end != '\0' || v < 0 ||
		    v > 36500 || arg[0] == '+' || arg[0] == '-')
			return usage_error("--days: \"%s\" is not a number of "
			    "days (0 to 36500)", arg);
		c->days = (int)v;
		c->lopts |= LOPT_DAYS;
		return EXIT_SUCCESS;
	}
	if (strcmp(arg, "table") == 0)
		c->format = FORMAT_TABLE;
	else if (strcmp(arg, "tsv") == 0)
		c->format = FORMAT_TSV;
	else if (strcmp(arg, "json") == 0)
		c->format = FORMAT_JSON;
	else
		return usage_error("--format: \"%s\" is not table, tsv or "
		    "json", arg);
	c->lopts |= LOPT_FORMAT;
	return EXIT_SUCCESS;
}

/* The lifecycle options a command does not take are usage errors. */
static int
check_lifecycle_options(const struct ctx *c, const char *command,
    unsigned allowed)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ LOPT_RETIRE_OLD, "--retire-old" }, { LOPT_OLD, "--old" },
		{ LOPT_COMPROMISED, "--compromised" }, { LOPT_DAYS, "--days" },
		{ LOPT_FORMAT, "--format" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((c->lopts & names[i].bit) && !(allowed & names[i].bit))
			return usage_error("option %s does not go with %s",
			    names[i].name, command);
	return EXIT_SUCCESS;
}

static int
parse_options(int argc, char **argv, struct ctx *c, struct cli *cli)
{
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":qhV", long_options, NULL)) != -1) {
		switch (ch) {
		case 'r':
			cli->registry = optarg;
			break;
		case 'c':
			cli->config = optarg;
			break;
		case 'p':
			c->password_file = optarg;
			break;
		case 'R':
			c->reason = optarg;
			break;
		case 'C':
			c->from_card = true;
			break;
		case 'S':
			c->slot = optarg;
			break;
		case 'P':
			c->pcsc_socket = optarg;
			break;
		case LONGOPT_RETIRE_OLD:
			c->retire_old = true;
			c->lopts |= LOPT_RETIRE_OLD;
			break;
		case LONGOPT_OLD:
			cli->old = optarg;
			c->lopts |= LOPT_OLD;
			break;
		case LONGOPT_COMPROMISED:
			c->compromised = true;
			c->lopts |= LOPT_COMPROMISED;
			break;
		case LONGOPT_DAYS:
		case LONGOPT_FORMAT:
			if (parse_report_option(c, ch, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'q':
			c->quiet = true;
			break;
		case 'h':
			cli->help = true;
			break;
		case 'V':
			cli->version = true;
			break;
		case ':':
			return usage_error("option %s needs an argument",
			    argv[optind - 1]);
		default:
			if (optopt != 0)
				return usage_error("unknown option -%c",
				    optopt);
			return usage_error("unknown option %s",
			    argv[optind - 1]);
		}
	}
	return EXIT_SUCCESS;
}

static const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int
run(int argc, char **argv, struct ctx *c)
{
	const struct command *cmd;
	struct cli cli = { NULL, NULL, NULL, false, false };
	char *args[3] = { NULL, NULL, NULL };
	int nargs, i, rc;

	c->days = -1;
	if ((rc = parse_options(argc, argv, c, &cli)) != 0)
		return rc;
	if (cli.help) {
		print_help();
		return EXIT_SUCCESS;
	}
	if (cli.version) {
		printf("%s %s\n", progname, PACKAGE_VERSION);
		return EXIT_SUCCESS;
	}
	if (optind >= argc)
		return usage_error("no command given");
	if ((cmd = find_command(argv[optind])) == NULL)
		return usage_error("unknown command \"%s\"", argv[optind]);
	nargs = argc - optind - 1;
	if (nargs < cmd->min_args || nargs > cmd->max_args)
		return usage_error("%s arguments: usage: %s",
		    nargs < cmd->min_args ? "missing" : "too many",
		    cmd->synopsis);
	for (i = 0; i < nargs; i++)
		args[i] = argv[optind + 1 + i];
	if ((rc = check_lifecycle_options(c, cmd->name, cmd->lopts)) != 0)
		return rc;
	c->verb = cmd->name;
	c->cfg_override = cli.config != NULL || cli.registry != NULL;
	held.quiet = c->quiet;
	if (cli.old != NULL) {
		if ((rc = parse_fingerprint(cli.old, c->old_fp)) != 0)
			return rc;
		c->has_old = true;
	}
	if ((rc = load_config(c, cli.config, cli.registry)) != 0)
		return rc;
	find_actor(c);
	c->why.actor = c->actor;
	c->why.reason = c->reason;
	return cmd->run(c, args);
}

int
main(int argc, char **argv)
{
	struct ctx c;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = run(argc, argv, &c);
	if (rc == EXIT_SUCCESS)
		held_flush_as_warnings();	/* anything still held */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ps_log_err(&out_log, "cannot write output: %s",
		    strerror(errno));
		rc = EXIT_FAILURE;
	}
	if (c.cfg_ready)
		ps_config_free(&c.cfg);
	free(c.registry);
	return rc;
}
