/*
 * registry_file.c - the file backend of the registry (registry.h).
 *
 * Layout under the root (default /etc/personalsign/registry):
 *
 *   USER/<fp>.pem          one registered certificate, named by the SHA-256
 *                          of its SubjectPublicKeyInfo. "Key: value" header
 *                          lines (RFC 7468 explanatory text) precede the PEM
 *                          block: State, Enrolled, Superseded-By, and for
 *                          admins Subject, Email, Not-After.
 *   USER/retired/<fp>.pem  retired entries, with Retired and Reason added.
 *   .by-key/<fp>           "USER\n": the key -> user index (O(1)).
 *   .audit.log             one line per change, appended after it is made.
 *   .pending               the audit line of the change in progress.
 *   .lock                  flock(LOCK_EX) around every change.
 *
 * Decisions:
 * - A retired key keeps its .by-key entry, so it can never be registered
 *   again (for anyone) without an explicit remove; find_key reports only
 *   usable keys, so a retired key maps to no one.
 * - add writes the index before the entry and remove deletes the entry
 *   before the index: a crash can leave an index entry without a file
 *   (which blocks the key, fail closed, and the next add/remove for the
 *   same user repairs), never a usable entry that the index does not know.
 * - Only State, Enrolled, Superseded-By (and Retired in retired/) decide
 *   anything; Subject, Email and Not-After are written for admins reading
 *   the files and ignored on read. The certificate itself is the truth.
 * - The audit line is written after the change is visible and fsync'd; if
 *   that fails the change stands and the caller gets PS_ERR_IO.
 * - Crashes: before its first write a change puts its audit line in
 *   .pending (fsync'd). The next writer, under the lock, finds it, looks
 *   whether the change took effect (finishing a half-done retire or
 *   remove, rolling back a half-done enroll's index entry), appends the
 *   line when it did (unless it is already the log's last line) and
 *   removes .pending. A kill -9 at any point thus leaves the old or the
 *   new state and an audit log that matches it.
 * - A retired/<fp>.pem wins over USER/<fp>.pem: readers never use a key
 *   whose retirement was interrupted between its two steps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cert.h"
#include "ps_status.h"
#include "registry.h"
#include "util.h"

#define ENTRY_FILE_MAX		(64 * 1024)
#define INDEX_FILE_MAX		(PS_USER_NAME_MAX + 1)
#define HEADER_VALUE_MAX	1024
#define REASON_MAX		512
#define ENTRY_SUFFIX		".pem"
#define RETIRED_DIR		"retired"
#define INDEX_DIR		".by-key"
#define AUDIT_FILE		".audit.log"
#define LOCK_FILE		".lock"
#define PENDING_FILE		".pending"
#define AUDIT_LINE_MAX		(REASON_MAX + PS_USER_NAME_MAX + 384)
#define AUDIT_FILE_MAX		(256L * 1024 * 1024)
#define ACTOR_MAX		128
#define PEM_BEGIN_CERT		"-----BEGIN CERTIFICATE-----"
/* Year 10000: anything later in a time header is corruption. */
#define TIME_HEADER_MAX		253402300800LL

struct file_reg {
	char *root;
	bool writable;
};

/* What the headers of an entry file say. */
struct entry_meta {
	enum ps_key_state state;
	long long enrolled;
	char superseded_by[PS_FP_HEX_LEN + 1];
	long long retired;
	char reason[REASON_MAX + 1];
};

/* Header keys that decide something; each may appear once. */
enum {
	SEEN_STATE = 1 << 0,
	SEEN_ENROLLED = 1 << 1,
	SEEN_SUPERSEDED_BY = 1 << 2,
	SEEN_RETIRED = 1 << 3,
	SEEN_REASON = 1 << 4,
};

/* The change in progress: its audit line and what it is about. */
struct journal {
	char line[AUDIT_LINE_MAX];	/* complete, with its '\n' */
	char action[16];
	char user[PS_USER_NAME_MAX];
	char fp[PS_FP_HEX_LEN + 1];
};

/* A growable text buffer for building entry files. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	bool failed;
};

static const struct ps_registry_ops file_ops;

static struct file_reg *
impl_of(struct ps_registry *reg)
{
	return reg->impl;
}

/* ------------------------------------------------------------ small helpers */

