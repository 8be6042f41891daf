#!/bin/bash
# 240-dkim-keys: DKIM key files and weirctl keygen (issue 4 spec, "Key
# files", "weirctl keygen").
# - weirctl keygen writes a PEM key of mode 0600 (default D.S.pem in the
#   current directory, RSA 2048), refuses to overwrite a file, refuses
#   --bits outside 1024..8192, and prints S._domainkey.D. IN TXT ( "..." )
#   with every string at most 255 bytes (--bits 4096 forces a split); the
#   record (served by the stack's nsd) lets dkimpy and Mail::DKIM verify a
#   message signed with the key; p= is the key's public key.
# - A key file readable by group or others is refused by weir-milter -n
#   and weirctl check with the spec's message (chmod 600 advice); so are
#   unparseable, truncated, missing and wrong-type key files (exit 1, no
#   crash).
# - Reload (SIGUSR1) with such a key file is refused and the old
#   configuration keeps signing; a good key then reloads.
. "$(dirname "$0")/lib.sh"
it_begin "DKIM key files: permissions, parsing, reload; weirctl keygen"
it_need_binaries milter agent weirctl
command -v saslpasswd2 >/dev/null || it_skip "saslpasswd2 not installed (sasl2-bin)"
dkim_need_tools

dkim_keydir
W=$IT_KEYDIR/keygen
mkdir -p "$W" && chmod 755 "$W"

# txt_ok FILE MINSTRINGS K: FILE holds one record
#   S._domainkey.D. IN TXT ( "v=DKIM1; k=K; p=..." ... ) with at least
# MINSTRINGS strings, each at most 255 bytes; prints the joined value
txt_ok() {
	$PY - "$@" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
want_min, k = int(sys.argv[2]), sys.argv[3]
m = re.search(r'^(\S+)\s+(?:\d+\s+)?IN\s+TXT\s+\((.*?)\)', text, re.S | re.M)
if not m:
    print("    no 'NAME IN TXT ( ... )' record in the output:\n" + text); sys.exit(1)
strings = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
bad = [len(s.encode()) for s in strings if len(s.encode()) > 255]
value = "".join(strings)
ok = True
if bad:
    print("    strings longer than 255 bytes: %s" % bad); ok = False
if len(strings) < want_min:
    print("    want at least %d strings, got %d" % (want_min, len(strings))); ok = False
if not re.match(r'v=DKIM1;\s*k=%s;\s*p=[A-Za-z0-9+/=]+$' % re.escape(k), value):
    print("    value is not v=DKIM1; k=%s; p=...: %r" % (k, value[:80])); ok = False
sys.stderr.write(value + "\n")
sys.exit(0 if ok else 1)
PYEOF
}

# p_matches_key TXTFILE PEM rsa|ed25519: p= of the record is the key's
# public key
p_matches_key() {
	local p want
	p=$($PY -c 'import re,sys; t=open(sys.argv[1]).read(); print(re.search(r"p=([A-Za-z0-9+/=]+)", "".join(re.findall(r"\"([^\"]*)\"", t))).group(1))' "$1" 2>/dev/null)
	if [ "$3" = rsa ]; then
		want=$(openssl pkey -in "$2" -pubout -outform DER 2>/dev/null | base64 -w0)
	else
		want=$(openssl pkey -in "$2" -pubout -outform DER 2>/dev/null | tail -c 32 | base64 -w0)
	fi
	[ -n "$p" ] && [ "$p" = "$want" ] && return 0
	echo "    p= '$p' is not the public key of $2 ('$want')"
	return 1
}

mode_is() { # FILE MODE
	local m
	m=$(stat -c %a "$1" 2>/dev/null)
	[ "$m" = "$2" ] && return 0
	echo "    mode of $1 is '$m', want $2"
	return 1
}

rsa_bits_are() { # FILE BITS
	openssl pkey -in "$1" -noout -text 2>/dev/null | grep -qE "Private-Key: \($2 bit" && return 0
	echo "    $1: $(openssl pkey -in "$1" -noout -text 2>&1 | head -n 1)"
	return 1
}

# --- weirctl keygen ----------------------------------------------------------------
check "weirctl lists the keygen command" weirctl_has_keygen
(cd "$W" && "$WEIRCTL" keygen --domain keys.weir.test --selector k1 >"$W/k1.txt" 2>"$W/k1.err")
rc=$?
check "keygen (defaults) exits 0 (stderr: $(head -c 200 "$W/k1.err"))" [ "$rc" = 0 ]
F1=$W/keys.weir.test.k1.pem
check "keygen (defaults) writes keys.weir.test.k1.pem in the current directory" [ -f "$F1" ]
check "keygen (defaults): mode 0600" mode_is "$F1" 600
check "keygen (defaults): an RSA 2048-bit key" rsa_bits_are "$F1" 2048
check "keygen (defaults): prints k1._domainkey.keys.weir.test. IN TXT ( ... ), strings <= 255 bytes" \
	bash -c "grep -qE '^k1\._domainkey\.keys\.weir\.test\.[[:space:]]' '$W/k1.txt'" 
