/* session - weir-milter's per-connection and per-message state and the
 * logic of each SMTP stage, free of libmilter types.
 *
 * Ownership: a struct conn lives from connect to close; it holds one
 * reference to the configuration that was current when the client
 * connected, so a reload never changes a session in flight. A struct msg
 * lives from MAIL to end of message or abort. session_close frees
 * everything, whether or not the message stages ran.
 *
 * Stages and their files: connect/HELO and the client's identity
 * (identity.c), MAIL and RCPT (envelope.c), headers and end of message
 * (message.c), applying a rule's action and logging it (decision.c). */
#ifndef WEIR_MILTER_SESSION_H
#define WEIR_MILTER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "milter/mlfi.h"
#include "policy/config.h"

struct spf_outcome;

/* Who the client is, decided at MAIL (identity.c). */
enum identity {
	ID_OUTSIDE,
	ID_TRUSTED,       /* client address in trusted_networks */
	ID_AUTHENTICATED, /* SMTP AUTH login */
	ID_CERTIFICATE,   /* TLS client certificate mapped to a login */
};

/* Policy rules (weir.conf policy.*). */
enum rule {
	RULE_RELAY,
	RULE_ENVELOPE_SENDER,
	RULE_NULL_SENDER,
	RULE_HEADER_FROM,
	RULE_SPOOFING,
};

#define MSG_MAX_HEADERS 8 /* From/Sender values kept; more are only counted */
/* Headers kept for DKIM; a message with more (or larger) headers is
 * neither signed nor verified, and the log says so. */
#define MSG_MAX_ALL_HEADERS 1000
#define MSG_MAX_HEADER_BYTES (1024 * 1024)

struct header {
	char *name;
	char *value; /* as the MTA passed it (with leading space when leadspc) */
};

struct msg {
	char *queue_id;
	char *sender;
	char **rcpts; /* accepted recipients */
	size_t n_rcpts;
	size_t n_refused; /* recipients a rule refused */
	enum identity identity;
	char *login; /* authenticated or certificate identity */
	char *from[MSG_MAX_HEADERS];
	size_t n_from;
	char *sender_hdr[MSG_MAX_HEADERS];
	size_t n_sender_hdr;
	char *hold; /* reason, when a rule's action is hold */
	/* the metrics' reason label (milter/metrics.h, static strings): the
	 * last check that refused (reject, tempfail) and the first that held */
	const char *refused_by;
	const char *held_by;
	bool from_ok; /* the From header passed rule 3 (not merely logged) */
	struct header *headers; /* every header, in order, for DKIM */
	size_t nheaders;
	size_t header_bytes;
	bool headers_overflow;
	size_t n_ar; /* Authentication-Results headers seen */
	size_t *ar_ours; /* their indexes (1-based) that claim our authserv-id */
	size_t n_ar_ours;
	size_t n_login_hdr; /* milter.login_header headers the client sent */
	struct dkim_msg *dkim;
	/* SPF (spf_mail.c), for the end of message: Received-SPF values and
	 * Authentication-Results entries of the identities checked, and the
	 * key=value pairs of the log line (log_message adds them) */
	char *spf_received[2];
	char *spf_ar[2];
	size_t n_spf;
	char *spf_log;
	/* rate limits (rate_stage.c): the log line's rate= value, and the
	 * recipient domains charged in this transaction */
	char *rate_log;
	char **rate_domains;
	size_t n_rate_domains;
};

struct conn {
	struct weir_config *cfg;
	unsigned long id;
	char *client_name;
	char *client_addr;
	bool trusted; /* client_addr in trusted_networks */
	char *helo;
	char *cert_subject;
	char *cert_fingerprint; /* hex, lowercased */
	bool leadspc; /* the MTA passes header values with their leading space */
	unsigned long noreply; /* SMFIP_NR_* stages the MTA expects no reply for */
	unsigned n_msgs;
	struct msg *msg;
	/* spf.helo = "all": the HELO identity's outcome, checked once per
	 * HELO name (spf_mail.c) */
	char *spf_helo_name;
	struct spf_outcome *spf_helo;
};

