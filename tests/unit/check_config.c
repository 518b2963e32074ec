/*
 * check_config.c - unit tests for config.c: defaults, every option type,
 * file parsing, argument overrides, and that bad input is refused.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config.h"
#include "ps_status.h"
#include "testutil.h"

START_TEST(defaults)
{
	struct ps_config cfg;

	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	ck_assert_str_eq(cfg.registry_dir, PS_DEFAULT_REGISTRY);
	ck_assert_str_eq(cfg.keystore, "%h/.personalsign/keystore.pfx");
	ck_assert_str_eq(cfg.registry_backend, "file");
	ck_assert_int_eq(cfg.expiry_warn_days, 90);
	ck_assert_int_eq(cfg.min_pin_retries, 1);
	ck_assert_int_eq(cfg.backend, PS_BACKEND_SOFT);
	ck_assert_int_eq(cfg.mode, PS_MODE_LOCAL);
	ck_assert(!cfg.nouserok);
	ck_assert(!cfg.debug);
	ps_config_free(&cfg);
}
END_TEST

START_TEST(set_values)
{
	struct ps_config cfg;
	char err[256];

	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	ck_assert_int_eq(ps_config_set(&cfg, "debug", NULL, err, sizeof(err)), PS_OK);
	ck_assert(cfg.debug);
	ck_assert_int_eq(ps_config_set(&cfg, "debug", "no", err, sizeof(err)), PS_OK);
	ck_assert(!cfg.debug);
	ck_assert_int_eq(ps_config_set(&cfg, "expiry_warn_days", "30", err,
	    sizeof(err)), PS_OK);
	ck_assert_int_eq(cfg.expiry_warn_days, 30);
	ck_assert_int_eq(ps_config_set(&cfg, "backend", "piv", err, sizeof(err)),
	    PS_OK);
	ck_assert_int_eq(cfg.backend, PS_BACKEND_PIV);
	ck_assert_int_eq(ps_config_set(&cfg, "registry", "/srv/reg", err,
	    sizeof(err)), PS_OK);
	ck_assert_str_eq(cfg.registry_dir, "/srv/reg");

	ck_assert_int_eq(ps_config_set(&cfg, "nosuch", "1", err, sizeof(err)),
	    PS_ERR_INVALID);
	ck_assert_ptr_nonnull(strstr(err, "unknown option \"nosuch\""));
	ck_assert_int_eq(ps_config_set(&cfg, "expiry_warn_days", "-1", err,
	    sizeof(err)), PS_ERR_INVALID);
	ck_assert_int_eq(ps_config_set(&cfg, "expiry_warn_days", "12x", err,
	    sizeof(err)), PS_ERR_INVALID);
	ck_assert_int_eq(ps_config_set(&cfg, "expiry_warn_days", "99999999999",
	    err, sizeof(err)), PS_ERR_INVALID);
	ck_assert_int_eq(ps_config_set(&cfg, "expiry_warn_days", NULL, err,
	    sizeof(err)), PS_ERR_INVALID);
	ck_assert_int_eq(ps_config_set(&cfg, "backend", "pkcs11", err,
	    sizeof(err)), PS_ERR_INVALID);
	ck_assert_int_eq(ps_config_set(&cfg, "registry", "relative", err,
	    sizeof(err)), PS_ERR_INVALID);
	ck_assert_ptr_nonnull(strstr(err, "not an absolute path"));
	ck_assert_int_eq(ps_config_set(&cfg, "debug", "maybe", err,
	    sizeof(err)), PS_ERR_INVALID);
	ck_assert_int_eq(ps_config_set(&cfg, "identity", "subject", err,
	    sizeof(err)), PS_OK);
	ck_assert_str_eq(cfg.identity, "subject");
	ck_assert_int_eq(ps_config_set(&cfg, "identity", "emial", err,
	    sizeof(err)), PS_ERR_INVALID);
	ck_assert_str_eq(cfg.identity, "subject");
	/* refused values left the earlier ones alone */
	ck_assert_int_eq(cfg.expiry_warn_days, 30);
	ck_assert_str_eq(cfg.registry_dir, "/srv/reg");
	ps_config_free(&cfg);
}
END_TEST

static char *
write_conf(const char *dir, const char *text, int mode)
{
	char *path;

	ck_assert(asprintf(&path, "%s/personalsign.conf", dir) > 0);
	tu_write_file(path, text, strlen(text), mode);
	return path;
}

