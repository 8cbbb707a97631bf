# SPDX-License-Identifier: Apache-2.0
"""Persistent rooms across restarts (SIGTERM) and crashes (SIGKILL), and the durability rule:
a groupchat message is committed before it is reflected, so every reflected stanza-id is in
the archive after a crash."""

import asyncio
import random
import unittest

from tcharness import (TIMEOUT, Broker, MucTestCase, attr, body, fin_info, form_fields,
                       is_unavailable, occupant_id, stanza_ids, status_codes, subject)

ROOM_CONFIG = {
    "muc#roomconfig_roomname": "Durable",
    "muc#roomconfig_roomdesc": "Survives restarts",
    "muc#roomconfig_persistentroom": True,
    "muc#roomconfig_publicroom": False,
    "muc#roomconfig_whois": "anyone",
    "muc#roomconfig_changesubject": True,
    "muc#roomconfig_allowpm": "moderators",
    "muc#maxhistoryfetch": "15",
    "muc#roomconfig_maxusers": "50",
    "tc#retention_days": "90",
}
BOOLEAN_FIELDS = {"muc#roomconfig_persistentroom", "muc#roomconfig_publicroom",
                  "muc#roomconfig_changesubject"}


async def mam_all(client, room, page=50, max_pages=50):
    """The whole archive of `room`, paging forward (bounded number of pages)."""
    out, after = [], None
    for _ in range(max_pages):
        results, fin, reply = await client.mam(room, max_=page, after=after)
        if attr(reply, "type") != "result":
            raise AssertionError(f"MAM query failed: {reply}")
        out.extend(results)
        info = fin_info(fin)
        if info["complete"] or not results:
            return out
        after = info["last"]
    raise AssertionError(f"archive of {room} not complete after {max_pages} pages")


