# SPDX-License-Identifier: Apache-2.0
"""XEP-0045 §10 room configuration (the muc#owner form) and the service's [muc] limits."""

import unittest

from tcharness import (NS_MUC_OWNER, NS_ROOMCONFIG, MucTestCase, attr, body, error_of,
                       form_fields, form_types, is_available, is_presence, q, status_codes)

FORM_FIELDS = {
    "muc#roomconfig_roomname": "text-single",
    "muc#roomconfig_roomdesc": "text-single",
    "muc#roomconfig_persistentroom": "boolean",
    "muc#roomconfig_publicroom": "boolean",
    "muc#roomconfig_membersonly": "boolean",
    "muc#roomconfig_passwordprotectedroom": "boolean",
    "muc#roomconfig_roomsecret": "text-private",
    "muc#roomconfig_moderatedroom": "boolean",
    "muc#roomconfig_maxusers": None,
    "muc#roomconfig_whois": "list-single",
    "muc#roomconfig_changesubject": "boolean",
    "muc#roomconfig_allowpm": "list-single",
    "muc#maxhistoryfetch": None,
    "muc#roomconfig_allowinvites": "boolean",
    "tc#retention_days": None,
}


def truthy(values):
    return values in (["1"], ["true"])


def is_room_status(room, code):
    return lambda s: (attr(s, "from") == room and attr(s, "type") == "groupchat"
                      and code in status_codes(s))


