#!/bin/bash
# 210-dkim-sign: weir-milter signs the mail of an authenticated client
# (alice, real SMTP AUTH) with the keys of its header From domain (issue 4
# spec), through the whole stack (Postfix -> weir-milter -> weir-agent ->
# sink). Three From domains: rsa.weir.test (RSA only), ed.weir.test
# (Ed25519 only) and dual.weir.test (RSA + Ed25519: two signatures, in the
# order of the keys); canonicalization relaxed/relaxed, then simple/simple
# (a second stack). Messages: plain, long lines (990 and 998 bytes),
# 8-bit UTF-8 body (Content-Transfer-Encoding: 8bit), no line end after
# the last body line, trailing empty lines, empty body, folded headers,
# 20 recipients. Every stored copy must carry the expected DKIM-Signature
# header(s) (d=, s=, a=, c=, t=, no l=, From twice in h=; no x= with
# expire = "0", x= = t= + 7200 with expire = "2h") and verify with
# two independent verifiers that read the keys from the stack's DNS:
# dkimpy (tests/dkim/verify.py) and Mail::DKIM (tests/dkim/verify.pl).
# A copy with a changed Subject or one changed body byte must fail both.
# Mail::DKIM without Ed25519 support (Debian 12's 1.20230212) cannot check
# ed25519-sha256 signatures: those are checked by dkimpy alone, and the
# test says so.
. "$(dirname "$0")/lib.sh"
it_begin "DKIM signing of authenticated mail (RSA, Ed25519, dual; relaxed and simple)"
it_need_binaries milter agent
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
dkim_need_tools

dkim_keydir
it_say "keys made with: $(dkim_keygen_how)"
dkim_make_key rsa.weir.test rsa1 rsa || it_abort "cannot make the RSA key"
dkim_make_key ed.weir.test ed1 ed25519 || it_abort "cannot make the Ed25519 key"
dkim_make_key dual.weir.test rsa2 rsa || it_abort "cannot make the second RSA key"
dkim_make_key dual.weir.test ed2 ed25519 || it_abort "cannot make the second Ed25519 key"
K=$IT_KEYDIR

if mail_dkim_supports ed25519-sha256; then
	PL_ED=yes
else
	PL_ED=no
	it_say "NOTE: Mail::DKIM $(perl -MMail::DKIM -e 'print $Mail::DKIM::VERSION') cannot verify ed25519-sha256: Ed25519 signatures are verified by dkimpy only"
fi

conf_for() { # CANON EXPIRE
	cat <<CONF
trusted_networks = ("127.0.0.1/32", "::1/128");
local_domains = ("local.weir.test");
senders = {
  map = (
    { login = "alice"; addresses = ("alice@local.weir.test", "@rsa.weir.test", "@ed.weir.test", "@dual.weir.test"); }
  );
};
policy = { header_from = "reject"; };
dkim = {
  authserv_id = "relay.weir.test";
  sign = (
    { domain = "rsa.weir.test";
      keys = ( { selector = "rsa1"; algorithm = "rsa-sha256"; key = "$K/rsa.weir.test.rsa1.pem"; } ); },
    { domain = "ed.weir.test";
      keys = ( { selector = "ed1"; algorithm = "ed25519-sha256"; key = "$K/ed.weir.test.ed1.pem"; } ); },
    { domain = "dual.weir.test";
      keys = (
        { selector = "rsa2"; algorithm = "rsa-sha256"; key = "$K/dual.weir.test.rsa2.pem"; },
        { selector = "ed2"; algorithm = "ed25519-sha256"; key = "$K/dual.weir.test.ed2.pem"; }
      ); }
  );
  canonicalization = "$1";
  expire = "$2";
};
CONF
}

# X: what dkim_sigs_are expects of x=: "x=-" (expire = "0") or "xt=7200"
# (expire = "2h": x= is t= + 7200)
X="x=-"
# expected signatures (top first) per From domain
specs_for() { # DOMAIN CANON
	case $1 in
	rsa.weir.test) echo "d=rsa.weir.test s=rsa1 a=rsa-sha256 c=$2 $X" ;;
	ed.weir.test) echo "d=ed.weir.test s=ed1 a=ed25519-sha256 c=$2 $X" ;;
	dual.weir.test)
		# one per key, in the order of the keys, each inserted at the top
		# (index 0): the first key's signature may end up first or last;
		# dkim_sigs_are checks the order given here, so accept both below
		echo "d=dual.weir.test s=rsa2 a=rsa-sha256 c=$2 $X"
		echo "d=dual.weir.test s=ed2 a=ed25519-sha256 c=$2 $X"
		;;
	esac
}

long_line() { # N: a line of N bytes with words, runs of blanks and a tab
	$PY -c '
import sys
n = int(sys.argv[1]); s = ""; i = 0
while len(s) < n:
    s += ("word%d" % i) + ("  \t " if i % 7 == 0 else " "); i += 1
sys.stdout.write(s[:n - 1] + "x")' "$1"
}

