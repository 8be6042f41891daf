/* conftest - loading weir.conf text in unit tests and looking for an
 * expected error among what the loader reported */
#ifndef WEIR_TESTS_CONFTEST_H
#define WEIR_TESTS_CONFTEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "policy/config.h"

/* conf_load - text as file "t.conf" for who; errs starts afresh */
static inline struct weir_config *conf_load(struct config_errors *errs, const char *text,
                                            enum config_user who)
{
	config_errors_free(errs);
	config_errors_init(errs);
	return config_load_string("t.conf", text, who, errs);
}

/* conf_has_error - an error containing want was reported; else the
 * errors are printed */
static inline bool conf_has_error(const struct config_errors *errs, const char *want)
{
	for (size_t i = 0; i < errs->list.n; i++)
		if (strstr(errs->list.v[i], want) != NULL)
			return true;
	fprintf(stderr, "  no error containing \"%s\"; errors were:\n", want);
	for (size_t i = 0; i < errs->list.n; i++)
		fprintf(stderr, "    %s\n", errs->list.v[i]);
	return false;
}

#endif
