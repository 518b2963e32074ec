/*
 * replay.c - the accepted-challenge cache of remote mode (replay.h).
 *
 * Everything is done relative to one directory descriptor that was
 * checked after it was opened (openat/fstatat/unlinkat with
 * AT_SYMLINK_NOFOLLOW), so swapping the directory or planting symlinks
 * between the check and the use gains nothing.
 *
 * The sweep and the creation of an entry run under an exclusive flock on
 * that directory: an entry is created with O_EXCL (mtime: now) and only
 * then given its forget-after time, so without the lock a sweep in
 * another process could see it in between, take it for expired and unlink
 * it, and the challenge it records could be accepted again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#include "ps_status.h"
#include "replay.h"
#include "util.h"

#define ENTRY_NAME_LEN	64	/* hex SHA-256 */
/* a context string, so these names never equal another hash of the nonce */
#define ENTRY_CONTEXT	"pam_personalsign/v1 replay\n"

const char *
ps_replay_dir(const struct ps_config *cfg)
{
	if (cfg != NULL && cfg->state_dir != NULL && cfg->state_dir[0] != '\0')
		return cfg->state_dir;
	return PS_DEFAULT_STATE_DIR;
}

static int
entry_name(const unsigned char *nonce, size_t len, char name[ENTRY_NAME_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return PS_ERR_NOMEM;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, ENTRY_CONTEXT, strlen(ENTRY_CONTEXT)) == 1 &&
	    EVP_DigestUpdate(ctx, nonce, len) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return PS_ERR_CRYPTO;
	ps_hex_encode(md, mdlen, name);
	return PS_OK;
}

/* Create the last component when missing; its parent must exist. */
static int
ensure_dir(const struct ps_log *log, const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) == 0)
		return PS_OK;
	if (errno != ENOENT) {
		ps_log_err(log, "state directory %s: %s", dir, strerror(errno));
		return PS_ERR_IO;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		ps_log_err(log, "cannot create state directory %s: %s", dir,
		    strerror(errno));
		return PS_ERR_IO;
	}
	return PS_OK;
}

/* Open `dir` and prove it is ours: a real directory, owned by root (or
 * us), writable by nobody else, reached through trusted directories. */
static int
open_dir(const struct ps_log *log, const char *dir, int *fd)
{
	struct stat st;
	int d;

	*fd = -1;
	if (!ps_path_trusted(log, dir)) {
		ps_log_err(log, "state directory %s is not trusted: refusing "
		    "remote logins", dir);
		return PS_ERR_UNSAFE;
	}
	d = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0) {
		ps_log_err(log, "cannot open state directory %s: %s", dir,
		    strerror(errno));
		return errno == ELOOP || errno == ENOTDIR ? PS_ERR_UNSAFE :
		    PS_ERR_IO;
	}
	if (fstat(d, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		ps_log_err(log, "state directory %s must be a directory owned "
		    "by root and writable by nobody else: refusing remote "
		    "logins", dir);
		close(d);
		return PS_ERR_UNSAFE;
	}
	*fd = d;
	return PS_OK;
}

static bool
is_entry_name(const char *name)
{
	return strlen(name) == ENTRY_NAME_LEN &&
	    ps_hex_valid(name, ENTRY_NAME_LEN);
}

/*
 * Forget entries whose time is up. Failures here only leave files behind:
 * they never make a replay acceptable, so they are logged, not returned.
 */
static void
sweep(const struct ps_log *log, int dfd, time_t now)
{
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd;

	if ((fd = dup(dfd)) < 0)
		return;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!is_entry_name(de->d_name))
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (!S_ISREG(st.st_mode) || st.st_mtime >= now)
			continue;
		if (unlinkat(dfd, de->d_name, 0) != 0 && errno != ENOENT)
			ps_log_warn(log, "cannot remove expired replay entry "
			    "%s: %s", de->d_name, strerror(errno));
	}
	closedir(dir);
}

/* The entry itself: exclusive creation is the whole replay test. */
static int
create_entry(const struct ps_log *log, int dfd, const char *name,
    long long forget_after)
{
	struct timespec times[2];
	char text[64];
	int fd, n, r = PS_ERR_IO;

	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return PS_ERR_EXISTS;
		ps_log_err(log, "cannot record a used challenge: %s",
		    strerror(errno));
		return PS_ERR_IO;
	}
	n = snprintf(text, sizeof(text), "forget-after=%lld\n", forget_after);
	if (n <= 0 || (size_t)n >= sizeof(text) ||
	    write(fd, text, (size_t)n) != n)
		goto out;
	times[0].tv_sec = times[1].tv_sec = (time_t)forget_after;
	times[0].tv_nsec = times[1].tv_nsec = 0;
	if (futimens(fd, times) != 0 || fsync(fd) != 0)
		goto out;
	r = PS_OK;
 out:
	if (close(fd) != 0)
		r = PS_ERR_IO;
	if (r != PS_OK)
		ps_log_err(log, "cannot record a used challenge: %s",
		    strerror(errno));
	/* The entry exists either way (the name was taken atomically), so
	 * the challenge can never be accepted twice; but an entry we could
	 * not finish must not count as a success. */
	return r;
}

int
ps_replay_mark(const struct ps_config *cfg, const struct ps_log *log,
    const unsigned char *nonce, size_t nonce_len, long long expires,
    time_t now)
{
	const char *dir = ps_replay_dir(cfg);
	char name[ENTRY_NAME_LEN + 1];
	long long skew = cfg != NULL ? cfg->clock_skew : 0;
	int dfd = -1, r;

	if (nonce == NULL || nonce_len == 0 || expires < 0)
		return PS_ERR_INVALID;
	if ((r = entry_name(nonce, nonce_len, name)) != PS_OK)
		return r;
	if ((r = ensure_dir(log, dir)) != PS_OK)
		return r;
	if ((r = open_dir(log, dir, &dfd)) != PS_OK)
		return r;
	if (flock(dfd, LOCK_EX) != 0) {
		ps_log_err(log, "cannot lock state directory %s: %s", dir,
		    strerror(errno));
		close(dfd);
		return PS_ERR_IO;
	}
	sweep(log, dfd, now);
	r = create_entry(log, dfd, name, expires + (skew > 0 ? skew : 0));
	if (r == PS_OK && fsync(dfd) != 0) {
		ps_log_err(log, "cannot sync state directory %s: %s", dir,
		    strerror(errno));
		r = PS_ERR_IO;
	}
	close(dfd);		/* releases the lock */
	return r;
}
