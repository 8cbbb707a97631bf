# SPDX-License-Identifier: Apache-2.0
"""A deliberately small RFC 6455 client for the WebSocket tests: real sockets, every frame
visible (so tests can send what a browser never would: binary, unmasked, oversized frames),
every read bounded by a timeout."""

import asyncio
import base64
import hashlib
import os
import socket
import struct
import time
import xml.etree.ElementTree as ET

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
OPEN = f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"
CLOSE = f"<close xmlns='{NS_FRAMING}'/>"
PASSWORD = "secret-pw"  # tests/muc/tcharness.py's
TIMEOUT = float(os.environ.get("TC_MUC_TIMEOUT", "20"))

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class Closed(Exception):
    """The server closed the WebSocket; .code is its status (None without one)."""

    def __init__(self, code, reason=""):
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


def http_request(port, raw, timeout=10.0):
    """Sends raw HTTP bytes, returns (status, headers dict lower-cased, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                headers = _headers(head)
                n = int(headers.get("content-length", "-1"))
                if n >= 0 and len(body) >= n:
                    break
        return _parse_response(data)


def _headers(head):
    lines = head.decode("latin-1").split("\r\n")
    out = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        out[k.strip().lower()] = v.strip()
    return out


def _parse_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, _headers(head), body


def get(port, path, host="localhost", extra=""):
    return http_request(port, (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                               f"{extra}\r\n").encode())


class WsClient:
    def __init__(self, port, path="/xmpp-websocket", origin=None, protocol="xmpp",
                 host=None, timeout=10.0):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        if origin:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1]) if head else 0
        self.headers = _headers(head)
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == accept, self.headers
        else:
            # the rest of an error response: its body
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            self.body = self.buf[:n]
        self.pings = 0

    # ---- frames ----

    def send_frame(self, opcode, payload, fin=True, mask=True):
        if isinstance(payload, str):
            payload = payload.encode()
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send(self, text):
        self.send_frame(OP_TEXT, text)

    def _read(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame within {self.timeout} s")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(None, "connection ended without a close frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        b0, b1 = self._read(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8, deadline))[0]
        assert not (b1 & 0x80), "server frames must not be masked"
        return b0 & 0x0F, self._read(n, deadline)

    def recv(self, timeout=None, answer_pings=True):
        """The next text message. Answers pings; raises Closed on a close frame."""
        while True:
            op, payload = self.read_frame(timeout)
            if op == OP_PING:
                self.pings += 1
                if answer_pings:
                    self.send_frame(OP_PONG, payload)
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code, payload[2:].decode(errors="replace"))
            if op == OP_TEXT:
                return payload.decode()
            raise AssertionError(f"unexpected opcode {op}")

    def recv_until_closed(self, timeout=None):
        """Every text message until the close frame: (messages, close code)."""
        messages = []
        try:
            while True:
                messages.append(self.recv(timeout))
        except Closed as c:
            return messages, c.code

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- XMPP over the WebSocket (RFC 7395) ----

def parse(message):
    """One WebSocket message is one complete XML document (RFC 7395 §3.3.3)."""
    return ET.fromstring(message)


def plain(user, password=PASSWORD):
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"


class XmppWs:
    """A logged-in (or not) XMPP-over-WebSocket client; blocking calls run in a thread so that
    slixmpp clients in the same test keep running."""

    def __init__(self, port, **kwargs):
        self.c = WsClient(port, **kwargs)
        self.jid = None

    async def send(self, text):
        await asyncio.to_thread(self.c.send, text)

    async def recv(self, timeout=None):
        return parse(await asyncio.to_thread(self.c.recv, timeout))

    async def until_closed(self, timeout=None):
        messages, code = await asyncio.to_thread(self.c.recv_until_closed, timeout)
        return [parse(m) for m in messages], code

    async def expect(self, pred, what, timeout=None):
        """Reads messages until one matches `pred` (others are kept in .seen)."""
        deadline = time.monotonic() + (timeout or TIMEOUT)
        seen = []
        while time.monotonic() < deadline:
            el = await self.recv(max(0.1, deadline - time.monotonic()))
            if pred(el):
                return el
            seen.append(ET.tostring(el, encoding="unicode")[:300])
        raise AssertionError(f"{what} not received; got {seen}")

    async def open_stream(self):
        await self.send(OPEN)
        opened = await self.recv()
        assert opened.tag == f"{{{NS_FRAMING}}}open", opened.tag
        features = await self.recv()
        assert features.tag == f"{{{NS_STREAM}}}features", features.tag
        return opened, features

    async def login(self, user, resource="web"):
        await self.open_stream()
        await self.send(plain(user))
        ok = await self.recv()
        assert ok.tag == f"{{{NS_SASL}}}success", ET.tostring(ok)
        await self.open_stream()
        await self.send(f"<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='{NS_BIND}'>"
                        f"<resource>{resource}</resource></bind></iq>")
        bound = await self.recv()
        self.jid = bound.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid").text
        return self

    def close(self):
        self.c.close()
