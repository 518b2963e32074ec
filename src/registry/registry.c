/*
 * registry.c - the backend-independent half of the registry (registry.h):
 * picking a backend from the configuration, and the wrappers every caller
 * goes through, which validate user names and fingerprints before a
 * backend ever turns them into a path or a query.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509.h>

#include "ps_status.h"
#include "registry.h"
#include "util.h"

static int
registry_open(const struct ps_config *cfg, const struct ps_log *log,
    bool for_writing, struct ps_registry **out)
{
	const char *backend, *dir;

	if (out == NULL)
		return PS_ERR_INTERNAL;
	*out = NULL;
	if (cfg == NULL) {
		ps_log_err(log, "registry: no configuration");
		return PS_ERR_INTERNAL;
	}
	backend = cfg->registry_backend != NULL ? cfg->registry_backend : "file";
	dir = cfg->registry_dir != NULL ? cfg->registry_dir : PS_DEFAULT_REGISTRY;
	if (strcmp(backend, "file") == 0)
		return ps_registry_file_open(dir, log, for_writing, out);
	if (strcmp(backend, "ldap") == 0) {
		ps_log_err(log, "registry: LDAP backend not built");
		return PS_ERR_INVALID;
	}
	ps_log_err(log, "registry: unknown backend \"%s\"", backend);
	return PS_ERR_INVALID;
}

int
ps_registry_open(const struct ps_config *cfg, const struct ps_log *log,
    struct ps_registry **out)
{
	return registry_open(cfg, log, false, out);
}

int
ps_registry_open_for_writing(const struct ps_config *cfg,
    const struct ps_log *log, struct ps_registry **out)
{
	return registry_open(cfg, log, true, out);
}

/* Every wrapper starts here: a usable handle, and a name that is safe to
 * use as a path component before any backend sees it. */
