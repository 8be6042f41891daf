#!/bin/bash
# 630-sendmail-dkim: 210-dkim-sign.sh against Sendmail instead of Postfix (DKIM signatures checked by dkimpy and Mail::DKIM).
# The stack runs a private Sendmail with contrib/sendmail/weir.mc
# (WEIR_STACK_MTA=sendmail, tests/stack/start-sendmail.sh); the test's
# body is MTA-neutral (tests/integration/lib.sh mta_*). Skipped (77) when
# Debian's sendmail-bin cannot be fetched.
export WEIR_STACK_MTA=sendmail
exec "$(dirname "$0")/210-dkim-sign.sh" "$@"