/* session_connect - new connection context for a client; hostaddr may be
 * NULL (the MTA did not say). Never fails. */
struct conn *session_connect(struct weir_config *cfg, const char *hostname,
			     const struct sockaddr *hostaddr);
/* session_negotiated - a placeholder context holding what negotiation
 * settled, until connect; session_connect_after takes it over */
struct conn *session_negotiated(bool leadspc, unsigned long noreply);
struct conn *session_connect_after(struct conn *negotiated, struct weir_config *cfg,
				   const char *hostname, const struct sockaddr *hostaddr);
enum mlfi_status session_helo(struct conn *c, const struct mlfi_io *io, const char *helo);
enum mlfi_status session_mail(struct conn *c, const struct mlfi_io *io, char **argv);
enum mlfi_status session_rcpt(struct conn *c, const struct mlfi_io *io, char **argv);
enum mlfi_status session_header(struct conn *c, const char *name, const char *value);
/* session_eoh - end of headers: the header rules, then DKIM starts */
enum mlfi_status session_eoh(struct conn *c, const struct mlfi_io *io);
enum mlfi_status session_body(struct conn *c, const unsigned char *data, size_t len);
enum mlfi_status session_eom(struct conn *c, const struct mlfi_io *io);
/* session_abort - the MTA dropped the message (RSET, error, disconnect) */
void session_abort(struct conn *c, const struct mlfi_io *io);
/* session_close - free c and anything it still holds; c may be NULL */
void session_close(struct conn *c);

/* identity.c */
/* identity_decide - the identity of the client sending m, from the
 * SMTP AUTH macro, the TLS certificate and the client address */
void identity_decide(struct conn *c, const struct mlfi_io *io, struct msg *m);
const char *identity_name(enum identity id);
/* identity_who - the login, else the client, for reply texts */
const char *identity_who(const struct conn *c);

/* decision.c */
/* decide - rule matched with reply text (no code): apply its action,
 * log one decision line, and return what the stage answers */
enum mlfi_status decide(struct conn *c, const struct mlfi_io *io, enum rule rule,
			const char *text);
/* decide_action - the same for a check with its own action and enhanced
 * status codes (for a reject, for a tempfail); rule names it in the log,
 * extra (or NULL) is more key=value text for the decision line */
enum mlfi_status decide_action(struct conn *c, const struct mlfi_io *io, const char *rule,
			       int action, const char *esc_reject, const char *esc_tempfail,
			       const char *text, const char *extra);

/* spf_mail.c */
/* spf_mail - at MAIL FROM, after the sender rules: SPF of mail from
 * outside clients, the outbound preflight for everyone else. sender is
 * the reverse path ("" for the null sender). */
enum mlfi_status spf_mail(struct conn *c, const struct mlfi_io *io, const char *sender);
/* spf_conn_free - the connection's SPF state */
void spf_conn_free(struct conn *c);

/* suppression.c */
/* suppression_rcpt - at RCPT of outgoing mail: refuse a recipient on the
 * suppression list (550 5.1.1); a failing list never refuses */
enum mlfi_status suppression_rcpt(struct conn *c, const struct mlfi_io *io, const char *rcpt);

/* rate_stage.c */
/* rate_mail, rate_rcpt - charge the rate limits of this stage; the
 * stage's answer (a denied recipient is refused alone) */
enum mlfi_status rate_mail(struct conn *c, const struct mlfi_io *io);
enum mlfi_status rate_rcpt(struct conn *c, const struct mlfi_io *io, const char *rcpt);
/* rate_stage_shutdown - flush and close the rate store (at exit) */
void rate_stage_shutdown(void);
/* log_message - the per-message line: decision, optional reason, and
 * extra key=value text (DKIM results) or NULL */
void log_message(struct conn *c, const char *decision, const char *reason, const char *extra);
void msg_free(struct msg *m);

/* The macros each stage reads, asked of the MTA with smfi_setsymlist so
 * it sends nothing else. Kept here, next to the code that reads them. */
extern const char session_macros_connect[];
extern const char session_macros_helo[];
extern const char session_macros_envfrom[];
extern const char session_macros_envrcpt[];
extern const char session_macros_eom[];

#endif
