#!/usr/bin/env python3
"""A Portal controller's DNS-01 endpoint, written from docs/certificates.md
alone, for the ACME tests (tests/proxy/acme.rs): an HTTPS server that
answers `POST <base>/present` and `POST <base>/cleanup` with the JSON body
`{"fqdn": ..., "value": ...}` and sets or clears the TXT record in
pebble-challtestsrv.

Modes:
- "controller": the request must carry a `portal` signature (tag
  "portal") by the Portal's key, verified with the independent package
  `http-message-signatures` (RFC 9421), covering @method, @authority,
  @path and content-digest, fresh (created within 60 s), with a nonce
  never seen before; and the fqdn must be the Portal's own
  `_acme-challenge.<short_id>.<base_domain>.`.
- "httpreq": lego's httpreq: HTTP basic auth with the given user and
  password; no signature.

stdin: {"mode", "cert", "key", "base", "challtestsrv", "log",
        "public_key_pem", "keyid", "domain", "username", "password",
        "refuse_first"}
stdout: the port it listens on (127.0.0.1), then nothing. Each call is
appended to `log` as one JSON line: {"action", "fqdn", "value",
"verified", "covered", "answer"}.
"""

import base64
import hashlib
import json
import os
import ssl
import sys
import threading
import time
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify import PortalVerifier, Request  # noqa: E402
from http_message_signatures import MappingKeyResolver, algorithms  # noqa: E402

SPEC = json.load(sys.stdin)
LOCK = threading.Lock()
SEEN_NONCES = set()
REFUSED = [0]


def challtestsrv(path, body):
    req = urllib.request.Request(
        SPEC["challtestsrv"] + path, data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def verify_signature(handler, body):
    """The signature's covered components, or raises with the reason."""
    resolver = MappingKeyResolver(
        public_keys={SPEC["keyid"]: SPEC["public_key_pem"].encode()}, private_keys={}
    )
    verifier = PortalVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    host = handler.headers["Host"]
    request = Request("POST", f"https://{host}{handler.path}", dict(handler.headers.items()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [result] = verifier.verify(
            request,
            expect_tag="portal",
            require_components=("@method", "@authority", "@path", "content-digest"),
            body=body,
        )
    params = result.parameters
    now = time.time()
    if not (now - 60 <= params["created"] <= now + 5) or params.get("expires", now) < now:
        raise ValueError(f"stale signature: {params}")
    if params.get("keyid") != SPEC["keyid"]:
        raise ValueError(f"keyid {params.get('keyid')!r} is not the Portal's")
    with LOCK:
        if params["nonce"] in SEEN_NONCES:
            raise ValueError("replayed nonce")
        SEEN_NONCES.add(params["nonce"])
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    if handler.headers.get("Content-Digest") != digest:
        raise ValueError("content-digest does not match the body")
    return [c.strip('"') for c in result.covered_components if c != '"@signature-params"']


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, doc, record):
        record["answer"] = status
        with LOCK:
            with open(SPEC["log"], "a") as f:
                f.write(json.dumps(record) + "\n")
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        action = self.path[len(SPEC["base"]):].strip("/") if self.path.startswith(SPEC["base"]) else None
        record = {"action": action, "verified": False, "covered": []}
        if action not in ("present", "cleanup"):
            return self.answer(404, {"error": f"no such endpoint {self.path}"}, record)
        if SPEC["mode"] == "controller":
            try:
                record["covered"] = verify_signature(self, body)
                record["verified"] = True
            except Exception as e:
                return self.answer(401, {"error": f"signature: {type(e).__name__}: {e}"}, record)
        else:
            expected = "Basic " + base64.b64encode(
                f"{SPEC['username']}:{SPEC['password']}".encode()
            ).decode()
            if self.headers.get("Authorization") != expected:
                return self.answer(401, {"error": "basic auth"}, record)
            record["verified"] = True
        try:
            doc = json.loads(body)
            fqdn, value = doc["fqdn"], doc["value"]
        except Exception as e:
            return self.answer(400, {"error": f"body: {e}"}, record)
        record.update(fqdn=fqdn, value=value)
        if fqdn != f"_acme-challenge.{SPEC['domain']}.":
            return self.answer(403, {"error": f"{fqdn} is not this Portal's name"}, record)
        if action == "present":
            with LOCK:
                refuse = REFUSED[0] < SPEC.get("refuse_first", 0)
                REFUSED[0] += refuse
            if refuse:
                return self.answer(503, {"error": "the DNS provider is down (test)"}, record)
            challtestsrv("/set-txt", {"host": fqdn, "value": value})
        else:
            challtestsrv("/clear-txt", {"host": fqdn})
        return self.answer(200, {"ok": True}, record)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if SPEC.get("cert"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(SPEC["cert"], SPEC["key"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
