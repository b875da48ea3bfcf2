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
  load_client.py idle-h2 PORT HOST COUNT SOURCES
      the same over HTTP/2 (ALPN h2): one GET / stream on each connection,
      answered 200 and ended, the server's SETTINGS acknowledged; then idle,
      as a browser leaves a connection between page loads.
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


def tls_context(alpn="http/1.1"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([alpn])
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


def idle(port, host, count, sources, protocol="http/1.1"):
    count, sources = int(count), int(sources)
    ctx = tls_context(protocol)
    conns = []
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for i in range(count):
        raw = socket.create_connection(
            ("127.0.0.1", int(port)), timeout=10, source_address=(f"127.0.0.{1 + i % sources}", 0)
        )
        s = ctx.wrap_socket(raw, server_hostname=host)
        if protocol == "h2":
            if s.selected_alpn_protocol() != "h2":
                raise RuntimeError(f"connection {i}: ALPN {s.selected_alpn_protocol()!r}, not h2")
            h2_get(s, host)
            conns.append(s)
            continue
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


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_get(sock, host):
    """Sends the preface and one GET / (HPACK: indexed :method GET, :scheme
    https, :path /; :authority a literal without indexing); reads frames
    until stream 1 ends. Raises unless its answer is 200."""
    authority = host.encode()
    block = bytes([0x82, 0x87, 0x84, 0x01, len(authority)]) + authority
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0)
                 + h2_frame(1, 0x5, 1, block))  # HEADERS, END_STREAM | END_HEADERS
    data, status = b"", None
    while True:
        while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the answer ended")
            data += chunk
        length = int.from_bytes(data[:3], "big")
        kind, flags, stream = data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        payload, data = data[9:9 + length], data[9 + length:]
        if kind == 4 and not flags & 1:  # the server's SETTINGS: acknowledged
            sock.sendall(h2_frame(4, 1, 0))
        elif kind == 7 or (kind == 3 and stream == 1):
            raise RuntimeError(f"GOAWAY or RST_STREAM: {payload!r}")
        elif stream == 1 and kind == 1:
            # :status 200 is static table entry 8 (0x88), which every
            # encoder here uses for it.
            status = 200 if payload[:1] == b"\x88" else payload[:8]
        if stream == 1 and kind in (0, 1) and flags & 1:
            if status != 200:
                raise RuntimeError(f"status {status!r}")
            return


def idle_h2(port, host, count, sources):
    idle(port, host, count, sources, protocol="h2")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"jwt": jwt, "replay": replay, "idle": idle, "idle-h2": idle_h2}[cmd](*args)


if __name__ == "__main__":
    main()