static void
sbuf_addf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sbuf_addf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t need;
	char *np;
	int n;

	if (b->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	need = b->len + (size_t)n + 1;
	if (need > b->cap) {
		size_t ncap = need < 1024 ? 1024 : need * 2;

		if ((np = realloc(b->p, ncap)) == NULL) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	b->len += (size_t)n;
}

/* Text from certificates and admins goes into one header or audit line:
 * keep printable ASCII, replace the rest, so nothing can add a line. */
static void
clean_text(const char *in, char *out, size_t outlen, bool spaces_ok)
{
	size_t i = 0;

	if (outlen == 0)
		return;
	for (; in != NULL && *in != '\0' && i + 1 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		if (c == ' ' && !spaces_ok)
			c = '_';
		else if (c < 0x20 || c >= 0x7f)
			c = '?';
		out[i++] = (char)c;
	}
	out[i] = '\0';
}

/* "<64 hex>.pem" -> fp; anything else is not an entry. */
static bool
entry_name(const char *name, char fp[PS_FP_HEX_LEN + 1])
{
	if (strlen(name) != PS_FP_HEX_LEN + strlen(ENTRY_SUFFIX) ||
	    strcmp(name + PS_FP_HEX_LEN, ENTRY_SUFFIX) != 0)
		return false;
	memcpy(fp, name, PS_FP_HEX_LEN);
	fp[PS_FP_HEX_LEN] = '\0';
	return ps_hex_valid(fp, PS_FP_HEX_LEN);
}

static bool
fp_valid(const struct ps_log *log, const char *fp)
{
	if (ps_hex_valid(fp, PS_FP_HEX_LEN))
		return true;
	ps_log_err(log, "registry: not a key fingerprint");
	return false;
}

static bool
user_valid(const struct ps_log *log, const char *user)
{
	if (ps_user_name_valid(user))
		return true;
	ps_log_err(log, "registry: invalid user name refused");
	return false;
}

/* The root and every directory above it must be trusted. */
static int
root_check(struct ps_registry *reg)
{
	const char *root = impl_of(reg)->root;
	struct stat st;

	if (lstat(root, &st) != 0) {
		if (errno == ENOENT) {
			ps_log_err(reg->log, "registry %s does not exist",
			    root);
			return PS_ERR_NOT_FOUND;
		}
		ps_log_err(reg->log, "%s: cannot stat: %s", root,
		    strerror(errno));
		return PS_ERR_IO;
	}
	if (!ps_path_trusted(reg->log, root))
		return PS_ERR_UNSAFE;
	return PS_OK;
}

/* Create a registry directory (0755) or accept a trusted existing one. */
static int
ensure_dir(const struct ps_log *log, const char *path)
{
	if (mkdir(path, 0755) != 0) {
		if (errno == EEXIST)
			return ps_dir_check(log, path);
		ps_log_err(log, "%s: cannot create directory: %s", path,
		    strerror(errno));
		return PS_ERR_IO;
	}
	/* mkdir obeys the umask; the registry must be world-readable so
	 * that unprivileged lookups (screen lockers) work. */
	if (chmod(path, 0755) != 0) {
		ps_log_err(log, "%s: cannot chmod: %s", path, strerror(errno));
		return PS_ERR_IO;
	}
	if (ps_fsync_dir(path, false) != PS_OK) {
		ps_log_err(log, "%s: cannot sync parent directory", path);
		return PS_ERR_IO;
	}
	return PS_OK;
}

static int
mkdir_one(const struct ps_log *log, const char *path)
{
	if (mkdir(path, 0755) == 0) {
		if (chmod(path, 0755) != 0) {
			ps_log_err(log, "%s: cannot chmod: %s", path,
			    strerror(errno));
			return PS_ERR_IO;
		}
		return PS_OK;
	}
	if (errno == EEXIST)
		return PS_OK;	/* ps_path_trusted judges it afterwards */
	ps_log_err(log, "%s: cannot create directory: %s", path,
	    strerror(errno));
	return PS_ERR_IO;
}

/* mkdir -p for the root, used only when the tool opens for writing. */
static int
make_root(const struct ps_log *log, const char *root)
{
	char *buf, *p, c;
	int r = PS_OK;

	if ((buf = strdup(root)) == NULL)
		return PS_ERR_NOMEM;
	for (p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		r = mkdir_one(log, buf);
		*p = c;
		if (r != PS_OK || c == '\0')
			break;
	}
	free(buf);
	return r;
}

static char *
path_join(const char *a, const char *b)
{
	return ps_strdup_printf("%s/%s", a, b);
}

/* ROOT/USER, ROOT/USER/<fp>.pem, ROOT/USER/retired/<fp>.pem. */
static char *
user_dir(struct ps_registry *reg, const char *user)
{
	return path_join(impl_of(reg)->root, user);
}

static char *
entry_path(struct ps_registry *reg, const char *user, const char *fp,
    bool retired)
{
	return ps_strdup_printf("%s/%s/%s%s%s%s", impl_of(reg)->root, user,
	    retired ? RETIRED_DIR : "", retired ? "/" : "", fp, ENTRY_SUFFIX);
}

/* 1 when `path` is a regular file, 0 when absent, <0 on error. */
static int
file_exists(const struct ps_log *log, const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return S_ISREG(st.st_mode) ? 1 : -1;
	if (errno == ENOENT)
		return 0;
	ps_log_err(log, "%s: cannot stat: %s", path, strerror(errno));
	return -1;
}

/*
 * The paths of `user`'s usable and retired entry files for `fp` (the
 * caller frees both, on error too) and whether each exists (file_exists).
 */
static int
entry_files(struct ps_registry *reg, const char *user, const char *fp,
    char **active, char **retired, int *a, int *t)
{
	*active = entry_path(reg, user, fp, false);
	*retired = entry_path(reg, user, fp, true);
	if (*active == NULL || *retired == NULL)
		return PS_ERR_NOMEM;
	*a = file_exists(reg->log, *active);
	*t = file_exists(reg->log, *retired);
	return *a < 0 || *t < 0 ? PS_ERR_IO : PS_OK;
}

/*
 * Read a registry file that may not exist yet (.pending, the audit log):
 * absent is PS_OK with *data NULL; any other failure is logged.
 */
static int
read_optional(struct ps_registry *reg, const char *path, size_t max,
    unsigned char **data, size_t *len)
{
	struct ps_file_rules rules;
	int r;

	ps_file_rules_trusted(&rules, max);
	r = ps_read_file(reg->log, path, &rules, data, len);
	return r == PS_ERR_NOT_FOUND ? PS_OK : r;
}

static bool
read_only(struct ps_registry *reg)
{
	if (impl_of(reg)->writable)
		return false;
	ps_log_err(reg->log, "registry %s was opened read-only",
	    impl_of(reg)->root);
	return true;
}

/* ------------------------------------------------------------ locking */

static int
lock_take(struct ps_registry *reg, int *fdp)
{
	char *path;
	int r;

	*fdp = -1;
	if ((path = path_join(impl_of(reg)->root, LOCK_FILE)) == NULL)
		return PS_ERR_NOMEM;
	r = ps_lock_file(reg->log, path, fdp);
	free(path);
	return r;
}

static void
lock_release(int fd)
{
	if (fd >= 0)
		close(fd);	/* drops the flock */
}

/* ------------------------------------------------------------ audit log */

/* The audit line of a change, stamped now, into j. */
static int
audit_format(const struct ps_reg_change *why, const char *action,
    const char *user, const char *fp, struct journal *j)
{
	char when[32], actor[ACTOR_MAX], reason[REASON_MAX + 1];
	struct tm tm;
	time_t now = time(NULL);
	int n;

	memset(j, 0, sizeof(*j));
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "@%lld", (long long)now);
	clean_text(why->actor, actor, sizeof(actor), false);
	clean_text(why->reason, reason, sizeof(reason), true);
	n = snprintf(j->line, sizeof(j->line), "%s actor=%s action=%s user=%s "
	    "key=%s reason=%s\n", when, actor, action, user, fp,
	    reason[0] != '\0' ? reason : "-");
	if (n < 0 || (size_t)n >= sizeof(j->line))
		return PS_ERR_INTERNAL;
	snprintf(j->action, sizeof(j->action), "%s", action);
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->fp, sizeof(j->fp), "%s", fp);
	return PS_OK;
}

/* Is `line` already the last line of the log open on fd (size st_size)? */
static bool
audit_ends_with(int fd, off_t size, const char *line)
{
	char tail[AUDIT_LINE_MAX + 1];
	size_t len = strlen(line);
	ssize_t n;

	if ((off_t)len > size)
		return false;
	if ((off_t)len < size) {
		/* the line before must end right there */
		n = pread(fd, tail, len + 1, size - (off_t)len - 1);
		return n == (ssize_t)len + 1 && tail[0] == '\n' &&
		    memcmp(tail + 1, line, len) == 0;
	}
	n = pread(fd, tail, len, 0);
	return n == (ssize_t)len && memcmp(tail, line, len) == 0;
}

/*
 * Append one line, fsync'd. A log whose last line was torn (power loss)
 * gets a line end first, so the torn line stays alone. With `once`, a
 * line that is already the last one is not written again.
 */
static int
audit_append(struct ps_registry *reg, const char *line, bool once)
{
	struct stat st;
	char *path, last = '\n';
	int fd = -1, r = PS_ERR_IO;

	if ((path = path_join(impl_of(reg)->root, AUDIT_FILE)) == NULL)
		return PS_ERR_NOMEM;
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
	if (fd < 0) {
		ps_log_err(reg->log, "%s: cannot open audit log: %s", path,
		    strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ps_log_err(reg->log, "%s: audit log is not a regular file",
		    path);
		goto out;
	}
	if (once && audit_ends_with(fd, st.st_size, line)) {
		r = PS_OK;
		goto out;
	}
	if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1) {
		ps_log_err(reg->log, "%s: cannot read audit log: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((last != '\n' && ps_write_all(fd, "\n", 1) != 0) ||
	    ps_write_all(fd, line, strlen(line)) != 0) {
		ps_log_err(reg->log, "%s: cannot write audit log: %s", path,
		    strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0 || ps_fsync_dir(path, false) != PS_OK) {
		ps_log_err(reg->log, "%s: cannot sync audit log: %s", path,
		    strerror(errno));
		goto out;
	}
	r = PS_OK;
 out:
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

/* ------------------------------------------------------------ entry files */

static int
parse_time(const char *v, long long *out)
{
	long long t = 0;
	size_t i, len = strlen(v);

	if (len == 0 || len > 12)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		t = t * 10 + (v[i] - '0');
	}
	if (t > TIME_HEADER_MAX)
		return -1;
	*out = t;
	return 0;
}

static int
parse_state(const char *v, enum ps_key_state *out)
{
	if (strcmp(v, "active") == 0)
		*out = PS_KEY_ACTIVE;
	else if (strcmp(v, "superseded") == 0)
		*out = PS_KEY_SUPERSEDED;
	else if (strcmp(v, "retired") == 0)
		*out = PS_KEY_RETIRED;
	else
		return -1;
	return 0;
}

/* Apply one "Key: value" header; -1 with *why set on a bad one. */
static int
apply_header(const char *key, const char *value, struct entry_meta *m,
    unsigned *seen, const char **why)
{
	unsigned bit;
	int bad;

	if (strcmp(key, "State") == 0) {
		bit = SEEN_STATE;
		bad = parse_state(value, &m->state);
	} else if (strcmp(key, "Enrolled") == 0) {
		bit = SEEN_ENROLLED;
		bad = parse_time(value, &m->enrolled);
	} else if (strcmp(key, "Superseded-By") == 0) {
		bit = SEEN_SUPERSEDED_BY;
		bad = ps_hex_valid(value, PS_FP_HEX_LEN) ? 0 : -1;
		if (bad == 0)
			memcpy(m->superseded_by, value, PS_FP_HEX_LEN + 1);
	} else if (strcmp(key, "Retired") == 0) {
		bit = SEEN_RETIRED;
		bad = parse_time(value, &m->retired);
	} else if (strcmp(key, "Reason") == 0) {
		bit = SEEN_REASON;
		bad = 0;
		clean_text(value, m->reason, sizeof(m->reason), true);
	} else {
		return 0;	/* informational (Subject, Email, ...) */
	}
	if (*seen & bit) {
		*why = "repeated header";
		return -1;
	}
	*seen |= bit;
	if (bad != 0) {
		*why = "bad header value";
		return -1;
	}
	return 0;
}

/*
 * Split one header line "Key: value" (no line end) and apply it. Keys are
 * [A-Za-z][A-Za-z0-9-]*; the line is printable ASCII throughout.
 */
static int
parse_header_line(const char *line, size_t len, struct entry_meta *m,
    unsigned *seen, const char **why)
{
	char key[32], value[HEADER_VALUE_MAX + 1];
	size_t i, klen;

	for (i = 0; i < len; i++) {
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] >= 0x7f) {
			*why = "control character in header";
			return -1;
		}
	}
	for (klen = 0; klen < len && line[klen] != ':'; klen++) {
		char c = line[klen];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (klen > 0 && ((c >= '0' && c <= '9') || c == '-'))))
			break;
	}
	if (klen == 0 || klen >= sizeof(key) || klen + 2 > len ||
	    line[klen] != ':' || line[klen + 1] != ' ') {
		*why = "line is not a \"Key: value\" header";
		return -1;
	}
	if (len - klen - 2 > HEADER_VALUE_MAX) {
		*why = "header too long";
		return -1;
	}
	memcpy(key, line, klen);
	key[klen] = '\0';
	memcpy(value, line + klen + 2, len - klen - 2);
	value[len - klen - 2] = '\0';
	return apply_header(key, value, m, seen, why);
}