# mk_msg KIND FROM TOKEN: a whole message (CRLF) of the given kind
mk_msg() {
	local kind=$1 from=$2 tok=$3 i
	{
		case $kind in
		folded)
			printf 'From: Alice\r\n  Example <%s>\r\n' "$from"
			printf 'To: <r1@%s>,\r\n\t<r2@%s>,\r\n    <r3@%s>\r\n' "$OTHER_DOMAIN" "$OTHER_DOMAIN" "$OTHER_DOMAIN"
			printf 'Subject: weir test %s\r\n  folded   once\r\n\tand\t twice  \r\n' "$tok"
			printf 'Reply-To:    <%s>   \r\n' "$from"
			;;
		many)
			printf 'From: Alice <%s>\r\n' "$from"
			printf 'To: '
			for i in $(seq -w 1 20); do
				printf '<r%s@%s>' "$i" "$OTHER_DOMAIN"
				[ "$i" != 20 ] && printf ',\r\n '
			done
			printf '\r\nSubject: weir test %s\r\n' "$tok"
			;;
		eightbit)
			printf 'From: Alice <%s>\r\n' "$from"
			printf 'To: <r1@%s>\r\n' "$OTHER_DOMAIN"
			printf 'Subject: =?UTF-8?Q?weir_test_gr=C3=BC=C3=9Fe?= %s\r\n' "$tok"
			printf 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n'
			;;
		*)
			printf 'From: Alice <%s>\r\n' "$from"
			printf 'To: <r1@%s>\r\n' "$OTHER_DOMAIN"
			printf 'Subject: weir test %s\r\n' "$tok"
			;;
		esac
		printf 'Date: %s\r\n' "$(date -R)"
		printf 'Message-ID: <%s@client.weir.test>\r\n' "$tok"
		printf '\r\n'
		case $kind in
		long)
			printf 'token %s\r\n' "$tok"
			long_line 990; printf '\r\n'
			long_line 998; printf '\r\n'
			printf 'end\r\n'
			;;
		eightbit)
			printf 'token %s\r\n' "$tok"
			printf 'Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln, \xe2\x82\xac 5, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e, \xf0\x9f\x93\xa7\r\n'
			printf 'na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 end\r\n'
			;;
		nonl)
			printf 'token %s\r\nthe last line has no line end' "$tok"
			;;
		trailing)
			printf 'token %s\r\n  trailing blanks  \t\r\n\r\n\r\n\r\n' "$tok"
			;;
		empty) ;;
		*)
			printf 'token %s\r\nline 2\r\n.dot line\r\n\tlast line\r\n' "$tok"
			;;
		esac
	}
}

# sigs_ok FILE DOMAIN CANON: the DKIM-Signature headers of FILE are those
# of DOMAIN (for dual: either order of the two)
sigs_ok() {
	local f=$1 dom=$2 canon=$3 a b
	if [ "$dom" = dual.weir.test ]; then
		a=$(specs_for "$dom" "$canon" | sed -n 1p)
		b=$(specs_for "$dom" "$canon" | sed -n 2p)
		dkim_sigs_are "$f" "$a" "$b" >/dev/null 2>&1 && return 0
		dkim_sigs_are "$f" "$b" "$a"
		return
	fi
	dkim_sigs_are "$f" "$(specs_for "$dom" "$canon")"
}

# pl_args DOMAIN: how verify.pl is run for DOMAIN's signatures ("skip" = not)
pl_args() {
	case $1:$PL_ED in
	rsa.weir.test:* | *:yes) echo "" ;;
	dual.weir.test:no) echo "--allow-unsupported" ;;
	ed.weir.test:no) echo skip ;;
	esac
}

# h_count FILE NAME COUNT: every signature of FILE lists header NAME
# (lower case) COUNT times in h=
h_count() {
	local got
	got=$(dkim_sigs "$1")
	printf '%s\n' "$got" | awk -v h="$2" -v want="$3" '
		/^sig / { for (i = 1; i <= NF; i++) if ($i ~ /^h=/) {
			n = split(substr($i, 3), a, ":"); c = 0
			for (j = 1; j <= n; j++) if (a[j] == h) c++
			if (c != want) bad = 1 } }
		END { exit bad }' && return 0
	echo "    want $2 $3 time(s) in h= of every signature; got:"
	printf '%s\n' "$got" | sed 's/^/      /'
	return 1
}

