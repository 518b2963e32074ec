/*
 * config.c - one table of options shared by personalsign.conf and module
 * or plugin arguments (config.h).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ps_status.h"
#include "util.h"

#define PS_CONFIG_FILE_MAX (64 * 1024)

/* OPT_CHOICE: a string that must be one of `values` (kept as a string). */
enum opt_type { OPT_BOOL, OPT_INT, OPT_STRING, OPT_PATH, OPT_ENUM, OPT_CHOICE };

struct opt_enum_value {
	const char *name;
	int value;
};

struct opt {
	const char *name;
	enum opt_type type;
	size_t offset;
	int min, max;				/* OPT_INT */
	const struct opt_enum_value *values;	/* OPT_ENUM, NULL-terminated */
};

static const struct opt_enum_value backend_values[] = {
	{ "soft", PS_BACKEND_SOFT }, { "piv", PS_BACKEND_PIV },
	{ "auto", PS_BACKEND_AUTO }, { NULL, 0 },
};
static const struct opt_enum_value mode_values[] = {
	{ "local", PS_MODE_LOCAL }, { "remote", PS_MODE_REMOTE },
	{ "sshauth", PS_MODE_SSHAUTH }, { "auto", PS_MODE_AUTO }, { NULL, 0 },
};
static const struct opt_enum_value identity_values[] = {
	{ "email", 0 }, { "subject", 0 }, { NULL, 0 },
};
static const struct opt_enum_value crl_values[] = {
	{ "off", PS_CRL_OFF }, { "ifpresent", PS_CRL_IFPRESENT },
	{ "require", PS_CRL_REQUIRE }, { NULL, 0 },
};

#define O(field) offsetof(struct ps_config, field)
static const struct opt options[] = {
	{ "debug", OPT_BOOL, O(debug), 0, 0, NULL },
	{ "nouserok", OPT_BOOL, O(nouserok), 0, 0, NULL },
	{ "use_first_pass", OPT_BOOL, O(use_first_pass), 0, 0, NULL },
	{ "try_first_pass", OPT_BOOL, O(try_first_pass), 0, 0, NULL },
	{ "expiry_warn_days", OPT_INT, O(expiry_warn_days), 0, 3650, NULL },
	{ "registry_backend", OPT_STRING, O(registry_backend), 0, 0, NULL },
	{ "registry", OPT_PATH, O(registry_dir), 0, 0, NULL },
	{ "backend", OPT_ENUM, O(backend), 0, 0, backend_values },
	{ "keystore", OPT_STRING, O(keystore), 0, 0, NULL },
	{ "pcsc_socket", OPT_PATH, O(pcsc_socket), 0, 0, NULL },
	{ "reader", OPT_STRING, O(reader), 0, 0, NULL },
	{ "card_timeout", OPT_INT, O(card_timeout), 0, 600, NULL },
	{ "min_pin_retries", OPT_INT, O(min_pin_retries), 0, 15, NULL },
	{ "ca_file", OPT_PATH, O(ca_file), 0, 0, NULL },
	{ "ca_dir", OPT_PATH, O(ca_dir), 0, 0, NULL },
	{ "crl_dir", OPT_PATH, O(crl_dir), 0, 0, NULL },
	{ "crl", OPT_ENUM, O(crl), 0, 0, crl_values },
	{ "cert_policy", OPT_STRING, O(cert_policy), 0, 0, NULL },
	{ "clock_skew", OPT_INT, O(clock_skew), 0, 86400, NULL },
	{ "eku", OPT_STRING, O(eku), 0, 0, NULL },
	{ "identity", OPT_CHOICE, O(identity), 0, 0, identity_values },
	{ "mode", OPT_ENUM, O(mode), 0, 0, mode_values },
	{ "allow_remote_token", OPT_BOOL, O(allow_remote_token), 0, 0, NULL },
	{ "challenge_lifetime", OPT_INT, O(challenge_lifetime), 10, 3600, NULL },
	{ "state_dir", OPT_PATH, O(state_dir), 0, 0, NULL },
	{ "allow_self_renew", OPT_BOOL, O(allow_self_renew), 0, 0, NULL },
	{ "auto_renew", OPT_BOOL, O(auto_renew), 0, 0, NULL },
	{ "ldap_uri", OPT_STRING, O(ldap_uri), 0, 0, NULL },
	{ "ldap_base", OPT_STRING, O(ldap_base), 0, 0, NULL },
	{ "ldap_filter", OPT_STRING, O(ldap_filter), 0, 0, NULL },
	{ "ldap_binddn", OPT_STRING, O(ldap_binddn), 0, 0, NULL },
	{ "ldap_bindpw_file", OPT_PATH, O(ldap_bindpw_file), 0, 0, NULL },
	{ "ldap_timeout", OPT_INT, O(ldap_timeout), 1, 120, NULL },
};
#undef O

