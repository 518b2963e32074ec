/*
 * tool_common.h - what personalsign-enroll and personalsign-respond both
 * need to get a password or PIN from a person: asked on the terminal with
 * echo off, or read from the first line of a file; and the '%' escaping
 * that turns a keystore path into a keystore= pattern.
 *
 * Secrets returned here are malloc'd; free them with ps_free_secret().
 * Every buffer that held one is wiped before it is released.
 */
#ifndef PS_TOOL_COMMON_H
#define PS_TOOL_COMMON_H

#include <stddef.h>
#include <sys/types.h>

#include "log.h"

/* The longest password or PIN the tools accept, from a file or the tty. */
#define TOOL_SECRET_MAX	1024

/*
 * One line from the terminal (/dev/tty, not stdin: stdin may be a pipe)
 * with echo off, after showing `prompt`. PS_ERR_CONV when there is no
 * terminal to ask on or the read failed.
 */
int tool_ask_tty(const char *prompt, char **out);

/* A struct ps_conv prompt function that asks on the terminal. */
int tool_conv_prompt(void *arg, int echo, const char *msg, char **answer);

/*
 * The first line of a file that ps_read_file() returned (line end
 * dropped), as a new string in *out. Consumes `data`: it is wiped and
 * freed whatever the result. PS_ERR_NOMEM when the copy fails.
 */
int tool_first_line(unsigned char *data, size_t len, char **out);

/*
 * The first line of a private secret file of `owner`'s (or root's) that
 * no one else can read or write: --pin-file / --password-file of a user.
 */
int tool_read_private_secret(const struct ps_log *log, const char *path,
    uid_t owner, char **out);

/* A literal path as a keystore= pattern: '%' doubled. NULL: no memory. */
char *tool_keystore_pattern(const char *path);

#endif /* PS_TOOL_COMMON_H */
