/*
 * token_soft.c - the keystore token: a password-protected PKCS#12 (.pfx,
 * .p12) or encrypted PKCS#8 PEM file in the user's home (see token.h).
 *
 * The file lives in a directory the user controls, so when running as
 * root it is read by a short-lived child that has switched to the user's
 * uid and gid: root never opens a path the user can redirect (symlinks,
 * FIFOs, files the user could not read themselves). When we are not root,
 * or the user is root, the same reader runs in-process with the same
 * checks. It is not ps_read_file(): after fork() only async-signal-safe
 * calls are allowed, so it neither allocates nor logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "cert.h"
#include "challenge.h"
#include "ps_status.h"
#include "token.h"
#include "util.h"

/* A keystore holds one key and a short chain; anything larger is not one. */
#define KS_MAX_SIZE	(256 * 1024)
#define KS_PASSWORD_MAX	4096

/* ------------------------------------------------------------ state */

struct soft {
	char *path;		/* expanded keystore path */
	char *display;		/* the same with "~" for the home directory */
	char *prompt;
	unsigned char *data;	/* raw file: encrypted key material */
	size_t len;
	size_t cap;		/* allocated size of data, for wiping */
	EVP_PKEY *priv;
	struct ps_token_key key;
	bool unlocked;
};

static struct soft *
soft_of(struct ps_token *tok)
{
	return tok != NULL ? tok->impl : NULL;
}

static const struct ps_log *
log_of(struct ps_token *tok)
{
	return tok->params.log;
}

/* ------------------------------------------------------------ path */

/* A path being built; overflow is remembered so it is reported once. */
struct pathbuf {
	char buf[PATH_MAX];
	size_t used;
	bool overflow;
};

static int
append(struct pathbuf *pb, const char *s, size_t n)
{
	if (n >= sizeof(pb->buf) - pb->used) {
		pb->overflow = true;
		return PS_ERR_INVALID;
	}
	memcpy(pb->buf + pb->used, s, n);
	pb->used += n;
	pb->buf[pb->used] = '\0';
	return PS_OK;
}

/* One "%x" escape of the keystore pattern. */
static int
expand_escape(const struct ps_log *log, const struct ps_token_params *p,
    const char *pattern, char esc, struct pathbuf *pb)
{
	switch (esc) {
	case '%':
		return append(pb, "%", 1);
	case 'u':
		if (!ps_user_name_valid(p->user)) {
			ps_log_err(log, "keystore pattern %s: refusing to put "
			    "an invalid user name into the path", pattern);
			return PS_ERR_INVALID;
		}
		return append(pb, p->user, strlen(p->user));
	case 'h':
		if (p->home == NULL || p->home[0] != '/') {
			ps_log_err(log, "keystore pattern %s: user %s has no "
			    "absolute home directory for %%h", pattern,
			    p->user != NULL ? p->user : "(none)");
			return PS_ERR_INVALID;
		}
		return append(pb, p->home, strlen(p->home));
	case '\0':
		ps_log_err(log, "keystore pattern %s: ends in a lone '%%'",
		    pattern);
		return PS_ERR_INVALID;
	default:
		ps_log_err(log, "keystore pattern %s: unknown escape '%%%c' "
		    "(use %%u, %%h or %%%%)", pattern, esc);
		return PS_ERR_INVALID;
	}
}

/* The keystore path: %u user, %h home, %% a '%'; the result is absolute. */
static int
expand_path(const struct ps_log *log, const struct ps_token_params *p,
    char **out)
{
	const char *pattern = PS_DEFAULT_KEYSTORE;
	struct pathbuf pb;
	size_t i;
	int r;

	*out = NULL;
	memset(&pb, 0, sizeof(pb));
	if (p->cfg != NULL && p->cfg->keystore != NULL)
		pattern = p->cfg->keystore;
	for (i = 0; pattern[i] != '\0'; i++) {
		if (pattern[i] == '%')
			r = expand_escape(log, p, pattern, pattern[++i], &pb);
		else
			r = append(&pb, &pattern[i], 1);
		if (r != PS_OK)
			goto fail;
	}
	if (pb.buf[0] != '/') {
		ps_log_err(log, "keystore path %s (from pattern %s) is not "
		    "absolute", pb.buf, pattern);
		return PS_ERR_INVALID;
	}
	if ((*out = strdup(pb.buf)) == NULL)
		return PS_ERR_NOMEM;
	return PS_OK;
 fail:
	if (pb.overflow)
		ps_log_err(log, "keystore path too long (over %d bytes) from "
		    "pattern %s", PATH_MAX - 1, pattern);
	return PS_ERR_INVALID;
}

