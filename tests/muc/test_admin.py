# SPDX-License-Identifier: Apache-2.0
"""XEP-0045 moderation and administration: roles (kick, voice, moderator), affiliations
(member, admin, owner, outcast), status codes 301/307/321/322, and room destruction."""

import unittest

from tcharness import (NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER, MucTestCase, attr, body,
                       error_of, is_available, is_groupchat, is_unavailable, muc_item, muc_user_x,
                       q, status_codes)


class RoleTests(MucTestCase):

    async def _room(self, config=None):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice", config)
        await bob.join(room, "Bob")
        await carol.join(room, "Carol")
        await alice.expect(is_available(f"{room}/Carol"), "Carol's join")
        await bob.expect(is_available(f"{room}/Carol"), "Carol's join")
        return alice, bob, carol, room

    async def test_kick(self):
        alice, bob, carol, room = await self._room()
        reply = await alice.set_role(room, "Bob", "none", "be nice")
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        # XEP-0045 §8.2: the kicked occupant gets 307 and 110; the others 307.
        p = await bob.expect(is_unavailable(f"{room}/Bob"), "kick presence")
        self.assertTrue({307, 110} <= status_codes(p), status_codes(p))
        item = muc_item(p)
        self.assertEqual(item["role"], "none")
        self.assertEqual(item.get("actor"), "Alice")
        self.assertEqual(item.get("reason"), "be nice")
        p = await carol.expect(is_unavailable(f"{room}/Bob"), "kick seen by others")
        self.assertIn(307, status_codes(p))
        self.assertNotIn(110, status_codes(p))
        # Bob is out: he gets no more room traffic and may not speak.
        await carol.say(room, "after the kick")
        await bob.barrier(room)
        self.assertEqual(bob.pending(is_groupchat(body_text="after the kick")), [])
        bob.send_groupchat(room, "still here?", id_="kicked-msg")
        err = await bob.expect(lambda s: attr(s, "id") == "kicked-msg", "error to kicked user")
        self.assertEqual(attr(err, "type"), "error")
        # A kick is not a ban: Bob may come back.
        joined = await bob.join(room, "Bob")
        self.assertIn(110, joined.codes)

    async def test_participant_cannot_kick(self):
        alice, bob, carol, room = await self._room()
        reply = await bob.set_role(room, "Carol", "none")
        # §8.2: only moderators may kick.
        self.assertEqual(error_of(reply), ("auth", "forbidden"))
        await carol.barrier(room)
        self.assertEqual(carol.pending(is_unavailable(f"{room}/Carol")), [])

    async def test_owner_and_admin_cannot_be_kicked(self):
        alice, bob, carol, room = await self._room()
        await alice.set_affiliation(room, carol.bare, "admin")
        await bob.expect(lambda s: is_available(f"{room}/Carol")(s)
                         and muc_item(s)["affiliation"] == "admin", "Carol made admin")
        # §8.2: a moderator cannot kick an admin or owner: <not-allowed/>.
        reply = await carol.set_role(room, "Alice", "none")
        self.assertEqual(error_of(reply), ("cancel", "not-allowed"))
        await alice.barrier(room)
        self.assertEqual(alice.pending(is_unavailable(f"{room}/Alice")), [])

    async def test_kick_unknown_nick(self):
        alice, bob, carol, room = await self._room()
        reply = await alice.set_role(room, "Nobody", "none")
        self.assertEqual(attr(reply, "type"), "error")
        self.assertEqual(error_of(reply)[1], "item-not-found")

    async def test_voice_in_moderated_room(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_moderatedroom": True})
        joined = await bob.join(room, "Bob")
        self.assertEqual(joined.item["role"], "visitor")
        await alice.expect(is_available(f"{room}/Bob"), "Bob's join")
        # §7.4: a visitor in a moderated room gets <forbidden/>; nobody receives it.
        bob.send_groupchat(room, "may I?", id_="v1")
        err = await bob.expect(lambda s: attr(s, "id") == "v1", "visitor's error")
        self.assertEqual(attr(err, "type"), "error")
        self.assertEqual(error_of(err), ("auth", "forbidden"))
        await alice.barrier(room)
        self.assertEqual(alice.pending(is_groupchat(body_text="may I?")), [])
        # §8.3: grant voice.
        reply = await alice.set_role(room, "Bob", "participant")
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        for who in (alice, bob):
            p = await who.expect(is_available(f"{room}/Bob"), "voice granted")
            self.assertEqual(muc_item(p)["role"], "participant")
        m = await bob.say(room, "thanks")
        self.assertEqual(body(m), "thanks")
        # §8.4: revoke voice.
        reply = await alice.set_role(room, "Bob", "visitor")
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        p = await bob.expect(is_available(f"{room}/Bob"), "voice revoked")
        self.assertEqual(muc_item(p)["role"], "visitor")
        bob.send_groupchat(room, "again?", id_="v2")
        err = await bob.expect(lambda s: attr(s, "id") == "v2", "visitor's error")
        self.assertEqual(error_of(err), ("auth", "forbidden"))

    async def test_moderator_role_needs_admin(self):
        alice, bob, carol, room = await self._room()
        # §9.6: a participant granted moderator by an admin (here the owner).
        reply = await alice.set_role(room, "Bob", "moderator")
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        p = await carol.expect(is_available(f"{room}/Bob"), "Bob made moderator")
        self.assertEqual(muc_item(p)["role"], "moderator")
        # A moderator without admin affiliation may not make others moderators.
        reply = await bob.set_role(room, "Carol", "moderator")
        self.assertEqual(error_of(reply), ("auth", "forbidden"))
        # But he may kick a participant.
        reply = await bob.set_role(room, "Carol", "none")
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        p = await carol.expect(is_unavailable(f"{room}/Carol"), "kicked by Bob")
        self.assertEqual(muc_item(p).get("actor"), "Bob")

    async def test_role_lists(self):
        alice, bob, carol, room = await self._room()
        reply = await alice.iq_ok("get", room, f"<query xmlns={q(NS_MUC_ADMIN)}>"
                                               "<item role='participant'/></query>")
        nicks = {i.get("nick") for i in reply.xml.iter(f"{{{NS_MUC_ADMIN}}}item")}
        self.assertEqual(nicks, {"Bob", "Carol"})
        reply = await alice.iq_ok("get", room, f"<query xmlns={q(NS_MUC_ADMIN)}>"
                                               "<item role='moderator'/></query>")
        self.assertEqual({i.get("nick") for i in reply.xml.iter(f"{{{NS_MUC_ADMIN}}}item")},
                         {"Alice"})
        # §8.5: only moderators may ask.
        self.assertEqual(await bob.iq_error("get", room, f"<query xmlns={q(NS_MUC_ADMIN)}>"
                                                         "<item role='participant'/></query>"),
                         ("auth", "forbidden"))


class AffiliationTests(MucTestCase):

    async def test_affiliation_lists(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        users = {"bob": "member", "carol": "admin", "dave": "owner", "eve": "outcast"}
        for user, aff in users.items():
            await alice.set_affiliation(room, f"{user}@localhost", aff)
        self.assertEqual(await alice.affiliation_list(room, "member"),
                         {"bob@localhost": "member"})
        self.assertEqual(await alice.affiliation_list(room, "admin"),
                         {"carol@localhost": "admin"})
        self.assertEqual(await alice.affiliation_list(room, "owner"),
                         {"alice@localhost": "owner", "dave@localhost": "owner"})
        self.assertEqual(await alice.affiliation_list(room, "outcast"),
                         {"eve@localhost": "outcast"})
        # §9.5: a member may not read the lists.
        self.assertEqual(await bob.iq_error("get", room, f"<query xmlns={q(NS_MUC_ADMIN)}>"
                                                         "<item affiliation='member'/></query>"),
                         ("auth", "forbidden"))
        # Removing an affiliation (none) takes the user off the list.
        await alice.set_affiliation(room, "bob@localhost", "none")
        self.assertEqual(await alice.affiliation_list(room, "member"), {})

    async def test_batch_is_all_or_nothing(self):
        alice, carol = await self.clients_for("alice", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        reply = await alice.admin_set(room, "<item jid='bob@localhost' affiliation='member'/>"
                                            "<item jid='dave@localhost' affiliation='member'/>")
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        self.assertEqual(set(await alice.affiliation_list(room, "member")),
                         {"bob@localhost", "dave@localhost"})
        await alice.set_affiliation(room, carol.bare, "admin")
        # An admin may not touch owners (§10.3: <not-allowed/>); the whole batch fails.
        reply = await carol.admin_set(room, "<item jid='eve@localhost' affiliation='member'/>"
                                            "<item jid='alice@localhost' affiliation='member'/>")
        self.assertEqual(attr(reply, "type"), "error", str(reply))
        self.assertEqual(error_of(reply)[1], "not-allowed")
        self.assertNotIn("eve@localhost", await alice.affiliation_list(room, "member"))
        # An admin may manage members (§9.3).
        reply = await carol.admin_set(room, "<item jid='eve@localhost' affiliation='member'/>")
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        self.assertIn("eve@localhost", await alice.affiliation_list(room, "member"))

    async def test_admin_cannot_grant_ownership(self):
        alice, carol = await self.clients_for("alice", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await alice.set_affiliation(room, carol.bare, "admin")
        reply = await carol.admin_set(room, "<item jid='dave@localhost' affiliation='owner'/>")
        self.assertEqual(error_of(reply)[1], "not-allowed")
        reply = await carol.admin_set(room, "<item jid='dave@localhost' affiliation='admin'/>")
        self.assertEqual(error_of(reply)[1], "not-allowed")
        self.assertEqual(await alice.affiliation_list(room, "owner"), {"alice@localhost": "owner"})

    async def test_sole_owner_cannot_step_down(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        # §10.7: <conflict/> when the only owner would be removed.
        reply = await alice.admin_set(room, "<item jid='alice@localhost' affiliation='admin'/>")
        self.assertEqual(error_of(reply), ("cancel", "conflict"))
        await alice.set_affiliation(room, "dave@localhost", "owner")
        await alice.set_affiliation(room, "alice@localhost", "admin")
        self.assertEqual(await alice.affiliation_list(room, "owner"), {"dave@localhost": "owner"})

    async def test_affiliation_change_updates_presence(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await carol.join(room, "Carol")
        await alice.set_affiliation(room, bob.bare, "member")
        p = await carol.expect(is_available(f"{room}/Bob"), "Bob became member")
        self.assertEqual((muc_item(p)["affiliation"], muc_item(p)["role"]),
                         ("member", "participant"))
        await alice.set_affiliation(room, bob.bare, "admin")
        p = await carol.expect(is_available(f"{room}/Bob"), "Bob became admin")
        # §10.6: an admin is a moderator.
        self.assertEqual((muc_item(p)["affiliation"], muc_item(p)["role"]), ("admin", "moderator"))
        await alice.set_affiliation(room, bob.bare, "member")
        p = await carol.expect(is_available(f"{room}/Bob"), "Bob back to member")
        self.assertEqual((muc_item(p)["affiliation"], muc_item(p)["role"]),
                         ("member", "participant"))

    async def test_ban(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await carol.join(room, "Carol")
        await alice.set_affiliation(room, bob.bare, "outcast", "spammer")
        # §9.1: 301 to the banned user (with 110) and to everyone else.
        p = await bob.expect(is_unavailable(f"{room}/Bob"), "ban presence")
        self.assertTrue({301, 110} <= status_codes(p), status_codes(p))
        self.assertEqual(muc_item(p)["affiliation"], "outcast")
        self.assertEqual(muc_item(p).get("reason"), "spammer")
        self.assertEqual(muc_item(p).get("actor"), "Alice")
        p = await carol.expect(is_unavailable(f"{room}/Bob"), "ban seen by Carol")
        self.assertIn(301, status_codes(p))
        self.assertEqual(await bob.join_error(room, "Bob"), ("auth", "forbidden"))
        self.assertEqual(await alice.affiliation_list(room, "outcast"),
                         {bob.bare: "outcast"})
        # Lifting the ban lets him in again.
        await alice.set_affiliation(room, bob.bare, "none")
        joined = await bob.join(room, "Bob")
        self.assertIn(110, joined.codes)

    async def test_ban_by_nick(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        reply = await alice.admin_set(room, "<item nick='Bob' affiliation='outcast'/>")
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        p = await bob.expect(is_unavailable(f"{room}/Bob"), "ban presence")
        self.assertIn(301, status_codes(p))
        self.assertEqual(await alice.affiliation_list(room, "outcast"), {bob.bare: "outcast"})

    async def test_321_membership_revoked_in_members_only_room(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_membersonly": True})
        await alice.set_affiliation(room, bob.bare, "member")
        await alice.set_affiliation(room, carol.bare, "member")
        await bob.join(room, "Bob")
        await carol.join(room, "Carol")
        await alice.set_affiliation(room, bob.bare, "none")
        # §9.4: removed from a members-only room with 321.
        p = await bob.expect(is_unavailable(f"{room}/Bob"), "321 presence")
        self.assertTrue({321, 110} <= status_codes(p), status_codes(p))
        p = await carol.expect(is_unavailable(f"{room}/Bob"), "321 seen by Carol")
        self.assertIn(321, status_codes(p))
        self.assertEqual(await bob.join_error(room, "Bob"), ("auth", "registration-required"))

    async def test_322_room_becomes_members_only(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await alice.set_affiliation(room, bob.bare, "member")
        await bob.join(room, "Bob")
        await carol.join(room, "Carol")
        await alice.configure_ok(room, {"muc#roomconfig_membersonly": True})
        # §10.2: non-members are removed with 322; members stay.
        p = await carol.expect(is_unavailable(f"{room}/Carol"), "322 presence")
        self.assertTrue({322, 110} <= status_codes(p), status_codes(p))
        p = await bob.expect(is_unavailable(f"{room}/Carol"), "322 seen by Bob")
        self.assertIn(322, status_codes(p))
        await bob.barrier(room)
        self.assertEqual(bob.pending(is_unavailable(f"{room}/Bob")), [])
        m = await bob.say(room, "members only now")
        self.assertEqual(body(m), "members only now")


class DestroyTests(MucTestCase):

    async def test_destroy_with_alternate_venue(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        venue = self.room("venue")
        await self.create_room(alice, room, "Alice")
        await alice.set_affiliation(room, carol.bare, "member")
        await bob.join(room, "Bob")
        await alice.say(room, "last words")
        # §10.9: only the owner may destroy.
        destroy = (f"<query xmlns={q(NS_MUC_OWNER)}><destroy jid={q(venue)}>"
                   "<reason>moving</reason></destroy></query>")
        self.assertEqual(await bob.iq_error("set", room, destroy), ("auth", "forbidden"))
        await alice.iq_ok("set", room, destroy)
        for who, nick in ((bob, "Bob"), (alice, "Alice")):
            p = await who.expect(is_unavailable(f"{room}/{nick}"), "destroy presence")
            x = muc_user_x(p)
            d = x.find(f"{{{NS_MUC_USER}}}destroy")
            self.assertIsNotNone(d, f"no <destroy/> in {p}")
            self.assertEqual(d.get("jid"), venue)
            self.assertEqual(d.findtext(f"{{{NS_MUC_USER}}}reason"), "moving")
            self.assertEqual((muc_item(p)["affiliation"], muc_item(p)["role"]), ("none", "none"))
        # The room is gone: disco says item-not-found, a join creates a new room.
        self.assertEqual((await carol.iq_error("get", room, "<query xmlns="
                                              "'http://jabber.org/protocol/disco#info'/>"))[1],
                         "item-not-found")
        joined = await carol.join(room, "Carol")
        self.assertIn(201, joined.codes)
        self.assertEqual(joined.item["affiliation"], "owner")
        self.assertEqual(joined.history, [])
        results, _, _ = await carol.mam(room)
        self.assertEqual(results, [], "a destroyed room's archive must go with it")


if __name__ == "__main__":
    unittest.main()
