"""An ActivityPub delivery signed as Mastodon signs it: the draft-cavage
`Signature: keyId="...",algorithm="rsa-sha256",headers="(request-target)
host date digest",signature="..."` header (no `Signature-Input`), with
`Digest` and `Date`, made and checked by the PyPI package `apsig` (0.6.0,
the signer of the ActivityPub toolkit apkit). The proxy must pass it to
the app untouched (docs/access.md, "Who is calling").

stdin: {"mode": "sign", "method", "host", "path", "body"} -> {"headers": {...}}
       {"mode": "verify", "method", "host", "path", "headers", "body"} -> {"ok": true}
       (exit status 1 and the reason on stderr when it does not verify)
"""
import json
import sys

from apsig.draft.sign import Signer
from apsig.draft.tools import calculate_digest
from apsig.draft.verify import Verifier
from cryptography.hazmat.primitives import serialization

KEY_ID = "https://social.example/users/alice#main-key"
SIGNED_HEADERS = ["(request-target)", "host", "date", "digest"]

# A fixed 2048-bit RSA key, for this test only.
PRIVATE_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDMoje6rDCuqPB5
8NomPIXBMXzp/pABr6GK2OTZso2LPDaEga8wWTABrrZB+J8AvUQaYdxPPawaNeYe
2qCE1PG5G0JDuU5Y2HvlsR5hsHNPucIczB6T5CIcwK34KGoV0fPlcv9DW/WyDVSj
WGqg6Qz5z/8MLPUeAr6QuIMdoYUNFSW9a1rcbGBXIHsoiO7uyYysKLHXe22G195L
2stCjFZ8LGJ4EMfExS3Lffjb1zzH7BkwsfqR+XJnVD2l/ptwVj9DtSsZYo1zi3i0
8o1/Pvb9tc0Gs3iumFRTwPOtYbAsKikHTNj46594zpdrhVwZlMmuG0Rs2WHD7z0K
GwlHFXdvAgMBAAECggEARKSlzRi1u+EvybfhdbIXrBbNsDCUXfxsVActvVkH4gzw
vMJD4hQI5oeU28xqifTzQ2ZQYMRvVtt9thvgfK5x54YdVFp0zZjQ9tvTNTHbfILz
enV+TF3ak4qO0Q+9hlRHXFCXECFo6bFPEvw1yIRktefvxkXOc6K4ChPa57WmzBwS
QBigUqtJmtQz7RYyk0Xk0xA+5ozsy1n77Sh205C9vfbAoLDEJQToYMNwRHDMyEo5
MuW5KuUyGJ65l8zb4PTc0YsfM9DbNgU4EHLEmm9d6vkb6JC6rw7AeCThl3R1NSWQ
6gJqRLHeJghAx7Q+/Ewn1br1ilPl7+mTL7ZurNgVAQKBgQDuFUE/IDnkhtp0nAma
XkJNBT9p9o6lHrFQ76bNivVpDc6ykES1qwiEiK2e1DIpzxnGXityd89lWAlfYYuy
mc2Qbi1K191RYzT/3id6OzAVUmn5Tkg9UxmmP5xTPF2rlUmlTKc3ceAiR7fAk8ZK
vrv11cDLYNaNPUbwISnJz4H23QKBgQDcCIzaBRkwGPZ7ioQts0ViY5d28BC0AHqu
0Gn6CXsmpUb5Cp9MWbmGKtPhNFk6jTwiadPmL2xqPmvSFK0vGudbqXeoX4RQeoid
Gtv4p7ERD0RLUQ1KQ+izNxvBpguyIBFCVi7lowmXvj5CWS2pkd3/DH1ehz5DJ3R3
11EIptJ0uwKBgE8fWTO1bgf4mRkv0jEvKjGWkOCSRA20CZGwU2rzx2NGZ28Iaw1E
7eu90JV8R7+FSDeYjC/aiV5Qx6yfKmIMozhgpUS+QJsPsUlndw80JGKxpO5pibB3
sYqCkV1ILokbcAIzW08d1TMPSo4BjmDAyo6EnzH32NXPi4e6Pb0H7VUxAoGBAKH1
6TfR6Ohud4AYRZMeEkSJ6kOyEZltgOCMqHVT5UJdBhDqsLcSlG0duThbwBJJQ6pR
G5ij77mEmPjaH2A8/W+LHnjhVhOnHkgGLUSqqrtT8YE+9/liYzcHqXaxMoq67/lU
VtDRYY5AirNr0SCwLig+mUmrYzkrIZ/U7eDgaqlhAoGAJ6heG2NVeyX7nQ7bC+NZ
ESwPf1s1NRziT/TIYl1F/h5tCCmhEe6xYSvztMsY57jCnhDhb9FEP+fr2K7ALYvN
RDGBedY0qhMPP2ao+EqS+zZ+YRZdpo7H0gq/aTfmx3sLRzkkyLKFHxq59+smDIwH
ic4f5+BEwBlKos7/YJJK/Tg=
-----END PRIVATE KEY-----
"""
PRIVATE_KEY = serialization.load_pem_private_key(PRIVATE_KEY_PEM, password=None)
PUBLIC_KEY_PEM = PRIVATE_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()


def sign(x):
    body = x["body"].encode()
    signer = Signer(
        headers={"Host": x["host"], "Digest": calculate_digest(body),
                 "Content-Type": "application/activity+json"},
        private_key=PRIVATE_KEY,
        method=x["method"],
        url=f"https://{x['host']}{x['path']}",
        key_id=KEY_ID,
        body=body,
        signed_headers=SIGNED_HEADERS,
    )
    signed = {k.lower(): v for k, v in signer.sign().items()}
    # apsig also makes `Authorization: Signature ...`; Mastodon sends only
    # `Signature`.
    names = ["date", "digest", "content-type", "signature"]
    return {"headers": {name: signed[name] for name in names}}


def verify(x):
    headers = {k.lower(): v for k, v in x["headers"].items()}
    headers["host"] = x["host"]
    body = x["body"].encode()
    if headers.get("digest") != calculate_digest(body):
        sys.exit(f"Digest {headers.get('digest')!r} does not match the body")
    Verifier(
        public_pem=PUBLIC_KEY_PEM, method=x["method"], url=f"https://{x['host']}{x['path']}",
        headers=headers, body=body,
    ).verify(raise_on_fail=True)
    return {"ok": True}


x = json.load(sys.stdin)
print(json.dumps(sign(x) if x["mode"] == "sign" else verify(x)))