class RestartTests(MucTestCase):
    OWN_BROKER = False
    TEST_TIMEOUT = 120.0

    def _broker(self):
        b = Broker(self._testMethodName)
        self.extra_brokers.append(b)
        return b.start()

    async def _populate(self, broker):
        alice = await self.client("alice", broker=broker)
        bob = await self.client("bob", broker=broker)
        room = self.room("durable")
        own = await self.create_room(alice, room, "Alice", ROOM_CONFIG)
        await alice.set_affiliation(room, bob.bare, "member")
        await alice.set_affiliation(room, "dave@localhost", "admin")
        await alice.set_affiliation(room, "carol@localhost", "outcast", "troll")
        await bob.join(room, "Bob")
        reply = await alice.set_subject(room, "Persisted topic")
        self.assertEqual(attr(reply, "type"), "groupchat", str(reply))
        sent = []
        for i in range(12):
            who, nick = (bob, "Bob") if i % 3 == 0 else (alice, "Alice")
            m = await who.say(room, f"before restart {i}")
            sent.append((stanza_ids(m, by=room)[0], f"before restart {i}", nick))
        return alice, bob, room, sent, occupant_id(own.self_presence)

    async def _verify(self, broker, room, sent, alice_oid):
        alice, carol, eve = [await self.client(u, broker=broker) for u in ("alice", "carol", "eve")]
        # Configuration.
        fields = form_fields(await alice.get_config(room))
        for var, value in ROOM_CONFIG.items():
            if var in BOOLEAN_FIELDS:
                self.assertEqual(fields[var] in (["1"], ["true"]), bool(value), var)
            else:
                self.assertEqual(fields[var], [value], var)
        features, identities, _ = await eve.disco_info(room)
        for f in ("muc_persistent", "muc_hidden", "muc_nonanonymous"):
            self.assertIn(f, features)
        self.assertEqual(identities[0].get("name"), "Durable")
        # Affiliations.
        self.assertEqual(await alice.affiliation_list(room, "owner"), {"alice@localhost": "owner"})
        self.assertEqual(await alice.affiliation_list(room, "member"), {"bob@localhost": "member"})
        self.assertEqual(await alice.affiliation_list(room, "admin"), {"dave@localhost": "admin"})
        self.assertEqual(await alice.affiliation_list(room, "outcast"),
                         {"carol@localhost": "outcast"})
        self.assertEqual(await carol.join_error(room, "Carol"), ("auth", "forbidden"))
        # A new joiner: no 201 (the room exists), 100 (non-anonymous), every message in the
        # history with its stanza-id, then the subject.
        joined = await eve.join(room, "Eve")
        self.assertNotIn(201, joined.codes)
        self.assertIn(100, joined.codes)
        self.assertEqual(joined.others, [])
        self.assertEqual([(stanza_ids(m, by=room)[0], body(m), attr(m, "from"))
                          for m in joined.history],
                         [(sid, text_, f"{room}/{nick}") for sid, text_, nick in sent])
        self.assertEqual(subject(joined.subject), "Persisted topic")
        self.assertEqual(attr(joined.subject, "from"), f"{room}/Alice")
        # The owner is still owner, with the same occupant-id (XEP-0421: stable).
        joined = await alice.join(room, "Alice")
        self.assertEqual(joined.item["affiliation"], "owner")
        self.assertEqual(occupant_id(joined.self_presence), alice_oid)
        # The archive: everything, in order; new messages go after it.
        archived = await mam_all(alice, room)
        self.assertEqual([r[0] for r in archived], [s[0] for s in sent])
        self.assertEqual([body(r[1]) for r in archived], [s[1] for s in sent])
        m = await alice.say(room, "after restart")
        archived = await mam_all(alice, room)
        self.assertEqual([r[0] for r in archived],
                         [s[0] for s in sent] + stanza_ids(m, by=room))

    async def test_restart_after_sigterm(self):
        broker = self._broker()
        alice, bob, room, sent, alice_oid = await self._populate(broker)
        await asyncio.get_running_loop().run_in_executor(None, broker.stop)
        broker.start()
        await self._verify(broker, room, sent, alice_oid)

    async def test_shutdown_tells_occupants(self):
        broker = self._broker()
        alice = await self.client("alice", broker=broker)
        bob = await self.client("bob", broker=broker)
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await asyncio.get_running_loop().run_in_executor(None, broker.stop)
        # XEP-0045 §15.6 status 332: removed because the service is shutting down. Each
        # occupant hears it about itself (with 110) before the stream closes.
        for who, nick in ((alice, "Alice"), (bob, "Bob")):
            p = await who.expect(is_unavailable(f"{room}/{nick}"), "own 332 presence")
            self.assertTrue({332, 110} <= status_codes(p), status_codes(p))

    async def test_restart_after_sigkill(self):
        broker = self._broker()
        alice, bob, room, sent, alice_oid = await self._populate(broker)
        await asyncio.get_running_loop().run_in_executor(None, broker.kill)
        broker.start()
        await self._verify(broker, room, sent, alice_oid)

    async def test_temporary_room_does_not_survive_restart(self):
        broker = self._broker()
        for how in ("stop", "kill"):
            with self.subTest(how=how):
                alice = await self.client("alice", broker=broker)
                room = self.room(f"temp-{how}")
                await self.create_room(alice, room, "Alice",
                                       {"muc#roomconfig_persistentroom": False})
                await alice.say(room, "ephemeral")
                await asyncio.get_running_loop().run_in_executor(None, getattr(broker, how))
                broker.start()
                bob = await self.client("bob", broker=broker)
                # Its occupants are gone, so the temporary room (and its archive) must be too.
                joined = await bob.join(room, "Bob")
                self.assertIn(201, joined.codes, f"temporary room survived {how}")
                self.assertEqual(joined.history, [])