/* PEM text of a certificate is never encrypted: refuse any prompt. */
static int
no_password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Exactly one CERTIFICATE block, then nothing but white space. */
static int
parse_pem(const char *pem, size_t len, X509 **cert, const char **why)
{
	BIO *bio = NULL;
	X509 *x = NULL;
	char rest[256];
	int n, i, r = -1;

	if (len < strlen(PEM_BEGIN_CERT) + 1 ||
	    memcmp(pem, PEM_BEGIN_CERT "\n", strlen(PEM_BEGIN_CERT) + 1) != 0) {
		*why = "PEM block is not a CERTIFICATE";
		return -1;
	}
	if (len > INT_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	if ((x = PEM_read_bio_X509(bio, NULL, no_password_cb, NULL)) == NULL) {
		*why = "certificate does not parse";
		goto out;
	}
	while ((n = BIO_read(bio, rest, sizeof(rest))) > 0) {
		for (i = 0; i < n; i++) {
			if (rest[i] != '\n' && rest[i] != ' ' &&
			    rest[i] != '\t' && rest[i] != '\r') {
				*why = "data after the certificate";
				goto out;
			}
		}
	}
	*cert = x;
	x = NULL;
	r = 0;
 out:
	X509_free(x);
	BIO_free(bio);
	return r;
}

/* Are the headers consistent with where the file lives? */
static int
check_meta(const struct entry_meta *m, unsigned seen, bool retired,
    const char **why)
{
	if (!(seen & SEEN_STATE)) {
		*why = "no State header";
		return -1;
	}
	if (retired != (m->state == PS_KEY_RETIRED)) {
		*why = retired ? "entry in retired/ is not retired" :
		    "retired entry outside retired/";
		return -1;
	}
	if (m->state == PS_KEY_ACTIVE && (seen & SEEN_SUPERSEDED_BY)) {
		*why = "active entry names a superseding key";
		return -1;
	}
	return 0;
}

/* Headers then the PEM certificate of one entry file. */
static int
parse_entry(const char *data, size_t len, bool retired,
    struct entry_meta *m, X509 **cert, const char **why)
{
	const char *p = data, *end = data + len, *nl;
	unsigned seen = 0;

	memset(m, 0, sizeof(*m));
	*cert = NULL;
	while (p < end && !(end - p > 11 && memcmp(p, "-----BEGIN ", 11) == 0)) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			*why = "no certificate";
			return -1;
		}
		if (parse_header_line(p, (size_t)(nl - p), m, &seen, why) != 0)
			return -1;
		p = nl + 1;
	}
	if (p >= end) {
		*why = "no certificate";
		return -1;
	}
	if (check_meta(m, seen, retired, why) != 0)
		return -1;
	return parse_pem(p, (size_t)(end - p), cert, why);
}

/*
 * Read, parse and verify one entry file: its certificate's key must be the
 * one its name says. Every failure is logged once, naming the file.
 */
static int
load_entry(struct ps_registry *reg, const char *path, const char *fp,
    bool retired, struct entry_meta *m, X509 **cert)
{
	struct ps_file_rules rules;
	unsigned char *data = NULL;
	char actual[PS_FP_HEX_LEN + 1];
	const char *why = NULL;
	size_t len = 0;
	X509 *x = NULL;
	int r;

	*cert = NULL;
	ps_file_rules_trusted(&rules, ENTRY_FILE_MAX);
	if ((r = ps_read_file(reg->log, path, &rules, &data, &len)) != PS_OK)
		return r;	/* logged, except a missing file */
	if (parse_entry((const char *)data, len, retired, m, &x, &why) != 0) {
		ps_log_err(reg->log, "registry entry %s: %s", path, why);
		ps_log_openssl(reg->log, "registry entry");
		r = PS_ERR_INVALID;
		goto out;
	}
	if (ps_cert_fingerprint(x, actual) != PS_OK) {
		ps_log_err(reg->log, "registry entry %s: cannot compute the "
		    "key fingerprint", path);
		r = PS_ERR_INVALID;
		goto out;
	}
	if (strcmp(actual, fp) != 0) {
		ps_log_err(reg->log, "registry entry %s: certificate key %.16s "
		    "does not match the file name (tampered or corrupt)",
		    path, actual);
		r = PS_ERR_INVALID;
		goto out;
	}
	*cert = x;
	x = NULL;
	r = PS_OK;
 out:
	X509_free(x);
	free(data);
	return r;
}

/* The entry file text: headers, then the PEM of the certificate. */
static int
format_entry(const struct entry_meta *m, X509 *cert, char **text,
    size_t *textlen)
{
	struct ps_identity id;
	struct sbuf b = { NULL, 0, 0, false };
	char subject[HEADER_VALUE_MAX + 1], email[HEADER_VALUE_MAX + 1];
	char date[11], *pem = NULL;
	time_t not_after;
	size_t pemlen;
	int r;

	*text = NULL;
	memset(&id, 0, sizeof(id));
	if ((r = ps_cert_identity(cert, &id)) != PS_OK)
		return r;
	if ((r = ps_cert_validity(cert, NULL, &not_after)) != PS_OK)
		goto out;
	if ((r = ps_cert_to_pem(cert, &pem, &pemlen)) != PS_OK)
		goto out;
	clean_text(id.subject, subject, sizeof(subject), true);
	clean_text(id.email, email, sizeof(email), true);
	ps_format_date((long long)not_after, date);
	sbuf_addf(&b, "State: %s\n", ps_key_state_name(m->state));
	sbuf_addf(&b, "Enrolled: %lld\n", m->enrolled);
	if (m->superseded_by[0] != '\0')
		sbuf_addf(&b, "Superseded-By: %s\n", m->superseded_by);
	if (m->state == PS_KEY_RETIRED) {
		sbuf_addf(&b, "Retired: %lld\n", m->retired);
		if (m->reason[0] != '\0')
			sbuf_addf(&b, "Reason: %s\n", m->reason);
	}
	if (subject[0] != '\0')
		sbuf_addf(&b, "Subject: %s\n", subject);
	if (email[0] != '\0')
		sbuf_addf(&b, "Email: %s\n", email);
	sbuf_addf(&b, "Not-After: %s\n", date);
	sbuf_addf(&b, "%s", pem);
	if (b.failed) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	*text = b.p;
	*textlen = b.len;
	b.p = NULL;
	r = PS_OK;
 out:
	free(b.p);
	free(pem);
	ps_identity_clear(&id);
	return r;
}

static int
write_entry(struct ps_registry *reg, const char *path,
    const struct entry_meta *m, X509 *cert)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	if ((r = format_entry(m, cert, &text, &len)) != PS_OK) {
		ps_log_err(reg->log, "%s: cannot format entry: %s", path,
		    ps_status_str(r));
		return r;
	}
	r = ps_write_file_atomic(reg->log, path, text, len, 0644);
	free(text);
	return r;
}

