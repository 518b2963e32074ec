/*
 * check_registry.c - unit tests of the registry interface and its file
 * backend: round trips, user-name and fingerprint validation, trust of
 * the directories, tampered and malformed entries, duplicate keys,
 * concurrent writers and atomicity (no temporary files left behind), the
 * history read back from the audit log, and crashes: interrupted changes
 * settled by the next writer, and writers killed with SIGKILL at random.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cert.h"
#include "config.h"
#include "ps_status.h"
#include "registry.h"
#include "testutil.h"
#include "util.h"

static char *base;	/* trusted scratch directory */
static char *root;	/* registry root inside it */
static const struct ps_reg_change why_test = { "tester", "unit test" };

/* ------------------------------------------------------------ helpers */

/*
 * The registry refuses directories under a world-writable /tmp, so the
 * scratch directory lives under the first trusted one of
 * $PS_TEST_TRUSTED_DIR, the current directory (the build tree under make
 * check) and $HOME.
 */
static char *
trusted_tmpdir(void)
{
	const char *cands[3];
	char cwd[PATH_MAX], *path;
	size_t i;

	cands[0] = getenv("PS_TEST_TRUSTED_DIR");
	cands[1] = getcwd(cwd, sizeof(cwd));
	cands[2] = getenv("HOME");
	for (i = 0; i < 3; i++) {
		if (cands[i] == NULL || !ps_path_trusted(NULL, cands[i]))
			continue;
		path = ps_strdup_printf("%s/ps-unit-reg-XXXXXX", cands[i]);
		if (path == NULL)
			abort();
		if (mkdtemp(path) == NULL || chmod(path, 0755) != 0)
			abort();
		return path;
	}
	fprintf(stderr, "no trusted scratch directory: set "
	    "PS_TEST_TRUSTED_DIR to a directory only root (or you) can "
	    "write\n");
	abort();
}

static void
setup(void)
{
	base = trusted_tmpdir();
	if ((root = ps_strdup_printf("%s/reg", base)) == NULL)
		abort();
	ck_assert_msg(ps_path_trusted(&tu_log, base),
	    "scratch directory %s is not trusted (%s)", base, tu_log_text());
	tu_log_reset();
}

static void
teardown(void)
{
	tu_rmrf(base);
	free(root);
	free(base);
	root = base = NULL;
}

static struct ps_registry *
open_rw(void)
{
	struct ps_registry *reg = tu_registry_open(root, true);

	ck_assert_ptr_nonnull(reg);
	return reg;
}

static struct ps_registry *
open_ro(void)
{
	return tu_registry_open(root, false);
}

static int
add_cert(struct ps_registry *reg, const char *user, const char *crt)
{
	X509 *x = tu_load_cert(crt);
	int r = ps_registry_add(reg, user, x, &why_test);

	X509_free(x);
	return r;
}

/* ROOT/a or ROOT/a/b */
static char *
rpath(const char *a, const char *b)
{
	char *p = ps_strdup_printf("%s/%s%s%s", root, a,
	    b != NULL ? "/" : "", b != NULL ? b : "");

	if (p == NULL)
		abort();
	return p;
}

/* Path of an entry: ROOT/USER/<fp>.pem or ROOT/USER/retired/<fp>.pem. */
static char *
entry_file(const char *user, const char *fp, bool retired)
{
	char *p = ps_strdup_printf("%s/%s/%s%s.pem", root, user,
	    retired ? "retired/" : "", fp);

	if (p == NULL)
		abort();
	return p;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		abort();
	if ((buf = calloc(1, (size_t)n + 1)) == NULL)
		abort();
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		abort();
	fclose(f);
	return buf;
}

static int
count_lines(const char *path)
{
	char *s = slurp(path), *p;
	int n = 0;

	if (s == NULL)
		return -1;
	for (p = s; *p != '\0'; p++)
		if (*p == '\n')
			n++;
	free(s);
	return n;
}

static char *
audit_path(void)
{
	return rpath(".audit.log", NULL);
}

static int
audit_lines(void)
{
	char *p = audit_path();
	int n = count_lines(p);

	free(p);
	return n;
}

static bool
audit_contains(const char *needle)
{
	char *p = audit_path(), *s = slurp(p);
	bool found = s != NULL && strstr(s, needle) != NULL;

	free(s);
	free(p);
	return found;
}

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int
mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(lstat(path, &st), 0);
	return (int)(st.st_mode & 07777);
}

/* A fingerprint-looking name made of one repeated hex digit. */
static void
fake_fp(char c, char fp[PS_FP_HEX_LEN + 1])
{
	memset(fp, c, PS_FP_HEX_LEN);
	fp[PS_FP_HEX_LEN] = '\0';
}

/* ---- tree snapshots: "unchanged" means byte-identical, same modes. */

static char snap_buf[1 << 20];
static size_t snap_used;
static int temp_files;

static int
snap_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
	unsigned int mdlen = 0;
	char *data;
	int n;

	(void)type;
	if (strstr(path + ftw->base, ".tmp.") != NULL)
		temp_files++;
	if (S_ISREG(st->st_mode)) {
		if ((data = slurp(path)) == NULL)
			abort();
		if (!EVP_Digest(data, (size_t)st->st_size, md, &mdlen,
		    EVP_sha256(), NULL))
			abort();
		ps_hex_encode(md, mdlen, hex);
		free(data);
	}
	n = snprintf(snap_buf + snap_used, sizeof(snap_buf) - snap_used,
	    "%s %o %s\n", path, (unsigned)st->st_mode, hex);
	if (n < 0 || (size_t)n >= sizeof(snap_buf) - snap_used)
		abort();
	snap_used += (size_t)n;
	return 0;
}

static char *
snapshot(void)
{
	char *s;

	snap_used = 0;
	snap_buf[0] = '\0';
	temp_files = 0;
	if (nftw(root, snap_visit, 16, FTW_PHYS) != 0)
		abort();
	if ((s = strdup(snap_buf)) == NULL)
		abort();
	return s;
}

static void
assert_no_temp_files(void)
{
	free(snapshot());
	ck_assert_int_eq(temp_files, 0);
}

/* ------------------------------------------------------------ open */

START_TEST(test_open_bad_root)
{
	struct ps_registry *reg = (struct ps_registry *)1;

	ck_assert_int_eq(ps_registry_file_open("relative/reg", &tu_log, true,
	    &reg), PS_ERR_INVALID);
	ck_assert_ptr_null(reg);
	ck_assert(tu_log_contains("not an absolute path"));
	ck_assert(!exists("relative"));
	tu_log_reset();
	ck_assert_int_eq(ps_registry_file_open(NULL, &tu_log, false, &reg),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("not an absolute path"));
}
END_TEST

START_TEST(test_open_backends)
{
	struct ps_config cfg;
	struct ps_registry *reg = NULL;
	struct ps_reg_list list;

	memset(&cfg, 0, sizeof(cfg));
	cfg.registry_backend = (char *)"ldap";
	cfg.registry_dir = root;
	ck_assert_int_eq(ps_registry_open(&cfg, &tu_log, &reg),
	    PS_ERR_INVALID);
	ck_assert_ptr_null(reg);
	ck_assert(tu_log_contains("LDAP backend not built"));

	tu_log_reset();
	cfg.registry_backend = (char *)"nis";
	ck_assert_int_eq(ps_registry_open(&cfg, &tu_log, &reg),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("unknown backend \"nis\""));

	/* "file" opens read-only and never creates the root */
	tu_log_reset();
	cfg.registry_backend = (char *)"file";
	ck_assert_int_eq(ps_registry_open(&cfg, &tu_log, &reg), PS_OK);
	ck_assert_str_eq(reg->ops->name, "file");
	/* a missing registry is an error, not "alice has no key" */
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_IO);
	ck_assert(tu_log_contains("does not exist"));
	ck_assert(!exists(root));
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_ERR_INVALID);
	ck_assert(tu_log_contains("read-only"));
	ck_assert(!exists(root));
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_open_creates_root)
{
	struct ps_registry *reg;
	char *deep;

	free(root);
	if ((root = ps_strdup_printf("%s/a/b/reg/", base)) == NULL)
		abort();
	reg = open_rw();
	root[strlen(root) - 1] = '\0';
	ck_assert(exists(root));
	ck_assert_int_eq(mode_of(root), 0755);
	deep = ps_strdup_printf("%s/a", base);
	ck_assert_int_eq(mode_of(deep), 0755);
	free(deep);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_open_untrusted_for_writing)
{
	struct ps_registry *reg = (struct ps_registry *)1;

	ck_assert_int_eq(mkdir(root, 0755), 0);
	ck_assert_int_eq(chmod(root, 0775), 0);
	ck_assert_int_eq(ps_registry_file_open(root, &tu_log, true, &reg),
	    PS_ERR_UNSAFE);
	ck_assert_ptr_null(reg);
	ck_assert(tu_log_contains(root));
	ck_assert(tu_log_contains("writable by group or others"));
}
END_TEST

