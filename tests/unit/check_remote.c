/*
 * check_remote.c - remote challenge mode, sshauth mode, the SSH key codec
 * and authorized_keys output (remote.h, sshkey.h, wire.h, replay.h).
 *
 * The parsers see text pasted by people and forwarded by sshd, so most of
 * this file is refusals: every truncation of a response or key blob, bit
 * flips, padding, oversized length fields, type confusion, replays,
 * expiry, re-targeted challenges and keys that are not (or no longer)
 * registered. authorized_keys lines are checked against OpenSSH itself by
 * round-tripping them through ssh-keygen.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "auth.h"
#include "cert.h"
#include "challenge.h"
#include "ps_status.h"
#include "registry.h"
#include "remote.h"
#include "replay.h"
#include "sshkey.h"
#include "testutil.h"
#include "util.h"
#include "wire.h"

static char *world;
static struct ps_config cfg;

static void
set(const char *key, const char *value)
{
	tu_cfg_set(&cfg, key, value);
}

static void
setup(void)
{
	char *p;

	world = tu_mkdtemp();
	ck_assert_int_eq(chmod(world, 0755), 0);
	ck_assert_int_eq(ps_config_init(&cfg), PS_OK);
	ck_assert(asprintf(&p, "%s/state", world) > 0);
	set("state_dir", p);
	free(p);
	ck_assert(asprintf(&p, "%s/registry", world) > 0);
	set("registry", p);
	free(p);
	tu_log_reset();
}

static void
teardown(void)
{
	ps_config_free(&cfg);
	tu_rmrf(world);
	free(world);
}

/* ------------------------------------------------------------ helpers */

/* An in-memory registry list of the fixture certificates `names`. */
static void
make_list(struct ps_reg_list *list, const char *const *names, size_t n)
{
	size_t i;

	list->entries = calloc(n, sizeof(*list->entries));
	ck_assert_ptr_nonnull(list->entries);
	list->count = n;
	for (i = 0; i < n; i++) {
		list->entries[i].cert = tu_load_cert(names[i]);
		ck_assert_int_eq(ps_cert_fingerprint(list->entries[i].cert,
		    list->entries[i].fingerprint), PS_OK);
		list->entries[i].state = PS_KEY_ACTIVE;
	}
}

static void
new_challenge(struct ps_challenge *c, const char *host, const char *user,
    time_t now)
{
	ck_assert_int_eq(ps_challenge_new(c, host, "sshd", user, "192.0.2.7",
	    now, 120), PS_OK);
}

/* The response line personalsign-respond would print, signed by the
 * fixture key `who` (who.key / who.crt). */
static char *
respond_as(const struct ps_challenge *c, const char *who)
{
	unsigned char digest[EVP_MAX_MD_SIZE], *sig = NULL;
	size_t dlen = 0, slen = 0;
	char name[64], *line = NULL;
	EVP_PKEY *priv;
	X509 *cert;
	const EVP_MD *md;

	snprintf(name, sizeof(name), "%s.key", who);
	priv = tu_load_key(name);
	snprintf(name, sizeof(name), "%s.crt", who);
	cert = tu_load_cert(name);
	md = ps_challenge_md_for_key(priv);
	ck_assert_int_eq(ps_challenge_digest(c, md, digest, &dlen), PS_OK);
	ck_assert_int_eq(ps_sign_digest_with_key(priv, md, digest, dlen, &sig,
	    &slen), PS_OK);
	ck_assert_int_eq(ps_response_line_encode(c, X509_get0_pubkey(cert),
	    sig, slen, &line), PS_OK);
	free(sig);
	X509_free(cert);
	EVP_PKEY_free(priv);
	return line;
}

static EVP_PKEY *
cert_key(const char *name)
{
	X509 *x = tu_load_cert(name);
	EVP_PKEY *k = X509_get_pubkey(x);

	X509_free(x);
	ck_assert_ptr_nonnull(k);
	return k;
}

static char *
key_text(const char *cert)
{
	EVP_PKEY *k = cert_key(cert);
	char *t = NULL;

	ck_assert_int_eq(ps_sshkey_to_text(k, &t), PS_OK);
	EVP_PKEY_free(k);
	return t;
}

/* ------------------------------------------------------------ base64 / wire */

START_TEST(b64_round_trip_and_canonical)
{
	unsigned char in[40], *out = NULL;
	size_t n, olen;
	char *enc;
	int url;

	for (n = 0; n < sizeof(in); n++)
		in[n] = (unsigned char)(n * 37 + 11);
	for (url = 0; url <= 1; url++) {
		for (n = 1; n <= sizeof(in); n++) {
			ck_assert_int_eq(ps_b64_encode(in, n, url, &enc), PS_OK);
			ck_assert_uint_eq(strlen(enc), ps_b64_len(n, url));
			ck_assert_int_eq(ps_b64_decode(enc, strlen(enc), url,
			    64, &out, &olen), PS_OK);
			ck_assert_uint_eq(olen, n);
			ck_assert_int_eq(memcmp(out, in, n), 0);
			free(out);
			free(enc);
		}
	}
	/* one spelling only */
	ck_assert_int_ne(ps_b64_decode("QR", 2, true, 8, &out, &olen), PS_OK);
	ck_assert_int_eq(ps_b64_decode("QQ", 2, true, 8, &out, &olen), PS_OK);
	free(out);
	ck_assert_int_ne(ps_b64_decode("QQ==", 4, true, 8, &out, &olen), PS_OK);
	ck_assert_int_ne(ps_b64_decode("QQ", 2, false, 8, &out, &olen), PS_OK);
	ck_assert_int_ne(ps_b64_decode("QR==", 4, false, 8, &out, &olen), PS_OK);
	ck_assert_int_ne(ps_b64_decode("Q===", 4, false, 8, &out, &olen), PS_OK);
	ck_assert_int_ne(ps_b64_decode("Q=Q=", 4, false, 8, &out, &olen), PS_OK);
	ck_assert_int_ne(ps_b64_decode("a+b/", 4, true, 8, &out, &olen), PS_OK);
	ck_assert_int_ne(ps_b64_decode("a-b_", 4, false, 8, &out, &olen), PS_OK);
	ck_assert_int_ne(ps_b64_decode("QUJD REVG", 9, false, 8, &out, &olen),
	    PS_OK);
	ck_assert_int_ne(ps_b64_decode("", 0, true, 8, &out, &olen), PS_OK);
	ck_assert_int_ne(ps_b64_decode("QUJDREVG", 8, false, 5, &out, &olen),
	    PS_OK);
	ck_assert_ptr_null(out);
}
END_TEST

