#!/usr/bin/python3
"""throttle-check.py - read tests/agent/throttle-sink.py's events (and
tests/agent/throttle-inject.py's records) and answer the throttling
tests' questions. Standard library only. Times: time.monotonic() seconds.

  now
      print time.monotonic() (the clock of the sink and the injectors)
  window EVENTS --dom D [--window W] [--max N] [--max-rate R] [--min-rate R]
                [--from ADDR] [--since T] [--until T]
      messages of domain D at the sink (time: their first RCPT for D,
      i.e. when the throttle let them go): n, span, mean rate and the
      most in any window of W seconds (default 2; every window starting
      at a message). Exit 1 when that exceeds N, or the mean rate (n-1 over
      the span from the first to the last) is over --max-rate or under
      --min-rate.
  conc EVENTS --dom D --max N
      the most transactions holding D at once at the sink. Exit 1 if > N.
  count EVENTS --dom D [--ev msg|rcpt] [--code C] [--from ADDR]
               [--since T] [--until T]
      print how many events (msg: messages, rcpt: RCPT commands, with
      --code only those answered C)
  tokens EVENTS INJECTED [--dom D]
      every message throttle-inject.py smtp queued (of D): at the sink,
      how often. Prints "injected=N at_sink=N duplicated=N missing=N" and
      one line "missing TOKEN QID" per missing one (the test looks for
      QID in Postfix's queue).
  latency EVENTS INJECTED --dom D --max S
      for each injected message of D: sink arrival minus the time Postfix
      queued it. Prints max and mean; exit 1 if one is missing or later
      than S.
  accuracy EVENTS --group DOM=RATE... --since T --until T
      per domain: observed messages/s in [T, T'), |observed-RATE|/RATE;
      then the worst and the mean (the end-to-end bench).
"""

import argparse
import json
import sys
import time