/* ------------------------------------------------------------ round trips */

START_TEST(test_add_lookup)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fp[PS_FP_HEX_LEN + 1], *path, *text, **users = NULL, *owner;
	X509 *x = tu_load_cert("alice.crt");
	time_t t0 = time(NULL), t1;
	size_t n = 0;

	ck_assert_int_eq(ps_cert_fingerprint(x, fp), PS_OK);
	ck_assert_int_eq(ps_registry_add(reg, "alice", x, &why_test), PS_OK);
	t1 = time(NULL);

	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert_str_eq(list.entries[0].fingerprint, fp);
	ck_assert_int_eq(list.entries[0].state, PS_KEY_ACTIVE);
	ck_assert_str_eq(list.entries[0].superseded_by, "");
	ck_assert(list.entries[0].enrolled >= t0 &&
	    list.entries[0].enrolled <= t1);
	ck_assert_int_eq(X509_cmp(list.entries[0].cert, x), 0);
	ps_reg_list_free(&list);
	ck_assert_ptr_null(list.entries);
	ck_assert_uint_eq(list.count, 0);

	/* the layout admins and the OpenVPN plugin rely on */
	path = entry_file("alice", fp, false);
	ck_assert_int_eq(mode_of(path), 0644);
	text = slurp(path);
	ck_assert_ptr_eq(strstr(text, "State: active\nEnrolled: "), text);
	ck_assert_ptr_nonnull(strstr(text, "\nEmail: alice@"));
	ck_assert_ptr_nonnull(strstr(text, "\nSubject: "));
	ck_assert_ptr_nonnull(strstr(text, "\nNot-After: 20"));
	ck_assert_ptr_nonnull(strstr(text, "\n-----BEGIN CERTIFICATE-----\n"));
	free(text);
	free(path);
	path = rpath(".by-key", fp);
	text = slurp(path);
	ck_assert_str_eq(text, "alice\n");
	free(text);
	free(path);
	path = rpath("alice", NULL);
	ck_assert_int_eq(mode_of(path), 0755);
	free(path);

	ck_assert_int_eq(ps_registry_find_key(reg, fp, &owner), PS_OK);
	ck_assert_str_eq(owner, "alice");
	free(owner);
	ck_assert_int_eq(ps_registry_list_users(reg, &users, &n), PS_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(users[0], "alice");
	ps_user_names_free(users, n);

	ck_assert_int_eq(audit_lines(), 1);
	text = ps_strdup_printf("actor=tester action=enroll user=alice key=%s "
	    "reason=unit test\n", fp);
	ck_assert(audit_contains(text));
	free(text);
	assert_no_temp_files();
	X509_free(x);
	ps_registry_close(reg);

	/* a read-only handle (the module's) sees the same */
	reg = open_ro();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ps_reg_list_free(&list);
	ck_assert_int_eq(ps_registry_lookup_user(reg, "bob", &list),
	    PS_ERR_NOT_FOUND);
	ck_assert_ptr_null(list.entries);
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_supersede_and_reactivate)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fp1[PS_FP_HEX_LEN + 1], fp2[PS_FP_HEX_LEN + 1];
	char fp3[PS_FP_HEX_LEN + 1], *path, *text;

	tu_fp_of("alice.crt", fp1);
	tu_fp_of("alice2.crt", fp2);
	tu_fp_of("carol.crt", fp3);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "alice", "alice2.crt"), PS_OK);

	/* the successor must be registered for the same user */
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_SUPERSEDED, fp3, &why_test), PS_ERR_NOT_FOUND);
	ck_assert(tu_log_contains("is not registered for user alice"));
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_SUPERSEDED, fp1, &why_test), PS_ERR_INVALID);
	ck_assert(tu_log_contains("cannot supersede itself"));
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_SUPERSEDED, NULL, &why_test), PS_ERR_INVALID);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    (enum ps_key_state)42, NULL, &why_test), PS_ERR_INVALID);
	ck_assert(tu_log_contains("unknown key state 42"));
	ck_assert_int_eq(audit_lines(), 2);

	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_SUPERSEDED, fp2, &why_test), PS_OK);
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 2);
	/* active first */
	ck_assert_str_eq(list.entries[0].fingerprint, fp2);
	ck_assert_int_eq(list.entries[0].state, PS_KEY_ACTIVE);
	ck_assert_str_eq(list.entries[1].fingerprint, fp1);
	ck_assert_int_eq(list.entries[1].state, PS_KEY_SUPERSEDED);
	ck_assert_str_eq(list.entries[1].superseded_by, fp2);
	ps_reg_list_free(&list);
	path = entry_file("alice", fp1, false);
	text = slurp(path);
	ck_assert_ptr_eq(strstr(text, "State: superseded\n"), text);
	ck_assert_ptr_nonnull(strstr(text, fp2));
	free(text);
	ck_assert_int_eq(audit_lines(), 3);
	ck_assert(audit_contains("action=supersede user=alice"));

	/* back to active: Superseded-By is dropped */
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_ACTIVE, NULL, &why_test), PS_OK);
	text = slurp(path);
	ck_assert_ptr_eq(strstr(text, "State: active\n"), text);
	ck_assert_ptr_null(strstr(text, "Superseded-By"));
	free(text);
	free(path);
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_int_eq(list.entries[0].state, PS_KEY_ACTIVE);
	ck_assert_int_eq(list.entries[1].state, PS_KEY_ACTIVE);
	ck_assert_str_eq(list.entries[1].superseded_by, "");
	ps_reg_list_free(&list);
	ck_assert_int_eq(audit_lines(), 4);
	ck_assert(audit_contains("action=activate user=alice"));

	/* activating an active key changes nothing and audits nothing */
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_ACTIVE, NULL, &why_test), PS_OK);
	ck_assert_int_eq(audit_lines(), 4);

	/* a key the user does not have */
	tu_log_reset();
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp3,
	    PS_KEY_RETIRED, NULL, &why_test), PS_ERR_NOT_FOUND);
	ck_assert(tu_log_contains("user alice has no key"));
	ck_assert_int_eq(ps_registry_set_state(reg, "bob", fp1,
	    PS_KEY_RETIRED, NULL, &why_test), PS_ERR_NOT_FOUND);
	assert_no_temp_files();
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_retire)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	struct ps_reg_change why = { "admin", "card lost\nforged line" };
	char fp1[PS_FP_HEX_LEN + 1], fp2[PS_FP_HEX_LEN + 1];
	char *active, *retired, *text, *owner = NULL, *snap;

	tu_fp_of("alice.crt", fp1);
	tu_fp_of("alice2.crt", fp2);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "alice", "alice2.crt"), PS_OK);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_RETIRED, NULL, &why), PS_OK);

	active = entry_file("alice", fp1, false);
	retired = entry_file("alice", fp1, true);
	ck_assert(!exists(active));
	ck_assert_int_eq(mode_of(retired), 0644);
	text = slurp(retired);
	ck_assert_ptr_eq(strstr(text, "State: retired\n"), text);
	ck_assert_ptr_nonnull(strstr(text, "\nRetired: "));
	ck_assert_ptr_nonnull(strstr(text, "\nReason: card lost?forged line\n"));
	free(text);

	/* only the other key is usable */
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert_str_eq(list.entries[0].fingerprint, fp2);
	ps_reg_list_free(&list);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_find_key(reg, fp1, &owner),
	    PS_ERR_NOT_FOUND);
	ck_assert_ptr_null(owner);
	ck_assert(tu_log_contains("not usable"));

	/* the audit line carries the reason on one line */
	ck_assert_int_eq(audit_lines(), 3);
	ck_assert(audit_contains("actor=admin action=retire user=alice"));
	ck_assert(audit_contains("reason=card lost?forged line\n"));

	/* a retired key cannot come back, for anyone */
	snap = snapshot();
	tu_log_reset();
	ck_assert_int_eq(add_cert(reg, "bob", "alice.crt"), PS_ERR_EXISTS);
	ck_assert(tu_log_contains("already registered to user alice"));
	tu_log_reset();
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_ERR_EXISTS);
	ck_assert(tu_log_contains("(retired)"));
	tu_log_reset();
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_RETIRED, NULL, &why), PS_ERR_NOT_FOUND);
	ck_assert(tu_log_contains("is retired"));
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp1,
	    PS_KEY_ACTIVE, NULL, &why), PS_ERR_NOT_FOUND);
	text = snapshot();
	ck_assert_str_eq(text, snap);
	free(text);
	free(snap);

	/* retiring the last key leaves the user with nothing usable */
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp2,
	    PS_KEY_RETIRED, NULL, &why_test), PS_OK);
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_NOT_FOUND);
	assert_no_temp_files();
	free(active);
	free(retired);
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_remove)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fp1[PS_FP_HEX_LEN + 1], fp2[PS_FP_HEX_LEN + 1];
	char *path, *owner = NULL, **users = NULL;
	size_t n = 0;

	tu_fp_of("alice.crt", fp1);
	tu_fp_of("bob.crt", fp2);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_OK);
	ck_assert_int_eq(ps_registry_remove(reg, "alice", fp1, &why_test),
	    PS_OK);
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_NOT_FOUND);
	ck_assert_int_eq(ps_registry_find_key(reg, fp1, &owner),
	    PS_ERR_NOT_FOUND);
	path = rpath("alice", NULL);
	ck_assert(!exists(path));	/* empty user directory pruned */
	free(path);
	path = rpath(".by-key", fp1);
	ck_assert(!exists(path));
	free(path);
	ck_assert_int_eq(ps_registry_list_users(reg, &users, &n), PS_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(users[0], "bob");
	ps_user_names_free(users, n);
	ck_assert(audit_contains("action=remove user=alice key="));
	ck_assert_int_eq(audit_lines(), 3);

	/* removing again, or someone else's key */
	tu_log_reset();
	ck_assert_int_eq(ps_registry_remove(reg, "alice", fp1, &why_test),
	    PS_ERR_NOT_FOUND);
	ck_assert(tu_log_contains("user alice has no key"));
	tu_log_reset();
	ck_assert_int_eq(ps_registry_remove(reg, "alice", fp2, &why_test),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("indexed to user bob"));
	ck_assert_int_eq(ps_registry_find_key(reg, fp2, &owner), PS_OK);
	ck_assert_str_eq(owner, "bob");
	free(owner);
	ck_assert_int_eq(audit_lines(), 3);

	/* the removed key may now be registered for someone else */
	ck_assert_int_eq(add_cert(reg, "carol", "alice.crt"), PS_OK);
	ck_assert_int_eq(ps_registry_find_key(reg, fp1, &owner), PS_OK);
	ck_assert_str_eq(owner, "carol");
	free(owner);

	/* a retired entry can be removed too, freeing its key */
	ck_assert_int_eq(ps_registry_set_state(reg, "carol", fp1,
	    PS_KEY_RETIRED, NULL, &why_test), PS_OK);
	ck_assert_int_eq(ps_registry_remove(reg, "carol", fp1, &why_test),
	    PS_OK);
	path = entry_file("carol", fp1, true);
	ck_assert(!exists(path));
	free(path);
	ck_assert_int_eq(add_cert(reg, "dave", "alice.crt"), PS_OK);
	assert_no_temp_files();
	ps_registry_close(reg);
}
END_TEST

