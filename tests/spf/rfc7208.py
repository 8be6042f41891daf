#!/usr/bin/python3
"""rfc7208.py - run the RFC 7208 SPF test suite through weir's engine

usage: rfc7208.py SPF_CHECK WORKDIR [SUITE.yml[.gz]] [--floor N] [--verbose]

For each scenario of the suite (Debian's python3-spf ships it) this writes
a root zone holding the scenario's zone data, serves it with nsd on
127.0.0.1 (a free port), runs every test case through SPF_CHECK
(tests/spf/spf-check) and compares the result with the acceptable ones.
Prints 'N of M cases agree', each mismatch, and exits 1 when fewer than
--floor agree (0 otherwise; 77 when nsd is missing).

Zone data as testspf.py (python3-spf) reads it: an SPF entry is published
as type SPF (99) and, unless the name has TXT entries of its own, as TXT;
TXT 'NONE' means no TXT record. 'TIMEOUT' at a name with no other records
(of the types weir asks) becomes a CNAME into a zone delegated to nobody:
nsd answers with a referral, which weir's resolver takes as a temporary
failure (DNS_WAIT_TEMPFAIL), the same as a timeout.
"""
import gzip
import os
import socket
import subprocess
import sys
import time

import yaml

SUITE = '/usr/share/doc/python3-spf/rfc7208-tests.yml.gz'
BLACKHOLE = 'weir-timeout-blackhole.'


