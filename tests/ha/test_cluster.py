# SPDX-License-Identifier: Apache-2.0
"""A cluster of redundancy groups serving one domain (SPEC.md section 1): up to three pairs,
each on its own database, one cluster database. Users on any node join rooms hosted on any
node of any group, read the same history and keep posting while a room's group fails over.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/ha \\
      -p test_cluster.py -v
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

import clusterharness as ch  # noqa: E402
import haharness as hh  # noqa: E402
from haharness import th  # noqa: E402
from test_ha import HaTestCase, CANDIDATES, CSD, FOCSNR, RIBM  # noqa: E402


class ClusterTestCase(HaTestCase):
    TEST_TIMEOUT = 240.0

    async def make_cluster(self, groups=3, start=True, **kw):
        kw.setdefault("users", CANDIDATES)
        cluster = await asyncio.to_thread(ch.Cluster, th.BACKEND, groups, **kw)
        self.pairs.append(cluster)
        self.pair = cluster  # HaClient and the helpers of HaTestCase find the nodes here
        if start:
            await asyncio.to_thread(cluster.start)
        return cluster

    async def on(self, user, node, resource=None):
        """`user` logged in on `node` and served there."""
        c = await self.login(user, self.pair.nodes[node].client_port, resource or node)
        self.assertEqual(c.node, node, f"{user} asked for {node}, served by {c.node}")
        self.assertEqual(c.redirects, [], f"{user} was redirected: {c.redirects}")
        return c

    async def room_on(self, owner, node, tries=60):
        """A new room (joined by `owner`) hosted on `node`: rooms are placed by hashing, so
        names are tried until one lands there. A room that lands elsewhere is left again."""
        for _ in range(tries):
            room = self.room()
            owner.c.send_join(room, owner.user, history={"maxstanzas": 0})
            hosts = await hh.poll_until(lambda room=room: self.pair.room_hosts().get(room), 10,
                                        f"{room} listed by a node's /api/v1/rooms")
            self.assertEqual(len(hosts), 1, f"{room} is hosted by {hosts}")
            full = f"{room}/{owner.user}"
            p = await owner.c.expect(lambda s: isinstance(s, th.Presence)
                                     and th.attr(s, "from") == full
                                     and (th.attr(s, "type") == "error"
                                          or 110 in th.status_codes(s)),
                                     f"self-presence from {full}")
            self.assertNotEqual(th.attr(p, "type"), "error", f"join {room}: {p}")
            if hosts[0] != node:
                owner.c.send(f"<presence to={th.q(full)} type='unavailable'/>")
                continue
            self.assertIn(201, th.status_codes(p), f"{room} should be new")
            owner.rooms[room] = owner.user
            return room
        self.fail(f"no room hosted on {node} after {tries} rooms")

    def assert_serving(self, have, what):
        """`have` (state, reason) is Normal: the node was not disturbed (ch.SERVING)."""
        self.assertTrue(hh._matches(tuple(have), ch.SERVING), f"{what}: {have}")

    async def cluster_status(self, node):
        return await asyncio.to_thread(ch.cluster_status, self.pair.nodes[node])


class Routing(ClusterTestCase):

    async def test_users_on_every_node_chat_in_rooms_of_every_group(self):
        """Six nodes, a user on each; a room hosted in each group; everyone joins every room,
        everyone's message reaches everyone, and each room's history is the same whichever
        node it is read from. No room is hosted twice."""
        cluster = await self.make_cluster(3)
        nodes = [n for g in ch.LAYOUT.values() for n in g]
        users = [await self.on(u, n) for u, n in zip(CANDIDATES, nodes)]
        rooms = [await self.room_on(users[0], g[0]) for g in ch.LAYOUT.values()]
        for c in users[1:]:
            for r in rooms:
                await c.join_quick(r, c.user)
                c.rooms[r] = c.user
        said = {r: [] for r in rooms}
        for r in rooms:
            for c in users:
                text_ = f"{c.user} on {c.node} in {r}"
                await self.say(c, r, text_)
                said[r].append(text_)
                for other in users:
                    if other is not c:
                        await self.sees(other, r, text_)
        for c in users:
            for r in rooms:
                self.assert_in_order(await self.history(c, r), said[r], f"{c.user}'s MAM of {r}")
        hosts = await asyncio.to_thread(cluster.room_hosts)
        for r in rooms:
            self.assertEqual(len(hosts.get(r, [])), 1, f"{r}: {hosts.get(r)}")
        # The cluster status from any node: every node linked, sessions counted everywhere.
        st = await self.cluster_status("n3b")
        self.assertEqual([g["name"] for g in st["groups"]], ["g1", "g2", "g3"], st)
        by_node = {e["node"]: e for e in st["nodes"]}
        self.assertEqual(set(by_node), set(nodes), st)
        for n in nodes:
            self.assertTrue(by_node[n]["linked"], st)
            self.assert_serving((by_node[n]["state"], by_node[n]["reason"]), f"{n} in {st}")
            self.assertEqual(by_node[n]["partitions"], [n], st)
        await hh.poll_until(
            lambda: all(e["users_connected"] == 1
                        for e in (ch.cluster_status(cluster.nodes["n3b"]) or {}).get("nodes", [])),
            10, "one session counted on every node")
        table = await asyncio.to_thread(cluster.nodes["n1a"].ctl, "cluster", "status")
        self.assertEqual(table.returncode, 0, table.stdout + table.stderr)
        for n in nodes:
            self.assertIn(n, table.stdout)
        self.assertIn("6 user session(s)", table.stdout)


class Failover(ClusterTestCase):

    async def chat_until(self, chatters, room, acked, errors, stop):
        """Each chatter posts to `room` until `stop`: a message counts as acknowledged when
        its reflection comes back; an error is noted (and a dropped occupant joins again)."""

        async def sender(c):
            i = 0
            while not stop.is_set():
                text_ = f"{c.user}-{i}"
                i += 1
                id_ = c.c.send_groupchat(room, text_)
                try:
                    reply = await c.c.expect(lambda s, id_=id_: isinstance(s, th.Message)
                                             and th.attr(s, "id") == id_,
                                             f"reflection or error of {text_}", 20)
                except AssertionError as e:
                    errors.append((c.user, text_, f"no answer: {e}"[:200]))
                    continue
                if th.attr(reply, "type") == "error":
                    cond = th.error_of(reply)[1]
                    errors.append((c.user, text_, cond))
                    if cond == "not-acceptable":
                        await c.join_quick(room, c.user, timeout=10)
                    continue
                self.assertEqual(th.body(reply), text_)
                acked.append(text_)

        return [asyncio.create_task(sender(c)) for c in chatters]

    async def test_kill_room_host_while_other_groups_chat(self):
        """kill -9 of the node hosting a room while users on the other groups' nodes (and on
        its peer) chat in it: its peer takes the room over, the others keep posting through
        the move, every acknowledged message is in the archive once, no room is hosted twice,
        and the other groups' nodes stay Normal."""
        cluster = await self.make_cluster(3)
        chatters = [await self.on(u, n)
                    for u, n in zip(CANDIDATES, ("n2a", "n1b", "n2b", "n3a", "n3b"))]
        room = await self.room_on(chatters[0], "n1a")
        for c in chatters[1:]:
            await c.join_quick(room, c.user)
            c.rooms[room] = c.user
        acked, errors, stop = [], [], asyncio.Event()
        tasks = await self.chat_until(chatters, room, acked, errors, stop)
        try:
            await hh.poll_until(lambda: len(acked) >= 30, 30, "30 messages before the kill")
            before = len(acked)
            cluster.nodes["n1a"].kill()
            killed = time.monotonic()
            await asyncio.to_thread(cluster.wait_states, {"n1b": (RIBM, None)}, 20, "states",
                                    None)
            await hh.poll_until(lambda: cluster.room_hosts().get(room) == ["n1b"], 15,
                                f"{room} hosted on n1b alone")
            moved = len(acked)
            await hh.poll_until(lambda: len(acked) >= moved + 30, 30,
                                "30 messages after the takeover")
            took = time.monotonic() - killed
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in tasks:
            self.assertIsNone(t.exception(), t)
        self.assertGreater(moved, before)
        history = await self.history(chatters[2], room)
        for text_ in acked:
            self.assertEqual(history.count(text_), 1, f"{text_} in the archive: {history}")
        self.assertEqual(len(history), len(set(history)), f"duplicates: {history}")
        hosts = await asyncio.to_thread(cluster.room_hosts)
        self.assertEqual(hosts.get(room), ["n1b"], hosts)
        states = await asyncio.to_thread(cluster.states)
        for n in ("n2a", "n2b", "n3a", "n3b"):
            self.assert_serving(states[n], f"{n} in {states}")
        print(f"\n{len(acked)} acknowledged ({before} before the kill), {len(errors)} "
              f"error answers, room back and 30 more messages {took:.1f} s after the kill",
              file=sys.stderr)

    async def test_walkthrough_across_groups(self):
        """SPEC.md section 5 across groups: Andy on 1A, Bob on 1B, Catherine on 2A, Deborah
        on 2B, a room hosted on 1A. 1A's text-conference service fails, 1B takes over, Andy
        logs in again, Catherine and Deborah stay connected and keep posting; then a manual
        fallback brings the room home."""
        cluster = await self.make_cluster(2)
        # "Andy" is a user whose assigned node is 1A (balanced assignment), so that the
        # fallback sends him home; the others are wherever they log in.
        name = next(u for u in CANDIDATES if ch.owner_of(["n1a", "n1b"], u) == "n1a")
        andy = await self.on(name, "n1a")
        bob, catherine, deborah = [await self.on(u, n) for u, n in
                                   zip([u for u in CANDIDATES if u != name],
                                       ("n1b", "n2a", "n2b"))]
        everyone = (andy, bob, catherine, deborah)
        room = await self.room_on(andy, "n1a")
        for c in everyone[1:]:
            await c.join(room)
        said = []

        async def chat(tag):
            for c in everyone:
                text_ = f"{tag} from {c.user}"
                await self.say_or_rejoin(c, room, text_)
                for other in everyone:
                    if other is not c:
                        await self.sees(other, room, text_)
                said.append(text_)

        await chat("before")
        kept = {c.user: c.c for c in (bob, catherine, deborah)}
        await self.actl_ok("service", "stop", "text-conference", "--node", "n1a", node="n1a")
        await self.wait_states({"n1a": (FOCSNR, CSD), "n1b": (RIBM, CSD),
                                "n2a": ch.SERVING, "n2b": ch.SERVING}, timeout=20)
        await andy.wait_moved(10)
        await andy.reconnect_if_needed(deadline=time.monotonic() + 20)
        self.assertEqual(andy.node, "n1b")
        await hh.poll_until(lambda: cluster.room_hosts().get(room) == ["n1b"], 15,
                            f"{room} on n1b")
        await chat("during failover")
        for c in (bob, catherine, deborah):
            self.assertIs(c.c, kept[c.user], f"{c.user} was disconnected")
        await self.actl_ok("service", "start", "text-conference", "--node", "n1a", node="n1a")
        await self.wait_states({"n1a": ("Failed Over", None), "n1b": (RIBM, None)}, timeout=20)
        await self.actl_ok("ha", "fallback", "n1a", node="n1b")
        await self.wait_states({n: ch.SERVING for n in ("n1a", "n1b", "n2a", "n2b")}, timeout=20)
        await hh.poll_until(lambda: cluster.room_hosts().get(room) == ["n1a"], 15,
                            f"{room} back on n1a")
        await andy.wait_moved(10)
        await andy.reconnect_if_needed(deadline=time.monotonic() + 20)
        self.assertEqual(andy.node, "n1a")
        await chat("after fallback")
        for c in (bob, catherine, deborah):
            self.assertIs(c.c, kept[c.user], f"{c.user} was disconnected")
        for c in everyone:
            self.assert_in_order(await self.history(c, room), said, f"{c.user}'s MAM")


