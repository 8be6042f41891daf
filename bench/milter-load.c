/* milter-load - drive a milter as an MTA would, many messages in parallel,
 * and count what it answers.
 *
 *	bench/milter-load -s SOCKET [-c CONNECTIONS] [-n MESSAGES]
 *		[-m PER_CONNECTION] [-T SECONDS] [-l LOGIN] [-f FROM] [-r RCPT]
 *		[-F HEADER_FROM] [-b BODY_BYTES] [-N EXTRA_HEADERS]
 *		[-a CLIENT_ADDR] [-H CLIENT_NAME] [-e pass|reject|tempfail|any]
 *		[-k DKIM_SIGNATURES] [-t TIMEOUT] [-o FILE] [-q]
 *
 * DESCRIPTION
 *	The MTA side of the Sendmail milter protocol, version 6 (constants
 *	from libmilter/mfdef.h and mfapi.h; no libmilter code). Each of
 *	CONNECTIONS threads (default 2) opens a connection to SOCKET
 *	(unix:/path, local:/path or inet:PORT@HOST), negotiates (SMFIC_OPTNEG),
 *	sends the client's connect information and HELO once, then per
 *	message: macros {auth_authen} (when -l is given), {auth_type} and i
 *	(a queue id unique in the run) with MAIL, RCPT, the headers (From,
 *	To, Subject, Date, Message-ID, MIME-Version, Content-Type and
 *	EXTRA_HEADERS X-Load-N: filler), EOH, the body in chunks of at most
 *	65535 bytes (BODY_BYTES of generated text, CRLF lines), and end of
 *	message; it reads the modification actions (insert/add/change header,
 *	...) until the final reply. After PER_CONNECTION messages (default 10)
 *	it says QUIT and reconnects. Stages the milter asked to skip
 *	(SMFIP_NO*) are not sent; replies it said it will not give
 *	(SMFIP_NR_*) are not waited for; commands that get no reply are
 *	written together with the next one that does (fewer system calls,
 *	as Postfix does not; see bench/README).
 *
 *	It stops after MESSAGES messages in all (default 1000) or, if -T is
 *	given, once SECONDS have passed (messages in flight finish), and
 *	prints messages per second, a count of each reply type, the number of
 *	DKIM-Signature headers the milter inserted or added, and the spread
 *	of per-message times.
 *
 *	-e says what each message must end with: pass (default: continue or
 *	accept at end of message), reject (a 5xx anywhere), tempfail (a 4xx
 *	anywhere) or any. -k N: each message must also get exactly N
 *	DKIM-Signature headers. -o FILE: the first message that got a
 *	DKIM-Signature is written to FILE as the MTA would deliver it (the
 *	milter's header changes applied, LF line ends) so that a script can
 *	verify the signature.
 *
 * ROBUSTNESS
 *	Every read and write has a timeout (-t, default 10 s); a reply longer
 *	than 1 MiB or of an unknown shape is a protocol error; an error ends
 *	the connection (counted; the thread reconnects). Every message, good
 *	or not, counts against MESSAGES, so the run is bounded.
 *
 * EXIT STATUS
 *	0 when every message ended as -e and -k ask, 1 otherwise, 2 on a
 *	usage error. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPLY (1024 * 1024) /* longest milter reply accepted */
#define MAX_BODY (64L * 1024 * 1024)

enum expect { EXPECT_PASS, EXPECT_REJECT, EXPECT_TEMPFAIL, EXPECT_ANY };

/* How one message ended. */
enum outcome { OUT_PASS, OUT_REJECT, OUT_TEMPFAIL, OUT_DISCARD, OUT_ERROR };

static struct options {
	const char *socket;
	int conns;
	long messages;
	long per_conn;
	double time_limit;
	const char *login;
	const char *from;
	const char *rcpt;
	const char *header_from;
	long body_bytes;
	int extra_headers;
	const char *client_addr;
	const char *client_name;
	enum expect expect;
	int dkim_expected; /* -1: not checked */
	int timeout;
	const char *dump_file;
	bool quiet;
} opt = {
	.conns = 2, .messages = 1000, .per_conn = 10, .from = "bench@local.weir.test",
	.rcpt = "rcpt@example.weir.test", .body_bytes = 2048, .client_addr = "127.0.0.1",
	.client_name = "client.weir.test", .expect = EXPECT_PASS, .dkim_expected = -1,
	.timeout = 10,
};

/* Shared, read-only after start: the body and where the run stops. */
static char *body;
static size_t body_len;
static double t_start, t_deadline;
static atomic_long next_msg;
static atomic_bool dumped;
static atomic_bool gave_up; /* a thread could not connect 3 times in a row */
static double *durations; /* one per message index, seconds; <0 unused */