static const struct opt *
find_option(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (strcmp(options[i].name, key) == 0)
			return &options[i];
	return NULL;
}

static int
set_string(char **field, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return PS_ERR_NOMEM;
	free(*field);
	*field = copy;
	return PS_OK;
}

int
ps_config_init(struct ps_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->expiry_warn_days = 90;
	cfg->backend = PS_BACKEND_SOFT;
	cfg->card_timeout = 0;
	cfg->min_pin_retries = 1;
	cfg->crl = PS_CRL_IFPRESENT;
	cfg->clock_skew = 300;
	cfg->mode = PS_MODE_LOCAL;
	cfg->challenge_lifetime = 120;
	cfg->ldap_timeout = 5;
	if (set_string(&cfg->registry_backend, "file") != PS_OK ||
	    set_string(&cfg->registry_dir, PS_DEFAULT_REGISTRY) != PS_OK ||
	    set_string(&cfg->keystore, PS_DEFAULT_KEYSTORE) != PS_OK) {
		ps_config_free(cfg);
		return PS_ERR_NOMEM;
	}
	return PS_OK;
}

void
ps_config_free(struct ps_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		if (options[i].type == OPT_STRING ||
		    options[i].type == OPT_PATH ||
		    options[i].type == OPT_CHOICE) {
			char **field = (char **)((char *)cfg + options[i].offset);

			free(*field);
			*field = NULL;
		}
	}
}

static int
parse_bool(const char *value, bool *out)
{
	if (value == NULL || strcmp(value, "yes") == 0 ||
	    strcmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
	    strcmp(value, "on") == 0) {
		*out = true;
		return PS_OK;
	}
	if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
	    strcmp(value, "0") == 0 || strcmp(value, "off") == 0) {
		*out = false;
		return PS_OK;
	}
	return PS_ERR_INVALID;
}

static int
parse_int(const char *value, int min, int max, int *out)
{
	char *end;
	long v;

	if (value == NULL || *value == '\0' || *value == '+' || *value == '-')
		return PS_ERR_INVALID;
	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return PS_ERR_INVALID;
	*out = (int)v;
	return PS_OK;
}

int
ps_config_set(struct ps_config *cfg, const char *key, const char *value,
    char *err, size_t errlen)
{
	const struct opt *o = find_option(key);
	void *field;
	size_t i;

	if (o == NULL) {
		snprintf(err, errlen, "unknown option \"%s\"", key);
		return PS_ERR_INVALID;
	}
	field = (char *)cfg + o->offset;
	if (o->type != OPT_BOOL && value == NULL) {
		snprintf(err, errlen, "option \"%s\" needs a value", key);
		return PS_ERR_INVALID;
	}
	switch (o->type) {
	case OPT_BOOL:
		if (parse_bool(value, field) != PS_OK)
			goto bad;
		return PS_OK;
	case OPT_INT:
		if (parse_int(value, o->min, o->max, field) != PS_OK) {
			snprintf(err, errlen, "option \"%s\": \"%s\" is not a "
			    "number from %d to %d", key, value, o->min, o->max);
			return PS_ERR_INVALID;
		}
		return PS_OK;
	case OPT_PATH:
		if (value[0] != '/') {
			snprintf(err, errlen, "option \"%s\": \"%s\" is not an "
			    "absolute path", key, value);
			return PS_ERR_INVALID;
		}
		/* FALLTHROUGH */
	case OPT_STRING:
		if (value[0] == '\0')
			goto bad;
		if (set_string(field, value) != PS_OK) {
			snprintf(err, errlen, "out of memory");
			return PS_ERR_NOMEM;
		}
		return PS_OK;
	case OPT_CHOICE:
		for (i = 0; o->values[i].name != NULL; i++)
			if (strcmp(o->values[i].name, value) == 0)
				break;
		if (o->values[i].name == NULL)
			goto bad;
		if (set_string(field, value) != PS_OK) {
			snprintf(err, errlen, "out of memory");
			return PS_ERR_NOMEM;
		}
		return PS_OK;
	case OPT_ENUM:
		for (i = 0; o->values[i].name != NULL; i++) {
			if (strcmp(o->values[i].name, value) == 0) {
				*(int *)field = o->values[i].value;
				return PS_OK;
			}
		}
		goto bad;
	}
 bad:
	snprintf(err, errlen, "option \"%s\": bad value \"%s\"", key,
	    value ? value : "");
	return PS_ERR_INVALID;
}

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

