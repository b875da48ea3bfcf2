#!/usr/bin/env python3
"""Signs a request with the independent `http-message-signatures` package
(RFC 9421), the way a Portal peer signs: tag `portal` (any label; a
sender before the tag: label `portal`, no tag), covering
"@method", "@authority", "@path", "@query" and, with a body,
"content-digest" (RFC 9530 sha-256, made by the package itself).

stdin:  {"private_key_pem", "keyid", "method", "url", "body" (string or
         null), "created", "expires", "nonce", "label" (default "portal"),
         "tag" (default none)}  (times: Unix seconds)
stdout: {"<header name>": "<value>", ...}, the headers to add.

Used by tests/proxy/interop.rs; needs `pip install http-message-signatures`.
"""

import datetime
import json
import sys

try:
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
except ImportError as e:  # the Rust test shows this message
    sys.exit(f"the Python package http-message-signatures is missing ({e}); pip install http-message-signatures")

COMPONENTS = ("@method", "@authority", "@path", "@query")


class Request:
    """The request view the package reads: method, absolute URL, headers."""

    def __init__(self, method, url, headers):
        self.method = method
        self.url = url
        self.headers = headers


def utc(seconds):
    return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.timezone.utc)


def main():
    spec = json.load(sys.stdin)
    keyid = spec["keyid"]
    resolver = MappingKeyResolver(public_keys={}, private_keys={keyid: spec["private_key_pem"].encode()})
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    request = Request(spec["method"], spec["url"], {})
    body = spec.get("body")
    body = None if body is None else body.encode()
    components = COMPONENTS + (("content-digest",) if body is not None else ())
    # With `body`, the package computes Content-Digest (sha-256) and adds it
    # to the request's headers before signing.
    signer.sign(
        request,
        key_id=keyid,
        created=utc(spec["created"]),
        expires=utc(spec["expires"]),
        nonce=spec["nonce"],
        label=spec.get("label", "portal"),
        tag=spec.get("tag"),
        include_alg=True,
        covered_component_ids=components,
        body=body,
    )
    json.dump(dict(request.headers), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
