#!/usr/bin/env python3
"""Verifies a response's `portal` signature (the Portal profile's response
signatures, RFC 9421 section 2.4 `req` components) with the independent
`http-message-signatures` package.

stdin:  {"public_key_pem", "keyid",
         "request": {"method", "url", "headers": {...}},
         "response": {"status", "headers": {...}}}
stdout: {"ok": true, "covered": [...], "params": {...}} on success;
        otherwise exit status 1 and the error on stderr.

Used by tests/proxy/interop_response.rs.
"""

import json
import sys
import warnings

try:
    from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
except ImportError as e:
    sys.exit(f"the Python package http-message-signatures is missing ({e}); pip install http-message-signatures")


class Request:
    def __init__(self, method, url, headers):
        self.method = method
        self.url = url
        self.headers = headers


class Response:
    """The response view the package reads: status, headers, and the
    request it answers (for the `;req` components)."""

    def __init__(self, status_code, headers, request):
        self.status_code = status_code
        self.headers = headers
        self.request = request


class PortalVerifier(HTTPMessageVerifier):
    # Selects the signature by its tag (RFC 9421 section 7.2.5).
    allow_label_only_selection = False


def main():
    spec = json.load(sys.stdin)
    resolver = MappingKeyResolver(public_keys={spec["keyid"]: spec["public_key_pem"].encode()}, private_keys={})
    verifier = PortalVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    req = spec["request"]
    request = Request(req["method"], req["url"], dict(req["headers"]))
    resp = spec["response"]
    response = Response(resp["status"], dict(resp["headers"]), request)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = verifier.verify(response, expect_tag="portal")
    except Exception as e:
        cause = e.__cause__
        detail = str(e) or (f"{type(cause).__name__} {cause}" if cause is not None else "")
        print(f"{type(e).__name__}: {detail}", file=sys.stderr)
        sys.exit(1)
    [result] = results
    covered = [name for name in result.covered_components if name != '"@signature-params"']
    json.dump({"ok": True, "covered": covered, "params": result.parameters}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
