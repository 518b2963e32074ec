/*
 * personalsign-enroll.c - the admin helper for the file registry: enroll a
 * user's exported certificate (.cer, .p7b, .pfx), list and show what is
 * registered, remove a mistaken enrolment.
 *
 * It runs as root and writes what the PAM module trusts, so it refuses
 * bad input before touching the registry: a failed command leaves the
 * registry byte-identical and says why in exactly one line on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "log.h"
#include "piv.h"
#include "policy.h"
#include "ps_status.h"
#include "registry.h"
#include "remote.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define EXIT_USAGE	2
#define PASSWORD_MAX	1024
#define MSG_MAX		1024
#define MAX_HELD_ERRORS	32

static char progname[] = "personalsign-enroll";

/*
 * Library errors are held back: a failing command prints one line built
 * from the last of them; a succeeding one (list skipping a bad entry)
 * prints them as warnings. Warnings pass straight through.
 */
struct held_log {
	char errors[MAX_HELD_ERRORS][MSG_MAX];
	size_t count;
	size_t dropped;
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
		ps_log_to_stderr(progname, level, msg);
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
}

static void
held_flush_as_warnings(void)
{
	size_t i;

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

/* "USER FINGERPRINT STATE EMAIL NOT-AFTER": whitespace-free fields. */
static void
print_list_line(const char *user, const struct ps_reg_entry *e)
{
	struct ps_identity id;
	char email[256], date[11];
	time_t not_after = 0;

	memset(&id, 0, sizeof(id));
	if (ps_cert_identity(e->cert, &id) != PS_OK)
		memset(&id, 0, sizeof(id));
	clean(id.email, email, sizeof(email), false);
	if (ps_cert_validity(e->cert, NULL, &not_after) == PS_OK)
		ps_format_date((long long)not_after, date);
	else
		snprintf(date, sizeof(date), "unknown");
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

	memset(&id, 0, sizeof(id));
	if (ps_cert_identity(e->cert, &id) != PS_OK)
		memset(&id, 0, sizeof(id));
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
	char *nl;
	int r;

	*out = NULL;
	memset(&rules, 0, sizeof(rules));
	rules.max_size = PASSWORD_MAX;
	r = ps_read_file(&lib_log, path, &rules, &data, &len);
	if (r == PS_ERR_NOT_FOUND)
		return fail(PS_OK, "%s: no such password file", path);
	if (r != PS_OK)
		return fail(r, "cannot read password file %s", path);
	/* the first line is the password; editors add a line end */
	if ((nl = memchr(data, '\n', len)) != NULL) {
		if (nl > (char *)data && nl[-1] == '\r')
			nl--;
		ps_wipe(nl, len - (size_t)(nl - (char *)data));
	}
	if ((*out = strdup((char *)data)) == NULL) {
		ps_freezero(data, len + 1);
		return fail(PS_ERR_NOMEM, "password");
	}
	ps_freezero(data, len + 1);
	return EXIT_SUCCESS;
}

static volatile sig_atomic_t prompt_signal;

static void
prompt_sig_handler(int sig)
{
	prompt_signal = sig;
}

static const int prompt_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
#define NPROMPT_SIGS (sizeof(prompt_sigs) / sizeof(prompt_sigs[0]))

/* Read one line from the tty with echo off into buf (NUL-terminated). */
static int
tty_read_hidden(int fd, const char *prompt, char *buf, size_t buflen)
{
	struct sigaction sa, old[NPROMPT_SIGS];
	struct termios saved, quiet;
	size_t i, n = 0;
	ssize_t got;
	char ch;
	int r = PS_ERR_CONV;

	if (tcgetattr(fd, &saved) != 0)
		return PS_ERR_CONV;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prompt_sig_handler;	/* no SA_RESTART: read stops */
	sigemptyset(&sa.sa_mask);
	prompt_signal = 0;
	for (i = 0; i < NPROMPT_SIGS; i++)
		(void)sigaction(prompt_sigs[i], &sa, &old[i]);
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
		goto restore;
	if (write(fd, prompt, strlen(prompt)) < 0)
		goto restore;
	for (;;) {
		got = read(fd, &ch, 1);
		if (got != 1 || prompt_signal != 0)
			break;
		if (ch == '\n' || ch == '\r') {
			r = PS_OK;
			break;
		}
		if (n + 1 < buflen)
			buf[n++] = ch;
	}
	buf[n] = '\0';
	ch = '\n';
	(void)!write(fd, &ch, 1);
 restore:
	(void)tcsetattr(fd, TCSAFLUSH, &saved);
	for (i = 0; i < NPROMPT_SIGS; i++)
		(void)sigaction(prompt_sigs[i], &old[i], NULL);
	if (prompt_signal != 0) {
		ps_wipe(buf, buflen);
		raise(prompt_signal);
		r = PS_ERR_CONV;
	}
	return r;
}

/* PS_ERR_CONV when there is no terminal to ask on. */
static int
prompt_password(const char *file, char **out)
{
	char buf[PASSWORD_MAX], prompt[MSG_MAX], name[256];
	int fd, r;

	*out = NULL;
	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return PS_ERR_CONV;
	clean(file, name, sizeof(name), true);
	snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
	r = tty_read_hidden(fd, prompt, buf, sizeof(buf));
	close(fd);
	if (r == PS_OK && (*out = strdup(buf)) == NULL)
		r = PS_ERR_NOMEM;
	ps_wipe(buf, sizeof(buf));
	return r;
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
				rc = fail(PS_OK, "cannot enroll %s: %s is a "
				    "password-protected keystore: give "
				    "--password-file (no terminal to ask on)",
				    user, file);
				goto out;
			}
			held_reset();
			if (r == PS_OK)
				r = ps_cert_load_file(&lib_log, file, pw, &sk);
		}
	}
	if (r != PS_OK || sk == NULL || sk_X509_num(sk) < 1) {
		rc = fail(r, "cannot enroll %s", user);
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
	char fp[PS_FP_HEX_LEN + 1] = "", date[11] = "unknown";
	time_t not_after;

	memset(&id, 0, sizeof(id));
	if (ps_cert_identity(cert, &id) != PS_OK)
		memset(&id, 0, sizeof(id));
	if (ps_cert_fingerprint(cert, fp) != PS_OK)
		fp[0] = '\0';
	if (ps_cert_validity(cert, NULL, &not_after) == PS_OK)
		ps_format_date((long long)not_after, date);
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

static int
cmd_list_all(struct ctx *c)
{
	struct ps_registry *reg = NULL;
	char **users = NULL;
	size_t n = 0, i;
	int r = PS_OK, rc;

	if ((rc = open_registry(c, false, &reg)) != 0)
		return rc;
	if ((r = ps_registry_list_users(reg, &users, &n)) != PS_OK) {
		rc = fail(r, "cannot list registry %s", c->registry);
		goto out;
	}
	for (i = 0; i < n; i++) {
		r = list_user(reg, users[i], false);
		if (r != PS_OK && r != PS_ERR_NOT_FOUND) {
			rc = fail(r, "cannot read the keys of %s", users[i]);
			goto out;
		}
	}
	held_flush_as_warnings();
	rc = EXIT_SUCCESS;
 out:
	ps_user_names_free(users, n);
	ps_registry_close(reg);
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
	char fp[PS_FP_HEX_LEN + 2];
	struct ps_registry *reg = NULL;
	size_t i, len = strlen(args[1]);
	int r, rc;

	if ((rc = check_user(user)) != 0)
		return rc;
	/* accept what admins paste: upper case too */
	if (len != PS_FP_HEX_LEN)
		return fail(PS_OK, "\"%s\" is not a key fingerprint (%d hex "
		    "digits, see list)", args[1], PS_FP_HEX_LEN);
	for (i = 0; i < len; i++)
		fp[i] = (char)(args[1][i] >= 'A' && args[1][i] <= 'F' ?
		    args[1][i] - 'A' + 'a' : args[1][i]);
	fp[len] = '\0';
	if (!ps_hex_valid(fp, PS_FP_HEX_LEN))
		return fail(PS_OK, "\"%s\" is not a key fingerprint (%d hex "
		    "digits, see list)", args[1], PS_FP_HEX_LEN);
	/* never create a registry just to find nothing in it */
	if (!registry_exists(c))
		return fail(PS_OK, "cannot remove: registry %s does not exist",
		    c->registry);
	if ((rc = open_registry(c, true, &reg)) != 0)
		return rc;
	if ((r = ps_registry_remove(reg, user, fp, &c->why)) != PS_OK) {
		rc = fail(r, "cannot remove key %.16s of %s", fp, user);
		goto out;
	}
	held_flush_as_warnings();
	if (!c->quiet)
		printf("removed key %s of %s\n", fp, user);
	rc = EXIT_SUCCESS;
 out:
	ps_registry_close(reg);
	return rc;
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

/* ------------------------------------------------------------ main */

struct command {
	const char *name;
	int min_args;
	int max_args;
	const char *synopsis;
	int (*run)(struct ctx *c, char **args);
};

static const struct command commands[] = {
	{ "enroll", 1, 2, "enroll USER FILE | enroll USER --from-card",
	    cmd_enroll },
	{ "list", 0, 1, "list [USER]", cmd_list },
	{ "show", 1, 1, "show USER", cmd_show },
	{ "remove", 2, 2, "remove USER FINGERPRINT", cmd_remove },
	{ "authorized-keys", 1, 1, "authorized-keys USER",
	    cmd_authorized_keys },
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
	    "                            (for sshd's AuthorizedKeysCommand)\n\n"
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

static const struct option long_options[] = {
	{ "registry", required_argument, NULL, 'r' },
	{ "config", required_argument, NULL, 'c' },
	{ "password-file", required_argument, NULL, 'p' },
	{ "reason", required_argument, NULL, 'R' },
	{ "from-card", no_argument, NULL, 'C' },
	{ "slot", required_argument, NULL, 'S' },
	{ "pcsc-socket", required_argument, NULL, 'P' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

struct cli {
	const char *registry;
	const char *config;
	bool help;
	bool version;
};

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
	struct cli cli = { NULL, NULL, false, false };
	char *args[3] = { NULL, NULL, NULL };
	int nargs, i, rc;

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
	held.quiet = c->quiet;
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