/* ------------------------------------------------------------ validation */

static const char *const bad_users[] = {
	"../x", ".x", "a/b", "a\nb", "", "-x", "..", ".", "/etc",
	"al ice", "al\tice", "alice\r", "x$y", "caf\xc3\xa9",
};

START_TEST(test_bad_user_names)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { (struct ps_reg_entry *)1, 7 };
	char fp[PS_FP_HEX_LEN + 1], *snap, *now, longname[PS_USER_NAME_MAX + 1];
	int nbad = (int)(sizeof(bad_users) / sizeof(bad_users[0]));
	const char *user = NULL;	/* the last round: NULL */
	X509 *x = tu_load_cert("alice.crt");

	tu_fp_of("alice.crt", fp);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	snap = snapshot();
	if (_i < nbad) {
		user = bad_users[_i];
	} else if (_i == nbad) {
		memset(longname, 'a', PS_USER_NAME_MAX);
		longname[PS_USER_NAME_MAX] = '\0';
		user = longname;
	}

	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, user, &list),
	    PS_ERR_INVALID);
	ck_assert_ptr_null(list.entries);
	ck_assert_uint_eq(list.count, 0);
	ck_assert(tu_log_contains("invalid user name"));
	ck_assert_int_eq(ps_registry_add(reg, user, x, &why_test),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_registry_set_state(reg, user, fp, PS_KEY_RETIRED,
	    NULL, &why_test), PS_ERR_INVALID);
	ck_assert_int_eq(ps_registry_remove(reg, user, fp, &why_test),
	    PS_ERR_INVALID);
	/* the backend checks too, whoever calls it */
	ck_assert_int_eq(reg->ops->lookup_user(reg, user, &list),
	    PS_ERR_INVALID);
	ck_assert_int_eq(reg->ops->add(reg, user, x, &why_test),
	    PS_ERR_INVALID);
	now = snapshot();
	ck_assert_str_eq(now, snap);
	free(now);
	free(snap);
	X509_free(x);
	ps_registry_close(reg);
}
END_TEST

static const char *const bad_fps[] = {
	"", "abc",
	"ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
	"../../../../../../../../../../../../../../../../../../etc/passwd",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
};