/* "~/rest" when path is under home, for messages to the user. */
static char *
display_path(const char *path, const char *home)
{
	size_t hlen;

	if (home == NULL || home[0] != '/')
		return strdup(path);
	hlen = strlen(home);
	while (hlen > 0 && home[hlen - 1] == '/')
		hlen--;
	if (hlen == 0 || strncmp(path, home, hlen) != 0 || path[hlen] != '/')
		return strdup(path);
	return ps_strdup_printf("~%s", path + hlen);
}

/* ------------------------------------------------------------ reading */

/*
 * Why a keystore read failed. The reader below runs in a forked child
 * where it may only use async-signal-safe calls: no malloc, no logging;
 * it reports one of these and the parent turns it into a message.
 */
enum ks_why {
	KS_OK,
	KS_MISSING,
	KS_SYMLINK,
	KS_OPEN,
	KS_STAT,
	KS_NOT_REGULAR,
	KS_OWNER,
	KS_GROUP_WRITE,
	KS_OTHER_WRITE,
	KS_TOO_LARGE,
	KS_READ,
	KS_PRIVDROP,
	KS_WHY_MAX
};

struct ks_result {
	int why;
	int err;		/* errno, when the failure had one */
	unsigned long owner;	/* for KS_OWNER */
	size_t len;		/* bytes read on KS_OK */
};

static int
ks_check(const struct stat *st, uid_t uid, struct ks_result *res)
{
	if (!S_ISREG(st->st_mode))
		return KS_NOT_REGULAR;
	if (st->st_uid != uid && st->st_uid != 0) {
		res->owner = (unsigned long)st->st_uid;
		return KS_OWNER;
	}
	if (st->st_mode & S_IWGRP)
		return KS_GROUP_WRITE;
	if (st->st_mode & S_IWOTH)
		return KS_OTHER_WRITE;
	if (st->st_size < 0 || st->st_size > KS_MAX_SIZE)
		return KS_TOO_LARGE;
	return KS_OK;
}

static int
ks_open_why(const char *path, int err)
{
	struct stat st;

	if (err == ENOENT || err == ENOTDIR)
		return KS_MISSING;
	if (err == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
		return KS_SYMLINK;
	return KS_OPEN;
}

/*
 * Open and read the keystore into buf (cap > KS_MAX_SIZE, so a file that
 * grew after fstat is caught). Async-signal-safe.
 */
static void
ks_read(const char *path, uid_t uid, unsigned char *buf, size_t cap,
    struct ks_result *res)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK);
	if (fd < 0) {
		res->err = errno;
		res->why = ks_open_why(path, res->err);
		return;
	}
	if (fstat(fd, &st) != 0) {
		res->err = errno;
		res->why = KS_STAT;
		goto out;
	}
	if ((res->why = ks_check(&st, uid, res)) != KS_OK)
		goto out;
	for (;;) {
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			res->err = errno;
			res->why = KS_READ;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > KS_MAX_SIZE) {
			res->why = KS_TOO_LARGE;
			goto out;
		}
	}
	res->len = got;
	res->why = KS_OK;
 out:
	close(fd);
}

/*
 * 0 when exactly len bytes were read, -1 on error or early EOF. The
 * parent's side of the child's ps_write_all: nothing else in the core
 * reads fixed-size records from a pipe, so it stays here.
 */
