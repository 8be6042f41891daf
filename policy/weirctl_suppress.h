/* weirctl_suppress - weirctl suppression list|add|remove|import|export */
#ifndef WEIR_POLICY_WEIRCTL_SUPPRESS_H
#define WEIR_POLICY_WEIRCTL_SUPPRESS_H

/* weirctl_suppression - argv[0] is "suppression"; conf the -c file
 * (options after the subcommand may replace it); the exit status */
int weirctl_suppression(const char *conf, int argc, char **argv);

#endif