START_TEST(wire_reader_bounds)
{
	static const unsigned char huge[] = { 0xff, 0xff, 0xff, 0xff, 'x' };
	static const unsigned char neg[] = { 0, 0, 0, 1, 0x80 };
	static const unsigned char lead0[] = { 0, 0, 0, 2, 0x00, 0x7f };
	static const unsigned char ok0[] = { 0, 0, 0, 2, 0x00, 0x80 };
	static const unsigned char zero[] = { 0, 0, 0, 0 };
	const unsigned char *s;
	size_t len;
	struct ps_rd rd;

	ps_rd_init(&rd, huge, sizeof(huge));
	ck_assert_int_ne(ps_rd_string(&rd, SIZE_MAX - 1, &s, &len), PS_OK);
	ps_rd_init(&rd, neg, sizeof(neg));
	ck_assert_int_ne(ps_rd_mpint_positive(&rd, 8, &s, &len), PS_OK);
	ps_rd_init(&rd, lead0, sizeof(lead0));
	ck_assert_int_ne(ps_rd_mpint_positive(&rd, 8, &s, &len), PS_OK);
	ps_rd_init(&rd, zero, sizeof(zero));
	ck_assert_int_ne(ps_rd_mpint_positive(&rd, 8, &s, &len), PS_OK);
	ps_rd_init(&rd, ok0, sizeof(ok0));
	ck_assert_int_eq(ps_rd_mpint_positive(&rd, 1, &s, &len), PS_OK);
	ck_assert_uint_eq(len, 1);
	ck_assert_int_eq(ps_rd_done(&rd), PS_OK);
}
END_TEST

/* ------------------------------------------------------------ SSH keys */

static const char *const key_certs[] = { "alice.crt", "bob.crt", "carol.crt" };
static const char *const key_types[] = {
	"ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384"
};