static int
read_all(int fd, void *data, size_t len)
{
	unsigned char *p = data;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Become uid/gid for good, and prove it. Async-signal-safe. */
static int
drop_privileges(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[2];

	/*
	 * This process holds a copy of root's memory; the user must not be
	 * able to ptrace it or read /proc/PID/mem. Changing uid resets the
	 * flag to fs.suid_dumpable, hence clear it again afterwards.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return -1;
	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0)
		return -1;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
	    prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return -1;
	if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid ||
	    su != uid)
		return -1;
	if (getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid ||
	    sg != gid)
		return -1;
	if (getgroups(2, groups) != 1 || groups[0] != gid)
		return -1;
	if (uid != 0 && setresuid(0, 0, 0) == 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

static void __attribute__((noreturn))
child_main(const char *path, uid_t uid, gid_t gid, unsigned char *buf,
    size_t cap, int fd)
{
	struct ks_result res;

	memset(&res, 0, sizeof(res));
	if (drop_privileges(uid, gid) != 0) {
		res.err = errno;
		res.why = KS_PRIVDROP;
	} else
		ks_read(path, uid, buf, cap, &res);
	if (ps_write_all(fd, &res, sizeof(res)) != 0 ||
	    (res.why == KS_OK && ps_write_all(fd, buf, res.len) != 0))
		_exit(2);
	ps_wipe(buf, cap);
	_exit(res.why == KS_OK ? 0 : 1);
}

static int
wait_child(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * The parent's half: the child's report, then exactly res.len bytes, then
 * EOF. Anything else means the child did not do what we asked.
 */
static int
collect_child(int fd, unsigned char *buf, struct ks_result *res)
{
	unsigned char extra;

	if (read_all(fd, res, sizeof(*res)) != 0)
		return -1;
	if (res->why < 0 || res->why >= KS_WHY_MAX)
		return -1;
	if (res->why == KS_OK && (res->len > KS_MAX_SIZE ||
	    read_all(fd, buf, res->len) != 0))
		return -1;
	if (read(fd, &extra, 1) != 0)
		return -1;
	return 0;
}

/* Read as the user: fork, drop to uid/gid, read, send it back. */
static int
read_as_user(const struct ps_log *log, const char *path, uid_t uid,
    gid_t gid, unsigned char *buf, size_t cap, struct ks_result *res)
{
	struct sigaction dfl, old;
	int fds[2] = { -1, -1 }, status = 0, r = PS_ERR_IO, got;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0) {
		ps_log_err(log, "keystore %s: pipe: %s", path, strerror(errno));
		return PS_ERR_IO;
	}
	/* the caller may ignore or reap SIGCHLD; we must wait for our child */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	if (sigaction(SIGCHLD, &dfl, &old) != 0) {
		ps_log_err(log, "keystore %s: sigaction: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((pid = fork()) < 0) {
		ps_log_err(log, "keystore %s: fork: %s", path, strerror(errno));
		goto restore;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(path, uid, gid, buf, cap, fds[1]);
	}
	close(fds[1]);
	fds[1] = -1;
	got = collect_child(fds[0], buf, res);
	close(fds[0]);
	fds[0] = -1;
	if (wait_child(pid, &status) != 0) {
		ps_log_err(log, "keystore %s: waitpid: %s", path,
		    strerror(errno));
		goto restore;
	}
	if (got != 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != (res->why == KS_OK ? 0 : 1)) {
		ps_log_err(log, "keystore %s: the reader running as uid %lu "
		    "failed (status 0x%x)", path, (unsigned long)uid, status);
		goto restore;
	}
	r = PS_OK;
 restore:
	if (sigaction(SIGCHLD, &old, NULL) != 0 && r == PS_OK) {
		ps_log_err(log, "keystore %s: sigaction: %s", path,
		    strerror(errno));
		r = PS_ERR_IO;
	}
 out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return r;
}

static const char *
ks_unsafe_reason(int why)
{
	switch (why) {
	case KS_SYMLINK:	return "is a symbolic link";
	case KS_NOT_REGULAR:	return "is not a regular file";
	case KS_GROUP_WRITE:	return "is writable by its group";
	case KS_OTHER_WRITE:	return "is writable by others";
	}
	return NULL;
}

static int
ks_report_unsafe(struct ps_token *tok, const char *why)
{
	struct soft *s = soft_of(tok);

	ps_log_err(log_of(tok), "keystore %s %s: refusing it", s->path, why);
	ps_conv_error(tok->params.conv, "PersonalSign keystore %s %s",
	    s->display, why);
	return PS_ERR_UNSAFE;
}

/* Turn a reader's report into a status, a log line and a user message. */
static int
ks_report(struct ps_token *tok, const struct ks_result *res)
{
	const struct ps_log *log = log_of(tok);
	struct soft *s = soft_of(tok);
	unsigned long uid = (unsigned long)tok->params.uid;
	const char *unsafe;

	if ((unsafe = ks_unsafe_reason(res->why)) != NULL)
		return ks_report_unsafe(tok, unsafe);
	switch (res->why) {
	case KS_OK:
		return PS_OK;
	case KS_MISSING:
		ps_log_notice(log, "keystore %s does not exist", s->path);
		ps_conv_error(tok->params.conv,
		    "No PersonalSign keystore at %s", s->display);
		return PS_ERR_NO_TOKEN;
	case KS_OWNER:
		ps_log_err(log, "keystore %s is owned by uid %lu, not by the "
		    "user (uid %lu) or root: refusing it", s->path, res->owner,
		    uid);
		ps_conv_error(tok->params.conv, "PersonalSign keystore %s is "
		    "owned by someone else", s->display);
		return PS_ERR_UNSAFE;
	case KS_TOO_LARGE:
		ps_log_err(log, "keystore %s is larger than %d KiB: not a "
		    "keystore", s->path, KS_MAX_SIZE / 1024);
		return PS_ERR_TOKEN;
	case KS_OPEN:
	case KS_STAT:
	case KS_READ:
		ps_log_err(log, "keystore %s cannot be read as uid %lu: %s",
		    s->path, uid, strerror(res->err));
		return PS_ERR_IO;
	case KS_PRIVDROP:
		ps_log_err(log, "keystore %s: cannot switch to uid %lu to "
		    "read it: %s", s->path, uid, strerror(res->err));
		return PS_ERR_INTERNAL;
	}
	ps_log_err(log, "keystore %s: unexpected reader result %d", s->path,
	    res->why);
	return PS_ERR_INTERNAL;
}

static int
load_keystore(struct ps_token *tok)
{
	const struct ps_token_params *p = &tok->params;
	struct soft *s = soft_of(tok);
	struct ks_result res;
	int r;

	memset(&res, 0, sizeof(res));
	s->cap = KS_MAX_SIZE + 1;
	if ((s->data = malloc(s->cap)) == NULL) {
		ps_log_err(p->log, "keystore: out of memory");
		return PS_ERR_NOMEM;
	}
	if (geteuid() == 0 && p->uid != 0) {
		if (p->uid == (uid_t)-1 || p->gid == (gid_t)-1) {
			ps_log_err(p->log, "keystore %s: no uid/gid for user "
			    "%s to read it as", s->path,
			    p->user != NULL ? p->user : "(none)");
			return PS_ERR_INVALID;
		}
		r = read_as_user(p->log, s->path, p->uid, p->gid, s->data,
		    s->cap, &res);
		if (r != PS_OK)
			return r;
	} else
		ks_read(s->path, p->uid, s->data, s->cap, &res);
	if ((r = ks_report(tok, &res)) != PS_OK)
		return r;
	s->len = res.len;
	return PS_OK;
}

/* ------------------------------------------------------------ unlock */

enum ks_format { KS_FMT_PKCS12, KS_FMT_PEM, KS_FMT_UNKNOWN };

/*
 * Length of the outer DER SEQUENCE, header included. 0 for BER indefinite
 * length (some PKCS#12 writers use it; the parser decides), -1 when the
 * header itself is cut short.
 */
static long
der_outer_len(const unsigned char *d, size_t len)
{
	size_t n, i, content = 0;

	if (len < 2)
		return -1;
	if (d[1] < 0x80)
		return 2 + d[1];
	if (d[1] == 0x80)
		return 0;
	n = d[1] & 0x7f;
	if (n > 4)
		return -1;
	if (len < 2 + n)
		return -1;
	for (i = 0; i < n; i++)
		content = (content << 8) | d[2 + i];
	return (long)(2 + n + content);
}

static int
detect_format(struct ps_token *tok, enum ks_format *fmt)
{
	struct soft *s = soft_of(tok);
	const struct ps_log *log = log_of(tok);
	long total;

	*fmt = KS_FMT_UNKNOWN;
	if (s->len == 0) {
		ps_log_err(log, "keystore %s is empty", s->path);
		return PS_ERR_TOKEN;
	}
	if (s->data[0] == 0x30) {
		total = der_outer_len(s->data, s->len);
		if (total < 0 || (size_t)total > s->len) {
			ps_log_err(log, "keystore %s is truncated: its PKCS#12 "
			    "structure needs more than the %zu bytes there "
			    "are", s->path, s->len);
			return PS_ERR_TOKEN;
		}
		if (total != 0 && (size_t)total < s->len) {
			ps_log_err(log, "keystore %s has %zu bytes of trailing "
			    "data after its PKCS#12 structure", s->path,
			    s->len - (size_t)total);
			return PS_ERR_TOKEN;
		}
		*fmt = KS_FMT_PKCS12;
		return PS_OK;
	}
	if (memmem(s->data, s->len, "-----BEGIN ", 11) != NULL) {
		*fmt = KS_FMT_PEM;
		return PS_OK;
	}
	ps_log_err(log, "keystore %s is not a PKCS#12 or PEM keystore",
	    s->path);
	return PS_ERR_TOKEN;
}

/*
 * A reference of its own in *cert to the certificate (first, then those
 * in rest) whose public key is the private key's, for both keystore
 * formats. None matching leaves *cert NULL, which is not an error: the
 * key is then offered without one.
 */
static int
take_matching_cert(EVP_PKEY *priv, X509 *first, STACK_OF(X509) *rest,
    X509 **cert)
{
	X509 *m = NULL, *x;
	int i;

	if (first != NULL && EVP_PKEY_eq(X509_get0_pubkey(first), priv) == 1)
		m = first;
	for (i = 0; m == NULL && rest != NULL && i < sk_X509_num(rest); i++) {
		x = sk_X509_value(rest, i);
		if (EVP_PKEY_eq(X509_get0_pubkey(x), priv) == 1)
			m = x;
	}
	if (m == NULL)
		return PS_OK;
	if (X509_up_ref(m) != 1)
		return PS_ERR_CRYPTO;
	*cert = m;
	return PS_OK;
}

static int
unlock_pkcs12(struct ps_token *tok, const char *password, EVP_PKEY **priv,
    X509 **cert)
{
	struct soft *s = soft_of(tok);
	const struct ps_log *log = log_of(tok);
	STACK_OF(X509) *extra = NULL;
	X509 *c = NULL;
	int r;

	r = ps_pkcs12_parse(log, s->data, s->len, password, priv, &c, &extra);
	if (r == PS_ERR_BAD_SECRET) {
		ps_log_notice(log, "keystore %s: wrong password", s->path);
		goto out;
	}
	if (r != PS_OK) {
		ps_log_err(log, "keystore %s is not a usable PKCS#12 keystore "
		    "(%s)", s->path, ps_status_str(r));
		if (r != PS_ERR_NOMEM)
			r = PS_ERR_TOKEN;
		goto out;
	}
	r = take_matching_cert(*priv, c, extra, cert);
 out:
	X509_free(c);
	sk_X509_pop_free(extra, X509_free);
	if (r != PS_OK) {
		EVP_PKEY_free(*priv);
		*priv = NULL;
	}
	return r;
}

/* An encrypted PKCS#8 blob (the DER inside "ENCRYPTED PRIVATE KEY"). */
static int
decrypt_pkcs8(struct ps_token *tok, const unsigned char *der, long derlen,
    const char *password, EVP_PKEY **out)
{
	struct soft *s = soft_of(tok);
	const struct ps_log *log = log_of(tok);
	const unsigned char *p = der;
	X509_SIG *p8 = NULL;
	PKCS8_PRIV_KEY_INFO *inf = NULL;
	int r = PS_ERR_TOKEN;

	if ((p8 = d2i_X509_SIG(NULL, &p, derlen)) == NULL ||
	    p != der + derlen) {
		ps_log_openssl(log, "keystore PKCS#8");
		ps_log_err(log, "keystore %s: malformed encrypted private key",
		    s->path);
		goto out;
	}
	inf = PKCS8_decrypt(p8, password, (int)strlen(password));
	if (inf == NULL) {
		ps_log_openssl(log, "keystore PKCS#8 decrypt");
		ps_log_notice(log, "keystore %s: wrong password", s->path);
		r = PS_ERR_BAD_SECRET;
		goto out;
	}
	if ((*out = EVP_PKCS82PKEY(inf)) == NULL) {
		ps_log_openssl(log, "keystore PKCS#8 key");
		ps_log_err(log, "keystore %s: the decrypted private key is "
		    "malformed", s->path);
		goto out;
	}
	r = PS_OK;
 out:
	PKCS8_PRIV_KEY_INFO_free(inf);
	X509_SIG_free(p8);
	return r;
}

static int
pem_add_cert(struct ps_token *tok, const unsigned char *der, long derlen,
    STACK_OF(X509) *certs)
{
	const unsigned char *p = der;
	X509 *x;

	if ((x = d2i_X509(NULL, &p, derlen)) == NULL || p != der + derlen) {
		X509_free(x);
		ps_log_openssl(log_of(tok), "keystore certificate");
		ps_log_err(log_of(tok), "keystore %s: malformed certificate",
		    soft_of(tok)->path);
		return PS_ERR_TOKEN;
	}
	if (sk_X509_push(certs, x) <= 0) {
		X509_free(x);
		return PS_ERR_NOMEM;
	}
	return PS_OK;
}

/* One PEM block of a keystore: the encrypted key, or a certificate. */
static int
pem_block(struct ps_token *tok, const char *name, const char *header,
    const unsigned char *der, long derlen, const char *password,
    EVP_PKEY **priv, STACK_OF(X509) *certs)
{
	const char *path = soft_of(tok)->path;
	const struct ps_log *log = log_of(tok);

	if (strcmp(name, "CERTIFICATE") == 0)
		return pem_add_cert(tok, der, derlen, certs);
	if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
		if (*priv != NULL) {
			ps_log_err(log, "keystore %s holds more than one "
			    "private key", path);
			return PS_ERR_TOKEN;
		}
		return decrypt_pkcs8(tok, der, derlen, password, priv);
	}
	if (strstr(name, "PRIVATE KEY") != NULL) {
		if (strstr(header, "ENCRYPTED") != NULL)
			ps_log_err(log, "keystore %s uses legacy PEM "
			    "encryption; convert it with 'openssl pkcs8 "
			    "-topk8 -v2 aes-256-cbc'", path);
		else
			ps_log_err(log, "keystore %s holds an unencrypted "
			    "private key; encrypt it with 'openssl pkcs8 "
			    "-topk8 -v2 aes-256-cbc'", path);
		return PS_ERR_TOKEN;
	}
	ps_log_err(log, "keystore %s: unexpected PEM block \"%s\"", path, name);
	return PS_ERR_TOKEN;
}

/* PEM_read_bio stopped: at the clean end, or at something broken. */
static int
pem_end(struct ps_token *tok, int blocks)
{
	unsigned long e = ERR_peek_last_error();
	const char *path = soft_of(tok)->path;
	bool no_start = ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE;

	if (no_start && blocks > 0) {
		ERR_clear_error();
		return PS_OK;
	}
	ps_log_openssl(log_of(tok), "keystore PEM");
	if (no_start)
		ps_log_err(log_of(tok), "keystore %s is not a PKCS#12 or PEM "
		    "keystore", path);
	else
		ps_log_err(log_of(tok), "keystore %s: PEM is truncated or "
		    "malformed after %d complete block(s)", path, blocks);
	return PS_ERR_TOKEN;
}

static int
unlock_pem(struct ps_token *tok, const char *password, EVP_PKEY **priv,
    X509 **cert)
{
	struct soft *s = soft_of(tok);
	STACK_OF(X509) *certs = NULL;
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long derlen = 0;
	int blocks = 0, r = PS_ERR_NOMEM;

	*priv = NULL;
	if ((certs = sk_X509_new_null()) == NULL ||
	    (bio = BIO_new_mem_buf(s->data, (int)s->len)) == NULL)
		goto out;
	ERR_clear_error();
	while (PEM_read_bio(bio, &name, &header, &der, &derlen) == 1) {
		blocks++;
		r = pem_block(tok, name, header, der, derlen, password, priv,
		    certs);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(der, (size_t)derlen);
		name = header = NULL;
		der = NULL;
		if (r != PS_OK)
			goto out;
	}
	if ((r = pem_end(tok, blocks)) != PS_OK)
		goto out;
	if (*priv == NULL) {
		ps_log_err(log_of(tok), "keystore %s holds no private key",
		    s->path);
		r = PS_ERR_TOKEN;
		goto out;
	}
	r = take_matching_cert(*priv, NULL, certs, cert);
 out:
	BIO_free(bio);
	sk_X509_pop_free(certs, X509_free);
	if (r != PS_OK) {
		EVP_PKEY_free(*priv);
		*priv = NULL;
	}
	return r;
}

/* The public half only, through DER, so `pub` carries no private part. */
static int
public_only(EVP_PKEY *priv, EVP_PKEY **pub)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int len;

	*pub = NULL;
	if ((len = i2d_PUBKEY(priv, &der)) <= 0)
		return PS_ERR_CRYPTO;
	p = der;
	*pub = d2i_PUBKEY(NULL, &p, len);
	if (*pub != NULL && p != der + len) {
		EVP_PKEY_free(*pub);
		*pub = NULL;
	}
	OPENSSL_free(der);
	return *pub != NULL ? PS_OK : PS_ERR_CRYPTO;
}

