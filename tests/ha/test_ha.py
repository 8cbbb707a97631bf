# SPDX-License-Identifier: Apache-2.0
"""High-availability integration tests: a pair of tcbroker nodes on one shared database, SRM
with sub-second settings, driven through tcctl, the admin API and slixmpp clients.

Each test starts its own pair (TC_MUC_BACKEND picks SQLite or PostgreSQL, as for the MUC
suites). Every wait polls against a deadline (50 ms); a whole test is bounded by
TEST_TIMEOUT. On failure both nodes' logs and the clients' stanza traces are printed.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/ha -v
"""

import asyncio
import json
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import haharness as hh  # noqa: E402
from haharness import th  # noqa: E402

DRILL = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "tc-drill")

CSD = "Critical Service Down"
FOCSNR = "Failed Over with Critical Services not Running"
RIBM = "Running in Backup Mode"
OAR = "On Admin Request"
NORMAL = ("Normal", "Normal")

# Accounts of every pair; tests pick the ones the assignment puts on the node they need.
CANDIDATES = ("andy", "bob", "catherine", "deborah", "ed", "fay", "gus", "hal", "ivy", "jo")


class HaTestCase(th.MucTestCase):
    OWN_BROKER = False
    TEST_TIMEOUT = 150.0

    def setUp(self):
        super().setUp()
        self.pairs = []

    def tearDown(self):
        if self._failed():
            for p in self.pairs:
                print(f"\n===== {self.id()}: pair {p.dir} =====\n{p.logs()}", file=sys.stderr,
                      flush=True)
        super().tearDown()
        for p in self.pairs:
            p.close()

    async def asyncTearDown(self):
        for c in getattr(self, "ha_clients", []):
            c.abort()
        await super().asyncTearDown()

    async def make_pair(self, start=True, **kw):
        kw.setdefault("users", CANDIDATES)
        pair = await asyncio.to_thread(hh.Pair, th.BACKEND, **kw)
        self.pairs.append(pair)
        if start:
            await asyncio.to_thread(pair.start, True, 30.0)
        self.pair = pair
        return pair

    async def login(self, user, port=None, resource="r"):
        c = hh.HaClient(self.pair, user, resource, trace=self.trace)
        if not hasattr(self, "ha_clients"):
            self.ha_clients = []
        self.ha_clients.append(c)
        await c.connect(port, deadline=time.monotonic() + 30)
        return c

    async def users_on(self, want):
        """Logs in candidates until `want` {node: count} is met; returns {node: [HaClient]}."""
        got = {n: [] for n in want}
        for user in CANDIDATES:
            if all(len(got[n]) >= k for n, k in want.items()):
                break
            c = await self.login(user)
            if c.node in got and len(got[c.node]) < want[c.node]:
                got[c.node].append(c)
            else:
                c.abort()
        for n, k in want.items():
            self.assertGreaterEqual(len(got[n]), k, f"not enough candidates assigned to {n}: "
                                                    f"{ {x: [c.user for c in v] for x, v in got.items()} }")
        return got

    async def wait_states(self, expect, timeout=15.0, seen=None):
        return await asyncio.to_thread(self.pair.wait_states, expect, timeout, "states", seen)

    def ctl(self, *args, node="node1"):
        return self.pair.nodes[node].ctl(*args)

    async def actl(self, *args, node="node1"):
        return await asyncio.to_thread(self.ctl, *args, node=node)

    async def actl_ok(self, *args, node="node1"):
        done = await self.actl(*args, node=node)
        self.assertEqual(done.returncode, 0, f"tcctl {' '.join(args)} failed:\n"
                                             f"{done.stdout}{done.stderr}")
        return done.stdout

    async def actl_refused(self, *args, node="node1"):
        done = await self.actl(*args, node=node)
        self.assertEqual(done.returncode, 1, f"tcctl {' '.join(args)} should be refused "
                                             f"(exit 1):\n{done.stdout}{done.stderr}")
        self.assertTrue((done.stdout + done.stderr).strip(),
                        f"tcctl {' '.join(args)} refused without a message")
        return done.stdout + done.stderr

    async def rooms_on(self, owner, node, count=1, tries=24):
        """Creates rooms until `count` are hosted on `node` (joined by `owner`). A room that
        lands on the other node is left again; only the wanted ones must answer the join."""
        found = []
        for _ in range(tries):
            room = self.room()
            owner.c.send_join(room, owner.user, history={"maxstanzas": 0})
            hosts = await hh.poll_until(lambda room=room: self.pair.room_hosts().get(room), 10,
                                        f"{room} listed by a node's /api/v1/rooms")
            self.assertEqual(len(hosts), 1, f"{room} is hosted by {hosts}")
            if hosts[0] != node:
                owner.c.send(f"<presence to={th.q(room + '/' + owner.user)} "
                             f"type='unavailable'/>")
                continue
            full = f"{room}/{owner.user}"
            p = await owner.c.expect(lambda s: isinstance(s, th.Presence)
                                     and th.attr(s, "from") == full
                                     and (th.attr(s, "type") == "error"
                                          or 110 in th.status_codes(s)),
                                     f"self-presence from {full} (hosted on {node})")
            self.assertNotEqual(th.attr(p, "type"), "error", f"join {room}: {p}")
            self.assertIn(201, th.status_codes(p), f"{room} should be new")
            owner.rooms[room] = owner.user
            found.append(room)
            if len(found) == count:
                return found
        self.fail(f"no room hosted on {node} after {tries} rooms")

    async def status(self, node="node2"):
        return await asyncio.to_thread(self.pair.nodes[node].status)

    async def say(self, c, room, text_):
        reflected = await c.c.say(room, text_)
        self.assertEqual(th.body(reflected), text_)
        return reflected

    async def sees(self, c, room, text_):
        return await c.c.expect(lambda s: th.is_groupchat(body_text=text_)(s)
                                and (th.attr(s, "from") or "").startswith(room + "/"),
                                f"{text_!r} in {room}")

    async def say_or_rejoin(self, c, room, text_):
        """Says `text_` in `room`; if the room no longer counts `c` as an occupant (dropped
        while the link was down), joins again first. The message must be reflected."""
        id_ = c.c.send_groupchat(room, text_)
        reply = await c.c.expect(lambda s: isinstance(s, th.Message) and th.attr(s, "id") == id_,
                                 f"reflection or error of {id_} in {room}")
        if th.attr(reply, "type") == "error":
            self.assertEqual(th.error_of(reply)[1], "not-acceptable", f"{room}: {reply}")
            await c.join(room)
            reply = await self.say(c, room, text_)
        self.assertEqual(th.body(reply), text_)
        return reply

    async def history(self, c, room):
        return [b for _aid, b, _f in await c.mam_all(room) if b is not None]

    def assert_in_order(self, have, want, what):
        pos = [have.index(w) if w in have else -1 for w in want]
        self.assertNotIn(-1, pos, f"{what}: missing {[w for w, p in zip(want, pos) if p < 0]} "
                                  f"in {have}")
        self.assertEqual(pos, sorted(pos), f"{what}: out of order: {have}")
        self.assertEqual(len(have), len(set(have)), f"{what}: duplicates in {have}")


