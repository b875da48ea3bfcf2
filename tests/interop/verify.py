#!/usr/bin/env python3
"""Verifies a request's `portal` signature with the independent
`http-message-signatures` package (RFC 9421), and its Content-Digest
(RFC 9530) against the body when there is one.

stdin:  {"public_key_pem", "keyid", "method", "url", "headers": {...},
         "body" (string or null)}
stdout: {"ok": true, "covered": [...], "params": {...}} on success;
        otherwise exit status 1 and the error on stderr.

Used by tests/proxy/interop.rs; needs `pip install http-message-signatures`.
"""

import json
import sys
import warnings

try:
    from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
except ImportError as e:  # the Rust test shows this message
    sys.exit(f"the Python package http-message-signatures is missing ({e}); pip install http-message-signatures")

REQUIRED = ("@method", "@authority", "@path", "@query")


class Request:
    """The request view the package reads: method, absolute URL, headers."""

    def __init__(self, method, url, headers):
        self.method = method
        self.url = url
        self.headers = headers


class PortalVerifier(HTTPMessageVerifier):
    # Selects the signature by its tag (RFC 9421 section 7.2.5), as the
    # proxy does; never by label only.
    allow_label_only_selection = False


def signature_base(verifier, request):
    """The signature base the package builds for the `portal` signature, to
    show next to a failure (best effort: it uses the package's internals)."""
    try:
        for _label, sig_input, _ in verifier._get_sig_inputs_and_signatures(request, expect_tag="portal"):
            base, _, _ = verifier._build_signature_base(
                request, covered_component_ids=list(sig_input), signature_params=sig_input.params
            )
            return base
    except Exception as e:
        return f"(cannot build it: {e})"
    return None


def main():
    spec = json.load(sys.stdin)
    resolver = MappingKeyResolver(public_keys={spec["keyid"]: spec["public_key_pem"].encode()}, private_keys={})
    verifier = PortalVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    request = Request(spec["method"], spec["url"], dict(spec["headers"]))
    body = spec.get("body")
    body = None if body is None else body.encode()
    required = REQUIRED + (("content-digest",) if body is not None else ())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # With `body`, verify() also checks the signed Content-Digest.
            results = verifier.verify(request, expect_tag="portal", require_components=required, body=body)
    except Exception as e:
        cause = e.__cause__
        detail = str(e) or (f"{type(cause).__name__} {cause}" if cause is not None else "")
        print(f"{type(e).__name__}: {detail}", file=sys.stderr)
        base = signature_base(verifier, request)
        if base is not None:
            print(f"signature base built by http-message-signatures:\n{base}", file=sys.stderr)
        sys.exit(1)
    [result] = results
    covered = [name.strip('"') for name in result.covered_components if name != '"@signature-params"']
    json.dump({"ok": True, "covered": covered, "params": result.parameters}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
