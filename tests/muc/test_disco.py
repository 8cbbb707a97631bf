# SPDX-License-Identifier: Apache-2.0
"""XEP-0030 service discovery on the MUC service and its rooms (XEP-0045 §6)."""

import asyncio
import unittest

from tcharness import (MUC_DOMAIN, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MAM, NS_MUC, TIMEOUT,
                       MucTestCase, attr, q)

PAIRS = [("muc_persistent", "muc_temporary"), ("muc_open", "muc_membersonly"),
         ("muc_passwordprotected", "muc_unsecured"), ("muc_moderated", "muc_unmoderated"),
         ("muc_public", "muc_hidden"), ("muc_semianonymous", "muc_nonanonymous")]


class DiscoTests(MucTestCase):

    async def test_service_info(self):
        alice = await self.client("alice")
        features, identities, _ = await alice.disco_info(MUC_DOMAIN)
        self.assertIn({"category": "conference", "type": "text"},
                      [{k: i[k] for k in ("category", "type")} for i in identities])
        self.assertIn(NS_MUC, features)
        self.assertIn(NS_MAM, features)
        # The same through slixmpp's own XEP-0030 API, as a client library would ask.
        info = await asyncio.wait_for(alice.xmpp["xep_0030"].get_info(jid=MUC_DOMAIN,
                                                                      timeout=TIMEOUT), TIMEOUT)
        self.assertIn(NS_MUC, info["disco_info"]["features"])

    async def test_service_items_list_public_rooms(self):
        alice = await self.client("alice")
        public, hidden = self.room("public"), self.room("hidden")
        await self.create_room(alice, public, "Alice", {"muc#roomconfig_roomname": "Town square",
                                                        "muc#roomconfig_publicroom": True})
        await self.create_room(alice, hidden, "Alice", {"muc#roomconfig_publicroom": False})
        reply = await alice.iq_ok("get", MUC_DOMAIN, f"<query xmlns={q(NS_DISCO_ITEMS)}/>")
        items = {i.get("jid"): i.get("name")
                 for i in reply.xml.iter(f"{{{NS_DISCO_ITEMS}}}item")}
        self.assertEqual(items.get(public), "Town square")
        self.assertNotIn(hidden, items, "a hidden room must not be listed (XEP-0045 §6.3)")
        # Made public later, it is listed.
        await alice.configure_ok(hidden, {"muc#roomconfig_publicroom": True})
        reply = await alice.iq_ok("get", MUC_DOMAIN, f"<query xmlns={q(NS_DISCO_ITEMS)}/>")
        self.assertIn(hidden, {i.get("jid") for i in reply.xml.iter(f"{{{NS_DISCO_ITEMS}}}item")})

    def _check_pairs(self, features, expected):
        for a, b in PAIRS:
            self.assertNotEqual(a in features, b in features,
                                f"exactly one of {a}/{b} expected in {sorted(features)}")
        for f in expected:
            self.assertIn(f, features)

    async def test_room_info_default(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        features, identities, forms = await bob.disco_info(room)
        self._check_pairs(features, ["muc_persistent", "muc_open", "muc_unsecured",
                                     "muc_unmoderated", "muc_public", "muc_semianonymous"])
        self.assertIn(NS_MUC, features)
        self.assertEqual([(i["category"], i["type"]) for i in identities],
                         [("conference", "text")])
        info = forms.get("http://jabber.org/protocol/muc#roominfo")
        self.assertIsNotNone(info, f"no muc#roominfo form: {forms}")
        self.assertEqual(info.get("muc#roominfo_occupants"), ["1"])
        await bob.join(room, "Bob")
        _, _, forms = await bob.disco_info(room)
        self.assertEqual(forms["http://jabber.org/protocol/muc#roominfo"]
                         .get("muc#roominfo_occupants"), ["2"])

    async def test_room_info_follows_config(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", {
            "muc#roomconfig_roomname": "Back room",
            "muc#roomconfig_roomdesc": "Where it happens",
            "muc#roomconfig_persistentroom": False,
            "muc#roomconfig_membersonly": True,
            "muc#roomconfig_passwordprotectedroom": True,
            "muc#roomconfig_roomsecret": "pw",
            "muc#roomconfig_moderatedroom": True,
            "muc#roomconfig_publicroom": False,
            "muc#roomconfig_whois": "anyone",
        })
        features, identities, forms = await bob.disco_info(room)
        self._check_pairs(features, ["muc_temporary", "muc_membersonly", "muc_passwordprotected",
                                     "muc_moderated", "muc_hidden", "muc_nonanonymous"])
        self.assertEqual(identities[0].get("name"), "Back room")
        info = forms["http://jabber.org/protocol/muc#roominfo"]
        self.assertEqual(info.get("muc#roominfo_description"), ["Where it happens"])
        await alice.set_subject(room, "Plotting")
        _, _, forms = await bob.disco_info(room)
        self.assertEqual(forms["http://jabber.org/protocol/muc#roominfo"]
                         .get("muc#roominfo_subject"), ["Plotting"])

    async def test_room_items_list_occupants(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        reply = await bob.iq_ok("get", room, f"<query xmlns={q(NS_DISCO_ITEMS)}/>")
        self.assertEqual({i.get("jid") for i in reply.xml.iter(f"{{{NS_DISCO_ITEMS}}}item")},
                         {f"{room}/Alice", f"{room}/Bob"})

    async def test_unknown_room(self):
        alice = await self.client("alice")
        room = self.room("nothing")
        reply = await alice.iq("get", room, f"<query xmlns={q(NS_DISCO_INFO)}/>")
        self.assertEqual(attr(reply, "type"), "error")
        self.assertEqual(reply.xml.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found")
                         is not None, True, str(reply))
        # Asking does not create it.
        joined = await alice.join(room, "Alice")
        self.assertIn(201, joined.codes)


if __name__ == "__main__":
    unittest.main()
