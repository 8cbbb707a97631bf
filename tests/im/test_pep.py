# SPDX-License-Identifier: Apache-2.0
"""vCards (XEP-0054), private XML storage (XEP-0049) and the personal eventing service
(XEP-0163) as modern clients use it: XEP-0402 bookmarks published with publish-options and kept
private, XEP-0084 avatars and OMEMO device lists seen by contacts, events to every resource,
access models enforced, limits with clear errors, and everything surviving a restart.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/im \\
      -p test_pep.py -v
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_roster as tr  # noqa: E402
from test_roster import th  # noqa: E402

D = th.DOMAIN
PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = "http://jabber.org/protocol/pubsub#owner"
EVENT = "http://jabber.org/protocol/pubsub#event"
ERRORS = "http://jabber.org/protocol/pubsub#errors"
BOOKMARKS = "urn:xmpp:bookmarks:1"
AVATAR_META = "urn:xmpp:avatar:metadata"
OMEMO = "eu.siacs.conversations.axolotl.devicelist"


def options(**fields):
    out = ["<publish-options><x xmlns='jabber:x:data' type='submit'>",
           "<field var='FORM_TYPE' type='hidden'><value>"
           "http://jabber.org/protocol/pubsub#publish-options</value></field>"]
    for var, value in fields.items():
        out.append(f"<field var='pubsub#{var}'><value>{value}</value></field>")
    out.append("</x></publish-options>")
    return "".join(out)


def publish(node, item_id, payload, opts=""):
    return (f"<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{item_id}'>{payload}"
            f"</item></publish>{opts}</pubsub>")


def bookmark(name):
    return f"<conference xmlns='{BOOKMARKS}' name='{name}' autojoin='true'><nick>n</nick>" \
           "</conference>"


def event_items(stanza, node):
    """The <item/> elements of a pubsub event for `node` (None when it is not one)."""
    ev = th.child(stanza, EVENT, "event")
    if ev is None:
        return None
    items = ev.find(f"{{{EVENT}}}items")
    if items is None or items.get("node") != node:
        return None
    return items.findall(f"{{{EVENT}}}item")


def is_event(node):
    return lambda s: th.tag(s) == "message" and event_items(s, node) is not None


def fetched(reply, node):
    items = th.child(reply, PUBSUB, "pubsub").find(f"{{{PUBSUB}}}items")
    assert items.get("node") == node
    return {i.get("id"): i for i in items.findall(f"{{{PUBSUB}}}item")}


def pubsub_condition(reply):
    err = th.child(reply, th.NS_CLIENT, "error")
    return [c.tag.split("}")[-1] for c in err if c.tag.startswith("{" + ERRORS + "}")]


class Pep(tr.ImTestCase):
    SECTIONS = {"im": {"max_pep_item_bytes": 4096, "max_vcard_bytes": 2048}}

    async def subscribe(self, watcher, owner):
        """`watcher` subscribes to `owner`'s presence and `owner` approves."""
        watcher.send(f"<presence to='{owner.bare}' type='subscribe'/>")
        await owner.expect(tr.is_presence_of("subscribe", watcher.bare), "the request")
        owner.send(f"<presence to='{watcher.bare}' type='subscribed'/>")
        await watcher.expect(tr.is_presence_of("subscribed", owner.bare), "the approval")

    async def test_bookmarks_are_private_and_follow_the_user(self):
        phone, laptop = await self.client("alice", "phone"), await self.client("alice", "laptop")
        info = await phone.iq_ok("get", phone.bare,
                                 "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        text = str(info)
        self.assertIn("category=\"pubsub\"", text.replace("'", "\""))
        self.assertIn(f"{PUBSUB}#publish-options", text)

        # XEP-0402 §3.2: one item per room, whitelist, as many items as there are rooms.
        opts = options(persist_items="true", max_items="max", send_last_published_item="never",
                       access_model="whitelist")
        reply = await phone.iq_ok("set", phone.bare, publish(
            BOOKMARKS, f"dev@conference.{D}", bookmark("Dev"), opts))
        self.assertEqual(th.child(reply, PUBSUB, "pubsub").find(
            f"{{{PUBSUB}}}publish/{{{PUBSUB}}}item").get("id"), f"dev@conference.{D}")
        await phone.iq_ok("set", phone.bare, publish(
            BOOKMARKS, f"ops@conference.{D}", bookmark("Ops"), opts))
        for c in (phone, laptop):
            ev = await c.expect(is_event(BOOKMARKS), "the first bookmark's event")
            self.assertEqual([i.get("id") for i in event_items(ev, BOOKMARKS)],
                             [f"dev@conference.{D}"])
        got = fetched(await laptop.iq_ok(
            "get", laptop.bare, f"<pubsub xmlns='{PUBSUB}'><items node='{BOOKMARKS}'/></pubsub>"),
            BOOKMARKS)
        self.assertEqual(sorted(got), [f"dev@conference.{D}", f"ops@conference.{D}"])
        self.assertEqual(got[f"dev@conference.{D}"][0].get("name"), "Dev")

        # Publish-options that contradict the node: precondition-not-met, nothing stored.
        err = await phone.iq("set", phone.bare, publish(
            BOOKMARKS, "x@conference.localhost", bookmark("X"), options(access_model="open")))
        self.assertEqual(th.error_of(err)[1], "conflict")
        self.assertEqual(pubsub_condition(err), ["precondition-not-met"])

        # Another user, even a subscribed contact, cannot read a whitelist node.
        bob = await self.client("bob")
        await self.subscribe(bob, phone)
        err = await bob.iq("get", phone.bare,
                           f"<pubsub xmlns='{PUBSUB}'><items node='{BOOKMARKS}'/></pubsub>")
        self.assertEqual(th.error_of(err)[1], "not-authorized")
        self.assertEqual(bob.pending(is_event(BOOKMARKS)), [], "no bookmark event for bob")

        # Retract with notify: every resource hears it; the item is gone.
        await phone.iq_ok("set", phone.bare,
                          f"<pubsub xmlns='{PUBSUB}'><retract node='{BOOKMARKS}' notify='true'>"
                          f"<item id='ops@conference.{D}'/></retract></pubsub>")
        ev = await laptop.expect(
            lambda s: th.child(s, EVENT, "event") is not None
            and s.xml.find(f".//{{{EVENT}}}retract") is not None, "the retraction event")
        self.assertEqual(ev.xml.find(f".//{{{EVENT}}}retract").get("id"), f"ops@conference.{D}")

        # send_last_published_item=never: a resource coming online is not sent them.
        tablet = await self.client("alice", "tablet0")
        await tr.online(tablet)
        self.assertEqual(tablet.pending(is_event(BOOKMARKS)), [])

        # The bookmarks survive a restart.
        self.broker.kill()
        self.broker.start()
        again = await self.client("alice", "tablet")
        got = fetched(await again.iq_ok(
            "get", again.bare, f"<pubsub xmlns='{PUBSUB}'><items node='{BOOKMARKS}'/></pubsub>"),
            BOOKMARKS)
        self.assertEqual(list(got), [f"dev@conference.{D}"])

    async def test_avatars_and_device_lists_reach_subscribed_contacts(self):
        carol, dave, eve = [await self.client(u) for u in ("carol", "dave", "eve")]
        await self.subscribe(dave, carol)  # dave sees carol's presence; eve does not
        meta = (f"<metadata xmlns='{AVATAR_META}'><info bytes='1' id='abc' height='1' "
                "width='1' type='image/png'/></metadata>")
        await carol.iq_ok("set", carol.bare, publish(AVATAR_META, "abc", meta))
        ev = await dave.expect(is_event(AVATAR_META), "carol's avatar event")
        self.assertEqual(th.attr(ev, "from"), carol.bare)
        self.assertEqual([i.get("id") for i in event_items(ev, AVATAR_META)], ["abc"])
        got = fetched(await dave.iq_ok(
            "get", carol.bare, f"<pubsub xmlns='{PUBSUB}'><items node='{AVATAR_META}'/></pubsub>"),
            AVATAR_META)
        self.assertEqual(list(got), ["abc"])
        # eve has no subscription: the presence access model keeps her out.
        err = await eve.iq("get", carol.bare,
                           f"<pubsub xmlns='{PUBSUB}'><items node='{AVATAR_META}'/></pubsub>")
        self.assertEqual(th.error_of(err)[1], "not-authorized")
        self.assertEqual(pubsub_condition(err), ["presence-subscription-required"])

        # A PEP node keeps its last item by default.
        await carol.iq_ok("set", carol.bare, publish(AVATAR_META, "def", meta))
        got = fetched(await carol.iq_ok(
            "get", carol.bare, f"<pubsub xmlns='{PUBSUB}'><items node='{AVATAR_META}'/></pubsub>"),
            AVATAR_META)
        self.assertEqual(list(got), ["def"])

        # OMEMO device lists are open: anyone may fetch them (a first message to a stranger).
        devices = "<list xmlns='eu.siacs.conversations.axolotl'><device id='12345'/></list>"
        await carol.iq_ok("set", carol.bare,
                          publish(OMEMO, "current", devices, options(access_model="open")))
        got = fetched(await eve.iq_ok(
            "get", carol.bare, f"<pubsub xmlns='{PUBSUB}'><items node='{OMEMO}'/></pubsub>"),
            OMEMO)
        self.assertEqual(got["current"][0][0].get("id"), "12345")

        # A resource of dave that comes online gets the last item of each of carol's nodes
        # (XEP-0163 §6.2), as his phone does after a reconnect; eve, not subscribed, gets none.
        dave2 = await self.client("dave", "phone")
        await tr.online(dave2)
        ev = await dave2.expect(is_event(AVATAR_META), "carol's last avatar on login")
        self.assertEqual([i.get("id") for i in event_items(ev, AVATAR_META)], ["def"])
        await dave2.expect(is_event(OMEMO), "carol's device list on login")
        eve2 = await self.client("eve", "phone")
        await tr.online(eve2)
        self.assertEqual(eve2.pending(is_event(AVATAR_META)), [])

        # Node configuration: read, changed, then the node deleted (its subscribers told).
        form = await carol.iq_ok("get", carol.bare, f"<pubsub xmlns='{OWNER}'>"
                                 f"<configure node='{OMEMO}'/></pubsub>")
        fields = th.form_fields(form.xml.find(f".//{{{th.NS_XDATA}}}x"))
        self.assertEqual(fields["pubsub#access_model"], ["open"])
        await carol.iq_ok("set", carol.bare, f"<pubsub xmlns='{OWNER}'><delete node='{OMEMO}'/>"
                          "</pubsub>")
        await dave.expect(lambda s: s.xml.find(f".//{{{EVENT}}}delete") is not None,
                          "the deletion event")
        err = await eve.iq("get", carol.bare,
                           f"<pubsub xmlns='{PUBSUB}'><items node='{OMEMO}'/></pubsub>")
        self.assertEqual(th.error_of(err)[1], "item-not-found")
        # With its legacy code (XEP-0086): profanity's OMEMO reads only that.
        self.assertEqual(th.child(err, th.NS_CLIENT, "error").get("code"), "404")

    async def test_a_client_that_names_its_interests_gets_only_those(self):
        carol, dave = await self.client("boss", "pub"), await self.client("frank", "all")
        await self.subscribe(dave, carol)
        meta = (f"<metadata xmlns='{AVATAR_META}'><info bytes='1' id='one' height='1' "
                "width='1' type='image/png'/></metadata>")
        await carol.iq_ok("set", carol.bare, publish(AVATAR_META, "one", meta))
        await carol.iq_ok("set", carol.bare, publish("urn:example:other", "x",
                                                     "<other xmlns='urn:example:other'/>"))
        # A client with XEP-0115 caps: the server asks it what they mean, once.
        picky = await self.client("frank", "picky")
        caps = "https://example.org/picky#QgayPKawpkPSDYmwT/WM94uAlu0="
        # What the client answers for its caps node (slixmpp's XEP-0030 plugin replies).
        for feature in (f"{AVATAR_META}+notify", "urn:xmpp:ping"):
            picky.xmpp["xep_0030"].add_feature(feature, node=caps, jid=picky.xmpp.boundjid)
        picky.send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                   "node='https://example.org/picky' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
                   "</presence>")
        ask = await picky.expect(
            lambda s: th.tag(s) == "iq" and th.attr(s, "type") == "get"
            and (th.attr(s, "id") or "").startswith("caps-"), "the server's disco#info query")
        query = th.child(ask, "http://jabber.org/protocol/disco#info", "query")
        self.assertEqual(query.get("node"), caps)
        ev = await picky.expect(is_event(AVATAR_META), "the avatar it asked for")
        self.assertEqual([i.get("id") for i in event_items(ev, AVATAR_META)], ["one"])
        # New items: the picky client gets the avatar only; the one without caps gets both.
        await carol.iq_ok("set", carol.bare, publish("urn:example:other", "y",
                                                     "<other xmlns='urn:example:other'/>"))
        await carol.iq_ok("set", carol.bare, publish(AVATAR_META, "two", meta))
        await picky.expect(lambda s: is_event(AVATAR_META)(s)
                           and event_items(s, AVATAR_META)[0].get("id") == "two", "avatar two")
        await dave.expect(lambda s: is_event("urn:example:other")(s)
                          and event_items(s, "urn:example:other")[0].get("id") == "y", "other y")
        self.assertEqual(picky.pending(is_event("urn:example:other")), [],
                         "an event it did not ask for")

    async def test_limits_and_bad_requests(self):
        frank = await self.client("frank")
        big = "<data xmlns='urn:xmpp:avatar:data'>" + "A" * 5000 + "</data>"
        err = await frank.iq("set", frank.bare, publish("urn:xmpp:avatar:data", "x", big))
        self.assertEqual(th.error_of(err)[1], "not-acceptable")
        self.assertIn("im.max_pep_item_bytes", str(err))
        err = await frank.iq("set", frank.bare, f"<pubsub xmlns='{PUBSUB}'><publish node='n'/>"
                             "</pubsub>")
        self.assertEqual(th.error_of(err)[1], "bad-request")
        boss = await self.client("boss")
        err = await boss.iq("set", frank.bare, publish("n", "1", "<x xmlns='urn:x'/>"))
        self.assertEqual(th.error_of(err)[1], "forbidden", "only the owner publishes")
        err = await frank.iq("set", frank.bare, "<vCard xmlns='vcard-temp'><DESC>" + "d" * 3000
                             + "</DESC></vCard>")
        self.assertEqual(th.error_of(err)[1], "not-acceptable")
        self.assertIn("im.max_vcard_bytes", str(err))


