/* mlfi - the thin layer between weir-milter's logic and libmilter
 *
 * Every smfi_* call goes through a struct mlfi_io, so the session logic
 * (session.c) can be driven by unit tests without an MTA. The real
 * implementation (mlfi.c) wraps SMFICTX. */
#ifndef WEIR_MILTER_MLFI_H
#define WEIR_MILTER_MLFI_H

#include <stdbool.h>

/* Decisions a stage hands back to the MTA. */
enum mlfi_status { MLFI_CONTINUE, MLFI_ACCEPT, MLFI_REJECT, MLFI_TEMPFAIL, MLFI_DISCARD };

struct mlfi_io {
	void *handle; /* SMFICTX * in production */
	/* getsymval - value of a macro ("i", "{auth_authen}") or NULL */
	const char *(*getsymval)(void *handle, const char *name);
	/* setreply - SMTP reply for a reject/tempfail: code "550",
	 * enhanced "5.7.1", text (one line). 0 or -1. */
	int (*setreply)(void *handle, const char *code, const char *enhanced, const char *text);
	/* addheader - append a header field. 0 or -1. */
	int (*addheader)(void *handle, const char *name, const char *value);
	/* quarantine - put the message on hold with reason. 0 or -1. */
	int (*quarantine)(void *handle, const char *reason);
	/* insheader - insert a header field at index (0 = first). 0 or -1. */
	int (*insheader)(void *handle, int index, const char *name, const char *value);
	/* delheader - delete the index'th (1-based) field called name */
	int (*delheader)(void *handle, const char *name, int index);
};

/* mlfi_register - register weir-milter's callbacks with libmilter */
int mlfi_register(void);

#endif