class Growth(ClusterTestCase):

    async def test_third_group_joins_a_running_cluster(self):
        """Adding a third group to a running two-group cluster keeps every room reachable with
        its whole archive, from the new group's nodes too; new rooms land on it as well."""
        cluster = await self.make_cluster(2)
        andy = await self.on("andy", "n1a")
        rooms = [await self.room_on(andy, n) for n in ("n1a", "n1b", "n2a", "n2b")]
        for r in rooms:
            for i in range(3):
                await self.say(andy, r, f"{r} #{i}")
        await asyncio.to_thread(cluster.add_group, "g3")
        await asyncio.to_thread(cluster.start, ["n3a", "n3b"])
        ed = await self.on("ed", "n3a")
        for r in rooms:
            await ed.join_quick(r, "ed")
            ed.rooms[r] = "ed"
            self.assert_in_order(await self.history(ed, r), [f"{r} #{i}" for i in range(3)],
                                 f"{r}'s archive read from n3a")
            await self.say(ed, r, f"ed in {r}")
            await self.sees(andy, r, f"ed in {r}")
        hosts = await asyncio.to_thread(cluster.room_hosts)
        for r, n in zip(rooms, ("n1a", "n1b", "n2a", "n2b")):
            self.assertEqual(hosts.get(r), [n], hosts)
        await self.room_on(ed, "n3b")