/* ------------------------------------------------------------ index */

/* PS_OK when .by-key is trusted or absent. */
static int
index_dir_check(struct ps_registry *reg)
{
	char *dir = path_join(impl_of(reg)->root, INDEX_DIR);
	int r;

	if (dir == NULL)
		return PS_ERR_NOMEM;
	r = ps_dir_check(reg->log, dir);
	free(dir);
	return r == PS_ERR_NOT_FOUND ? PS_OK : r;
}

/* Owner of `fp` according to .by-key; PS_ERR_NOT_FOUND (silent). */
static int
index_read(struct ps_registry *reg, const char *fp, char **owner)
{
	struct ps_file_rules rules;
	unsigned char *data = NULL;
	char *dir = NULL, *path = NULL;
	size_t len = 0;
	int r;

	*owner = NULL;
	dir = path_join(impl_of(reg)->root, INDEX_DIR);
	path = ps_strdup_printf("%s/%s/%s", impl_of(reg)->root, INDEX_DIR, fp);
	if (dir == NULL || path == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if ((r = ps_dir_check(reg->log, dir)) != PS_OK)
		goto out;
	ps_file_rules_trusted(&rules, INDEX_FILE_MAX);
	if ((r = ps_read_file(reg->log, path, &rules, &data, &len)) != PS_OK)
		goto out;
	/* exactly "USER\n" */
	if (len >= 2 && data[len - 1] == '\n')
		data[len - 1] = '\0';
	if (len < 2 || data[len - 1] != '\0' ||
	    !ps_user_name_valid((char *)data)) {
		ps_log_err(reg->log, "registry index %s is malformed", path);
		r = PS_ERR_INVALID;
		goto out;
	}
	*owner = (char *)data;
	data = NULL;
	r = PS_OK;
 out:
	free(data);
	free(path);
	free(dir);
	return r;
}

static int
index_write(struct ps_registry *reg, const char *fp, const char *user)
{
	char *dir = NULL, *path = NULL, *text = NULL;
	int r;

	dir = path_join(impl_of(reg)->root, INDEX_DIR);
	path = ps_strdup_printf("%s/%s/%s", impl_of(reg)->root, INDEX_DIR, fp);
	text = ps_strdup_printf("%s\n", user);
	if (dir == NULL || path == NULL || text == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if ((r = ensure_dir(reg->log, dir)) != PS_OK)
		goto out;
	r = ps_write_file_atomic(reg->log, path, text, strlen(text), 0644);
 out:
	free(text);
	free(path);
	free(dir);
	return r;
}

/* Unlink `path` if present and make that durable. */
static int
unlink_durable(const struct ps_log *log, const char *path, bool *existed)
{
	if (existed != NULL)
		*existed = false;
	if (unlink(path) != 0) {
		if (errno == ENOENT)
			return PS_OK;
		ps_log_err(log, "%s: cannot remove: %s", path, strerror(errno));
		return PS_ERR_IO;
	}
	if (existed != NULL)
		*existed = true;
	if (ps_fsync_dir(path, false) != PS_OK) {
		ps_log_err(log, "%s: cannot sync directory", path);
		return PS_ERR_IO;
	}
	return PS_OK;
}

static int
index_remove(struct ps_registry *reg, const char *fp)
{
	char *path;
	int r;

	path = ps_strdup_printf("%s/%s/%s", impl_of(reg)->root, INDEX_DIR, fp);
	if (path == NULL)
		return PS_ERR_NOMEM;
	r = unlink_durable(reg->log, path, NULL);
	free(path);
	return r;
}

/* ------------------------------------------------------------ journal */

static void prune_user_dir(struct ps_registry *reg, const char *user);

static char *
pending_path(struct ps_registry *reg)
{
	return path_join(impl_of(reg)->root, PENDING_FILE);
}

/* .pending holds the audit line before the change's first write. */
static int
journal_begin(struct ps_registry *reg, const struct journal *j)
{
	char *path;
	int fd, r = PS_ERR_IO;

	if ((path = pending_path(reg)) == NULL)
		return PS_ERR_NOMEM;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY, 0600);
	if (fd < 0) {
		ps_log_err(reg->log, "%s: cannot create: %s", path,
		    strerror(errno));
		goto out;
	}
	if (ps_write_all(fd, j->line, strlen(j->line)) != 0 ||
	    fsync(fd) != 0) {
		ps_log_err(reg->log, "%s: cannot write: %s", path,
		    strerror(errno));
		close(fd);
		(void)unlink(path);
		goto out;
	}
	if (close(fd) != 0 || ps_fsync_dir(path, false) != PS_OK) {
		ps_log_err(reg->log, "%s: cannot sync", path);
		(void)unlink(path);
		goto out;
	}
	r = PS_OK;
 out:
	free(path);
	return r;
}

static int
journal_clear(struct ps_registry *reg)
{
	char *path = pending_path(reg);
	int r;

	if (path == NULL)
		return PS_ERR_NOMEM;
	r = unlink_durable(reg->log, path, NULL);
	free(path);
	return r;
}

/* The value of " key=" up to the next blank, into out[outlen]. */
static int
line_field(const char *line, const char *key, char *out, size_t outlen)
{
	const char *p = strstr(line, key), *end;
	size_t len;

	if (p == NULL)
		return -1;
	p += strlen(key);
	end = strchr(p, ' ');
	len = end != NULL ? (size_t)(end - p) : strlen(p);
	if (len == 0 || len >= outlen)
		return -1;
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

static bool
action_known(const char *a)
{
	return strcmp(a, "enroll") == 0 || strcmp(a, "supersede") == 0 ||
	    strcmp(a, "retire") == 0 || strcmp(a, "activate") == 0 ||
	    strcmp(a, "remove") == 0;
}

/* A .pending line back into j; -1 when torn or not ours. */
static int
journal_parse(const char *text, size_t len, struct journal *j)
{
	memset(j, 0, sizeof(*j));
	if (len < 2 || len >= sizeof(j->line) || text[len - 1] != '\n' ||
	    memchr(text, '\n', len - 1) != NULL ||
	    memchr(text, '\0', len) != NULL)
		return -1;
	memcpy(j->line, text, len);
	j->line[len] = '\0';
	if (line_field(j->line, " action=", j->action, sizeof(j->action)) ||
	    line_field(j->line, " user=", j->user, sizeof(j->user)) ||
	    line_field(j->line, " key=", j->fp, sizeof(j->fp)))
		return -1;
	if (!action_known(j->action) || !ps_user_name_valid(j->user) ||
	    !ps_hex_valid(j->fp, PS_FP_HEX_LEN))
		return -1;
	return 0;
}

/* Temporary files of a killed writer: "<fp>.pem.tmp.XXXXXX", "<fp>.tmp.X". */
static void
sweep_dir(struct ps_registry *reg, const char *dir, const char *fp)
{
	struct dirent *de;
	bool removed = false;
	DIR *d;

	if (dir == NULL || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, fp, PS_FP_HEX_LEN) != 0 ||
		    strstr(de->d_name + PS_FP_HEX_LEN, ".tmp.") == NULL)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed = true;
		else
			ps_log_debug(reg->log, "%s/%s: %s", dir, de->d_name,
			    strerror(errno));
	}
	closedir(d);
	if (removed)
		(void)ps_fsync_dir(dir, true);
}

static void
journal_sweep(struct ps_registry *reg, const struct journal *j)
{
	char *udir = user_dir(reg, j->user);
	char *rdir = ps_strdup_printf("%s/%s/%s", impl_of(reg)->root, j->user,
	    RETIRED_DIR);
	char *idir = path_join(impl_of(reg)->root, INDEX_DIR);

	sweep_dir(reg, udir, j->fp);
	sweep_dir(reg, rdir, j->fp);
	sweep_dir(reg, idir, j->fp);
	free(idir);
	free(rdir);
	free(udir);
}

/* An enroll that did not happen must not leave its key blocked. */
static int
rollback_index(struct ps_registry *reg, const struct journal *j)
{
	char *owner = NULL;
	int r;

	r = index_read(reg, j->fp, &owner);
	if (r == PS_ERR_NOT_FOUND)
		return PS_OK;
	if (r == PS_OK && strcmp(owner, j->user) == 0)
		r = index_remove(reg, j->fp);
	free(owner);
	return r;
}