START_TEST(sshkey_round_trip)
{
	EVP_PKEY *k = cert_key(key_certs[_i]), *back = NULL;
	unsigned char *blob = NULL;
	size_t len = 0;
	char *text = NULL, *sp;

	ck_assert_int_eq(ps_sshkey_to_blob(k, &blob, &len), PS_OK);
	ck_assert_int_eq(ps_sshkey_from_blob(blob, len, &back), PS_OK);
	ck_assert_int_eq(EVP_PKEY_eq(k, back), 1);
	EVP_PKEY_free(back);
	back = NULL;
	ck_assert_int_eq(ps_sshkey_to_text(k, &text), PS_OK);
	sp = strchr(text, ' ');
	ck_assert_ptr_nonnull(sp);
	ck_assert_int_eq(strncmp(text, key_types[_i], (size_t)(sp - text)), 0);
	ck_assert_int_eq(ps_sshkey_from_text(text, (size_t)(sp - text), sp + 1,
	    strlen(sp + 1), &back), PS_OK);
	ck_assert_int_eq(EVP_PKEY_eq(k, back), 1);
	EVP_PKEY_free(back);
	free(text);
	free(blob);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(sshkey_truncated_and_extended)
{
	EVP_PKEY *k = cert_key(key_certs[_i]), *back = NULL;
	unsigned char *blob = NULL, *longer;
	size_t len = 0, n;

	ck_assert_int_eq(ps_sshkey_to_blob(k, &blob, &len), PS_OK);
	for (n = 0; n < len; n++) {
		ck_assert_int_ne(ps_sshkey_from_blob(blob, n, &back), PS_OK);
		ck_assert_ptr_null(back);
	}
	longer = malloc(len + 1);
	memcpy(longer, blob, len);
	longer[len] = 0;
	ck_assert_int_ne(ps_sshkey_from_blob(longer, len + 1, &back), PS_OK);
	/* a length field claiming more than there is */
	memcpy(longer, blob, len);
	longer[4 + strlen(key_types[_i])] = 0xff;	/* next field's length */
	ck_assert_int_ne(ps_sshkey_from_blob(longer, len, &back), PS_OK);
	ck_assert_ptr_null(back);
	free(longer);
	free(blob);
	EVP_PKEY_free(k);
}
END_TEST

/* Build a blob by hand: string type, then raw fields. */
static size_t
blob_of(unsigned char *out, const char *type, const unsigned char *rest,
    size_t restlen)
{
	size_t tl = strlen(type);

	out[0] = out[1] = out[2] = 0;
	out[3] = (unsigned char)tl;
	memcpy(out + 4, type, tl);
	memcpy(out + 4 + tl, rest, restlen);
	return 4 + tl + restlen;
}

START_TEST(sshkey_refuses_garbage)
{
	unsigned char buf[8192], rnd[600];
	static const unsigned char ed[] = { 0, 0, 0, 32 };
	EVP_PKEY *back = NULL, *bob = cert_key("bob.crt");
	unsigned char *blob = NULL, *point;
	size_t len = 0, n, i;
	char *b64;

	/* well-formed but not a PersonalSign key type */
	n = blob_of(buf, "ssh-ed25519", ed, sizeof(ed));
	memset(buf + n, 7, 32);
	ck_assert_int_eq(ps_sshkey_from_blob(buf, n + 32, &back), PS_ERR_POLICY);
	/* random bytes, many times */
	for (i = 0; i < 200; i++) {
		ck_assert_int_eq(RAND_bytes(rnd, sizeof(rnd)), 1);
		ck_assert_int_ne(ps_sshkey_from_blob(rnd, 1 + i * 2, &back),
		    PS_OK);
	}
	/* too large */
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(ps_sshkey_from_blob(buf, PS_SSHKEY_BLOB_MAX + 1,
	    &back), PS_ERR_INVALID);
	/* EC point: compressed form, and a point off the curve */
	ck_assert_int_eq(ps_sshkey_to_blob(bob, &blob, &len), PS_OK);
	point = blob + len - 65;
	ck_assert_int_eq(point[0], 0x04);
	point[0] = 0x02;
	ck_assert_int_ne(ps_sshkey_from_blob(blob, len, &back), PS_OK);
	point[0] = 0x04;
	point[64] ^= 0x01;
	ck_assert_int_eq(ps_sshkey_from_blob(blob, len, &back), PS_ERR_INVALID);
	point[64] ^= 0x01;
	/* curve name inside must match the type */
	blob[4 + 19 + 4 + 7] = '9';	/* nistp256 -> nistp259 */
	ck_assert_int_ne(ps_sshkey_from_blob(blob, len, &back), PS_OK);
	blob[4 + 19 + 4 + 7] = '6';
	ck_assert_int_eq(ps_sshkey_from_blob(blob, len, &back), PS_OK);
	EVP_PKEY_free(back);
	back = NULL;
	/* text type must be the blob's type */
	ck_assert_int_eq(ps_b64_encode(blob, len, false, &b64), PS_OK);
	ck_assert_int_ne(ps_sshkey_from_text("ecdsa-sha2-nistp384", 19, b64,
	    strlen(b64), &back), PS_OK);
	ck_assert_int_ne(ps_sshkey_from_text("ssh-rsa", 7, b64, strlen(b64),
	    &back), PS_OK);
	ck_assert_int_ne(ps_sshkey_from_text("ecdsa-sha2-nistp256", 19, b64,
	    strlen(b64) - 1, &back), PS_OK);
	ck_assert_ptr_null(back);
	free(b64);
	free(blob);
	EVP_PKEY_free(bob);
}
END_TEST

START_TEST(sshkey_refuses_bad_rsa)
{
	unsigned char buf[600], rest[600];
	EVP_PKEY *back = NULL;
	size_t n;

	/* e = 65537, n = 512-bit odd number: too small */
	memcpy(rest, "\0\0\0\3\1\0\1\0\0\0\x41\0", 12);
	memset(rest + 12, 0xc3, 64);
	n = blob_of(buf, "ssh-rsa", rest, 12 + 64);
	ck_assert_int_eq(ps_sshkey_from_blob(buf, n, &back), PS_ERR_INVALID);
	/* 2048-bit but even modulus */
	memcpy(rest, "\0\0\0\3\1\0\1\0\0\1\1\0", 12);
	memset(rest + 12, 0xc2, 256);
	n = blob_of(buf, "ssh-rsa", rest, 12 + 256);
	ck_assert_int_eq(ps_sshkey_from_blob(buf, n, &back), PS_ERR_INVALID);
	/* e even */
	memcpy(rest, "\0\0\0\3\1\0\0\0\0\1\1\0", 12);
	memset(rest + 12, 0xc3, 256);
	n = blob_of(buf, "ssh-rsa", rest, 12 + 256);
	ck_assert_int_eq(ps_sshkey_from_blob(buf, n, &back), PS_ERR_INVALID);
	ck_assert_ptr_null(back);
}
END_TEST

/* ------------------------------------------------------------ authorized_keys */

static char *
run_capture(const char *cmd)
{
	char buf[4096];
	FILE *p = popen(cmd, "r");
	size_t n;

	ck_assert_ptr_nonnull(p);
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	ck_assert_int_eq(pclose(p), 0);
	return strdup(buf);
}

/* The SHA256:... field of ssh-keygen -l output. */
static char *
sha256_field(const char *out)
{
	const char *p = strstr(out, "SHA256:");
	size_t n;

	ck_assert_ptr_nonnull(p);
	n = strcspn(p, " \n");
	return strndup(p, n);
}

START_TEST(authorized_keys_line_round_trips_through_ssh_keygen)
{
	const char *cert = key_certs[_i];
	char *line, *path, *pem, *cmd, *ours, *theirs, *f1, *f2, *crt;
	char expiry[32];
	struct tm tm;
	time_t na;
	X509 *x;
	FILE *f;

	if (access("/usr/bin/ssh-keygen", X_OK) != 0)
		return;		/* nothing to compare with */
	x = tu_load_cert(cert);
	ck_assert_int_eq(ps_authorized_keys_line(x, &line), PS_OK);
	ck_assert_int_eq(ps_cert_validity(x, NULL, &na), PS_OK);
	gmtime_r(&na, &tm);
	strftime(expiry, sizeof(expiry), "expiry-time=\"%Y%m%d%H%M%SZ\" ", &tm);
	ck_assert_msg(strncmp(line, expiry, strlen(expiry)) == 0, "%s", line);
	ck_assert_ptr_nonnull(strstr(line, key_types[_i]));
	ck_assert_ptr_nonnull(strstr(line, "@example.test personalsign:"));
	ck_assert_ptr_null(strchr(line, '\n'));

	ck_assert(asprintf(&path, "%s/ak", world) > 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s\n", line);
	fclose(f);
	ck_assert(asprintf(&cmd, "ssh-keygen -l -E sha256 -f '%s'", path) > 0);
	ours = run_capture(cmd);
	free(cmd);
	/* OpenSSH's own conversion of the certificate's key */
	crt = tu_fixture(cert);
	ck_assert(asprintf(&pem, "%s/pub.pem", world) > 0);
	ck_assert(asprintf(&cmd, "openssl x509 -in '%s' -pubkey -noout > '%s' "
	    "&& ssh-keygen -i -m PKCS8 -f '%s' | ssh-keygen -l -E sha256 -f -",
	    crt, pem, pem) > 0);
	theirs = run_capture(cmd);
	f1 = sha256_field(ours);
	f2 = sha256_field(theirs);
	ck_assert_str_eq(f1, f2);
	free(f1);
	free(f2);
	free(cmd);
	free(crt);
	free(pem);
	free(ours);
	free(theirs);
	free(path);
	free(line);
	X509_free(x);
}
END_TEST

START_TEST(authorized_keys_prints_only_usable_keys)
{
	struct ps_registry *reg;
	struct ps_reg_change why = { "test", "unit test" };
	const char *certs[] = { "alice.crt", "carol.crt" };
	char fp[PS_FP_HEX_LEN + 1], *buf = NULL;
	size_t len = 0;
	FILE *out;
	X509 *x;
	size_t i;

	ck_assert_int_eq(ps_registry_file_open(cfg.registry_dir, &tu_log, true,
	    &reg), PS_OK);
	for (i = 0; i < 2; i++) {
		x = tu_load_cert(certs[i]);
		ck_assert_int_eq(ps_registry_add(reg, "alice", x, &why), PS_OK);
		X509_free(x);
	}
	out = open_memstream(&buf, &len);
	ck_assert_int_eq(ps_authorized_keys(&cfg, &tu_log, "alice", 0, out),
	    PS_OK);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(buf, "ssh-rsa "));
	ck_assert_ptr_nonnull(strstr(buf, "ecdsa-sha2-nistp384 "));
	free(buf);

	/* retire carol's key: it disappears at once */
	x = tu_load_cert("carol.crt");
	ck_assert_int_eq(ps_cert_fingerprint(x, fp), PS_OK);
	X509_free(x);
	ck_assert_int_eq(ps_registry_set_state(reg, "alice", fp,
	    PS_KEY_RETIRED, NULL, &why), PS_OK);
	ps_registry_close(reg);
	out = open_memstream(&buf, &len);
	ck_assert_int_eq(ps_authorized_keys(&cfg, &tu_log, "alice", 0, out),
	    PS_OK);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(buf, "ssh-rsa "));
	ck_assert_ptr_null(strstr(buf, "ecdsa"));
	free(buf);

	/* years later everything has expired: nothing printed */
	out = open_memstream(&buf, &len);
	ck_assert_int_eq(ps_authorized_keys(&cfg, &tu_log, "alice",
	    time(NULL) + 20 * 365 * 86400L, out), PS_ERR_EXPIRED);
	fclose(out);
	ck_assert_uint_eq(len, 0);
	free(buf);

	out = open_memstream(&buf, &len);
	ck_assert_int_eq(ps_authorized_keys(&cfg, &tu_log, "nobody-here", 0,
	    out), PS_ERR_NOT_FOUND);
	ck_assert_int_eq(ps_authorized_keys(&cfg, &tu_log, "../etc", 0, out),
	    PS_ERR_INVALID);
	fclose(out);
	ck_assert_uint_eq(len, 0);
	free(buf);
}
END_TEST