static void
forget_key(struct soft *s)
{
	EVP_PKEY_free(s->priv);
	EVP_PKEY_free(s->key.pub);
	X509_free(s->key.cert);
	s->priv = NULL;
	s->key.pub = NULL;
	s->key.cert = NULL;
	s->unlocked = false;
}

static int
soft_unlock(struct ps_token *tok, const struct ps_token_key *key,
    const char *secret)
{
	struct soft *s = soft_of(tok);
	EVP_PKEY *priv = NULL, *pub = NULL;
	X509 *cert = NULL;
	enum ks_format fmt;
	int r, id;

	if (s == NULL || s->data == NULL) {
		ps_log_err(tok->params.log, "keystore: unlock before open");
		return PS_ERR_INTERNAL;
	}
	forget_key(s);
	if (secret == NULL ||
	    strnlen(secret, KS_PASSWORD_MAX) >= KS_PASSWORD_MAX) {
		ps_log_err(log_of(tok), "keystore %s: no usable password given",
		    s->path);
		return PS_ERR_BAD_SECRET;
	}
	if ((r = detect_format(tok, &fmt)) != PS_OK)
		return r;
	if (fmt == KS_FMT_PKCS12)
		r = unlock_pkcs12(tok, secret, &priv, &cert);
	else
		r = unlock_pem(tok, secret, &priv, &cert);
	if (r != PS_OK)
		goto out;
	id = EVP_PKEY_get_base_id(priv);
	if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
		ps_log_err(log_of(tok), "keystore %s holds a %s key; only RSA "
		    "and EC keys are supported", s->path,
		    EVP_PKEY_get0_type_name(priv));
		r = PS_ERR_TOKEN;
		goto out;
	}
	if ((r = public_only(priv, &pub)) != PS_OK) {
		ps_log_openssl(log_of(tok), "keystore public key");
		ps_log_err(log_of(tok), "keystore %s: cannot extract the "
		    "public key", s->path);
		goto out;
	}
	s->priv = priv;
	s->key.pub = pub;
	s->key.cert = cert;
	s->unlocked = true;
	priv = NULL;
	pub = NULL;
	cert = NULL;
	ps_log_debug(log_of(tok), "keystore %s unlocked (%s key%s)", s->path,
	    EVP_PKEY_get0_type_name(s->priv),
	    s->key.cert != NULL ? " with its certificate" : "");
 out:
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	X509_free(cert);
	return r;
}

