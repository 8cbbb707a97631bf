# SPDX-License-Identifier: Apache-2.0
"""XMPP over WebSocket (RFC 7395) and XEP-0156 discovery, end to end: a real tcbroker, raw
WebSocket clients over real sockets (wsclient.py shows every frame, so the tests can also send
what a browser never would), and slixmpp over TCP in the same rooms. The bad-input cases
are those of the TCP tests (malformed XML, restricted XML, stanzas before authentication, wrong
passwords, oversized input) plus the WebSocket's own (binary and unmasked frames, bad origins,
missing subprotocol, idle peers, too many connections from one address).

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/web -v
"""

import asyncio
import json
import os
import sys
import time
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "muc"))

import tcharness as th  # noqa: E402
import wsclient as w  # noqa: E402

from wsclient import CLOSE, NS_FRAMING, NS_SASL, NS_STREAM, NS_STREAMS_ERR, OPEN, plain  # noqa
ORIGIN = "https://chat.example.org"

WEBSOCKET = {"enabled": True, "port": 0, "consider_secure": True, "allowed_origins": [ORIGIN],
             "max_message_bytes": 8192, "idle_timeout": 3}


class WebSocketCase(th.MucTestCase):
    # The stanza limit is below the message limit, so both can be crossed separately.
    SECTIONS = {"websocket": WEBSOCKET, "client": {"max_stanza_bytes": 4096}}

    @property
    def ws_port(self):
        return int(self.broker.ready["websocket_port"])

    def setUp(self):
        super().setUp()
        self.sockets = []

    def tearDown(self):
        for s in self.sockets:
            s.close()
        super().tearDown()

    def ws(self, broker=None, **kwargs):
        port = int((broker or self.broker).ready["websocket_port"])
        s = w.XmppWs(port, **kwargs)
        self.sockets.append(s)
        return s

    async def still_serves(self, ws):
        """`ws`, logged in, still answers an iq (its stream was not hurt by another's)."""
        await ws.send("<iq xmlns='jabber:client' type='get' id='ping1' to='localhost'>"
                      "<ping xmlns='urn:xmpp:ping'/></iq>")
        reply = await ws.expect(lambda e: e.get("id") == "ping1", "ping result")
        self.assertEqual(reply.get("type"), "result")

    def assert_stream_error(self, messages, code, condition):
        tags = [m.tag for m in messages]
        self.assertEqual(tags[-2:], [f"{{{NS_STREAM}}}error", f"{{{NS_FRAMING}}}close"], tags)
        self.assertIsNotNone(messages[-2].find(f"{{{NS_STREAMS_ERR}}}{condition}"),
                             ET.tostring(messages[-2]))
        self.assertEqual(code, 1000, "the WebSocket closes normally after <close/>")


class Discovery(WebSocketCase):

    async def test_host_meta_names_the_websocket_url(self):
        status, headers, body = await asyncio.to_thread(
            w.get, self.ws_port, "/.well-known/host-meta", "chat.example.org")
        self.assertEqual(status, 200)
        self.assertEqual(headers["access-control-allow-origin"], "*")
        xrd = ET.fromstring(body)
        links = xrd.findall("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")
        self.assertEqual([(l.get("rel"), l.get("href")) for l in links],
                         [("urn:xmpp:alt-connections:websocket",
                           "wss://chat.example.org/xmpp-websocket")])
        status, headers, body = await asyncio.to_thread(
            w.get, self.ws_port, "/.well-known/host-meta.json", "chat.example.org")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(json.loads(body), {"links": [{
            "rel": "urn:xmpp:alt-connections:websocket",
            "href": "wss://chat.example.org/xmpp-websocket"}]})

    async def test_http_requests_that_are_not_a_stream_get_clear_answers(self):
        status, _, body = await asyncio.to_thread(w.get, self.ws_port, "/xmpp-websocket")
        self.assertEqual(status, 426, body)
        status, _, _ = await asyncio.to_thread(w.get, self.ws_port, "/nothing-here")
        self.assertEqual(status, 404)
        status, _, body = await asyncio.to_thread(
            w.http_request, self.ws_port, b"BLAH\r\n\r\n")
        self.assertEqual(status, 400, body)
        wrong_path = self.ws(path="/other")
        self.assertEqual(wrong_path.c.status, 404)
        no_protocol = self.ws(protocol=None)
        self.assertEqual(no_protocol.c.status, 400)
        self.assertIn(b"xmpp", no_protocol.c.body)
        other_protocol = self.ws(protocol="chat, superchat")
        self.assertEqual(other_protocol.c.status, 400)

    async def test_origins_other_than_the_page_and_the_listed_ones_are_refused(self):
        foreign = self.ws(origin="https://evil.example.com")
        self.assertEqual(foreign.c.status, 403)
        self.assertIn(b"allowed_origins", foreign.c.body)
        listed = self.ws(origin=ORIGIN)
        self.assertEqual(listed.c.status, 101)
        self.assertEqual(listed.c.headers["sec-websocket-protocol"], "xmpp")
        same = self.ws(origin=f"http://127.0.0.1:{self.ws_port}")
        self.assertEqual(same.c.status, 101)
        await (await listed.login("carol")).send(CLOSE)


