/* testlib - tiny helpers for weir's unit tests (Dovecot's test_begin /
 * test_assert / test_end idea). A test program calls test_begin for each
 * case, test_assert as often as needed, test_end, and returns
 * test_exit_status() from main: 0 when every assertion held, 1 otherwise.
 * Each failed assertion prints file:line and the expression. */
#ifndef WEIR_TESTLIB_H
#define WEIR_TESTLIB_H

#include <stdio.h>
#include <string.h>

static int test_failures_total;
static int test_failures_case;
static const char *test_case_name;

static inline void test_begin(const char *name)
{
	test_case_name = name;
	test_failures_case = 0;
}

#define test_assert(expr)                                                                   \
	do {                                                                                \
		if (!(expr)) {                                                              \
			fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", __FILE__,       \
				__LINE__, test_case_name, #expr);                           \
			test_failures_case++;                                               \
			test_failures_total++;                                              \
		}                                                                           \
	} while (0)

#define test_assert_str(got, want)                                                          \
	do {                                                                                \
		const char *g_ = (got), *w_ = (want);                                       \
		if (g_ == NULL || strcmp(g_, w_) != 0) {                                    \
			fprintf(stderr, "%s:%d: %s: got \"%s\", want \"%s\"\n", __FILE__,     \
				__LINE__, test_case_name, g_ ? g_ : "(null)", w_);          \
			test_failures_case++;                                               \
			test_failures_total++;                                              \
		}                                                                           \
	} while (0)

static inline void test_end(void)
{
	printf("%s %s\n", test_failures_case ? "FAIL" : "ok  ", test_case_name);
}

static inline int test_exit_status(void)
{
	return test_failures_total ? 1 : 0;
}

#endif