class VcardAndPrivate(tr.ImTestCase):

    async def test_vcards_are_set_by_their_owner_and_read_by_anyone(self):
        alice, bob = await self.client("alice"), await self.client("bob")
        empty = await bob.iq_ok("get", alice.bare, "<vCard xmlns='vcard-temp'/>")
        self.assertEqual(len(th.child(empty, "vcard-temp", "vCard")), 0, "none yet: empty")
        await alice.iq_ok("set", alice.bare, "<vCard xmlns='vcard-temp'><FN>Alice A.</FN>"
                          "<PHOTO><TYPE>image/png</TYPE><BINVAL>AAAA</BINVAL></PHOTO></vCard>")
        for who, to in ((alice, None), (bob, alice.bare)):
            payload = "<vCard xmlns='vcard-temp'/>"
            reply = await (who.iq_ok("get", to, payload) if to else who.iq_ok(
                "get", who.bare, payload))
            self.assertEqual(th.child(reply, "vcard-temp", "vCard").findtext(
                "{vcard-temp}FN"), "Alice A.")
        err = await bob.iq("set", alice.bare, "<vCard xmlns='vcard-temp'><FN>x</FN></vCard>")
        self.assertEqual(th.error_of(err)[1], "forbidden")
        info = await bob.iq_ok("get", D, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        for feature in ("vcard-temp", "jabber:iq:private", "msgoffline", "jabber:iq:roster"):
            self.assertIn(f'var="{feature}"', str(info).replace("'", '"'))

    async def test_private_storage_keeps_each_namespace(self):
        c = await self.client("carol")
        legacy = ("<storage xmlns='storage:bookmarks'><conference jid='dev@conference.localhost' "
                  "autojoin='true' name='Dev'/></storage>")
        await c.iq_ok("set", c.bare, f"<query xmlns='jabber:iq:private'>{legacy}</query>")
        reply = await c.iq_ok("get", c.bare, "<query xmlns='jabber:iq:private'>"
                              "<storage xmlns='storage:bookmarks'/></query>")
        conf = reply.xml.find(".//{storage:bookmarks}conference")
        self.assertEqual(conf.get("name"), "Dev")
        other = await c.iq_ok("get", c.bare, "<query xmlns='jabber:iq:private'>"
                              "<prefs xmlns='urn:example:prefs'/></query>")
        self.assertIsNotNone(other.xml.find(".//{urn:example:prefs}prefs"), "empty when unset")
        err = await c.iq("get", c.bare, "<query xmlns='jabber:iq:private'><x/></query>")
        self.assertEqual(th.error_of(err)[1], "not-acceptable")
        dave = await self.client("dave")
        err = await dave.iq("get", c.bare, "<query xmlns='jabber:iq:private'>"
                            "<storage xmlns='storage:bookmarks'/></query>")
        self.assertEqual(th.error_of(err)[1], "service-unavailable", "nobody else's")


if __name__ == "__main__":
    unittest.main()
