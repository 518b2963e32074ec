/*
 * openvpn-plugin-personalsign.c - the OpenVPN auth plugin (plugin API v3):
 * a client may connect only with a certificate whose key is registered to
 * a user in the personalsign registry and passes certificate policy now,
 * and, when it sends a user name, only with the name of that key's owner.
 *
 * Events:
 *   TLS_VERIFY, depth 0   The TLS handshake has already proved that the
 *                         client holds the certificate's private key, and
 *                         OpenVPN has verified the chain against its --ca.
 *                         We look the key up in the registry (O(1) through
 *                         the key index), require a usable entry, run the
 *                         shared certificate policy, and remember the owner
 *                         in the per-client context.
 *   TLS_VERIFY, depth > 0 Success: the chain is OpenVPN's job.
 *   AUTH_USER_PASS_VERIFY The user name sent by the client must be the owner
 *                         recorded at TLS_VERIFY for this very certificate,
 *                         so Alice's card cannot log in as Bob. The password
 *                         is ignored (stack OpenVPN's auth-pam plugin for a
 *                         second factor).
 *
 * TLS_VERIFY cannot be deferred and runs in OpenVPN's single event loop, so
 * everything here is synchronous and cheap: the configuration and trust
 * anchors are loaded once at open into an immutable policy; a call costs a
 * few small file reads in the registry and, with crl_dir, a lookup in the
 * CRL index that personalsign-enroll crl-update keeps (bench/README.md has
 * the numbers). The handle is never written after
 * open; per-client data is only touched by calls for that client. There is
 * no global mutable state, so several instances (or threads) may coexist.
 *
 * Every path that is not an explicit success returns FUNC_ERROR.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <openvpn/openvpn-plugin.h>

#include "cert.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "ps_status.h"
#include "registry.h"
#include "util.h"

#define PLUGIN_NAME		"personalsign"
/* Struct version 3 (OpenVPN 2.4) has ssl_api and current_cert. */
#define MIN_STRUCTVER		3
/* Options on the plugin line, after splitting quoted strings. */
#define MAX_WORDS		64
/* SHA-256 of the DER certificate, lower-case hex. */
#define CERT_DIGEST_HEX_LEN	(2 * 32)
#define PEER_MAX		80
#define WHY_MAX			320

/* The plugin handle: filled in by open, read-only afterwards. */
struct plugin {
	plugin_log_t plugin_log;
	struct ps_log log;
	struct ps_config cfg;
	bool have_cfg;
	struct ps_registry *reg;
	struct ps_policy *policy;
};

/* What TLS_VERIFY established about one client connection. */
struct client {
	bool verified;
	char owner[PS_USER_NAME_MAX];
	char cert_digest[CERT_DIGEST_HEX_LEN + 1];
};

/* The words of the plugin line, split and owned. */
struct words {
	char *copies[MAX_WORDS];
	size_t ncopies;
	const char *word[MAX_WORDS];
	int nword;
};

/* Exported entry points (see openvpn-plugin-personalsign.map). The header
 * declares them; repeating the prototypes keeps -Wmissing-prototypes
 * honest if the header ever changes. */
int openvpn_plugin_min_version_required_v1(void);
int openvpn_plugin_open_v3(const int v3structver,
    struct openvpn_plugin_args_open_in const *in,
    struct openvpn_plugin_args_open_return *ret);
int openvpn_plugin_func_v3(const int v3structver,
    struct openvpn_plugin_args_func_in const *in,
    struct openvpn_plugin_args_func_return *ret);
void openvpn_plugin_close_v1(openvpn_plugin_handle_t handle);
void *openvpn_plugin_client_constructor_v1(openvpn_plugin_handle_t handle);
void openvpn_plugin_client_destructor_v1(openvpn_plugin_handle_t handle,
    void *per_client_context);

/* ------------------------------------------------------------ logging */

/* The ps_log sink: every core message goes to OpenVPN's own log, with the
 * message passed as data, never as a format. */
static void
log_to_openvpn(void *arg, enum ps_log_level level, const char *msg)
{
	const struct plugin *p = arg;
	openvpn_plugin_log_flags_t flags;

	switch (level) {
	case PS_LOG_ERR:
		flags = PLOG_ERR;
		break;
	case PS_LOG_WARN:
		flags = PLOG_WARN;
		break;
	case PS_LOG_DEBUG:
		flags = PLOG_DEBUG;
		break;
	case PS_LOG_NOTICE:
	case PS_LOG_INFO:
	default:
		flags = PLOG_NOTE;
		break;
	}
	p->plugin_log(flags, PLUGIN_NAME, "%s", msg);
}