class ConfigFormTests(MucTestCase):

    async def test_form_has_every_field(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        form = await alice.get_config(room)
        self.assertEqual(form.get("type"), "form")
        fields = form_fields(form)
        self.assertEqual(fields.get("FORM_TYPE"), [NS_ROOMCONFIG])
        types = form_types(form)
        for var, type_ in FORM_FIELDS.items():
            self.assertIn(var, fields, f"the owner form lacks {var}")
            if type_ is not None:
                self.assertEqual(types[var], type_, var)
        # The defaults of the brief: persistent (default_persistent), history 20, 200 users.
        self.assertTrue(truthy(fields["muc#roomconfig_persistentroom"]))
        self.assertEqual(fields["muc#maxhistoryfetch"], ["20"])
        self.assertEqual(fields["muc#roomconfig_maxusers"], ["200"])

    async def test_only_owners_configure(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await alice.set_affiliation(room, bob.bare, "admin")
        await bob.join(room, "Bob")
        # §10.2: <forbidden/> for anyone but an owner, even an admin.
        self.assertEqual(await bob.iq_error("get", room, f"<query xmlns={q(NS_MUC_OWNER)}/>"),
                         ("auth", "forbidden"))
        reply = await bob.configure(room, {"muc#roomconfig_roomname": "Bob's"})
        self.assertEqual(error_of(reply), ("auth", "forbidden"))
        fields = form_fields(await alice.get_config(room))
        self.assertEqual(fields["muc#roomconfig_roomname"], [""])

    async def test_values_round_trip(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        wanted = {
            "muc#roomconfig_roomname": "Round trip",
            "muc#roomconfig_roomdesc": "All the settings",
            "muc#roomconfig_persistentroom": "0",
            "muc#roomconfig_publicroom": "0",
            "muc#roomconfig_membersonly": "1",
            "muc#roomconfig_passwordprotectedroom": "1",
            "muc#roomconfig_roomsecret": "pw",
            "muc#roomconfig_moderatedroom": "1",
            "muc#roomconfig_maxusers": "42",
            "muc#roomconfig_whois": "anyone",
            "muc#roomconfig_changesubject": "1",
            "muc#roomconfig_allowpm": "participants",
            "muc#maxhistoryfetch": "7",
            "muc#roomconfig_allowinvites": "1",
            "tc#retention_days": "30",
        }
        await alice.configure_ok(room, wanted)
        fields = form_fields(await alice.get_config(room))
        for var, value in wanted.items():
            got = fields[var]
            if FORM_FIELDS.get(var) == "boolean":
                self.assertEqual(truthy(got), value == "1", var)
            else:
                self.assertEqual(got, [value], var)
        # And back.
        await alice.configure_ok(room, {"muc#roomconfig_membersonly": False,
                                        "muc#roomconfig_passwordprotectedroom": False,
                                        "muc#roomconfig_moderatedroom": False,
                                        "muc#roomconfig_whois": "moderators"})
        fields = form_fields(await alice.get_config(room))
        self.assertFalse(truthy(fields["muc#roomconfig_membersonly"]))
        self.assertFalse(truthy(fields["muc#roomconfig_moderatedroom"]))
        self.assertEqual(fields["muc#roomconfig_whois"], ["moderators"])
        # Fields not submitted keep their value.
        self.assertEqual(fields["muc#roomconfig_roomname"], ["Round trip"])

    async def test_config_change_is_announced(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.configure_ok(room, {"muc#roomconfig_roomname": "Renamed"})
        # §10.2.1: a message from the room with status 104.
        m = await bob.expect(is_room_status(room, 104), "104 notice")
        self.assertIsNone(body(m))
        await alice.expect(is_room_status(room, 104), "104 notice to the owner")
        await alice.configure_ok(room, {"muc#roomconfig_whois": "anyone"})
        m = await bob.expect(is_room_status(room, 104), "104 notice")
        # §10.2.1: 172 when the room becomes non-anonymous.
        self.assertIn(172, status_codes(m))
        await alice.configure_ok(room, {"muc#roomconfig_whois": "moderators"})
        m = await bob.expect(is_room_status(room, 104), "104 notice")
        self.assertIn(173, status_codes(m))

    async def test_invalid_values_are_not_acceptable(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        bad = [
            {"muc#roomconfig_whois": "everyone"},
            {"muc#roomconfig_allowpm": "robots"},
            {"muc#roomconfig_maxusers": "many"},
            {"muc#roomconfig_membersonly": "perhaps"},
            {"muc#maxhistoryfetch": "201"},  # above max_history (200)
            {"tc#retention_days": "-1"},
            {"tc#retention_days": "999999"},  # above retention_max_days (3650)
            {"muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": ""},
        ]
        for fields in bad:
            reply = await alice.configure(room, {"muc#roomconfig_roomname": "Changed", **fields})
            # §10.2: an unacceptable form is refused with <not-acceptable/> ...
            self.assertEqual(error_of(reply), ("modify", "not-acceptable"), fields)
        # ... and changes nothing, not even the valid fields submitted with it.
        fields = form_fields(await alice.get_config(room))
        self.assertEqual(fields["muc#roomconfig_roomname"], [""])
        self.assertEqual(fields["muc#roomconfig_whois"], ["moderators"])

    async def test_maxusers_applies(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        await alice.configure_ok(room, {"muc#roomconfig_maxusers": "2"})
        self.assertEqual(await carol.join_error(room, "Carol"), ("wait", "service-unavailable"))
        await alice.configure_ok(room, {"muc#roomconfig_maxusers": "0"})  # 0 = no limit
        joined = await carol.join(room, "Carol")
        self.assertIn(110, joined.codes)

    async def test_moderated_toggle_changes_roles(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        joined = await bob.join(room, "Bob")
        self.assertEqual(joined.item["role"], "participant")
        await alice.configure_ok(room, {"muc#roomconfig_moderatedroom": True})
        # Making the room moderated takes voice from those without an affiliation.
        p = await bob.expect(is_available(f"{room}/Bob"), "role change to visitor")
        self.assertEqual(p.xml.find(".//{http://jabber.org/protocol/muc#user}item").get("role"),
                         "visitor")
        bob.send_groupchat(room, "can I talk?", id_="mod1")
        err = await bob.expect(lambda s: attr(s, "id") == "mod1", "visitor error")
        self.assertEqual(error_of(err), ("auth", "forbidden"))


class ServiceAdminTests(MucTestCase):
    MUC_CONFIG = {"admins": ["boss@localhost"], "persistent_rooms_admin_only": True}

    async def test_service_admin_is_owner_everywhere(self):
        alice, boss = await self.clients_for("alice", "boss")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        joined = await boss.join(room, "Boss")
        self.assertEqual(joined.item["affiliation"], "owner")
        await boss.configure_ok(room, {"muc#roomconfig_roomname": "Boss was here"})
        fields = form_fields(await alice.get_config(room))
        self.assertEqual(fields["muc#roomconfig_roomname"], ["Boss was here"])

    async def test_persistent_rooms_admin_only(self):
        alice, boss = await self.clients_for("alice", "boss")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        features, _, _ = await alice.disco_info(room)
        self.assertIn("muc_temporary", features, "a non-admin's room must start temporary")
        reply = await alice.configure(room, {"muc#roomconfig_persistentroom": True})
        self.assertEqual(error_of(reply), ("modify", "not-acceptable"))
        features, _, _ = await alice.disco_info(room)
        self.assertIn("muc_temporary", features)
        # The service admin may make it persistent, and his own rooms are.
        await boss.configure_ok(room, {"muc#roomconfig_persistentroom": True})
        features, _, _ = await alice.disco_info(room)
        self.assertIn("muc_persistent", features)
        own = self.room("boss")
        await self.create_room(boss, own, "Boss")
        features, _, _ = await boss.disco_info(own)
        self.assertIn("muc_persistent", features)


class MaxRoomsTests(MucTestCase):
    MUC_CONFIG = {"max_rooms": 2}

    async def test_room_limit(self):
        alice, bob = await self.clients_for("alice", "bob")
        first, second, third = self.room("a"), self.room("b"), self.room("c")
        await self.create_room(alice, first, "Alice")
        await self.create_room(alice, second, "Alice")
        cond = await bob.join_error(third, "Bob")
        self.assertEqual(cond[0], "wait", cond)
        self.assertIn(cond[1], ("resource-constraint", "not-allowed"))
        # Joining an existing room is not creating one.
        joined = await bob.join(first, "Bob")
        self.assertIn(110, joined.codes)
        # Destroying a room frees a place.
        await alice.iq_ok("set", second, f"<query xmlns={q(NS_MUC_OWNER)}><destroy/></query>")
        await alice.expect(is_presence(f"{second}/Alice", "unavailable"), "destroy presence")
        await self.create_room(bob, third, "Bob")


class MaxPersistentRoomsTests(MucTestCase):
    MUC_CONFIG = {"max_persistent_rooms": 1}

    async def test_persistent_room_limit(self):
        alice = await self.client("alice")
        rooms = [self.room(p) for p in ("p1", "p2", "p3")]
        for r in rooms:
            await alice.join(r, "Alice")
            # Ask for persistence explicitly; the service may refuse it beyond the limit.
            await alice.configure(r, {"muc#roomconfig_persistentroom": True})
        persistent = []
        for r in rooms:
            features, _, _ = await alice.disco_info(r)
            if "muc_persistent" in features:
                persistent.append(r)
        self.assertLessEqual(len(persistent), 1,
                             f"max_persistent_rooms = 1 but {len(persistent)} rooms are "
                             f"persistent: {persistent}")


class HistoryLimitTests(MucTestCase):
    MUC_CONFIG = {"default_history": 2, "max_history": 3, "default_max_users": 2}

    async def test_service_history_limits(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {"muc#roomconfig_maxusers": "0"})
        fields = form_fields(await alice.get_config(room))
        self.assertEqual(fields["muc#maxhistoryfetch"], ["2"])
        for i in range(5):
            await alice.say(room, f"h{i}")
        joined = await bob.join(room, "Bob")
        self.assertEqual([body(m) for m in joined.history], ["h3", "h4"])
        await bob.leave(room, "Bob")
        # A client asking for more gets at most max_history.
        joined = await bob.join(room, "Bob", history={"maxstanzas": "10"})
        self.assertEqual([body(m) for m in joined.history], ["h2", "h3", "h4"])
        reply = await alice.configure(room, {"muc#maxhistoryfetch": "4"})
        self.assertEqual(error_of(reply), ("modify", "not-acceptable"))

    async def test_default_max_users(self):
        alice, bob, carol = await self.clients_for("alice", "bob", "carol")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        self.assertEqual(await carol.join_error(room, "Carol"), ("wait", "service-unavailable"))
        fields = form_fields(await alice.get_config(room))
        self.assertEqual(fields["muc#roomconfig_maxusers"], ["2"])


if __name__ == "__main__":
    unittest.main()