/* A self-signed P-256 certificate whose subjectAltName e-mail is `email`. */
static X509 *
cert_with_email(const char *email)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	ck_assert(k != NULL && x != NULL && gens != NULL && gn != NULL &&
	    s != NULL);
	ck_assert(ASN1_STRING_set(s, email, (int)strlen(email)) == 1);
	GENERAL_NAME_set0_value(gn, GEN_EMAIL, s);
	ck_assert(sk_GENERAL_NAME_push(gens, gn) > 0);
	ck_assert(X509_set_version(x, 2) == 1);
	ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1);
	ck_assert(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"evil", -1, -1, 0) == 1);
	ck_assert(X509_set_issuer_name(x, X509_get_subject_name(x)) == 1);
	ck_assert(X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL);
	ck_assert(X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL);
	ck_assert(X509_set_pubkey(x, k) == 1);
	ck_assert(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
	    X509V3_ADD_DEFAULT) == 1);
	ck_assert(X509_sign(x, k, EVP_sha256()) > 0);
	GENERAL_NAMES_free(gens);
	EVP_PKEY_free(k);
	return x;
}

/*
 * The comment is the only free text in an authorized_keys line: an e-mail
 * address with a newline, quotes or blanks must not reach it, or a
 * certificate could add a line or options of its own.
 */
START_TEST(authorized_keys_comment_takes_no_hostile_email)
{
	static const char *const hostile[] = {
		"x@example.test\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
		"x@example.test\rcommand=\"/bin/sh\"",
		"x@example.test\" command=\"/bin/sh",
		"x@example.test command=\"/bin/sh\"",
		"x@example.test,command=/bin/sh",
		"x@example.test\tfrom=\"*\"",
	};
	char *line, *p;
	size_t i, quotes;
	X509 *x;

	/* the control: a plain address is in the comment */
	x = cert_with_email("kim.o+vpn@example.test");
	ck_assert_int_eq(ps_authorized_keys_line(x, &line), PS_OK);
	ck_assert_msg(strstr(line, " kim.o+vpn@example.test personalsign:")
	    != NULL, "%s", line);
	free(line);
	X509_free(x);

	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		x = cert_with_email(hostile[i]);
		ck_assert_int_eq(ps_authorized_keys_line(x, &line), PS_OK);
		ck_assert_msg(strpbrk(line, "\n\r\t,") == NULL, "%s", line);
		for (quotes = 0, p = line; *p != '\0'; p++)
			quotes += *p == '"';
		ck_assert_msg(quotes == 2, "%s", line);	/* expiry-time="..." */
		ck_assert_msg(strstr(line, "command=") == NULL, "%s", line);
		ck_assert_msg(strstr(line, "example.test") == NULL, "%s", line);
		ck_assert_ptr_nonnull(strstr(line, " personalsign:"));
		free(line);
		X509_free(x);
	}
}
END_TEST

/* ------------------------------------------------------------ challenge line */