START_TEST(test_bad_fingerprints)
{
	struct ps_registry *reg = open_rw();
	char fp[PS_FP_HEX_LEN + 1], *owner = (char *)1, *snap, *now;
	const char *bad = bad_fps[_i];

	tu_fp_of("alice.crt", fp);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "alice", "alice2.crt"), PS_OK);
	snap = snapshot();
	tu_log_reset();
	ck_assert_int_eq(ps_registry_find_key(reg, bad, &owner),
	    PS_ERR_INVALID);
	ck_assert_ptr_null(owner);
	ck_assert(tu_log_contains("not a key fingerprint"));
	ck_assert_int_eq(ps_registry_remove(reg, "alice", bad, &why_test),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", bad,
	    PS_KEY_RETIRED, NULL, &why_test), PS_ERR_INVALID);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp,
	    PS_KEY_SUPERSEDED, bad, &why_test), PS_ERR_INVALID);
	ck_assert_int_eq(reg->ops->find_key(reg, bad, &owner), PS_ERR_INVALID);
	ck_assert_int_eq(reg->ops->remove(reg, "alice", bad, &why_test),
	    PS_ERR_INVALID);
	now = snapshot();
	ck_assert_str_eq(now, snap);
	free(now);
	free(snap);
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_change_needs_actor)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_change noactor = { NULL, "x" }, empty = { "", NULL };
	X509 *x = tu_load_cert("alice.crt");
	char fp[PS_FP_HEX_LEN + 1];

	tu_fp_of("alice.crt", fp);
	ck_assert_int_eq(ps_registry_add(reg, "alice", x, NULL),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("needs an actor"));
	ck_assert_int_eq(ps_registry_add(reg, "alice", x, &noactor),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_registry_add(reg, "alice", x, &empty),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_registry_add(reg, "alice", NULL, &why_test),
	    PS_ERR_INVALID);
	ck_assert(tu_log_contains("no certificate"));
	ck_assert_int_eq(ps_registry_add(reg, "alice", x, &why_test), PS_OK);
	ck_assert_int_eq(ps_registry_remove(reg, "alice", fp, NULL),
	    PS_ERR_INVALID);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp,
	    PS_KEY_RETIRED, NULL, &noactor), PS_ERR_INVALID);
	ck_assert_int_eq(audit_lines(), 1);
	X509_free(x);
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_audit_sanitised)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_change why = { "evil\nactor x", "line1\r\nline2\x1b[31m" };
	X509 *x = tu_load_cert("bob.crt");

	ck_assert_int_eq(ps_registry_add(reg, "bob", x, &why), PS_OK);
	ck_assert_int_eq(audit_lines(), 1);
	ck_assert(audit_contains(" actor=evil?actor_x action=enroll "));
	ck_assert(audit_contains("reason=line1??line2?[31m\n"));
	X509_free(x);
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_null_safety)
{
	ck_assert_str_eq(ps_key_state_name(PS_KEY_ACTIVE), "active");
	ck_assert_str_eq(ps_key_state_name(PS_KEY_SUPERSEDED), "superseded");
	ck_assert_str_eq(ps_key_state_name(PS_KEY_RETIRED), "retired");
	ck_assert_str_eq(ps_key_state_name((enum ps_key_state)99), "unknown");
	ps_reg_list_free(NULL);
	ps_user_names_free(NULL, 3);
	ps_registry_close(NULL);
	ck_assert_int_eq(ps_registry_lookup_user(NULL, "alice",
	    &(struct ps_reg_list){ NULL, 0 }), PS_ERR_INTERNAL);
}
END_TEST

/* ------------------------------------------------------------ trust */

START_TEST(test_untrusted_root)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fp[PS_FP_HEX_LEN + 1], *owner = NULL, **users = NULL;
	size_t n = 0;

	tu_fp_of("alice.crt", fp);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(chmod(root, 0777), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_UNSAFE);
	ck_assert_ptr_null(list.entries);
	ck_assert(tu_log_contains(root));
	ck_assert(tu_log_contains("writable by group or others"));
	ck_assert_int_eq(ps_registry_find_key(reg, fp, &owner), PS_ERR_UNSAFE);
	ck_assert_int_eq(ps_registry_list_users(reg, &users, &n),
	    PS_ERR_UNSAFE);
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_ERR_UNSAFE);
	ck_assert_int_eq(ps_registry_remove(reg, "alice", fp, &why_test),
	    PS_ERR_UNSAFE);
	ck_assert_int_eq(audit_lines(), 1);
	ck_assert_int_eq(chmod(root, 0755), 0);
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ps_reg_list_free(&list);

	/* a parent directory counts too */
	ck_assert_int_eq(chmod(base, 0775), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_UNSAFE);
	ck_assert(tu_log_contains(base));
	ck_assert_int_eq(chmod(base, 0755), 0);
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_untrusted_user_dir)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char *udir = rpath("alice", NULL), *target;

	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(chmod(udir, 0757), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_UNSAFE);
	ck_assert(tu_log_contains(udir));
	ck_assert(tu_log_contains("writable by group or others"));
	ck_assert_int_eq(add_cert(reg, "alice", "alice2.crt"), PS_ERR_UNSAFE);
	ck_assert_int_eq(chmod(udir, 0755), 0);

	/* a user directory that is a symlink elsewhere is refused */
	target = ps_strdup_printf("%s/elsewhere", base);
	ck_assert_int_eq(rename(udir, target), 0);
	ck_assert_int_eq(symlink(target, udir), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_UNSAFE);
	ck_assert(tu_log_contains("symbolic link"));
	free(target);
	free(udir);
	ps_registry_close(reg);
}
END_TEST

/* An untrusted key index fails the lookup instead of hiding entries. */
START_TEST(test_untrusted_index_dir)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char *idx = rpath(".by-key", NULL), fp[PS_FP_HEX_LEN + 1], *owner;

	tu_fp_of("alice.crt", fp);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(chmod(idx, 0777), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_UNSAFE);
	ck_assert(tu_log_contains(idx));
	ck_assert_int_eq(ps_registry_find_key(reg, fp, &owner),
	    PS_ERR_UNSAFE);
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_ERR_UNSAFE);
	ck_assert_int_eq(audit_lines(), 1);
	free(idx);
	ps_registry_close(reg);
}
END_TEST

/* The audit log must be a regular file: a FIFO would hang every write. */
START_TEST(test_audit_log_not_regular)
{
	struct ps_registry *reg = open_rw();
	char *audit = audit_path();

	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(unlink(audit), 0);
	ck_assert_int_eq(mkfifo(audit, 0600), 0);
	tu_log_reset();
	/* the change is made, but the caller learns that it is unaudited */
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_ERR_IO);
	ck_assert(tu_log_contains("not in the audit log"));
	free(audit);
	ps_registry_close(reg);
}
END_TEST

/* An entry file writable by group is not believed (skipped, logged). */
START_TEST(test_untrusted_entry_file)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fp[PS_FP_HEX_LEN + 1], *path;

	tu_fp_of("alice.crt", fp);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	path = entry_file("alice", fp, false);
	ck_assert_int_eq(chmod(path, 0664), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_NOT_FOUND);
	ck_assert(tu_log_contains(path));
	ck_assert(tu_log_contains("writable by group"));
	free(path);
	ps_registry_close(reg);
}
END_TEST

/* ------------------------------------------------------------ tampering */

START_TEST(test_tampered_entry)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fpa[PS_FP_HEX_LEN + 1], fpc[PS_FP_HEX_LEN + 1];
	char fp2[PS_FP_HEX_LEN + 1], *from, *to;

	tu_fp_of("alice.crt", fpa);
	tu_fp_of("alice2.crt", fp2);
	tu_fp_of("carol.crt", fpc);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	from = entry_file("alice", fpa, false);
	to = entry_file("alice", fpc, false);
	ck_assert_int_eq(rename(from, to), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_NOT_FOUND);
	ck_assert(tu_log_contains(to));
	ck_assert(tu_log_contains("does not match the file name"));

	/* with a good entry beside it, only the good one is returned */
	ck_assert_int_eq(add_cert(reg, "alice", "alice2.crt"), PS_OK);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert_str_eq(list.entries[0].fingerprint, fp2);
	ck_assert(tu_log_contains("does not match the file name"));
	ps_reg_list_free(&list);
	/* and it cannot be retired or superseded either */
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fpc,
	    PS_KEY_RETIRED, NULL, &why_test), PS_ERR_INVALID);
	/* but an admin can remove the bad file */
	ck_assert_int_eq(ps_registry_remove(reg, "alice", fpc, &why_test),
	    PS_OK);
	ck_assert(!exists(to));
	free(from);
	free(to);
	ps_registry_close(reg);
}
END_TEST