START_TEST(file_and_args)
{
	char *dir = tu_mkdtemp(), *path, *arg;
	struct ps_config cfg;
	const char *argv[3];

	chmod(dir, 0755);
	path = write_conf(dir, "# comment\n\n  expiry_warn_days = 14  \r\n"
	    "keystore=/k/%u.pfx\ndebug\nnouserok = yes\n", 0644);
	ck_assert(asprintf(&arg, "config=%s", path) > 0);
	argv[0] = arg;
	argv[1] = "expiry_warn_days=7";
	argv[2] = "try_first_pass";
	ck_assert_int_eq(ps_config_from_args(&cfg, 3, argv, &tu_log), PS_OK);
	ck_assert_int_eq(cfg.expiry_warn_days, 7);	/* argument wins */
	ck_assert_str_eq(cfg.keystore, "/k/%u.pfx");
	ck_assert(cfg.debug);
	ck_assert(cfg.nouserok);
	ck_assert(cfg.try_first_pass);
	ps_config_free(&cfg);

	/* a bad line names the file and the line */
	free(path);
	path = write_conf(dir, "debug\nbogus = 1\n", 0644);
	tu_log_reset();
	ck_assert_int_eq(ps_config_from_args(&cfg, 1, argv, &tu_log),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("personalsign.conf:2: unknown option"));

	/* a file others may write is not trusted */
	free(path);
	path = write_conf(dir, "debug\n", 0666);
	chmod(path, 0666);
	tu_log_reset();
	ck_assert_int_eq(ps_config_from_args(&cfg, 1, argv, &tu_log),
	    PS_ERR_UNSAFE);
	ck_assert(tu_log_contains("writable by group"));

	/* ... and neither is one in a directory others may change */
	chmod(path, 0644);
	chmod(dir, 0777);
	tu_log_reset();
	ck_assert_int_eq(ps_config_from_args(&cfg, 1, argv, &tu_log),
	    PS_ERR_UNSAFE);
	ck_assert(tu_log_contains("its directory may be changed by others"));
	chmod(dir, 0755);

	/* an explicit config= that does not exist is an error */
	unlink(path);
	tu_log_reset();
	ck_assert_int_ne(ps_config_from_args(&cfg, 1, argv, &tu_log), PS_OK);
	ck_assert(tu_log_contains("configuration file not found"));

	/* conflicting and malformed arguments */
	argv[0] = "use_first_pass";
	argv[1] = "try_first_pass";
	ck_assert_int_eq(ps_config_from_args(&cfg, 2, argv, &tu_log),
	    PS_ERR_INVALID);
	argv[0] = "config=relative.conf";
	ck_assert_int_eq(ps_config_from_args(&cfg, 1, argv, &tu_log),
	    PS_ERR_INVALID);
	argv[0] = "registry=";
	ck_assert_int_eq(ps_config_from_args(&cfg, 1, argv, &tu_log),
	    PS_ERR_INVALID);
	tu_rmrf(dir);
	free(arg);
	free(path);
	free(dir);
}
END_TEST

START_TEST(parse_text)
{
	struct ps_config cfg;
	char text[64];

	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	strcpy(text, "debug\nexpiry_warn_days=5");
	ck_assert_int_eq(ps_config_parse_text(&cfg, text, strlen(text), "t",
	    &tu_log), PS_OK);
	ck_assert_int_eq(cfg.expiry_warn_days, 5);
	memcpy(text, "debug\0x", 8);
	tu_log_reset();
	ck_assert_int_eq(ps_config_parse_text(&cfg, text, 7, "t", &tu_log),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("NUL byte"));
	strcpy(text, "config=/etc/x");
	ck_assert_int_eq(ps_config_parse_text(&cfg, text, strlen(text), "t",
	    &tu_log), PS_ERR_INVALID);
	ps_config_free(&cfg);
}
END_TEST

START_TEST(names)
{
	ck_assert_str_eq(ps_backend_name(PS_BACKEND_AUTO), "auto");
	ck_assert_str_eq(ps_mode_name(PS_MODE_REMOTE), "remote");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, defaults);
	tcase_add_test(tc, set_values);
	tcase_add_test(tc, file_and_args);
	tcase_add_test(tc, parse_text);
	tcase_add_test(tc, names);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
