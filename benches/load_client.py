#!/usr/bin/env python3
"""Small clients of benches/load.sh (standard library only).

  load_client.py jwt SECRET_FILE SUB
      prints an HS256 JWT {"sub": SUB, "exp": 4000000000} signed with the
      secret in SECRET_FILE (stripped), as the Portal core issues terminals'.
  load_client.py replay PORT HOST POOL_FILE
      sends the first request of a signed pool twice on one TLS connection
      and prints the two status codes (the second must be a refusal).
  load_client.py idle PORT HOST COUNT SOURCES
      opens COUNT TLS connections (HTTP/1.1, from 127.0.0.1 ... 127.0.0.SOURCES
      in turn, so that no source address holds more than COUNT/SOURCES),
      sends one GET / on each and reads its answer (must be 200), prints
      "ready <COUNT>", then keeps them open and idle until SIGTERM or SIGINT.
"""

import base64
import hashlib
import hmac
import json
import signal
import socket
import ssl
import sys


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret_file, sub):
    with open(secret_file, "rb") as f:
        secret = f.read().strip()
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub, "exp": 4000000000}).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    print(f"{head}.{body}.{b64url(mac)}")


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def read_response(sock):
    """Reads one HTTP/1.1 response with a Content-Length; returns its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed before the response head: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed in the response body")
        rest += chunk
    return status


def replay(port, host, pool_file):
    with open(pool_file, "rb") as f:
        data = f.read()
    first = data[: data.index(b"\r\n\r\n") + 4]
    ctx = tls_context()
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            statuses = []
            for _ in range(2):
                s.sendall(first)
                statuses.append(read_response(s))
    print(*statuses)


def idle(port, host, count, sources):
    count, sources = int(count), int(sources)
    ctx = tls_context()
    conns = []
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for i in range(count):
        raw = socket.create_connection(
            ("127.0.0.1", int(port)), timeout=10, source_address=(f"127.0.0.{1 + i % sources}", 0)
        )
        s = ctx.wrap_socket(raw, server_hostname=host)
        s.sendall(request)
        status = read_response(s)
        if status != 200:
            raise RuntimeError(f"connection {i}: status {status}")
        conns.append(s)
    print(f"ready {len(conns)}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"jwt": jwt, "replay": replay, "idle": idle}[cmd](*args)


if __name__ == "__main__":
    main()
