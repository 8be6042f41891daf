#!/bin/bash
# 600-sendmail-relay: 10-relay-basic.sh against Sendmail instead of Postfix (relay three messages through Sendmail, weir-milter and weir-agent).
# The stack runs a private Sendmail with contrib/sendmail/weir.mc
# (WEIR_STACK_MTA=sendmail, tests/stack/start-sendmail.sh); the test's
# body is MTA-neutral (tests/integration/lib.sh mta_*). Skipped (77) when
# Debian's sendmail-bin cannot be fetched.
export WEIR_STACK_MTA=sendmail
exec "$(dirname "$0")/10-relay-basic.sh" "$@"
