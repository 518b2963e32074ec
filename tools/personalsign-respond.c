/*
 * personalsign-respond.c - the user's half of remote mode: read the
 * challenge line a server showed, say in plain words what signing it
 * means, sign it with the user's card or keystore, print the response
 * line to paste back.
 *
 * It runs as the user, on the user's own computer, and signs only text
 * that parses as a PersonalSign login challenge (challenge.h): the
 * context line keeps a response from ever being a signature over a
 * document or mail. What the user must check is the host, user and
 * service we print; the PIN or password is asked only after that is on
 * the screen, so typing it is the act of consent.
 *
 * Output: the response line alone on stdout; everything meant for the
 * person on stderr, so `r=$(personalsign-respond ...)` works.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"	/* autoconf's, found first by automake's -I. */
#endif

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cert.h"
#include "challenge.h"
#include "conv.h"
#include "log.h"
#include "ps_status.h"
#include "remote.h"
#include "token.h"
#include "util.h"
#include "tool_common.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define EXIT_USAGE	2
/* a challenge line with every field at its longest, plus a command name */
#define INPUT_MAX	(4 * PS_CHALLENGE_TEXT_MAX)

static char progname[] = "personalsign-respond";

struct options {
	const char *challenge;		/* operand, or NULL: stdin */
	const char *keystore;
	const char *secret_file;
	const char *key_prefix;		/* --key: fingerprint prefix */
	const char *reader;
	const char *pcsc_socket;
	const char *backend;
	bool quiet;
	bool verbose;
	bool help;
	bool version;
};

struct ctx {
	struct options opt;
	struct ps_log log;
	struct ps_config cfg;
	bool cfg_ready;
	char *user;
	char *home;
	uid_t uid;
	gid_t gid;
};

/* ------------------------------------------------------------ messages */

static void
say(const struct ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
say(const struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->opt.quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static int
fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

static int
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", progname);
	return EXIT_USAGE;
}

/* Library messages: errors and warnings always (they say why), the
 * chatter only with -v. */
static void
log_sink(void *arg, enum ps_log_level level, const char *msg)
{
	const struct ctx *c = arg;

	if (level > PS_LOG_WARN && !c->opt.verbose)
		return;
	fprintf(stderr, "%s: %s\n", progname, msg);
}

/* ------------------------------------------------------------ conversation */

static void
conv_say(void *arg, const char *msg)
{
	const struct ctx *c = arg;

	say(c, "%s\n", msg);
}

static void
conv_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "%s: %s\n", progname, msg);
}

/* ------------------------------------------------------------ input */

/* One line of stdin, at most INPUT_MAX bytes (malloc'd, no newline). */
static int
read_stdin_line(const struct ctx *c, char **out)
{
	char *buf;
	size_t n = 0;
	int ch;

	*out = NULL;
	if (isatty(STDIN_FILENO))
		say(c, "Paste the personalsign-challenge line, then Enter:\n");
	if ((buf = malloc(INPUT_MAX + 1)) == NULL)
		return PS_ERR_NOMEM;
	while ((ch = getchar()) != EOF && ch != '\n') {
		if (n == INPUT_MAX) {
			free(buf);
			return PS_ERR_INVALID;
		}
		buf[n++] = (char)ch;
	}
	if (n == 0 && ferror(stdin)) {
		free(buf);
		return PS_ERR_IO;
	}
	buf[n] = '\0';
	*out = buf;
	return PS_OK;
}

/*
 * The challenge token inside what the user pasted: people copy the whole
 * "personalsign-respond personalsign-challenge:..." line the server shows,
 * so the command name before it is allowed, and nothing else.
 */
