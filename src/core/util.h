/*
 * util.h - small helpers every part of the core needs: wiping secrets,
 * validating user names before they touch a path, reading files and
 * checking directories whose ownership and permissions decide whether
 * they can be trusted, lock files, atomic file replacement, hex encoding.
 */
#ifndef PS_UTIL_H
#define PS_UTIL_H

#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

#include "log.h"

#define PS_USER_NAME_MAX 256

/* Overwrite n bytes in a way the compiler cannot optimise away. */
void ps_wipe(void *p, size_t n);
/* Wipe then free; p may be NULL. */
void ps_freezero(void *p, size_t n);
/* Wipe a NUL-terminated secret string, then free it; s may be NULL. */
void ps_free_secret(char *s);

/*
 * True when `user` is safe to use as a single path component and in logs:
 * 1..PS_USER_NAME_MAX-1 bytes of [A-Za-z0-9._@+-], optionally ending in
 * '$' (machine accounts), not starting with '.' or '-'.
 */
bool ps_user_name_valid(const char *user);

/* Rules a file must satisfy before its contents are trusted. */
struct ps_file_rules {
	size_t max_size;	/* larger files are refused */
	bool check_owner;	/* owner must be `owner` (or root when owner_or_root) */
	uid_t owner;
	bool owner_or_root;	/* accept root as owner too */
	bool forbid_group_write;
	bool forbid_other_write;
	bool forbid_other_read;	/* e.g. a private keystore */
};

/*
 * Open `path` without following a final symlink, require a regular file
 * that satisfies `rules`, and read it whole into a malloc'd buffer
 * (NUL-terminated for convenience; *len excludes the NUL).
 * Returns PS_OK, PS_ERR_NOT_FOUND (ENOENT), PS_ERR_UNSAFE, PS_ERR_INVALID
 * (too large / not a regular file), PS_ERR_IO, PS_ERR_NOMEM.
 * The caller frees with ps_freezero(data, len + 1) when it was secret.
 */
int ps_read_file(const struct ps_log *log, const char *path,
    const struct ps_file_rules *rules, unsigned char **data, size_t *len);

/*
 * True when `path` and every directory above it is owned by root (or by
 * the effective uid, so that unprivileged test runs work) and is not
 * writable by group or others (sticky directories like /tmp are not
 * accepted). Logs why not at error level.
 */
bool ps_path_trusted(const struct ps_log *log, const char *path);

/*
 * A directory may be trusted when it is a real directory (not a symlink),
 * owned by root or us, and writable by nobody else. PS_OK, PS_ERR_UNSAFE
 * or PS_ERR_IO (logged), PS_ERR_NOT_FOUND (not logged) when it does not
 * exist.
 */
int ps_dir_check(const struct ps_log *log, const char *path);

/*
 * Rules for a file that only root (or the effective uid, for unprivileged
 * test runs) may change: owned by either, not writable by group or others,
 * at most `max_size` bytes.
 */
void ps_file_rules_trusted(struct ps_file_rules *rules, size_t max_size);

/*
 * Open (creating, mode 0600, never through a symlink) the regular file
 * `path` and take an exclusive flock on it, waiting for other holders.
 * PS_OK with *fdp open (close it to unlock), or PS_ERR_IO (logged).
 */
int ps_lock_file(const struct ps_log *log, const char *path, int *fdp);

/*
 * Replace `path` atomically with `len` bytes of `data`: write a temporary
 * file in the same directory with `mode`, fsync it, rename it over `path`,
 * fsync the directory. A crash leaves the old or the new file, never half.
 */
int ps_write_file_atomic(const struct ps_log *log, const char *path,
    const void *data, size_t len, mode_t mode);

/*
 * Write all `len` bytes, retrying on EINTR and short writes: 0, or -1 with
 * errno set. Async-signal-safe, so a forked child may use it.
 */
int ps_write_all(int fd, const void *data, size_t len);

/* fsync the directory containing `path` (or `path` itself when is_dir). */
int ps_fsync_dir(const char *path, bool is_dir);

/* Lower-case hex of `len` bytes into out[2*len+1]. */
void ps_hex_encode(const unsigned char *in, size_t len, char *out);

/* True when s is exactly `hexlen` lower-case hex digits. */
bool ps_hex_valid(const char *s, size_t hexlen);

/* malloc'd printf; NULL on failure. */
char *ps_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "2026-11-25" style UTC date of t into out[11]. */
void ps_format_date(long long t, char out[11]);

#endif /* PS_UTIL_H */