int
ps_config_parse_text(struct ps_config *cfg, char *text, size_t len,
    const char *source, const struct ps_log *log)
{
	char *line, *next, *key, *value, *eq;
	char err[256];
	size_t lineno = 0;
	int r;

	if (memchr(text, '\0', len) != NULL) {
		ps_log_err(log, "%s: contains a NUL byte", source);
		return PS_ERR_INVALID;
	}
	text[len] = '\0';
	for (line = text; line != NULL; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		value = NULL;
		if ((eq = strchr(key, '=')) != NULL) {
			*eq = '\0';
			value = trim(eq + 1);
			key = trim(key);
		}
		if (strcmp(key, "config") == 0) {
			ps_log_err(log, "%s:%zu: \"config\" is not allowed in "
			    "a configuration file", source, lineno);
			return PS_ERR_INVALID;
		}
		if ((r = ps_config_set(cfg, key, value, err, sizeof(err))) !=
		    PS_OK) {
			ps_log_err(log, "%s:%zu: %s", source, lineno, err);
			return r;
		}
	}
	return PS_OK;
}

/* The directory holding `path` must be as trustworthy as the file. */
static bool
config_dir_trusted(const struct ps_log *log, const char *path)
{
	char *dir = strdup(path), *slash;
	bool ok;

	if (dir == NULL)
		return false;
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		slash = dir + 1;
	*slash = '\0';
	ok = ps_path_trusted(log, dir);
	free(dir);
	return ok;
}

int
ps_config_load_file(struct ps_config *cfg, const char *path,
    const struct ps_log *log)
{
	struct ps_file_rules rules = {
		.max_size = PS_CONFIG_FILE_MAX,
		.check_owner = true, .owner = geteuid(), .owner_or_root = true,
		.forbid_group_write = true, .forbid_other_write = true,
	};
	unsigned char *data = NULL;
	size_t len;
	int r;

	r = ps_read_file(log, path, &rules, &data, &len);
	if (r != PS_OK)
		return r;
	if (!config_dir_trusted(log, path)) {
		ps_log_err(log, "%s: not trusted: its directory may be "
		    "changed by others", path);
		free(data);
		return PS_ERR_UNSAFE;
	}
	/* ps_read_file leaves room for a terminating NUL */
	r = ps_config_parse_text(cfg, (char *)data, len, path, log);
	free(data);
	return r;
}

int
ps_config_from_args(struct ps_config *cfg, int argc, const char **argv,
    const struct ps_log *log)
{
	const char *config_path = NULL;
	char err[256], *key = NULL;
	const char *value;
	int i, r;

	if ((r = ps_config_init(cfg)) != PS_OK) {
		ps_log_err(log, "out of memory");
		return r;
	}
	for (i = 0; i < argc; i++)
		if (strncmp(argv[i], "config=", 7) == 0)
			config_path = argv[i] + 7;
	if (config_path != NULL) {
		if (config_path[0] != '/') {
			ps_log_err(log, "config=%s: not an absolute path",
			    config_path);
			r = PS_ERR_INVALID;
			goto fail;
		}
		r = ps_config_load_file(cfg, config_path, log);
		if (r == PS_ERR_NOT_FOUND)
			ps_log_err(log, "%s: configuration file not found",
			    config_path);
	} else {
		r = ps_config_load_file(cfg, PS_DEFAULT_CONFIG, log);
		if (r == PS_ERR_NOT_FOUND)
			r = PS_OK;
	}
	if (r != PS_OK)
		goto fail;
	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "config=", 7) == 0)
			continue;
		value = strchr(argv[i], '=');
		if (value != NULL) {
			key = strndup(argv[i], (size_t)(value - argv[i]));
			value++;
		} else {
			key = strdup(argv[i]);
		}
		if (key == NULL) {
			r = PS_ERR_NOMEM;
			goto fail;
		}
		r = ps_config_set(cfg, key, value, err, sizeof(err));
		free(key);
		key = NULL;
		if (r != PS_OK) {
			ps_log_err(log, "module argument: %s", err);
			goto fail;
		}
	}
	if (cfg->use_first_pass && cfg->try_first_pass) {
		ps_log_err(log, "use_first_pass and try_first_pass are "
		    "mutually exclusive");
		r = PS_ERR_INVALID;
		goto fail;
	}
	return PS_OK;
 fail:
	ps_config_free(cfg);
	return r;
}

const char *
ps_backend_name(enum ps_backend b)
{
	size_t i;

	for (i = 0; backend_values[i].name != NULL; i++)
		if (backend_values[i].value == (int)b)
			return backend_values[i].name;
	return "unknown";
}

const char *
ps_mode_name(enum ps_mode m)
{
	size_t i;

	for (i = 0; mode_values[i].name != NULL; i++)
		if (mode_values[i].value == (int)m)
			return mode_values[i].name;
	return "unknown";
}