static int
find_challenge(const char *input, const char **line, size_t *len)
{
	const char *start = strstr(input, PS_CHALLENGE_LINE_PREFIX);
	const char *p = input, *end;

	if (start == NULL)
		return PS_ERR_INVALID;
	while (p < start && (*p == ' ' || *p == '\t'))
		p++;
	if (p < start) {
		size_t n = strlen(progname);

		if ((size_t)(start - p) < n + 1 || strncmp(p, progname, n) != 0)
			return PS_ERR_INVALID;
		for (p += n; p < start; p++)
			if (*p != ' ' && *p != '\t')
				return PS_ERR_INVALID;
	}
	for (end = start; *end != '\0' && *end != ' ' && *end != '\t' &&
	    *end != '\r'; end++)
		;
	for (p = end; *p != '\0'; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r')
			return PS_ERR_INVALID;
	*line = start;
	*len = (size_t)(end - start);
	return PS_OK;
}

static int
get_challenge(struct ctx *c, struct ps_challenge *chal)
{
	char *input = NULL;
	const char *line;
	size_t len;
	int r;

	if (c->opt.challenge != NULL) {
		if ((input = strdup(c->opt.challenge)) == NULL)
			return fail("out of memory");
	} else if ((r = read_stdin_line(c, &input)) != PS_OK) {
		return fail("cannot read the challenge from standard input: %s",
		    r == PS_ERR_INVALID ? "line too long" : ps_status_str(r));
	}
	r = find_challenge(input, &line, &len);
	if (r == PS_OK)
		r = ps_challenge_line_parse(line, len, chal, NULL);
	free(input);
	if (r != PS_OK)
		return fail("that is not a complete PersonalSign challenge line "
		    "(copy the whole %s... line the server shows)",
		    PS_CHALLENGE_LINE_PREFIX);
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------ consent */

static void
local_time(long long t, char *out, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(out, len, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
		snprintf(out, len, "@%lld", t);
}

/* Refuse expired requests; say what is about to be signed. */
static int
describe(struct ctx *c, const struct ps_challenge *chal, time_t now)
{
	char when[64];

	local_time(chal->expires, when, sizeof(when));
	if ((long long)now > chal->expires)
		return fail("this request expired at %s (%lld s ago); log in "
		    "again to get a new one (or check this computer's clock)",
		    when, (long long)now - chal->expires);
	say(c, "Sign in to %s as %s for %s%s%s; this request expires at %s "
	    "(in %lld s).\n", chal->host[0] ? chal->host : "(unnamed host)",
	    chal->user, chal->service[0] ? chal->service : "(unnamed service)",
	    chal->rhost[0] ? ", from " : "", chal->rhost, when,
	    chal->expires - (long long)now);
	if (chal->issued > (long long)now + 300)
		say(c, "Note: the request was issued %lld s in the future by "
		    "this computer's clock.\n", chal->issued - (long long)now);
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------ token */

static int
setup_identity(struct ctx *c)
{
	struct passwd *pw;

	c->uid = getuid();
	c->gid = getgid();
	errno = 0;
	if ((pw = getpwuid(c->uid)) == NULL)
		return fail("who are you? (uid %lu has no passwd entry)",
		    (unsigned long)c->uid);
	if ((c->user = strdup(pw->pw_name)) == NULL ||
	    (c->home = strdup(pw->pw_dir)) == NULL)
		return fail("out of memory");
	return EXIT_SUCCESS;
}

static int
set_option(struct ctx *c, const char *key, const char *value)
{
	char err[256];

	if (ps_config_set(&c->cfg, key, value, err, sizeof(err)) != PS_OK)
		return usage_error("%s", err);
	return EXIT_SUCCESS;
}

static int
setup_config(struct ctx *c)
{
	char *ks;
	int rc;

	if (ps_config_init(&c->cfg) != PS_OK)
		return fail("out of memory");
	c->cfg_ready = true;
	if (c->opt.backend != NULL &&
	    (rc = set_option(c, "backend", c->opt.backend)) != 0)
		return rc;
	if (c->opt.reader != NULL &&
	    (rc = set_option(c, "reader", c->opt.reader)) != 0)
		return rc;
	if (c->opt.pcsc_socket != NULL &&
	    (rc = set_option(c, "pcsc_socket", c->opt.pcsc_socket)) != 0)
		return rc;
	if (c->opt.keystore != NULL) {
		if (c->opt.keystore[0] != '/')
			return usage_error("--keystore needs an absolute path");
		if ((ks = tool_keystore_pattern(c->opt.keystore)) == NULL)
			return fail("out of memory");
		rc = set_option(c, "keystore", ks);
		free(ks);
		if (rc != 0)
			return rc;
	}
	return EXIT_SUCCESS;
}

static bool
key_wanted(const struct ctx *c, const struct ps_token_key *k)
{
	char fp[PS_FP_HEX_LEN + 1];
	int id;

	if (k->pub == NULL)
		return false;
	id = EVP_PKEY_get_base_id(k->pub);
	if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC)
		return false;
	if (c->opt.key_prefix == NULL)
		return true;
	if (ps_pkey_fingerprint(k->pub, fp) != PS_OK)
		return false;
	return strncasecmp(fp, c->opt.key_prefix,
	    strlen(c->opt.key_prefix)) == 0;
}

static int
pick_key(struct ctx *c, struct ps_token *tok, const struct ps_token_key **key)
{
	const struct ps_token_key *keys;
	size_t n, i;
	int r;

	*key = NULL;
	if ((r = tok->ops->list_keys(tok, &keys, &n)) != PS_OK)
		return fail("cannot list the keys on the %s: %s",
		    tok->ops->name, ps_status_str(r));
	for (i = 0; i < n; i++) {
		if (key_wanted(c, &keys[i])) {
			*key = &keys[i];
			return EXIT_SUCCESS;
		}
	}
	if (c->opt.key_prefix != NULL)
		return fail("no key on the %s has a fingerprint starting with "
		    "%s", tok->ops->name, c->opt.key_prefix);
	return fail("the %s holds no RSA or EC key", tok->ops->name);
}

static int
get_secret(struct ctx *c, struct ps_token *tok, char **secret)
{
	int r;

	if (c->opt.secret_file != NULL) {
		r = tool_read_private_secret(&c->log, c->opt.secret_file,
		    c->uid, secret);
		if (r != PS_OK)
			return fail("cannot use %s: %s", c->opt.secret_file,
			    ps_status_str(r));
		return EXIT_SUCCESS;
	}
	r = tool_ask_tty(tok->ops->secret_prompt(tok), secret);
	if (r != PS_OK)
		return fail("no terminal to ask for the PIN or password on "
		    "(use --pin-file or --password-file)");
	return EXIT_SUCCESS;
}

static int
unlock(struct ctx *c, struct ps_token *tok, const struct ps_token_key *key)
{
	char *secret = NULL;
	int r, rc;

	if ((rc = get_secret(c, tok, &secret)) != 0)
		return rc;
	r = tok->ops->unlock(tok, key, secret);
	ps_free_secret(secret);
	switch (r) {
	case PS_OK:
		return EXIT_SUCCESS;
	case PS_ERR_BAD_SECRET:
		return fail("wrong %s", tok->ops->lists_without_secret ?
		    "PIN" : "password");
	case PS_ERR_PIN_LOCKED:
		return fail("the card's PIN is blocked, or too few tries are "
		    "left to risk one");
	default:
		return fail("cannot unlock the %s: %s", tok->ops->name,
		    ps_status_str(r));
	}
}

/* Sign, check our own signature (a card bug must not reach the server),
 * print the response line. */
static int
sign_and_print(struct ctx *c, struct ps_token *tok,
    const struct ps_token_key *key, const struct ps_challenge *chal)
{
	unsigned char digest[EVP_MAX_MD_SIZE], *sig = NULL;
	size_t dlen = 0, slen = 0;
	const EVP_MD *md = ps_challenge_md_for_key(key->pub);
	char *line = NULL;
	int r, rc = EXIT_FAILURE;

	if ((r = ps_challenge_digest(chal, md, digest, &dlen)) != PS_OK) {
		rc = fail("cannot digest the challenge: %s", ps_status_str(r));
		goto out;
	}
	if ((r = tok->ops->sign(tok, key, md, digest, dlen, &sig,
	    &slen)) != PS_OK) {
		rc = fail("the %s could not sign: %s", tok->ops->name,
		    ps_status_str(r));
		goto out;
	}
	if (ps_challenge_verify(&c->log, chal, key->pub, sig, slen) != PS_OK) {
		rc = fail("the %s produced a signature that does not verify",
		    tok->ops->name);
		goto out;
	}
	if ((r = ps_response_line_encode(chal, key->pub, sig, slen,
	    &line)) != PS_OK) {
		rc = fail("cannot encode the response: %s", ps_status_str(r));
		goto out;
	}
	say(c, "Paste this line at the server's \"PersonalSign response:\" "
	    "prompt:\n");
	printf("%s\n", line);
	rc = EXIT_SUCCESS;
 out:
	free(line);
	free(sig);
	ps_wipe(digest, sizeof(digest));
	return rc;
}

static int
respond(struct ctx *c, const struct ps_challenge *chal)
{
	struct ps_conv conv = { tool_conv_prompt, conv_say, conv_error, c };
	struct ps_token_params p;
	struct ps_token *tok = NULL;
	const struct ps_token_key *key = NULL;
	int r, rc;

	memset(&p, 0, sizeof(p));
	p.cfg = &c->cfg;
	p.log = &c->log;
	p.conv = &conv;
	p.user = c->user;
	p.uid = c->uid;
	p.gid = c->gid;
	p.home = c->home;
	if ((r = ps_token_open(c->cfg.backend, &p, &tok)) != PS_OK)
		return fail("no %s to sign with (%s)",
		    c->cfg.backend == PS_BACKEND_PIV ? "card" :
		    c->cfg.backend == PS_BACKEND_SOFT ? "keystore" :
		    "card or keystore", r == PS_ERR_NO_TOKEN ? "none found" :
		    ps_status_str(r));
	if (tok->ops->lists_without_secret &&
	    (rc = pick_key(c, tok, &key)) != 0)
		goto out;
	if ((rc = unlock(c, tok, key)) != 0)
		goto out;
	if (key == NULL && (rc = pick_key(c, tok, &key)) != 0)
		goto out;
	rc = sign_and_print(c, tok, key, chal);
 out:
	ps_token_close(tok);
	return rc;
}

/* ------------------------------------------------------------ main */

static void
print_help(void)
{
	printf("usage: %s [options] [CHALLENGE]\n\n"
	    "Signs a PersonalSign login challenge shown by a server (SSH "
	    "keyboard-interactive)\nwith your card or keystore and prints "
	    "the response line to paste back.\nCHALLENGE is the "
	    "personalsign-challenge:... line; without it, one line is read\n"
	    "from standard input.\n\n"
	    "options:\n"
	    "  --backend soft|piv|auto  where the key is: keystore file "
	    "(default), PIV card,\n"
	    "                           or a card when present else the "
	    "keystore\n"
	    "  --keystore PATH          keystore file (default "
	    "~/.personalsign/keystore.pfx)\n"
	    "  --reader NAME            use the card reader whose name "
	    "contains NAME\n"
	    "  --pcsc-socket PATH       pcscd socket to use\n"
	    "  --key PREFIX             sign with the key whose fingerprint "
	    "starts with PREFIX\n"
	    "  --password-file FILE     keystore password from the first "
	    "line of FILE\n"
	    "  --pin-file FILE          card PIN from the first line of FILE "
	    "(same thing)\n"
	    "  -q, --quiet              print only the response line (and "
	    "errors)\n"
	    "  -v, --verbose            say more about what the card or "
	    "keystore does\n"
	    "  -h, --help               show this help\n"
	    "  -V, --version            show the version\n\n"
	    "Check the host, user and service it prints before you enter "
	    "your PIN:\nsigning lets whoever showed you the challenge log in "
	    "there as you.\n"
	    "Exit status: 0 success, 1 error (expired, wrong PIN, ...), 2 "
	    "usage error.\n", progname);
}

static const struct option long_options[] = {
	{ "backend", required_argument, NULL, 'b' },
	{ "keystore", required_argument, NULL, 'k' },
	{ "reader", required_argument, NULL, 'r' },
	{ "pcsc-socket", required_argument, NULL, 's' },
	{ "key", required_argument, NULL, 'K' },
	{ "password-file", required_argument, NULL, 'p' },
	{ "pin-file", required_argument, NULL, 'p' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int
parse_options(int argc, char **argv, struct options *o)
{
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":qvhV", long_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'b': o->backend = optarg; break;
		case 'k': o->keystore = optarg; break;
		case 'r': o->reader = optarg; break;
		case 's': o->pcsc_socket = optarg; break;
		case 'K': o->key_prefix = optarg; break;
		case 'p':
			if (o->secret_file != NULL)
				return usage_error("give --password-file or "
				    "--pin-file once");
			o->secret_file = optarg;
			break;
		case 'q': o->quiet = true; break;
		case 'v': o->verbose = true; break;
		case 'h': o->help = true; break;
		case 'V': o->version = true; break;
		case ':':
			return usage_error("option %s needs an argument",
			    argv[optind - 1]);
		default:
			if (optopt != 0)
				return usage_error("unknown option -%c", optopt);
			return usage_error("unknown option %s",
			    argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return usage_error("one challenge at a time");
	if (argc - optind == 1)
		o->challenge = argv[optind];
	if (o->key_prefix != NULL && (o->key_prefix[0] == '\0' ||
	    strspn(o->key_prefix, "0123456789abcdefABCDEF") !=
	    strlen(o->key_prefix)))
		return usage_error("--key wants hex digits of a fingerprint");
	return EXIT_SUCCESS;
}

static int
run(int argc, char **argv, struct ctx *c)
{
	struct ps_challenge chal;
	int rc;

	memset(&chal, 0, sizeof(chal));
	if ((rc = parse_options(argc, argv, &c->opt)) != 0)
		return rc;
	if (c->opt.help) {
		print_help();
		return EXIT_SUCCESS;
	}
	if (c->opt.version) {
		printf("%s %s\n", progname, PACKAGE_VERSION);
		return EXIT_SUCCESS;
	}
	if ((rc = setup_config(c)) != 0)
		return rc;
	if ((rc = setup_identity(c)) != 0)
		return rc;
	if ((rc = get_challenge(c, &chal)) != 0)
		return rc;
	if ((rc = describe(c, &chal, time(NULL))) == 0)
		rc = respond(c, &chal);
	ps_challenge_clear(&chal);
	return rc;
}

int
main(int argc, char **argv)
{
	struct ctx c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.log.fn = log_sink;
	c.log.arg = &c;
	c.log.debug = 0;
	rc = run(argc, argv, &c);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: cannot write output: %s\n", progname,
		    strerror(errno));
		rc = EXIT_FAILURE;
	}
	if (c.cfg_ready)
		ps_config_free(&c.cfg);
	free(c.user);
	free(c.home);
	return rc;
}