/* Is the active entry there in the state this action leaves it in? */
static int
state_is(struct ps_registry *reg, const char *path, const char *fp,
    enum ps_key_state want, bool *yes)
{
	struct entry_meta m;
	X509 *cert = NULL;
	int r;

	*yes = false;
	r = load_entry(reg, path, fp, false, &m, &cert);
	X509_free(cert);
	if (r == PS_ERR_NOT_FOUND)
		return PS_OK;
	if (r != PS_OK)
		return r;
	*yes = m.state == want;
	return PS_OK;
}

/*
 * Did the change take effect? The second step of a retire (unlink the
 * active file) or a remove (index entry, empty directories) is finished
 * here, an enroll that did not happen gives its index entry back.
 */
static int
journal_applied(struct ps_registry *reg, const struct journal *j,
    bool *applied)
{
	char *active = NULL, *retired = NULL;
	int a, t, r;

	*applied = false;
	if ((r = entry_files(reg, j->user, j->fp, &active, &retired, &a,
	    &t)) != PS_OK)
		goto out;
	if (strcmp(j->action, "enroll") == 0) {
		*applied = a > 0;
		if (!*applied && t == 0)
			r = rollback_index(reg, j);
	} else if (strcmp(j->action, "retire") == 0) {
		*applied = t > 0;
		if (*applied && a > 0)
			r = unlink_durable(reg->log, active, NULL);
	} else if (strcmp(j->action, "remove") == 0) {
		*applied = a == 0 && t == 0;
		if (*applied && (r = index_remove(reg, j->fp)) == PS_OK)
			prune_user_dir(reg, j->user);
	} else {
		r = state_is(reg, active, j->fp,
		    strcmp(j->action, "supersede") == 0 ? PS_KEY_SUPERSEDED :
		    PS_KEY_ACTIVE, applied);
	}
 out:
	free(retired);
	free(active);
	return r;
}

/* Log what was done (if anything) and forget .pending. Until the audit
 * line is in, .pending stays, so the next writer tries again. */
static int
journal_settle(struct ps_registry *reg, const struct journal *j,
    bool applied, bool recovered)
{
	int r;

	if (applied && (r = audit_append(reg, j->line, recovered)) != PS_OK)
		return r;
	if (recovered)
		ps_log_notice(reg->log, "registry: an interrupted %s of key "
		    "%.16s for %s was %s", j->action, j->fp, j->user,
		    applied ? "completed and audited" : "not made: nothing "
		    "changed");
	return journal_clear(reg);
}

/* Settle what a killed writer left; runs under the lock. */
static int
journal_recover(struct ps_registry *reg)
{
	struct journal j;
	unsigned char *data = NULL;
	char *path;
	size_t len = 0;
	bool applied = false;
	int r;

	if ((path = pending_path(reg)) == NULL)
		return PS_ERR_NOMEM;
	if ((r = read_optional(reg, path, AUDIT_LINE_MAX, &data, &len)) !=
	    PS_OK || data == NULL)
		goto out;	/* no change was interrupted */
	if (journal_parse((const char *)data, len, &j) != 0) {
		/* torn while being written: the change never started */
		ps_log_warn(reg->log, "registry: discarding an incomplete %s",
		    path);
		r = journal_clear(reg);
		goto out;
	}
	journal_sweep(reg, &j);
	if ((r = journal_applied(reg, &j, &applied)) != PS_OK)
		goto out;
	r = journal_settle(reg, &j, applied, true);
 out:
	free(data);
	free(path);
	return r;
}

/* Every writer: take the lock, then settle any interrupted change. */
static int
lock_and_recover(struct ps_registry *reg, int *fdp)
{
	int r;

	if ((r = lock_take(reg, fdp)) != PS_OK)
		return r;
	if ((r = journal_recover(reg)) != PS_OK) {
		ps_log_err(reg->log, "registry: cannot settle an interrupted "
		    "change: %s", ps_status_str(r));
		lock_release(*fdp);
		*fdp = -1;
	}
	return r;
}

static int
change_begin(struct ps_registry *reg, const struct ps_reg_change *why,
    const char *action, const char *user, const char *fp, struct journal *j)
{
	int r;

	if ((r = audit_format(why, action, user, fp, j)) != PS_OK)
		return r;
	return journal_begin(reg, j);
}

/* After the change (status r): audit it when it took effect. */
static int
change_end(struct ps_registry *reg, const struct journal *j, int r)
{
	bool applied = true;
	int r2;

	if (r != PS_OK && journal_applied(reg, j, &applied) != PS_OK)
		return r;	/* .pending stays for the next writer */
	r2 = journal_settle(reg, j, applied, false);
	if (r2 != PS_OK && applied)
		ps_log_err(reg->log, "registry: %s of key %.16s for %s was "
		    "made but is not in the audit log yet", j->action, j->fp,
		    j->user);
	return r != PS_OK ? r : r2;
}

/* ------------------------------------------------------------ lookup */

static int
list_append(struct ps_reg_list *list, X509 *cert, const char *fp,
    const struct entry_meta *m)
{
	struct ps_reg_entry *ne, *e;

	ne = reallocarray(list->entries, list->count + 1, sizeof(*ne));
	if (ne == NULL)
		return PS_ERR_NOMEM;
	list->entries = ne;
	e = &ne[list->count++];
	memset(e, 0, sizeof(*e));
	e->cert = cert;
	memcpy(e->fingerprint, fp, PS_FP_HEX_LEN + 1);
	e->state = m->state;
	e->enrolled = (time_t)m->enrolled;
	memcpy(e->superseded_by, m->superseded_by, sizeof(e->superseded_by));
	return PS_OK;
}

/* Active first, then newest enrolment, then fingerprint: a stable order
 * for the tools and for trying keys. */
static int
entry_cmp(const void *a, const void *b)
{
	const struct ps_reg_entry *x = a, *y = b;

	if (x->state != y->state)
		return x->state == PS_KEY_ACTIVE ? -1 : 1;
	if (x->enrolled != y->enrolled)
		return x->enrolled > y->enrolled ? -1 : 1;
	return strcmp(x->fingerprint, y->fingerprint);
}

/*
 * The index must not say that the key belongs to someone else (an entry
 * copied into another user's directory). A missing index entry is only
 * worth a warning: the entry's own name already binds it to its key.
 */
static int
index_agrees(struct ps_registry *reg, const char *user, const char *fp,
    const char *path)
{
	char *owner = NULL;
	int r;

	r = index_read(reg, fp, &owner);
	if (r == PS_ERR_NOT_FOUND) {
		ps_log_warn(reg->log, "registry entry %s has no %s entry",
		    path, INDEX_DIR);
		return PS_OK;
	}
	if (r != PS_OK)
		return r;
	if (strcmp(owner, user) != 0) {
		ps_log_err(reg->log, "registry entry %s: key is indexed to "
		    "user %s, not %s", path, owner, user);
		r = PS_ERR_INVALID;
	}
	free(owner);
	return r;
}

/*
 * PS_ERR_EXISTS when retired/<fp>.pem exists too: a retirement that was
 * interrupted between its two steps. The key is retired already.
 */
static int
retired_too(struct ps_registry *reg, const char *user, const char *fp)
{
	char *rpath = entry_path(reg, user, fp, true);
	int t;

	if (rpath == NULL)
		return PS_ERR_NOMEM;
	t = file_exists(reg->log, rpath);
	free(rpath);
	if (t < 0)
		return PS_ERR_IO;
	if (t > 0) {
		ps_log_info(reg->log, "registry: key %.16s of user %s is "
		    "retired (its retirement is being completed)", fp, user);
		return PS_ERR_EXISTS;
	}
	return PS_OK;
}

/* Load one candidate file of a user's directory into the list. A bad
 * entry is logged and skipped: only PS_ERR_NOMEM stops the lookup. */