class WalkThrough(HaTestCase):
    """The seed's canonical drill (SPEC.md section 5), with Andy on node1 and Bob on node2."""

    async def test_service_down_failover_and_manual_fallback(self):
        pair = await self.make_pair()
        users = await self.users_on({"node1": 1, "node2": 1})
        andy, bob = users["node1"][0], users["node2"][0]
        [room] = await self.rooms_on(andy, "node1")
        await bob.join(room)
        said = []

        async def chat(tag):
            for c, other in ((andy, bob), (bob, andy)):
                text_ = f"{tag} from {c.user}"
                await self.say(c, room, text_)
                await self.sees(other, room, text_)
                said.append(text_)

        await chat("before")
        bob_session = bob.c

        # The text-conference service on node1 fails (stopped by hand, as drills do).
        await self.actl_ok("service", "stop", "text-conference", "--node", "node1")
        await self.wait_states({"node1": (FOCSNR, CSD), "node2": (RIBM, CSD)}, timeout=15)
        st = await self.status("node2")
        # SPEC.md section 4: fallback from Idle / Failed Over, not while services are down.
        self.assertNotIn("node1", st["allowed"]["fallback"], f"fallback allowed too early: {st}")
        await self.actl_refused("ha", "fallback", "node1")

        # Andy is told to go to node2 and logs in there after the re-login delay.
        await andy.wait_moved(10)
        self.assertTrue(andy.redirects, "andy was disconnected without see-other-host")
        self.assertEqual(andy.redirects[-1][2], ("127.0.0.1", pair.n2.client_port),
                         f"see-other-host should name node2: {andy.redirects[-1]}")
        await andy.reconnect_if_needed(deadline=time.monotonic() + 20)
        self.assertEqual(andy.node, "node2")
        # Bob (node2's own user) was not disconnected and is still in the room.
        self.assertIs(bob.c, bob_session)
        self.assertTrue(bob.connected)
        rooms2 = await asyncio.to_thread(pair.n2.rooms)
        self.assertIn(room, rooms2, "node2 should host node1's room now")

        await chat("during failover")
        for c in (andy, bob):
            self.assert_in_order(await self.history(c, room), said, f"{c.user}'s MAM")

        # The service comes back: ready for a manual fallback.
        await self.actl_ok("service", "start", "text-conference", "--node", "node1")
        await self.wait_states({"node1": ("Failed Over", None), "node2": (RIBM, None)},
                               timeout=15)
        st = await self.status("node2")
        self.assertIn("node1", st["allowed"]["fallback"], f"fallback should be allowed: {st}")
        await self.actl_ok("ha", "fallback", "node1")
        await self.wait_states({"node1": NORMAL, "node2": NORMAL}, timeout=20)

        # Andy goes home; the room is hosted on node1 again; Bob stayed.
        await andy.wait_moved(10)
        self.assertEqual(andy.redirects[-1][2], ("127.0.0.1", pair.n1.client_port))
        await andy.reconnect_if_needed(deadline=time.monotonic() + 20)
        self.assertEqual(andy.node, "node1")
        await hh.poll_until(lambda: room in (pair.n1.rooms() or ())
                            and room not in (pair.n2.rooms() or ()), 10,
                            f"{room} back on node1 only")
        self.assertIs(bob.c, bob_session)
        await chat("after fallback")
        for c in (andy, bob):
            self.assert_in_order(await self.history(c, room), said, f"{c.user}'s MAM")


