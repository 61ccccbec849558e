"""Minimal CQL native-protocol (v4) client for scripts/stack: health and reset.

Why not a driver: cqlsh is not shipped on Maven Central, and the Python drivers
are large; this needs only OPTIONS/STARTUP/QUERY and text results, so ~100
lines of stdlib keep the stack's Python venv small. Not a general client.

usage:
  python cql_tool.py HOST:PORT "SELECT release_version FROM system.local"
      prints each row's columns tab-separated (text columns decoded, others hex)
  python cql_tool.py HOST:PORT --drop-user-keyspaces
      drops every keyspace whose name does not start with "system"
  python cql_tool.py HOST:PORT -
      runs the one statement read from standard input (keeps a password in it
      off the command line, which every user can read in `ps`)

TLS and login (the node of scripts/lib/tls.sh) come from the environment, so no
password is ever on a command line: CQL_TLS_CA (CA file: enables TLS),
CQL_TLS_CERT / CQL_TLS_KEY (client certificate), CQL_TLS_NAME (the name the
server's certificate must carry), CQL_USER and CQL_PASSWORD_FILE (SASL PLAIN).
"""

import os
import socket
import ssl
import struct
import sys

VERSION = 0x04  # protocol v4: supported by Cassandra 3.x-5.x
OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE, OP_QUERY, OP_RESULT = 0x00, 0x01, 0x02, 0x03, 0x07, 0x08
OP_AUTH_RESPONSE, OP_AUTH_SUCCESS = 0x0F, 0x10
CONSISTENCY_ONE = 0x0001
TEXT_TYPES = {0x0001, 0x000A, 0x000D}  # ascii, text, varchar


class CqlError(Exception):
    pass


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _long_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def short(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def string(self) -> str:
        return self.take(self.short()).decode()

    def bytes(self):
        n = self.int()
        return None if n < 0 else self.take(n)

    def option(self) -> int:
        """Reads a column type; nested types are skipped (only their id is kept)."""
        kind = self.short()
        if kind == 0x0000:  # custom: class name
            self.string()
        elif kind in (0x0020, 0x0022):  # list, set
            self.option()
        elif kind == 0x0021:  # map
            self.option()
            self.option()
        elif kind == 0x0030:  # UDT
            self.string(), self.string()
            for _ in range(self.short()):
                self.string()
                self.option()
        elif kind == 0x0031:  # tuple
            for _ in range(self.short()):
                self.option()
        return kind


def _tls_context():
    """A client TLS context from CQL_TLS_* (None: plain TCP)."""
    ca = os.environ.get("CQL_TLS_CA")
    if not ca:
        return None
    ctx = ssl.create_default_context(cafile=ca)
    if os.environ.get("CQL_TLS_CERT"):
        ctx.load_cert_chain(os.environ["CQL_TLS_CERT"], os.environ.get("CQL_TLS_KEY"))
    return ctx


def _login():
    user, pw_file = os.environ.get("CQL_USER"), os.environ.get("CQL_PASSWORD_FILE")
    if not user:
        return None
    with open(pw_file) as f:
        return user, f.read().strip()


class Connection:
    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        tls = _tls_context()
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=os.environ.get("CQL_TLS_NAME", host))
        op, body = self.request(OP_STARTUP, struct.pack(">H", 1) + _string("CQL_VERSION") + _string("3.0.0"))
        if op == OP_AUTHENTICATE:
            login = _login()
            if login is None:
                raise CqlError("server requires authentication (set CQL_USER and CQL_PASSWORD_FILE)")
            token = b"\0" + login[0].encode() + b"\0" + login[1].encode()
            op, body = self.request(OP_AUTH_RESPONSE, struct.pack(">i", len(token)) + token)
            if op != OP_AUTH_SUCCESS:
                raise CqlError(f"unexpected AUTH_RESPONSE answer opcode {op:#x}")
        elif op != OP_READY:
            raise CqlError(f"unexpected STARTUP answer opcode {op:#x}")

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise CqlError("connection closed by server")
            buf += chunk
        return buf

    def request(self, opcode: int, body: bytes):
        self.sock.sendall(struct.pack(">BBhBi", VERSION, 0, 0, opcode, len(body)) + body)
        _version, _flags, _stream, op, length = struct.unpack(">BBhBi", self._recv(9))
        payload = self._recv(length)
        if op == OP_ERROR:
            r = Reader(payload)
            code = r.int()
            raise CqlError(f"error {code:#06x}: {r.string()}")
        return op, payload

    def query(self, cql: str):
        op, payload = self.request(OP_QUERY, _long_string(cql) + struct.pack(">HB", CONSISTENCY_ONE, 0))
        if op != OP_RESULT:
            raise CqlError(f"unexpected QUERY answer opcode {op:#x}")
        r = Reader(payload)
        if r.int() != 0x0002:  # not Rows (Void, SetKeyspace, SchemaChange): nothing to print
            return []
        flags, ncols = r.int(), r.int()
        if flags & 0x0002:  # has_more_pages: paging state
            r.bytes()
        if flags & 0x0001:  # global_tables_spec
            r.string(), r.string()
        types = []
        for _ in range(ncols):
            if not flags & 0x0001:
                r.string(), r.string()
            r.string()
            types.append(r.option())
        rows = []
        for _ in range(r.int()):
            row = []
            for t in types:
                v = r.bytes()
                row.append("" if v is None else v.decode() if t in TEXT_TYPES else v.hex())
            rows.append(row)
        return rows

    def close(self):
        self.sock.close()


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    host, _, port = argv[1].rpartition(":")
    try:
        conn = Connection(host, int(port))
        if argv[2] == "--drop-user-keyspaces":
            for (ks,) in conn.query("SELECT keyspace_name FROM system_schema.keyspaces"):
                if not ks.startswith("system"):
                    conn.query(f'DROP KEYSPACE IF EXISTS "{ks}"')
                    print(f"dropped keyspace {ks}")
        else:
            cql = sys.stdin.read().strip() if argv[2] == "-" else argv[2]
            for row in conn.query(cql):
                print("\t".join(row))
        conn.close()
    except (OSError, CqlError) as e:
        sys.exit(f"cql: {e}")


if __name__ == "__main__":
    main(sys.argv)