check "keygen (defaults): the record is v=DKIM1; k=rsa; p=..., strings <= 255 bytes" txt_ok "$W/k1.txt" 1 rsa
check "keygen (defaults): p= is the key's public key" p_matches_key "$W/k1.txt" "$F1" rsa

sum_before=$(sha256sum "$F1" 2>/dev/null)
(cd "$W" && "$WEIRCTL" keygen --domain keys.weir.test --selector k1 >"$W/k1b.txt" 2>"$W/k1b.err")
rc=$?
check "keygen refuses to overwrite an existing file (exit $rc, stderr: $(head -c 160 "$W/k1b.err"))" [ "$rc" != 0 ]
check "keygen refusal leaves the file unchanged" [ "$sum_before" = "$(sha256sum "$F1" 2>/dev/null)" ]
"$WEIRCTL" keygen --domain keys.weir.test --selector kx --output "$F1" >/dev/null 2>&1
check "keygen --output an existing file: refused" [ $? != 0 ]
check "... and that file is unchanged" [ "$sum_before" = "$(sha256sum "$F1" 2>/dev/null)" ]

F4=$W/k4.pem
"$WEIRCTL" keygen --domain keys.weir.test --selector k4 --bits 4096 --output "$F4" >"$W/k4.txt" 2>"$W/k4.err"
check "keygen --bits 4096 exits 0 ($(head -c 160 "$W/k4.err"))" [ $? = 0 ]
check "keygen --bits 4096: mode 0600" mode_is "$F4" 600
check "keygen --bits 4096: a 4096-bit key" rsa_bits_are "$F4" 4096
check "keygen --bits 4096: p= split in several strings of <= 255 bytes" txt_ok "$W/k4.txt" 2 rsa
check "keygen --bits 4096: p= is the key's public key" p_matches_key "$W/k4.txt" "$F4" rsa

FE=$W/ked.pem
"$WEIRCTL" keygen --domain keys.weir.test --selector ked --algorithm ed25519 --output "$FE" >"$W/ked.txt" 2>"$W/ked.err"
check "keygen --algorithm ed25519 exits 0 ($(head -c 160 "$W/ked.err"))" [ $? = 0 ]
check "keygen ed25519: mode 0600" mode_is "$FE" 600
check "keygen ed25519: an Ed25519 PEM key" bash -c "openssl pkey -in '$FE' -noout -text 2>/dev/null | grep -q 'ED25519 Private-Key'"
check "keygen ed25519: record v=DKIM1; k=ed25519; p=..." txt_ok "$W/ked.txt" 1 ed25519
check "keygen ed25519: p= is the raw 32-byte public key" p_matches_key "$W/ked.txt" "$FE" ed25519

for bits in 512 1023 8193; do
	"$WEIRCTL" keygen --domain keys.weir.test --selector b$bits --bits $bits --output "$W/b$bits.pem" >"$W/b$bits.txt" 2>&1
	rc=$?
	check "keygen --bits $bits refused (exit $rc: $(head -c 120 "$W/b$bits.txt"))" [ "$rc" != 0 ]
	check "keygen --bits $bits writes no key file" [ ! -e "$W/b$bits.pem" ]
done

# publish the keygen records (copied verbatim) for the stack's DNS
for t in k1 k4 ked; do
	[ -s "$W/$t.txt" ] && { cat "$W/$t.txt"; echo; } >>"$IT_KEYDIR/zone.extra"
done

# --- weir-milter -n / weirctl check with bad key files --------------------------------
dkim_make_key local.weir.test rsa1 rsa || it_abort "cannot make a key"
dkim_make_key local.weir.test rsa2 rsa || it_abort "cannot make a key"
DKIM_PUBLISH=0 dkim_make_key local.weir.test edx ed25519 || it_abort "cannot make a key"
K=$IT_KEYDIR
GOOD=$K/local.weir.test.rsa1.pem

# nconf KEYFILE [ALG]: a weir.conf for -n whose one DKIM key is KEYFILE
nconf() {
	local f=$K/n-$RANDOM.conf
	cat >"$f" <<CONF
user = "weir";
hostname = "relay.weir.test";
milter = { socket = "unix:$K/milter.sock"; pid_file = "$K/milter.pid"; };
agent = { smarthost = "127.0.0.1:25"; lmtp_listen = ("unix:$K/agent.lmtp"); pid_file = "$K/agent.pid"; };
local_domains = ("local.weir.test");
dkim = {
  sign = (
    { domain = "local.weir.test";
      keys = ( { selector = "t1"; algorithm = "${2:-rsa-sha256}"; key = "$1"; } ); }
  );
};
CONF
	chmod 644 "$f"
	echo "$f"
}

