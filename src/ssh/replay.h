/*
 * replay.h - remember which remote-mode challenges have been answered, so
 * that each is accepted at most once.
 *
 * One small file per accepted challenge in the state directory, named by
 * the SHA-256 of its nonce and created with O_CREAT|O_EXCL: the kernel
 * decides atomically which of two racing logins was first, across
 * processes. The file's mtime is the time after which it may be forgotten
 * (the challenge expiry plus the clock-skew allowance); expired entries
 * are swept on each use. Sweeping and creating hold an exclusive flock on
 * the directory, so a sweep never sees an entry whose mtime is not set yet.
 */
#ifndef PS_REPLAY_H
#define PS_REPLAY_H

#include <stddef.h>
#include <time.h>

#include "config.h"
#include "log.h"

#ifndef PS_DEFAULT_STATE_DIR
#define PS_DEFAULT_STATE_DIR	"/run/personalsign"
#endif

/* The state directory in use: cfg->state_dir or the default. */
const char *ps_replay_dir(const struct ps_config *cfg);

/*
 * Record that the challenge with this nonce has been answered. PS_OK the
 * first time; PS_ERR_EXISTS when it was recorded before (a replay).
 * The directory is created (0700) when missing; it must be owned by root
 * (or by the effective uid, for tests), not writable by group or others,
 * under a trusted path: PS_ERR_UNSAFE otherwise, PS_ERR_IO when it cannot
 * be written. Every error means: do not accept the response.
 */
int ps_replay_mark(const struct ps_config *cfg, const struct ps_log *log,
    const unsigned char *nonce, size_t nonce_len, long long expires,
    time_t now);

#endif /* PS_REPLAY_H */
