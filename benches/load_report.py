#!/usr/bin/env python3
"""The table of benches/load.sh, from the measurements it recorded.

  load_report.py RESULTS_TSV IDLE_TSV

RESULTS_TSV: one line per measured run:
  round scenario proxy seconds requests rps cpu_us p50_ms p99_ms rss_mib
IDLE_TSV: one line per proxy: proxy rss_mib pss_mib rss_loaded_mib connections
Environment: PROXIES, SCENARIOS (the order of columns and blocks), ROUNDS,
VERIFY_US and SIGN_US (one ed25519 verify_strict and one signature, in us,
or empty), IDLE_CONNECTIONS.
"""

import os
import statistics
import sys

METRICS = [  # (key, label, format)
    ("rps", "requests/s", "{:.0f}"),
    ("cpu_us", "CPU us/request", "{:.1f}"),
    ("p50_ms", "p50 latency ms", "{:.2f}"),
    ("p99_ms", "p99 latency ms", "{:.2f}"),
    ("rss_mib", "RSS MiB after", "{:.1f}"),
]
DESCRIPTIONS = {
    "h1-keepalive": "public path, HTTPS/1.1 keep-alive (wrk)",
    "h1-close": "public path, HTTPS/1.1, a new TCP + TLS connection per request (wrk, Connection: close)",
    "h2": "public path, HTTP/2 over TLS (h2load)",
    "terminal": "terminal path: the owner's JWT cookie, a private path (wrk); portal-proxy only",
    "signed": "signed peer path: RFC 9421 ed25519 signature, fresh nonce each (wrk + signed.lua); portal-proxy only",
    "mixed": "public path (wrk) beside 2 connections fetching a 1 MiB answer gzip-compressed in a loop; CPU/req counts both; portal-proxy only",
}
# portal-baseline: another portal-proxy binary (BASELINE_BIN), the "before"
# of a before/after table.
COMPARED = ["portal-baseline", "bare-pingora", "nginx", "haproxy", "caddy"]
SHORT = {"portal-baseline": "baseline", "bare-pingora": "bare", "nginx": "nginx",
         "haproxy": "haproxy", "caddy": "caddy"}