N=0
# send_kind CANON DOMAIN KIND: send one message as alice and check every
# stored copy. Sets LAST (a stored copy) for the tamper checks.
send_kind() {
	local canon=$1 dom=$2 kind=$3 tok f m to pa files n
	tok=$(token)
	N=$((N + 1))
	m=$D/msg-$N-$kind.eml
	mk_msg "$kind" "alice@$dom" "$tok" >"$m"
	to=r1@$OTHER_DOMAIN
	if [ "$kind" = many ]; then
		to=$(for i in $(seq -w 1 20); do printf 'r%s@%s,' "$i" "$OTHER_DOMAIN"; done)
		to=${to%,}
	fi
	local desc="$canon $dom $kind"
	log_mark
	smtp "sign-$N" -i "$OUTSIDE_IP" -u alice --from "alice@$dom" --to "$to" --data "$m"
	check "$desc: accepted at end of data (250)" reply_matches DATA '^250 '
	check "$desc: reaches the sink" wait_sink "$tok" 1 30
	files=$(sink_files_with "$tok")
	if [ "$kind" = many ]; then
		wait_for 30 bash -c "[ \"\$(grep -h '^X-Sink-Rcpt-To:' \$(grep -lF -- '$tok' '$SINK_DIR'/*.eml) | sort -u | wc -l)\" -ge 20 ]"
		files=$(sink_files_with "$tok")
		n=$(grep -h '^X-Sink-Rcpt-To:' $files | sort -u | wc -l)
		check "$desc: all 20 recipients stored (got $n in $(echo $files | wc -w) cop(y/ies))" [ "$n" = 20 ]
	fi
	check "$desc: milter logs dkim=signed d=$dom" dkim_log_has "dkim=signed d=$dom( |$)"
	pa=$(pl_args "$dom")
	for f in $files; do
		LAST=$f
		check "$desc: $(basename "$f") has the expected DKIM-Signature(s)" sigs_ok "$f" "$dom" "$canon"
		if [ "$kind" = folded ]; then
			# oversigned when present: Subject, To, Reply-To (once more);
			# signed once: Date, Message-ID
			for h in subject:2 to:2 reply-to:2 date:1 message-id:1; do
				check "$desc: h= holds ${h%%:*} ${h#*:} time(s)" h_count "$f" "${h%%:*}" "${h#*:}"
			done
		fi
		if [ "$kind" = eightbit ]; then
			check "$desc: the 8-bit body arrived unchanged (no MIME conversion)" \
				grep -q 'Content-Transfer-Encoding: 8bit' "$f"
		fi
		check "$desc: $(basename "$f") verifies with dkimpy" verify_py "$f"
		if [ "$pa" = skip ]; then
			it_say "     ($desc: Mail::DKIM check skipped: no ed25519-sha256 support)"
		else
			# shellcheck disable=SC2086
			check "$desc: $(basename "$f") verifies with Mail::DKIM${pa:+ $pa}" verify_pl "$f" $pa
		fi
	done
}

# tamper CANON DOMAIN FILE: a changed Subject or body byte fails both
tamper() {
	local canon=$1 dom=$2 f=$3 t pa
	pa=$(pl_args "$dom")
	for what in subject body; do
		t=$D/tampered-$what-$(basename "$f")
		dkim_tamper "$f" "$what" "$t" || { check "$canon $dom: make a $what-tampered copy" false; continue; }
		check "$canon $dom: $what changed: dkimpy fails it" verify_py_fails "$t"
		if [ "$pa" != skip ]; then
			# shellcheck disable=SC2086
			check "$canon $dom: $what changed: Mail::DKIM fails it" verify_pl_fails "$t" $pa
		fi
	done
}

run_canon() { # CANON
	local canon=$1 dom kind kinds="long eightbit nonl trailing empty folded many"
	# Sendmail rewrites address header fields when it queues a message
	# (a folded To: list becomes "a, b, c"): simple header
	# canonicalization cannot survive that, and contrib/sendmail/weir.mc
	# says to keep it relaxed. The folded and many messages (folded
	# address lists) are sent with relaxed header canonicalization only.
	if is_sendmail && [ "${canon%%/*}" = simple ]; then
		kinds="long eightbit nonl trailing empty"
		it_say "Sendmail: $canon: no folded/many messages (Sendmail reformats address lists)"
	fi
	for dom in rsa.weir.test ed.weir.test dual.weir.test; do
		LAST=
		send_kind "$canon" "$dom" plain
		if [ -n "$LAST" ]; then tamper "$canon" "$dom" "$LAST"; else check "$canon $dom: a stored copy to tamper with" false; fi
		for kind in $kinds; do
			send_kind "$canon" "$dom" "$kind"
		done
	done
}

# relaxed/relaxed with no x= (expire = "0"), then simple/simple with
# expire = "2h" (x= is t= + 7200)
X="x=-"
it_start_policy_stack "$(conf_for relaxed/relaxed 0)" WEIR_STACK_ZONE_EXTRA="$IT_KEYDIR/zone.extra"
check "DNS: rsa1._domainkey.rsa.weir.test has the key" bash -c "[ -n \"\$(dig +short -p $DNS_PORT @127.0.0.1 TXT rsa1._domainkey.rsa.weir.test)\" ]"
run_canon relaxed/relaxed

X="xt=7200"
it_restart_policy_stack "$(conf_for simple/simple 2h)" WEIR_STACK_ZONE_EXTRA="$IT_KEYDIR/zone.extra"
run_canon simple/simple
it_end
