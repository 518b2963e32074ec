/*
 * util.c - secret wiping, user-name validation, trusted file and
 * directory checks, lock files, atomic replacement and small encoders
 * shared by the core (util.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "ps_status.h"
#include "util.h"

void
ps_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

void
ps_freezero(void *p, size_t n)
{
	if (p == NULL)
		return;
	ps_wipe(p, n);
	free(p);
}

void
ps_free_secret(char *s)
{
	if (s == NULL)
		return;
	ps_freezero(s, strlen(s));
}

bool
ps_user_name_valid(const char *user)
{
	size_t i, len;

	if (user == NULL)
		return false;
	len = strnlen(user, PS_USER_NAME_MAX);
	if (len == 0 || len >= PS_USER_NAME_MAX)
		return false;
	if (user[0] == '.' || user[0] == '-')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-' || c == '@' || c == '+')
			continue;
		if (c == '$' && i == len - 1)
			continue;
		return false;
	}
	return true;
}

static int
check_rules(const struct ps_log *log, const char *path, const struct stat *st,
    const struct ps_file_rules *rules)
{
	if (!S_ISREG(st->st_mode)) {
		ps_log_err(log, "%s: not a regular file", path);
		return PS_ERR_INVALID;
	}
	if (rules->check_owner && st->st_uid != rules->owner &&
	    !(rules->owner_or_root && st->st_uid == 0)) {
		ps_log_err(log, "%s: owned by uid %lu, expected uid %lu%s",
		    path, (unsigned long)st->st_uid,
		    (unsigned long)rules->owner,
		    rules->owner_or_root ? " or root" : "");
		return PS_ERR_UNSAFE;
	}
	if (rules->forbid_group_write && (st->st_mode & S_IWGRP)) {
		ps_log_err(log, "%s: writable by group", path);
		return PS_ERR_UNSAFE;
	}
	if (rules->forbid_other_write && (st->st_mode & S_IWOTH)) {
		ps_log_err(log, "%s: writable by others", path);
		return PS_ERR_UNSAFE;
	}
	if (rules->forbid_other_read && (st->st_mode & S_IROTH)) {
		ps_log_err(log, "%s: readable by others", path);
		return PS_ERR_UNSAFE;
	}
	if ((size_t)st->st_size > rules->max_size) {
		ps_log_err(log, "%s: too large (%lld bytes, limit %zu)", path,
		    (long long)st->st_size, rules->max_size);
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

int
ps_read_file(const struct ps_log *log, const char *path,
    const struct ps_file_rules *rules, unsigned char **data, size_t *len)
{
	unsigned char *buf = NULL;
	struct stat st;
	size_t cap, got = 0;
	ssize_t n;
	int fd, r;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return PS_ERR_NOT_FOUND;
		if (errno == ELOOP) {
			ps_log_err(log, "%s: is a symbolic link", path);
			return PS_ERR_UNSAFE;
		}
		ps_log_err(log, "%s: cannot open: %s", path, strerror(errno));
		return PS_ERR_IO;
	}
	if (fstat(fd, &st) != 0) {
		ps_log_err(log, "%s: cannot stat: %s", path, strerror(errno));
		r = PS_ERR_IO;
		goto out;
	}
	if ((r = check_rules(log, path, &st, rules)) != PS_OK)
		goto out;
	/* +1 so that growth after fstat is noticed and refused */
	cap = (size_t)st.st_size + 1;
	if ((buf = malloc(cap + 1)) == NULL) {
		r = PS_ERR_NOMEM;
		goto out;
	}
	for (;;) {
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ps_log_err(log, "%s: read failed: %s", path,
			    strerror(errno));
			r = PS_ERR_IO;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap) {
			ps_log_err(log, "%s: changed while being read", path);
			r = PS_ERR_IO;
			goto out;
		}
	}
	buf[got] = '\0';
	*data = buf;
	*len = got;
	buf = NULL;
	r = PS_OK;
 out:
	if (buf != NULL)
		ps_freezero(buf, cap + 1);
	close(fd);
	return r;
}

static bool path_trusted(const struct ps_log *log, const char *path,
    bool follow);

static bool
dir_entry_trusted(const struct ps_log *log, const char *path, bool follow)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		ps_log_err(log, "%s: cannot stat: %s", path, strerror(errno));
		return false;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		ps_log_err(log, "%s: owned by uid %lu, not root: refusing to "
		    "trust it", path, (unsigned long)st.st_uid);
		return false;
	}
	if (S_ISLNK(st.st_mode)) {
		/*
		 * A symlink is only as safe as its target AND every directory
		 * above the target (whoever can write one of them can swap the
		 * target): check the resolved path the same way. realpath()
		 * leaves no links in it; one found there all the same was put
		 * in meanwhile and is refused, so this recurses once at most.
		 */
		char *real = follow ? realpath(path, NULL) : NULL;
		bool ok = real != NULL && path_trusted(log, real, false);

		if (!ok)
			ps_log_err(log, "%s: symbolic link to an untrusted "
			    "target", path);
		free(real);
		return ok;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		ps_log_err(log, "%s: writable by group or others: refusing "
		    "to trust it", path);
		return false;
	}
	return true;
}

bool
ps_path_trusted(const struct ps_log *log, const char *path)
{
	return path_trusted(log, path, true);
}