class LinkCut(HaTestCase):
    """A cut node-to-node link: both nodes still hold their leases in the shared database, so
    nobody takes over and no room is hosted twice (SPEC.md section 5, no split brain)."""

    async def test_link_cut_no_takeover_no_split_brain(self):
        pair = await self.make_pair()
        users = await self.users_on({"node1": 1, "node2": 1})
        a = users["node1"][0]
        rooms = (await self.rooms_on(a, "node1", 2)) + (await self.rooms_on(a, "node2", 2))
        for node in pair.nodes.values():
            code, body_ = await asyncio.to_thread(node.api, "POST", "/api/v1/ha/link",
                                                  {"cut": True})
            self.assertEqual(code, 200, f"{node.name}: link cut: {body_}")

        def both_unreachable():
            for name, node in pair.nodes.items():
                st = node.status()
                peer = hh.node_entry(st, "node2" if name == "node1" else "node1")
                if peer is None or peer.get("reachable") is not False:
                    return False
            return True
        await hh.poll_until(both_unreachable, 10, "both nodes report the peer unreachable")

        # Observe for several heartbeat timeouts: no takeover, no room on both nodes.
        seen, overlaps, deadline = set(), set(), time.monotonic() + 3.0
        while time.monotonic() < deadline:
            states = await asyncio.to_thread(pair.states)
            seen.update((n, s) for n, s in states.items())
            hosts = await asyncio.to_thread(pair.room_hosts)
            overlaps.update(r for r, ns in hosts.items() if len(ns) > 1)
            await asyncio.sleep(hh.POLL)
        takeovers = [x for x in seen if x[1][0] in hh.TAKEOVER_STATES | {"Failing Over", "Idle"}]
        self.assertEqual(takeovers, [], f"a node took over during the cut: {seen}")
        self.assertEqual(overlaps, set(), "rooms hosted by both nodes during the cut")
        hosts = await asyncio.to_thread(pair.room_hosts)
        for r in rooms:
            # At most one host (a room whose occupants left may unload: zero is fine).
            self.assertLessEqual(len(hosts.get(r, [])), 1, f"{r} during the cut: {hosts.get(r)}")

        for node in pair.nodes.values():
            code, body_ = await asyncio.to_thread(node.api, "POST", "/api/v1/ha/link",
                                                  {"cut": False})
            self.assertEqual(code, 200, f"{node.name}: link restore: {body_}")
        await self.wait_states({"node1": NORMAL, "node2": NORMAL}, timeout=15)
        await hh.poll_until(lambda: not both_unreachable() and all(
            (hh.node_entry(n.status(), o) or {}).get("reachable") is True
            for n, o in ((pair.n1, "node2"), (pair.n2, "node1"))), 10, "peers reachable again")
        for r in rooms:
            await self.say_or_rejoin(a, r, f"after the cut in {r}")