static int
lookup_one(struct ps_registry *reg, const char *user, const char *udir,
    const char *name, struct ps_reg_list *list)
{
	struct entry_meta m;
	char fp[PS_FP_HEX_LEN + 1], *path;
	X509 *cert = NULL;
	int r;

	if (!entry_name(name, fp)) {
		ps_log_debug(reg->log, "registry: ignoring %s/%s", udir, name);
		return PS_OK;
	}
	if ((path = path_join(udir, name)) == NULL)
		return PS_ERR_NOMEM;
	r = retired_too(reg, user, fp);
	if (r == PS_OK)
		r = load_entry(reg, path, fp, false, &m, &cert);
	if (r == PS_OK)
		r = index_agrees(reg, user, fp, path);
	if (r == PS_OK) {
		if ((r = list_append(list, cert, fp, &m)) == PS_OK)
			cert = NULL;
	} else if (r != PS_ERR_NOMEM) {
		ps_log_debug(reg->log, "registry entry %s skipped", path);
		r = PS_OK;
	}
	X509_free(cert);
	free(path);
	return r;
}

static int
file_lookup_user(struct ps_registry *reg, const char *user,
    struct ps_reg_list *out)
{
	struct ps_reg_list list = { NULL, 0 };
	struct dirent *de;
	char *udir = NULL;
	DIR *d = NULL;
	int r;

	out->entries = NULL;
	out->count = 0;
	if (!user_valid(reg->log, user))
		return PS_ERR_INVALID;
	/* A missing registry is a broken setup, not "this user has no
	 * key": with nouserok the latter lets other modules decide, and a
	 * typo in registry= must not switch the module off for everyone. */
	if ((r = root_check(reg)) != PS_OK)
		return r == PS_ERR_NOT_FOUND ? PS_ERR_IO : r;
	if ((udir = user_dir(reg, user)) == NULL)
		return PS_ERR_NOMEM;
	if ((r = ps_dir_check(reg->log, udir)) != PS_OK) {
		if (r == PS_ERR_NOT_FOUND)
			ps_log_debug(reg->log, "registry: no entries for %s",
			    user);
		goto out;
	}
	/* an untrusted index must fail the lookup, not just skip entries */
	if ((r = index_dir_check(reg)) != PS_OK)
		goto out;
	if ((d = opendir(udir)) == NULL) {
		ps_log_err(reg->log, "%s: cannot read directory: %s", udir,
		    strerror(errno));
		r = PS_ERR_IO;
		goto out;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, RETIRED_DIR) == 0)
			continue;
		if ((r = lookup_one(reg, user, udir, de->d_name, &list)) != PS_OK)
			goto out;
	}
	if (errno != 0) {
		ps_log_err(reg->log, "%s: cannot read directory: %s", udir,
		    strerror(errno));
		r = PS_ERR_IO;
		goto out;
	}
	if (list.count == 0) {
		ps_log_debug(reg->log, "registry: no usable entries for %s",
		    user);
		r = PS_ERR_NOT_FOUND;
		goto out;
	}
	qsort(list.entries, list.count, sizeof(list.entries[0]), entry_cmp);
	*out = list;
	list.entries = NULL;
	list.count = 0;
	r = PS_OK;
 out:
	ps_reg_list_free(&list);
	if (d != NULL)
		closedir(d);
	free(udir);
	return r;
}

/* ------------------------------------------------------------ add */

/*
 * May `fp` be registered for `user`? Not when the index names anyone, or
 * an entry file (usable or retired) already exists. The one exception is
 * an index entry for this same user with no file, left by an interrupted
 * add: that is repaired by adding again.
 */
static int
check_not_registered(struct ps_registry *reg, const char *user,
    const char *fp)
{
	char *owner = NULL, *active = NULL, *retired = NULL;
	int r, a, t;

	r = index_read(reg, fp, &owner);
	if (r != PS_OK && r != PS_ERR_NOT_FOUND)
		return r;
	if (owner != NULL && strcmp(owner, user) != 0) {
		ps_log_err(reg->log, "key %.16s is already registered to user "
		    "%s", fp, owner);
		r = PS_ERR_EXISTS;
		goto out;
	}
	if ((r = entry_files(reg, user, fp, &active, &retired, &a, &t)) !=
	    PS_OK)
		goto out;
	if (a > 0 || t > 0) {
		ps_log_err(reg->log, "key %.16s is already registered to user "
		    "%s%s", fp, user, a > 0 ? "" : " (retired)");
		r = PS_ERR_EXISTS;
		goto out;
	}
	r = PS_OK;
 out:
	free(retired);
	free(active);
	free(owner);
	return r;
}

/* The writes of an enroll: index entry first, then the entry file. */
static int
add_apply(struct ps_registry *reg, const char *user, X509 *cert,
    const char *fp, const char *udir, const char *path)
{
	struct entry_meta m;
	int r;

	if ((r = ensure_dir(reg->log, udir)) != PS_OK)
		return r;
	memset(&m, 0, sizeof(m));
	m.state = PS_KEY_ACTIVE;
	m.enrolled = (long long)time(NULL);
	if ((r = index_write(reg, fp, user)) != PS_OK)
		return r;
	if ((r = write_entry(reg, path, &m, cert)) != PS_OK) {
		/* do not leave the key blocked for a failed add; but an entry
		 * renamed into place (only the directory sync failed) is
		 * usable and must keep its index entry */
		if (file_exists(reg->log, path) == 0 &&
		    index_remove(reg, fp) != PS_OK)
			ps_log_err(reg->log, "registry: index entry for key "
			    "%.16s left behind", fp);
	}
	return r;
}

