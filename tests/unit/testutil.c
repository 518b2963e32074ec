/*
 * testutil.c - helpers shared by the unit tests (see testutil.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/pem.h>

#include "testutil.h"

static char log_buf[65536];
static size_t log_used;

static void
tu_log_sink(void *arg, enum ps_log_level level, const char *msg)
{
	size_t n = strlen(msg);

	(void)arg;
	(void)level;
	if (log_used + n + 2 >= sizeof(log_buf))
		return;
	memcpy(log_buf + log_used, msg, n);
	log_used += n;
	log_buf[log_used++] = '\n';
	log_buf[log_used] = '\0';
	if (getenv("TU_LOG_STDERR") != NULL)
		fprintf(stderr, "log: %s\n", msg);
}

struct ps_log tu_log = { tu_log_sink, NULL, 1 };

const char *
tu_log_text(void)
{
	return log_buf;
}

bool
tu_log_contains(const char *needle)
{
	return strstr(log_buf, needle) != NULL;
}

void
tu_log_reset(void)
{
	log_used = 0;
	log_buf[0] = '\0';
}

char *
tu_fixture(const char *name)
{
	const char *dir = getenv("PS_FIXTURES");
	char *path;

	if (dir == NULL) {
		fprintf(stderr, "PS_FIXTURES is not set (run through make check)\n");
		abort();
	}
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	return path;
}

const char *
tu_password(void)
{
	return "correct horse 42";
}

X509 *
tu_load_cert(const char *name)
{
	char *path = tu_fixture(name);
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		abort();
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		fprintf(stderr, "cannot parse %s\n", path);
		abort();
	}
	free(path);
	return x;
}

EVP_PKEY *
tu_load_key(const char *name)
{
	char *path = tu_fixture(name);
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL)
		abort();
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		abort();
	free(path);
	return k;
}

char *
tu_mkdtemp(void)
{
	const char *tmp = getenv("TMPDIR");
	char *path;

	if (asprintf(&path, "%s/ps-unit-XXXXXX", tmp ? tmp : "/tmp") < 0)
		abort();
	if (mkdtemp(path) == NULL)
		abort();
	return path;
}

void
tu_rmrf(const char *path)
{
	char *cmd;

	if (path == NULL || strstr(path, "/ps-unit-") == NULL)
		return;
	if (asprintf(&cmd, "rm -rf '%s'", path) < 0)
		abort();
	if (system(cmd) != 0)
		fprintf(stderr, "rm -rf %s failed\n", path);
	free(cmd);
}

void
tu_write_file(const char *path, const void *data, size_t len, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	if (fchmod(fd, mode) != 0)
		abort();
	close(fd);
}