/* An entry copied into another user's directory keeps its index owner. */
START_TEST(test_entry_copied_to_other_user)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fpa[PS_FP_HEX_LEN + 1], *from, *to, *text, *idx, *owner = NULL;

	tu_fp_of("alice.crt", fpa);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "mallory", "bob.crt"), PS_OK);
	from = entry_file("alice", fpa, false);
	to = entry_file("mallory", fpa, false);
	text = slurp(from);
	tu_write_file(to, text, strlen(text), 0644);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "mallory", &list),
	    PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert_str_ne(list.entries[0].fingerprint, fpa);
	ck_assert(tu_log_contains("indexed to user alice, not mallory"));
	ps_reg_list_free(&list);

	/* a corrupt index entry makes the entry unusable, not anyone's */
	idx = rpath(".by-key", fpa);
	tu_write_file(idx, "../x\n", 5, 0644);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list),
	    PS_ERR_NOT_FOUND);
	ck_assert(tu_log_contains("is malformed"));
	ck_assert_int_eq(ps_registry_find_key(reg, fpa, &owner),
	    PS_ERR_INVALID);
	ck_assert_ptr_null(owner);
	tu_write_file(idx, "alice", 5, 0644);
	ck_assert_int_eq(ps_registry_find_key(reg, fpa, &owner),
	    PS_ERR_INVALID);
	tu_write_file(idx, "alice\nbob\n", 10, 0644);
	ck_assert_int_eq(ps_registry_find_key(reg, fpa, &owner),
	    PS_ERR_INVALID);

	/* a missing index entry is a warning only */
	ck_assert_int_eq(unlink(idx), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert(tu_log_contains("has no .by-key entry"));
	ps_reg_list_free(&list);
	ck_assert_int_eq(ps_registry_find_key(reg, fpa, &owner),
	    PS_ERR_NOT_FOUND);
	/* and add refuses a key whose file is there even without index */
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_ERR_EXISTS);
	free(idx);
	free(text);
	free(from);
	free(to);
	ps_registry_close(reg);
}
END_TEST

/* ------------------------------------------------------------ malformed */

/* Build entry texts around a real certificate. */
static char *
pem_of(const char *crt)
{
	char *path = tu_fixture(crt), *s = slurp(path);

	free(path);
	if (s == NULL)
		abort();
	return s;
}

struct bad_entry {
	const char *name;
	const char *headers;	/* before the PEM of bob.crt; NULL: raw */
	const char *raw;	/* whole file when headers == NULL */
	const char *why;	/* expected in the log */
};

static const struct bad_entry bad_entries[] = {
	{ "garbage", NULL, "\x01\x02garbage\xff\n", "control character" },
	{ "empty", NULL, "", "no certificate" },
	{ "headers only", NULL, "State: active\nEnrolled: 1\n",
	    "no certificate" },
	{ "no newline", NULL, "State: active", "no certificate" },
	{ "bad state", "State: enabled\n", NULL, "bad header value" },
	{ "no state", "Enrolled: 5\n", NULL, "no State header" },
	{ "dup state", "State: active\nState: active\n", NULL,
	    "repeated header" },
	{ "neg time", "State: active\nEnrolled: -5\n", NULL,
	    "bad header value" },
	{ "junk time", "State: active\nEnrolled: 12abc\n", NULL,
	    "bad header value" },
	{ "huge time", "State: active\nEnrolled: 99999999999999999999\n",
	    NULL, "bad header value" },
	{ "bad successor", "State: superseded\nSuperseded-By: xyz\n", NULL,
	    "bad header value" },
	{ "active superseded", "State: active\nSuperseded-By: "
	    "0000000000000000000000000000000000000000000000000000000000000000\n",
	    NULL, "active entry names a superseding key" },
	{ "retired in place", "State: retired\n", NULL,
	    "retired entry outside retired/" },
	{ "crlf", "State: active\r\n", NULL, "control character" },
	{ "no colon", "State: active\nhello world\n", NULL,
	    "not a \"Key: value\" header" },
	{ "no space", "State:active\n", NULL, "not a \"Key: value\" header" },
	{ "blank line", "State: active\n\n", NULL,
	    "not a \"Key: value\" header" },
	{ "truncated pem", NULL, "State: active\n-----BEGIN CERTIFICATE-----\n"
	    "MIICyzCCAnGgAwIBAgICEAAwCgYIKoZIzj0EAwIwKjEXMBUGA1UEAwwOUFNUZXN0\n",
	    "certificate does not parse" },
	{ "bad base64", NULL, "State: active\n-----BEGIN CERTIFICATE-----\n"
	    "!!!!\n-----END CERTIFICATE-----\n", "certificate does not parse" },
	{ "private key", NULL, "State: active\n-----BEGIN PRIVATE KEY-----\n"
	    "MC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
	    "PEM block is not a CERTIFICATE" },
	{ "encrypted pem", NULL, "State: active\n-----BEGIN CERTIFICATE-----\n"
	    "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
	    "00000000000000000000000000000000\n\nAAAA\n"
	    "-----END CERTIFICATE-----\n", "certificate does not parse" },
	{ "trailing data", "State: active\n", NULL,
	    "data after the certificate" },
};

static char *
bad_entry_text(const struct bad_entry *b)
{
	char *pem, *text;

	if (b->headers == NULL)
		return strdup(b->raw);
	pem = pem_of("bob.crt");
	text = ps_strdup_printf("%s%s%s", b->headers, pem,
	    strcmp(b->name, "trailing data") == 0 ? "junk\n" : "");
	free(pem);
	return text;
}

START_TEST(test_malformed_entry)
{
	const struct bad_entry *b = &bad_entries[_i];
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fpa[PS_FP_HEX_LEN + 1], fpb[PS_FP_HEX_LEN + 1], *path, *text;

	tu_fp_of("alice.crt", fpa);
	tu_fp_of("bob.crt", fpb);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	/* named after bob's key so that only the content is wrong */
	path = entry_file("alice", fpb, false);
	text = bad_entry_text(b);
	tu_write_file(path, text, strlen(text), 0644);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert_str_eq(list.entries[0].fingerprint, fpa);
	ck_assert_msg(tu_log_contains(path) && tu_log_contains(b->why),
	    "%s: log was: %s", b->name, tu_log_text());
	ps_reg_list_free(&list);
	free(text);
	free(path);
	ps_registry_close(reg);
}
END_TEST

/* Other shapes of bad files in a user directory. */
START_TEST(test_odd_files)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fpa[PS_FP_HEX_LEN + 1], fake[PS_FP_HEX_LEN + 1], *path, *big;
	size_t biglen = 70 * 1024;

	tu_fp_of("alice.crt", fpa);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);

	/* too large */
	fake_fp('1', fake);
	path = entry_file("alice", fake, false);
	big = malloc(biglen);
	memset(big, 'A', biglen);
	tu_write_file(path, big, biglen, 0644);
	free(big);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert(tu_log_contains(path));
	ck_assert(tu_log_contains("too large"));
	ps_reg_list_free(&list);
	free(path);

	/* a symlink to a good entry elsewhere */
	fake_fp('2', fake);
	path = entry_file("alice", fake, false);
	big = entry_file("alice", fpa, false);
	ck_assert_int_eq(symlink(big, path), 0);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert(tu_log_contains("symbolic link"));
	ps_reg_list_free(&list);
	free(big);
	free(path);

	/* a directory with an entry's name */
	fake_fp('3', fake);
	path = entry_file("alice", fake, false);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	free(path);

	/* files that are not entries are ignored without complaint */
	path = rpath("alice", "README");
	tu_write_file(path, "hello\n", 6, 0644);
	free(path);
	path = rpath("alice", "ABCDEF.pem");
	tu_write_file(path, "x", 1, 0644);
	free(path);
	path = ps_strdup_printf("%s/alice/%s.pem.tmp.abcdef", root, fpa);
	tu_write_file(path, "x", 1, 0644);
	free(path);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert_str_eq(list.entries[0].fingerprint, fpa);
	ps_reg_list_free(&list);
	ps_registry_close(reg);
}
END_TEST

