#!/bin/bash
# 620-sendmail-sender: 120-envelope-sender.sh against Sendmail instead of Postfix (sender policy with real SMTP AUTH logins).
# The stack runs a private Sendmail with contrib/sendmail/weir.mc
# (WEIR_STACK_MTA=sendmail, tests/stack/start-sendmail.sh); the test's
# body is MTA-neutral (tests/integration/lib.sh mta_*). Skipped (77) when
# Debian's sendmail-bin cannot be fetched.
export WEIR_STACK_MTA=sendmail
exec "$(dirname "$0")/120-envelope-sender.sh" "$@"
