/*
 * log.c - formatting and sanitising log messages before they reach the
 * caller's sink (see log.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>

#include "log.h"

#define PS_LOG_LINE_MAX 1024

/* Control characters (e.g. a newline in a certificate subject) would let
 * attacker-chosen text forge log lines; replace them. */
static void
sanitise(char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			*s = '?';
	}
}

static void
ps_log_vmsg(const struct ps_log *log, enum ps_log_level level,
    const char *fmt, va_list ap)
{
	char line[PS_LOG_LINE_MAX];

	if (log == NULL || log->fn == NULL)
		return;
	if (level == PS_LOG_DEBUG && !log->debug)
		return;
	if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
		return;
	sanitise(line);
	log->fn(log->arg, level, line);
}

void
ps_log_msg(const struct ps_log *log, enum ps_log_level level,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ps_log_vmsg(log, level, fmt, ap);
	va_end(ap);
}

void
ps_log_openssl(const struct ps_log *log, const char *what)
{
	unsigned long e;
	char buf[256];
	int n = 0;

	while ((e = ERR_get_error()) != 0) {
		if (n++ < 4) {
			ERR_error_string_n(e, buf, sizeof(buf));
			ps_log_debug(log, "%s: openssl: %s", what, buf);
		}
	}
}

void
ps_log_to_stderr(void *arg, enum ps_log_level level, const char *msg)
{
	const char *prog = arg != NULL ? (const char *)arg : "personalsign";
	const char *tag = "";

	if (level == PS_LOG_WARN)
		tag = "warning: ";
	else if (level == PS_LOG_DEBUG)
		tag = "debug: ";
	fprintf(stderr, "%s: %s%s\n", prog, tag, msg);
}