/* Counters of one thread, summed at the end. */
struct counts {
	long done, ok, bad, errors, connects;
	long out[OUT_ERROR + 1];
	long replies[128]; /* by reply letter */
	long dkim_sigs, dkim_msgs;
};

/* A growing byte buffer for writes and the dumped message. */
struct buf {
	char *p;
	size_t len, cap;
};

/* One header of the message as the milter leaves it (for -o). */
struct hdr {
	char *name, *value;
};

struct conn {
	int fd;
	struct buf out;
	unsigned long actions, proto; /* negotiated SMFIF_*, SMFIP_* */
	char *reply;		      /* last reply's data (owned) */
	uint32_t reply_len;
	char reply_cmd;
	const char *err; /* static text of the last error */
};

/* Per-message state while reading end-of-message actions. */
struct msgstate {
	int dkim;
	bool dump; /* keep the header list for -o */
	struct hdr *hdrs;
	size_t n_hdrs;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* die - usage or environment error: say why and exit 2 */
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("milter-load: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		die("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* buf_add - append n bytes */
static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 256;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void buf_str0(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s) + 1);
}

static void buf_u32(struct buf *b, uint32_t v)
{
	uint32_t n = htonl(v);

	buf_add(b, &n, 4);
}

/* cmd_begin/cmd_end - frame one command: 4-byte length (command letter
 * plus data), letter, data. cmd_begin returns the frame's offset. */
static size_t cmd_begin(struct buf *b, char cmd)
{
	size_t at = b->len;

	buf_u32(b, 0);
	buf_add(b, &cmd, 1);
	return at;
}

static void cmd_end(struct buf *b, size_t at)
{
	uint32_t n = htonl((uint32_t)(b->len - at - 4));

	memcpy(b->p + at, &n, 4);
}

/* conn_flush - write everything queued; -1 on error or timeout */
static int conn_flush(struct conn *c)
{
	size_t off = 0;

	while (off < c->out.len) {
		ssize_t w = send(c->fd, c->out.p + off, c->out.len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			c->err = errno == EAGAIN || errno == EWOULDBLOCK ? "write timeout" : "write error";
			return -1;
		}
		off += (size_t)w;
	}
	c->out.len = 0;
	return 0;
}

/* read_full - read exactly n bytes; -1 on error, timeout or EOF */
static int read_full(struct conn *c, void *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = recv(c->fd, (char *)p + off, n - off, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			c->err = "milter closed the connection";
			return -1;
		}
		if (r < 0) {
			c->err = errno == EAGAIN || errno == EWOULDBLOCK ? "read timeout" : "read error";
			return -1;
		}
		off += (size_t)r;
	}
	return 0;
}

/* conn_read - flush, then read one reply into c->reply_cmd/reply/len */
static int conn_read(struct conn *c, struct counts *k)
{
	uint32_t len;

	if (conn_flush(c) < 0 || read_full(c, &len, 4) < 0)
		return -1;
	len = ntohl(len);
	if (len < 1 || len > MAX_REPLY) {
		c->err = "reply length out of bounds";
		return -1;
	}
	if (read_full(c, &c->reply_cmd, 1) < 0)
		return -1;
	c->reply_len = len - 1;
	free(c->reply);
	c->reply = xmalloc(c->reply_len + 1);
	if (read_full(c, c->reply, c->reply_len) < 0)
		return -1;
	c->reply[c->reply_len] = '\0';
	k->replies[(unsigned char)c->reply_cmd & 127]++;
	return 0;
}

