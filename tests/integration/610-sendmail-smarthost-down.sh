#!/bin/bash
# 610-sendmail-smarthost-down: 30-smarthost-down.sh against Sendmail instead of Postfix (the smart host down: the message waits in Sendmail's queue, nothing lost).
# The stack runs a private Sendmail with contrib/sendmail/weir.mc
# (WEIR_STACK_MTA=sendmail, tests/stack/start-sendmail.sh); the test's
# body is MTA-neutral (tests/integration/lib.sh mta_*). Skipped (77) when
# Debian's sendmail-bin cannot be fetched.
export WEIR_STACK_MTA=sendmail
exec "$(dirname "$0")/30-smarthost-down.sh" "$@"