static int
check_reg_user(struct ps_registry *reg, const char *user)
{
	if (reg == NULL || reg->ops == NULL)
		return PS_ERR_INTERNAL;
	if (!ps_user_name_valid(user)) {
		ps_log_err(reg->log, "registry: invalid user name refused");
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

static int
check_fingerprint(struct ps_registry *reg, const char *what, const char *fp)
{
	if (!ps_hex_valid(fp, PS_FP_HEX_LEN)) {
		ps_log_err(reg->log, "registry: %s is not a key fingerprint "
		    "(%d lower-case hex digits)", what, PS_FP_HEX_LEN);
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

/* The audit log must always say who made a change. */
static int
check_change(struct ps_registry *reg, const struct ps_reg_change *why)
{
	if (why == NULL || why->actor == NULL || why->actor[0] == '\0') {
		ps_log_err(reg->log, "registry: a change needs an actor for "
		    "the audit log");
		return PS_ERR_INVALID;
	}
	return PS_OK;
}

int
ps_registry_lookup_user(struct ps_registry *reg, const char *user,
    struct ps_reg_list *out)
{
	int r;

	if (out == NULL)
		return PS_ERR_INTERNAL;
	out->entries = NULL;
	out->count = 0;
	if ((r = check_reg_user(reg, user)) != PS_OK)
		return r;
	return reg->ops->lookup_user(reg, user, out);
}

int
ps_registry_add(struct ps_registry *reg, const char *user, X509 *cert,
    const struct ps_reg_change *why)
{
	int r;

	if ((r = check_reg_user(reg, user)) != PS_OK)
		return r;
	if (cert == NULL) {
		ps_log_err(reg->log, "registry: no certificate to add");
		return PS_ERR_INVALID;
	}
	if ((r = check_change(reg, why)) != PS_OK)
		return r;
	return reg->ops->add(reg, user, cert, why);
}

int
ps_registry_set_state(struct ps_registry *reg, const char *user,
    const char *fingerprint, enum ps_key_state state,
    const char *superseded_by, const struct ps_reg_change *why)
{
	int r;

	if ((r = check_reg_user(reg, user)) != PS_OK)
		return r;
	if ((r = check_fingerprint(reg, "key", fingerprint)) != PS_OK)
		return r;
	if (state != PS_KEY_ACTIVE && state != PS_KEY_SUPERSEDED &&
	    state != PS_KEY_RETIRED) {
		ps_log_err(reg->log, "registry: unknown key state %d",
		    (int)state);
		return PS_ERR_INVALID;
	}
	if (state == PS_KEY_SUPERSEDED) {
		if ((r = check_fingerprint(reg, "superseding key",
		    superseded_by)) != PS_OK)
			return r;
		if (strcmp(superseded_by, fingerprint) == 0) {
			ps_log_err(reg->log, "registry: a key cannot "
			    "supersede itself");
			return PS_ERR_INVALID;
		}
	}
	if ((r = check_change(reg, why)) != PS_OK)
		return r;
	return reg->ops->set_state(reg, user, fingerprint, state,
	    state == PS_KEY_SUPERSEDED ? superseded_by : NULL, why);
}

int
ps_registry_remove(struct ps_registry *reg, const char *user,
    const char *fingerprint, const struct ps_reg_change *why)
{
	int r;

	if ((r = check_reg_user(reg, user)) != PS_OK)
		return r;
	if ((r = check_fingerprint(reg, "key", fingerprint)) != PS_OK)
		return r;
	if ((r = check_change(reg, why)) != PS_OK)
		return r;
	return reg->ops->remove(reg, user, fingerprint, why);
}

int
ps_registry_find_key(struct ps_registry *reg, const char *fingerprint,
    char **user)
{
	int r;

	if (user == NULL)
		return PS_ERR_INTERNAL;
	*user = NULL;
	if (reg == NULL || reg->ops == NULL)
		return PS_ERR_INTERNAL;
	if ((r = check_fingerprint(reg, "key", fingerprint)) != PS_OK)
		return r;
	return reg->ops->find_key(reg, fingerprint, user);
}

int
ps_registry_list_users(struct ps_registry *reg, char ***users, size_t *count)
{
	if (users == NULL || count == NULL)
		return PS_ERR_INTERNAL;
	*users = NULL;
	*count = 0;
	if (reg == NULL || reg->ops == NULL)
		return PS_ERR_INTERNAL;
	return reg->ops->list_users(reg, users, count);
}

int
ps_registry_history(struct ps_registry *reg, const char *user,
    struct ps_reg_history *out)
{
	int r;

	if (out == NULL)
		return PS_ERR_INTERNAL;
	memset(out, 0, sizeof(*out));
	if ((r = check_reg_user(reg, user)) != PS_OK)
		return r;
	if (reg->ops->history == NULL) {
		ps_log_err(reg->log, "registry: the %s backend keeps no "
		    "history", reg->ops->name);
		return PS_ERR_INVALID;
	}
	return reg->ops->history(reg, user, out);
}

void
ps_reg_history_free(struct ps_reg_history *history)
{
	if (history == NULL)
		return;
	free(history->events);
	memset(history, 0, sizeof(*history));
}

void
ps_registry_close(struct ps_registry *reg)
{
	if (reg == NULL)
		return;
	if (reg->ops != NULL && reg->ops->close != NULL)
		reg->ops->close(reg);
}

void
ps_reg_list_free(struct ps_reg_list *list)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < list->count; i++)
		X509_free(list->entries[i].cert);
	free(list->entries);
	list->entries = NULL;
	list->count = 0;
}

void
ps_user_names_free(char **users, size_t count)
{
	size_t i;

	if (users == NULL)
		return;
	for (i = 0; i < count; i++)
		free(users[i]);
	free(users);
}

const char *
ps_key_state_name(enum ps_key_state state)
{
	switch (state) {
	case PS_KEY_ACTIVE:
		return "active";
	case PS_KEY_SUPERSEDED:
		return "superseded";
	case PS_KEY_RETIRED:
		return "retired";
	}
	return "unknown";
}