/* parse_socket - connect to unix:/path, local:/path or inet:PORT@HOST */
static int open_socket(const char *spec, const char **err_r)
{
	int fd = -1;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0 || spec[0] == '/') {
		const char *path = spec[0] == '/' ? spec : strchr(spec, ':') + 1;
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		if (strlen(path) >= sizeof(sun.sun_path)) {
			*err_r = "socket path too long";
			return -1;
		}
		memcpy(sun.sun_path, path, strlen(path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			*err_r = "cannot connect to the unix socket";
			goto fail;
		}
	} else if (strncmp(spec, "inet:", 5) == 0) {
		char port[16], host[256];
		const char *at = strchr(spec, '@');
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
		size_t plen = at ? (size_t)(at - spec - 5) : 0;
		int one = 1;
		if (at == NULL || plen == 0 || plen >= sizeof(port) || strlen(at + 1) >= sizeof(host)) {
			*err_r = "socket must be inet:PORT@HOST";
			return -1;
		}
		memcpy(port, spec + 5, plen);
		port[plen] = '\0';
		memcpy(host, at + 1, strlen(at + 1) + 1);
		if (getaddrinfo(host, port, &hints, &ai) != 0) {
			*err_r = "cannot resolve the milter's address";
			return -1;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			freeaddrinfo(ai);
			*err_r = "cannot connect to the inet socket";
			goto fail;
		}
		freeaddrinfo(ai);
		/* commands are written whole; no Nagle delay between them */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	} else {
		*err_r = "socket must be unix:/path or inet:PORT@HOST";
		return -1;
	}
	struct timeval tv = {.tv_sec = opt.timeout};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* negotiate - SMFIC_OPTNEG: offer protocol 6, every action, and every
 * step the milter may skip or leave unanswered (not SMFIP_HDR_LEADSPC or
 * SMFIP_RCPT_REJ, which would change what is sent). */
static int negotiate(struct conn *c, struct counts *k)
{
	const unsigned long offer = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT |
				    SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NR_HDR |
				    SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | SMFIP_NR_CONN |
				    SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA |
				    SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY;
	size_t at = cmd_begin(&c->out, SMFIC_OPTNEG);
	uint32_t v[3];

	buf_u32(&c->out, SMFI_PROT_VERSION);
	buf_u32(&c->out, SMFI_CURR_ACTS);
	buf_u32(&c->out, (uint32_t)offer);
	cmd_end(&c->out, at);
	if (conn_read(c, k) < 0)
		return -1;
	if (c->reply_cmd != SMFIC_OPTNEG || c->reply_len < MILTER_OPTLEN) {
		c->err = "bad option negotiation reply";
		return -1;
	}
	/* after the three words: symbol lists (stage, macro names), ignored:
	 * this client always sends the same macros */
	memcpy(v, c->reply, sizeof(v));
	if (ntohl(v[0]) < 2) {
		c->err = "milter protocol version below 2";
		return -1;
	}
	c->actions = ntohl(v[1]);
	c->proto = ntohl(v[2]);
	if (c->proto & ~offer) {
		c->err = "milter asked for protocol steps not offered";
		return -1;
	}
	return 0;
}

static void put_macros(struct conn *c, char stage, const char *const *kv)
{
	size_t at = cmd_begin(&c->out, SMFIC_MACRO);

	buf_add(&c->out, &stage, 1);
	for (; kv[0] != NULL; kv += 2) {
		buf_str0(&c->out, kv[0]);
		buf_str0(&c->out, kv[1]);
	}
	cmd_end(&c->out, at);
}

/* Result of one command: go on, or the message (or connection) ended. */
enum step { STEP_GO, STEP_ACCEPT, STEP_END };

/* classify - a non-modification reply to a command: continue, or how the
 * message ends */
static enum step classify(struct conn *c, enum outcome *out)
{
	switch (c->reply_cmd) {
	case SMFIR_CONTINUE:
		return STEP_GO;
	case SMFIR_ACCEPT:
		*out = OUT_PASS;
		return STEP_ACCEPT;
	case SMFIR_REJECT:
		*out = OUT_REJECT;
		return STEP_END;
	case SMFIR_TEMPFAIL:
		*out = OUT_TEMPFAIL;
		return STEP_END;
	case SMFIR_DISCARD:
		*out = OUT_DISCARD;
		return STEP_END;
	case SMFIR_REPLYCODE:
		*out = c->reply[0] == '5' ? OUT_REJECT : c->reply[0] == '4' ? OUT_TEMPFAIL : OUT_ERROR;
		if (*out == OUT_ERROR)
			c->err = "reply code neither 4xx nor 5xx";
		return STEP_END;
	case SMFIR_CONN_FAIL:
	case SMFIR_SHUTDOWN:
		*out = OUT_TEMPFAIL;
		return STEP_END;
	default:
		*out = OUT_ERROR;
		c->err = "unexpected reply";
		return STEP_END;
	}
}

/* command - queue one command; if the milter answers it (nr_flag not
 * negotiated), read replies (skipping progress) and classify.
 * -1: connection error. */
static int command(struct conn *c, struct counts *k, char cmd, const void *data, size_t len,
		   unsigned long nr_flag, enum step *step_r, enum outcome *out_r)
{
	size_t at = cmd_begin(&c->out, cmd);

	buf_add(&c->out, data, len);
	cmd_end(&c->out, at);
	*step_r = STEP_GO;
	if (nr_flag != 0 && (c->proto & nr_flag))
		return 0;
	do {
		if (conn_read(c, k) < 0)
			return -1;
	} while (c->reply_cmd == SMFIR_PROGRESS);
	if (cmd == SMFIC_BODY && c->reply_cmd == SMFIR_SKIP) {
		*step_r = STEP_ACCEPT; /* no more body; end of message follows */
		return 0;
	}
	*step_r = classify(c, out_r);
	return *out_r == OUT_ERROR && *step_r == STEP_END ? -1 : 0;
}

/* hdr helpers for -o: the header list as the milter changes it */
static void hdr_insert(struct msgstate *ms, size_t idx, const char *name, const char *value)
{
	if (idx > ms->n_hdrs)
		idx = ms->n_hdrs;
	ms->hdrs = xrealloc(ms->hdrs, (ms->n_hdrs + 1) * sizeof(*ms->hdrs));
	memmove(ms->hdrs + idx + 1, ms->hdrs + idx, (ms->n_hdrs - idx) * sizeof(*ms->hdrs));
	ms->hdrs[idx].name = xstrdup(name);
	ms->hdrs[idx].value = xstrdup(value);
	ms->n_hdrs++;
}

static void hdr_change(struct msgstate *ms, uint32_t nth, const char *name, const char *value)
{
	for (size_t i = 0; i < ms->n_hdrs; i++) {
		if (strcasecmp(ms->hdrs[i].name, name) != 0 || --nth > 0)
			continue;
		free(ms->hdrs[i].value);
		if (value[0] == '\0') {
			free(ms->hdrs[i].name);
			memmove(ms->hdrs + i, ms->hdrs + i + 1, (ms->n_hdrs - i - 1) * sizeof(*ms->hdrs));
			ms->n_hdrs--;
		} else {
			ms->hdrs[i].value = xstrdup(value);
		}
		return;
	}
	if (value[0] != '\0')
		hdr_insert(ms, ms->n_hdrs, name, value);
}

static void hdr_free(struct msgstate *ms)
{
	for (size_t i = 0; i < ms->n_hdrs; i++) {
		free(ms->hdrs[i].name);
		free(ms->hdrs[i].value);
	}
	free(ms->hdrs);
	ms->hdrs = NULL;
	ms->n_hdrs = 0;
}

/* name_value - split "name\0value\0" at off; -1 if malformed */
static int name_value(const struct conn *c, size_t off, const char **name, const char **value)
{
	const char *end = c->reply + c->reply_len;
	const char *n = c->reply + off, *v;

	if (off >= c->reply_len || (v = memchr(n, '\0', (size_t)(end - n))) == NULL)
		return -1;
	v++;
	if (v >= end || memchr(v, '\0', (size_t)(end - v)) == NULL)
		return -1;
	*name = n;
	*value = v;
	return 0;
}

/* eom_action - one modification action at end of message; -1 if malformed */
static int eom_action(struct conn *c, struct msgstate *ms)
{
	const char *name, *value;
	uint32_t idx = 0;

	switch (c->reply_cmd) {
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (c->reply_len < 4 || name_value(c, 4, &name, &value) < 0)
			return -1;
		memcpy(&idx, c->reply, 4);
		idx = ntohl(idx);
		break;
	case SMFIR_ADDHEADER:
		if (name_value(c, 0, &name, &value) < 0)
			return -1;
		break;
	default: /* recipients, quarantine, body, sender: counted only */
		return 0;
	}
	if (c->reply_cmd != SMFIR_CHGHEADER && strcasecmp(name, "DKIM-Signature") == 0)
		ms->dkim++;
	if (!ms->dump)
		return 0;
	if (c->reply_cmd == SMFIR_INSHEADER)
		hdr_insert(ms, idx, name, value);
	else if (c->reply_cmd == SMFIR_ADDHEADER)
		hdr_insert(ms, ms->n_hdrs, name, value);
	else
		hdr_change(ms, idx, name, value);
	return 0;
}

/* dump - write the message as delivered, LF line ends, to opt.dump_file */
static void dump(const struct msgstate *ms)
{
	FILE *f = fopen(opt.dump_file, "w");

	if (f == NULL) {
		fprintf(stderr, "milter-load: cannot write %s: %s\n", opt.dump_file, strerror(errno));
		return;
	}
	for (size_t i = 0; i < ms->n_hdrs; i++) {
		fprintf(f, "%s: ", ms->hdrs[i].name);
		for (const char *p = ms->hdrs[i].value; *p; p++)
			if (*p != '\r')
				fputc(*p, f);
		fputc('\n', f);
	}
	fputc('\n', f);
	for (size_t i = 0; i < body_len; i++)
		if (body[i] != '\r')
			fputc(body[i], f);
	fclose(f);
}

/* one_message - run message number seq on connection c; -1 when the
 * connection is no longer usable */
static int one_message(struct conn *c, struct counts *k, long seq, int *dkim_r, enum outcome *out_r)
{
	char qid[32], msgid[96], date[64], line[512];
	const char *mail_macros[] = {"i", qid, "{auth_type}", "LOGIN", "{auth_authen}", opt.login, NULL};
	const char *rcpt_macros[] = {"{rcpt_addr}", opt.rcpt, NULL};
	const char *eom_macros[] = {"i", qid, NULL};
	struct msgstate ms = {.dump = opt.dump_file != NULL && !atomic_load(&dumped)};
	struct buf hb = {0};
	enum step st = STEP_GO;
	enum outcome out = OUT_PASS;
	int n, rc = -1;
	time_t t = time(NULL);
	struct tm tm;

	snprintf(qid, sizeof(qid), "LOAD%08lX", (unsigned long)seq);
	snprintf(msgid, sizeof(msgid), "<%ld.%ld@load.weir.test>", (long)t, seq);
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (opt.login == NULL)
		mail_macros[2] = NULL; /* no SMTP AUTH */
	*dkim_r = 0;

	/* MAIL, RCPT */
	if (!(c->proto & SMFIP_NOMAIL)) {
		put_macros(c, SMFIC_MAIL, mail_macros);
		n = snprintf(line, sizeof(line), "<%s>", opt.from);
		if (command(c, k, SMFIC_MAIL, line, (size_t)n + 1, SMFIP_NR_MAIL, &st, &out) < 0)
			goto done;
	}
	if (st == STEP_GO && !(c->proto & SMFIP_NORCPT)) {
		put_macros(c, SMFIC_RCPT, rcpt_macros);
		n = snprintf(line, sizeof(line), "<%s>", opt.rcpt);
		if (command(c, k, SMFIC_RCPT, line, (size_t)n + 1, SMFIP_NR_RCPT, &st, &out) < 0)
			goto done;
	}
	if (st == STEP_GO && !(c->proto & SMFIP_NODATA))
		if (command(c, k, SMFIC_DATA, "", 0, SMFIP_NR_DATA, &st, &out) < 0)
			goto done;

	/* headers */
	const char *hv[][2] = {
		{"From", opt.header_from}, {"To", opt.rcpt}, {"Subject", "milter-load test message"},
		{"Date", date}, {"Message-ID", msgid}, {"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=us-ascii"},
	};
	char fill[64];
	for (int i = 0; st == STEP_GO && i < 7 + opt.extra_headers; i++) {
		const char *hn = i < 7 ? hv[i][0] : "X-Load-Filler";
		const char *val = hv[i < 7 ? i : 0][1];
		if (i >= 7) {
			snprintf(fill, sizeof(fill), "filler header %d of message %ld", i - 6, seq);
			val = fill;
		}
		if (ms.dump)
			hdr_insert(&ms, ms.n_hdrs, hn, val);
		if (c->proto & SMFIP_NOHDRS)
			continue;
		hb.len = 0;
		buf_str0(&hb, hn);
		buf_str0(&hb, val);
		if (command(c, k, SMFIC_HEADER, hb.p, hb.len, SMFIP_NR_HDR, &st, &out) < 0)
			goto done;
	}
	if (st == STEP_GO && !(c->proto & SMFIP_NOEOH))
		if (command(c, k, SMFIC_EOH, "", 0, SMFIP_NR_EOH, &st, &out) < 0)
			goto done;

	/* body: STEP_ACCEPT from a body chunk means SMFIR_SKIP */
	for (size_t off = 0; st == STEP_GO && !(c->proto & SMFIP_NOBODY) && off < body_len;) {
		size_t chunk = body_len - off < MILTER_CHUNK_SIZE ? body_len - off : MILTER_CHUNK_SIZE;
		if (command(c, k, SMFIC_BODY, body + off, chunk, SMFIP_NR_BODY, &st, &out) < 0)
			goto done;
		off += chunk;
		if (st == STEP_ACCEPT && c->reply_cmd == SMFIR_SKIP)
			st = STEP_GO, off = body_len;
	}

	/* end of message: modification actions, then the final reply */
	if (st == STEP_GO) {
		put_macros(c, SMFIC_BODYEOB, eom_macros);
		cmd_end(&c->out, cmd_begin(&c->out, SMFIC_BODYEOB));
		for (;;) {
			if (conn_read(c, k) < 0)
				goto done;
			if (c->reply_cmd == SMFIR_PROGRESS)
				continue;
			if (strchr("ihm+-2qbel", c->reply_cmd) != NULL) {
				if (eom_action(c, &ms) < 0) {
					c->err = "malformed modification action";
					goto done;
				}
				continue;
			}
			st = classify(c, &out);
			if (out == OUT_ERROR)
				goto done;
			break;
		}
	} else {
		/* the message ended before end of message (accepted, refused):
		 * as an MTA does at RSET or the next MAIL, tell the milter */
		cmd_end(&c->out, cmd_begin(&c->out, SMFIC_ABORT));
	}
	rc = 0;
	*dkim_r = ms.dkim;
	if (ms.dump && ms.dkim > 0 && !atomic_exchange(&dumped, true))
		dump(&ms);
done:
	*out_r = rc < 0 ? OUT_ERROR : out;
	hdr_free(&ms);
	free(hb.p);
	return rc;
}

/* ok_outcome - did the message end as -e/-k asked? */
static bool ok_outcome(enum outcome out, int dkim)
{
	bool ok;

	switch (opt.expect) {
	case EXPECT_PASS: ok = out == OUT_PASS; break;
	case EXPECT_REJECT: ok = out == OUT_REJECT; break;
	case EXPECT_TEMPFAIL: ok = out == OUT_TEMPFAIL; break;
	default: ok = out != OUT_ERROR; break;
	}
	return ok && (opt.dkim_expected < 0 || dkim == opt.dkim_expected);
}

/* take - the next message number, or -1 when the run is over */
static long take(void)
{
	if (atomic_load(&gave_up) || (opt.time_limit > 0 && now() >= t_deadline))
		return -1;
	long seq = atomic_fetch_add(&next_msg, 1);
	return seq < opt.messages ? seq : -1;
}

/* open_conn - connect, negotiate, CONNECT and HELO; -1 on error */
static int open_conn(struct conn *c, struct counts *k)
{
	enum step st;
	enum outcome out;
	struct buf d = {0};
	const char *conn_macros[] = {"j", "mx.weir.test", "{daemon_name}", "milter-load", NULL};
	const char *helo_macros[] = {NULL};
	bool v6 = strchr(opt.client_addr, ':') != NULL;
	uint16_t port = htons(40000);
	int rc = -1;

	c->err = NULL;
	c->out.len = 0;
	if ((c->fd = open_socket(opt.socket, &c->err)) < 0)
		return -1;
	k->connects++;
	if (negotiate(c, k) < 0)
		goto done;
	if (!(c->proto & SMFIP_NOCONNECT)) {
		put_macros(c, SMFIC_CONNECT, conn_macros);
		buf_str0(&d, opt.client_name);
		buf_add(&d, v6 ? "6" : "4", 1);
		buf_add(&d, &port, 2);
		buf_str0(&d, opt.client_addr);
		if (command(c, k, SMFIC_CONNECT, d.p, d.len, SMFIP_NR_CONN, &st, &out) < 0)
			goto done;
		if (st != STEP_GO) {
			c->err = "connection refused by the milter at connect";
			goto done;
		}
	}
	if (!(c->proto & SMFIP_NOHELO)) {
		put_macros(c, SMFIC_HELO, helo_macros);
		if (command(c, k, SMFIC_HELO, opt.client_name, strlen(opt.client_name) + 1,
			    SMFIP_NR_HELO, &st, &out) < 0)
			goto done;
		if (st != STEP_GO) {
			c->err = "connection refused by the milter at HELO";
			goto done;
		}
	}
	rc = 0;
done:
	free(d.p);
	return rc;
}

static void close_conn(struct conn *c, bool quit)
{
	if (c->fd < 0)
		return;
	if (quit) {
		cmd_end(&c->out, cmd_begin(&c->out, SMFIC_QUIT));
		conn_flush(c);
	}
	close(c->fd);
	c->fd = -1;
}

static void *worker(void *arg)
{
	struct counts *k = arg;
	struct conn c = {.fd = -1};
	long in_conn = 0, seq;
	int connect_failures = 0;
	static atomic_int errors_shown;

	while ((seq = take()) >= 0) {
		double t0 = now();
		enum outcome out = OUT_ERROR;
		int dkim = 0;
		if (c.fd < 0) {
			in_conn = 0;
			if (open_conn(&c, k) < 0) {
				if (c.fd < 0 && ++connect_failures >= 3)
					atomic_store(&gave_up, true);
				goto failed;
			}
			connect_failures = 0;
		}
		if (one_message(&c, k, seq, &dkim, &out) < 0)
			goto failed;
		if (++in_conn >= opt.per_conn)
			close_conn(&c, true);
		goto counted;
failed:
		if (atomic_fetch_add(&errors_shown, 1) < 5)
			fprintf(stderr, "milter-load: message %ld: %s\n", seq,
				c.err ? c.err : "connection error");
		k->errors++;
		close_conn(&c, false);
		out = OUT_ERROR;
counted:
		durations[seq] = now() - t0;
		k->done++;
		k->out[out]++;
		k->dkim_sigs += dkim;
		k->dkim_msgs += dkim > 0;
		if (ok_outcome(out, dkim))
			k->ok++;
		else
			k->bad++;
		if (connect_failures > 0)
			usleep(100000); /* milter not there (yet): do not spin */
	}
	close_conn(&c, true);
	free(c.out.p);
	free(c.reply);
	return NULL;
}

/* make_body - bytes of printable text in CRLF lines of at most 78 */
static void make_body(long n)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 ";

	body = xmalloc((size_t)n + 2);
	body_len = 0;
	while ((long)body_len < n) {
		size_t room = (size_t)n - body_len, w = room > 78 ? 76 : room >= 2 ? room - 2 : 0;
		for (size_t i = 0; i < w; i++)
			body[body_len + i] = alphabet[(body_len + i * 7) % (sizeof(alphabet) - 1)];
		body_len += w;
		body[body_len++] = '\r';
		body[body_len++] = '\n';
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static long num(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		die("%s must be a number from %ld to %ld", what, lo, hi);
	return v;
}

static void usage(void)
{
	fputs("usage: milter-load -s unix:/path|inet:PORT@HOST [-c CONNECTIONS] [-n MESSAGES]\n"
	      "\t[-m PER_CONNECTION] [-T SECONDS] [-l LOGIN] [-f FROM] [-r RCPT] [-F HEADER_FROM]\n"
	      "\t[-b BODY_BYTES] [-N EXTRA_HEADERS] [-a CLIENT_ADDR] [-H CLIENT_NAME]\n"
	      "\t[-e pass|reject|tempfail|any] [-k DKIM_SIGNATURES] [-t TIMEOUT] [-o FILE] [-q]\n",
	      stderr);
	exit(2);
}

static void report(const struct counts *sum, double elapsed)
{
	static const struct {
		char letter;
		const char *name;
	} names[] = {
		{SMFIC_OPTNEG, "optneg"}, {SMFIR_CONTINUE, "continue"}, {SMFIR_ACCEPT, "accept"},
		{SMFIR_REJECT, "reject"}, {SMFIR_TEMPFAIL, "tempfail"}, {SMFIR_REPLYCODE, "replycode"},
		{SMFIR_DISCARD, "discard"}, {SMFIR_SKIP, "skip"}, {SMFIR_PROGRESS, "progress"},
		{SMFIR_INSHEADER, "insheader"}, {SMFIR_ADDHEADER, "addheader"},
		{SMFIR_CHGHEADER, "chgheader"}, {SMFIR_QUARANTINE, "quarantine"},
		{SMFIR_ADDRCPT, "addrcpt"}, {SMFIR_DELRCPT, "delrcpt"}, {SMFIR_CHGFROM, "chgfrom"},
		{SMFIR_REPLBODY, "replbody"}, {SMFIR_CONN_FAIL, "conn_fail"},
		{SMFIR_SHUTDOWN, "shutdown"},
	};
	long other = 0;
	long n = sum->done;

	printf("milter-load: socket=%s connections=%d per_connection=%ld body=%ld bytes "
	       "headers=%d identity=%s\n",
	       opt.socket, opt.conns, opt.per_conn, opt.body_bytes, 7 + opt.extra_headers,
	       opt.login ? "login" : "client address");
	printf("messages: %ld in %.3f s (%ld connections)  ok %ld  not as expected %ld  errors %ld\n",
	       n, elapsed, sum->connects, sum->ok, sum->bad, sum->errors);
	printf("rate: %.1f messages/s\n", elapsed > 0 ? (double)n / elapsed : 0.0);
	printf("outcomes: pass %ld reject %ld tempfail %ld discard %ld error %ld\n",
	       sum->out[OUT_PASS], sum->out[OUT_REJECT], sum->out[OUT_TEMPFAIL],
	       sum->out[OUT_DISCARD], sum->out[OUT_ERROR]);
	fputs("replies:", stdout);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		printf(" %s=%ld", names[i].name, sum->replies[(unsigned char)names[i].letter]);
	for (int i = 0; i < 128; i++)
		other += sum->replies[i];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		other -= sum->replies[(unsigned char)names[i].letter];
	printf(" other=%ld\n", other);
	printf("dkim: %ld DKIM-Signature headers in %ld messages\n", sum->dkim_sigs, sum->dkim_msgs);
	if (n > 0) {
		qsort(durations, (size_t)n, sizeof(double), cmp_double);
		printf("per message (ms): median %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
		       durations[n / 2] * 1e3, durations[n * 9 / 10] * 1e3,
		       durations[n * 99 / 100] * 1e3, durations[n - 1] * 1e3);
	}
}

int main(int argc, char **argv)
{
	int ch;

	while ((ch = getopt(argc, argv, "s:c:n:m:T:l:f:r:F:b:N:a:H:e:k:t:o:q")) != -1) {
		switch (ch) {
		case 's': opt.socket = optarg; break;
		case 'c': opt.conns = (int)num(optarg, 1, 256, "-c"); break;
		case 'n': opt.messages = num(optarg, 1, 10000000, "-n"); break;
		case 'm': opt.per_conn = num(optarg, 1, 1000000, "-m"); break;
		case 'T': opt.time_limit = (double)num(optarg, 1, 3600, "-T"); break;
		case 'l': opt.login = optarg[0] ? optarg : NULL; break;
		case 'f': opt.from = optarg; break;
		case 'r': opt.rcpt = optarg; break;
		case 'F': opt.header_from = optarg; break;
		case 'b': opt.body_bytes = num(optarg, 0, MAX_BODY, "-b"); break;
		case 'N': opt.extra_headers = (int)num(optarg, 0, 1000, "-N"); break;
		case 'a': opt.client_addr = optarg; break;
		case 'H': opt.client_name = optarg; break;
		case 'e':
			if (strcmp(optarg, "pass") == 0) opt.expect = EXPECT_PASS;
			else if (strcmp(optarg, "reject") == 0) opt.expect = EXPECT_REJECT;
			else if (strcmp(optarg, "tempfail") == 0) opt.expect = EXPECT_TEMPFAIL;
			else if (strcmp(optarg, "any") == 0) opt.expect = EXPECT_ANY;
			else die("-e must be pass, reject, tempfail or any");
			break;
		case 'k': opt.dkim_expected = (int)num(optarg, 0, 100, "-k"); break;
		case 't': opt.timeout = (int)num(optarg, 1, 600, "-t"); break;
		case 'o': opt.dump_file = optarg; break;
		case 'q': opt.quiet = true; break;
		default: usage();
		}
	}
	if (opt.socket == NULL || optind != argc)
		usage();
	if (opt.header_from == NULL)
		opt.header_from = opt.from;
	if (strlen(opt.from) > 400 || strlen(opt.rcpt) > 400)
		die("-f and -r must be shorter than 400 bytes");
	make_body(opt.body_bytes);
	durations = xmalloc((size_t)opt.messages * sizeof(double));

	pthread_t tids[256];
	struct counts *k = calloc((size_t)opt.conns, sizeof(*k)), sum = {0};
	if (k == NULL)
		die("out of memory");
	t_start = now();
	t_deadline = t_start + opt.time_limit;
	for (int i = 0; i < opt.conns; i++)
		if (pthread_create(&tids[i], NULL, worker, &k[i]) != 0)
			die("cannot start thread %d", i);
	for (int i = 0; i < opt.conns; i++)
		pthread_join(tids[i], NULL);
	double elapsed = now() - t_start;

	for (int i = 0; i < opt.conns; i++) {
		sum.done += k[i].done;
		sum.ok += k[i].ok;
		sum.bad += k[i].bad;
		sum.errors += k[i].errors;
		sum.connects += k[i].connects;
		sum.dkim_sigs += k[i].dkim_sigs;
		sum.dkim_msgs += k[i].dkim_msgs;
		for (int j = 0; j <= OUT_ERROR; j++)
			sum.out[j] += k[i].out[j];
		for (int j = 0; j < 128; j++)
			sum.replies[j] += k[i].replies[j];
	}
	if (atomic_load(&gave_up))
		fprintf(stderr, "milter-load: gave up: cannot connect to %s\n", opt.socket);
	if (!opt.quiet || sum.bad > 0)
		report(&sum, elapsed);
	else
		printf("rate: %.1f messages/s\n", elapsed > 0 ? (double)sum.done / elapsed : 0.0);
	free(k);
	free(durations);
	free(body);
	return sum.bad > 0 || sum.done == 0 || atomic_load(&gave_up) ? 1 : 0;
}