/* ------------------------------------------------------------ ops */

static int
soft_open(struct ps_token *tok)
{
	const struct ps_token_params *p = &tok->params;
	struct soft *s;
	int r;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		ps_log_err(p->log, "keystore: out of memory");
		return PS_ERR_NOMEM;
	}
	tok->impl = s;
	snprintf(s->key.label, sizeof(s->key.label), "keystore");
	s->key.id = 0;
	if ((r = expand_path(p->log, p, &s->path)) != PS_OK)
		return r;
	if ((s->display = display_path(s->path, p->home)) == NULL ||
	    (s->prompt = ps_strdup_printf("Password for PersonalSign "
	    "keystore %s: ", s->display)) == NULL) {
		ps_log_err(p->log, "keystore: out of memory");
		return PS_ERR_NOMEM;
	}
	return load_keystore(tok);
}

static int
soft_list_keys(struct ps_token *tok, const struct ps_token_key **keys,
    size_t *count)
{
	struct soft *s = soft_of(tok);

	*keys = NULL;
	*count = 0;
	if (s == NULL || !s->unlocked) {
		ps_log_err(tok->params.log, "keystore: keys listed before "
		    "the keystore was unlocked");
		return PS_ERR_INTERNAL;
	}
	*keys = &s->key;
	*count = 1;
	return PS_OK;
}

