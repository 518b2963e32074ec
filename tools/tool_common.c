/*
 * tool_common.c - getting a password or PIN from a person, for both
 * command-line tools: the terminal with echo off, or the first line of a
 * file. Kept out of the library: the PAM module never owns a terminal.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ps_status.h"
#include "util.h"
#include "tool_common.h"

static volatile sig_atomic_t tty_signal;

static void
tty_sig_handler(int sig)
{
	tty_signal = sig;
}

static const int tty_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
#define NTTY_SIGS (sizeof(tty_sigs) / sizeof(tty_sigs[0]))

/*
 * One line from the terminal with echo off. Signals restore the terminal
 * before they take effect, so ^C never leaves the shell without echo.
 */
static int
tty_read_hidden(int fd, const char *prompt, char *buf, size_t buflen)
{
	struct sigaction sa, old[NTTY_SIGS];
	struct termios saved, quiet;
	size_t i, n = 0;
	ssize_t got;
	char ch;
	int r = PS_ERR_CONV;

	if (tcgetattr(fd, &saved) != 0)
		return PS_ERR_CONV;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_sig_handler;	/* no SA_RESTART: read stops */
	sigemptyset(&sa.sa_mask);
	tty_signal = 0;
	for (i = 0; i < NTTY_SIGS; i++)
		(void)sigaction(tty_sigs[i], &sa, &old[i]);
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
		goto restore;
	if (write(fd, prompt, strlen(prompt)) < 0)
		goto restore;
	for (;;) {
		got = read(fd, &ch, 1);
		if (got != 1 || tty_signal != 0)
			break;
		if (ch == '\n' || ch == '\r') {
			r = PS_OK;
			break;
		}
		if (n + 1 < buflen)
			buf[n++] = ch;
	}
	buf[n] = '\0';
	ch = '\n';
	(void)!write(fd, &ch, 1);
 restore:
	(void)tcsetattr(fd, TCSAFLUSH, &saved);
	for (i = 0; i < NTTY_SIGS; i++)
		(void)sigaction(tty_sigs[i], &old[i], NULL);
	ps_wipe(&ch, sizeof(ch));
	if (tty_signal != 0) {
		ps_wipe(buf, buflen);
		raise(tty_signal);
		r = PS_ERR_CONV;
	}
	return r;
}

int
tool_ask_tty(const char *prompt, char **out)
{
	char buf[TOOL_SECRET_MAX];
	int fd, r;

	*out = NULL;
	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		return PS_ERR_CONV;
	r = tty_read_hidden(fd, prompt, buf, sizeof(buf));
	close(fd);
	if (r == PS_OK && (*out = strdup(buf)) == NULL)
		r = PS_ERR_NOMEM;
	ps_wipe(buf, sizeof(buf));
	return r;
}

/* Both tools ask only for secrets, so echo is always off. */
int
tool_conv_prompt(void *arg, int echo, const char *msg, char **answer)
{
	(void)arg;
	(void)echo;
	return tool_ask_tty(msg, answer);
}

int
tool_first_line(unsigned char *data, size_t len, char **out)
{
	char *nl;

	/* the first line is the secret; editors add a line end */
	if ((nl = memchr(data, '\n', len)) != NULL) {
		if (nl > (char *)data && nl[-1] == '\r')
			nl--;
		ps_wipe(nl, len - (size_t)(nl - (char *)data));
	}
	*out = strdup((char *)data);
	ps_freezero(data, len + 1);
	return *out != NULL ? PS_OK : PS_ERR_NOMEM;
}

int
tool_read_private_secret(const struct ps_log *log, const char *path,
    uid_t owner, char **out)
{
	struct ps_file_rules rules;
	unsigned char *data = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	memset(&rules, 0, sizeof(rules));
	rules.max_size = TOOL_SECRET_MAX;
	rules.check_owner = true;
	rules.owner = owner;
	rules.owner_or_root = true;
	rules.forbid_group_write = true;
	rules.forbid_other_write = true;
	rules.forbid_other_read = true;
	if ((r = ps_read_file(log, path, &rules, &data, &len)) != PS_OK)
		return r;
	return tool_first_line(data, len, out);
}

char *
tool_keystore_pattern(const char *path)
{
	size_t i, n = 0, len = strlen(path);
	char *out;

	if ((out = malloc(2 * len + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (path[i] == '%')
			out[n++] = '%';
		out[n++] = path[i];
	}
	out[n] = '\0';
	return out;
}
