/* session - weir-milter's per-connection and per-message state and the
 * logic of each SMTP stage, free of libmilter types.
 *
 * Ownership: a struct conn lives from connect to close; it holds one
 * reference to the configuration that was current when the client
 * connected, so a reload never changes a session in flight. A struct msg
 * lives from MAIL to end of message or abort. session_close frees
 * everything, whether or not the message stages ran. */
#ifndef WEIR_MILTER_SESSION_H
#define WEIR_MILTER_SESSION_H

#include <stddef.h>
#include <sys/socket.h>

#include "milter/mlfi.h"
#include "policy/config.h"

struct msg {
	char *queue_id;
	char *auth_login;
	char *sender;
	char **rcpts;
	size_t n_rcpts;
};

struct conn {
	struct weir_config *cfg;
	unsigned long id;
	char *client_name;
	char *client_addr;
	char *helo;
	unsigned n_msgs;
	struct msg *msg;
};

/* session_connect - new connection context for a client; hostaddr may be
 * NULL (the MTA did not say: local submission). Never fails. */
struct conn *session_connect(struct weir_config *cfg, const char *hostname,
			     const struct sockaddr *hostaddr);
enum mlfi_status session_helo(struct conn *c, const char *helo);
enum mlfi_status session_mail(struct conn *c, const struct mlfi_io *io, char **argv);
enum mlfi_status session_rcpt(struct conn *c, const struct mlfi_io *io, char **argv);
enum mlfi_status session_eom(struct conn *c, const struct mlfi_io *io);
/* session_abort - the MTA dropped the message (RSET, error, disconnect) */
void session_abort(struct conn *c, const struct mlfi_io *io);
/* session_close - free c and anything it still holds; c may be NULL */
void session_close(struct conn *c);

/* The macros each stage reads, asked of the MTA with smfi_setsymlist so
 * it sends nothing else. Kept here, next to the code that reads them. */
extern const char session_macros_connect[];
extern const char session_macros_helo[];
extern const char session_macros_envfrom[];
extern const char session_macros_envrcpt[];
extern const char session_macros_eom[];

#endif
