# SPDX-License-Identifier: Apache-2.0
"""Messages about messages in rooms: XEP-0425 moderation (a moderator retracts someone's
message: everyone is told, the archive keeps a tombstone), XEP-0424 retraction by the author,
and body-less reactions (XEP-0444), replies (XEP-0461) and corrections (XEP-0308), which are
archived in order like any message; chat states are relayed only. Room vCards (XEP-0054 on
the room JID, XEP-0486 avatars): owners set them, anyone who may join reads them."""

import asyncio
import base64
import hashlib
import unittest

from slixmpp.stanza import Message

from tcharness import (NS_OID, NS_SID, Broker, MucTestCase, attr, body, child, error_of,
                       occupant_id, q, stanza_ids, status_codes)

NS_RETRACT = "urn:xmpp:message-retract:1"
NS_RETRACT0 = "urn:xmpp:message-retract:0"
NS_MODERATE = "urn:xmpp:message-moderate:1"
NS_MODERATE0 = "urn:xmpp:message-moderate:0"
NS_FASTEN = "urn:xmpp:fasten:0"
NS_REACTIONS = "urn:xmpp:reactions:0"
NS_REPLY = "urn:xmpp:reply:0"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_VCARD = "vcard-temp"


def moderate_v1(stanza_id, reason="spam"):
    return (f"<moderate xmlns={q(NS_MODERATE)} id={q(stanza_id)}>"
            f"<retract xmlns={q(NS_RETRACT)}/><reason>{reason}</reason></moderate>")


def moderate_v0(stanza_id, reason="old client"):
    return (f"<apply-to xmlns={q(NS_FASTEN)} id={q(stanza_id)}>"
            f"<moderate xmlns={q(NS_MODERATE0)}><retract xmlns={q(NS_RETRACT0)}/>"
            f"<reason>{reason}</reason></moderate></apply-to>")


def is_announcement(room, target):
    """The room's XEP-0425 message about `target`."""
    def pred(s):
        if not isinstance(s, Message) or attr(s, "from") != room:
            return False
        r = child(s, NS_RETRACT, "retract")
        return r is not None and r.get("id") == target
    return pred


def archived(results, stanza_id):
    """The forwarded message with this archive id in MAM `results`."""
    for rid, msg, _, _ in results:
        if rid == stanza_id:
            return msg
    raise AssertionError(f"{stanza_id} not in the archive: {[r[0] for r in results]}")


