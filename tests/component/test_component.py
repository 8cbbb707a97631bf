# SPDX-License-Identifier: Apache-2.0
"""Component mode (XEP-0114): a real Prosody (Debian's package) is the users' server and our
conference service attaches to it as the external component conference.localhost. Prosody's
users (slixmpp over TCP to Prosody) create and join our rooms, chat, read the archive; a
restart of the broker, a wrong secret and, for a pair, a kill -9 of the node that holds the
component: the other node attaches and the rooms keep their whole archive.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/component -v
"""

import asyncio
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "ha"))

import haharness as hh  # noqa: E402
from haharness import th  # noqa: E402
from prosody import SECRET, Prosody  # noqa: E402
from test_ha import HaTestCase  # noqa: E402

# The broker's own domain differs from the front server's: Prosody's users are "foreign" to
# it, and every stanza for them goes back through the component link.
NODE = {"domain": "tc.localhost"}
MUC = {"domain": th.MUC_DOMAIN}  # the component's name at Prosody
ATTACHED = "its users reach our rooms"  # the broker's log line once the handshake succeeded


def component(prosody, secret=SECRET):
    return {"enabled": True, "server": "127.0.0.1", "port": prosody.component_port,
            "secret": secret, "reconnect_interval": 0.2}


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


class ProsodyCase(HaTestCase):
    TEST_TIMEOUT = 180.0

    def setUp(self):
        super().setUp()
        self.prosody = Prosody()
        self.prosody.start()

    def tearDown(self):
        if self._failed():
            print(f"\n--- prosody log ---\n{self.prosody.log_tail(120)}", file=sys.stderr)
        self.prosody.stop()
        super().tearDown()

    async def user(self, name):
        """A Prosody user (slixmpp logged in to Prosody, not to us)."""
        c = th.Client(name, trace=self.trace)
        self.clients.append(c)
        return await c.login(self.prosody.c2s_port)

    async def history(self, c, room):
        results, _fin, _reply = await c.mam(room, max_=100)
        return [m.findtext(f"{{{th.NS_CLIENT}}}body") for _id, m, _stamp, _s in results]


class Component(ProsodyCase):

    def make_broker(self, secret=SECRET):
        b = th.Broker("component", muc=MUC, sections={"node": NODE,
                                                      "component": component(self.prosody, secret)})
        self.extra_brokers.append(b)
        return b

    async def test_prosody_users_chat_in_our_rooms_and_read_the_archive(self):
        b = self.make_broker()
        await asyncio.to_thread(b.start)
        await hh.poll_until(lambda: ATTACHED in read(b.log_path), th.TIMEOUT,
                            "the component attached")
        alice, bob = await self.user("alice"), await self.user("bob")
        room = self.room()
        await self.create_room(alice, room, "alice")
        await bob.join(room, "bob")
        await alice.say(room, "hello through Prosody")
        await bob.expect(th.is_groupchat(f"{room}/alice", "hello through Prosody"),
                         "alice's message at bob")
        await bob.say(room, "and back")
        await alice.expect(th.is_groupchat(f"{room}/bob", "and back"), "bob's message at alice")
        info = await alice.disco_info(room)
        self.assertIsNotNone(info)
        self.assertEqual(await self.history(bob, room), ["hello through Prosody", "and back"])
        # A private message between occupants goes through the room and back out.
        alice.send(f"<message to={th.q(room + '/bob')} type='chat'><body>psst</body></message>")
        pm = await bob.expect(th.is_message(f"{room}/alice", "chat", "psst"), "the private one")
        self.assertIsNotNone(pm)

        # The broker restarts: the link comes back, the room and its archive are there.
        await asyncio.to_thread(b.stop)
        await asyncio.to_thread(b.start)
        await hh.poll_until(lambda: read(b.log_path).count(ATTACHED) >= 2, th.TIMEOUT,
                            "re-attached")
        await alice.join(room, "alice")
        self.assertEqual(await self.history(alice, room), ["hello through Prosody", "and back"])
        await alice.say(room, "after the restart")

    async def test_wrong_secret_is_refused_and_retried(self):
        b = self.make_broker(secret="not-the-secret")
        await asyncio.to_thread(b.start)
        await hh.poll_until(lambda: "not attached" in read(b.log_path), th.TIMEOUT,
                            "the refusal logged")
        log = read(b.log_path)
        self.assertIn("not-authorized", log)
        self.assertTrue(b.running())
        # Prosody's users get an error for the rooms, not silence.
        alice = await self.user("alice")
        error = await alice.join_error(self.room(), "alice")
        self.assertIsNotNone(error)


class ComponentPair(ProsodyCase):
    """Both nodes of a pair dial Prosody; it takes one (the other gets <conflict/>). Rooms are
    spread over both nodes: those on the node without the link are reached through the peer."""

    def attached(self, pair):
        return [n for n, node in pair.nodes.items()
                if read(node.log_path).count(ATTACHED) > read(node.log_path).count("detached from")]

    async def test_kill_the_attached_node_and_the_other_takes_over(self):
        pair = await self.make_pair(muc=MUC, sections={"node": NODE,
                                              "component": component(self.prosody)})
        await hh.poll_until(lambda: len(self.attached(pair)) == 1, th.TIMEOUT,
                            "exactly one node attached")
        [holder] = self.attached(pair)
        other = "node2" if holder == "node1" else "node1"
        alice, bob = await self.user("alice"), await self.user("bob")
        # One room on each node.
        rooms = {}
        for _ in range(24):
            room = self.room()
            await self.create_room(alice, room, "alice")
            host = await hh.poll_until(lambda r=room: pair.room_hosts().get(r), 10,
                                       f"{room} hosted")
            rooms.setdefault(host[0], room)
            if len(rooms) == 2:
                break
        self.assertEqual(set(rooms), {"node1", "node2"}, "rooms on both nodes")
        said = {}
        for node, room in rooms.items():
            await bob.join(room, "bob")
            await alice.say(room, f"before, on {node}")
            await bob.expect(th.is_groupchat(f"{room}/alice", f"before, on {node}"),
                             f"the message in the room on {node}")
            said[room] = [f"before, on {node}"]

        pair.nodes[holder].kill()
        await hh.poll_until(lambda: other in self.attached(pair), 20, f"{other} attached")
        # The dead node's room is loaded on the survivor (its own rooms are live already, or
        # load at the next join: an empty persistent room is not kept in memory).
        await hh.poll_until(lambda: pair.room_hosts().get(rooms[holder]) == [other], 20,
                            f"{rooms[holder]} on {other}")
        for node, room in rooms.items():
            for c, nick in ((alice, "alice"), (bob, "bob")):
                await c.join(room, nick)
            await alice.say(room, "after the kill")
            await bob.expect(th.is_groupchat(f"{room}/alice", "after the kill"),
                             f"the message after the kill in {room}")
            said[room].append("after the kill")
            self.assertEqual(await self.history(bob, room), said[room],
                             f"{room}: every message once, in order")


if __name__ == "__main__":
    unittest.main()