class CrashDurabilityTests(MucTestCase):
    """Kill -9 the node while a client sends; every reflected message must be archived."""
    OWN_BROKER = False
    TEST_TIMEOUT = 180.0
    N = 200
    ROUNDS = 2

    async def _send_until_killed(self, broker, client, room, round_, kill_after):
        """Sends up to N messages, each after the previous one's reflection; SIGKILLs the
        node from another task right after message `kill_after` went out. Returns the
        (stanza-id, body) of every reflected message."""
        acked = []
        trigger = asyncio.Event()
        rng = random.Random()

        async def killer():
            await trigger.wait()
            # Not a synchronisation: a random offset (0 to 3 ms) so that the kill lands at
            # different points of the commit of the message in flight.
            await asyncio.sleep(rng.uniform(0, 0.003))
            broker.proc.kill()
            await asyncio.get_running_loop().run_in_executor(None, broker.proc.wait)

        kill_task = asyncio.ensure_future(killer())
        try:
            for i in range(self.N):
                text_ = f"crash round {round_} #{i}"
                if not client.connected:
                    # The kill landed after the previous reflection arrived: nothing more
                    # can be sent, and message i was never sent, so it cannot be acked.
                    break
                id_ = client.send_groupchat(room, text_)
                if i == kill_after:
                    trigger.set()
                reflection = asyncio.ensure_future(client.expect(
                    lambda s, id_=id_: attr(s, "id") == id_ and attr(s, "type") == "groupchat",
                    f"reflection of {id_}"))
                done, _ = await asyncio.wait({reflection, client.disconnected},
                                             timeout=TIMEOUT,
                                             return_when=asyncio.FIRST_COMPLETED)
                if reflection in done:
                    m = reflection.result()
                    acked.append((stanza_ids(m, by=room)[0], text_))
                    continue
                reflection.cancel()
                # Disconnected: a reflection may have come in just before the connection
                # dropped.
                m = client.take(lambda s, id_=id_: attr(s, "id") == id_
                                and attr(s, "type") == "groupchat")
                if m is not None:
                    acked.append((stanza_ids(m, by=room)[0], text_))
                if not done:
                    raise AssertionError(f"message {i}: neither reflection nor disconnect "
                                         f"within {TIMEOUT} s")
                break
            else:
                self.fail(f"all {self.N} messages were reflected; the kill came too late")
        finally:
            trigger.set()  # the node may have died on its own: the killer must still end
            await asyncio.wait_for(kill_task, TIMEOUT)
        return acked

    async def test_every_reflected_message_survives_sigkill(self):
        broker = Broker("crash")
        self.extra_brokers.append(broker)
        broker.start()
        alice = await self.client("alice", broker=broker)
        room = self.room("crash")
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_persistentroom": True,
                                                     "muc#maxhistoryfetch": "20"})
        expected = []  # every acknowledged message over all rounds, in order
        rng = random.Random()
        for round_ in range(self.ROUNDS):
            kill_after = rng.randint(20, self.N - 50)
            acked = await self._send_until_killed(broker, alice, room, round_, kill_after)
            self.assertGreaterEqual(len(acked), kill_after, "the node died before the kill")
            broker.start()
            alice = await self.client("alice", f"after-{round_}", broker=broker)
            archived = [(r[0], body(r[1])) for r in await mam_all(alice, room, page=100)]
            archived_ids = [a[0] for a in archived]
            missing = [a for a in expected + acked if a[0] not in archived_ids]
            self.assertEqual(missing, [], f"round {round_}: reflected messages lost in the crash "
                                          f"(killed after sending #{kill_after})")
            # Nothing else, except possibly the one message whose commit raced the kill.
            extra = archived[len(expected) + len(acked):]
            self.assertEqual(archived[:len(expected) + len(acked)], expected + acked,
                             "the archive must hold the reflected messages in order")
            self.assertLessEqual(len(extra), 1, f"unexpected extra messages: {extra}")
            if extra:
                self.assertEqual(extra[0][1], f"crash round {round_} #{len(acked)}")
            self.assertEqual(len(set(archived_ids)), len(archived_ids), "duplicate archive ids")
            expected = archived
            # The room itself came back: a joiner gets the newest messages as history.
            joined = await alice.join(room, "Alice")
            self.assertEqual([stanza_ids(m, by=room)[0] for m in joined.history],
                             [a[0] for a in archived[-20:]])


if __name__ == "__main__":
    unittest.main()
