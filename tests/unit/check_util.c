/*
 * check_util.c - unit tests for util.c and log.c: user-name validation,
 * trusted file reading, path trust, atomic writes, log sanitising.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ps_status.h"
#include "testutil.h"
#include "util.h"

START_TEST(user_names)
{
	char longname[PS_USER_NAME_MAX + 1];

	ck_assert(ps_user_name_valid("alice"));
	ck_assert(ps_user_name_valid("a.b-c_d@example.test"));
	ck_assert(ps_user_name_valid("HOST$"));
	ck_assert(!ps_user_name_valid(NULL));
	ck_assert(!ps_user_name_valid(""));
	ck_assert(!ps_user_name_valid("../x"));
	ck_assert(!ps_user_name_valid("a/b"));
	ck_assert(!ps_user_name_valid(".hidden"));
	ck_assert(!ps_user_name_valid("-rf"));
	ck_assert(!ps_user_name_valid("a\nb"));
	ck_assert(!ps_user_name_valid("a b"));
	ck_assert(!ps_user_name_valid("a$b"));
	ck_assert(!ps_user_name_valid("\x1b[31m"));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert(!ps_user_name_valid(longname));
	longname[PS_USER_NAME_MAX - 1] = '\0';
	ck_assert(ps_user_name_valid(longname));
}
END_TEST

START_TEST(read_file_rules)
{
	struct ps_file_rules rules = {
		.max_size = 16, .check_owner = true, .owner = geteuid(),
		.forbid_group_write = true, .forbid_other_write = true,
	};
	char *dir = tu_mkdtemp(), *path, *link;
	unsigned char *data;
	size_t len;

	ck_assert(asprintf(&path, "%s/f", dir) > 0);
	ck_assert(asprintf(&link, "%s/l", dir) > 0);
	ck_assert_int_eq(ps_read_file(&tu_log, path, &rules, &data, &len),
	    PS_ERR_NOT_FOUND);
	tu_write_file(path, "hello", 5, 0644);
	ck_assert_int_eq(ps_read_file(&tu_log, path, &rules, &data, &len), PS_OK);
	ck_assert_uint_eq(len, 5);
	ck_assert_str_eq((char *)data, "hello");
	free(data);

	tu_log_reset();
	chmod(path, 0666);
	ck_assert_int_eq(ps_read_file(&tu_log, path, &rules, &data, &len),
	    PS_ERR_UNSAFE);
	ck_assert(tu_log_contains("writable by group"));
	chmod(path, 0644);

	tu_write_file(path, "0123456789abcdefXYZ", 19, 0644);
	tu_log_reset();
	ck_assert_int_eq(ps_read_file(&tu_log, path, &rules, &data, &len),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("too large"));

	ck_assert_int_eq(symlink(path, link), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_read_file(&tu_log, link, &rules, &data, &len),
	    PS_ERR_UNSAFE);
	ck_assert(tu_log_contains("symbolic link"));

	rules.owner = geteuid() + 1;
	rules.owner_or_root = true;
	tu_log_reset();
	tu_write_file(path, "x", 1, 0644);
	ck_assert_int_eq(ps_read_file(&tu_log, path, &rules, &data, &len),
	    geteuid() == 0 ? PS_OK : PS_ERR_UNSAFE);
	if (data != NULL && geteuid() == 0)
		free(data);
	rules.owner_or_root = false;
	if (geteuid() == 0) {
		ck_assert_int_eq(ps_read_file(&tu_log, path, &rules, &data,
		    &len), PS_ERR_UNSAFE);
		ck_assert(tu_log_contains("owned by uid"));
	}
	ck_assert_int_eq(ps_read_file(&tu_log, dir, &rules, &data, &len),
	    PS_ERR_INVALID);
	tu_rmrf(dir);
	free(path);
	free(link);
	free(dir);
}
END_TEST

START_TEST(path_trust)
{
	char *dir = tu_mkdtemp(), *sub, *open_dir, *target, *link;

	ck_assert(asprintf(&sub, "%s/sub", dir) > 0);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	chmod(dir, 0755);
	ck_assert(ps_path_trusted(&tu_log, sub));
	chmod(sub, 0775);
	tu_log_reset();
	ck_assert(!ps_path_trusted(&tu_log, sub));
	ck_assert(tu_log_contains("writable by group or others"));
	chmod(sub, 0755);
	chmod(dir, 0757);
	ck_assert(!ps_path_trusted(&tu_log, sub));
	chmod(dir, 0755);
	/* a link to a root-owned directory under a world-writable one: the
	 * target can be swapped, so the link is not trusted either */
	ck_assert(asprintf(&open_dir, "%s/open", dir) > 0);
	ck_assert(asprintf(&target, "%s/open/target", dir) > 0);
	ck_assert(asprintf(&link, "%s/link", dir) > 0);
	ck_assert_int_eq(mkdir(open_dir, 0755), 0);
	ck_assert_int_eq(mkdir(target, 0755), 0);
	ck_assert_int_eq(symlink("open/target", link), 0);
	ck_assert(ps_path_trusted(&tu_log, link));
	chmod(open_dir, 0777);
	tu_log_reset();
	ck_assert(!ps_path_trusted(&tu_log, link));
	ck_assert(tu_log_contains("symbolic link to an untrusted target"));
	chmod(open_dir, 0755);
	ck_assert(!ps_path_trusted(&tu_log, "relative/path"));
	/* /tmp is world-writable (sticky): never a trusted parent */
	ck_assert(!ps_path_trusted(&tu_log, "/tmp"));
	tu_rmrf(dir);
	free(open_dir);
	free(target);
	free(link);
	free(sub);
	free(dir);
}
END_TEST