START_TEST(challenge_line_round_trip)
{
	struct ps_challenge c, back;
	unsigned char h1[PS_RESPONSE_HASH_LEN], h2[PS_RESPONSE_HASH_LEN];
	char *line, *padded;

	new_challenge(&c, "srv.example.test", "alice", time(NULL));
	ck_assert_int_eq(ps_challenge_line_encode(&c, &line), PS_OK);
	ck_assert_int_eq(strncmp(line, PS_CHALLENGE_LINE_PREFIX,
	    strlen(PS_CHALLENGE_LINE_PREFIX)), 0);
	ck_assert_uint_eq(strspn(line + strlen(PS_CHALLENGE_LINE_PREFIX),
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
	    strlen(line) - strlen(PS_CHALLENGE_LINE_PREFIX));
	ck_assert_int_eq(ps_challenge_line_parse(line, strlen(line), &back, h1),
	    PS_OK);
	ck_assert_str_eq(back.host, "srv.example.test");
	ck_assert_str_eq(back.user, "alice");
	ck_assert_str_eq(back.rhost, "192.0.2.7");
	ck_assert_int_eq(memcmp(back.nonce, c.nonce, PS_NONCE_LEN), 0);
	ck_assert_int_eq(ps_challenge_hash(&c, h2), PS_OK);
	ck_assert_int_eq(memcmp(h1, h2, sizeof(h1)), 0);
	ps_challenge_clear(&back);
	ck_assert(asprintf(&padded, "  %s\r\n", line) > 0);
	ck_assert_int_eq(ps_challenge_line_parse(padded, strlen(padded), &back,
	    NULL), PS_OK);
	ps_challenge_clear(&back);
	free(padded);
	free(line);
	ps_challenge_clear(&c);
}
END_TEST

START_TEST(challenge_line_refusals)
{
	struct ps_challenge c, back;
	size_t n, len;
	char *line, *bad;

	new_challenge(&c, "srv", "alice", time(NULL));
	ck_assert_int_eq(ps_challenge_line_encode(&c, &line), PS_OK);
	len = strlen(line);
	for (n = 0; n < len; n++)
		ck_assert_int_ne(ps_challenge_line_parse(line, n, &back, NULL),
		    PS_OK);
	bad = strdup(line);
	bad[len / 2] = bad[len / 2] == 'A' ? 'B' : 'A';
	ck_assert_int_ne(ps_challenge_line_parse(bad, len, &back, NULL), PS_OK);
	free(bad);
	ck_assert(asprintf(&bad, "%sA", line) > 0);
	ck_assert_int_ne(ps_challenge_line_parse(bad, strlen(bad), &back,
	    NULL), PS_OK);
	free(bad);
	ck_assert(asprintf(&bad, "personalsign-response:%s",
	    line + strlen(PS_CHALLENGE_LINE_PREFIX)) > 0);
	ck_assert_int_ne(ps_challenge_line_parse(bad, strlen(bad), &back,
	    NULL), PS_OK);
	free(bad);
	ck_assert(asprintf(&bad, "%.*s %s", 30, line, line + 30) > 0);
	ck_assert_int_ne(ps_challenge_line_parse(bad, strlen(bad), &back,
	    NULL), PS_OK);
	free(bad);
	ck_assert_int_ne(ps_challenge_line_parse("personalsign-challenge:", 23,
	    &back, NULL), PS_OK);
	free(line);
	ps_challenge_clear(&c);
}
END_TEST

/* ------------------------------------------------------------ response line */

START_TEST(response_line_corruptions)
{
	struct ps_challenge c;
	struct ps_response r;
	char *line, *bad;
	size_t len, n;

	new_challenge(&c, "srv", "alice", time(NULL));
	line = respond_as(&c, "alice");
	len = strlen(line);
	ck_assert_uint_le(len, PS_RESPONSE_LINE_MAX);
	ck_assert_int_eq(ps_response_line_parse(line, len, &r), PS_OK);
	ck_assert_uint_eq(r.sig_len, 256);
	/* every truncation */
	for (n = 0; n < len; n++)
		ck_assert_int_ne(ps_response_line_parse(line, n, &r), PS_OK);
	/* every single-character change in the body */
	bad = strdup(line);
	for (n = strlen(PS_RESPONSE_LINE_PREFIX); n < len; n++) {
		char was = bad[n];
		struct ps_response ok;

		bad[n] = was == 'A' ? '_' : 'A';
		/* a change may still decode (it then names another hash or
		 * signature, refused later); it must never equal the original */
		if (ps_response_line_parse(bad, len, &r) == PS_OK) {
			ck_assert_int_eq(ps_response_line_parse(line, len, &ok),
			    PS_OK);
			ck_assert(memcmp(&r, &ok, sizeof(r)) != 0);
		}
		bad[n] = was;
	}
	free(bad);
	ck_assert(asprintf(&bad, "%sAA", line) > 0);
	ck_assert_int_ne(ps_response_line_parse(bad, strlen(bad), &r), PS_OK);
	free(bad);
	ck_assert(asprintf(&bad, "%s==", line) > 0);
	ck_assert_int_ne(ps_response_line_parse(bad, strlen(bad), &r), PS_OK);
	free(bad);
	ck_assert_int_ne(ps_response_line_parse("hello", 5, &r), PS_OK);
	ck_assert_int_ne(ps_response_line_parse("", 0, &r), PS_OK);
	free(line);
	ps_challenge_clear(&c);
}
END_TEST

/* A payload built by hand, to reach each field check. */
static char *
payload_line(uint8_t version, size_t h1, size_t h2, size_t siglen)
{
	unsigned char zero[1024];
	struct ps_wr w;
	char *b64, *line;

	memset(zero, 0x5a, sizeof(zero));
	ps_wr_init(&w, 4096);
	ps_wr_u8(&w, version);
	ps_wr_string(&w, zero, h1);
	ps_wr_string(&w, zero, h2);
	ps_wr_string(&w, zero, siglen);
	ck_assert_int_eq(w.err, PS_OK);
	ck_assert_int_eq(ps_b64_encode(w.buf, w.len, true, &b64), PS_OK);
	ck_assert(asprintf(&line, "%s%s", PS_RESPONSE_LINE_PREFIX, b64) > 0);
	free(b64);
	ps_wr_free(&w);
	return line;
}

START_TEST(response_payload_fields)
{
	struct ps_response r;
	char *l;

	l = payload_line(1, 32, 32, 64);
	ck_assert_int_eq(ps_response_line_parse(l, strlen(l), &r), PS_OK);
	free(l);
	l = payload_line(2, 32, 32, 64);
	ck_assert_int_ne(ps_response_line_parse(l, strlen(l), &r), PS_OK);
	free(l);
	l = payload_line(1, 31, 32, 64);
	ck_assert_int_ne(ps_response_line_parse(l, strlen(l), &r), PS_OK);
	free(l);
	l = payload_line(1, 32, 33, 64);
	ck_assert_int_ne(ps_response_line_parse(l, strlen(l), &r), PS_OK);
	free(l);
	l = payload_line(1, 32, 32, 0);
	ck_assert_int_ne(ps_response_line_parse(l, strlen(l), &r), PS_OK);
	free(l);
	l = payload_line(1, 32, 32, PS_RESPONSE_SIG_MAX + 1);
	ck_assert_int_ne(ps_response_line_parse(l, strlen(l), &r), PS_OK);
	free(l);
}
END_TEST

/* ------------------------------------------------------------ remote check */

static int
check(const struct ps_reg_list *list, size_t usable,
    const struct ps_challenge *c, const char *answer, time_t now,
    size_t *entry, char *why)
{
	return ps_remote_check(&cfg, &tu_log, list, usable, c, answer, now,
	    entry, why, 256);
}

/* A response by fixture key `who` to challenge `answered`, checked against
 * c at now (usable entries of list): refused, with want in the reason. */
static void
check_refuses(const struct ps_reg_list *list, size_t usable,
    const struct ps_challenge *c, const struct ps_challenge *answered,
    const char *who, time_t now, const char *want)
{
	char why[256], *line = respond_as(answered, who);
	size_t entry;

	ck_assert_int_eq(check(list, usable, c, line, now, &entry, why),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(why, want));
	free(line);
}

START_TEST(remote_check_accepts_once)
{
	static const char *const names[] = { "bob.crt", "alice.crt" };
	struct ps_reg_list list;
	struct ps_challenge c;
	time_t now = time(NULL);
	size_t entry = 99;
	char why[256], *line;

	make_list(&list, names, 2);
	new_challenge(&c, "srv", "alice", now);
	line = respond_as(&c, "alice");
	ck_assert_int_eq(check(&list, 2, &c, line, now + 5, &entry, why),
	    PS_OK);
	ck_assert_uint_eq(entry, 1);
	/* the same response again: refused, and so is any other one */
	ck_assert_int_eq(check(&list, 2, &c, line, now + 6, &entry, why),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(why, "already been used"));
	free(line);
	check_refuses(&list, 2, &c, &c, "bob", now + 6, "already been used");
	ps_challenge_clear(&c);
	ps_reg_list_free(&list);
}
END_TEST

START_TEST(remote_check_refusals)
{
	static const char *const names[] = { "alice.crt", "ivan.crt" };
	struct ps_reg_list list;
	struct ps_challenge c, other_user, other_host, earlier;
	time_t now = time(NULL);
	size_t entry;
	char why[256], *line, *sigline;
	struct ps_response r;

	make_list(&list, names, 2);
	new_challenge(&c, "srv", "alice", now);

	/* garbage and truncation */
	ck_assert_int_eq(check(&list, 2, &c, "yes", now, &entry, why),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(why, "not a complete response line"));
	line = respond_as(&c, "alice");
	line[strlen(line) - 3] = '\0';
	ck_assert_int_eq(check(&list, 2, &c, line, now, &entry, why),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(why, "not a complete response line"));
	free(line);
	ck_assert_int_eq(check(&list, 2, &c, NULL, now, &entry, why),
	    PS_ERR_AUTH);

	/* re-targeted: same server, other user; other host; an earlier login */
	new_challenge(&other_user, "srv", "bob", now);
	new_challenge(&other_host, "other", "alice", now);
	new_challenge(&earlier, "srv", "alice", now - 30);
	check_refuses(&list, 2, &c, &other_user, "alice", now,
	    "different challenge");
	check_refuses(&list, 2, &c, &other_host, "alice", now,
	    "different challenge");
	check_refuses(&list, 2, &c, &earlier, "alice", now,
	    "different challenge");

	/* expired */
	check_refuses(&list, 2, &c, &c, "alice", (time_t)c.expires + 1,
	    "expired");

	/* a key that is not registered, and one registered but not usable */
	check_refuses(&list, 2, &c, &c, "bob", now,
	    "not a valid registered key");
	check_refuses(&list, 1, &c, &c, "ivan", now,
	    "not a valid registered key");

	/* right key named, signature of something else */
	line = respond_as(&c, "alice");
	sigline = respond_as(&other_user, "alice");
	ck_assert_int_eq(ps_response_line_parse(sigline, strlen(sigline), &r),
	    PS_OK);
	free(sigline);
	ck_assert_int_eq(ps_response_line_encode(&c, X509_get0_pubkey(
	    list.entries[0].cert), r.sig, r.sig_len, &sigline), PS_OK);
	ck_assert_int_eq(check(&list, 2, &c, sigline, now, &entry, why),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(why, "does not verify"));
	free(sigline);

	/* none of that used the challenge up */
	ck_assert_int_eq(check(&list, 2, &c, line, now, &entry, why), PS_OK);
	ck_assert_uint_eq(entry, 0);
	free(line);

	ps_challenge_clear(&earlier);
	ps_challenge_clear(&other_host);
	ps_challenge_clear(&other_user);
	ps_challenge_clear(&c);
	ps_reg_list_free(&list);
}
END_TEST

START_TEST(replay_dir_must_be_safe)
{
	static const char *const names[] = { "alice.crt" };
	struct ps_reg_list list;
	struct ps_challenge c;
	time_t now = time(NULL);
	size_t entry;
	char why[256], *line, *link;

	make_list(&list, names, 1);
	new_challenge(&c, "srv", "alice", now);
	line = respond_as(&c, "alice");
	ck_assert_int_eq(mkdir(cfg.state_dir, 0700), 0);
	ck_assert_int_eq(chmod(cfg.state_dir, 0777), 0);
	ck_assert_int_eq(check(&list, 1, &c, line, now, &entry, why),
	    PS_ERR_UNSAFE);
	ck_assert_ptr_nonnull(strstr(why, "cannot record"));
	ck_assert_int_eq(chmod(cfg.state_dir, 0720), 0);
	ck_assert_int_eq(check(&list, 1, &c, line, now, &entry, why),
	    PS_ERR_UNSAFE);
	/* owned by someone else (only root can give it away) */
	ck_assert_int_eq(chmod(cfg.state_dir, 0700), 0);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(cfg.state_dir, 65534, 65534), 0);
		ck_assert_int_eq(check(&list, 1, &c, line, now, &entry, why),
		    PS_ERR_UNSAFE);
		ck_assert_int_eq(chown(cfg.state_dir, 0, 0), 0);
	}
	/* a symlink to a good directory is not the directory */
	ck_assert(asprintf(&link, "%s/state-link", world) > 0);
	ck_assert_int_eq(symlink(cfg.state_dir, link), 0);
	set("state_dir", link);
	ck_assert_int_eq(check(&list, 1, &c, line, now, &entry, why),
	    PS_ERR_UNSAFE);
	ck_assert_ptr_nonnull(strstr(why, "cannot record"));
	free(link);
	free(line);
	ps_challenge_clear(&c);
	ps_reg_list_free(&list);
}
END_TEST