static int
add_locked(struct ps_registry *reg, const char *user, X509 *cert,
    const char *fp, const struct ps_reg_change *why)
{
	struct journal j;
	char *udir = NULL, *path = NULL;
	int r;

	if ((r = check_not_registered(reg, user, fp)) != PS_OK)
		return r;
	udir = user_dir(reg, user);
	path = entry_path(reg, user, fp, false);
	if (udir == NULL || path == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if ((r = change_begin(reg, why, "enroll", user, fp, &j)) != PS_OK)
		goto out;
	r = add_apply(reg, user, cert, fp, udir, path);
	r = change_end(reg, &j, r);
 out:
	free(path);
	free(udir);
	return r;
}

static int
file_add(struct ps_registry *reg, const char *user, X509 *cert,
    const struct ps_reg_change *why)
{
	char fp[PS_FP_HEX_LEN + 1];
	int lock = -1, r;

	if (!user_valid(reg->log, user) || read_only(reg))
		return PS_ERR_INVALID;
	if (ps_cert_fingerprint(cert, fp) != PS_OK) {
		ps_log_err(reg->log, "registry: cannot compute the key "
		    "fingerprint of the certificate");
		return PS_ERR_INVALID;
	}
	if ((r = root_check(reg)) != PS_OK)
		return r;
	if ((r = lock_and_recover(reg, &lock)) != PS_OK)
		return r;
	r = add_locked(reg, user, cert, fp, why);
	lock_release(lock);
	return r;
}

/* ------------------------------------------------------------ set_state */

static int
retire_entry(struct ps_registry *reg, const char *user, const char *fp,
    const char *active, struct entry_meta *m, X509 *cert,
    const struct ps_reg_change *why)
{
	char *rdir = NULL, *rpath = NULL;
	int r;

	rdir = ps_strdup_printf("%s/%s/%s", impl_of(reg)->root, user,
	    RETIRED_DIR);
	rpath = entry_path(reg, user, fp, true);
	if (rdir == NULL || rpath == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if ((r = ensure_dir(reg->log, rdir)) != PS_OK)
		goto out;
	m->state = PS_KEY_RETIRED;
	m->retired = (long long)time(NULL);
	clean_text(why->reason, m->reason, sizeof(m->reason), true);
	/* new file first: a crash leaves the key retired twice, never lost */
	if ((r = write_entry(reg, rpath, m, cert)) != PS_OK)
		goto out;
	r = unlink_durable(reg->log, active, NULL);
 out:
	free(rpath);
	free(rdir);
	return r;
}

/* The superseding key must be a usable key of the same user. */
static int
check_successor(struct ps_registry *reg, const char *user, const char *sb)
{
	char *path;
	int e;

	if ((path = entry_path(reg, user, sb, false)) == NULL)
		return PS_ERR_NOMEM;
	e = file_exists(reg->log, path);
	free(path);
	if (e < 0)
		return PS_ERR_IO;
	if (e == 0) {
		ps_log_err(reg->log, "registry: superseding key %.16s is not "
		    "registered for user %s", sb, user);
		return PS_ERR_NOT_FOUND;
	}
	return PS_OK;
}

/* Explain a missing usable entry: retired, or never there. */
static void
log_no_entry(struct ps_registry *reg, const char *user, const char *fp)
{
	char *rpath = entry_path(reg, user, fp, true);

	if (rpath != NULL && file_exists(reg->log, rpath) > 0)
		ps_log_err(reg->log, "registry: key %.16s of user %s is "
		    "retired", fp, user);
	else
		ps_log_err(reg->log, "registry: user %s has no key %.16s",
		    user, fp);
	free(rpath);
}

/* The one write of a state change (retire: two, retired file first). */
static int
set_state_apply(struct ps_registry *reg, const char *user, const char *fp,
    const char *path, struct entry_meta *m, X509 *cert,
    enum ps_key_state state, const char *sb, const struct ps_reg_change *why)
{
	if (state == PS_KEY_RETIRED)
		return retire_entry(reg, user, fp, path, m, cert, why);
	m->state = state;
	if (state == PS_KEY_SUPERSEDED)
		memcpy(m->superseded_by, sb, PS_FP_HEX_LEN + 1);
	else
		m->superseded_by[0] = '\0';
	return write_entry(reg, path, m, cert);
}

static int
set_state_locked(struct ps_registry *reg, const char *user, const char *fp,
    enum ps_key_state state, const char *sb, const struct ps_reg_change *why)
{
	struct entry_meta m;
	struct journal j;
	const char *action;
	char *path;
	X509 *cert = NULL;
	int r;

	if ((path = entry_path(reg, user, fp, false)) == NULL)
		return PS_ERR_NOMEM;
	if ((r = load_entry(reg, path, fp, false, &m, &cert)) != PS_OK) {
		if (r == PS_ERR_NOT_FOUND)
			log_no_entry(reg, user, fp);
		goto out;
	}
	switch (state) {
	case PS_KEY_RETIRED:
		action = "retire";
		break;
	case PS_KEY_SUPERSEDED:
		action = "supersede";
		if ((r = check_successor(reg, user, sb)) != PS_OK)
			goto out;
		break;
	case PS_KEY_ACTIVE:
		action = "activate";
		if (m.state == PS_KEY_ACTIVE) {
			ps_log_info(reg->log, "registry: key %.16s of user %s "
			    "is already active", fp, user);
			r = PS_OK;
			goto out;
		}
		break;
	default:
		ps_log_err(reg->log, "registry: unknown key state %d",
		    (int)state);
		r = PS_ERR_INVALID;
		goto out;
	}
	if ((r = change_begin(reg, why, action, user, fp, &j)) != PS_OK)
		goto out;
	r = set_state_apply(reg, user, fp, path, &m, cert, state, sb, why);
	r = change_end(reg, &j, r);
 out:
	X509_free(cert);
	free(path);
	return r;
}

static int
file_set_state(struct ps_registry *reg, const char *user,
    const char *fingerprint, enum ps_key_state state,
    const char *superseded_by, const struct ps_reg_change *why)
{
	int lock = -1, r;

	if (!user_valid(reg->log, user) || !fp_valid(reg->log, fingerprint) ||
	    read_only(reg))
		return PS_ERR_INVALID;
	if (state == PS_KEY_SUPERSEDED &&
	    (!fp_valid(reg->log, superseded_by) ||
	    strcmp(superseded_by, fingerprint) == 0)) {
		ps_log_err(reg->log, "registry: bad superseding key");
		return PS_ERR_INVALID;
	}
	if ((r = root_check(reg)) != PS_OK)
		return r;
	if ((r = lock_and_recover(reg, &lock)) != PS_OK)
		return r;
	r = set_state_locked(reg, user, fingerprint, state, superseded_by, why);
	lock_release(lock);
	return r;
}

/* ------------------------------------------------------------ remove */

/* Drop now-empty directories so that list_users forgets the user. */
static void
prune_user_dir(struct ps_registry *reg, const char *user)
{
	char *udir = user_dir(reg, user);
	char *rdir = ps_strdup_printf("%s/%s/%s", impl_of(reg)->root, user,
	    RETIRED_DIR);

	if (udir != NULL && rdir != NULL) {
		if (rmdir(rdir) != 0 && errno != ENOENT && errno != ENOTEMPTY &&
		    errno != EEXIST)
			ps_log_debug(reg->log, "%s: %s", rdir, strerror(errno));
		if (rmdir(udir) == 0)
			(void)ps_fsync_dir(udir, false);
	}
	free(rdir);
	free(udir);
}

static int
remove_locked(struct ps_registry *reg, const char *user, const char *fp,
    const struct ps_reg_change *why)
{
	char *owner = NULL, *active = NULL, *retired = NULL;
	struct journal j;
	int a, t, r;

	r = index_read(reg, fp, &owner);
	if (r != PS_OK && r != PS_ERR_NOT_FOUND)
		goto out;
	if (owner != NULL && strcmp(owner, user) != 0) {
		ps_log_err(reg->log, "registry: key %.16s is indexed to user "
		    "%s, not %s: not removing", fp, owner, user);
		r = PS_ERR_INVALID;
		goto out;
	}
	if ((r = entry_files(reg, user, fp, &active, &retired, &a, &t)) !=
	    PS_OK)
		goto out;
	if (a == 0 && t == 0 && owner == NULL) {
		ps_log_err(reg->log, "registry: user %s has no key %.16s",
		    user, fp);
		r = PS_ERR_NOT_FOUND;
		goto out;
	}
	if ((r = change_begin(reg, why, "remove", user, fp, &j)) != PS_OK)
		goto out;
	if ((r = unlink_durable(reg->log, active, NULL)) == PS_OK &&
	    (r = unlink_durable(reg->log, retired, NULL)) == PS_OK &&
	    (r = index_remove(reg, fp)) == PS_OK)
		prune_user_dir(reg, user);
	r = change_end(reg, &j, r);
 out:
	free(retired);
	free(active);
	free(owner);
	return r;
}

static int
file_remove(struct ps_registry *reg, const char *user,
    const char *fingerprint, const struct ps_reg_change *why)
{
	int lock = -1, r;

	if (!user_valid(reg->log, user) || !fp_valid(reg->log, fingerprint) ||
	    read_only(reg))
		return PS_ERR_INVALID;
	if ((r = root_check(reg)) != PS_OK)
		return r;
	if ((r = lock_and_recover(reg, &lock)) != PS_OK)
		return r;
	r = remove_locked(reg, user, fingerprint, why);
	lock_release(lock);
	return r;
}

/* ------------------------------------------------------------ find_key */

static int
file_find_key(struct ps_registry *reg, const char *fingerprint, char **user)
{
	char *owner = NULL, *path = NULL;
	int r, e;

	*user = NULL;
	if (!fp_valid(reg->log, fingerprint))
		return PS_ERR_INVALID;
	if ((r = root_check(reg)) != PS_OK)
		return r;
	if ((r = index_read(reg, fingerprint, &owner)) != PS_OK) {
		if (r == PS_ERR_NOT_FOUND)
			ps_log_debug(reg->log, "registry: key %.16s is not "
			    "registered", fingerprint);
		goto out;
	}
	if ((path = entry_path(reg, owner, fingerprint, false)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	if ((e = file_exists(reg->log, path)) <= 0) {
		ps_log_info(reg->log, "registry: key %.16s of user %s is not "
		    "usable (retired or removed)", fingerprint, owner);
		r = e < 0 ? PS_ERR_IO : PS_ERR_NOT_FOUND;
		goto out;
	}
	if ((r = retired_too(reg, owner, fingerprint)) != PS_OK) {
		r = r == PS_ERR_EXISTS ? PS_ERR_NOT_FOUND : r;
		goto out;
	}
	*user = owner;
	owner = NULL;
	r = PS_OK;
 out:
	free(path);
	free(owner);
	return r;
}

/* ------------------------------------------------------------ list_users */

/* Does this user directory hold at least one entry (usable or retired)? */
static bool
has_entries(const char *dir, bool look_in_retired)
{
	char fp[PS_FP_HEX_LEN + 1], *sub;
	struct dirent *de;
	bool found = false;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL)
		found = entry_name(de->d_name, fp);
	closedir(d);
	if (found || !look_in_retired)
		return found;
	if ((sub = path_join(dir, RETIRED_DIR)) == NULL)
		return false;
	found = has_entries(sub, false);
	free(sub);
	return found;
}

static int
names_append(char ***names, size_t *count, const char *name)
{
	char **nn, *copy;

	if ((copy = strdup(name)) == NULL)
		return PS_ERR_NOMEM;
	if ((nn = reallocarray(*names, *count + 1, sizeof(*nn))) == NULL) {
		free(copy);
		return PS_ERR_NOMEM;
	}
	nn[(*count)++] = copy;
	*names = nn;
	return PS_OK;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One directory entry of the root: a user with entries, or skipped. */
static int
list_one(struct ps_registry *reg, const char *name, char ***names,
    size_t *count)
{
	char *udir;
	int r = PS_OK;

	if (name[0] == '.')
		return PS_OK;
	if (!ps_user_name_valid(name)) {
		ps_log_debug(reg->log, "registry: ignoring %s/%s",
		    impl_of(reg)->root, name);
		return PS_OK;
	}
	if ((udir = user_dir(reg, name)) == NULL)
		return PS_ERR_NOMEM;
	if (ps_dir_check(reg->log, udir) == PS_OK && has_entries(udir, true))
		r = names_append(names, count, name);
	free(udir);
	return r;
}

static int
file_list_users(struct ps_registry *reg, char ***users, size_t *count)
{
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d = NULL;
	int r;

	*users = NULL;
	*count = 0;
	if ((r = root_check(reg)) != PS_OK)
		return r == PS_ERR_NOT_FOUND ? PS_OK : r;
	if ((d = opendir(impl_of(reg)->root)) == NULL) {
		ps_log_err(reg->log, "%s: cannot read directory: %s",
		    impl_of(reg)->root, strerror(errno));
		return PS_ERR_IO;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if ((r = list_one(reg, de->d_name, &names, &n)) != PS_OK)
			goto out;
	}
	if (errno != 0) {
		ps_log_err(reg->log, "%s: cannot read directory: %s",
		    impl_of(reg)->root, strerror(errno));
		r = PS_ERR_IO;
		goto out;
	}
	if (n > 1)
		qsort(names, n, sizeof(names[0]), name_cmp);
	*users = names;
	*count = n;
	names = NULL;
	n = 0;
	r = PS_OK;
 out:
	ps_user_names_free(names, n);
	closedir(d);
	return r;
}

/* ------------------------------------------------------------ history */

static int
parse_when(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;
	long long t;

	if (s[0] == '@')
		return parse_time(s + 1, &t) == 0 ? (*out = (time_t)t, 0) : -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

/* One audit line (NUL-terminated, no line end) into ev; -1 if torn. */
static int
parse_audit_line(const char *line, struct ps_reg_event *ev, char *user,
    size_t userlen)
{
	const char *reason;
	char when[40];
	size_t n;

	memset(ev, 0, sizeof(*ev));
	n = strcspn(line, " ");
	if (n == 0 || n >= sizeof(when))
		return -1;
	memcpy(when, line, n);
	when[n] = '\0';
	if (parse_when(when, &ev->when) != 0 ||
	    line_field(line, " actor=", ev->actor, sizeof(ev->actor)) ||
	    line_field(line, " action=", ev->action, sizeof(ev->action)) ||
	    line_field(line, " user=", user, userlen) ||
	    line_field(line, " key=", ev->fingerprint,
	    sizeof(ev->fingerprint)) ||
	    (reason = strstr(line, " reason=")) == NULL)
		return -1;
	if (!action_known(ev->action) ||
	    !ps_hex_valid(ev->fingerprint, PS_FP_HEX_LEN))
		return -1;
	reason += strlen(" reason=");
	if (strcmp(reason, "-") != 0)
		snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	return 0;
}

static int
history_append(struct ps_reg_history *h, const struct ps_reg_event *ev)
{
	struct ps_reg_event *ne;

	ne = reallocarray(h->events, h->count + 1, sizeof(*ne));
	if (ne == NULL)
		return PS_ERR_NOMEM;
	ne[h->count++] = *ev;
	h->events = ne;
	return PS_OK;
}

static int
file_history(struct ps_registry *reg, const char *user,
    struct ps_reg_history *out)
{
	struct ps_reg_history h = { NULL, 0, 0 };
	struct ps_reg_event ev;
	unsigned char *data = NULL;
	char *path = NULL, *line, *next, who[PS_USER_NAME_MAX];
	size_t len = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (!user_valid(reg->log, user))
		return PS_ERR_INVALID;
	if ((r = root_check(reg)) != PS_OK)
		return r;
	if ((path = path_join(impl_of(reg)->root, AUDIT_FILE)) == NULL)
		return PS_ERR_NOMEM;
	if ((r = read_optional(reg, path, AUDIT_FILE_MAX, &data, &len)) !=
	    PS_OK || data == NULL)
		goto out;	/* no audit log yet: no history */
	for (line = (char *)data; line < (char *)data + len; line = next) {
		if ((next = memchr(line, '\n', len - (size_t)(line -
		    (char *)data))) == NULL) {
			h.unreadable++;		/* torn last line */
			break;
		}
		*next++ = '\0';
		if (parse_audit_line(line, &ev, who, sizeof(who)) != 0) {
			h.unreadable += line[0] != '\0';
			continue;
		}
		if (strcmp(who, user) == 0 &&
		    (r = history_append(&h, &ev)) != PS_OK)
			goto out;
	}
	if (h.unreadable > 0)
		ps_log_warn(reg->log, "%s: %zu line(s) could not be read", path,
		    h.unreadable);
	*out = h;
	h.events = NULL;
	r = PS_OK;
 out:
	free(h.events);
	free(data);
	free(path);
	return r;
}

/* ------------------------------------------------------------ open/close */

static void
file_close(struct ps_registry *reg)
{
	struct file_reg *fr;

	if (reg == NULL)
		return;
	if ((fr = reg->impl) != NULL) {
		free(fr->root);
		free(fr);
	}
	free(reg);
}

/* An absolute path without trailing slashes. */
static char *
normalise_root(const struct ps_log *log, const char *root)
{
	size_t len;
	char *copy;

	if (root == NULL || root[0] != '/') {
		ps_log_err(log, "registry directory %s is not an absolute path",
		    root != NULL ? root : "(none)");
		return NULL;
	}
	len = strlen(root);
	if (len >= PATH_MAX) {
		ps_log_err(log, "registry directory path too long");
		return NULL;
	}
	while (len > 1 && root[len - 1] == '/')
		len--;
	if ((copy = strndup(root, len)) == NULL)
		ps_log_err(log, "out of memory");
	return copy;
}

int
ps_registry_file_open(const char *root, const struct ps_log *log,
    bool for_writing, struct ps_registry **out)
{
	struct ps_registry *reg = NULL;
	struct file_reg *fr = NULL;
	char *norm = NULL;
	int r;

	if (out == NULL)
		return PS_ERR_INTERNAL;
	*out = NULL;
	if ((norm = normalise_root(log, root)) == NULL)
		return PS_ERR_INVALID;
	if (for_writing) {
		if ((r = make_root(log, norm)) != PS_OK)
			goto out;
		if (!ps_path_trusted(log, norm)) {
			r = PS_ERR_UNSAFE;
			goto out;
		}
	}
	reg = calloc(1, sizeof(*reg));
	fr = calloc(1, sizeof(*fr));
	if (reg == NULL || fr == NULL) {
		ps_log_err(log, "out of memory");
		r = PS_ERR_NOMEM;
		goto out;
	}
	fr->root = norm;
	fr->writable = for_writing;
	norm = NULL;
	reg->ops = &file_ops;
	reg->log = log;
	reg->impl = fr;
	*out = reg;
	reg = NULL;
	fr = NULL;
	r = PS_OK;
 out:
	free(fr);
	free(reg);
	free(norm);
	return r;
}

static const struct ps_registry_ops file_ops = {
	.name = "file",
	.lookup_user = file_lookup_user,
	.add = file_add,
	.set_state = file_set_state,
	.remove = file_remove,
	.find_key = file_find_key,
	.list_users = file_list_users,
	.close = file_close,
	.history = file_history,
};
