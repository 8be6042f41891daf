#!/usr/bin/perl
# verify.pl FILE [--dns-port P] [--dns-host H] [--allow-unsupported]
# verify.pl --supports ALGORITHM
#
# Verify every DKIM-Signature of a stored message with Mail::DKIM
# (Debian's libmail-dkim-perl), public keys fetched from the test DNS
# server H:P (default 127.0.0.1:53) through a Net::DNS::Resolver given to
# Mail::DKIM::DNS::resolver(): never from a file or the system resolver.
# The test sink's leading X-Sink-* envelope lines are removed first; bare
# LF line ends become CRLF (Mail::DKIM wants SMTP line ends).
#
# Prints one line per signature, top to bottom:
#     sig N d=DOMAIN s=SELECTOR a=ALGORITHM result=RESULT [(detail)]
# RESULT is Mail::DKIM's (pass, fail, invalid, temperror, ...) or
# "unsupported" for an algorithm this Mail::DKIM cannot verify (Debian 12's
# 1.20230212 knows rsa-sha1 and rsa-sha256 only: no ed25519-sha256).
#
# Exit: 0 when there is at least one signature and every one passes;
# with --allow-unsupported, signatures of unsupported algorithms are left
# out (0 when at least one other signature exists and all others pass,
# 3 when every signature is of an unsupported algorithm); 1 otherwise;
# 2 on usage or I/O errors.
# --supports ALGORITHM: exit 0 if this Mail::DKIM verifies ALGORITHM, else 1.
use strict;
use warnings;
use Getopt::Long;

my ($port, $host, $allow_unsupported, $supports) = (53, '127.0.0.1', 0, undef);
GetOptions(
	'dns-port=i'        => \$port,
	'dns-host=s'        => \$host,
	'allow-unsupported' => \$allow_unsupported,
	'supports=s'        => \$supports,
) or exit 2;

for my $m (qw(Mail::DKIM Mail::DKIM::Verifier Mail::DKIM::Signature Net::DNS::Resolver)) {
	eval "require $m; 1" or do {
		print STDERR "verify.pl: $m is not installed (libmail-dkim-perl, libnet-dns-perl): $@";
		exit 2;
	};
}

sub supported {
	my ($alg) = @_;
	my $class = eval { Mail::DKIM::Signature->new()->get_algorithm_class(lc $alg) };
	return defined $class ? 1 : 0;
}

if (defined $supports) {
	exit(supported($supports) ? 0 : 1);
}

@ARGV == 1 or do { print STDERR "usage: verify.pl FILE [--dns-port P] [--dns-host H] [--allow-unsupported]\n"; exit 2 };
my $file = $ARGV[0];
open(my $fh, '<:raw', $file) or do { print STDERR "verify.pl: $file: $!\n"; exit 2 };
my $raw = do { local $/; <$fh> };
close $fh;
$raw =~ s/\A(?:X-Sink-[^\n]*\n)+//;
$raw =~ s/(?<!\r)\n/\r\n/g;

my $res = Net::DNS::Resolver->new(
	nameservers => [$host],
	port        => $port,
	recurse     => 1,
	defnames    => 0,
	dnsrch      => 0,
	searchlist  => [],
	retry       => 2,
	udp_timeout => 5,
	tcp_timeout => 5,
);
$res->nameservers($host);
$res->port($port);
Mail::DKIM::DNS::resolver($res);

my $v = Mail::DKIM::Verifier->new();
$v->PRINT($raw);
$v->CLOSE();

my @sigs = grep { ref($_) !~ /DkSignature/ } $v->signatures;
if (!@sigs) {
	print "no DKIM-Signature header\n";
	exit 1;
}
my ($bad, $checked, $n) = (0, 0, 0);
for my $s (@sigs) {
	my $alg = $s->algorithm // '?';
	my $r = $s->result // 'none';
	my $detail = $s->result_detail // '';
	if (!supported($alg)) {
		$detail = "Mail::DKIM $Mail::DKIM::VERSION cannot verify $alg; it said: $detail";
		$r = 'unsupported';
	}
	printf "sig %d d=%s s=%s a=%s result=%s%s\n", $n++, $s->domain // '?', $s->selector // '?', $alg, $r,
		($r ne 'pass' && $detail ne '' ? " ($detail)" : '');
	if ($r eq 'unsupported' && $allow_unsupported) {
		next;
	}
	$checked++;
	$bad++ if $r ne 'pass';
}
exit 1 if $bad;
exit 3 if $checked == 0;
exit 0;
