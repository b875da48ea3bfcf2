#!/usr/bin/env python3
"""Heap allocations per request from a dhat profile of portal-proxy under
load (benches/allocations.sh; standard library only).

    dhat_report.py --scenario NAME --raw RAW.txt [--top N] DHAT.json

Every allocation site of the profile (a stack, innermost frame first) is
put in one of three parts by the frames of its stack:

- serving: made while serving requests on an accepted connection (the
  stack passes through portal-proxy's keep-alive loop or Pingora's
  serving of a connection): divided by the requests served, which load.sh's raw
  output gives (the wrk runs against the baseline binary, warm-up
  included);
- handshake: a TLS handshake or accept, outside serving: once per
  connection;
- other: start-up, reloads, timers, background tasks.

Each serving site is charged to whoever asked for it: walking out from the
allocation, the first frame of this project (portal_proxy, portal_core),
Pingora, rustls, tokio or h2; helpers (std, http, bytes, sfv, ...) are
charged to their caller.
"""

import argparse
import collections
import json
import re
import sys

# Crates that "ask" for an allocation; everything else is a helper.
OWNERS = (
    ("portal_proxy", "this project"),
    ("portal_core", "this project"),
    # pingora_http (headers) is a helper, as http is: charged to whoever
    # edits the header, Pingora's proxy or this project's filters.
    ("pingora_core", "Pingora"),
    ("pingora_proxy", "Pingora"),
    ("pingora_timeout", "Pingora"),
    ("pingora_pool", "Pingora"),
    ("rustls", "rustls"),
    ("tokio", "tokio"),
    ("h2", "h2"),
)
# Frames of the loop that serves an accepted connection: this project's
# HTTP/1 keep-alive loop, Pingora's (HTTP/2, and any other app).
SERVING = (
    "portal_proxy::listeners::parked",
    "process_new_http",
    "as pingora_core::apps::ServerApp>::process_new",
    "as pingora_core::apps::HttpServerApp>::process_new",
)
HANDSHAKE = ("handshake", "pingora_core::listeners", "tls::server::accept", "pingora_core::protocols::tls")


def function(frame):
    """The function name of a dhat frame ('0x1F: name (file:line)')."""
    m = re.match(r"^(?:0x[0-9A-Fa-f]+: )?(.*?)(?: \((?:in )?[^()]*\))?$", frame)
    return m.group(1) if m else frame


def crate_of(name):
    """The crate whose code a function name is: for '<T as Trait>::f', T's."""
    name = name.lstrip("<&*")
    for prefix in ("mut ", "dyn ", "const "):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.split("::", 1)[0] if "::" in name else ""


def owner(frames):
    """Who asked: the first owning crate walking out from the allocation."""
    for f in frames:
        crate = crate_of(function(f))
        for prefix, label in OWNERS:
            if crate == prefix:
                return label, f
    return "other", frames[0] if frames else "?"


def requests_served(raw_path):
    """The requests the baseline binary served in load.sh's raw output."""
    total, current = 0, None
    with open(raw_path) as raw:
        for line in raw:
            if line.startswith("=== "):
                current = ", portal-baseline " in line
            elif current:
                m = re.match(r"\s*(\d+) requests in ", line)
                if m:
                    total += int(m.group(1))
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile")
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()

    with open(args.profile) as f:
        profile = json.load(f)
    table = profile["ftbl"]
    requests = requests_served(args.raw)
    if requests <= 0:
        sys.exit(f"no request of the baseline binary in {args.raw}")

    parts = collections.Counter()
    part_bytes = collections.Counter()
    owners = collections.Counter()
    sites = collections.Counter()
    for pp in profile["pps"]:
        frames = [table[i] for i in pp["fs"]]
        names = [function(f) for f in frames]
        blocks, nbytes = pp["tbk"], pp["tb"]
        if any(any(m in n for m in SERVING) for n in names):
            part = "serving"
            who, frame = owner(frames)
            owners[who] += blocks
            # The same function and line, whatever the code address.
            sites[(who, re.sub(r"^0x[0-9A-Fa-f]+: ", "", frame))] += blocks
        elif any(any(m in n for m in HANDSHAKE) for n in names):
            part = "handshake"
        else:
            part = "other"
        parts[part] += blocks
        part_bytes[part] += nbytes

    per = lambda n: n / requests  # noqa: E731
    print(f"== {args.scenario}: {requests} requests served under dhat")
    print(
        f"serving: {per(parts['serving']):.1f} allocations per request "
        f"({per(part_bytes['serving']):.0f} bytes)"
    )
    print(
        "  asked by: "
        + ", ".join(f"{who} {per(n):.1f}" for who, n in owners.most_common())
    )
    print(
        f"handshakes (once per connection): {parts['handshake']} allocations in all; "
        f"other (start-up, background): {parts['other']}"
    )
    for label in ("this project", "Pingora"):
        print(f"{label}: call sites (allocations per request, top {args.top}):")
        mine = [(site, n) for (who, site), n in sites.items() if who == label]
        mine.sort(key=lambda x: -x[1])
        for site, n in mine[: args.top]:
            print(f"  {per(n):6.2f}  {site}")
    print()


if __name__ == "__main__":
    main()
