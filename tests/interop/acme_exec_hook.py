#!/usr/bin/env python3
"""An `exec` DNS-01 hook as lego's exec provider calls it:
`acme_exec_hook.py <challtestsrv URL> <log> present|cleanup <fqdn> <value>`.
Sets or clears the TXT record in pebble-challtestsrv and appends the call
to the log as one JSON line. Used by tests/proxy/acme.rs."""

import json
import sys
import urllib.request


def main():
    url, log, action, fqdn, value = sys.argv[1:6]
    path, body = {
        "present": ("/set-txt", {"host": fqdn, "value": value}),
        "cleanup": ("/clear-txt", {"host": fqdn}),
    }[action]
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()
    with open(log, "a") as f:
        f.write(json.dumps({"action": action, "fqdn": fqdn, "value": value}) + "\n")


if __name__ == "__main__":
    main()