START_TEST(replay_entries_expire)
{
	unsigned char nonce[PS_NONCE_LEN];
	char *cmd;
	time_t now = time(NULL);
	FILE *p;
	int count = -1;

	memset(nonce, 1, sizeof(nonce));
	set("clock_skew", "0");
	ck_assert_int_eq(ps_replay_mark(&cfg, &tu_log, nonce, sizeof(nonce),
	    now + 10, now), PS_OK);
	ck_assert_int_eq(ps_replay_mark(&cfg, &tu_log, nonce, sizeof(nonce),
	    now + 10, now + 1), PS_ERR_EXISTS);
	nonce[0] = 2;
	ck_assert_int_eq(ps_replay_mark(&cfg, &tu_log, nonce, sizeof(nonce),
	    now + 100, now + 1), PS_OK);
	/* the first entry is swept once its time is up; the second stays */
	nonce[0] = 3;
	ck_assert_int_eq(ps_replay_mark(&cfg, &tu_log, nonce, sizeof(nonce),
	    now + 100, now + 11), PS_OK);
	ck_assert(asprintf(&cmd, "ls '%s' | wc -l", cfg.state_dir) > 0);
	p = popen(cmd, "r");
	ck_assert(fscanf(p, "%d", &count) == 1);
	pclose(p);
	free(cmd);
	ck_assert_int_eq(count, 2);
	nonce[0] = 2;
	ck_assert_int_eq(ps_replay_mark(&cfg, &tu_log, nonce, sizeof(nonce),
	    now + 100, now + 12), PS_ERR_EXISTS);
}
END_TEST

/*
 * An entry gets its forget-after time only after O_EXCL created it: a
 * sweep elsewhere must not run in between (it would take the new entry
 * for expired and unlink it). Marking waits while the directory is locked.
 */
