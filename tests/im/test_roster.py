# SPDX-License-Identifier: Apache-2.0
"""Rosters and presence subscriptions (RFC 6121 §2-§4) and offline messages (XEP-0160), with
real slixmpp clients against a real broker: roster get/set/remove with pushes to every resource
and XEP-0237 versions, the subscription handshake in both directions with presence following
it, requests and messages kept for users who are offline, and all of it surviving a restart.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/im \\
      -p test_roster.py -v
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "muc"))

import tcharness as th  # noqa: E402

ROSTER = "jabber:iq:roster"
D = th.DOMAIN


def items(reply):
    """{jid: item element} of a roster result or push."""
    query = th.child(reply, ROSTER, "query")
    return {} if query is None else {i.get("jid"): i for i in query.findall(f"{{{ROSTER}}}item")}


def is_push(jid=None):
    def pred(s):
        if th.tag(s) != "iq" or th.attr(s, "type") != "set":
            return False
        return jid is None or jid in items(s)
    return pred


def is_presence_of(type_, frm):
    """A presence of `type_` (None: available) whose from is `frm` or a resource of it."""
    def pred(s):
        f = th.attr(s, "from") or ""
        return (th.tag(s) == "presence" and th.attr(s, "type") == type_
                and (f == frm or f.startswith(frm + "/")))
    return pred


async def roster(c, ver=None):
    extra = "" if ver is None else f" ver={th.q(ver)}"
    return await c.iq_ok("get", c.bare, f"<query xmlns='{ROSTER}'{extra}/>")


async def online(c, show=None):
    """Initial presence; returns once the server has handled it (a ping round trip)."""
    c.send("<presence>" + (f"<show>{show}</show>" if show else "") + "</presence>")
    await c.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")


class ImTestCase(th.MucTestCase):
    """Clients that answer nothing on their own: slixmpp approves every subscription request
    and subscribes back unless told not to, which would hide what the server does."""

    async def client(self, user, resource="r", broker=None):
        c = await super().client(user, resource, broker)
        c.xmpp.auto_authorize = None
        c.xmpp.auto_subscribe = False
        return c


class Roster(ImTestCase):

    async def test_set_get_push_version_and_remove(self):
        r1, r2 = await self.client("alice", "r1"), await self.client("alice", "r2")
        first = await roster(r1)
        self.assertEqual(items(first), {})
        ver0 = th.child(first, ROSTER, "query").get("ver")
        self.assertTrue(ver0, "a roster result carries its version (XEP-0237)")

        await r1.iq_ok("set", r1.bare,
                       f"<query xmlns='{ROSTER}'><item jid='carol@{D}' name='Carol'>"
                       "<group>Friends</group><group>Work</group></item></query>")
        for c in (r1, r2):
            push = await c.expect(is_push(f"carol@{D}"), "the roster push")
            item = items(push)[f"carol@{D}"]
            self.assertEqual(item.get("name"), "Carol")
            self.assertEqual(item.get("subscription"), "none")
            self.assertEqual(sorted(g.text for g in item), ["Friends", "Work"])
            self.assertEqual(th.attr(push, "from", c.bare), c.bare)
        ver1 = th.child(push, ROSTER, "query").get("ver")
        self.assertNotEqual(ver1, ver0)

        got = await roster(r2)
        self.assertEqual(list(items(got)), [f"carol@{D}"])
        self.assertEqual(th.child(got, ROSTER, "query").get("ver"), ver1)
        # The client's copy is current: an empty result, no query (XEP-0237 §2.3).
        current = await roster(r2, ver=ver1)
        self.assertIsNone(th.child(current, ROSTER, "query"))
        stale = await roster(r2, ver=ver0)
        self.assertEqual(list(items(stale)), [f"carol@{D}"])

        # Rename: the item keeps its subscription, the version moves on.
        await r2.iq_ok("set", r2.bare,
                       f"<query xmlns='{ROSTER}'><item jid='carol@{D}' name='C.'/></query>")
        for c in (r1, r2):
            push = await c.expect(is_push(f"carol@{D}"), "the rename push")
            self.assertEqual(items(push)[f"carol@{D}"].get("name"), "C.")
            self.assertEqual(list(items(push)[f"carol@{D}"]), [], "groups replaced by none")

        await r1.iq_ok("set", r1.bare, f"<query xmlns='{ROSTER}'><item jid='carol@{D}' "
                       "subscription='remove'/></query>")
        for c in (r1, r2):
            push = await c.expect(is_push(f"carol@{D}"), "the removal push")
            self.assertEqual(items(push)[f"carol@{D}"].get("subscription"), "remove")
        self.assertEqual(items(await roster(r1)), {})

    async def test_bad_sets_are_refused_clearly(self):
        c = await self.client("bob")
        cases = [
            (f"<item jid='a@{D}'/><item jid='b@{D}'/>", "bad-request"),
            (f"<item jid='a@{D}/res'/>", "bad-request"),
            (f"<item jid='a@{D}'><group>x</group><group>x</group></item>", "bad-request"),
            (f"<item jid='a@{D}'><group></group></item>", "not-acceptable"),
            ("<item jid='@@bad'/>", "bad-request"),
            (f"<item jid='nobody-here@{D}' subscription='remove'/>", "item-not-found"),
        ]
        for payload, condition in cases:
            err = await c.iq_error("set", c.bare, f"<query xmlns='{ROSTER}'>{payload}</query>")
            self.assertEqual(err[1], condition, payload)
        self.assertEqual(items(await roster(c)), {}, "nothing was stored")

    async def test_roster_survives_a_restart(self):
        c = await self.client("dave")
        await c.iq_ok("set", c.bare, f"<query xmlns='{ROSTER}'><item jid='eve@{D}' name='E'/>"
                      "</query>")
        await c.close()
        self.broker.kill()
        self.broker.start()
        again = await self.client("dave")
        self.assertEqual(items(await roster(again))[f"eve@{D}"].get("name"), "E")


class Subscriptions(ImTestCase):

    async def test_handshake_both_ways_then_unsubscribe(self):
        alice, bob = await self.client("alice", "a"), await self.client("bob", "b")
        await online(bob, show="dnd")
        await online(alice)

        # alice asks for bob's presence: her item shows the pending request, bob is asked.
        alice.send(f"<presence to='bob@{D}' type='subscribe'/>")
        push = await alice.expect(is_push(f"bob@{D}"), "alice's push (ask)")
        self.assertEqual(items(push)[f"bob@{D}"].get("ask"), "subscribe")
        request = await bob.expect(is_presence_of("subscribe", f"alice@{D}"), "the request")
        self.assertEqual(th.attr(request, "from"), f"alice@{D}", "bare JID (RFC 6121 §3.1.2)")

        # bob approves: both rosters change, alice learns it and gets bob's presence.
        bob.send(f"<presence to='alice@{D}' type='subscribed'/>")
        push = await bob.expect(is_push(f"alice@{D}"), "bob's push (from)")
        self.assertEqual(items(push)[f"alice@{D}"].get("subscription"), "from")
        push = await alice.expect(is_push(f"bob@{D}"), "alice's push (to)")
        self.assertEqual(items(push)[f"bob@{D}"].get("subscription"), "to")
        self.assertIsNone(items(push)[f"bob@{D}"].get("ask"))
        await alice.expect(is_presence_of("subscribed", f"bob@{D}"), "subscribed")
        avail = await alice.expect(is_presence_of(None, f"bob@{D}/b"), "bob's presence")
        self.assertEqual(th.child(avail, th.NS_CLIENT, "show").text, "dnd")

        # bob's changes reach alice; alice's do not reach bob (she has 'to' only).
        bob.send("<presence><show>away</show></presence>")
        avail = await alice.expect(is_presence_of(None, f"bob@{D}/b"), "bob's update")
        self.assertEqual(th.child(avail, th.NS_CLIENT, "show").text, "away")
        alice.send("<presence><show>chat</show></presence>")
        await bob.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")
        await alice.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(bob.pending(is_presence_of(None, f"alice@{D}/a")), [])

        # A second resource of alice that comes online is sent bob's presence (a probe).
        a2 = await self.client("alice", "a2")
        await online(a2)
        await a2.expect(is_presence_of(None, f"bob@{D}/b"), "bob's presence on a2")

        # bob subscribes back; alice approves: 'both'.
        bob.send(f"<presence to='alice@{D}' type='subscribe'/>")
        push = await bob.expect(is_push(f"alice@{D}"), "bob's push (from, ask)")
        self.assertEqual(items(push)[f"alice@{D}"].get("ask"), "subscribe")
        await alice.expect(is_presence_of("subscribe", f"bob@{D}"), "bob's request")
        alice.send(f"<presence to='bob@{D}' type='subscribed'/>")
        push = await alice.expect(is_push(f"bob@{D}"), "alice's push (both)")
        self.assertEqual(items(push)[f"bob@{D}"].get("subscription"), "both")
        push = await bob.expect(is_push(f"alice@{D}"), "bob's push (both)")
        self.assertEqual(items(push)[f"alice@{D}"].get("subscription"), "both")
        await bob.expect(is_presence_of(None, f"alice@{D}/a"), "alice's presence")

        # alice stops listening to bob: she gets bob's unavailable, bob gets the unsubscribe.
        alice.send(f"<presence to='bob@{D}' type='unsubscribe'/>")
        push = await alice.expect(is_push(f"bob@{D}"), "alice's push (from)")
        self.assertEqual(items(push)[f"bob@{D}"].get("subscription"), "from")
        await bob.expect(is_presence_of("unsubscribe", f"alice@{D}"), "the unsubscribe")
        await alice.expect(is_presence_of("unavailable", f"bob@{D}/b"), "bob gone for alice")

        # bob going offline is still told to... nobody on alice's side; alice going offline
        # reaches bob (he has 'to').
        await a2.close()
        alice.send("<presence type='unavailable'/>")
        await bob.expect(is_presence_of("unavailable", f"alice@{D}/a"), "alice unavailable")

    async def test_request_waits_for_an_offline_contact_and_can_be_denied(self):
        dave = await self.client("dave")
        await online(dave)
        dave.send(f"<presence to='carol@{D}' type='subscribe'><status>hi, it's dave</status>"
                  "</presence>")
        await dave.expect(is_push(f"carol@{D}"), "dave's push (ask)")

        carol = await self.client("carol")
        await online(carol)
        request = await carol.expect(is_presence_of("subscribe", f"dave@{D}"),
                                     "the request kept while carol was offline")
        self.assertEqual(th.child(request, th.NS_CLIENT, "status").text, "hi, it's dave")
        carol.send(f"<presence to='dave@{D}' type='unsubscribed'/>")
        await dave.expect(is_presence_of("unsubscribed", f"carol@{D}"), "the denial")
        push = await dave.expect(is_push(f"carol@{D}"), "dave's push (denied)")
        item = items(push)[f"carol@{D}"]
        self.assertEqual(item.get("subscription"), "none")
        self.assertIsNone(item.get("ask"))

        # Answered: carol's next login is not asked again.
        await carol.close()
        carol = await self.client("carol", "again")
        await online(carol)
        await carol.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(carol.pending(is_presence_of("subscribe", f"dave@{D}")), [])

    async def test_subscribing_to_nobody_is_answered_unsubscribed(self):
        eve = await self.client("eve")
        eve.send(f"<presence to='no-such-user@{D}' type='subscribe'/>")
        await eve.expect(is_presence_of("unsubscribed", f"no-such-user@{D}"), "unsubscribed")

    async def test_a_client_probe_goes_nowhere(self):
        frank, boss = await self.client("frank"), await self.client("boss")
        await online(boss)
        frank.send(f"<presence to='boss@{D}' type='probe'/>")
        await frank.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")
        await boss.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(frank.pending(is_presence_of(None, f"boss@{D}/r")), [],
                         "boss's presence without a subscription")


class Offline(ImTestCase):
    SECTIONS = {"im": {"max_offline_messages": 3}}

    async def test_messages_wait_for_login_in_order_once(self):
        bob = await self.client("bob")
        for i in range(3):
            reply_id = th.Client.new_id("m")
            bob.send(f"<message to='alice@{D}' type='chat' id={th.q(reply_id)}>"
                     f"<body>while you were out {i}</body></message>")
        # Not stored: a headline, a body-less chat state, and a fourth message (full).
        bob.send(f"<message to='alice@{D}' type='headline'><body>news</body></message>")
        bob.send(f"<message to='alice@{D}' type='chat'><active xmlns="
                 "'http://jabber.org/protocol/chatstates'/></message>")
        bob.send(f"<message to='alice@{D}' type='chat' id='over'><body>one too many</body>"
                 "</message>")
        err = await bob.expect(lambda s: th.attr(s, "id") == "over", "the refusal")
        self.assertEqual(th.error_of(err), ("wait", "resource-constraint"))
        # To nobody: an error at once.
        bob.send(f"<message to='ghost@{D}' type='chat' id='ghost'><body>boo</body></message>")
        err = await bob.expect(lambda s: th.attr(s, "id") == "ghost", "the ghost's error")
        self.assertEqual(th.error_of(err)[1], "service-unavailable")

        alice = await self.client("alice")
        await online(alice)
        got = await alice.expect_n(lambda s: (th.body(s) or "").startswith("while you"), 3,
                                   "an offline message")
        self.assertEqual([th.body(m) for m in got],
                         [f"while you were out {i}" for i in range(3)])
        for m in got:
            self.assertEqual(th.attr(m, "from"), f"bob@{D}/r")
            self.assertIsNotNone(th.delay(m), "stamped with when it was sent (XEP-0203)")
        await alice.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(alice.pending(lambda s: th.body(s) in ("news", "one too many")), [])

        # Delivered once: the next login finds nothing.
        await alice.close()
        again = await self.client("alice", "again")
        await online(again)
        await again.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")
        self.assertEqual(again.pending(lambda s: th.body(s) is not None), [])

    async def test_stored_messages_survive_a_restart(self):
        dave = await self.client("dave")
        dave.send(f"<message to='carol@{D}' type='chat'><body>kept</body></message>")
        # The sender's ack is the commit: a round trip after it means it is stored.
        await dave.iq_ok("get", D, "<ping xmlns='urn:xmpp:ping'/>")
        await dave.close()
        self.broker.kill()
        self.broker.start()
        carol = await self.client("carol")
        await online(carol)
        await carol.expect(lambda s: th.body(s) == "kept", "the message from before the crash")


if __name__ == "__main__":
    unittest.main()
