# SPDX-License-Identifier: Apache-2.0
"""XEP-0045 messages: groupchat broadcast and reflection (XEP-0359, XEP-0421), subject,
discussion history (with XEP-0203 delay), private messages, mediated invitations."""

import datetime
import unittest

from tcharness import (NS_MUC_USER, NS_OID, NS_SID, MucTestCase, attr, body, child, delay,
                       error_of, is_available, is_groupchat, is_message, occupant_id, q,
                       stanza_ids, status_codes, subject, text)


def parse_stamp(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class GroupchatTests(MucTestCase):

    async def test_broadcast_and_reflection(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        own = await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await carol.join(room, "Carol")
        alice_oid = occupant_id(own.self_presence)

        # The sender's claimed stanza-id and occupant-id must not survive (XEP-0359 §7,
        # XEP-0421 §4): the room strips and replaces them.
        spoof = (f"<stanza-id xmlns={q(NS_SID)} id='forged' by={q(room)}/>"
                 f"<occupant-id xmlns={q(NS_OID)} id='forged-oid'/>")
        reflected = await alice.say(room, "hello everyone", extra=spoof)
        self.assertEqual(attr(reflected, "type"), "groupchat")
        self.assertEqual(attr(reflected, "from"), f"{room}/Alice")
        self.assertEqual(body(reflected), "hello everyone")
        ids = stanza_ids(reflected, by=room)
        self.assertEqual(len(ids), 1, f"exactly one stanza-id by the room: {reflected}")
        self.assertNotEqual(ids[0], "forged")
        self.assertEqual(len(stanza_ids(reflected)), 1, "the forged stanza-id was relayed")
        self.assertEqual(occupant_id(reflected), alice_oid)
        self.assertEqual(len(reflected.xml.findall(f"{{{NS_OID}}}occupant-id")), 1)

        for other in (bob, carol):
            m = await other.expect(is_groupchat(f"{room}/Alice", "hello everyone"),
                                   "Alice's message")
            self.assertEqual(attr(m, "id"), attr(reflected, "id"), "same id for every recipient")
            self.assertEqual(stanza_ids(m, by=room), ids, "same stanza-id for every recipient")
            self.assertEqual(occupant_id(m), alice_oid)
            self.assertNotIn(alice.bare, str(m), "semi-anonymous room leaked the sender's JID")

        # Stanza ids are unique per message; the occupant id is stable per user.
        second = await alice.say(room, "again")
        self.assertNotEqual(stanza_ids(second, by=room), ids)
        self.assertEqual(occupant_id(second), alice_oid)
        from_bob = await bob.say(room, "hi Alice")
        self.assertNotEqual(occupant_id(from_bob), alice_oid)

    async def test_message_order_is_kept(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        sent = [alice.send_groupchat(room, f"burst {i}") for i in range(20)]
        got = await bob.expect_n(is_groupchat(f"{room}/Alice"), 20, "burst message")
        self.assertEqual([attr(m, "id") for m in got], sent)
        self.assertEqual([body(m) for m in got], [f"burst {i}" for i in range(20)])

    async def test_non_occupant_cannot_send(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        bob.send_groupchat(room, "let me in", id_="outsider")
        err = await bob.expect(lambda s: attr(s, "id") == "outsider", "error to a non-occupant")
        # XEP-0045 §7.4: <not-acceptable/> to a non-occupant.
        self.assertEqual(attr(err, "type"), "error")
        self.assertEqual(error_of(err)[1], "not-acceptable")
        await alice.barrier(room)
        self.assertEqual(alice.pending(is_groupchat(body_text="let me in")), [])

    async def test_chat_state_is_relayed(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        alice.send(f"<message to={q(room)} type='groupchat' id='cs1'>"
                   "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        m = await bob.expect(lambda s: attr(s, "id") == "cs1", "relayed chat state")
        self.assertEqual(attr(m, "from"), f"{room}/Alice")
        self.assertIsNotNone(child(m, "http://jabber.org/protocol/chatstates", "composing"))


class SubjectTests(MucTestCase):

    async def test_moderator_sets_subject_and_joiners_get_it(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.say(room, "before the subject")
        reply = await alice.set_subject(room, "Weekly sync")
        self.assertEqual(attr(reply, "type"), "groupchat", str(reply))
        self.assertEqual(subject(reply), "Weekly sync")
        self.assertEqual(attr(reply, "from"), f"{room}/Alice")
        m = await bob.expect(lambda s: subject(s) == "Weekly sync", "subject change")
        self.assertEqual(attr(m, "from"), f"{room}/Alice")
        self.assertIsNone(body(m))
        # §7.2.16: a joiner gets the subject after the history.
        joined = await carol.join(room, "Carol")
        self.assertEqual([body(h) for h in joined.history], ["before the subject"])
        self.assertEqual(subject(joined.subject), "Weekly sync")
        self.assertEqual(attr(joined.subject, "from"), f"{room}/Alice")

    async def test_participant_needs_changesubject(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_changesubject": False})
        await bob.join(room, "Bob")
        reply = await bob.set_subject(room, "Bob's topic")
        # §8.1: <forbidden/> for a participant when the room does not allow it.
        self.assertEqual(attr(reply, "type"), "error", str(reply))
        self.assertEqual(error_of(reply), ("auth", "forbidden"))
        await alice.barrier(room)
        self.assertEqual(alice.pending(lambda s: subject(s) == "Bob's topic"), [])

        await alice.configure_ok(room, {"muc#roomconfig_changesubject": True})
        reply = await bob.set_subject(room, "Bob's topic")
        self.assertEqual(attr(reply, "type"), "groupchat", str(reply))
        m = await alice.expect(lambda s: subject(s) == "Bob's topic", "Bob's subject")
        self.assertEqual(attr(m, "from"), f"{room}/Bob")
        dave = await self.client("dave")
        joined = await dave.join(room, "Dave")
        self.assertEqual(subject(joined.subject), "Bob's topic")

    async def test_visitor_cannot_change_subject(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_changesubject": True,
                                                     "muc#roomconfig_moderatedroom": True})
        joined = await bob.join(room, "Bob")
        self.assertEqual(joined.item["role"], "visitor")
        reply = await bob.set_subject(room, "from a visitor")
        self.assertEqual(error_of(reply), ("auth", "forbidden"))


class HistoryTests(MucTestCase):

    async def _room_with_messages(self, n, config=None, body_of=lambda i: f"message {i}"):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice", config)
        sent = [await alice.say(room, body_of(i)) for i in range(1, n + 1)]
        return alice, room, sent

    async def test_default_history_with_delay(self):
        _, room, sent = await self._room_with_messages(5)
        bob = await self.client("bob")
        joined = await bob.join(room, "Bob")
        self.assertEqual([body(m) for m in joined.history], [f"message {i}" for i in range(1, 6)])
        for h, s in zip(joined.history, sent):
            self.assertEqual(attr(h, "from"), f"{room}/Alice")
            self.assertEqual(attr(h, "type"), "groupchat")
            # XEP-0045 §7.2.15 + XEP-0203: delayed, from the room, with a stamp.
            d = delay(h)
            self.assertIsNotNone(d, f"history without delay: {h}")
            self.assertEqual(d.get("from"), room)
            parse_stamp(d["stamp"])
            self.assertEqual(stanza_ids(h, by=room), stanza_ids(s, by=room))
        stamps = [parse_stamp(delay(h)["stamp"]) for h in joined.history]
        self.assertEqual(stamps, sorted(stamps))

    async def test_maxstanzas(self):
        _, room, _ = await self._room_with_messages(5)
        bob = await self.client("bob")
        joined = await bob.join(room, "Bob", history={"maxstanzas": "2"})
        self.assertEqual([body(m) for m in joined.history], ["message 4", "message 5"])
        await bob.leave(room, "Bob")
        joined = await bob.join(room, "Bob", history={"maxstanzas": "0"})
        self.assertEqual(joined.history, [])

    async def test_maxchars(self):
        big = "x" * 2000
        _, room, _ = await self._room_with_messages(
            3, body_of=lambda i: f"{i}:{big}")
        bob = await self.client("bob")
        # §7.2.15: maxchars='0' means no history.
        joined = await bob.join(room, "Bob", history={"maxchars": "0"})
        self.assertEqual(joined.history, [])
        await bob.leave(room, "Bob")
        # Each message is > 2000 characters: a 3000-character budget fits exactly one.
        joined = await bob.join(room, "Bob", history={"maxchars": "3000"})
        self.assertEqual([body(m)[:2] for m in joined.history], ["3:"])
        await bob.leave(room, "Bob")
        joined = await bob.join(room, "Bob", history={"maxchars": "1000000"})
        self.assertEqual(len(joined.history), 3)

    async def test_seconds(self):
        _, room, _ = await self._room_with_messages(3)
        bob = await self.client("bob")
        joined = await bob.join(room, "Bob", history={"seconds": "3600"})
        self.assertEqual(len(joined.history), 3)
        await bob.leave(room, "Bob")
        joined = await bob.join(room, "Bob", history={"seconds": "0"})
        self.assertEqual(joined.history, [])

    async def test_since(self):
        _, room, _ = await self._room_with_messages(5)
        bob = await self.client("bob")
        everything = await bob.join(room, "Bob")
        stamps = [delay(m)["stamp"] for m in everything.history]
        await bob.leave(room, "Bob")
        cut = stamps[2]
        expected = [body(m) for m, s in zip(everything.history, stamps)
                    if parse_stamp(s) >= parse_stamp(cut)]
        self.assertIn("message 5", expected)
        joined = await bob.join(room, "Bob", history={"since": cut})
        self.assertEqual([body(m) for m in joined.history], expected)
        await bob.leave(room, "Bob")
        # Limits combine: since and maxstanzas.
        joined = await bob.join(room, "Bob", history={"since": cut, "maxstanzas": "1"})
        self.assertEqual([body(m) for m in joined.history], ["message 5"])
        await bob.leave(room, "Bob")
        future = (datetime.datetime.now(datetime.timezone.utc)
                  + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        joined = await bob.join(room, "Bob", history={"since": future})
        self.assertEqual(joined.history, [])

    async def test_room_history_length(self):
        _, room, _ = await self._room_with_messages(5, {"muc#maxhistoryfetch": "3"})
        bob = await self.client("bob")
        joined = await bob.join(room, "Bob")
        self.assertEqual([body(m) for m in joined.history],
                         ["message 3", "message 4", "message 5"])

    async def test_history_then_subject_then_live(self):
        alice, room, _ = await self._room_with_messages(2)
        await alice.set_subject(room, "ordered")
        bob = await self.client("bob")
        bob.send_join(room, "Bob")
        # Everything from the room to Bob arrives in one ordered stream.
        await bob.expect(lambda s: 110 in status_codes(s), "self-presence")
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join")
        await alice.say(room, "live")
        seq = await bob.expect_n(is_message(type_="groupchat"), 4, "join sequence")
        self.assertEqual([body(m) or ("subject:" + (subject(m) or "")) for m in seq],
                         ["message 1", "message 2", "subject:ordered", "live"])
        self.assertIsNone(delay(seq[3]), "a live message carries no delay")


class PrivateMessageTests(MucTestCase):

    async def _room(self, config=None):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", config)
        await bob.join(room, "Bob")
        return alice, bob, room

    def _pm(self, sender, room, nick, text_, id_):
        sender.send(f"<message to={q(room + '/' + nick)} type='chat' id={q(id_)}>"
                    f"<body>{text(text_)}</body></message>")

    async def test_private_message_through_the_room(self):
        alice, bob, room = await self._room()
        self._pm(alice, room, "Bob", "psst", "pm1")
        m = await bob.expect(lambda s: attr(s, "id") == "pm1", "private message")
        self.assertEqual(attr(m, "from"), f"{room}/Alice")
        self.assertEqual(attr(m, "type"), "chat")
        self.assertEqual(body(m), "psst")
        # §7.5: marked with <x xmlns='muc#user'/>; the real JID stays hidden.
        self.assertIsNotNone(child(m, NS_MUC_USER, "x"))
        self.assertNotIn(alice.bare, str(m))
        self._pm(bob, room, "Alice", "hi back", "pm2")
        m = await alice.expect(lambda s: attr(s, "id") == "pm2", "reply")
        self.assertEqual(attr(m, "from"), f"{room}/Bob")
        # A PM is not reflected to its sender nor archived.
        await bob.barrier(room)
        self.assertEqual(bob.pending(lambda s: attr(s, "id") == "pm2"), [])
        results, _, _ = await alice.mam(room)
        self.assertEqual([r for r in results if body(r[1]) in ("psst", "hi back")], [])

    async def test_groupchat_to_an_occupant_is_bad_request(self):
        alice, bob, room = await self._room()
        alice.send(f"<message to={q(room + '/Bob')} type='groupchat' id='pm-gc'>"
                   "<body>wrong type</body></message>")
        err = await alice.expect(lambda s: attr(s, "id") == "pm-gc", "error for groupchat PM")
        # XEP-0045 §7.5: MUST refuse with <bad-request/>.
        self.assertEqual(error_of(err), ("modify", "bad-request"))
        await bob.barrier(room)
        self.assertEqual(bob.pending(lambda s: attr(s, "id") == "pm-gc"), [])

    async def test_private_message_to_absent_nick(self):
        alice, bob, room = await self._room()
        self._pm(alice, room, "Nobody", "anyone?", "pm-absent")
        err = await alice.expect(lambda s: attr(s, "id") == "pm-absent", "error for absent nick")
        self.assertEqual(attr(err, "type"), "error")
        self.assertEqual(error_of(err), ("cancel", "item-not-found"))

    async def test_non_occupant_private_message(self):
        alice, bob, room = await self._room()
        carol = await self.client("carol")
        self._pm(carol, room, "Bob", "from outside", "pm-outside")
        err = await carol.expect(lambda s: attr(s, "id") == "pm-outside", "error to outsider")
        self.assertEqual(error_of(err)[1], "not-acceptable")
        await bob.barrier(room)
        self.assertEqual(bob.pending(lambda s: attr(s, "id") == "pm-outside"), [])

    async def test_allowpm_none(self):
        alice, bob, room = await self._room({"muc#roomconfig_allowpm": "none"})
        self._pm(bob, room, "Alice", "no PMs here?", "pm-none")
        err = await bob.expect(lambda s: attr(s, "id") == "pm-none", "forbidden PM")
        self.assertEqual(error_of(err), ("cancel", "forbidden"))
        await alice.barrier(room)
        self.assertEqual(alice.pending(lambda s: attr(s, "id") == "pm-none"), [])

    async def test_allowpm_moderators(self):
        alice, bob, room = await self._room({"muc#roomconfig_allowpm": "moderators"})
        self._pm(bob, room, "Alice", "from a participant", "pm-part")
        err = await bob.expect(lambda s: attr(s, "id") == "pm-part", "forbidden PM")
        self.assertEqual(error_of(err)[1], "forbidden")
        self._pm(alice, room, "Bob", "from a moderator", "pm-mod")
        m = await bob.expect(lambda s: attr(s, "id") == "pm-mod", "moderator's PM")
        self.assertEqual(body(m), "from a moderator")

    async def test_allowpm_participants_excludes_visitors(self):
        alice, bob, room = await self._room({"muc#roomconfig_allowpm": "participants",
                                             "muc#roomconfig_moderatedroom": True})
        carol = await self.client("carol")
        joined = await carol.join(room, "Carol")
        self.assertEqual(joined.item["role"], "visitor")
        self._pm(carol, room, "Alice", "from a visitor", "pm-vis")
        err = await carol.expect(lambda s: attr(s, "id") == "pm-vis", "forbidden PM")
        self.assertEqual(error_of(err)[1], "forbidden")
        self._pm(alice, room, "Carol", "to a visitor", "pm-to-vis")
        m = await carol.expect(lambda s: attr(s, "id") == "pm-to-vis", "PM to visitor")
        self.assertEqual(body(m), "to a visitor")


class InvitationTests(MucTestCase):

    async def test_mediated_invitation(self):
        alice, carol = await self.clients_for("alice", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        alice.send(f"<message to={q(room)} id='inv1'><x xmlns={q(NS_MUC_USER)}>"
                   f"<invite to={q(carol.bare)}><reason>join us</reason></invite></x></message>")
        # XEP-0045 §7.8.2: the room forwards it from the room, naming the inviter.
        m = await carol.expect(lambda s: child(s, NS_MUC_USER, "x") is not None
                               and attr(s, "from") == room, "invitation")
        inv = child(m, NS_MUC_USER, "x").find(f"{{{NS_MUC_USER}}}invite")
        self.assertIsNotNone(inv)
        self.assertEqual(inv.get("from"), alice.bare)
        self.assertEqual(inv.findtext(f"{{{NS_MUC_USER}}}reason"), "join us")

    async def test_declined_invitation_reaches_the_inviter(self):
        alice, carol = await self.clients_for("alice", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        carol.send(f"<message to={q(room)} id='decl1'><x xmlns={q(NS_MUC_USER)}>"
                   f"<decline to={q(alice.bare)}><reason>too busy</reason></decline></x>"
                   "</message>")
        # XEP-0045 §7.8.2: "the service MUST handle both the invites and declines": the room
        # passes the decline to the invitor, from the room, naming the invitee.
        # Carol's stanzas reach the room in order, and the room answers Alice in order: after
        # both round trips, a forwarded decline has arrived.
        await carol.barrier(room)
        await alice.barrier(room)
        m = alice.take(lambda s: attr(s, "from") == room
                       and child(s, NS_MUC_USER, "x") is not None
                       and child(s, NS_MUC_USER, "x").find(f"{{{NS_MUC_USER}}}decline") is not None)
        answer = carol.pending(lambda s: attr(s, "id") == "decl1")
        self.assertIsNotNone(m, f"no decline forwarded to Alice; Carol got: {answer}")
        decline = child(m, NS_MUC_USER, "x").find(f"{{{NS_MUC_USER}}}decline")
        self.assertEqual(decline.get("from"), carol.bare)
        self.assertEqual(decline.findtext(f"{{{NS_MUC_USER}}}reason"), "too busy")

    async def test_members_only_invites_need_allowinvites(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_membersonly": True,
                                                     "muc#roomconfig_allowinvites": False})
        await alice.set_affiliation(room, bob.bare, "member")
        await bob.join(room, "Bob")
        invite = (f"<message to={q(room)} id='inv-b'><x xmlns={q(NS_MUC_USER)}>"
                  f"<invite to={q(carol.bare)}/></x></message>")
        bob.send(invite)
        err = await bob.expect(lambda s: attr(s, "id") == "inv-b", "forbidden invitation")
        self.assertEqual(error_of(err), ("auth", "forbidden"))
        await alice.configure_ok(room, {"muc#roomconfig_allowinvites": True})
        bob.send(invite)
        m = await carol.expect(lambda s: child(s, NS_MUC_USER, "x") is not None
                               and attr(s, "from") == room, "invitation from a member")
        self.assertEqual(child(m, NS_MUC_USER, "x").find(f"{{{NS_MUC_USER}}}invite").get("from"),
                         bob.bare)


if __name__ == "__main__":
    unittest.main()