START_TEST(replay_mark_waits_for_the_directory_lock)
{
	unsigned char nonce[PS_NONCE_LEN];
	time_t now = time(NULL);
	int dfd, status;
	pid_t pid;
	char *cmd;
	FILE *p;
	int count = -1;

	memset(nonce, 7, sizeof(nonce));
	ck_assert_int_eq(mkdir(cfg.state_dir, 0700), 0);
	dfd = open(cfg.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dfd, 0);
	ck_assert_int_eq(flock(dfd, LOCK_EX), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(ps_replay_mark(&cfg, &tu_log, nonce, sizeof(nonce),
		    now + 10, now) == PS_OK ? 0 : 1);
	usleep(300 * 1000);
	ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0,
	    "ps_replay_mark did not wait for the state directory lock");
	ck_assert(asprintf(&cmd, "ls '%s' | wc -l", cfg.state_dir) > 0);
	p = popen(cmd, "r");
	ck_assert(fscanf(p, "%d", &count) == 1);
	pclose(p);
	free(cmd);
	ck_assert_int_eq(count, 0);
	ck_assert_int_eq(flock(dfd, LOCK_UN), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(dfd);
	ck_assert_int_eq(ps_replay_mark(&cfg, &tu_log, nonce, sizeof(nonce),
	    now + 10, now + 1), PS_ERR_EXISTS);
}
END_TEST

/* ------------------------------------------------------------ sshauth */

START_TEST(sshauth_match_lines)
{
	static const char *const names[] = { "alice.crt", "bob.crt", "ivan.crt" };
	struct ps_reg_list list;
	char *alice = key_text("alice.crt"), *bob = key_text("bob.crt");
	char *ivan = key_text("ivan.crt"), *carol = key_text("carol.crt");
	char *info, *sp;
	size_t entry = 99;

	make_list(&list, names, 3);
#define MATCH(text, usable) ps_sshauth_match(&tu_log, (text), strlen(text), \
	&list, (usable), &entry)
	ck_assert(asprintf(&info, "publickey %s\n", alice) > 0);
	ck_assert_int_eq(MATCH(info, 3), PS_OK);
	ck_assert_uint_eq(entry, 0);
	free(info);
	ck_assert(asprintf(&info, "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"
	    "AAAAIOqL\nkeyboard-interactive/pam\npublickey %s some info\n",
	    bob) > 0);
	ck_assert_int_eq(MATCH(info, 3), PS_OK);
	ck_assert_uint_eq(entry, 1);
	free(info);
	/* registered but refused by policy (not in the usable prefix) */
	ck_assert(asprintf(&info, "publickey %s\n", ivan) > 0);
	ck_assert_int_eq(MATCH(info, 2), PS_ERR_AUTH);
	free(info);
	/* not registered */
	ck_assert(asprintf(&info, "publickey %s\n", carol) > 0);
	ck_assert_int_eq(MATCH(info, 3), PS_ERR_AUTH);
	free(info);
	/* only publickey lines count */
	ck_assert(asprintf(&info, "password %s\nhostbased %s\n", alice,
	    alice) > 0);
	ck_assert_int_eq(MATCH(info, 3), PS_ERR_AUTH);
	free(info);
	/* type named outside differs from the blob's */
	sp = strchr(bob, ' ');
	ck_assert(asprintf(&info, "publickey ecdsa-sha2-nistp384%s\n", sp) > 0);
	ck_assert_int_eq(MATCH(info, 3), PS_ERR_AUTH);
	free(info);
	/* truncated key, missing key, empty */
	ck_assert(asprintf(&info, "publickey %.*s\n", (int)strlen(alice) - 4,
	    alice) > 0);
	ck_assert_int_eq(MATCH(info, 3), PS_ERR_AUTH);
	free(info);
	ck_assert_int_eq(MATCH("publickey ssh-rsa\n", 3), PS_ERR_AUTH);
	ck_assert_int_eq(MATCH("", 3), PS_ERR_AUTH);
	/* NUL inside, oversized */
	ck_assert_int_eq(ps_sshauth_match(&tu_log, "publickey\0x", 11, &list, 3,
	    &entry), PS_ERR_INVALID);
	info = calloc(1, PS_SSH_AUTH_INFO_MAX + 2);
	memset(info, 'a', PS_SSH_AUTH_INFO_MAX + 1);
	ck_assert_int_eq(MATCH(info, 3), PS_ERR_INVALID);
	free(info);
#undef MATCH
	free(alice);
	free(bob);
	free(ivan);
	free(carol);
	ps_reg_list_free(&list);
}
END_TEST

/* ------------------------------------------------------------ whole flows */

struct script {
	char said[8192];
	int prompts;
	const char *signer;		/* fixture key that answers */
	const char *sign_user;		/* re-target: sign for this user */
	const char *fixed;		/* answer this text instead */
	char last_answer[2048];
};

static void
script_say(void *arg, const char *msg)
{
	struct script *s = arg;

	strncat(s->said, msg, sizeof(s->said) - strlen(s->said) - 2);
	strcat(s->said, "\n");
}

/* What the user does: copy the challenge line, run the responder. */
static int
script_prompt(void *arg, int echo, const char *msg, char **answer)
{
	struct script *s = arg;
	struct ps_challenge c;
	const char *p = strstr(msg, "\npersonalsign-respond "
	    PS_CHALLENGE_LINE_PREFIX);
	char *line;
	size_t n;

	s->prompts++;
	ck_assert_int_eq(echo, 1);
	ck_assert_ptr_nonnull(p);
	p += strlen("\npersonalsign-respond ");
	n = strlen(msg);
	ck_assert_uint_gt(n, strlen(PS_RESPONSE_PROMPT));
	ck_assert_str_eq(msg + n - strlen(PS_RESPONSE_PROMPT),
	    PS_RESPONSE_PROMPT);
	if (s->fixed != NULL) {
		*answer = strdup(s->fixed);
		return PS_OK;
	}
	ck_assert_ptr_nonnull(p);
	n = strcspn(p, "\n");
	ck_assert_int_eq(ps_challenge_line_parse(p, n, &c, NULL), PS_OK);
	if (s->sign_user != NULL) {
		free(c.user);
		c.user = strdup(s->sign_user);
	}
	line = respond_as(&c, s->signer);
	snprintf(s->last_answer, sizeof(s->last_answer), "%s", line);
	*answer = line;
	ps_challenge_clear(&c);
	return PS_OK;
}

static void
register_user(const char *user, const char *cert)
{
	struct ps_registry *reg;
	struct ps_reg_change why = { "test", "unit test" };
	X509 *x = tu_load_cert(cert);

	ck_assert_int_eq(ps_registry_file_open(cfg.registry_dir, &tu_log, true,
	    &reg), PS_OK);
	ck_assert_int_eq(ps_registry_add(reg, user, x, &why), PS_OK);
	ps_registry_close(reg);
	X509_free(x);
}