/* ------------------------------------------------------------ environment */

static const char *
env_get(const char **envp, const char *name)
{
	size_t n = strlen(name);

	if (envp == NULL)
		return NULL;
	for (; *envp != NULL; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* "ADDR:PORT" of the client for log lines; "?" parts when unknown. */
static void
describe_peer(const char **envp, char *out, size_t outlen)
{
	const char *ip4 = env_get(envp, "untrusted_ip");
	const char *ip6 = env_get(envp, "untrusted_ip6");
	const char *port = env_get(envp, "untrusted_port");

	if (port == NULL)
		port = "?";
	if (ip4 != NULL)
		snprintf(out, outlen, "%s:%s", ip4, port);
	else if (ip6 != NULL)
		snprintf(out, outlen, "[%s]:%s", ip6, port);
	else
		snprintf(out, outlen, "?:%s", port);
}

/*
 * OpenVPN's tls_digest_sha256_0 ("ab:cd:...") in our form (64 lower-case
 * hex digits). False when absent or malformed.
 */
static bool
env_cert_digest(const char **envp, char out[CERT_DIGEST_HEX_LEN + 1])
{
	const char *v = env_get(envp, "tls_digest_sha256_0");
	size_t n = 0;

	if (v == NULL)
		return false;
	for (; *v != '\0'; v++) {
		char c = *v;

		if (c == ':')
			continue;
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (n == CERT_DIGEST_HEX_LEN ||
		    !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return n == CERT_DIGEST_HEX_LEN;
}

/* ------------------------------------------------------------ open */

/*
 * OpenVPN passes each word of the `plugin` line as one argument, but a
 * quoted string (the usual auth-pam spelling) arrives as one argument with
 * blanks in it. Split those too so both spellings mean the same; option
 * values therefore cannot contain blanks.
 */
static int
split_words(const struct plugin *p, const char **argv, struct words *w)
{
	char *save, *tok;
	size_t i;

	memset(w, 0, sizeof(*w));
	if (argv == NULL || argv[0] == NULL)
		return PS_OK;
	for (i = 1; argv[i] != NULL; i++) {
		if (w->ncopies == MAX_WORDS) {
			ps_log_err(&p->log, "too many plugin arguments "
			    "(at most %d)", MAX_WORDS);
			return PS_ERR_INVALID;
		}
		if ((w->copies[w->ncopies] = strdup(argv[i])) == NULL) {
			ps_log_err(&p->log, "out of memory");
			return PS_ERR_NOMEM;
		}
		for (tok = strtok_r(w->copies[w->ncopies++], " \t", &save);
		    tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
			if (w->nword == MAX_WORDS) {
				ps_log_err(&p->log, "too many plugin options "
				    "(at most %d)", MAX_WORDS);
				return PS_ERR_INVALID;
			}
			w->word[w->nword++] = tok;
		}
	}
	return PS_OK;
}

static void
words_free(struct words *w)
{
	size_t i;

	for (i = 0; i < w->ncopies; i++)
		free(w->copies[i]);
	memset(w, 0, sizeof(*w));
}

/* The same options, file and defaults as the PAM module; an unknown
 * option is an error so that a typo stops OpenVPN from starting. */
static int
load_config(struct plugin *p, const char **argv)
{
	struct words w;
	int r;

	if ((r = split_words(p, argv, &w)) != PS_OK)
		goto out;
	if ((r = ps_config_from_args(&p->cfg, w.nword, w.word,
	    &p->log)) != PS_OK) {
		ps_log_err(&p->log, "bad plugin configuration: OpenVPN "
		    "cannot use this plugin");
		goto out;
	}
	p->have_cfg = true;
	r = PS_OK;
 out:
	words_free(&w);
	return r;
}

/* The plugin hands OpenVPN's X509 objects to our libcrypto, and relies on
 * the v3 structures it uses; refuse anything else at startup. */
static int
check_openvpn(const struct plugin *p, int v3structver,
    const struct openvpn_plugin_args_open_in *in)
{
	if (v3structver < MIN_STRUCTVER) {
		ps_log_err(&p->log, "OpenVPN plugin structure version %d is "
		    "too old (need %d: OpenVPN 2.4 or later)", v3structver,
		    MIN_STRUCTVER);
		return PS_ERR_INVALID;
	}
	if (in->ssl_api != SSLAPI_OPENSSL) {
		ps_log_err(&p->log, "this OpenVPN is not built with OpenSSL; "
		    "the plugin needs OpenSSL certificates");
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

/*
 * A missing or untrusted file registry is a configuration error that
 * should stop OpenVPN now, not refuse every client later. The backend
 * repeats these checks on every lookup, so this only adds a clear message.
 */
static int
check_registry_dir(const struct plugin *p)
{
	const char *backend = p->cfg.registry_backend;
	const char *dir = p->cfg.registry_dir;
	struct stat st;

	if (backend != NULL && strcmp(backend, "file") != 0)
		return PS_OK;
	if (dir == NULL)
		dir = PS_DEFAULT_REGISTRY;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		ps_log_err(&p->log, "registry %s is not a directory", dir);
		return PS_ERR_NOT_FOUND;
	}
	if (!ps_path_trusted(&p->log, dir))
		return PS_ERR_UNSAFE;
	return PS_OK;
}

static void
plugin_free(struct plugin *p)
{
	if (p == NULL)
		return;
	ps_registry_close(p->reg);
	ps_policy_free(p->policy);
	if (p->have_cfg)
		ps_config_free(&p->cfg);
	free(p);
}

int
openvpn_plugin_min_version_required_v1(void)
{
	return OPENVPN_PLUGIN_VERSION;
}

int
openvpn_plugin_open_v3(const int v3structver,
    struct openvpn_plugin_args_open_in const *in,
    struct openvpn_plugin_args_open_return *ret)
{
	struct plugin *p = NULL;
	int rc = OPENVPN_PLUGIN_FUNC_ERROR;

	/* without a log callback nobody could be told why: just refuse */
	if (in == NULL || ret == NULL || in->callbacks == NULL ||
	    in->callbacks->plugin_log == NULL)
		return OPENVPN_PLUGIN_FUNC_ERROR;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		in->callbacks->plugin_log(PLOG_ERR, PLUGIN_NAME,
		    "out of memory");
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	p->plugin_log = in->callbacks->plugin_log;
	p->log.fn = log_to_openvpn;
	p->log.arg = p;
	if (check_openvpn(p, v3structver, in) != PS_OK)
		goto out;
	if (load_config(p, in->argv) != PS_OK)
		goto out;
	p->log.debug = p->cfg.debug;
	if (ps_policy_new(&p->cfg, &p->log, &p->policy) != PS_OK) {
		ps_log_err(&p->log, "cannot set up certificate policy");
		goto out;
	}
	if (check_registry_dir(p) != PS_OK)
		goto out;
	if (ps_registry_open(&p->cfg, &p->log, &p->reg) != PS_OK) {
		ps_log_err(&p->log, "cannot open the registry");
		goto out;
	}
	ret->type_mask = OPENVPN_PLUGIN_MASK(OPENVPN_PLUGIN_TLS_VERIFY) |
	    OPENVPN_PLUGIN_MASK(OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY);
	ret->handle = p;
	ps_log_notice(&p->log, "ready: registry %s, trust anchors %s",
	    p->cfg.registry_dir != NULL ? p->cfg.registry_dir :
	    PS_DEFAULT_REGISTRY, p->cfg.ca_file != NULL ? p->cfg.ca_file :
	    p->cfg.ca_dir != NULL ? p->cfg.ca_dir : "(none: OpenVPN's --ca)");
	p = NULL;
	rc = OPENVPN_PLUGIN_FUNC_SUCCESS;
 out:
	plugin_free(p);
	return rc;
}

void
openvpn_plugin_close_v1(openvpn_plugin_handle_t handle)
{
	plugin_free(handle);
}

void *
openvpn_plugin_client_constructor_v1(openvpn_plugin_handle_t handle)
{
	/* NULL (out of memory) makes every call for this client fail */
	return calloc(1, sizeof(struct client));
}

void
openvpn_plugin_client_destructor_v1(openvpn_plugin_handle_t handle,
    void *per_client_context)
{
	free(per_client_context);
}

/* ------------------------------------------------------------ TLS_VERIFY */

static void
client_forget(struct client *cl)
{
	memset(cl, 0, sizeof(*cl));
}

/* SHA-256 of the whole DER certificate, the form OpenVPN exports as
 * tls_digest_sha256_0: it binds AUTH_USER_PASS_VERIFY to this cert. */
static int
cert_digest(const X509 *cert, char out[CERT_DIGEST_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	out[0] = '\0';
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 ||
	    mdlen * 2 != CERT_DIGEST_HEX_LEN)
		return PS_ERR_CRYPTO;
	ps_hex_encode(md, mdlen, out);
	return PS_OK;
}

/* The entry for key `fp` among one user's usable entries; NULL when it is
 * not there (retired since the index was read, or an inconsistent
 * registry). */
static const struct ps_reg_entry *
find_entry(const struct ps_reg_list *list, const char *fp)
{
	size_t i;

	for (i = 0; i < list->count; i++)
		if (strcmp(list->entries[i].fingerprint, fp) == 0)
			return &list->entries[i];
	return NULL;
}

/*
 * Policy for the certificate the client presented and, when the registry
 * holds a different certificate for the same key (reissued by the CA
 * without a new key), for the registered one too: both must be usable now.
 */
static int
check_policy(const struct plugin *p, X509 *presented,
    const struct ps_reg_entry *entry, char *why, size_t whylen)
{
	char reason[WHY_MAX];
	time_t now = time(NULL);
	int r;

	reason[0] = '\0';
	r = ps_policy_check(p->policy, presented, now, reason, sizeof(reason));
	if (r != PS_OK) {
		snprintf(why, whylen, "certificate refused by policy: %s",
		    reason[0] != '\0' ? reason : ps_status_str(r));
		return r;
	}
	if (X509_cmp(presented, entry->cert) == 0)
		return PS_OK;
	r = ps_policy_check(p->policy, entry->cert, now, reason,
	    sizeof(reason));
	if (r != PS_OK) {
		snprintf(why, whylen, "registered certificate for this key "
		    "refused by policy: %s",
		    reason[0] != '\0' ? reason : ps_status_str(r));
		return r;
	}
	return PS_OK;
}

/* The owner of the key in `cert`, with a usable entry for it that passes
 * policy. On failure `why` says why, in words for the log. */
static int
verify_leaf(const struct plugin *p, X509 *cert, char *owner_out,
    size_t owner_len, char *why, size_t whylen)
{
	char fp[PS_FP_HEX_LEN + 1];
	struct ps_reg_list list = { NULL, 0 };
	const struct ps_reg_entry *entry;
	char *owner = NULL;
	int r;

	if ((r = ps_cert_fingerprint(cert, fp)) != PS_OK) {
		snprintf(why, whylen, "cannot read the certificate's public "
		    "key (%s)", ps_status_str(r));
		goto out;
	}
	r = ps_registry_find_key(p->reg, fp, &owner);
	if (r == PS_ERR_NOT_FOUND) {
		snprintf(why, whylen, "key %.16s is not registered to anyone "
		    "(unregistered, retired or removed)", fp);
		goto out;
	} else if (r != PS_OK) {
		snprintf(why, whylen, "registry lookup of key %.16s failed "
		    "(%s)", fp, ps_status_str(r));
		goto out;
	}
	if ((r = ps_registry_lookup_user(p->reg, owner, &list)) != PS_OK) {
		snprintf(why, whylen, "key %.16s: no usable entries for user "
		    "%s (%s)", fp, owner, ps_status_str(r));
		goto out;
	}
	entry = find_entry(&list, fp);
	if (entry == NULL || entry->state == PS_KEY_RETIRED) {
		snprintf(why, whylen, "key %.16s is not a usable registration "
		    "of user %s", fp, owner);
		r = PS_ERR_NOT_FOUND;
		goto out;
	}
	if ((r = check_policy(p, cert, entry, why, whylen)) != PS_OK)
		goto out;
	if (strlen(owner) >= owner_len) {
		snprintf(why, whylen, "user name too long");
		r = PS_ERR_INVALID;
		goto out;
	}
	memcpy(owner_out, owner, strlen(owner) + 1);
	snprintf(why, whylen, "key %.16s (%s) of user %s", fp,
	    ps_key_state_name(entry->state), owner);
	r = PS_OK;
 out:
	ps_reg_list_free(&list);
	free(owner);
	return r;
}

static int
on_tls_verify(const struct plugin *p,
    const struct openvpn_plugin_args_func_in *in, struct client *cl)
{
	char peer[PEER_MAX], why[WHY_MAX], owner[PS_USER_NAME_MAX];
	const char *subject;
	int r;

	if (in->current_cert_depth > 0) {
		/* OpenSSL walks the chain from the top down to depth 0: a new
		 * handshake starts from nothing, whatever came before */
		if (cl != NULL)
			client_forget(cl);
		return OPENVPN_PLUGIN_FUNC_SUCCESS;
	}
	describe_peer(in->envp, peer, sizeof(peer));
	subject = in->argv != NULL && in->argv[0] != NULL &&
	    in->argv[1] != NULL && in->argv[2] != NULL ? in->argv[2] : "?";
	if (cl == NULL) {
		ps_log_err(&p->log, "client %s: refused: no per-client state "
		    "(out of memory?)", peer);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	client_forget(cl);
	if (in->current_cert_depth != 0 || in->current_cert == NULL) {
		ps_log_err(&p->log, "client %s: refused: OpenVPN passed no "
		    "certificate", peer);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	why[0] = '\0';
	r = verify_leaf(p, in->current_cert, owner, sizeof(owner), why,
	    sizeof(why));
	if (r == PS_OK && cert_digest(in->current_cert, cl->cert_digest) !=
	    PS_OK) {
		snprintf(why, sizeof(why), "cannot hash the certificate");
		r = PS_ERR_CRYPTO;
	}
	if (r != PS_OK) {
		client_forget(cl);
		ps_log_warn(&p->log, "TLS_VERIFY client %s (%s): refused: %s",
		    peer, subject, why);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	memcpy(cl->owner, owner, sizeof(cl->owner));
	cl->verified = true;
	ps_log_notice(&p->log, "TLS_VERIFY client %s (%s): accepted %s",
	    peer, subject, why);
	return OPENVPN_PLUGIN_FUNC_SUCCESS;
}

/* ------------------------------------------------------------ AUTH_USER_PASS */

static int
on_auth_user_pass(const struct plugin *p,
    const struct openvpn_plugin_args_func_in *in, const struct client *cl)
{
	char peer[PEER_MAX], digest[CERT_DIGEST_HEX_LEN + 1];
	const char *username = env_get(in->envp, "username");

	describe_peer(in->envp, peer, sizeof(peer));
	if (cl == NULL || !cl->verified) {
		ps_log_warn(&p->log, "AUTH_USER_PASS_VERIFY client %s: refused: "
		    "no certificate was accepted by this plugin for this "
		    "connection", peer);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	if (!env_cert_digest(in->envp, digest) ||
	    strcmp(digest, cl->cert_digest) != 0) {
		ps_log_warn(&p->log, "AUTH_USER_PASS_VERIFY client %s: refused: "
		    "the certificate of this session is not the one verified "
		    "for user %s", peer, cl->owner);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	if (username == NULL || username[0] == '\0') {
		ps_log_warn(&p->log, "AUTH_USER_PASS_VERIFY client %s: refused: "
		    "no user name sent (the certificate belongs to %s)", peer,
		    cl->owner);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	if (strcmp(username, cl->owner) != 0) {
		ps_log_warn(&p->log, "AUTH_USER_PASS_VERIFY client %s: refused: "
		    "user name \"%s\" is not the owner of the certificate (%s)",
		    peer, username, cl->owner);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	ps_log_notice(&p->log, "AUTH_USER_PASS_VERIFY client %s: accepted "
	    "user %s", peer, username);
	return OPENVPN_PLUGIN_FUNC_SUCCESS;
}

int
openvpn_plugin_func_v3(const int v3structver,
    struct openvpn_plugin_args_func_in const *in,
    struct openvpn_plugin_args_func_return *ret)
{
	const struct plugin *p;

	if (in == NULL || in->handle == NULL)
		return OPENVPN_PLUGIN_FUNC_ERROR;
	p = in->handle;
	if (v3structver < MIN_STRUCTVER) {
		ps_log_err(&p->log, "refused: plugin structure version %d "
		    "too old", v3structver);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
	switch (in->type) {
	case OPENVPN_PLUGIN_TLS_VERIFY:
		return on_tls_verify(p, in, in->per_client_context);
	case OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY:
		return on_auth_user_pass(p, in, in->per_client_context);
	default:
		ps_log_err(&p->log, "refused: unexpected plugin event %d",
		    in->type);
		return OPENVPN_PLUGIN_FUNC_ERROR;
	}
}