/* A bad entry in retired/ never becomes usable. */
START_TEST(test_retired_dir_ignored_by_lookup)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fpb[PS_FP_HEX_LEN + 1], *path, *pem, *text;

	tu_fp_of("bob.crt", fpb);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	path = rpath("alice", "retired");
	ck_assert_int_eq(mkdir(path, 0755), 0);
	free(path);
	path = entry_file("alice", fpb, true);
	pem = pem_of("bob.crt");
	text = ps_strdup_printf("State: active\n%s", pem);
	tu_write_file(path, text, strlen(text), 0644);
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ps_reg_list_free(&list);
	free(text);
	free(pem);
	free(path);
	ps_registry_close(reg);
}
END_TEST

/* ------------------------------------------------------------ duplicates */

START_TEST(test_duplicate_key)
{
	struct ps_registry *reg = open_rw();
	char *snap, *now, *path;
	char fp[PS_FP_HEX_LEN + 1];
	X509 *der = NULL;
	STACK_OF(X509) *sk = NULL;
	char *p12 = tu_fixture("alice.pfx");

	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	snap = snapshot();
	tu_log_reset();
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_ERR_EXISTS);
	ck_assert(tu_log_contains("already registered to user alice"));
	tu_log_reset();
	ck_assert_int_eq(add_cert(reg, "bob", "alice.crt"), PS_ERR_EXISTS);
	ck_assert(tu_log_contains("already registered to user alice"));
	/* the same key from another file format is the same key */
	ck_assert_int_eq(ps_cert_load_file(&tu_log, p12, tu_password(), &sk),
	    PS_OK);
	der = sk_X509_value(sk, 0);
	ck_assert_int_eq(ps_registry_add(reg, "bob", der, &why_test),
	    PS_ERR_EXISTS);
	now = snapshot();
	ck_assert_str_eq(now, snap);
	ck_assert_int_eq(audit_lines(), 1);
	sk_X509_pop_free(sk, X509_free);
	free(p12);
	free(now);
	free(snap);

	/* an index entry left by an interrupted add for the same user is
	 * repaired; for another user it blocks the key */
	tu_fp_of("bob.crt", fp);
	path = rpath(".by-key", fp);
	tu_write_file(path, "bob\n", 4, 0644);
	tu_log_reset();
	ck_assert_int_eq(add_cert(reg, "carol", "bob.crt"), PS_ERR_EXISTS);
	ck_assert(tu_log_contains("already registered to user bob"));
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_OK);
	free(path);
	ps_registry_close(reg);
}
END_TEST

/* ------------------------------------------------------------ concurrency */

static const char *const par_certs[8] = {
	"alice.crt", "bob.crt", "carol.crt", "alice2.crt",
	"erin.crt", "frank.crt", "gina.crt", "henry.crt",
};

START_TEST(test_parallel_writers)
{
	struct ps_reg_list list = { NULL, 0 };
	struct ps_registry *reg;
	char **users = NULL, user[16], fp[PS_FP_HEX_LEN + 1];
	pid_t pids[8];
	size_t n = 0;
	int i, status;

	for (i = 0; i < 8; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			struct ps_registry *r = NULL;
			int rc;

			snprintf(user, sizeof(user), "user%d", i);
			if (ps_registry_file_open(root, &tu_log, true, &r) !=
			    PS_OK)
				_exit(10);
			rc = add_cert(r, user, par_certs[i]);
			ps_registry_close(r);
			_exit(rc == PS_OK ? 0 : 20 + rc);
		}
	}
	for (i = 0; i < 8; i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status));
		ck_assert_int_eq(WEXITSTATUS(status), 0);
	}
	reg = open_ro();
	ck_assert_int_eq(ps_registry_list_users(reg, &users, &n), PS_OK);
	ck_assert_uint_eq(n, 8);
	for (i = 0; i < 8; i++) {
		char *owner = NULL;

		snprintf(user, sizeof(user), "user%d", i);
		ck_assert_str_eq(users[i], user);
		ck_assert_int_eq(ps_registry_lookup_user(reg, user, &list),
		    PS_OK);
		ck_assert_uint_eq(list.count, 1);
		tu_fp_of(par_certs[i], fp);
		ck_assert_str_eq(list.entries[0].fingerprint, fp);
		ps_reg_list_free(&list);
		ck_assert_int_eq(ps_registry_find_key(reg, fp, &owner), PS_OK);
		ck_assert_str_eq(owner, user);
		free(owner);
	}
	ps_user_names_free(users, n);
	ck_assert_int_eq(audit_lines(), 8);
	assert_no_temp_files();
	ps_registry_close(reg);
}
END_TEST

/* Many writers racing for the SAME key: exactly one wins. */
START_TEST(test_parallel_same_key)
{
	pid_t pids[6];
	int i, status, won = 0, exists_rc = 0;

	for (i = 0; i < 6; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			struct ps_registry *r = NULL;
			char user[16];
			int rc;

			snprintf(user, sizeof(user), "racer%d", i);
			if (ps_registry_file_open(root, NULL, true, &r) != PS_OK)
				_exit(10);
			rc = add_cert(r, user, "bob.crt");
			ps_registry_close(r);
			_exit(rc == PS_OK ? 0 : rc == PS_ERR_EXISTS ? 1 : 2);
		}
	}
	for (i = 0; i < 6; i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status));
		if (WEXITSTATUS(status) == 0)
			won++;
		else if (WEXITSTATUS(status) == 1)
			exists_rc++;
	}
	ck_assert_int_eq(won, 1);
	ck_assert_int_eq(exists_rc, 5);
	ck_assert_int_eq(audit_lines(), 1);
	assert_no_temp_files();
}
END_TEST

/* The lock is really taken: a writer waits while someone holds it. */
START_TEST(test_lock_blocks_writer)
{
	struct ps_registry *reg = open_rw();
	char *lock = rpath(".lock", NULL);
	int fd, p[2], status;
	pid_t pid;
	char c;

	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(mode_of(lock), 0600);
	fd = open(lock, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int rc = add_cert(reg, "bob", "bob.crt");

		c = rc == PS_OK ? 'k' : 'f';
		_exit(write(p[1], &c, 1) == 1 ? 0 : 1);
	}
	close(p[1]);
	usleep(300 * 1000);
	/* still blocked: nothing written yet */
	ck_assert_int_eq(audit_lines(), 1);
	ck_assert_int_eq(flock(fd, LOCK_UN), 0);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'k');
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(audit_lines(), 2);
	close(fd);
	close(p[0]);
	free(lock);
	ps_registry_close(reg);
}
END_TEST

/* ------------------------------------------------------------ list_users */