@unittest.skipUnless(hh.NetCut.available(), "needs root and nft (Debian package nftables)")
class NetworkCut(HaTestCase):
    """A real cut of the network between the nodes (nftables drops the SRM ports' packets, both
    directions; no socket is closed): no takeover, no split brain, a session with a stanza in
    flight to the far node is answered instead of freezing, and the link is back within about
    a second of the network."""

    async def test_real_cut_never_freezes_a_session_and_the_link_returns_fast(self):
        await self.cut_scenario(one_way=False)

    async def test_one_way_cut_is_handled_like_a_cut(self):
        """Only what node1 sends to node2 is lost; node2's heartbeats still reach node1. node2
        says in its heartbeats that it does not hear node1, so node1 stops sending into the
        void as well."""
        await self.cut_scenario(one_way=True)

    async def cut_scenario(self, one_way):
        pair = await self.make_pair()
        users = await self.users_on({"node1": 1})
        a = users["node1"][0]
        [own] = await self.rooms_on(a, "node1")
        [far] = await self.rooms_on(a, "node2")
        await self.say(a, own, "before, own")
        await self.say(a, far, "before, far")
        cut = (hh.NetCut([pair.n2.srm_port], one_way=True) if one_way
               else hh.NetCut([pair.n1.srm_port, pair.n2.srm_port]))
        self.addCleanup(cut.heal)
        cut.cut()
        timeout = float(hh.FAST_SETTINGS["heartbeat_timeout"])

        # A stanza for the far room goes into the silent link: its sender must hear back within
        # the heartbeat timeout (plus one heartbeat period and scheduling on 2 busy cores: 2 s),
        # not when the cut ends.
        t0 = time.monotonic()
        id_ = a.c.send_groupchat(far, "during the cut, far")
        reply = await a.c.expect(lambda s: th.attr(s, "id") == id_, "an answer for the far room",
                                 timeout=timeout + 2.0)
        waited = time.monotonic() - t0
        self.assertEqual(th.attr(reply, "type"), "error", f"far room during the cut: {reply}")
        self.assertEqual(th.error_of(reply)[1], "recipient-unavailable", str(reply))
        # Meanwhile and afterwards the own room keeps going: every message reflected, none
        # waiting behind the far one.
        slowest = 0.0
        for i in range(20):
            t1 = time.monotonic()
            await a.c.say(own, f"during the cut, own {i}", timeout=timeout + 2.0)
            slowest = max(slowest, time.monotonic() - t1)
        self.assertLess(slowest, 1.0, "an own-room message waited behind the cut link")

        def both_see_the_peer_normal_but_unreachable():
            for name, node in pair.nodes.items():
                peer = hh.node_entry(node.status(), "node2" if name == "node1" else "node1")
                if (peer is None or peer.get("reachable") is not False
                        or peer.get("state") != "Normal"):
                    return False
            return True
        await hh.poll_until(both_see_the_peer_normal_but_unreachable, 10,
                            "both nodes show their peer Normal and unreachable (last known)")
        # Once node1 knows node2 is alive behind the cut (it renews its lease), it tells its
        # users they are out of node2's rooms (333) and answers stanzas for them at once.
        await a.c.expect(lambda s: isinstance(s, th.Presence)
                         and (th.attr(s, "from") or "").startswith(far + "/")
                         and th.attr(s, "type") == "unavailable" and 333 in th.status_codes(s),
                         "status 333 from the far room", timeout=10)
        t2 = time.monotonic()
        id_ = a.c.send_groupchat(far, "during the cut, far, again")
        reply = await a.c.expect(lambda s: th.attr(s, "id") == id_, "an answer for the far room",
                                 timeout=5)
        immediate = time.monotonic() - t2
        self.assertEqual(th.error_of(reply)[1], "recipient-unavailable", str(reply))
        # Not parked (that would hold the session for twice the timeout plus 1 s): 0.5 s is
        # only scheduling on 2 busy cores.
        self.assertLess(immediate, 0.5, f"the far room's error took {immediate:.2f} s")
        states = await asyncio.to_thread(pair.states)
        self.assertEqual(states, {"node1": NORMAL, "node2": NORMAL}, "a takeover during the cut")
        hosts = await asyncio.to_thread(pair.room_hosts)
        self.assertLessEqual(len(hosts.get(far, [])), 1, f"{far} hosted twice: {hosts}")

        cut.heal()
        t_heal = time.monotonic()
        await hh.poll_until(pair.peers_reachable, 10, "peers reachable again")
        relinked = time.monotonic() - t_heal
        # The far room may still say "unreachable" for a heartbeat or two after the peers see
        # each other (type wait: a client tries again), then it must take the message.
        deadline = t_heal + 5.0
        while True:
            try:
                await self.say_or_rejoin(a, far, "after the cut, far")
                break
            except AssertionError as e:
                if "recipient-unavailable" not in str(e) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(hh.POLL)
        answered = time.monotonic() - t_heal
        # The link is dialled afresh every connect timeout (min(heartbeat timeout, 1 s)), so it
        # returns within about that once packets flow; 2.5 s leaves room for 2 busy cores.
        self.assertLess(relinked, 2.5, f"the peers found each other {relinked:.2f} s after")
        self.assertLess(answered, 3.5, f"the far room answered {answered:.2f} s after the cut")
        self.assert_in_order(await self.history(a, far), ["before, far", "after the cut, far"],
                             "far room history")
        kind = "one-way" if one_way else "network"
        print(f"\n{kind} cut: far-room answer after {waited:.2f} s (then {immediate:.3f} s), "
              f"slowest own-room "
              f"reflection {slowest * 1000:.0f} ms, link back {relinked:.2f} s and far room "
              f"answering {answered:.2f} s after the heal", file=sys.stderr)