static const char *
soft_secret_prompt(struct ps_token *tok)
{
	struct soft *s = soft_of(tok);

	if (s == NULL || s->prompt == NULL)
		return "Password for PersonalSign keystore: ";
	return s->prompt;
}

static int
soft_sign(struct ps_token *tok, const struct ps_token_key *key,
    const EVP_MD *md, const unsigned char *digest, size_t digest_len,
    unsigned char **sig, size_t *sig_len)
{
	struct soft *s = soft_of(tok);
	int r;

	*sig = NULL;
	*sig_len = 0;
	if (s == NULL || !s->unlocked || key != &s->key) {
		ps_log_err(tok->params.log, "keystore: sign with a key that "
		    "is not this unlocked keystore's");
		return PS_ERR_INTERNAL;
	}
	r = ps_sign_digest_with_key(s->priv, md, digest, digest_len, sig,
	    sig_len);
	if (r != PS_OK) {
		ps_log_openssl(log_of(tok), "keystore sign");
		ps_log_err(log_of(tok), "keystore %s: signing failed: %s",
		    s->path, ps_status_str(r));
	}
	return r;
}

static void
soft_close(struct ps_token *tok)
{
	struct soft *s = soft_of(tok);

	if (s == NULL)
		return;
	forget_key(s);
	ps_freezero(s->data, s->cap);
	free(s->path);
	free(s->display);
	free(s->prompt);
	ps_freezero(s, sizeof(*s));
	tok->impl = NULL;
}

const struct ps_token_ops ps_token_soft_ops = {
	.name = "keystore",
	.lists_without_secret = false,
	.open = soft_open,
	.list_keys = soft_list_keys,
	.secret_prompt = soft_secret_prompt,
	.unlock = soft_unlock,
	.sign = soft_sign,
	.close = soft_close,
};