START_TEST(test_list_users)
{
	struct ps_registry *reg = open_ro();
	char **users = (char **)1, *path, fp[PS_FP_HEX_LEN + 1];
	size_t n = 9;

	/* no registry yet: nobody */
	ck_assert_int_eq(ps_registry_list_users(reg, &users, &n), PS_OK);
	ck_assert_ptr_null(users);
	ck_assert_uint_eq(n, 0);
	ck_assert(!exists(root));
	ps_registry_close(reg);

	reg = open_rw();
	ck_assert_int_eq(add_cert(reg, "zed", "bob.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "amy", "alice.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "kim", "carol.crt"), PS_OK);
	tu_fp_of("carol.crt", fp);
	ck_assert_int_eq(ps_registry_set_state(reg, "kim", fp, PS_KEY_RETIRED,
	    NULL, &why_test), PS_OK);
	/* noise that is not a user */
	path = rpath("empty", NULL);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	free(path);
	path = rpath("bad name", NULL);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	free(path);
	path = rpath("file", NULL);
	tu_write_file(path, "x", 1, 0644);
	free(path);
	ck_assert_int_eq(ps_registry_list_users(reg, &users, &n), PS_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(users[0], "amy");
	ck_assert_str_eq(users[1], "kim");	/* retired entries count */
	ck_assert_str_eq(users[2], "zed");
	ps_user_names_free(users, n);
	ps_registry_close(reg);
}
END_TEST

START_TEST(test_find_key)
{
	struct ps_registry *reg = open_rw();
	char fp[PS_FP_HEX_LEN + 1], *owner = (char *)1;

	tu_fp_of("carol.crt", fp);
	ck_assert_int_eq(ps_registry_find_key(reg, fp, &owner),
	    PS_ERR_NOT_FOUND);
	ck_assert_ptr_null(owner);
	ck_assert_int_eq(add_cert(reg, "carol", "carol.crt"), PS_OK);
	ck_assert_int_eq(ps_registry_find_key(reg, fp, &owner), PS_OK);
	ck_assert_str_eq(owner, "carol");
	free(owner);
	tu_fp_of("bob.crt", fp);
	ck_assert_int_eq(ps_registry_find_key(reg, fp, &owner),
	    PS_ERR_NOT_FOUND);
	ps_registry_close(reg);
}
END_TEST

/* ------------------------------------------------------------ history */

static const struct ps_reg_change why_admin = { "admin one", "ticket 7" };

START_TEST(test_history)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_history h;
	char fa[PS_FP_HEX_LEN + 1], fb[PS_FP_HEX_LEN + 1], *audit;
	time_t t0 = time(NULL);
	X509 *x;
	FILE *f;

	tu_fp_of("alice.crt", fa);
	tu_fp_of("alice2.crt", fb);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_OK);
	x = tu_load_cert("alice2.crt");
	ck_assert_int_eq(ps_registry_add(reg, "alice", x, &why_admin), PS_OK);
	X509_free(x);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fa,
	    PS_KEY_SUPERSEDED, fb, &why_admin), PS_OK);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fa,
	    PS_KEY_RETIRED, NULL, &why_test), PS_OK);
	/* a torn line at the end (power loss while appending) */
	audit = audit_path();
	f = fopen(audit, "a");
	ck_assert_ptr_nonnull(f);
	fputs("2026-01-01T00:00:00Z actor=x action=enr", f);
	fclose(f);
	tu_log_reset();
	ck_assert_int_eq(ps_registry_history(reg, "alice", &h), PS_OK);
	ck_assert_uint_eq(h.count, 4);
	ck_assert_uint_eq(h.unreadable, 1);
	ck_assert_str_eq(h.events[0].action, "enroll");
	ck_assert_str_eq(h.events[0].fingerprint, fa);
	ck_assert_str_eq(h.events[0].actor, "tester");
	ck_assert_str_eq(h.events[0].reason, "unit test");
	ck_assert_str_eq(h.events[1].action, "enroll");
	ck_assert_str_eq(h.events[1].fingerprint, fb);
	ck_assert_str_eq(h.events[1].actor, "admin_one");
	ck_assert_str_eq(h.events[1].reason, "ticket 7");
	ck_assert_str_eq(h.events[2].action, "supersede");
	ck_assert_str_eq(h.events[3].action, "retire");
	ck_assert(h.events[0].when >= t0 - 1 && h.events[3].when <= time(NULL));
	ps_reg_history_free(&h);

	/* the next change starts on a line of its own */
	ck_assert_int_eq(add_cert(reg, "carol", "carol.crt"), PS_OK);
	ck_assert_int_eq(ps_registry_history(reg, "carol", &h), PS_OK);
	ck_assert_uint_eq(h.count, 1);
	ck_assert_uint_eq(h.unreadable, 1);
	ps_reg_history_free(&h);
	ck_assert_int_eq(ps_registry_history(reg, "nobody", &h), PS_OK);
	ck_assert_uint_eq(h.count, 0);
	ps_reg_history_free(&h);
	ck_assert_int_eq(ps_registry_history(reg, "../x", &h), PS_ERR_INVALID);
	free(audit);
	ps_registry_close(reg);
}
END_TEST

/* ------------------------------------------------------------ crashes */

static char *
pending_path(void)
{
	return rpath(".pending", NULL);
}

/* The audit log's last line, and the log without it. */
static char *
pop_audit_line(void)
{
	char *audit = audit_path(), *s = slurp(audit), *last, *line;
	size_t len;

	ck_assert_ptr_nonnull(s);
	len = strlen(s);
	ck_assert(len > 0 && s[len - 1] == '\n');
	s[len - 1] = '\0';
	last = strrchr(s, '\n');
	line = ps_strdup_printf("%s\n", last != NULL ? last + 1 : s);
	if (last != NULL)
		last[1] = '\0';
	else
		s[0] = '\0';
	tu_write_file(audit, s, strlen(s), 0640);
	free(s);
	free(audit);
	return line;
}

static void
put_pending(const char *line)
{
	char *p = pending_path();

	tu_write_file(p, line, strlen(line), 0600);
	free(p);
}

/* Killed after the change, before the audit line: the next writer
 * appends it. Killed after the audit line: not written twice. */
START_TEST(test_pending_applied)
{
	struct ps_registry *reg = open_rw();
	char *line, *pending = pending_path(), *audit = audit_path(), *s;

	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	line = pop_audit_line();
	put_pending(line);
	ck_assert_int_eq(audit_lines(), 0);
	tu_log_reset();
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_OK);
	ck_assert(tu_log_contains("interrupted enroll"));
	ck_assert(tu_log_contains("completed and audited"));
	ck_assert_int_eq(audit_lines(), 2);
	s = slurp(audit);
	ck_assert(strncmp(s, line, strlen(line)) == 0);
	free(s);
	ck_assert(!exists(pending));

	/* .pending equal to the last audit line: left by a kill between
	 * the append and the unlink */
	free(line);
	ck_assert_int_eq(add_cert(reg, "carol", "carol.crt"), PS_OK);
	ck_assert_int_eq(audit_lines(), 3);
	line = pop_audit_line();	/* carol's line ... */
	{
		char *a = slurp(audit), *all;

		all = ps_strdup_printf("%s%s", a, line);	/* ... back */
		tu_write_file(audit, all, strlen(all), 0640);
		free(all);
		free(a);
	}
	put_pending(line);
	ck_assert_int_eq(add_cert(reg, "dora", "ivan.crt"), PS_OK);
	ck_assert_int_eq(audit_lines(), 4);
	ck_assert(!exists(pending));
	free(line);
	free(pending);
	free(audit);
	ps_registry_close(reg);
}
END_TEST

/* Killed between the index entry and the entry file: nothing happened,
 * and the key is not left blocked. */
START_TEST(test_pending_not_applied)
{
	struct ps_registry *reg = open_rw();
	char fp[PS_FP_HEX_LEN + 1], *line, *idx, *pending = pending_path();
	char *tmp;

	tu_fp_of("alice.crt", fp);
	line = ps_strdup_printf("2026-01-01T00:00:00Z actor=tester "
	    "action=enroll user=alice key=%s reason=-\n", fp);
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_OK);
	idx = rpath(".by-key", fp);
	tu_write_file(idx, "alice\n", 6, 0644);
	tmp = ps_strdup_printf("%s/bob/%s.pem.tmp.AbCdEf", root, fp);
	tu_write_file(tmp, "half", 4, 0644);
	put_pending(line);
	tu_log_reset();
	ck_assert_int_eq(add_cert(reg, "carol", "carol.crt"), PS_OK);
	ck_assert(tu_log_contains("was not made: nothing changed"));
	ck_assert(!exists(idx));
	ck_assert(!exists(pending));
	ck_assert(exists(tmp));	/* another user's directory: untouched */
	ck_assert_int_eq(audit_lines(), 2);
	ck_assert(!audit_contains("user=alice"));
	/* the key is free for anyone */
	ck_assert_int_eq(add_cert(reg, "dora", "alice.crt"), PS_OK);
	ck_assert_int_eq(unlink(tmp), 0);
	free(tmp);
	free(idx);
	free(line);
	free(pending);
	ps_registry_close(reg);
}
END_TEST

