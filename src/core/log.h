/*
 * log.h - the one logging path of libpersonalsign.
 *
 * The core never writes to syslog or stderr itself: the caller hands in a
 * sink (pam_syslog in the module, stderr in the tools, plugin_log in the
 * OpenVPN plugin). Messages are sanitised so that text taken from
 * certificates or user names cannot inject fake log lines. Nothing secret
 * (PIN, password, key) may ever be passed here.
 */
#ifndef PS_LOG_H
#define PS_LOG_H

enum ps_log_level {
	PS_LOG_ERR,
	PS_LOG_WARN,
	PS_LOG_NOTICE,
	PS_LOG_INFO,
	PS_LOG_DEBUG,
};

typedef void (*ps_log_fn)(void *arg, enum ps_log_level level, const char *msg);

struct ps_log {
	ps_log_fn fn;		/* NULL: discard everything */
	void *arg;
	int debug;		/* pass PS_LOG_DEBUG messages through */
};

void ps_log_msg(const struct ps_log *log, enum ps_log_level level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define ps_log_err(log, ...)	ps_log_msg((log), PS_LOG_ERR, __VA_ARGS__)
#define ps_log_warn(log, ...)	ps_log_msg((log), PS_LOG_WARN, __VA_ARGS__)
#define ps_log_notice(log, ...)	ps_log_msg((log), PS_LOG_NOTICE, __VA_ARGS__)
#define ps_log_info(log, ...)	ps_log_msg((log), PS_LOG_INFO, __VA_ARGS__)
#define ps_log_debug(log, ...)	ps_log_msg((log), PS_LOG_DEBUG, __VA_ARGS__)

/* Log the OpenSSL error queue at debug level under `what`, then clear it. */
void ps_log_openssl(const struct ps_log *log, const char *what);

/* A sink for command-line tools: "PROGNAME: message" on stderr; arg is the
 * program name (const char *). */
void ps_log_to_stderr(void *arg, enum ps_log_level level, const char *msg);

#endif /* PS_LOG_H */