class StartupErrors(HaTestCase):
    """A port already taken stops start-up with an error naming it, and the node exits cleanly
    (its admin server was already listening: once, its accept loop ran after it was freed)."""

    async def test_srm_port_taken(self):
        import socket
        pair = await self.make_pair(start=False)
        node = pair.n1
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", node.srm_port))
            squatter.listen()
            node.spawn()
            code = await asyncio.to_thread(node.proc.wait, th.PROCESS_TIMEOUT)
        log = node.log_tail()
        self.assertNotEqual(code, 0, log)
        self.assertIn(f"cannot listen on the SRM service port 127.0.0.1:{node.srm_port}", log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error", log)


class ManualOperations(HaTestCase):
    """Manual failover, fallback and recover through tcctl, and their refusals (SPEC.md
    section 4)."""

    async def test_failover_fallback_recover(self):
        pair = await self.make_pair()
        await self.actl_refused("ha", "fallback", "node1")
        await self.actl_refused("ha", "recover", pair.group)
        st = json.loads(await self.actl_ok("ha", "status", "--json"))
        self.assertEqual(st["allowed"]["fallback"], [], st)
        self.assertFalse(st["allowed"]["recover"], st)
        self.assertIn("node1", st["allowed"]["failover"], st)
        self.assertTrue(st["group"]["ha_enabled"], st)

        users = await self.users_on({"node1": 1})
        a = users["node1"][0]
        [room] = await self.rooms_on(a, "node1")
        await self.say(a, room, "before manual failover")

        await self.actl_ok("ha", "failover", "node1")
        await self.wait_states({"node1": ("Idle", OAR), "node2": (RIBM, OAR)}, timeout=15)
        await a.wait_moved(10)
        await a.reconnect_if_needed(deadline=time.monotonic() + 20)
        self.assertEqual(a.node, "node2")
        await self.say(a, room, "while node1 is idle")
        self.assert_in_order(await self.history(a, room),
                             ["before manual failover", "while node1 is idle"], "MAM")
        # A second failover, a recover and new accounts are refused while failed over.
        await self.actl_refused("ha", "failover", "node1")
        await self.actl_refused("ha", "recover", pair.group)
        await self.actl_refused("users", "add", "newcomer", "--password", "pw", node="node2")
        st = json.loads(await self.actl_ok("ha", "status", "--json", node="node2"))
        self.assertIn("node1", st["allowed"]["fallback"], st)
        self.assertEqual(st["allowed"]["failover"], [], st)
        code, body_ = await asyncio.to_thread(pair.n2.api, "POST", "/api/v1/ha/failover",
                                              {"node": "node1"})
        self.assertEqual(code, 409, body_)
        self.assertTrue(body_.get("error"), body_)

        await self.actl_ok("ha", "fallback", "node1")
        await self.wait_states({"node1": NORMAL, "node2": NORMAL}, timeout=20)
        await a.wait_moved(10)
        await a.reconnect_if_needed(deadline=time.monotonic() + 20)
        self.assertEqual(a.node, "node1")
        await self.say(a, room, "after manual fallback")
        await self.actl_refused("ha", "fallback", "node1")

        # /metrics: each node timed the failover phases it went through, the room's host
        # its commits, the backup the MAM query it answered.
        def series(node):
            code, text = node.api("GET", "/metrics")
            self.assertEqual(code, 200, text)
            out = {}
            for line in text.splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    out[name] = float(value)
            return out
        m1 = await asyncio.to_thread(series, pair.n1)
        m2 = await asyncio.to_thread(series, pair.n2)
        for m, phase in ((m1, "Failing Over"), (m1, "Taking Back"), (m2, "Taking Over"),
                         (m2, "Falling Back")):
            key = f'tc_srm_phase_seconds_count{{phase="{phase}"}}'
            self.assertGreaterEqual(m.get(key, 0), 1, (key, sorted(m)))
            inf = f'tc_srm_phase_seconds_bucket{{phase="{phase}",le="+Inf"}}'
            self.assertEqual(m[inf], m[key], key)
        self.assertGreaterEqual(m1["tc_room_commit_seconds_count"], 2, m1)
        self.assertGreaterEqual(m2["tc_room_commit_seconds_count"], 1, m2)
        self.assertGreaterEqual(m2["tc_mam_query_seconds_count"], 1, m2)
        self.assertGreaterEqual(m1["tc_fanout_seconds_count"], 1, m1)
        self.assertEqual(m1['tc_srm_state{group="%s",node="node1",state="Normal",'
                            'reason="Normal"}' % pair.group], 1, m1)


class HaOff(HaTestCase):
    async def test_ha_off_unknown_and_refused(self):
        pair = await self.make_pair(ha=False, users=("andy",))
        states = await asyncio.to_thread(pair.states)
        self.assertEqual(states["node1"][0], "Unknown", states)
        self.assertEqual(states["node2"][0], "Unknown", states)
        st = json.loads(await self.actl_ok("ha", "status", "--json"))
        self.assertFalse(st["group"]["ha_enabled"], st)
        self.assertEqual(st["allowed"]["failover"], [], st)
        await self.actl_refused("ha", "failover", "node1")
        code, body_ = await asyncio.to_thread(pair.n1.api, "POST", "/api/v1/ha/failover",
                                              {"node": "node1"})
        self.assertEqual(code, 409, body_)
        # Still serving: nothing failed over.
        c = await self.login("andy")
        self.assertIn(c.node, ("node1", "node2"))
        states = await asyncio.to_thread(pair.states)
        self.assertEqual(states["node1"][0], "Unknown", states)


class AutomaticFallback(HaTestCase):
    async def test_automatic_fallback(self):
        pair = await self.make_pair(settings={"auto_fallback": "true",
                                              "auto_fallback_delay": "1"})
        await self.actl_ok("service", "stop", "text-conference", "--node", "node1")
        await self.wait_states({"node1": (FOCSNR, CSD), "node2": (RIBM, CSD)}, timeout=15)
        await self.actl_ok("service", "start", "text-conference", "--node", "node1")
        seen = []
        # Poll faster than usual: the transient Taking Back / Automatic Fallback may be short.
        deadline = time.monotonic() + 30
        while True:
            states = await asyncio.to_thread(pair.states)
            if not seen or seen[-1] != states:
                seen.append(states)
            # The transient Taking Back / Automatic Fallback may pass between two polls: the
            # return to Normal by itself is what must happen.
            if any(s[1] == "Automatic Fallback" for s in states.values()) or (
                    len(seen) > 1 and all(v == ("Normal", "Normal") for v in states.values())):
                break
            self.assertLess(time.monotonic(), deadline,
                            f"reason never showed Automatic Fallback: {seen}")
            await asyncio.sleep(0.02)
        await self.wait_states({"node1": NORMAL, "node2": NORMAL}, timeout=20, seen=seen)
        auto = [s for s in seen if any(x[1] == "Automatic Fallback" for x in s.values())]
        self.assertTrue(all(x[0] in ("Taking Back", "Falling Back", "Failed Over", RIBM,
                                     "Normal") for s in auto for x in s.values()),
                        f"unexpected states during the automatic fallback: {seen}")
        # Between two polls or not, the reason must have passed through Automatic Fallback:
        # in a status sample or in SRM's transition log ("srm: A / R -> B / Automatic
        # Fallback"), which logs every state change.
        in_log = [line for n in pair.nodes.values() for line in n.log_tail(400).splitlines()
                  if "srm:" in line and "-> " in line
                  and line.split("-> ", 1)[1].strip().endswith("/ Automatic Fallback")]
        self.assertTrue(auto or in_log,
                        f"the reason never was Automatic Fallback: status samples {seen}")


class Drills(HaTestCase):
    """tools/tc-drill for each fault on this suite's backend (PostgreSQL adds db-stop)."""

    TEST_TIMEOUT = 300.0

    def drill(self, fault, backend=None, *extra):
        backend = backend or th.BACKEND
        if backend == "postgresql" and os.environ.get("TC_SKIP_PG") == "1":
            self.skipTest("TC_SKIP_PG=1")
        tcbroker, tcctl = hh.tool_paths()
        argv = [sys.executable, "-B", DRILL, "--fault", fault, "--backend", backend,
                "--tcbroker", tcbroker, "--tcctl", tcctl, "--deadline", "240", *extra]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=280,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.fail(f"tc-drill --fault {fault} did not finish (its own deadline is 240 s):"
                      f" {e.stderr}")
        try:
            report = json.loads(done.stdout)
        except ValueError:
            self.fail(f"tc-drill printed no JSON (exit {done.returncode}):\n{done.stdout}\n"
                      f"{done.stderr}")
        printable = json.dumps({k: v for k, v in report.items() if k != "logs"}, indent=1)
        print(f"\ntc-drill --fault {fault} --backend {backend}: "
              f"{json.dumps({k: report.get(k) for k in ('ok', 'acknowledged', 'lost', 'duplicates', 'errors', 'time_to_detect_ms', 'time_to_rooms_available_ms', 'final_states')})}",
              file=sys.stderr, flush=True)
        self.assertNotIn("error", report, printable + "\n" + json.dumps(report.get("logs")))
        self.assertEqual(report["lost"], 0, printable)
        self.assertGreater(report["acknowledged"], 0, printable)
        self.assertTrue(report["ok"], printable + "\n" + json.dumps(report.get("logs")))
        self.assertEqual(done.returncode, 0, printable)
        self.assertIsNotNone(report["time_to_detect_ms"], printable)
        self.assertIsNotNone(report["time_to_rooms_available_ms"], printable)
        start = report["time_to_detect_ms"]
        if fault in ("db-stop", "db-cut", "link-cut"):
            # db-stop: no room can answer before the database is back; link-cut: a room
            # whose occupants are all on the other node cannot either before the link is;
            # db-cut: node2 serves node1's rooms within a second (time_to_all_rooms_loaded_ms),
            # but a client whose login to node1 began before node2 held node1's partition
            # waits in authentication for node1's database (not time-bounded yet), so its
            # sample room may come back only when the cut ends.
            start = max(start, report["time_fault_cleared_ms"])
        self.assertLessEqual(report["time_to_rooms_available_ms"] - start, 2000, printable)
        # Every room node1 hosted (not only the chatted-in sample) answers again.
        self.assertGreater(report["rooms_on_failed_node"], 0, printable)
        self.assertEqual(report["rooms_never_answered"], 0, printable)
        self.assertLessEqual(report["time_to_all_rooms_answer_ms"] - start, 2000, printable)
        if fault not in ("db-stop", "link-cut"):
            # node1's rooms moved: every one of them is live on node2 (the takeover loads
            # them all), not only those someone asked for.
            self.assertIsNotNone(report["time_to_all_rooms_loaded_ms"], printable)
        return report

    def test_drill_sigkill(self):
        r = self.drill("sigkill")
        self.assertEqual(r["final_states"]["node2"], [RIBM, "Peer Down"])

    def test_drill_sigterm(self):
        r = self.drill("sigterm")
        self.assertEqual(r["final_states"]["node2"], [RIBM, "Peer Reboot"])

    def test_drill_service_stop(self):
        r = self.drill("service-stop")
        self.assertEqual(r["final_states"], {"node1": [FOCSNR, CSD], "node2": [RIBM, CSD]})
        self.assertGreater(r["clients_moved"], 0, r)

    def test_drill_link_cut(self):
        r = self.drill("link-cut")
        # Normal on both; the reason may say a lease renewal missed its window under load and
        # the node took its own partition back (tools/tc-drill, EXPECTED["link-cut"]).
        for node in ("node1", "node2"):
            self.assertEqual(r["final_states"][node][0], "Normal", r["final_states"])
            self.assertIn(r["final_states"][node][1],
                          ("Normal", "Database Failure Auto-Recovery"), r["final_states"])
        self.assertEqual(r["rooms_hosted_twice"], [])
        self.assertGreater(r["room_samples"], 10, r)
        self.assertEqual(r["peer_unreachable_seen"], {"node1": True, "node2": True}, r)
        if hh.NetCut.available():
            # A real cut (nftables), and the liveness the issue asks for: every room keeps
            # acknowledging its own node's senders (no gap over 2 s), and the peers are back
            # within 1.5 s of the network.
            self.assertEqual(r["cut"], "net", r)
            self.assertIsNotNone(r["longest_own_node_silence_ms"], r)
            self.assertLessEqual(r["longest_own_node_silence_ms"], 2000, r)
            self.assertIsNotNone(r["time_to_peers_reachable_ms"], r)
            self.assertLessEqual(r["time_to_peers_reachable_ms"], 1500, r)

    def test_drill_db_cut(self):
        """node1 alone cut from PostgreSQL (nftables drops its packets to the database; node2
        and the peer link untouched): node2 takes node1's rooms and users once node1's lease
        lapses, nothing acknowledged is lost, and node1 waits for a fallback."""
        if th.BACKEND != "postgresql":
            self.skipTest("db-cut runs in the postgresql suite")
        if not hh.DbCut.available():
            self.skipTest("needs root, nft and a writable cgroup v2 hierarchy")
        r = self.drill("db-cut", "postgresql")
        self.assertEqual(r["final_states"]["node2"], [RIBM, "Database Failure"], r)
        self.assertEqual(r["final_states"]["node1"][0], "Failed Over", r)
        self.assertIsNotNone(r["time_to_all_rooms_loaded_ms"], r)
        self.assertGreater(r["rooms_on_failed_node"], 0, r)

    def test_drill_db_stop(self):
        if th.BACKEND != "postgresql":
            self.skipTest("db-stop runs in the postgresql suite")
        r = self.drill("db-stop", "postgresql")
        for node in ("node1", "node2"):
            self.assertEqual(r["final_states"][node][0], "Normal", r["final_states"])
            self.assertIn(r["final_states"][node][1],
                          ("Normal", "Database Failure Auto-Recovery"), r["final_states"])


if __name__ == "__main__":
    unittest.main()