START_TEST(atomic_write)
{
	char *dir = tu_mkdtemp(), *path, *cmd;
	unsigned char *data;
	size_t len;
	struct ps_file_rules rules = { .max_size = 1024 };
	FILE *p;
	char line[64];

	ck_assert(asprintf(&path, "%s/target", dir) > 0);
	ck_assert_int_eq(ps_write_file_atomic(&tu_log, path, "one", 3, 0640),
	    PS_OK);
	ck_assert_int_eq(ps_write_file_atomic(&tu_log, path, "second", 6, 0640),
	    PS_OK);
	ck_assert_int_eq(ps_read_file(&tu_log, path, &rules, &data, &len), PS_OK);
	ck_assert_str_eq((char *)data, "second");
	free(data);
	/* no temporary file left behind */
	ck_assert(asprintf(&cmd, "ls '%s' | wc -l", dir) > 0);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), p));
	pclose(p);
	ck_assert_int_eq(atoi(line), 1);
	/* a directory that does not exist: error, no success */
	ck_assert_int_ne(ps_write_file_atomic(&tu_log, "/nonexistent/x/y", "z",
	    1, 0644), PS_OK);
	tu_rmrf(dir);
	free(cmd);
	free(path);
	free(dir);
}
END_TEST

START_TEST(log_sanitised)
{
	tu_log_reset();
	ps_log_err(&tu_log, "user %s", "evil\nFAKE LINE");
	ck_assert(tu_log_contains("user evil?FAKE LINE"));
	tu_log_reset();
	tu_log.debug = 0;
	ps_log_debug(&tu_log, "hidden");
	ck_assert(!tu_log_contains("hidden"));
	tu_log.debug = 1;
}
END_TEST

START_TEST(hex_and_wipe)
{
	unsigned char in[3] = { 0x00, 0xab, 0xff };
	char out[7], *secret = strdup("pin123");
	unsigned char buf[8] = "secret!";

	ps_hex_encode(in, sizeof(in), out);
	ck_assert_str_eq(out, "00abff");
	ck_assert(ps_hex_valid("00abff", 6));
	ck_assert(!ps_hex_valid("00ABff", 6));
	ck_assert(!ps_hex_valid("00abf", 6));
	ck_assert(!ps_hex_valid("00abff0", 6));
	ps_wipe(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_int_eq(buf[i], 0);
	ps_free_secret(secret);
	ps_free_secret(NULL);
}
END_TEST

START_TEST(dates)
{
	char d[11];

	ps_format_date(1609459200LL, d);
	ck_assert_str_eq(d, "2021-01-01");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");

	tcase_add_test(tc, user_names);
	tcase_add_test(tc, read_file_rules);
	tcase_add_test(tc, path_trust);
	tcase_add_test(tc, atomic_write);
	tcase_add_test(tc, log_sanitised);
	tcase_add_test(tc, hex_and_wipe);
	tcase_add_test(tc, dates);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