def load(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line being written
    return out


def msg_times(evs, dom, frm=None, since=None, until=None):
    ts = []
    for e in evs:
        if e.get("ev") != "msg" or dom not in e.get("doms", []):
            continue
        if frm and e.get("from", "").lower() != frm.lower():
            continue
        t = e.get("t_rcpt", {}).get(dom, e["t"])
        if since is not None and t < since:
            continue
        if until is not None and t >= until:
            continue
        ts.append(t)
    return sorted(ts)


def max_window(ts, w):
    best, at, j = 0, None, 0
    for i, t in enumerate(ts):
        while j < len(ts) and ts[j] < t + w:
            j += 1
        if j - i > best:
            best, at = j - i, t
    return best, at


def cmd_window(a):
    ts = msg_times(load(a.events), a.dom, a.frm, a.since, a.until)
    best, at = max_window(ts, a.window)
    span = ts[-1] - ts[0] if len(ts) > 1 else 0.0
    mean = (len(ts) - 1) / span if span > 0 else 0.0
    print("dom=%s n=%d span=%.2fs mean_rate=%.2f/s max_in_%gs=%d%s" % (
        a.dom, len(ts), span, mean, a.window, best,
        "" if at is None else " (window at +%.2fs)" % (at - ts[0])))
    bad = 0
    if a.min_rate is not None and mean < a.min_rate:
        print("  mean rate %.2f/s is under %.2f/s" % (mean, a.min_rate))
        bad = 1
    if a.max_rate is not None and mean > a.max_rate:
        print("  mean rate %.2f/s is over %.2f/s" % (mean, a.max_rate))
        bad = 1
    if a.max is not None and best > a.max:
        # the offending window, for the report
        k = [t for t in ts if at <= t < at + a.window]
        print("  window over %d: %s" % (a.max, " ".join("+%.3f" % (t - ts[0]) for t in k)))
        bad = 1
    return bad


def cmd_conc(a):
    evs = load(a.events)
    best = 0
    n = 0
    for e in evs:
        if e.get("ev") == "rcpt" and e.get("dom") == a.dom:
            n += 1
            best = max(best, e.get("conc", 0))
    print("dom=%s rcpts=%d max_concurrent_transactions=%d" % (a.dom, n, best))
    return 1 if a.max is not None and best > a.max else 0


def cmd_count(a):
    n = 0
    for e in load(a.events):
        if e.get("ev") != a.ev:
            continue
        if a.ev == "msg" and a.dom not in e.get("doms", []):
            continue
        if a.ev == "rcpt" and e.get("dom") != a.dom:
            continue
        if a.code is not None and e.get("code") != a.code:
            continue
        if a.frm and e.get("from", "").lower() != a.frm.lower():
            continue
        if a.since is not None and e["t"] < a.since:
            continue
        if a.until is not None and e["t"] >= a.until:
            continue
        n += 1
    print(n)
    return 0


def injected(path, dom=None):
    out = []
    for r in load(path):
        if dom and r.get("dom") != dom:
            continue
        out.append(r)
    return out


def at_sink(evs):
    seen = {}
    for e in evs:
        if e.get("ev") == "msg" and e.get("token"):
            seen.setdefault(e["token"], []).append(e)
    return seen


def cmd_tokens(a):
    seen = at_sink(load(a.events))
    inj = injected(a.injected, a.dom)
    here = [r for r in inj if r["token"] in seen]
    dup = [r for r in here if len(seen[r["token"]]) > 1]
    missing = [r for r in inj if r["token"] not in seen]
    print("injected=%d at_sink=%d duplicated=%d missing=%d" % (len(inj), len(here), len(dup),
                                                               len(missing)))
    for r in missing:
        print("missing %s %s" % (r["token"], r.get("qid") or "-"))
    for r in dup:
        print("dup %s x%d" % (r["token"], len(seen[r["token"]])))
    return 0


def cmd_latency(a):
    seen = at_sink(load(a.events))
    inj = injected(a.injected, a.dom)
    lat, bad = [], 0
    for r in inj:
        if r["token"] not in seen:
            print("  %s (queue id %s) not at the sink" % (r["token"], r.get("qid")))
            bad = 1
            continue
        d = min(e["t"] for e in seen[r["token"]]) - r["t"]
        lat.append(d)
        if d > a.max:
            print("  %s arrived %.2fs after it was queued" % (r["token"], d))
            bad = 1
    if lat:
        print("dom=%s n=%d latency max=%.2fs mean=%.2fs" % (a.dom, len(lat), max(lat),
                                                            sum(lat) / len(lat)))
    else:
        print("dom=%s: nothing injected" % a.dom)
        bad = 1
    return bad


def cmd_accuracy(a):
    evs = load(a.events)
    span = a.until - a.since
    errs = []
    print("%-24s %10s %10s %8s" % ("domain", "configured", "observed", "error"))
    for g in a.group:
        dom, rate = g.split("=", 1)
        rate = float(rate)
        n = len(msg_times(evs, dom, None, a.since, a.until))
        obs = n / span
        err = abs(obs - rate) / rate
        errs.append(err)
        print("%-24s %8.2f/s %8.2f/s %7.2f%%" % (dom, rate, obs, 100 * err))
    if errs:
        print("worst error %.2f%%  mean error %.2f%%  (window %.1fs)" % (
            100 * max(errs), 100 * sum(errs) / len(errs), span))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("now")
    w = sub.add_parser("window")
    w.add_argument("events")
    w.add_argument("--dom", required=True)
    w.add_argument("--window", type=float, default=2.0)
    w.add_argument("--max", type=int)
    w.add_argument("--max-rate", type=float)
    w.add_argument("--min-rate", type=float)
    w.add_argument("--from", dest="frm")
    w.add_argument("--since", type=float)
    w.add_argument("--until", type=float)
    c = sub.add_parser("conc")
    c.add_argument("events")
    c.add_argument("--dom", required=True)
    c.add_argument("--max", type=int)
    n = sub.add_parser("count")
    n.add_argument("events")
    n.add_argument("--dom", required=True)
    n.add_argument("--ev", choices=("msg", "rcpt"), default="msg")
    n.add_argument("--code", type=int)
    n.add_argument("--from", dest="frm")
    n.add_argument("--since", type=float)
    n.add_argument("--until", type=float)
    t = sub.add_parser("tokens")
    t.add_argument("events")
    t.add_argument("injected")
    t.add_argument("--dom")
    la = sub.add_parser("latency")
    la.add_argument("events")
    la.add_argument("injected")
    la.add_argument("--dom", required=True)
    la.add_argument("--max", type=float, required=True)
    ac = sub.add_parser("accuracy")
    ac.add_argument("events")
    ac.add_argument("--group", action="append", required=True)
    ac.add_argument("--since", type=float, required=True)
    ac.add_argument("--until", type=float, required=True)
    a = p.parse_args()
    if a.cmd == "now":
        print("%.6f" % time.monotonic())
        return 0
    return globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