class Isolation(ClusterTestCase):

    def psql(self, sql):
        pg = th.postgres()
        psql = os.path.join(os.environ.get("TC_PG_BIN") or th._PythonPg._find_bin(), "psql")
        done = subprocess.run([psql, "-h", pg.host, "-p", str(pg.port), "-U", pg.user,
                               "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    async def test_one_groups_database_outage_leaves_the_others_alone(self):
        """Group g1's database refuses every connection (and its sessions are cut) while users
        on g2 and g3 chat in rooms of g2 and g3: every message is acknowledged and seen, the
        other groups stay Normal, and g1 comes back to Normal once its database does."""
        if th.BACKEND != "postgresql":
            self.skipTest("cuts one database of a PostgreSQL server")
        cluster = await self.make_cluster(3)
        ed = await self.on("ed", "n2a")
        fay = await self.on("fay", "n3a")
        rooms = [await self.room_on(ed, "n2b"), await self.room_on(ed, "n3b")]
        for r in rooms:
            await fay.join_quick(r, "fay")
            fay.rooms[r] = "fay"
        db = cluster.db_urls["g1"].rsplit("/", 1)[1]

        def g1_view():
            out = {}
            for n in ("n1a", "n1b"):
                me = hh.self_entry(cluster.nodes[n].status()) or {}
                out[n] = ((me.get("services") or {}).get("database"), me.get("state"),
                          me.get("reason"))
            return out

        before = await asyncio.to_thread(g1_view)
        await asyncio.to_thread(self.psql, f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
        try:
            await asyncio.to_thread(self.psql, "SELECT pg_terminate_backend(pid) FROM "
                                               f"pg_stat_activity WHERE datname = '{db}'")

            def g1_sees_it():
                # The database service, the state or the reason of a g1 node changes.
                return g1_view() != before

            await hh.poll_until(g1_sees_it, 30, "g1's nodes notice their database is gone")
            for i in range(10):
                for c, other in ((ed, fay), (fay, ed)):
                    for r in rooms:
                        text_ = f"{c.user} {i} in {r} while g1's database is down"
                        await self.say(c, r, text_)
                        await self.sees(other, r, text_)
            states = await asyncio.to_thread(cluster.states)
            for n in ("n2a", "n2b", "n3a", "n3b"):
                self.assert_serving(states[n], f"{n} in {states}")
        finally:
            await asyncio.to_thread(self.psql, f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        await self.wait_states({n: ("Normal", None) for n in cluster.nodes}, timeout=40)


class Drill(ClusterTestCase):

    async def test_drill_attached_to_a_group_of_the_cluster(self):
        """tools/tc-drill --attach targets a group of a running cluster: its rooms are named to
        live in that group, the fault fails that group's first node over, nothing is lost, and
        the other groups stay Normal."""
        cluster = await self.make_cluster(3)
        tcbroker, tcctl = hh.tool_paths()
        configs = ",".join(cluster.nodes[n].config for n in ("n2a", "n2b"))
        argv = [sys.executable, "-B", ch.DRILL, "--fault", "service-stop", "--attach", configs,
                "--tcbroker", tcbroker, "--tcctl", tcctl, "--deadline", "150"]
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                       timeout=180, stdin=subprocess.DEVNULL)
        try:
            report = json.loads(done.stdout)
        except ValueError:
            self.fail(f"tc-drill printed no JSON (exit {done.returncode}):\n{done.stdout}\n"
                      f"{done.stderr}")
        printable = json.dumps({k: v for k, v in report.items() if k != "logs"}, indent=1)
        self.assertNotIn("error", report, printable)
        self.assertTrue(report["ok"], printable)
        self.assertEqual(report["lost"], 0, printable)
        self.assertGreater(report["acknowledged"], 0, printable)
        self.assertGreater(report["rooms_on_failed_node"], 0, printable)
        self.assertEqual(report["rooms_never_answered"], 0, printable)
        self.assertIn("attached to group g2", done.stderr + printable)
        states = await asyncio.to_thread(cluster.states)
        self.assertEqual(states["n2b"], (RIBM, CSD), states)
        for n in ("n1a", "n1b", "n3a", "n3b"):
            self.assert_serving(states[n], f"{n} in {states}")


class Misconfiguration(ClusterTestCase):

    async def refused(self, node, setting):
        node.spawn()
        code = await asyncio.to_thread(node.proc.wait, th.PROCESS_TIMEOUT)
        log = node.log_tail()
        self.assertNotEqual(code, 0, log)
        self.assertIn(setting, log)
        self.assertNotIn("AddressSanitizer", log)
        return log

    async def test_group_on_another_groups_database(self):
        cluster = await self.make_cluster(2, start=False)
        await asyncio.to_thread(cluster.start, ["n1a", "n1b"])
        node = cluster.nodes["n2a"]
        cluster.write_config(node, "g2", db_url=cluster.db_urls["g1"])
        log = await self.refused(node, "storage.url")
        self.assertIn('group "g1"', log)

    async def test_domain_differs_from_the_clusters(self):
        cluster = await self.make_cluster(2, start=False)
        await asyncio.to_thread(cluster.start, ["n1a", "n1b"])
        node = cluster.nodes["n2a"]
        cluster.write_config(node, "g2", domain="elsewhere.test")
        log = await self.refused(node, "node.domain")
        self.assertIn("elsewhere.test", log)

    async def test_peer_running_another_version(self):
        """Both nodes of a group run the same version: a node whose running peer (a fresh
        registry row) reports another version does not start."""
        if th.BACKEND != "sqlite":
            self.skipTest("plants the registry row with Python's sqlite3")
        import sqlite3
        cluster = await self.make_cluster(2, start=False)
        path = cluster.cluster_url[len("sqlite://"):]
        with sqlite3.connect(path) as db:
            db.execute("INSERT OR REPLACE INTO tc_nodes (node, text_conference_running, "
                       "heartbeat_at, version) VALUES ('n1b', 1, ?, 'tcbroker 9.9.9')",
                       (int(time.time() * 1000),))
        log = await self.refused(cluster.nodes["n1a"], "same version")
        self.assertIn("tcbroker 9.9.9", log)

    async def test_node_in_two_groups_is_refused_by_tcctl(self):
        cluster = await self.make_cluster(2, start=False)
        done = await asyncio.to_thread(cluster.nodes["n1a"].ctl, "group", "add", "g9",
                                       "--nodes", "n1a,n9")
        self.assertNotEqual(done.returncode, 0, done.stdout)
        self.assertIn("n1a", done.stdout + done.stderr)


if __name__ == "__main__":
    unittest.main()