# refused WHAT KEYFILE ERE [ALG]: weir-milter -n and weirctl check exit 1
# (not a signal) and print a line matching ERE
refused() {
	local what=$1 kf=$2 ere=$3 c out rc
	c=$(nconf "$kf" "${4:-}")
	out=$("$WEIR_MILTER" -n -c "$c" 2>&1)
	rc=$?
	check "$what: weir-milter -n exits 1 (got $rc)" [ "$rc" = 1 ]
	check "$what: weir-milter -n says /$ere/ (said: $(printf '%s' "$out" | head -n 3 | tr '\n' '|'))" \
		grep -qE -- "$ere" <<<"$out"
	out=$("$WEIRCTL" -c "$c" check 2>&1)
	rc=$?
	check "$what: weirctl check exits 1 (got $rc)" [ "$rc" = 1 ]
	check "$what: weirctl check says /$ere/" grep -qE -- "$ere" <<<"$out"
}

accepted() { # WHAT KEYFILE [ALG]
	local c out rc
	c=$(nconf "$2" "${3:-}")
	out=$("$WEIR_MILTER" -n -c "$c" 2>&1)
	rc=$?
	check "$1: weir-milter -n exits 0 (got $rc: $(printf '%s' "$out" | head -n 2 | tr '\n' '|'))" [ "$rc" = 0 ]
}

accepted "key file mode 0600 owned by weir" "$GOOD"
cp "$GOOD" "$K/k0400.pem" && chown weir "$K/k0400.pem" && chmod 400 "$K/k0400.pem"
accepted "key file mode 0400" "$K/k0400.pem"
cp "$GOOD" "$K/k0644.pem" && chmod 644 "$K/k0644.pem"
Q=$(ere_quote "$K/k0644.pem")
refused "key file mode 0644" "$K/k0644.pem" \
	"$Q: key file is readable by group or others \(mode 0644\); run: chmod 600 $Q"
cp "$GOOD" "$K/k0640.pem" && chmod 640 "$K/k0640.pem"
Q=$(ere_quote "$K/k0640.pem")
refused "key file mode 0640" "$K/k0640.pem" \
	"$Q: key file is readable by group or others \(mode 0640\); run: chmod 600 $Q"
cp "$GOOD" "$K/k0604.pem" && chmod 604 "$K/k0604.pem"
Q=$(ere_quote "$K/k0604.pem")
refused "key file mode 0604" "$K/k0604.pem" \
	"$Q: key file is readable by group or others \(mode 0604\); run: chmod 600 $Q"

printf 'this is not a key\n' >"$K/garbage.pem" && chmod 600 "$K/garbage.pem"
Q=$(ere_quote "$K/garbage.pem")
refused "unparseable key file" "$K/garbage.pem" "$Q: (cannot read key: |not a PEM private key for rsa-sha256)"
head -c 300 "$GOOD" >"$K/trunc.pem" && chmod 600 "$K/trunc.pem"
Q=$(ere_quote "$K/trunc.pem")
refused "truncated PEM key file" "$K/trunc.pem" "$Q: (cannot read key: |not a PEM private key for rsa-sha256)"
: >"$K/empty.pem" && chmod 600 "$K/empty.pem"
Q=$(ere_quote "$K/empty.pem")
refused "empty key file" "$K/empty.pem" "$Q: (cannot read key: |not a PEM private key for rsa-sha256)"
Q=$(ere_quote "$K/missing.pem")
refused "missing key file" "$K/missing.pem" "$Q: cannot read key: "
Q=$(ere_quote "$K/local.weir.test.edx.pem")
refused "Ed25519 key configured as rsa-sha256" "$K/local.weir.test.edx.pem" "$Q: not a PEM private key for rsa-sha256"
Q=$(ere_quote "$GOOD")
refused "RSA key configured as ed25519-sha256" "$GOOD" "$Q: not a PEM private key for ed25519-sha256" ed25519-sha256

