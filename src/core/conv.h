/*
 * conv.h - how the core talks to the person logging in.
 *
 * The PAM module wraps pam_prompt; personalsign-respond wraps the
 * terminal; tests wrap scripted answers. Keeping this a plain callback
 * table keeps PAM out of src/.
 */
#ifndef PS_CONV_H
#define PS_CONV_H

struct ps_conv {
	/*
	 * Ask a question. echo=0 for secrets. On PS_OK *answer is a
	 * malloc'd string that the caller wipes with ps_free_secret().
	 * Anything else (PS_ERR_CONV) means the user could not be asked.
	 */
	int (*prompt)(void *arg, int echo, const char *msg, char **answer);
	/* Tell the user something (PAM_TEXT_INFO / PAM_ERROR_MSG). */
	void (*info)(void *arg, const char *msg);
	void (*error)(void *arg, const char *msg);
	void *arg;
};

/* Helpers that tolerate a NULL conv or NULL callbacks. */
int ps_conv_prompt(const struct ps_conv *conv, int echo, const char *msg,
    char **answer);
void ps_conv_info(const struct ps_conv *conv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ps_conv_error(const struct ps_conv *conv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* PS_CONV_H */