class ModerationTests(MucTestCase):

    async def _room(self):
        """Alice owns a room (a moderator); Bob and Carol are participants."""
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        self.alice_oid = occupant_id((await self.create_room(alice, room, "Alice")).self_presence)
        await bob.join(room, "Bob")
        await carol.join(room, "Carol")
        return alice, bob, carol, room

    async def test_moderator_retracts_a_message(self):
        alice, bob, carol, room = await self._room()
        kept = stanza_ids(await bob.say(room, "fine"), by=room)[0]
        spam = await bob.say(room, "buy potions")
        sid, bob_oid = stanza_ids(spam, by=room)[0], occupant_id(spam)
        self.assertIsNotNone(bob_oid)
        reply = await alice.iq("set", room, moderate_v1(sid, "no ads"))
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        # Committed, broadcast, then answered: the announcement came before the result.
        self.assertEqual(len(alice.pending(is_announcement(room, sid))), 1)
        # Everyone, the moderator and the author included, hears it from the room itself.
        for who in (alice, bob, carol):
            m = await who.expect(is_announcement(room, sid), "moderation announcement")
            retract = child(m, NS_RETRACT, "retract")
            moderated = retract.find(f"{{{NS_MODERATE}}}moderated")
            self.assertIsNotNone(moderated, str(m))
            self.assertEqual(moderated.get("by"), f"{room}/Alice")
            self.assertEqual(moderated.find(f"{{{NS_OID}}}occupant-id").get("id"),
                             self.alice_oid)
            self.assertEqual(retract.find(f"{{{NS_RETRACT}}}reason").text, "no ads")
            self.assertIsNone(body(m))
            # The fastened form of XEP-0425 0.2 rides along for older clients.
            apply = child(m, NS_FASTEN, "apply-to")
            self.assertEqual(apply.get("id"), sid, str(m))
            self.assertIsNotNone(apply.find(f"{{{NS_MODERATE0}}}moderated"), str(m))

        results, _, _ = await carol.mam(room)
        ids = [r[0] for r in results]
        self.assertEqual(ids[:2], [kept, sid], "the tombstone keeps its place")
        self.assertEqual(len(ids), 3, "the announcement is archived after it")
        self.assertEqual(body(archived(results, kept)), "fine")
        tomb = archived(results, sid)
        self.assertIsNone(body(tomb), "the archive must not return the retracted body")
        self.assertEqual(tomb.get("from"), f"{room}/Bob")
        self.assertEqual(occupant_id(tomb), bob_oid)
        retracted = child(tomb, NS_RETRACT, "retracted")
        self.assertIsNotNone(retracted, f"no tombstone: {tomb}")
        self.assertTrue(retracted.get("stamp"))
        self.assertEqual(retracted.find(f"{{{NS_MODERATE}}}moderated").get("by"), f"{room}/Alice")
        self.assertEqual(retracted.find(f"{{{NS_RETRACT}}}reason").text, "no ads")
        last = results[2][1]
        self.assertEqual(last.get("from"), room)
        self.assertEqual(child(last, NS_RETRACT, "retract").get("id"), sid)

        # A newcomer's history holds the tombstone, not the message.
        dave = await self.client("dave")
        joined = await dave.join(room, "Dave")
        by_id = {stanza_ids(m, by=room)[0]: m for m in joined.history}
        self.assertEqual(body(by_id[kept]), "fine")
        self.assertIsNone(body(by_id[sid]))
        self.assertIsNotNone(child(by_id[sid], NS_RETRACT, "retracted"))

    async def test_only_moderators_may_moderate(self):
        alice, bob, carol, room = await self._room()
        sid = stanza_ids(await alice.say(room, "owner speaks"), by=room)[0]
        self.assertEqual(await bob.iq_error("set", room, moderate_v1(sid)), ("auth", "forbidden"))
        # Someone not in the room at all, even an owner-to-be, is refused too.
        eve = await self.client("eve")
        self.assertEqual(await eve.iq_error("set", room, moderate_v1(sid)), ("auth", "forbidden"))
        results, _, _ = await carol.mam(room)
        self.assertEqual([body(r[1]) for r in results], ["owner speaks"])
        await carol.barrier(room)
        self.assertEqual(carol.pending(is_announcement(room, sid)), [])

    async def test_unknown_message_is_item_not_found(self):
        alice, _, _, room = await self._room()
        self.assertEqual(await alice.iq_error("set", room, moderate_v1("no-such-id")),
                         ("cancel", "item-not-found"))
        # No <retract/> inside: a bad request.
        bad = f"<moderate xmlns={q(NS_MODERATE)} id='x'/>"
        self.assertEqual((await alice.iq_error("set", room, bad))[1], "bad-request")
        results, _, _ = await alice.mam(room)
        self.assertEqual(results, [], "a refused moderation archives nothing")

    async def test_older_fastened_request(self):
        alice, bob, carol, room = await self._room()
        sid = stanza_ids(await bob.say(room, "legacy spam"), by=room)[0]
        await alice.iq_ok("set", room, moderate_v0(sid))
        m = await carol.expect(is_announcement(room, sid), "moderation announcement")
        self.assertEqual(child(m, NS_FASTEN, "apply-to")
                         .find(f"{{{NS_MODERATE0}}}moderated").get("by"), f"{room}/Alice")
        results, _, _ = await carol.mam(room)
        tomb = archived(results, sid)
        self.assertIsNone(body(tomb))
        old = child(tomb, NS_MODERATE0, "moderated")
        self.assertIsNotNone(old, str(tomb))
        self.assertIsNotNone(old.find(f"{{{NS_RETRACT0}}}retracted"))

    async def test_disco_advertises_moderation_and_vcard(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        features, _, _ = await alice.disco_info(room)
        for f in (NS_MODERATE, NS_MODERATE0, NS_RETRACT, NS_RETRACT + "#tombstone",
                  NS_RETRACT0 + "#tombstone", NS_VCARD):
            self.assertIn(f, features)


class ReferenceTests(MucTestCase):

    async def _room(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await carol.join(room, "Carol")
        return alice, bob, carol, room

    async def _send(self, sender, observer, room, payload):
        """Sends a groupchat message with `payload` (raw XML) and awaits its reflection at
        `observer`; returns the reflection's stanza-id."""
        id_ = sender.new_id("ref")
        sender.send(f"<message to={q(room)} type='groupchat' id={q(id_)}>{payload}</message>")
        m = await observer.expect(lambda s: isinstance(s, Message) and attr(s, "id") == id_,
                                  f"reflection of {id_}")
        self.assertIsNone(error_of(m), str(m))
        return stanza_ids(m, by=room)[0] if stanza_ids(m, by=room) else None

    async def test_bodyless_references_are_archived_in_order(self):
        alice, bob, carol, room = await self._room()
        first = stanza_ids(await alice.say(room, "lunch?"), by=room)[0]
        cs = await self._send(bob, carol, room, f"<composing xmlns={q(NS_CHATSTATES)}/>")
        self.assertIsNone(cs, "a chat state gets no stanza-id: it is not archived")
        reaction = await self._send(
            bob, carol, room,
            f"<reactions xmlns={q(NS_REACTIONS)} id={q(first)}><reaction>👍</reaction>"
            "</reactions><store xmlns='urn:xmpp:hints'/>")
        reply = await self._send(
            carol, alice, room,
            f"<reply xmlns={q(NS_REPLY)} to={q(room + '/Alice')} id={q(first)}/>")
        correction = await self._send(
            alice, bob, room, f"<replace xmlns={q(NS_CORRECT)} id='orig'/><body>lunch!</body>")
        for sid in (reaction, reply, correction):
            self.assertIsNotNone(sid, "archived messages carry the room's stanza-id")
        results, _, _ = await bob.mam(room)
        self.assertEqual([r[0] for r in results], [first, reaction, reply, correction])
        msg = archived(results, reaction)
        self.assertEqual(child(msg, NS_REACTIONS, "reactions").get("id"), first)
        self.assertEqual(msg.get("from"), f"{room}/Bob")
        self.assertEqual(child(archived(results, reply), NS_REPLY, "reply").get("id"), first)
        self.assertEqual(body(archived(results, correction)), "lunch!")
        for _, m, _, _ in results:
            self.assertIsNone(child(m, NS_CHATSTATES, "composing"))

    async def test_author_retraction_leaves_a_tombstone(self):
        alice, bob, carol, room = await self._room()
        sid = stanza_ids(await bob.say(room, "oops, wrong room"), by=room)[0]
        other = stanza_ids(await carol.say(room, "carol stays"), by=room)[0]
        retraction = await self._send(bob, carol, room,
                                      f"<retract xmlns={q(NS_RETRACT)} id={q(sid)}/>"
                                      "<body>This person retracted a message.</body>")
        own = await self._send(carol, alice, room,
                               f"<retract xmlns={q(NS_RETRACT)} id={q(other)}/>")
        results, _, _ = await alice.mam(room)
        self.assertEqual([r[0] for r in results], [sid, other, retraction, own])
        tomb = archived(results, sid)
        self.assertIsNone(body(tomb))
        self.assertEqual(tomb.get("from"), f"{room}/Bob")
        self.assertIsNotNone(child(tomb, NS_RETRACT, "retracted"), str(tomb))
        self.assertIsNone(child(tomb, NS_MODERATE, "moderated"))
        self.assertIsNotNone(child(archived(results, other), NS_RETRACT, "retracted"))
        self.assertEqual(child(archived(results, retraction), NS_RETRACT, "retract").get("id"),
                         sid)
        # In the history too.
        dave = await self.client("dave")
        joined = await dave.join(room, "Dave")
        history = {stanza_ids(m, by=room)[0]: m for m in joined.history}
        self.assertIsNone(body(history[sid]))
        self.assertIsNotNone(child(history[sid], NS_RETRACT, "retracted"))

    async def test_someone_elses_retraction_changes_nothing(self):
        alice, bob, carol, room = await self._room()
        sid = stanza_ids(await bob.say(room, "mine"), by=room)[0]
        await self._send(carol, alice, room, f"<retract xmlns={q(NS_RETRACT)} id={q(sid)}/>")
        results, _, _ = await alice.mam(room)
        self.assertEqual(body(archived(results, sid)), "mine")
        self.assertIsNone(child(archived(results, sid), NS_RETRACT, "retracted"))

    async def test_older_fastened_retraction(self):
        alice, bob, carol, room = await self._room()
        origin = f"<origin-id xmlns={q(NS_SID)} id='origin-1'/>"
        sid = stanza_ids(await bob.say(room, "old style", extra=origin), by=room)[0]
        await self._send(bob, carol, room,
                         f"<apply-to xmlns={q(NS_FASTEN)} id={q(sid)}>"
                         f"<retract xmlns={q(NS_RETRACT0)}/></apply-to>")
        results, _, _ = await alice.mam(room)
        tomb = archived(results, sid)
        self.assertIsNone(body(tomb))
        retracted = child(tomb, NS_RETRACT0, "retracted")
        self.assertIsNotNone(retracted, str(tomb))
        # XEP-0424 0.2: the older tombstone names the original's origin-id.
        self.assertEqual(retracted.find(f"{{{NS_SID}}}origin-id").get("id"), "origin-1")


PHOTO = bytes(range(256)) * 4


def vcard(photo=PHOTO, name="The Lounge"):
    b64 = base64.b64encode(photo).decode()
    wrapped = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    return (f"<vCard xmlns={q(NS_VCARD)}><FN>{name}</FN>"
            f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{wrapped}</BINVAL></PHOTO></vCard>")


def vcard_of(reply):
    v = child(reply, NS_VCARD, "vCard")
    if v is None:
        raise AssertionError(f"no vCard in {reply}")
    return v


class RoomVcardTests(MucTestCase):
    MUC_CONFIG = {"max_vcard_bytes": 4096}

    async def test_owner_sets_anyone_reads(self):
        alice, bob, eve = await self.clients_for("alice", "bob", "eve")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        # None yet: an empty vCard (XEP-0054 §3.1).
        empty = vcard_of(await eve.iq_ok("get", room, f"<vCard xmlns={q(NS_VCARD)}/>"))
        self.assertEqual(len(list(empty)), 0)
        _, _, forms = await eve.disco_info(room)
        self.assertNotIn("muc#roominfo_avatarhash",
                         forms["http://jabber.org/protocol/muc#roominfo"])

        await alice.iq_ok("set", room, vcard())
        # XEP-0486: occupants are told the configuration (the avatar) changed.
        m = await bob.expect(lambda s: isinstance(s, Message) and 104 in status_codes(s),
                             "status 104 after the avatar changed")
        self.assertEqual(attr(m, "from"), room)
        got = vcard_of(await eve.iq_ok("get", room, f"<vCard xmlns={q(NS_VCARD)}/>"))
        self.assertEqual(got.find(f"{{{NS_VCARD}}}FN").text, "The Lounge")
        binval = got.find(f"{{{NS_VCARD}}}PHOTO/{{{NS_VCARD}}}BINVAL").text
        self.assertEqual(base64.b64decode("".join(binval.split())), PHOTO)
        _, _, forms = await eve.disco_info(room)
        self.assertEqual(forms["http://jabber.org/protocol/muc#roominfo"]
                         ["muc#roominfo_avatarhash"], [hashlib.sha1(PHOTO).hexdigest()])

        # An empty vCard removes it.
        await alice.iq_ok("set", room, f"<vCard xmlns={q(NS_VCARD)}/>")
        empty = vcard_of(await eve.iq_ok("get", room, f"<vCard xmlns={q(NS_VCARD)}/>"))
        self.assertEqual(len(list(empty)), 0)

    async def test_only_owners_may_set(self):
        alice, bob, dave = await self.clients_for("alice", "bob", "dave")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await alice.set_affiliation(room, dave.bare, "admin")
        await bob.join(room, "Bob")
        for who in (bob, dave):
            self.assertEqual(await who.iq_error("set", room, vcard(name="Hijacked")),
                             ("auth", "forbidden"))
        got = vcard_of(await bob.iq_ok("get", room, f"<vCard xmlns={q(NS_VCARD)}/>"))
        self.assertIsNone(got.find(f"{{{NS_VCARD}}}FN"))
        # Outcasts may not even read it.
        await alice.set_affiliation(room, "carol@localhost", "outcast")
        carol = await self.client("carol")
        self.assertEqual(await carol.iq_error("get", room, f"<vCard xmlns={q(NS_VCARD)}/>"),
                         ("auth", "forbidden"))

    async def test_too_large_is_refused(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await alice.iq_ok("set", room, vcard(photo=b"small"))
        reply = await alice.iq("set", room, vcard(photo=PHOTO * 4))  # > 4096 bytes
        self.assertEqual(error_of(reply), ("modify", "not-acceptable"), str(reply))
        got = vcard_of(await alice.iq_ok("get", room, f"<vCard xmlns={q(NS_VCARD)}/>"))
        binval = got.find(f"{{{NS_VCARD}}}PHOTO/{{{NS_VCARD}}}BINVAL").text
        self.assertEqual(base64.b64decode("".join(binval.split())), b"small",
                         "a refused vCard leaves the stored one as it was")

    async def test_unknown_room(self):
        alice = await self.client("alice")
        reply = await alice.iq("get", self.room("missing"), f"<vCard xmlns={q(NS_VCARD)}/>")
        self.assertEqual(error_of(reply)[1], "item-not-found")


class PersistenceTests(MucTestCase):
    OWN_BROKER = False
    TEST_TIMEOUT = 120.0

    async def test_tombstones_and_vcard_survive_a_restart(self):
        broker = Broker(self._testMethodName)
        self.extra_brokers.append(broker)
        broker.start()
        alice = await self.client("alice", broker=broker)
        bob = await self.client("bob", broker=broker)
        room = self.room()
        await self.create_room(alice, room, "Alice",
                               {"muc#roomconfig_persistentroom": True})
        await bob.join(room, "Bob")
        moderated = stanza_ids(await bob.say(room, "moderate me"), by=room)[0]
        retracted = stanza_ids(await bob.say(room, "retract me"), by=room)[0]
        kept = stanza_ids(await bob.say(room, "keep me"), by=room)[0]
        await alice.iq_ok("set", room, moderate_v1(moderated))
        id_ = bob.new_id("r")
        bob.send(f"<message to={q(room)} type='groupchat' id={q(id_)}>"
                 f"<retract xmlns={q(NS_RETRACT)} id={q(retracted)}/></message>")
        await alice.expect(lambda s: isinstance(s, Message) and attr(s, "id") == id_,
                           "the retraction's reflection")
        await alice.iq_ok("set", room, vcard(name="Durable"))

        await asyncio.get_running_loop().run_in_executor(None, broker.stop)
        broker.start()
        carol = await self.client("carol", broker=broker)
        results, _, _ = await carol.mam(room)
        self.assertEqual([r[0] for r in results][:3], [moderated, retracted, kept])
        self.assertEqual(len(results), 5, "two tombstoned, one kept, two retractions")
        self.assertIsNotNone(child(archived(results, moderated), NS_RETRACT, "retracted"))
        self.assertIsNone(body(archived(results, moderated)))
        self.assertIsNotNone(child(archived(results, retracted), NS_RETRACT, "retracted"))
        self.assertIsNone(body(archived(results, retracted)))
        self.assertEqual(body(archived(results, kept)), "keep me")
        got = vcard_of(await carol.iq_ok("get", room, f"<vCard xmlns={q(NS_VCARD)}/>"))
        self.assertEqual(got.find(f"{{{NS_VCARD}}}FN").text, "Durable")
        joined = await carol.join(room, "Carol")
        history = {stanza_ids(m, by=room)[0]: m for m in joined.history}
        self.assertIsNone(body(history[moderated]))
        self.assertEqual(body(history[kept]), "keep me")


if __name__ == "__main__":
    unittest.main()
