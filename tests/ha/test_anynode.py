# SPDX-License-Identifier: Apache-2.0
"""Any node serves any user (the default, redirect_users = false): a login on either node of
the pair is served there, and one-to-one messages, presence, iqs and room traffic are routed
between the nodes through the sessions directory each node keeps of the other's sessions.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/ha \\
      -p test_anynode.py -v
"""

import asyncio
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import haharness as hh  # noqa: E402
from haharness import th  # noqa: E402
from test_ha import HaTestCase, NORMAL, RIBM  # noqa: E402

DEFAULT = {"redirect_users": "false"}


class AnyNode(HaTestCase):

    def port(self, node):
        return self.pair.nodes[node].client_port

    async def on(self, user, node, resource=None):
        """`user` logged in on `node`; it must be served there, not redirected."""
        c = await self.login(user, self.port(node), resource or node)
        self.assertEqual(c.node, node, f"{user} asked for {node}, served by {c.node}")
        self.assertEqual(c.redirects, [], f"{user} was redirected: {c.redirects}")
        return c

    async def chat(self, sender, to, text_, type_="chat"):
        id_ = th.Client.new_id("c")
        sender.c.send(f"<message to={th.q(to)} type={th.q(type_)} id={th.q(id_)}>"
                      f"<body>{th.text(text_)}</body></message>")
        return id_

    async def receives(self, c, text_, frm=None, timeout=10.0):
        m = await c.c.expect(lambda s: isinstance(s, th.Message) and th.body(s) == text_,
                             f"{text_!r}", timeout)
        if frm is not None:
            self.assertEqual(th.attr(m, "from"), frm, str(m))
        return m

    async def test_every_user_on_every_node_chats_in_rooms_of_both_nodes(self):
        """The README's client line for everybody: alice and bob, each on node1 and on node2
        at once (4 sessions), all in a room hosted on node1 and one hosted on node2."""
        await self.make_pair(settings=DEFAULT)
        sessions = [await self.on(u, n) for u in ("andy", "bob") for n in ("node1", "node2")]
        owner = sessions[0]
        rooms = (await self.rooms_on(owner, "node1")) + (await self.rooms_on(owner, "node2"))
        for c in sessions[1:]:
            for r in rooms:
                await c.join_quick(r, f"{c.user}-{c.node}")
                c.rooms[r] = f"{c.user}-{c.node}"
        for r in rooms:
            for c in sessions:
                text_ = f"{c.user} on {c.node} in {r}"
                await self.say(c, r, text_)
                for other in sessions:
                    if other is not c:
                        await self.sees(other, r, text_)
        for c in sessions:
            for r in rooms:
                self.assertIn(f"{c.user} on {c.node} in {r}", await self.history(c, r))
        # tcctl rooms: each node lists the room it hosts, with its four occupants.
        for node, here, there in (("node1", rooms[0], rooms[1]), ("node2", rooms[1], rooms[0])):
            done = await asyncio.to_thread(self.pair.nodes[node].ctl, "rooms", "--json")
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            listed = {d["jid"]: d for d in json.loads(done.stdout)["details"]}
            self.assertEqual(listed[here]["occupants"], 4, listed)
            self.assertEqual(listed[here]["partition"], node, listed)
            self.assertGreater(listed[here]["epoch"], 0, listed)
            self.assertNotIn(there, listed)
            table = await asyncio.to_thread(self.pair.nodes[node].ctl, "rooms")
            self.assertIn(here, table.stdout)
            self.assertIn("OCCUPANTS", table.stdout)

    async def reachable(self, sender, full, timeout=10.0):
        """Pings `full` until its client answers: the sender's node has learnt where it is
        (the peer announces a session asynchronously, right after its bind)."""
        deadline = time.monotonic() + timeout
        while True:
            reply = await sender.c.iq("get", full, "<ping xmlns='urn:xmpp:ping'/>")
            if th.attr(reply, "type") == "result":
                self.assertEqual(th.attr(reply, "from"), full, str(reply))
                return
            self.assertEqual(th.error_of(reply)[1], "service-unavailable", str(reply))
            if time.monotonic() > deadline:
                self.fail(f"{full} never became reachable from {sender.node}")
            await asyncio.sleep(hh.POLL)

    async def test_carbons_across_nodes(self):
        """XEP-0280 with alice's two resources on different nodes: each sees what the other
        sent and received; bob is on node2."""
        ns_carbons, ns_forward = "urn:xmpp:carbons:2", "urn:xmpp:forward:0"
        await self.make_pair(settings=DEFAULT)
        a1 = await self.on("andy", "node1", "a1")
        a2 = await self.on("andy", "node2", "a2")
        bob = await self.on("bob", "node2")
        for c in (a1, a2):
            reply = await c.c.iq("set", f"andy@{th.DOMAIN}", f"<enable xmlns='{ns_carbons}'/>")
            self.assertEqual(th.attr(reply, "type"), "result", str(reply))
        await self.reachable(bob, f"andy@{th.DOMAIN}/a1")
        await self.reachable(a1, f"andy@{th.DOMAIN}/a2")
        await self.reachable(a1, f"bob@{th.DOMAIN}/node2")

        def inner(s, kind):
            w = s.xml.find(f"{{{ns_carbons}}}{kind}")
            return None if w is None else w.find(f"{{{ns_forward}}}forwarded/{{{th.NS_CLIENT}}}"
                                                  "message")

        await self.chat(bob, f"andy@{th.DOMAIN}/a1", "to a1 from node2")
        await self.receives(a1, "to a1 from node2")
        copy = await a2.c.expect(lambda s: inner(s, "received") is not None, "a received carbon")
        self.assertEqual(th.attr(copy, "from"), f"andy@{th.DOMAIN}")
        self.assertEqual(inner(copy, "received").findtext(f"{{{th.NS_CLIENT}}}body"),
                         "to a1 from node2")
        await self.chat(a1, f"bob@{th.DOMAIN}/node2", "from a1 on node1")
        await self.receives(bob, "from a1 on node1")
        copy = await a2.c.expect(lambda s: inner(s, "sent") is not None, "a sent carbon")
        self.assertEqual(inner(copy, "sent").get("from"), f"andy@{th.DOMAIN}/a1")

    async def test_one_to_one_presence_and_iq_across_nodes(self):
        await self.make_pair(settings=DEFAULT)
        andy = await self.on("andy", "node1")
        bob = await self.on("bob", "node2")
        a_full, b_full = f"andy@{th.DOMAIN}/node1", f"bob@{th.DOMAIN}/node2"
        # A ping to a full JID on the other node reaches the client, which answers.
        await self.reachable(andy, b_full)
        await self.reachable(bob, a_full)
        # Full JIDs, both directions.
        await self.chat(andy, b_full, "hello full")
        to_bob = await self.receives(bob, "hello full", a_full)
        await self.chat(bob, a_full, "hello back")
        to_andy = await self.receives(andy, "hello back", b_full)
        # Both users' archives (XEP-0313, the cluster database) hold both messages, whichever
        # node asks; the recipient on the other node got its own archive's id.
        for c, got in ((andy, to_andy), (bob, to_bob)):
            results, _, _ = await c.c.mam(c.c.bare)
            self.assertEqual([th.body(r[1]) for r in results], ["hello full", "hello back"])
            self.assertIn(th.stanza_ids(got, by=c.c.bare)[0], [r[0] for r in results])
        # Bare JID: every session of the user, on every node.
        bob2 = await self.on("bob", "node1", "second")
        await self.reachable(andy, f"bob@{th.DOMAIN}/second")
        await self.chat(andy, f"bob@{th.DOMAIN}", "to all of bob")
        await self.receives(bob, "to all of bob", a_full)
        await self.receives(bob2, "to all of bob", a_full)
        # An unknown resource falls back to the bare JID (RFC 6121 8.5.3.2.1), across nodes.
        await self.chat(bob, f"andy@{th.DOMAIN}/nowhere", "to a gone resource")
        await self.receives(andy, "to a gone resource")
        # An iq to a resource nobody has: service-unavailable from the server.
        reply = await andy.c.iq("get", f"bob@{th.DOMAIN}/nobody", "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(th.error_of(reply)[1], "service-unavailable", str(reply))
        # Directed presence across nodes, and own presence to the user's other resources.
        andy.c.send(f"<presence to={th.q(b_full)}><status>directed</status></presence>")
        await bob.c.expect(lambda s: isinstance(s, th.Presence) and th.attr(s, "from") == a_full,
                           "andy's directed presence on node2")
        bob2.c.send("<presence><status>second is here</status></presence>")
        await bob.c.expect(lambda s: isinstance(s, th.Presence)
                           and th.attr(s, "from") == f"bob@{th.DOMAIN}/second",
                           "bob's own presence from his resource on node1")
        # No such user: the sender hears so at once.
        id_ = await self.chat(andy, f"nobody-at-all@{th.DOMAIN}", "to nobody")
        err = await andy.c.expect(lambda s: th.attr(s, "id") == id_, "error for no such user")
        self.assertEqual(th.error_of(err)[1], "service-unavailable", str(err))
        # A user who is offline gets it at login, on whichever node (XEP-0160).
        await self.chat(andy, f"catherine@{th.DOMAIN}", "while you were out")
        await andy.c.iq_ok("get", th.DOMAIN, "<ping xmlns='urn:xmpp:ping'/>")  # stored by now
        catherine = await self.on("catherine", "node1", "later")
        catherine.c.send("<presence/>")
        await self.receives(catherine, "while you were out", a_full)
        # bob's node-2 session ends: a chat message to it reaches his node-1 session, whether
        # node1 already heard of the end (bare JID here) or not (node2 falls back to node1).
        await bob.close()
        await self.chat(andy, b_full, "after close")
        await self.receives(bob2, "after close", a_full)

    async def test_the_newer_session_of_a_full_jid_wins_across_nodes(self):
        await self.make_pair(settings=DEFAULT)
        old = await self.on("andy", "node1", "same")
        new = await self.on("andy", "node2", "same")
        await old.wait_moved(10)
        self.assertTrue(any("conflict" in line for line in old.trace)
                        or not old.connected, "the old session was not replaced")
        bob = await self.on("bob", "node1")
        await self.reachable(bob, f"andy@{th.DOMAIN}/same")
        await self.chat(bob, f"andy@{th.DOMAIN}/same", "to the newest")
        await self.receives(new, "to the newest")
        self.assertTrue(new.connected, "the newer session must stay")

    async def test_kill_9_users_of_the_dead_node_are_served_on_the_survivor(self):
        pair = await self.make_pair(settings=DEFAULT)
        andy = await self.on("andy", "node1")
        bob = await self.on("bob", "node1")
        cat = await self.on("catherine", "node2")
        rooms = (await self.rooms_on(cat, "node1")) + (await self.rooms_on(cat, "node2"))
        for c in (andy, bob):
            for r in rooms:
                await c.join(r)
        said = []
        for r in rooms:
            for c in (andy, bob, cat):
                text_ = f"before from {c.user} in {r}"
                await self.say(c, r, text_)
                said.append((r, text_))
        await asyncio.to_thread(pair.n1.kill)
        await self.wait_states({"node2": (RIBM, "Peer Down")}, timeout=15)
        for c in (andy, bob):
            await c.reconnect_if_needed(deadline=time.monotonic() + 20)
            self.assertEqual(c.node, "node2")
        for r in rooms:
            for c in (andy, bob, cat):
                text_ = f"after from {c.user} in {r}"
                await self.say_or_rejoin(c, r, text_)
                said.append((r, text_))
        await self.reachable(cat, f"andy@{th.DOMAIN}/node1")
        await self.chat(cat, f"andy@{th.DOMAIN}", "one to one after the kill")
        await self.receives(andy, "one to one after the kill")
        for r in rooms:
            self.assert_in_order(await self.history(cat, r), [t for rr, t in said if rr == r],
                                 f"MAM of {r}")

    async def test_a_failed_over_node_sends_its_logins_to_its_backup(self):
        await self.make_pair(settings=DEFAULT)
        await self.actl_ok("service", "stop", "text-conference", "--node", "node1")
        await self.wait_states({"node2": (RIBM, "Critical Service Down")}, timeout=15)
        c = await self.login("andy", self.port("node1"))
        self.assertEqual(c.node, "node2", "a login on the failed-over node must be sent on")
        self.assertTrue(c.redirects, "no see-other-host from the failed-over node")
        await self.actl_ok("service", "start", "text-conference", "--node", "node1")
        await self.wait_states({"node1": ("Failed Over", None)}, timeout=15)
        await self.actl_ok("ha", "fallback", "node1")
        await self.wait_states({"node1": NORMAL, "node2": NORMAL}, timeout=15)


if __name__ == "__main__":
    unittest.main()
