/*
 * config.h - personalsign.conf and module arguments -> one struct ps_config.
 *
 * The same option names work in the configuration file (key = value, one
 * per line, '#' comments) and as PAM module / OpenVPN plugin arguments
 * (key=value, or a bare flag). Arguments override the file. An unknown
 * option or a bad value is an error: a typo must never silently weaken
 * authentication.
 */
#ifndef PS_CONFIG_H
#define PS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

#ifndef PS_SYSCONFDIR
#define PS_SYSCONFDIR "/etc"
#endif
#define PS_DEFAULT_CONFIG	PS_SYSCONFDIR "/personalsign/personalsign.conf"
#define PS_DEFAULT_REGISTRY	PS_SYSCONFDIR "/personalsign/registry"
#define PS_DEFAULT_KEYSTORE	"%h/.personalsign/keystore.pfx"

enum ps_backend {
	PS_BACKEND_SOFT,	/* PKCS#12 / encrypted PEM keystore file */
	PS_BACKEND_PIV,		/* PIV card over pcsc-lite */
	PS_BACKEND_AUTO,	/* a card when one is present, else the keystore */
};

enum ps_mode {
	PS_MODE_LOCAL,		/* token on this machine */
	PS_MODE_REMOTE,		/* challenge shown, response pasted back */
	PS_MODE_SSHAUTH,	/* key already proven by sshd (SSH_AUTH_INFO_0) */
	PS_MODE_AUTO,		/* local unless remote session, then remote */
};

enum ps_crl_policy {
	PS_CRL_OFF,
	PS_CRL_IFPRESENT,
	PS_CRL_REQUIRE,
};

struct ps_config {
	/* general */
	bool debug;
	bool nouserok;		/* PAM_IGNORE for users with no registration */
	bool use_first_pass;
	bool try_first_pass;
	int expiry_warn_days;

	/* registry */
	char *registry_backend;	/* "file" or "ldap" */
	char *registry_dir;

	/* tokens */
	enum ps_backend backend;
	char *keystore;		/* path pattern, %u user, %h home, %% */
	char *pcsc_socket;
	char *reader;		/* substring of the reader name */
	int card_timeout;	/* seconds to wait for a card */
	int min_pin_retries;	/* refuse to try when tries left <= this */

	/* certificate policy */
	char *ca_file;
	char *ca_dir;
	char *crl_dir;
	enum ps_crl_policy crl;
	char *cert_policy;	/* ca,crl,no_ca,...; NULL: strict with a CA */
	int clock_skew;		/* seconds */
	char *eku;		/* comma list: clientAuth,emailProtection */
	char *identity;		/* "email" or "subject": who is the same person */

	/* remote / SSH */
	enum ps_mode mode;
	bool allow_remote_token;	/* use local token even when PAM_RHOST set */
	int challenge_lifetime;		/* seconds */
	char *state_dir;		/* replay cache for remote responses */

	/* lifecycle */
	bool allow_self_renew;
	bool auto_renew;

	/* LDAP registry */
	char *ldap_uri;
	char *ldap_base;
	char *ldap_filter;
	char *ldap_binddn;
	char *ldap_bindpw_file;
	int ldap_timeout;
};

/* Fill in the built-in defaults. PS_OK or PS_ERR_NOMEM. */
int ps_config_init(struct ps_config *cfg);
void ps_config_free(struct ps_config *cfg);

/*
 * Set one option. `value` is NULL for a bare flag ("debug"). On failure
 * returns PS_ERR_INVALID (unknown key, bad value) or PS_ERR_NOMEM and
 * writes a one-line reason into err.
 */
int ps_config_set(struct ps_config *cfg, const char *key, const char *value,
    char *err, size_t errlen);

/*
 * Parse configuration text: `text` has `len` bytes plus room for one more
 * (it is modified in place). `source` names it in error messages.
 */
int ps_config_parse_text(struct ps_config *cfg, char *text, size_t len,
    const char *source, const struct ps_log *log);

/*
 * Read a configuration file. The file must be trusted (ps_path_trusted).
 * A missing file is PS_ERR_NOT_FOUND so that callers can decide whether
 * that is fine (the default path) or not (an explicit config=).
 */
int ps_config_load_file(struct ps_config *cfg, const char *path,
    const struct ps_log *log);

/*
 * The full sequence for a module or plugin: defaults, then the file named
 * by a config= argument (or the default path, which may be absent), then
 * every argument. PS_OK or an error already logged.
 */
int ps_config_from_args(struct ps_config *cfg, int argc, const char **argv,
    const struct ps_log *log);

const char *ps_backend_name(enum ps_backend b);
const char *ps_mode_name(enum ps_mode m);

#endif /* PS_CONFIG_H */
