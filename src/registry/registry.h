/*
 * registry.h - who may log in with which public key.
 *
 * One interface, several backends: the file backend (registry_file.c, the
 * embedded default) and, for fleets, LDAP. Callers only see this header.
 *
 * An entry is one registered certificate; its key is what the user must
 * prove possession of. Entries are named by the SHA-256 of the public key
 * (ps_cert_fingerprint), so re-enrolling the same key is detected.
 */
#ifndef PS_REGISTRY_H
#define PS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/x509.h>

#include "cert.h"
#include "config.h"
#include "log.h"

enum ps_key_state {
	PS_KEY_ACTIVE,		/* may log in */
	PS_KEY_SUPERSEDED,	/* renewed: still usable until it expires */
	PS_KEY_RETIRED,		/* never usable again (moved aside) */
};

struct ps_reg_entry {
	X509 *cert;
	char fingerprint[PS_FP_HEX_LEN + 1];
	enum ps_key_state state;
	time_t enrolled;		/* 0 when unknown */
	char superseded_by[PS_FP_HEX_LEN + 1];	/* "" when not superseded */
};

struct ps_reg_list {
	struct ps_reg_entry *entries;
	size_t count;
};

/* Who made a change and why, for the audit log. */
struct ps_reg_change {
	const char *actor;	/* e.g. "root" or "uid=0(root)" */
	const char *reason;	/* free text, may be NULL */
};

#define PS_REG_REASON_MAX	512
#define PS_REG_ACTOR_MAX	128

/* One change, as the audit log recorded it. */
struct ps_reg_event {
	time_t when;
	char actor[PS_REG_ACTOR_MAX];
	char action[16];	/* enroll, supersede, retire, activate, remove */
	char fingerprint[PS_FP_HEX_LEN + 1];
	char reason[PS_REG_REASON_MAX + 1];	/* "" when none was given */
};

struct ps_reg_history {
	struct ps_reg_event *events;	/* oldest first */
	size_t count;
	size_t unreadable;		/* lines that did not parse (torn) */
};

struct ps_registry;

struct ps_registry_ops {
	const char *name;
	/* Usable (active + superseded) entries of `user`; PS_ERR_NOT_FOUND
	 * when the user has none. */
	int (*lookup_user)(struct ps_registry *reg, const char *user,
	    struct ps_reg_list *out);
	/* Register `cert` for `user` as active. PS_ERR_EXISTS when that key
	 * is already registered (to anyone). */
	int (*add)(struct ps_registry *reg, const char *user, X509 *cert,
	    const struct ps_reg_change *why);
	/* Change the state of one entry (superseded/retired). Retiring
	 * moves it out of the usable set. */
	int (*set_state)(struct ps_registry *reg, const char *user,
	    const char *fingerprint, enum ps_key_state state,
	    const char *superseded_by, const struct ps_reg_change *why);
	/* Delete an entry outright (mistaken enrolment). */
	int (*remove)(struct ps_registry *reg, const char *user,
	    const char *fingerprint, const struct ps_reg_change *why);
	/* Owner of a key, O(1): *user is malloc'd. PS_ERR_NOT_FOUND. */
	int (*find_key)(struct ps_registry *reg, const char *fingerprint,
	    char **user);
	/* All user names with at least one entry (malloc'd array). */
	int (*list_users)(struct ps_registry *reg, char ***users, size_t *count);
	void (*close)(struct ps_registry *reg);
	/* Every recorded change of `user`, oldest first (count 0 when
	 * none). NULL for a backend that keeps no audit log. */
	int (*history)(struct ps_registry *reg, const char *user,
	    struct ps_reg_history *out);
};

struct ps_registry {
	const struct ps_registry_ops *ops;
	const struct ps_log *log;
	void *impl;
};

/* Open the backend named by cfg->registry_backend. */
int ps_registry_open(const struct ps_config *cfg, const struct ps_log *log,
    struct ps_registry **out);
/* The same, for changes (auto_renew at login, self-renew). */
int ps_registry_open_for_writing(const struct ps_config *cfg,
    const struct ps_log *log, struct ps_registry **out);

/* Convenience wrappers: validate the user name, then dispatch. */
int ps_registry_lookup_user(struct ps_registry *reg, const char *user,
    struct ps_reg_list *out);
int ps_registry_add(struct ps_registry *reg, const char *user, X509 *cert,
    const struct ps_reg_change *why);
int ps_registry_set_state(struct ps_registry *reg, const char *user,
    const char *fingerprint, enum ps_key_state state,
    const char *superseded_by, const struct ps_reg_change *why);
int ps_registry_remove(struct ps_registry *reg, const char *user,
    const char *fingerprint, const struct ps_reg_change *why);
int ps_registry_find_key(struct ps_registry *reg, const char *fingerprint,
    char **user);
int ps_registry_list_users(struct ps_registry *reg, char ***users,
    size_t *count);
int ps_registry_history(struct ps_registry *reg, const char *user,
    struct ps_reg_history *out);
void ps_reg_history_free(struct ps_reg_history *history);
void ps_registry_close(struct ps_registry *reg);

void ps_reg_list_free(struct ps_reg_list *list);
void ps_user_names_free(char **users, size_t count);
const char *ps_key_state_name(enum ps_key_state state);

/* The file backend, used by ps_registry_open; exposed for tests. */
int ps_registry_file_open(const char *root, const struct ps_log *log,
    bool for_writing, struct ps_registry **out);

#endif /* PS_REGISTRY_H */