class Streams(WebSocketCase):

    async def test_web_and_tcp_clients_share_a_room_and_its_archive(self):
        room = self.room()
        web = await self.ws(origin=ORIGIN).login("alice")
        self.assertEqual(web.jid, "alice@localhost/web")
        await web.send(f"<presence xmlns='jabber:client' to='{room}/alice'>"
                       "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
        joined = await web.expect(lambda e: e.tag == "{jabber:client}presence"
                                  and e.get("from") == f"{room}/alice", "alice's self-presence")
        self.assertIn("201", ET.tostring(joined, encoding="unicode"))
        bob = await self.client("bob")
        await bob.join(room, "bob")
        await web.send(f"<message xmlns='jabber:client' to='{room}' type='groupchat' id='w1'>"
                       "<body>from the browser</body></message>")
        # Every stanza is its own document carrying jabber:client (RFC 7395 §3.3.3).
        mine = await web.expect(lambda e: e.tag == "{jabber:client}message"
                                and e.get("id") == "w1", "alice's reflection")
        self.assertEqual(mine.findtext("{jabber:client}body"), "from the browser")
        await bob.expect(th.is_groupchat(f"{room}/alice", "from the browser"), "alice's message")
        await bob.say(room, "from a desktop client")
        got = await web.expect(lambda e: e.findtext("{jabber:client}body")
                               == "from a desktop client", "bob's message")
        self.assertEqual(got.get("from"), f"{room}/bob")
        await web.send(f"<iq xmlns='jabber:client' type='set' id='mam1' to='{room}'>"
                       "<query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>")
        bodies = []
        while True:
            el = await web.recv()
            if el.get("id") == "mam1":
                self.assertEqual(el.get("type"), "result")
                break
            res = el.find("{urn:xmpp:mam:2}result")
            if res is not None:
                bodies.append(res.findtext(".//{jabber:client}body"))
        self.assertEqual(bodies, ["from the browser", "from a desktop client"])
        await web.send(CLOSE)
        messages, code = await web.until_closed()
        self.assertEqual([m.tag for m in messages][-1:], [f"{{{NS_FRAMING}}}close"])
        self.assertEqual(code, 1000)
        await bob.expect(th.is_unavailable(f"{room}/alice"), "alice leaving with her stream")

    async def test_wrong_password_fails_and_the_stream_goes_on(self):
        ws = self.ws()
        await ws.open_stream()
        await ws.send(plain("alice", "not-the-password"))
        failure = await ws.recv()
        self.assertEqual(failure.tag, f"{{{NS_SASL}}}failure")
        self.assertIsNotNone(failure.find(f"{{{NS_SASL}}}not-authorized"))
        await ws.send(plain("alice"))
        self.assertEqual((await ws.recv()).tag, f"{{{NS_SASL}}}success")

    async def test_malformed_xml_closes_only_that_stream(self):
        bystander = await self.ws().login("bob")
        ws = self.ws()
        await ws.open_stream()
        await ws.send("<message><body>unclosed</message>")
        messages, code = await ws.until_closed()
        self.assert_stream_error(messages, code, "not-well-formed")
        await self.still_serves(bystander)

    async def test_restricted_xml_is_refused(self):
        ws = self.ws()
        await ws.open_stream()
        await ws.send("<?pi something?><message xmlns='jabber:client'/>")
        messages, code = await ws.until_closed()
        self.assert_stream_error(messages, code, "restricted-xml")

    async def test_the_same_bad_input_as_over_tcp_ends_only_that_stream(self):
        # tests/integration/raw_stream_test.cpp's cases, one WebSocket message each.
        bystander = await self.ws().login("bob")
        cases = [
            ("<!-- comments are not allowed in XMPP -->", ("restricted-xml",)),
            ("<?xml-stylesheet href='evil.xsl'?>", ("restricted-xml",)),
            ("<!DOCTYPE foo [<!ENTITY x 'y'>]>", ("restricted-xml", "not-well-formed")),
            ("<message><body></message>", ("not-well-formed",)),
            ("<message>\x01\x02\x03</message>", ("not-well-formed",)),
            ("</message>", ("not-well-formed",)),
            ("<a:b xmlns:c='d'/>", ("not-well-formed",)),
            # Over client.max_stanza_bytes (4096) but within the message limit (8192).
            ("<message xmlns='jabber:client' to='alice@localhost'><body>" + "x" * 6000
             + "</body></message>", ("policy-violation",)),
        ]
        for bad, conditions in cases:
            ws = self.ws()
            await ws.open_stream()
            await ws.send(bad)
            messages, code = await ws.until_closed()
            errors = [m for m in messages if m.tag == f"{{{NS_STREAM}}}error"]
            self.assertTrue(errors, f"no stream error after {bad[:60]!r}")
            got = [c.tag.split("}")[1] for c in errors[-1]]
            self.assertTrue(any(c in got for c in conditions), f"{bad[:60]!r}: {got}")
            self.assertEqual(messages[-1].tag, f"{{{NS_FRAMING}}}close")
            self.assertEqual(code, 1000)
            await self.still_serves(bystander)

    async def test_entity_expansion_before_the_stream_is_refused(self):
        ws = self.ws()
        await ws.send("<?xml version='1.0'?><!DOCTYPE open [<!ENTITY lol 'lol'>"
                      "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
                      f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>")
        messages, code = await ws.until_closed()
        self.assert_stream_error(messages, code, "restricted-xml")
        self.assertNotIn("lollol", "".join(ET.tostring(m, encoding="unicode") for m in messages))

    async def test_client_vanishing_mid_message_hurts_nobody(self):
        bystander = await self.ws().login("bob")
        ws = self.ws()
        await ws.open_stream()
        # A frame header announcing 1000 bytes, then 10 of them, then the connection ends.
        await asyncio.to_thread(ws.c.sock.sendall, bytes([0x81, 0x80 | 126, 0x03, 0xE8])
                                + b"\0\0\0\0" + b"<message x")
        ws.close()
        await self.still_serves(bystander)

    async def test_stanzas_before_authentication_are_refused(self):
        ws = self.ws()
        await ws.open_stream()
        await ws.send("<message xmlns='jabber:client' to='bob@localhost'><body>x</body></message>")
        messages, code = await ws.until_closed()
        self.assert_stream_error(messages, code, "not-authorized")

    async def test_open_in_the_wrong_namespace_is_refused(self):
        ws = self.ws()
        await ws.send("<open xmlns='jabber:client' to='localhost' version='1.0'/>")
        messages, code = await ws.until_closed()
        self.assertEqual(messages[0].tag, f"{{{NS_FRAMING}}}open")
        self.assert_stream_error(messages, code, "invalid-namespace")

    async def test_unknown_host_is_refused(self):
        ws = self.ws()
        await ws.send(f"<open xmlns='{NS_FRAMING}' to='elsewhere.example' version='1.0'/>")
        messages, code = await ws.until_closed()
        self.assert_stream_error(messages, code, "host-unknown")


class Frames(WebSocketCase):

    async def test_oversized_message_closes_with_1009(self):
        bystander = await self.ws().login("bob")
        ws = await self.ws().login("alice")
        body = "x" * (WEBSOCKET["max_message_bytes"] + 1)
        await ws.send(f"<message xmlns='jabber:client' to='bob@localhost'><body>{body}</body>"
                      "</message>")
        _, code = await ws.until_closed()
        self.assertEqual(code, 1009)
        await self.still_serves(bystander)

    async def test_binary_frame_closes_with_1003(self):
        ws = await self.ws().login("alice")
        await asyncio.to_thread(ws.c.send_frame, w.OP_BINARY, b"<presence/>")
        _, code = await ws.until_closed()
        self.assertEqual(code, 1003)

    async def test_unmasked_frame_closes_with_1002(self):
        ws = await self.ws().login("alice")
        await asyncio.to_thread(ws.c.send_frame, w.OP_TEXT, "<presence/>", True, False)
        _, code = await ws.until_closed()
        self.assertEqual(code, 1002)

    async def test_fragmented_message_is_one_stanza(self):
        ws = await self.ws().login("alice")
        text = ("<iq xmlns='jabber:client' type='get' id='frag1' to='localhost'>"
                "<ping xmlns='urn:xmpp:ping'/></iq>")
        await asyncio.to_thread(ws.c.send_frame, w.OP_TEXT, text[:20], False)
        await asyncio.to_thread(ws.c.send_frame, w.OP_CONT, text[20:], True)
        reply = await ws.expect(lambda e: e.get("id") == "frag1", "ping result")
        self.assertEqual(reply.get("type"), "result")

    async def test_idle_peer_is_pinged_then_dropped(self):
        ws = await self.ws().login("alice")
        quiet = self.ws()  # answers no ping
        await quiet.open_stream()
        started = time.monotonic()
        quiet_gone = False

        def silent():
            nonlocal quiet_gone
            try:
                while True:
                    quiet.c.recv(timeout=10, answer_pings=False)
            except w.Closed:
                quiet_gone = True
                return time.monotonic() - started

        def responsive():
            # Reads (and so answers pings) until the quiet client is gone.
            while not quiet_gone:
                try:
                    ws.c.recv(timeout=0.2)
                except TimeoutError:
                    pass

        gone_after, _ = await asyncio.gather(asyncio.to_thread(silent),
                                             asyncio.to_thread(responsive))
        self.assertGreaterEqual(quiet.c.pings, 1, "a ping before giving up")
        idle = WEBSOCKET["idle_timeout"]
        self.assertGreater(gone_after, idle * 0.5)
        self.assertLess(gone_after, idle + 3)
        # The client that answered its pings is still served.
        self.assertGreaterEqual(ws.c.pings, 1)
        await self.still_serves(ws)


class Limits(th.MucTestCase):
    OWN_BROKER = False

    async def test_connections_per_address_are_capped(self):
        b = th.Broker("wslimit", sections={"websocket": {**WEBSOCKET,
                                                         "max_connections_per_ip": 2}})
        self.extra_brokers.append(b)
        b.start()
        port = int(b.ready["websocket_port"])
        first, second = w.WsClient(port), w.WsClient(port)
        self.assertEqual((first.status, second.status), (101, 101))
        third = w.WsClient(port)
        self.assertEqual(third.status, 503)
        self.assertIn(b"max_connections_per_ip", third.body)
        third.close()
        first.close()
        # The slot comes back once the server has seen the connection end.
        deadline = time.monotonic() + th.TIMEOUT
        while True:
            again = w.WsClient(port)
            if again.status == 101:
                break
            again.close()
            self.assertLess(time.monotonic(), deadline, "the closed connection's slot returns")
            await asyncio.sleep(0.05)
        again.close()
        second.close()

    async def test_unencrypted_websocket_when_tls_is_required(self):
        b = th.Broker("wsplain", sections={"websocket": {"enabled": True, "port": 0}})
        self.extra_brokers.append(b)
        b.start()
        ws = w.XmppWs(int(b.ready["websocket_port"]))
        try:
            await ws.send(OPEN)
            messages, code = await ws.until_closed()
            self.assertEqual(messages[0].tag, f"{{{NS_FRAMING}}}open")
            err = messages[-2]
            self.assertIsNotNone(err.find(f"{{{NS_STREAMS_ERR}}}policy-violation"))
            self.assertIn("wss://", err.findtext(f"{{{NS_STREAMS_ERR}}}text"))
            self.assertEqual(code, 1000)
        finally:
            ws.close()


if __name__ == "__main__":
    unittest.main()
