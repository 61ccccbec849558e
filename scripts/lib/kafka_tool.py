#!/usr/bin/env python3
"""Kafka health check for scripts/lib/kafka.sh, standard library only.

    kafka_tool.py ping HOST:PORT

A real request, not "the port is open": ApiVersions (which every broker answers),
then Metadata v4, which a KRaft broker answers with itself among the brokers only
once it serves clients. Exit 0 when it does, 1 otherwise.
"""

import socket
import struct
import sys

CLIENT = b"dualwrite-health"


def request(sock, api_key, version, correlation, body):
    header = struct.pack(">hhih", api_key, version, correlation, len(CLIENT)) + CLIENT
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", read(sock, 4))[0]
    reply = read(sock, size)
    got = struct.unpack(">i", reply[:4])[0]
    if got != correlation:
        raise RuntimeError(f"correlation id {got}, expected {correlation}")
    return reply[4:]


def read(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk
    return data


def ping(address):
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        sock.settimeout(3)
        # ApiVersions v0: no body; answer: error_code, [api_key, min, max].
        reply = request(sock, 18, 0, 1, b"")
        error, count = struct.unpack(">hi", reply[:6])
        if error != 0:
            raise RuntimeError(f"ApiVersions error {error}")
        versions = {}
        for i in range(count):
            key, lo, hi = struct.unpack(">hhh", reply[6 + 6 * i : 12 + 6 * i])
            versions[key] = (lo, hi)
        lo, hi = versions.get(3, (99, -1))
        if not lo <= 4 <= hi:
            raise RuntimeError(f"Metadata v4 not offered ({lo}..{hi})")
        # Metadata v4: topics = null (all), allow_auto_topic_creation = false.
        reply = request(sock, 3, 4, 2, struct.pack(">ib", -1, 0))
        brokers = struct.unpack(">i", reply[4:8])[0]
        if brokers < 1:
            raise RuntimeError("no broker in the metadata yet")
    return brokers


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "ping":
        print(__doc__, file=sys.stderr)
        return 2
    try:
        brokers = ping(sys.argv[2])
    except (OSError, RuntimeError, struct.error) as e:
        print(f"not healthy: {e}", file=sys.stderr)
        return 1
    print(f"ok: {brokers} broker(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
