"""A Web Bot Auth request signature (the IETF webbotauth drafts): RFC 9421
with `tag="web-bot-auth"`, covering `@authority` and the
`Signature-Agent` member, Ed25519 with the RFC 9421 B.1.4 test key whose
JWK thumbprint is the `keyid`, made and checked by the PyPI package
`http-message-signatures` (3.0.0). Another application's signature: the
proxy must pass it to the app untouched (docs/access.md, "Who is calling").

stdin: {"mode": "sign", "method", "host", "path", "label"} -> {"headers": {...}}
       {"mode": "verify", "method", "host", "path", "headers"} -> {"ok": true}
"""
import base64
import datetime
import hashlib
import json
import os
import sys
import time

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import (
    HTTPMessageSigner, HTTPMessageVerifier, MappingKeyResolver, algorithms,
)

TAG = "web-bot-auth"
D = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU"
X = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
KEY = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(D + "="))
THUMBPRINT = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": X}, separators=(",", ":"))
KEYID = base64.urlsafe_b64encode(hashlib.sha256(THUMBPRINT.encode()).digest()).rstrip(b"=").decode()


class Message:
    def __init__(self, method, url, headers):
        self.method, self.url, self.headers = method, url, headers


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def sign(x):
    label = x.get("label", "sig1")
    agent = http_sf.ser({label: ("https://signature-agent.test", {})})
    message = Message(x["method"], f"https://{x['host']}{x['path']}", {"Signature-Agent": agent})
    now = int(time.time())
    HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={KEYID: KEY}),
    ).sign(
        message, key_id=KEYID, created=utc(now), expires=utc(now + 300),
        nonce=base64.b64encode(os.urandom(64)).decode(), label=label, tag=TAG,
        include_alg=True,
        covered_component_ids=["@authority", f'"signature-agent";key="{label}"'],
    )
    return {"headers": {k.lower(): v for k, v in message.headers.items()}}


def verify(x):
    headers = {k.lower(): v for k, v in x["headers"].items()}
    message = Message(x["method"], f"https://{x['host']}{x['path']}", headers)
    HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={KEYID: KEY.public_key()}, private_keys={}),
    ).verify(message, expect_tag=TAG, require_components=["@authority"], max_age=None)
    return {"ok": True}


x = json.load(sys.stdin)
print(json.dumps(sign(x) if x["mode"] == "sign" else verify(x)))
