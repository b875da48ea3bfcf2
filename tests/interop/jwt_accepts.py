"""Which tokens PyJWT accepts as signed with the secret (the signature
only: claims are not checked). Input on stdin: {"secret": str, "tokens":
[str]}; output: [bool], one per token."""

import json
import sys

import jwt

request = json.load(sys.stdin)
secret = request["secret"].encode()
accepted = []
for token in request["tokens"]:
    try:
        jwt.api_jws.decode_complete(token, secret, algorithms=["HS256"])
        accepted.append(True)
    except Exception:
        accepted.append(False)
json.dump(accepted, sys.stdout)
