/* webhook_int - what webhook.c and webhook_config.c share */
#ifndef WEIR_POLICY_WEBHOOK_INT_H
#define WEIR_POLICY_WEBHOOK_INT_H

#include <stddef.h>

struct webhook_target;

#define WEBHOOK_SECRET_MAX 4096 /* bytes of a secret file */
#define WEBHOOKS_MAX       32   /* entries of bounce.webhooks */

/* webhook_secret_read - the secret of t: its file checked and read (lib/
 * secret_file.c), blanks and line ends at its end removed; caller
 * releases it with secret_free(s, *len_r). NULL with *err_r (caller
 * frees; it names the file, never the secret). */
char *webhook_secret_read(const struct webhook_target *t, const char *owner, size_t *len_r,
                          char **err_r);
/* webhook_url_for_log - url without user, password, query or fragment
 * (any of which may hold a token), for logs and weirctl; caller frees */
char *webhook_url_for_log(const char *url);

#endif
