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

#include "ps_status.h"
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

void
tu_copy_fixture(const char *name, const char *to)
{
	char *from = tu_fixture(name);
	FILE *in = fopen(from, "rb");
	unsigned char buf[65536];
	size_t n;

	ck_assert_ptr_nonnull(in);
	n = fread(buf, 1, sizeof(buf), in);
	ck_assert(n < sizeof(buf));
	fclose(in);
	tu_write_file(to, buf, n, 0644);
	free(from);
}

int
tu_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

void
tu_cfg_set(struct ps_config *cfg, const char *key, const char *value)
{
	char err[256];

	ck_assert_msg(ps_config_set(cfg, key, value, err, sizeof(err)) == PS_OK,
	    "%s=%s: %s", key, value, err);
}

void
tu_fp_of(const char *crt, char fp[PS_FP_HEX_LEN + 1])
{
	X509 *x = tu_load_cert(crt);

	ck_assert_int_eq(ps_cert_fingerprint(x, fp), PS_OK);
	X509_free(x);
}

struct ps_policy *
tu_policy_new(const struct ps_config *cfg)
{
	struct ps_policy *p = NULL;
	int r;

	tu_log_reset();
	r = ps_policy_new(cfg, &tu_log, &p);
	ck_assert_msg(r == PS_OK, "ps_policy_new: %s; log: %s",
	    ps_status_str(r), tu_log_text());
	return p;
}

struct ps_registry *
tu_registry_open(const char *dir, bool rw)
{
	struct ps_registry *reg = NULL;

	ck_assert_int_eq(ps_registry_file_open(dir, &tu_log, rw, &reg), PS_OK);
	return reg;
}
