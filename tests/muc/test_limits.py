# SPDX-License-Identifier: Apache-2.0
"""Limits against hostile or broken clients: login throttling per address, connections per
address, per-connection rate limits with back-pressure (nothing is dropped), and the idle
timeout that pings a silent client and closes a half-open stream. Each limit is an operator
setting; each refusal says what happened.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/muc \\
      -p test_limits.py -v
"""

import asyncio
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tcharness as th  # noqa: E402

STREAM_HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


def raw_session(port, source="127.0.0.1", timeout=15.0):
    """Opens a TCP connection from `source`, sends a stream header and reads until the server
    closes the connection (or `timeout`). Returns (everything read, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as s:
        s.sendall(STREAM_HEADER.encode())
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                return got.decode(errors="replace"), True
            got += chunk
        return got.decode(errors="replace"), False


class LoginThrottling(th.MucTestCase):
    SECTIONS = {"auth": {"max_failures": 3, "failure_window": 2}}

    async def attempt(self, password):
        """One login; (succeeded, the SASL failure texts it got)."""
        texts = []
        c = th.Client("alice", "r", password=password, trace=self.trace)
        self.clients.append(c)
        c.xmpp.add_event_handler("failed_auth", lambda f: texts.append(str(f)))
        try:
            await c.login(self.broker.port)
        except AssertionError:
            return False, texts
        await c.close()
        return True, texts

    async def test_failed_logins_lock_the_address_out_for_the_window(self):
        # Wrong passwords until the throttle answers instead of the password check (slixmpp
        # may try more than one mechanism per login, each a failure).
        for _ in range(4):
            ok, texts = await self.attempt("wrong-password")
            self.assertFalse(ok)
            if any("too many failed logins" in t for t in texts):
                break
        else:
            self.fail(f"never throttled; last failures: {texts}")
        # The right password is refused too while the address is locked out, with the reason.
        ok, texts = await self.attempt(th.PASSWORD)
        self.assertFalse(ok, "a login got through a locked-out address")
        self.assertTrue(any("temporary-auth-failure" in t and "try again in" in t
                            for t in texts), texts)
        # Once the failures leave the 2 s window, the right password works again.
        deadline = time.monotonic() + 10
        while True:
            ok, texts = await self.attempt(th.PASSWORD)
            if ok:
                break
            self.assertTrue(any("too many failed logins" in t for t in texts), texts)
            self.assertLess(time.monotonic(), deadline, "still locked out after 10 s")
            await asyncio.sleep(0.2)


class ConnectionsPerAddress(th.MucTestCase):
    SECTIONS = {"client": {"max_connections_per_ip": 2}}

    async def test_third_connection_from_one_address_is_refused(self):
        """127.0.0.1 is not counted (local tools); 127.0.0.2 stands in for a remote address."""
        holders = []
        try:
            for _ in range(2):
                s = socket.create_connection(("127.0.0.1", self.broker.port), timeout=10,
                                             source_address=("127.0.0.2", 0))
                s.sendall(STREAM_HEADER.encode())
                holders.append(s)
                self.assertIn(b"<stream:features", await asyncio.to_thread(self.read_features, s))
            got, closed = await asyncio.to_thread(raw_session, self.broker.port, "127.0.0.2")
            self.assertTrue(closed, got)
            self.assertIn("policy-violation", got)
            self.assertIn("too many connections from your address", got)
            # Another address, and loopback proper, are not affected.
            alice = await self.client("alice")
            self.assertTrue(alice.connected)
        finally:
            for s in holders:
                s.close()
        # A closed connection gives its place back (the server notices the close first).
        deadline = time.monotonic() + 10
        while not await asyncio.to_thread(self.third_gets_features):
            self.assertLess(time.monotonic(), deadline, "127.0.0.2 never got its place back")
            await asyncio.sleep(0.05)

    @staticmethod
    def read_features(s):
        got = b""
        deadline = time.monotonic() + 10
        while b"</stream:features>" not in got and time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got

    def third_gets_features(self):
        with socket.create_connection(("127.0.0.1", self.broker.port), timeout=10,
                                      source_address=("127.0.0.2", 0)) as s:
            s.sendall(STREAM_HEADER.encode())
            return b"<stream:features" in self.read_features(s)


class RateLimit(th.MucTestCase):
    SECTIONS = {"client": {"max_stanzas_per_second": 20}}

    async def test_a_flooding_connection_is_slowed_not_cut_and_others_are_not(self):
        flooder, other = await self.clients_for("alice", "bob")
        ids = [th.Client.new_id("flood") for _ in range(100)]
        started = time.monotonic()
        for id_ in ids:
            flooder.send(f"<iq type='get' id='{id_}' to='{th.DOMAIN}'>"
                         "<ping xmlns='urn:xmpp:ping'/></iq>")
        # Meanwhile another connection is served at once.
        reply = await other.iq("get", th.DOMAIN, "<ping xmlns='urn:xmpp:ping'/>")
        other_took = time.monotonic() - started
        self.assertEqual(th.attr(reply, "type"), "result", str(reply))
        # Everything is answered (nothing is dropped), but at the connection's rate: 100
        # stanzas with a burst of 40 at 20 a second take about 3 s.
        for id_ in ids:
            await flooder.expect(lambda s, id_=id_: th.attr(s, "id") == id_, f"answer {id_}", 30)
        flooder_took = time.monotonic() - started
        # 1.5 s of the ~3 s is the margin (reads batch stanzas, so the pause comes in steps):
        # what matters is that the flooder waited and the other did not.
        self.assertGreater(flooder_took, 1.5, "the flooding connection was not slowed")
        self.assertLess(other_took, flooder_took / 2, "the other connection waited as well")
        self.assertTrue(flooder.connected, "rate limiting must slow, not disconnect")


class RoomsPerConnection(th.MucTestCase):
    MUC_CONFIG = {"max_rooms_per_user": 2}

    async def test_one_join_too_many_is_refused_with_the_reason(self):
        alice = await self.client("alice")
        rooms = [self.room() for _ in range(3)]
        for r in rooms[:2]:
            await self.create_room(alice, r, "alice")
        err = await alice.join_error(rooms[2], "alice")
        self.assertEqual(err, ("wait", "resource-constraint"))
        # A presence update in a room it is in is no new join; leaving one frees a place.
        alice.send(f"<presence to={th.q(rooms[0] + '/alice')}><show>away</show></presence>")
        alice.send(f"<presence to={th.q(rooms[1] + '/alice')} type='unavailable'/>")
        await alice.expect(lambda s: th.attr(s, "from") == rooms[1] + "/alice"
                           and th.attr(s, "type") == "unavailable", "the leave of " + rooms[1])
        await self.create_room(alice, rooms[2], "alice")


class IdleTimeout(th.MucTestCase):
    SECTIONS = {"client": {"idle_timeout": 1}}

    async def test_silent_stream_is_closed_and_a_live_client_is_pinged(self):
        # A connection that opens its stream and then says nothing (a half-open stream, or a
        # stuck TLS handshake) is closed with connection-timeout.
        got, closed = await asyncio.to_thread(raw_session, self.broker.port)
        self.assertTrue(closed, got)
        self.assertIn("connection-timeout", got)
        # A bound client that answers is pinged (XEP-0199) and stays: two pings in a row.
        alice = await self.client("alice")
        for _ in range(2):
            ping = await alice.expect(lambda s: isinstance(s, th.Iq) and th.attr(s, "type") == "get"
                                      and th.attr(s, "from") == th.DOMAIN, "a ping from the server",
                                      10)
            self.assertIn("urn:xmpp:ping", str(ping))
        self.assertTrue(alice.connected)


if __name__ == "__main__":
    unittest.main()
