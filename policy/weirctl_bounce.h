/* weirctl_bounce - the `weirctl bounce` command (policy/weirctl_bounce.c) */
#ifndef WEIR_POLICY_WEIRCTL_BOUNCE_H
#define WEIR_POLICY_WEIRCTL_BOUNCE_H

/* weirctl_bounce - argv[0] is "bounce"; returns the exit status */
int weirctl_bounce(const char *conf, int argc, char **argv);

#endif
