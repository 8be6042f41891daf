/* weirctl_report - weirctl report: what happened to the mail of a time
 * window (policy/report.h), as aligned tables or one JSON object */
#ifndef WEIR_POLICY_WEIRCTL_REPORT_H
#define WEIR_POLICY_WEIRCTL_REPORT_H

#include <stddef.h>
#include <stdio.h>

struct report;

/* weirctl_report - argv[0] is "report"; the exit status (0, 1 when the
 * outcome log cannot be read, 2 for a usage error) */
int weirctl_report(const char *conf, int argc, char **argv);

/* report_print_text - r as tables with headings; at most top rows a
 * table (0: all) */
void report_print_text(FILE *out, const struct report *r, size_t top);
/* report_print_json - r as one JSON object and a newline; top as above */
void report_print_json(FILE *out, const struct report *r, size_t top);

#endif