# --- a stack: keygen records verify; reload with bad keys is refused -------------------
it_start_policy_stack "
trusted_networks = (\"127.0.0.1/32\", \"::1/128\");
local_domains = (\"local.weir.test\");
senders = { map = ( { login = \"alice\"; addresses = (\"alice@local.weir.test\"); } ); };
policy = { header_from = \"reject\"; };
dkim = {
  authserv_id = \"relay.weir.test\";
  sign = (
    { domain = \"local.weir.test\";
      keys = ( { selector = \"rsa1\"; algorithm = \"rsa-sha256\"; key = \"$GOOD\"; } ); }
  );
};" WEIR_STACK_ZONE_EXTRA="$IT_KEYDIR/zone.extra"

# the keygen records, as served by nsd, verify messages signed with the keys
N=0
for t in k1:rsa-sha256:$F1 k4:rsa-sha256:$F4 ked:ed25519-sha256:$FE; do
	sel=${t%%:*} rest=${t#*:}
	alg=${rest%%:*} kf=${rest#*:}
	[ -f "$kf" ] || { check "keygen key $sel exists, to verify its record" false; continue; }
	N=$((N + 1))
	printf 'From: <x@keys.weir.test>\r\nTo: <y@other.weir.test>\r\nSubject: keygen %s\r\n\r\nbody\r\n' "$sel" >"$D/kg-$N.eml"
	$PY "$DKIM_HOME/sign.py" --key "$kf" --domain keys.weir.test --selector "$sel" --algorithm "$alg" \
		"$D/kg-$N.eml" "$D/kg-$N.signed.eml"
	check "keygen $sel: nsd serves its record" bash -c "[ -n \"\$(dig +short -p $DNS_PORT @127.0.0.1 TXT $sel._domainkey.keys.weir.test)\" ]"
	check "keygen $sel: dkimpy verifies a message signed with it" verify_py "$D/kg-$N.signed.eml"
	if [ "$alg" = rsa-sha256 ] || mail_dkim_supports "$alg"; then
		check "keygen $sel: Mail::DKIM verifies a message signed with it" verify_pl "$D/kg-$N.signed.eml"
	else
		it_say "     (keygen $sel: Mail::DKIM check skipped: no $alg support)"
	fi
done

pid0=$MILTER_PID
# signed_with SELECTOR DESC: alice's message is signed s=SELECTOR and verifies
signed_with() {
	local sel=$1 desc=$2 tok f
	tok=$(token)
	smtp "reload-$tok" -i "$OUTSIDE_IP" -u alice --from "alice@$LOCAL_DOMAIN" --to "r@$OTHER_DOMAIN" \
		--header "From: <alice@$LOCAL_DOMAIN>" --header "Subject: $tok" --body "body $tok"
	check "$desc: accepted (250)" reply_matches DATA '^250 '
	check "$desc: reaches the sink" wait_sink "$tok" 1 30
	f=$(sink_file "$tok")
	f=${f:-/nonexistent}
	check "$desc: signed s=$sel" dkim_sigs_are "$f" "d=$LOCAL_DOMAIN s=$sel a=rsa-sha256 c=relaxed/relaxed"
	check "$desc: dkimpy verifies it" verify_py "$f"
	check "$desc: Mail::DKIM verifies it" verify_pl "$f"
}
signed_with rsa1 "before reload"

# reload_with KEYFILE SELECTOR: point weir.conf's key entry at KEYFILE /
# SELECTOR, SIGUSR1
reload_with() {
	sed -i -E "s|selector = \"[a-z0-9]+\"; algorithm = \"rsa-sha256\"; key = \"[^\"]*\"|selector = \"$2\"; algorithm = \"rsa-sha256\"; key = \"$1\"|" "$WEIR_CONF"
	grep -qF "key = \"$1\"" "$WEIR_CONF" || echo "    could not edit $WEIR_CONF"
	log_mark
	kill -USR1 "$MILTER_PID"
	sleep 2
}

R2=$K/local.weir.test.rsa2.pem
chmod 644 "$R2"
Q=$(ere_quote "$R2")
reload_with "$R2" rsa2
check "reload with a 0644 key: refused with the chmod 600 message" \
	wait_for 10 log_has_since "$Q: key file is readable by group or others \(mode 0644\); run: chmod 600 $Q"
check "reload with a 0644 key: weir-milter still runs (pid $pid0)" pid_alive "$pid0"
signed_with rsa1 "after the refused reload (0644 key)"

printf 'garbage\n' >"$K/garbage2.pem" && chmod 600 "$K/garbage2.pem" && chown weir "$K/garbage2.pem"
Q=$(ere_quote "$K/garbage2.pem")
reload_with "$K/garbage2.pem" rsa2
check "reload with an unparseable key: refused with an error naming the file" \
	wait_for 10 log_has_since "$Q: (cannot read key: |not a PEM private key for rsa-sha256)"
check "reload with an unparseable key: weir-milter still runs (pid $pid0)" pid_alive "$pid0"
signed_with rsa1 "after the refused reload (unparseable key)"

chmod 600 "$R2"
reload_with "$R2" rsa2
check "reload with the key made 0600: no key error" bash -c "! grep -qE 'key file is readable|cannot read key|not a PEM private key' <<<\"\$1\"" _ "$(log_since)"
check "reload with the key made 0600: weir-milter still runs (pid $pid0)" pid_alive "$pid0"
signed_with rsa2 "after the good reload"
it_end
