/* keygen - `weirctl keygen` (see keygen.c) */
#ifndef WEIR_POLICY_KEYGEN_H
#define WEIR_POLICY_KEYGEN_H

#include <stdbool.h>

/* keygen_main - argv[0] is "keygen"; returns the exit status */
int keygen_main(int argc, char **argv);

#endif
