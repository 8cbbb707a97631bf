# SPDX-License-Identifier: Apache-2.0
"""XEP-0352 Client State Indication: while a client says it is inactive, the presence it would
get is held (only the latest of each sender) and sent when it is active again; messages go at
once.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/muc \\
      -p test_csi.py -v
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tcharness as th  # noqa: E402

CSI = "urn:xmpp:csi:0"


def is_from(stanza, jid):
    return isinstance(stanza, th.Presence) and th.attr(stanza, "from") == jid


def show(stanza):
    return stanza.xml.findtext(f"{{{th.NS_CLIENT}}}show")


class ClientStateIndication(th.MucTestCase):

    async def test_inactive_client_gets_the_latest_presence_when_active_again(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "alice")
        alice.send(f"<inactive xmlns='{CSI}'/>")
        # A round trip: the server has handled <inactive/> before bob's presence can reach it.
        await alice.iq_ok("get", th.DOMAIN, "<ping xmlns='urn:xmpp:ping'/>")
        await bob.join(room, "bob")
        for s in ("away", "dnd"):
            bob.send(f"<presence to={th.q(room + '/bob')}><show>{s}</show></presence>")
        # A message is not held: it arrives while bob's presences wait (the room sends them
        # to alice before it, in order, so they have been held by then).
        await bob.say(room, "marker")
        await alice.expect(lambda s: th.body(s) == "marker", "the marker message")
        from_bob = [e.stanza for e in alice.inbox if is_from(e.stanza, f"{room}/bob")]
        self.assertEqual(from_bob, [], "presence reached an inactive client")
        # Active again: the held presence comes first, only the latest of bob's.
        alice.send(f"<active xmlns='{CSI}'/>")
        await bob.say(room, "after")
        await alice.expect(lambda s: th.body(s) == "after", "the message after")
        from_bob = [e.stanza for e in alice.inbox if is_from(e.stanza, f"{room}/bob")]
        self.assertEqual([show(p) for p in from_bob], ["dnd"], [str(p) for p in from_bob])


if __name__ == "__main__":
    unittest.main()