static int
login(struct script *s, const char *user, const char *rhost,
    const char *info, struct ps_auth_result *res)
{
	struct ps_conv conv = { script_prompt, script_say, script_say, s };
	struct ps_auth_request req;

	memset(&req, 0, sizeof(req));
	req.user = user;
	req.service = "sshd";
	req.rhost = rhost;
	return ps_authenticate_ssh(&cfg, &tu_log, &conv, &req, info, res);
}

START_TEST(flow_remote_mode)
{
	struct ps_auth_result res;
	struct script ok = { .signer = "alice" };
	struct script wrong = { .signer = "bob" };
	struct script other = { .signer = "alice", .sign_user = "bob" };
	struct script garbage = { .fixed = "personalsign-response:AAAA" };
	struct script replay = { .signer = NULL };
	char fp[PS_FP_HEX_LEN + 1];
	X509 *x;

	register_user("alice", "alice.crt");
	register_user("bob", "bob.crt");
	set("mode", "remote");
	ck_assert_int_eq(login(&ok, "alice", "192.0.2.7", NULL, &res), PS_OK);
	ck_assert_int_eq(ok.prompts, 1);
	x = tu_load_cert("alice.crt");
	ck_assert_int_eq(ps_cert_fingerprint(x, fp), PS_OK);
	X509_free(x);
	ck_assert_str_eq(res.fingerprint, fp);

	ck_assert_int_eq(login(&wrong, "alice", "192.0.2.7", NULL, &res),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(wrong.said, "not a valid registered key"));
	ck_assert_str_eq(res.fingerprint, "");
	ck_assert_int_eq(login(&other, "alice", "192.0.2.7", NULL, &res),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(other.said, "different challenge"));
	ck_assert_int_eq(login(&garbage, "alice", "192.0.2.7", NULL, &res),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(garbage.said, "not a complete response"));
	/* the first login's answer, pasted again */
	replay.fixed = ok.last_answer;
	ck_assert_int_eq(login(&replay, "alice", "192.0.2.7", NULL, &res),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(replay.said, "different challenge"));

	/* mode=auto: remote for a remote session */
	set("mode", "auto");
	ok.prompts = 0;
	ok.said[0] = '\0';
	ck_assert_int_eq(login(&ok, "alice", "192.0.2.7", NULL, &res), PS_OK);
	ck_assert_int_eq(ok.prompts, 1);
	/* nothing registered: no challenge shown */
	ok.prompts = 0;
	ck_assert_int_eq(login(&ok, "carol", "192.0.2.7", NULL, &res),
	    PS_ERR_NOT_FOUND);
	ck_assert_int_eq(ok.prompts, 0);
}
END_TEST

START_TEST(flow_mode_choice)
{
	ck_assert_int_eq(ps_effective_mode(&cfg, NULL), PS_MODE_LOCAL);
	set("mode", "auto");
	ck_assert_int_eq(ps_effective_mode(&cfg, NULL), PS_MODE_LOCAL);
	ck_assert_int_eq(ps_effective_mode(&cfg, ""), PS_MODE_LOCAL);
	ck_assert_int_eq(ps_effective_mode(&cfg, "192.0.2.1"), PS_MODE_REMOTE);
	set("allow_remote_token", NULL);
	ck_assert_int_eq(ps_effective_mode(&cfg, "192.0.2.1"), PS_MODE_LOCAL);
	set("mode", "sshauth");
	ck_assert_int_eq(ps_effective_mode(&cfg, NULL), PS_MODE_SSHAUTH);
	set("mode", "remote");
	ck_assert_int_eq(ps_effective_mode(&cfg, NULL), PS_MODE_REMOTE);
}
END_TEST

START_TEST(flow_sshauth_mode)
{
	struct ps_auth_result res;
	struct script s = { .signer = "alice" };
	char *alice = key_text("alice.crt"), *carol = key_text("carol.crt");
	char *info;

	register_user("alice", "alice.crt");
	set("mode", "sshauth");
	ck_assert(asprintf(&info, "publickey %s\n", alice) > 0);
	ck_assert_int_eq(login(&s, "alice", "192.0.2.7", info, &res), PS_OK);
	ck_assert_int_eq(s.prompts, 0);
	free(info);
	ck_assert(asprintf(&info, "publickey %s\n", carol) > 0);
	ck_assert_int_eq(login(&s, "alice", "192.0.2.7", info, &res),
	    PS_ERR_AUTH);
	ck_assert_ptr_nonnull(strstr(s.said, "not a registered PersonalSign"));
	free(info);
	ck_assert_int_eq(login(&s, "alice", "192.0.2.7", NULL, &res),
	    PS_ERR_NO_TOKEN);
	ck_assert_int_eq(login(&s, "alice", "192.0.2.7", "", &res),
	    PS_ERR_NO_TOKEN);
	ck_assert_int_eq(s.prompts, 0);
	free(alice);
	free(carol);
}
END_TEST

static Suite *
remote_suite(void)
{
	Suite *s = suite_create("remote");
	TCase *tc;

	tc = tcase_create("wire");
	tcase_add_test(tc, b64_round_trip_and_canonical);
	tcase_add_test(tc, wire_reader_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("sshkey");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, sshkey_round_trip, 0, 3);
	tcase_add_loop_test(tc, sshkey_truncated_and_extended, 0, 3);
	tcase_add_test(tc, sshkey_refuses_garbage);
	tcase_add_test(tc, sshkey_refuses_bad_rsa);
	tcase_add_loop_test(tc,
	    authorized_keys_line_round_trips_through_ssh_keygen, 0, 3);
	tcase_add_test(tc, authorized_keys_prints_only_usable_keys);
	tcase_add_test(tc, authorized_keys_comment_takes_no_hostile_email);
	suite_add_tcase(s, tc);

	tc = tcase_create("lines");
	tcase_add_test(tc, challenge_line_round_trip);
	tcase_add_test(tc, challenge_line_refusals);
	tcase_add_test(tc, response_line_corruptions);
	tcase_add_test(tc, response_payload_fields);
	suite_add_tcase(s, tc);

	tc = tcase_create("check");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, remote_check_accepts_once);
	tcase_add_test(tc, remote_check_refusals);
	tcase_add_test(tc, replay_dir_must_be_safe);
	tcase_add_test(tc, replay_entries_expire);
	tcase_add_test(tc, replay_mark_waits_for_the_directory_lock);
	tcase_add_test(tc, sshauth_match_lines);
	suite_add_tcase(s, tc);

	tc = tcase_create("flows");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, flow_remote_mode);
	tcase_add_test(tc, flow_mode_choice);
	tcase_add_test(tc, flow_sshauth_mode);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run(remote_suite());
}
