# SPDX-License-Identifier: Apache-2.0
"""XEP-0280 Message Carbons on one node: a user's resources that enabled carbons see copies of
the chats its other resources send and receive; others see nothing; <private/> is not copied.
(Across the nodes of a pair: tests/ha/test_anynode.py.)

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/muc \\
      -p test_carbons.py -v
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tcharness as th  # noqa: E402

NS = "urn:xmpp:carbons:2"
FORWARD = "urn:xmpp:forward:0"


def carbon(stanza, kind):
    """The message a <sent/> or <received/> carbon wraps, or None."""
    wrapper = stanza.xml.find(f"{{{NS}}}{kind}")
    if wrapper is None:
        return None
    return wrapper.find(f"{{{FORWARD}}}forwarded/{{{th.NS_CLIENT}}}message")


def has_carbon(stanza):
    return carbon(stanza, "sent") is not None or carbon(stanza, "received") is not None


class Carbons(th.MucTestCase):

    async def enable(self, c):
        reply = await c.iq("set", f"alice@{th.DOMAIN}", f"<enable xmlns='{NS}'/>")
        self.assertEqual(th.attr(reply, "type"), "result", str(reply))

    async def no_copies_before_a_sentinel(self, sender, resource, text_, why):
        """`sender` writes `text_` to `resource` (one of alice's clients); once it arrives, nothing
        unconsumed before it may be a carbon (deliveries from one sender keep their order)."""
        sender.send(f"<message to={th.q(resource.jid)} type='chat' "
                    f"id={th.q(th.Client.new_id('s'))}><body>{text_}</body></message>")
        await resource.expect(lambda s: th.body(s) == text_, f"the sentinel {text_!r}")
        self.assertFalse(any(has_carbon(e.stanza) for e in resource.inbox if not e.consumed),
                         why)

    async def test_other_resources_see_sent_and_received_chats(self):
        r1, r2, r3 = [await self.client("alice", r) for r in ("r1", "r2", "r3")]
        bob = await self.client("bob", "x")
        info = await r1.iq("get", th.DOMAIN,
                           "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        self.assertIn(NS, str(info))
        await self.enable(r1)
        await self.enable(r2)
        # r3 did not enable carbons.

        # Received: bob writes to r1; r2 gets a copy wrapped in <received/>.
        bob.send(f"<message to='alice@{th.DOMAIN}/r1' type='chat' id='c1'><body>hi r1</body>"
                 "</message>")
        await r1.expect(lambda s: th.body(s) == "hi r1", "the original on r1")
        copy = await r2.expect(lambda s: carbon(s, "received") is not None, "a received carbon")
        self.assertEqual(th.attr(copy, "from"), f"alice@{th.DOMAIN}")
        inner = carbon(copy, "received")
        self.assertEqual(inner.get("from"), f"bob@{th.DOMAIN}/x")
        self.assertEqual(inner.get("to"), f"alice@{th.DOMAIN}/r1")
        self.assertEqual(inner.findtext(f"{{{th.NS_CLIENT}}}body"), "hi r1")

        # Sent: r1 writes to bob; r2 gets a <sent/> copy, r1 none.
        r1.send(f"<message to='bob@{th.DOMAIN}' type='chat' id='c2'><body>hi bob</body>"
                "</message>")
        await bob.expect(lambda s: th.body(s) == "hi bob", "r1's message")
        copy = await r2.expect(lambda s: carbon(s, "sent") is not None, "a sent carbon")
        inner = carbon(copy, "sent")
        self.assertEqual(inner.get("from"), f"alice@{th.DOMAIN}/r1")
        # The copy names the message's id in alice's own archive, not in bob's.
        self.assertEqual([s.get("by") for s in inner.findall("{urn:xmpp:sid:0}stanza-id")],
                         [f"alice@{th.DOMAIN}"])
        self.assertEqual(inner.findtext(f"{{{th.NS_CLIENT}}}body"), "hi bob")

        # <private/> is not copied; a sentinel afterwards shows r2 got nothing before it.
        r1.send(f"<message to='bob@{th.DOMAIN}' type='chat' id='c3'><body>secret</body>"
                f"<private xmlns='{NS}'/></message>")
        await bob.expect(lambda s: th.body(s) == "secret", "the private message")
        await self.no_copies_before_a_sentinel(bob, r2, "sentinel",
                                               "r2 got a copy of a <private/> message")
        # r3 never enabled carbons: a message to it shows it got no copies before.
        bob.send(f"<message to='alice@{th.DOMAIN}/r3' type='chat' id='c5'><body>to r3</body>"
                 "</message>")
        await r3.expect(lambda s: th.body(s) == "to r3", "a message to r3")
        self.assertFalse(any(has_carbon(e.stanza) for e in r3.inbox),
                         "r3 got carbons without enabling them")
        # ... while r2, which enabled them, saw that message to r3 as a received carbon.
        await r2.expect(lambda s: carbon(s, "received") is not None
                        and carbon(s, "received").findtext(f"{{{th.NS_CLIENT}}}body") == "to r3",
                        "the carbon of the message to r3")
        # Disabled: no more copies.
        reply = await r2.iq("set", f"alice@{th.DOMAIN}", f"<disable xmlns='{NS}'/>")
        self.assertEqual(th.attr(reply, "type"), "result", str(reply))
        bob.send(f"<message to='alice@{th.DOMAIN}/r1' type='chat' id='c6'><body>after</body>"
                 "</message>")
        await r1.expect(lambda s: th.body(s) == "after", "the original on r1")
        await self.no_copies_before_a_sentinel(bob, r2, "sentinel2",
                                               "r2 got a copy after disabling carbons")


if __name__ == "__main__":
    unittest.main()