/* Killed between writing retired/<fp>.pem and removing USER/<fp>.pem:
 * readers already treat the key as retired; the next writer finishes. */
START_TEST(test_pending_half_retire)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char fp[PS_FP_HEX_LEN + 1], *active, *retired, *copy, *line, *owner;

	tu_fp_of("alice.crt", fp);
	ck_assert_int_eq(add_cert(reg, "alice", "alice.crt"), PS_OK);
	ck_assert_int_eq(add_cert(reg, "alice", "alice2.crt"), PS_OK);
	active = entry_file("alice", fp, false);
	retired = entry_file("alice", fp, true);
	copy = slurp(active);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp,
	    PS_KEY_RETIRED, NULL, &why_test), PS_OK);
	line = pop_audit_line();
	tu_write_file(active, copy, strlen(copy), 0644);
	put_pending(line);
	ck_assert(exists(active) && exists(retired));

	ps_registry_close(reg);
	reg = open_ro();
	ck_assert_int_eq(ps_registry_lookup_user(reg, "alice", &list), PS_OK);
	ck_assert_uint_eq(list.count, 1);
	ck_assert_str_ne(list.entries[0].fingerprint, fp);
	ps_reg_list_free(&list);
	ck_assert_int_eq(ps_registry_find_key(reg, fp, &owner),
	    PS_ERR_NOT_FOUND);
	ps_registry_close(reg);

	reg = open_rw();
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_OK);
	ck_assert(!exists(active));
	ck_assert(exists(retired));
	ck_assert(audit_contains("action=retire user=alice"));
	free(line);
	free(copy);
	free(active);
	free(retired);
	ps_registry_close(reg);
}
END_TEST

/* A .pending torn while being written: the change never started. */
START_TEST(test_pending_torn)
{
	struct ps_registry *reg = open_rw();
	char *pending = pending_path();

	put_pending("2026-01-01T00:00:00Z actor=tester action=enr");
	tu_log_reset();
	ck_assert_int_eq(add_cert(reg, "bob", "bob.crt"), PS_OK);
	ck_assert(tu_log_contains("discarding an incomplete"));
	ck_assert(!exists(pending));
	ck_assert_int_eq(audit_lines(), 1);
	free(pending);
	ps_registry_close(reg);
}
END_TEST

/*
 * Real kill -9 at random moments of a writer that enrolls, supersedes,
 * retires and removes in a loop. Afterwards, and after one more write
 * (which settles what the killed one left), every entry parses, nothing
 * half-written is visible, and the audit log tells the story the files
 * tell: the number of keys each user has equals enrolls - removes.
 */
static void
churn(const char *user)
{
	const char *certs[] = { "alice.crt", "alice2.crt", "alice3.crt" };
	struct ps_registry *r = NULL;
	char fps[3][PS_FP_HEX_LEN + 1];
	unsigned i, k;

	for (k = 0; k < 3; k++)
		tu_fp_of(certs[k], fps[k]);
	if (ps_registry_file_open(root, NULL, true, &r) != PS_OK)
		_exit(10);
	for (i = 0;; i++) {
		X509 *x = tu_load_cert(certs[i % 3]);

		k = i % 3;
		(void)ps_registry_add(r, user, x, &why_test);
		X509_free(x);
		(void)ps_registry_set_state(r, user, fps[k],
		    PS_KEY_SUPERSEDED, fps[(k + 2) % 3], &why_test);
		(void)ps_registry_set_state(r, user, fps[k], PS_KEY_RETIRED,
		    NULL, &why_test);
		(void)ps_registry_remove(r, user, fps[k], &why_test);
	}
}

static int
count_needle(const char *hay, const char *needle)
{
	const char *p;
	int n = 0;

	for (p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static int
count_pem(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		n += len > 4 && strcmp(de->d_name + len - 4, ".pem") == 0;
	}
	closedir(d);
	return n;
}

static void
check_consistent(void)
{
	struct ps_registry *reg = open_rw();
	struct ps_reg_list list = { NULL, 0 };
	char *audit = audit_path(), *s, *rdir = rpath("alice", "retired");
	int enrolls, removes, have, r;

	/* the next writer settles; bob is never touched by the churn */
	r = add_cert(reg, "bob", "bob.crt");
	ck_assert(r == PS_OK || r == PS_ERR_EXISTS);
	s = slurp(audit);
	ck_assert_ptr_nonnull(s);
	ck_assert(s[0] == '\0' || s[strlen(s) - 1] == '\n');
	enrolls = count_needle(s, "action=enroll user=alice ");
	removes = count_needle(s, "action=remove user=alice ");
	tu_log_reset();
	r = ps_registry_lookup_user(reg, "alice", &list);
	ck_assert(r == PS_OK || r == PS_ERR_NOT_FOUND);
	/* nothing half-written or inconsistent was met */
	ck_assert_msg(!tu_log_contains("registry entry"), "%s", tu_log_text());
	have = (int)list.count + count_pem(rdir);
	ps_reg_list_free(&list);
	ck_assert_msg(enrolls - removes == have, "enrolls %d removes %d "
	    "keys %d\n%s", enrolls, removes, have, s);
	free(s);
	free(rdir);
	free(audit);
	ps_registry_close(reg);
}

START_TEST(test_kill9_writer)
{
	struct timespec ts;
	unsigned seed = (unsigned)getpid();
	pid_t pid;
	int i, status;

	for (i = 0; i < 25; i++) {
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			churn("alice");
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(rand_r(&seed) % 40000) * 1000L;
		nanosleep(&ts, NULL);
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFSIGNALED(status));
		tu_log_reset();
		check_consistent();
	}
	assert_no_temp_files();
}
END_TEST

static Suite *
registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("core");
	int nusers = (int)(sizeof(bad_users) / sizeof(bad_users[0])) + 2;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_open_bad_root);
	tcase_add_test(tc, test_open_backends);
	tcase_add_test(tc, test_open_creates_root);
	tcase_add_test(tc, test_open_untrusted_for_writing);
	tcase_add_test(tc, test_add_lookup);
	tcase_add_test(tc, test_supersede_and_reactivate);
	tcase_add_test(tc, test_retire);
	tcase_add_test(tc, test_remove);
	tcase_add_loop_test(tc, test_bad_user_names, 0, nusers);
	tcase_add_loop_test(tc, test_bad_fingerprints, 0,
	    (int)(sizeof(bad_fps) / sizeof(bad_fps[0])));
	tcase_add_test(tc, test_change_needs_actor);
	tcase_add_test(tc, test_audit_sanitised);
	tcase_add_test(tc, test_null_safety);
	tcase_add_test(tc, test_untrusted_root);
	tcase_add_test(tc, test_untrusted_user_dir);
	tcase_add_test(tc, test_untrusted_index_dir);
	tcase_add_test(tc, test_audit_log_not_regular);
	tcase_add_test(tc, test_untrusted_entry_file);
	tcase_add_test(tc, test_tampered_entry);
	tcase_add_test(tc, test_entry_copied_to_other_user);
	tcase_add_loop_test(tc, test_malformed_entry, 0,
	    (int)(sizeof(bad_entries) / sizeof(bad_entries[0])));
	tcase_add_test(tc, test_odd_files);
	tcase_add_test(tc, test_retired_dir_ignored_by_lookup);
	tcase_add_test(tc, test_duplicate_key);
	tcase_add_test(tc, test_parallel_writers);
	tcase_add_test(tc, test_parallel_same_key);
	tcase_add_test(tc, test_lock_blocks_writer);
	tcase_add_test(tc, test_list_users);
	tcase_add_test(tc, test_find_key);
	tcase_add_test(tc, test_history);
	tcase_add_test(tc, test_pending_applied);
	tcase_add_test(tc, test_pending_not_applied);
	tcase_add_test(tc, test_pending_half_retire);
	tcase_add_test(tc, test_pending_torn);
	tcase_add_test(tc, test_kill9_writer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(registry_suite());
}