def load(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts:
                    rows.append(parts)
    return rows


def cell(values, fmt):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def main():
    results, idle = load(sys.argv[1]), load(sys.argv[2])
    proxies = os.environ.get("PROXIES", "").split()
    scenarios = os.environ.get("SCENARIOS", "").split()
    verify_us = os.environ.get("VERIFY_US") or None
    verify_us = float(verify_us) if verify_us else None
    sign_us = os.environ.get("SIGN_US") or None
    sign_us = float(sign_us) if sign_us else None
    # data[(scenario, proxy)][metric] = [values per round]
    data = {}
    seconds = {}
    for r in results:
        _, scenario, proxy, secs, _req, rps, cpu, p50, p99, rss = r
        d = data.setdefault((scenario, proxy), {k: [] for k, _, _ in METRICS})
        for (key, _, _), v in zip(METRICS, (rps, cpu, p50, p99, rss)):
            d[key].append(float(v))
        seconds.setdefault(scenario, set()).add(float(secs))

    def med(scenario, proxy, key="cpu_us"):
        values = data.get((scenario, proxy), {}).get(key)
        return statistics.median(values) if values else None

    out = []
    width = 24
    multi = [s for s in scenarios if s in ("h1-keepalive", "h1-close", "h2")]
    portal_only = [s for s in scenarios if s in ("terminal", "signed", "mixed")]
    cells_note = "each cell: median [min-max] over the rounds; ratios are of the medians"
    out.append(cells_note)
    for scenario in multi:
        secs = ", ".join(f"{s:g}" for s in sorted(seconds.get(scenario, [])))
        out.append("")
        out.append(f"== {scenario}: {DESCRIPTIONS[scenario]}; {secs} s runs")
        ratio_cols = [p for p in COMPARED if p in proxies and "portal-proxy" in proxies]
        head = f"{'metric':<16} " + " ".join(f"{p:>{width}}" for p in proxies)
        head += "".join(f" {'portal/' + SHORT[p]:>13}" for p in ratio_cols)
        out.append(head)
        for key, label, fmt in METRICS:
            line = f"{label:<16} "
            line += " ".join(
                f"{cell(data.get((scenario, p), {}).get(key, []), fmt):>{width}}" for p in proxies
            )
            line += "".join(
                f" {ratio(med(scenario, 'portal-proxy', key), med(scenario, p, key)):>13}"
                for p in ratio_cols
            )
            out.append(line)
    for scenario in portal_only:
        secs = ", ".join(f"{s:g}" for s in sorted(seconds.get(scenario, [])))
        out.append("")
        out.append(f"== {scenario}: {DESCRIPTIONS[scenario]}; {secs} s runs")
        cols = [("portal/own public", "portal-proxy"), ("portal/bare public", "bare-pingora"),
                ("portal/caddy public", "caddy")]
        cols = [(n, p) for n, p in cols if (("h1-keepalive", p) in data)]
        own = [p for p in ("portal-proxy", "portal-baseline") if (scenario, p) in data]
        before = "portal-baseline" in own
        head = f"{'metric':<16} " + " ".join(f"{p:>{width}}" for p in own)
        head += f" {'portal/baseline':>16}" if before else ""
        head += "".join(f" {n:>20}" for n, _ in cols)
        out.append(head)
        for key, label, fmt in METRICS:
            line = f"{label:<16} " + " ".join(
                f"{cell(data.get((scenario, p), {}).get(key, []), fmt):>{width}}" for p in own
            )
            if before:
                line += f" {ratio(med(scenario, 'portal-proxy', key), med(scenario, 'portal-baseline', key)):>16}"
            line += "".join(
                f" {ratio(med(scenario, 'portal-proxy', key), med('h1-keepalive', p, key)):>20}"
                for _, p in cols
            )
            out.append(line)
        out.append("(the ratio columns divide by the h1-keepalive (public) medians of the named proxy)")
    if idle:
        n = os.environ.get("IDLE_CONNECTIONS", "1000")
        out.append("")
        what = ("HTTP/2 connections (one stream each)" if os.environ.get("IDLE_PROTOCOL") == "h2"
                else "keep-alive TLS connections (one request each)")
        out.append(f"== idle-memory: RSS of the idle proxy (all its processes), and what {n} idle "
                   f"{what} add; one measurement, before any load")
        by = {r[0]: r for r in idle}
        cols = [p for p in proxies if p in by]
        out.append(f"{'metric':<26} " + " ".join(f"{p:>13}" for p in cols))
        rows = [("RSS idle MiB", lambda r: float(r[1])),
                ("PSS idle MiB", lambda r: float(r[2])),
                (f"RSS +{n} conns MiB", lambda r: float(r[3]) - float(r[1]))]
        for label, f in rows:
            out.append(f"{label:<26} " + " ".join(f"{f(by[p]):>13.1f}" for p in cols))
    # The goals of issue 11, CPU per request from the medians.
    goals = []

    def goal(text, value, limit, unit="x"):
        if value is None:
            return
        ok = "ok" if value <= limit else "OVER"
        goals.append(f"  {text:<62} {value:>8.2f}{unit:<4} (<= {limit:g}{unit})  {ok}")

    pub = med("h1-keepalive", "portal-proxy")
    term = med("terminal", "portal-proxy")
    bare, nginx, caddy = (med("h1-keepalive", p) for p in ("bare-pingora", "nginx", "caddy"))
    div = lambda a, b: a / b if a is not None and b else None
    goal("public CPU/req / bare Pingora public", div(pub, bare), 1.10)
    goal("terminal CPU/req / bare Pingora public", div(term, bare), 1.15)
    goal("public CPU/req / Caddy public", div(pub, caddy), 0.65)
    goal("terminal CPU/req / Caddy public", div(term, caddy), 0.65)
    goal("public CPU/req / nginx public", div(pub, nginx), 1.8)
    signed = med("signed", "portal-proxy")
    if signed is not None and pub is not None and verify_us is not None:
        goal(f"signed - public CPU/req (verify_strict {verify_us:.1f} us + 10 us)",
             signed - pub, verify_us + 10, " us")
        if sign_us is not None:
            # Every answer to a verified peer request is signed (the
            # response signature came after the goal above was set).
            goal(f"signed - public CPU/req (verify {verify_us:.1f} + sign {sign_us:.1f} + 10 us)",
                 signed - pub, verify_us + sign_us + 10, " us")
    if idle:
        by = {r[0]: r for r in idle}
        if "portal-proxy" in by:
            r = by["portal-proxy"]
            goal("portal-proxy idle RSS", float(r[1]), 20, " MiB")
            goal(f"RSS added by {r[4]} idle TLS connections", float(r[3]) - float(r[1]), 30, " MiB")
    if goals:
        out.append("")
        out.append("== goals (issue 11; public = h1-keepalive; CPU per request, medians)")
        out.extend(goals)
    print("\n".join(out))


if __name__ == "__main__":
    main()
