# SPDX-License-Identifier: Apache-2.0
"""XEP-0198 session resumption with a client whose every byte the test controls: a phone that
loses its connection (an abrupt TCP reset, no stream close) resumes within the window, keeps
its rooms without joining again and gets what it had not acknowledged, in order; an unknown or
expired session cannot be resumed; a session not resumed in time ends, its rooms see it leave,
and its unacknowledged messages are kept for the user's next login.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/im \\
      -p test_resume.py -v
"""

import asyncio
import base64
import os
import ssl
import sys
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_roster as tr  # noqa: E402
from test_roster import th  # noqa: E402

D = th.DOMAIN
SM = "urn:xmpp:sm:3"
CLIENT = "jabber:client"
HEADER = (f"<?xml version='1.0'?><stream:stream to='{D}' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


class RawClient:
    """A minimal XMPP client over asyncio streams: STARTTLS, SASL PLAIN, then bind or resume.
    It counts the stanzas it receives the way XEP-0198 does (top-level message, presence, iq)."""

    def __init__(self, port, user, resource):
        self.port, self.user, self.resource = port, user, resource
        self.elements = []  # top-level elements received, in order
        self.stanzas = 0    # since stream management was enabled or resumed
        self.counting = False
        self._arrived = asyncio.Event()

    def _restart_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0

    async def _read(self):
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            self.parser.feed(chunk)
            for event, el in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                    continue
                self.depth -= 1
                if self.depth == 1:
                    self.elements.append(el)
                    if self.counting and el.tag.split("}")[-1] in ("message", "presence", "iq"):
                        self.stanzas += 1
                    self._arrived.set()

    async def expect(self, pred, what, timeout=10.0):
        """The first received element matching `pred` not returned before (consumed)."""
        async def find():
            while True:
                for i, el in enumerate(self.elements):
                    if el is not None and pred(el):
                        self.elements[i] = None
                        return el
                self._arrived.clear()
                await self._arrived.wait()
        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            raise th.TimeoutFailure(f"{self.user}/{self.resource}: no {what}") from None

    def send(self, xml):
        self.writer.write(xml.encode())

    async def _features(self):
        return await self.expect(lambda e: e.tag.endswith("}features"), "stream features")

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._restart_parser()
        self.task = asyncio.ensure_future(self._read())
        self.send(HEADER)
        await self._features()
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await self.expect(lambda e: e.tag.endswith("}proceed"), "proceed")
        self.task.cancel()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        await self.writer.start_tls(ctx)
        self._restart_parser()
        self.task = asyncio.ensure_future(self._read())
        self.send(HEADER)
        await self._features()
        token = base64.b64encode(f"\0{self.user}\0{th.PASSWORD}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}"
                  "</auth>")
        await self.expect(lambda e: e.tag.endswith("}success"), "SASL success")
        self._restart_parser()
        self.send(HEADER)
        return await self._features()

    async def bind_and_enable(self):
        self.send(f"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{self.resource}</resource></bind></iq>")
        await self.expect(lambda e: e.get("id") == "bind1", "the bind result")
        self.send(f"<enable xmlns='{SM}' resume='true'/>")
        enabled = await self.expect(lambda e: e.tag == f"{{{SM}}}enabled", "enabled")
        self.counting = True
        return enabled

    async def resume(self, previd, h):
        self.send(f"<resume xmlns='{SM}' previd='{previd}' h='{h}'/>")
        answer = await self.expect(lambda e: e.tag in (f"{{{SM}}}resumed", f"{{{SM}}}failed"),
                                   "resumed or failed")
        self.counting = answer.tag.endswith("resumed")
        return answer

    def crash(self):
        """The connection dies without a stream close (RST), as a phone's does."""
        self.task.cancel()
        self.writer.transport.abort()

    async def close(self):
        if not self.writer.is_closing():
            self.send("</stream:stream>")
            self.writer.close()
        self.task.cancel()


def body_of(el):
    b = el.find(f"{{{CLIENT}}}body")
    return None if b is None else b.text


class Resume(tr.ImTestCase):
    SECTIONS = {"client": {"resume_timeout": 30}}

    async def raw(self, user, resource):
        c = RawClient(self.broker.port, user, resource)
        self.raws.append(c)
        await c.connect()
        return c

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.raws = []

    async def asyncTearDown(self):
        for c in self.raws:
            try:
                await c.close()
            except Exception:
                pass
        await super().asyncTearDown()

    async def test_a_lost_phone_resumes_its_rooms_and_what_it_missed(self):
        room = self.room()
        bob = await self.client("bob")
        await self.create_room(bob, room, "bob")
        phone = await self.raw("alice", "phone")
        enabled = await phone.bind_and_enable()
        self.assertEqual(enabled.get("resume"), "true")
        self.assertEqual(enabled.get("max"), "30")
        previd = enabled.get("id")
        phone.send(f"<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'>"
                   "<history maxstanzas='0'/></x></presence>")
        await phone.expect(lambda e: e.tag == f"{{{CLIENT}}}presence"
                           and e.get("from") == f"{room}/alice", "alice's own join")
        await bob.expect(th.is_available(f"{room}/alice"), "alice joining")
        bob.send(f"<message to='alice@{D}/phone' type='chat' id='m0'><body>before</body>"
                 "</message>")
        await phone.expect(lambda e: body_of(e) == "before", "the message before the loss")
        acked = phone.stanzas

        phone.crash()
        # While the phone is gone: a chat and a room message it must not miss.
        bob.send(f"<message to='alice@{D}/phone' type='chat' id='m1'><body>while away 1"
                 "</body></message>")
        await bob.say(room, "in the room while away")
        bob.send(f"<message to='alice@{D}/phone' type='chat' id='m2'><body>while away 2"
                 "</body></message>")
        await bob.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")

        again = await self.raw("alice", "ignored")
        answer = await again.resume(previd, acked)
        self.assertEqual(answer.tag, f"{{{SM}}}resumed", ET.tostring(answer))
        self.assertEqual(answer.get("previd"), previd)
        got = [await again.expect(lambda e: body_of(e) is not None, f"replayed message {i}")
               for i in range(3)]
        self.assertEqual([body_of(e) for e in got],
                         ["while away 1", "in the room while away", "while away 2"])
        self.assertEqual(got[1].get("from"), f"{room}/bob")
        # Still in the room, with no new join: bob saw no leave, and the room reaches alice.
        self.assertEqual(bob.pending(th.is_unavailable(f"{room}/alice")), [])
        await bob.say(room, "welcome back")
        await again.expect(lambda e: body_of(e) == "welcome back", "a room message after")
        bob.send(f"<message to='alice@{D}/phone' type='chat'><body>direct after</body>"
                 "</message>")
        await again.expect(lambda e: body_of(e) == "direct after", "a chat after resuming")
        # Acknowledging works on the resumed stream.
        again.send(f"<r xmlns='{SM}'/>")
        ack = await again.expect(lambda e: e.tag == f"{{{SM}}}a", "an ack")
        self.assertEqual(ack.get("h"), "1", "the join before the loss, counted on")

    async def test_unknown_or_foreign_sessions_are_not_resumed(self):
        phone = await self.raw("carol", "phone")
        previd = (await phone.bind_and_enable()).get("id")
        phone.crash()
        # Another user cannot take carol's session, nor can anyone guess an id.
        thief = await self.raw("dave", "x")
        failed = await thief.resume(previd, 0)
        self.assertEqual(failed.tag, f"{{{SM}}}failed")
        self.assertIsNotNone(failed.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found"))
        stranger = await self.raw("carol", "y")
        failed = await stranger.resume("no-such-id", 0)
        self.assertEqual(failed.tag, f"{{{SM}}}failed")
        # After a failed resume the client binds a new session as usual.
        await stranger.bind_and_enable()
        # A wrong h (more than was ever sent) is refused too; the session stays resumable.
        bad = await self.raw("carol", "z")
        failed = await bad.resume(previd, 1000)
        self.assertEqual(failed.tag, f"{{{SM}}}failed")
        ok = await self.raw("carol", "w")
        self.assertEqual((await ok.resume(previd, 0)).tag, f"{{{SM}}}resumed")

    async def test_a_clean_close_is_not_resumable(self):
        room = self.room()
        bob = await self.client("bob", "watcher")
        await self.create_room(bob, room, "bob")
        phone = await self.raw("eve", "phone")
        previd = (await phone.bind_and_enable()).get("id")
        phone.send(f"<presence to='{room}/eve'/>")
        await bob.expect(th.is_available(f"{room}/eve"), "eve joining")
        await phone.close()
        # The session ended at once (its room saw it leave): nothing is left to resume.
        await bob.expect(th.is_unavailable(f"{room}/eve"), "eve leaving")
        again = await self.raw("eve", "again")
        self.assertEqual((await again.resume(previd, 0)).tag, f"{{{SM}}}failed")


class ResumeExpiry(tr.ImTestCase):
    SECTIONS = {"client": {"resume_timeout": 1}}

    async def test_an_expired_session_leaves_its_rooms_and_keeps_its_messages(self):
        room = self.room()
        bob = await self.client("bob")
        await self.create_room(bob, room, "bob")
        phone = RawClient(self.broker.port, "frank", "phone")
        await phone.connect()
        await phone.bind_and_enable()
        phone.send(f"<presence to='{room}/frank'/>")
        await bob.expect(th.is_available(f"{room}/frank"), "frank joining")
        phone.crash()
        bob.send(f"<message to='frank@{D}/phone' type='chat'><body>kept for later</body>"
                 "</message>")
        # One second later the session ends: the room sees frank leave.
        await bob.expect(th.is_unavailable(f"{room}/frank"), "frank leaving", timeout=15)
        frank = await self.client("frank")
        frank.send("<presence/>")
        m = await frank.expect(lambda s: th.body(s) == "kept for later",
                               "the unacknowledged message, from offline storage")
        self.assertEqual(th.attr(m, "from"), f"bob@{D}/r")


if __name__ == "__main__":
    unittest.main()
