# SPDX-License-Identifier: Apache-2.0
"""XEP-0045 entering and leaving rooms: creation, status codes, entry errors, nick changes."""

import asyncio
import unittest

from tcharness import (NS_DISCO_ITEMS, NS_PING, MucTestCase, attr, body, is_available,
                       is_groupchat, is_presence, is_unavailable, muc_item, occupant_id, q,
                       status_codes, subject)


class JoinTests(MucTestCase):

    async def test_creating_a_room_gives_201_and_owner(self):
        alice = await self.client("alice")
        room = self.room()
        joined = await alice.join(room, "Alice")
        p = joined.self_presence
        self.assertEqual(attr(p, "from"), f"{room}/Alice")
        # XEP-0045 §10.1.1: 110 (this is you) and 201 (room created); 170: the room is logged.
        self.assertTrue({110, 201, 170} <= joined.codes, joined.codes)
        # The default room is semi-anonymous: no 100.
        self.assertNotIn(100, joined.codes)
        self.assertEqual(joined.item["affiliation"], "owner")
        self.assertEqual(joined.item["role"], "moderator")
        self.assertTrue(occupant_id(p), "XEP-0421 occupant-id missing from the self-presence")
        self.assertEqual(joined.others, [])
        self.assertEqual(joined.history, [])
        # §7.2.15: the subject is always sent, empty when none was set.
        self.assertIsNotNone(joined.subject)
        self.assertEqual(subject(joined.subject) or "", "")

    async def test_second_occupant_sees_first_and_is_announced(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        joined = await bob.join(room, "Bob")
        self.assertNotIn(201, joined.codes, "an existing room must not report 201")
        self.assertIn(110, joined.codes)
        self.assertEqual(joined.item["affiliation"], "none")
        self.assertEqual(joined.item["role"], "participant")
        # §7.2.3: presence of existing occupants first. Semi-anonymous: Bob (a participant)
        # must not learn Alice's real JID.
        self.assertEqual([attr(p, "from") for p in joined.others], [f"{room}/Alice"])
        alice_item = muc_item(joined.others[0])
        self.assertEqual((alice_item["affiliation"], alice_item["role"]), ("owner", "moderator"))
        self.assertNotIn("jid", alice_item, "semi-anonymous room leaked a JID to a participant")
        # Alice (a moderator) learns of Bob with his real JID, without 110.
        p = await alice.expect(is_available(f"{room}/Bob"), "Bob's join presence")
        self.assertNotIn(110, status_codes(p))
        self.assertEqual(muc_item(p).get("jid"), bob.jid)
        self.assertTrue(occupant_id(p))
        self.assertNotEqual(occupant_id(p), occupant_id(joined.others[0]))

    async def test_non_anonymous_room_sends_100_and_jids(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_whois": "anyone"})
        joined = await bob.join(room, "Bob")
        self.assertIn(100, joined.codes, "XEP-0045 §7.2.4: 100 in a non-anonymous room")
        self.assertEqual(muc_item(joined.others[0]).get("jid"), alice.jid)

    async def test_nickname_conflict(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        # XEP-0045 §7.2.9: <conflict/> (409) when another user holds the nick.
        self.assertEqual(await bob.join_error(room, "Alice"), ("cancel", "conflict"))
        # Bob is not in the room: Alice's disco#items still lists one occupant.
        reply = await alice.iq_ok("get", room, f"<query xmlns={q(NS_DISCO_ITEMS)}/>")
        self.assertEqual(len(reply.xml.findall(f".//{{{NS_DISCO_ITEMS}}}item")), 1)

    async def test_password_protected_room(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {
            "muc#roomconfig_passwordprotectedroom": True, "muc#roomconfig_roomsecret": "s3cr3t"})
        # §7.2.6: <not-authorized/> (401) without the password or with a wrong one.
        self.assertEqual(await bob.join_error(room, "Bob"), ("auth", "not-authorized"))
        self.assertEqual(await bob.join_error(room, "Bob", password="nope"),
                         ("auth", "not-authorized"))
        joined = await bob.join(room, "Bob", password="s3cr3t")
        self.assertIn(110, joined.codes)

    async def test_members_only_room_requires_registration(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_membersonly": True})
        # §7.2.7: <registration-required/> (407) for a non-member.
        self.assertEqual(await bob.join_error(room, "Bob"), ("auth", "registration-required"))
        await alice.set_affiliation(room, bob.bare, "member")
        joined = await bob.join(room, "Bob")
        self.assertEqual(joined.item["affiliation"], "member")
        self.assertEqual(await carol.join_error(room, "Carol"), ("auth", "registration-required"))

    async def test_banned_user_is_forbidden(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await alice.set_affiliation(room, bob.bare, "outcast", "spam")
        # §7.2.8: <forbidden/> (403) for an outcast.
        self.assertEqual(await bob.join_error(room, "Bob"), ("auth", "forbidden"))

    async def test_full_room_is_service_unavailable(self):
        alice, bob, carol, dave = await self.clients_for("alice", "bob", "carol", "dave")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_maxusers": "2"})
        await bob.join(room, "Bob")
        # §7.2.10: <service-unavailable/> (503) when the room is full.
        self.assertEqual(await carol.join_error(room, "Carol"), ("wait", "service-unavailable"))
        # §7.2.10: admins and owners may still enter.
        await alice.set_affiliation(room, dave.bare, "admin")
        joined = await dave.join(room, "Dave")
        self.assertEqual(joined.item["affiliation"], "admin")
        # Below the limit again, an ordinary user may enter.
        await bob.leave(room, "Bob")
        await dave.leave(room, "Dave")
        joined = await carol.join(room, "Carol")
        self.assertIn(110, joined.codes)

    async def test_locked_room_until_configured(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        # Asking for the form right after creating reserves the room (§10.1.3) ...
        form = await alice.get_config(room)
        self.assertIsNotNone(form)
        # ... so nobody else may enter (§7.2.11: <item-not-found/>).
        self.assertEqual(await bob.join_error(room, "Bob"), ("cancel", "item-not-found"))
        await alice.configure_ok(room, {"muc#roomconfig_roomname": "Configured"})
        joined = await bob.join(room, "Bob")
        self.assertIn(110, joined.codes)

    async def test_cancelled_form_unlocks_room(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await alice.get_config(room)
        self.assertEqual(await bob.join_error(room, "Bob"), ("cancel", "item-not-found"))
        # §10.1.3: cancelling the form leaves the default (instant) configuration.
        await alice.iq_ok("set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'>"
                                       "<x xmlns='jabber:x:data' type='cancel'/></query>")
        joined = await bob.join(room, "Bob")
        self.assertIn(110, joined.codes)

    async def test_join_without_nick_is_jid_malformed(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        bob = await self.client("bob")
        bob.send(f"<presence to={q(room)}><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        p = await bob.expect(is_presence(room, "error"), "error for a join without nick")
        self.assertEqual(p.xml.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}jid-malformed") is
                         not None, True, str(p))

    async def test_join_without_nick_creates_no_room(self):
        bob = await self.client("bob")
        room = self.room()
        bob.send(f"<presence to={q(room)}><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        p = await bob.expect(is_presence(room, "error"), "error for a nickless first join")
        self.assertIsNotNone(p.xml.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}jid-malformed"),
                             str(p))
        # Nothing was created: the next join with a nickname creates the room (201).
        joined = await bob.join(room, "Bob")
        self.assertIn(201, joined.codes)

    async def test_nick_change(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join")
        bob.send(f"<presence to={q(room + '/Robert')}/>")
        # §7.6: unavailable from the old nick with 303 and the new nick, then presence from
        # the new nick; Bob's own copies carry 110.
        for who, self_ in ((bob, True), (alice, False)):
            gone = await who.expect(is_unavailable(f"{room}/Bob"), "303 unavailable")
            codes = status_codes(gone)
            self.assertIn(303, codes)
            self.assertEqual(110 in codes, self_)
            self.assertEqual(muc_item(gone).get("nick"), "Robert")
            back = await who.expect(is_available(f"{room}/Robert"), "presence under new nick")
            self.assertEqual(110 in status_codes(back), self_)
            self.assertEqual(muc_item(back)["role"], "participant")
        # The new nick speaks; the old one is free for someone else.
        reflected = await bob.say(room, "I am Robert now")
        self.assertEqual(attr(reflected, "from"), f"{room}/Robert")
        carol = await self.client("carol")
        joined = await carol.join(room, "Bob")
        self.assertIn(110, joined.codes)
        self.assertEqual(sorted(attr(p, "from") for p in joined.others),
                         [f"{room}/Alice", f"{room}/Robert"])

    async def test_nick_change_conflict(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        bob.send(f"<presence to={q(room + '/Alice')}/>")
        # §7.6.3: <conflict/> and Bob keeps his nick.
        p = await bob.expect(is_presence(f"{room}/Alice", "error"), "conflict on nick change")
        self.assertEqual(p.xml.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}conflict") is not None,
                         True, str(p))
        reflected = await bob.say(room, "still Bob")
        self.assertEqual(attr(reflected, "from"), f"{room}/Bob")

    async def test_status_change_is_broadcast(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join")
        bob.send(f"<presence to={q(room + '/Bob')}><show>away</show><status>lunch</status>"
                 "</presence>")
        # §7.7: the changed presence goes to every occupant.
        p = await alice.expect(is_available(f"{room}/Bob"), "Bob's status change")
        self.assertEqual(p.xml.findtext("{jabber:client}show"), "away")
        self.assertEqual(p.xml.findtext("{jabber:client}status"), "lunch")

    async def test_leaving(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join")
        own = await bob.leave(room, "Bob")
        # §7.14: unavailable, role none, 110 for the leaver.
        self.assertEqual(muc_item(own)["role"], "none")
        p = await alice.expect(is_unavailable(f"{room}/Bob"), "Bob's leave")
        self.assertNotIn(110, status_codes(p))
        self.assertEqual(muc_item(p)["role"], "none")
        # Bob is no occupant any more: his groupchat is refused (§7.4: not-acceptable).
        bob.send_groupchat(room, "am I here?", id_="after-leave")
        err = await bob.expect(lambda s: attr(s, "id") == "after-leave", "error after leaving")
        self.assertEqual(attr(err, "type"), "error")

    async def test_custom_exit_message_is_relayed(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join")
        bob.send(f"<presence to={q(room + '/Bob')} type='unavailable'>"
                 "<status>gone where the goblins go</status></presence>")
        # XEP-0045 §7.14 "Custom Exit Message": the <status/> goes out with the unavailable
        # presence.
        p = await alice.expect(is_unavailable(f"{room}/Bob"), "Bob's exit")
        self.assertEqual(p.xml.findtext("{jabber:client}status"), "gone where the goblins go",
                         f"exit status dropped: {p}")

    async def test_concurrent_creation_has_one_creator(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        # Both joins reach the service before either is answered.
        results = await asyncio.gather(alice.join(room, "Alice"), bob.join(room, "Bob"))
        created = [j for j in results if 201 in j.codes]
        self.assertEqual(len(created), 1, "exactly one of two racing joins creates the room")
        owners = [j for j in results if j.item["affiliation"] == "owner"]
        self.assertEqual(len(owners), 1)
        self.assertIs(owners[0], created[0])

    async def test_room_name_is_case_insensitive(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        local, domain = room.split("@")
        # RFC 7622 §3.3: the localpart is case-insensitive, so this is the same room, and it
        # answers with its normalised address.
        bob.send_join(f"{local.upper()}@{domain}", "Bob")
        p = await bob.expect(lambda s: attr(s, "from") == f"{room}/Bob"
                             and (110 in status_codes(s) or attr(s, "type") == "error"),
                             "self-presence from the normalised room JID")
        self.assertIn(110, status_codes(p), str(p))
        self.assertNotIn(201, status_codes(p))
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join seen by Alice")

    async def test_disconnect_leaves_the_room(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join")
        bob.abort()  # the TCP connection drops without a stream close
        # RFC 6121 §4.6.3 / XEP-0045 §7.14: the user's server ends the directed presence.
        p = await alice.expect(is_unavailable(f"{room}/Bob"), "Bob's leave after disconnect")
        self.assertEqual(muc_item(p)["role"], "none")

    async def test_error_bounce_removes_occupant(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join")
        # XEP-0045 §7.14: an occupant whose client bounces room traffic with an error is
        # treated as gone.
        bob.send(f"<message to={q(room)} type='error' id='bounce'><error type='cancel'>"
                 "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                 "</message>")
        p = await alice.expect(is_unavailable(f"{room}/Bob"), "Bob removed after a bounce")
        self.assertEqual(muc_item(p)["role"], "none")

    async def test_two_resources_share_a_nick(self):
        alice = await self.client("alice")
        bob1 = await self.client("bob", "one")
        bob2 = await self.client("bob", "two")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob1.join(room, "Bob")
        await bob2.join(room, "Bob")
        reflected = await alice.say(room, "to both of Bob's resources")
        for b in (bob1, bob2):
            m = await b.expect(is_groupchat(f"{room}/Alice", "to both of Bob's resources"),
                               "message on each resource")
            self.assertEqual(attr(m, "id"), attr(reflected, "id"))

    async def test_temporary_room_vanishes_when_empty(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_persistentroom": False})
        await alice.say(room, "soon gone")
        await alice.leave(room, "Alice")
        # The room and its archive are gone: a new join creates it afresh (201) ...
        joined = await bob.join(room, "Bob")
        self.assertIn(201, joined.codes, "a temporary room must vanish with its last occupant")
        self.assertEqual(joined.item["affiliation"], "owner")
        self.assertEqual(joined.history, [])
        results, fin, _ = await bob.mam(room)
        self.assertEqual(results, [], "a vanished temporary room keeps no archive")

    async def test_persistent_room_stays_when_empty(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_persistentroom": True})
        await alice.say(room, "still here later")
        await alice.leave(room, "Alice")
        joined = await bob.join(room, "Bob")
        self.assertNotIn(201, joined.codes)
        self.assertEqual(joined.item["affiliation"], "none")
        self.assertEqual([body(m) for m in joined.history], ["still here later"])


class SelfPingTests(MucTestCase):
    """XEP-0410 MUC self-ping."""

    async def test_self_ping_joined_and_not_joined(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        ping = f"<ping xmlns={q(NS_PING)}/>"
        reply = await alice.iq("get", f"{room}/Alice", ping)
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        self.assertEqual(attr(reply, "from"), f"{room}/Alice")
        # §4: not joined (or no longer) => <not-acceptable/>.
        self.assertEqual(await bob.iq_error("get", f"{room}/Bob", ping),
                         ("cancel", "not-acceptable"))
        await bob.join(room, "Bob")
        self.assertEqual(attr(await bob.iq("get", f"{room}/Bob", ping), "type"), "result")
        await bob.leave(room, "Bob")
        self.assertEqual(await bob.iq_error("get", f"{room}/Bob", ping),
                         ("cancel", "not-acceptable"))

    async def test_self_ping_after_kick(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        reply = await alice.set_role(room, "Bob", "none")
        self.assertEqual(attr(reply, "type"), "result")
        await bob.expect(is_unavailable(f"{room}/Bob"), "kick")
        self.assertEqual(await bob.iq_error("get", f"{room}/Bob", f"<ping xmlns={q(NS_PING)}/>"),
                         ("cancel", "not-acceptable"))


if __name__ == "__main__":
    unittest.main()
