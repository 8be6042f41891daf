/* weirctl_outcome - weirctl outcome show (policy/weirctl_outcome.c) and
 * weirctl bounce intake (policy/weirctl_intake.c) */
#ifndef WEIR_POLICY_WEIRCTL_OUTCOME_H
#define WEIR_POLICY_WEIRCTL_OUTCOME_H

/* weirctl_outcome - argv[0] is "outcome"; the exit status */
int weirctl_outcome(const char *conf, int argc, char **argv);
/* weirctl_bounce_intake - argv[0] is "intake" (of "weirctl bounce
 * intake"); 0 done, 75 (EX_TEMPFAIL) when the MTA should try again */
int weirctl_bounce_intake(const char *conf, int argc, char **argv);

#endif