def free_port():
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(('127.0.0.1', 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(('127.0.0.1', port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()


def zname(name):
    """a zone-file owner/target name, absolute, escaped"""
    out = []
    for b in name.rstrip('.').encode('utf-8'):
        c = chr(b)
        if c.isalnum() or c in '-_*%':
            out.append(c)
        elif c == '.':
            out.append('.')
        else:
            out.append('\\%03d' % b)
    return ''.join(out).lower() + '.'


def txt_rdata(v):
    strings = v if isinstance(v, list) else [v]
    strings = [x if x is not None else '' for x in strings] or ['']
    parts = []
    for s in strings:
        data = s.encode('utf-8')
        chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b'']
        for ch in chunks:
            esc = ''.join(chr(b) if 0x20 <= b < 0x7f and chr(b) not in '"\\'
                          else '\\%03d' % b for b in ch)
            parts.append('"%s"' % esc)
    return ' '.join(parts)


def records(recs):
    """(type, value) pairs the name publishes, as testspf.py: SPF also as
    TXT unless the name has TXT entries; TXT/SPF 'NONE' publishes nothing"""
    out, gen, timeout, txt = [], True, False, []
    for r in recs:
        if r == 'TIMEOUT':
            timeout = True
            continue
        for t, v in r.items():
            if t == 'TXT':
                gen = False
            elif t == 'SPF':
                txt.append(('TXT', v))
            if v != 'NONE' and v != ['NONE']:
                out.append((t, v))
    if gen:
        out += txt
    return out, timeout


def zone_text(zonedata, port):
    lines = ['$TTL 0',
             '. IN SOA ns.weir-root. hostmaster.weir-root. 1 3600 600 86400 0',
             '. IN NS ns.weir-root.',
             'ns.weir-root. IN A 127.0.0.1',
             BLACKHOLE + ' IN NS ns.' + BLACKHOLE,
             'ns.' + BLACKHOLE + ' IN A 127.0.0.2']
    for i, (name, recs) in enumerate(zonedata.items()):
        owner = zname(name)
        rr, timeout = records(recs)
        rr = [(t, v) for t, v in rr if t != 'SPF' or not timeout]
        if timeout and not any(t != 'SPF' for t, v in rr):
            lines.append('%s IN CNAME t%d.%s' % (owner, i, BLACKHOLE))
            continue
        for t, v in rr:
            if t == 'SPF':
                continue  # type 99: weir never asks the DNS for it (spf.c)
            if t in ('TXT', 'SPF'):
                lines.append('%s IN %s %s' % (owner, 'TXT' if t == 'TXT' else 'TYPE99',
                                              txt_rdata(v) if t == 'TXT' else
                                              generic_txt(v)))
            elif t == 'MX':
                lines.append('%s IN MX %d %s' % (owner, v[0], zname(v[1])))
            elif t in ('PTR', 'CNAME'):
                lines.append('%s IN %s %s' % (owner, t, zname(v)))
            elif t in ('A', 'AAAA'):
                lines.append('%s IN %s %s' % (owner, t, v))
            else:
                raise ValueError('unknown record type %s' % t)
    return '\n'.join(lines) + '\n'


def generic_txt(v):
    """RFC 3597 form of a TXT-format rdata, for type 99"""
    strings = v if isinstance(v, list) else [v]
    data = b''
    for s in strings:
        b = s.encode('utf-8')
        for i in range(0, max(len(b), 1), 255):
            ch = b[i:i + 255]
            data += bytes([len(ch)]) + ch
    h = data.hex()
    return '\\# %d %s' % (len(data), ' '.join(h[i:i + 32] for i in range(0, len(h), 32)))


def dns_ready(port):
    q = bytes.fromhex('abcd01000001000000000000') + b'\x00' + b'\x00\x06\x00\x01'
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(q, ('127.0.0.1', port))
        return len(s.recv(512)) > 12
    except OSError:
        return False
    finally:
        s.close()


def run_scenario(idx, scen, spf_check, work, verbose):
    d = os.path.join(work, 's%02d' % idx)
    os.makedirs(d, exist_ok=True)
    port = free_port()
    with open(os.path.join(d, 'root.zone'), 'w') as f:
        f.write(zone_text(scen['zonedata'], port))
    with open(os.path.join(d, 'nsd.conf'), 'w') as f:
        f.write('''server:
	ip-address: 127.0.0.1@%d
	do-ip6: no
	username: ""
	chroot: ""
	database: ""
	zonesdir: "%s"
	zonelistfile: "%s/zone.list"
	xfrdfile: "%s/xfrd.state"
	xfrdir: "%s"
	pidfile: "%s/nsd.pid"
	logfile: "%s/nsd.log"
	server-count: 1
	verbosity: 1
remote-control:
	control-enable: no
zone:
	name: "."
	zonefile: "%s/root.zone"
''' % (port, d, d, d, d, d, d, d))
    chk = subprocess.run(['nsd-checkzone', '.', os.path.join(d, 'root.zone')],
                         capture_output=True, text=True)
    if chk.returncode != 0:
        raise RuntimeError('zone of scenario %d does not parse: %s' % (idx, chk.stdout + chk.stderr))
    nsd = subprocess.Popen(['nsd', '-d', '-c', os.path.join(d, 'nsd.conf')],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=open(os.path.join(d, 'nsd.stderr'), 'w'))
    try:
        for _ in range(40):
            if nsd.poll() is not None or dns_ready(port):
                break
            time.sleep(0.1)
        if nsd.poll() is not None or not dns_ready(port):
            raise RuntimeError('nsd did not start for scenario %d (see %s)' % (idx, d))
        cases = list(scen['tests'].items())
        inp = ''.join('%s\t%s\t%s\t%s\n' % (name, t['host'], t['helo'], t['mailfrom'])
                      for name, t in cases)
        out = subprocess.run([spf_check, '127.0.0.1@%d' % port, '1', '4'], input=inp,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError('spf-check failed: ' + out.stderr)
        got = {}
        for line in out.stdout.splitlines():
            f = line.split('\t')
            got[f[0]] = f[1:]
        return [(name, t, got.get(name)) for name, t in cases]
    finally:
        nsd.terminate()
        nsd.wait()


def main(argv):
    floor, verbose, args = 0, False, []
    it = iter(argv[1:])
    for a in it:
        if a == '--floor':
            floor = int(next(it))
        elif a == '--verbose':
            verbose = True
        else:
            args.append(a)
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    spf_check, work = args[0], args[1]
    suite = args[2] if len(args) > 2 else SUITE
    opener = gzip.open if suite.endswith('.gz') else open
    with opener(suite, 'rt') as f:
        scenarios = list(yaml.safe_load_all(f))
    total = agree = exp_checked = exp_agree = 0
    mismatches, exp_mismatches = [], []
    for idx, scen in enumerate(scenarios):
        for name, t, got in run_scenario(idx, scen, spf_check, work, verbose):
            total += 1
            want = t['result'] if isinstance(t['result'], list) else [t['result']]
            res = got[0] if got else '(no output)'
            if res in want:
                agree += 1
            else:
                mismatches.append('%-28s want %-22s got %-10s %s | %s' % (
                    name, '/'.join(want), res, scen['description'],
                    got[1] if got else ''))
            if 'explanation' in t and got and res in want and res == 'fail':
                exp_checked += 1
                # "DEFAULT": no exp= applies, and weir gives no explanation
                if got[2] == ('' if t['explanation'] == 'DEFAULT' else t['explanation']):
                    exp_agree += 1
                else:
                    exp_mismatches.append('%-28s want %r got %r' % (
                        name, t['explanation'], got[2]))
            if verbose:
                print('%s\t%s\t%s' % (name, '/'.join(want), '\t'.join(got or [])))
    for m in mismatches:
        print('MISMATCH ' + m)
    for m in exp_mismatches:
        print('EXPLANATION ' + m)
    print('explanations: %d of %d fail results carry the expected exp= text'
          ' (none where the suite says "DEFAULT")' % (exp_agree, exp_checked))
    print('%d of %d cases agree (floor %d)' % (agree, total, floor))
    return 0 if agree >= floor else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