static bool
path_trusted(const struct ps_log *log, const char *path, bool follow)
{
	char buf[PATH_MAX];
	char *slash;
	size_t len;

	if (path == NULL || path[0] != '/') {
		ps_log_err(log, "%s: not an absolute path", path ? path : "(null)");
		return false;
	}
	len = strlen(path);
	if (len >= sizeof(buf)) {
		ps_log_err(log, "path too long");
		return false;
	}
	memcpy(buf, path, len + 1);
	/* strip trailing slashes (but keep "/") */
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	for (;;) {
		if (!dir_entry_trusted(log, buf, follow))
			return false;
		if (strcmp(buf, "/") == 0)
			return true;
		slash = strrchr(buf, '/');
		if (slash == buf)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
}

/*
 * One directory, without its parents (ps_path_trusted covers those once
 * for a root): the registry and the CRL index check every directory they
 * descend into with this.
 */
int
ps_dir_check(const struct ps_log *log, const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return PS_ERR_NOT_FOUND;
		ps_log_err(log, "%s: cannot stat: %s", path, strerror(errno));
		return PS_ERR_IO;
	}
	if (S_ISLNK(st.st_mode)) {
		ps_log_err(log, "%s: is a symbolic link: refusing to trust it",
		    path);
		return PS_ERR_UNSAFE;
	}
	if (!S_ISDIR(st.st_mode)) {
		ps_log_err(log, "%s: not a directory", path);
		return PS_ERR_UNSAFE;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		ps_log_err(log, "%s: owned by uid %lu, not root: refusing to "
		    "trust it", path, (unsigned long)st.st_uid);
		return PS_ERR_UNSAFE;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		ps_log_err(log, "%s: writable by group or others: refusing to "
		    "trust it", path);
		return PS_ERR_UNSAFE;
	}
	return PS_OK;
}

/* Files in a root-administered directory: the registry, the CRL index. */
void
ps_file_rules_trusted(struct ps_file_rules *rules, size_t max_size)
{
	memset(rules, 0, sizeof(*rules));
	rules->max_size = max_size;
	rules->check_owner = true;
	rules->owner = geteuid();
	rules->owner_or_root = true;
	rules->forbid_group_write = true;
	rules->forbid_other_write = true;
}

/*
 * Writers of the registry and of the CRL index serialise on a lock file
 * in the directory they change; the lock is dropped when fd is closed.
 */
int
ps_lock_file(const struct ps_log *log, const char *path, int *fdp)
{
	struct stat st;
	int fd;

	*fdp = -1;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
	    0600);
	if (fd < 0) {
		ps_log_err(log, "%s: cannot open lock: %s", path,
		    strerror(errno));
		return PS_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ps_log_err(log, "%s: lock is not a regular file", path);
		close(fd);
		return PS_ERR_IO;
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			ps_log_err(log, "%s: cannot lock: %s", path,
			    strerror(errno));
			close(fd);
			return PS_ERR_IO;
		}
	}
	*fdp = fd;
	return PS_OK;
}

int
ps_fsync_dir(const char *path, bool is_dir)
{
	char buf[PATH_MAX];
	char *slash;
	int fd, r;

	if (strlen(path) >= sizeof(buf))
		return PS_ERR_INVALID;
	strcpy(buf, path);
	if (!is_dir) {
		slash = strrchr(buf, '/');
		if (slash == NULL)
			strcpy(buf, ".");
		else if (slash == buf)
			buf[1] = '\0';
		else
			*slash = '\0';
	}
	fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return PS_ERR_IO;
	r = fsync(fd) == 0 ? PS_OK : PS_ERR_IO;
	close(fd);
	return r;
}

/*
 * Only write(2) and errno: async-signal-safe, because token_soft's
 * keystore reader calls it in a forked child of a threaded process.
 */
int
ps_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
ps_write_file_atomic(const struct ps_log *log, const char *path,
    const void *data, size_t len, mode_t mode)
{
	char *tmp = NULL;
	int fd = -1, r = PS_ERR_IO;

	if ((tmp = ps_strdup_printf("%s.tmp.XXXXXX", path)) == NULL)
		return PS_ERR_NOMEM;
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		ps_log_err(log, "%s: cannot create temporary file: %s", path,
		    strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) != 0 || ps_write_all(fd, data, len) != 0 ||
	    fsync(fd) != 0) {
		ps_log_err(log, "%s: cannot write: %s", path, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		ps_log_err(log, "%s: cannot write: %s", path, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		ps_log_err(log, "%s: cannot rename into place: %s", path,
		    strerror(errno));
		goto out;
	}
	if (ps_fsync_dir(path, false) != PS_OK) {
		ps_log_err(log, "%s: cannot sync directory", path);
		goto out;
	}
	r = PS_OK;
 out:
	if (fd >= 0)
		close(fd);
	if (r != PS_OK && tmp != NULL)
		unlink(tmp);
	free(tmp);
	return r;
}

void
ps_hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

bool
ps_hex_valid(const char *s, size_t hexlen)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < hexlen; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[hexlen] == '\0';
}

char *
ps_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

void
ps_format_date(long long t, char out[11])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 11, "%Y-%m-%d", &tm) != 10)
		strcpy(out, "unknown");
}
