# SPDX-License-Identifier: Apache-2.0
"""A WebSocket session (RFC 7395) on a node that fails over is moved like any other: it gets a
stream error and <close/>, logs in again through the peer's WebSocket listener, and finds the
room there with its whole archive.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/ha \\
      -p test_web.py -v
"""

import asyncio
import os
import sys
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "web"))

from haharness import th  # noqa: E402
from test_ha import CANDIDATES, CSD, FOCSNR, HaTestCase, RIBM  # noqa: E402
import wsclient as w  # noqa: E402

NS_MUC = "http://jabber.org/protocol/muc"


class WebFailover(HaTestCase):

    async def join(self, web, room, nick):
        await web.send(f"<presence xmlns='jabber:client' to='{room}/{nick}'>"
                       f"<x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>")
        joined = await web.expect(lambda e: e.tag == "{jabber:client}presence"
                                  and e.get("from") == f"{room}/{nick}", f"{nick} in {room}")
        self.assertNotEqual(joined.get("type"), "error", ET.tostring(joined))

    async def say(self, web, room, text_, id_):
        await web.send(f"<message xmlns='jabber:client' to='{room}' type='groupchat' "
                       f"id='{id_}'><body>{text_}</body></message>")
        echo = await web.expect(lambda e: e.get("id") == id_, f"reflection of {id_}")
        self.assertEqual(echo.get("type"), "groupchat", ET.tostring(echo))

    async def archive(self, web, room):
        await web.send(f"<iq xmlns='jabber:client' type='set' id='mam' to='{room}'>"
                       "<query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>")
        bodies = []
        while True:
            el = await web.recv()
            if el.get("id") == "mam":
                self.assertEqual(el.get("type"), "result", ET.tostring(el))
                return bodies
            found = el.find("{urn:xmpp:mam:2}result")
            if found is not None:
                bodies.append(found.findtext(".//{jabber:client}body"))

    async def test_websocket_session_is_moved_and_served_by_the_peer(self):
        pair = await self.make_pair(websocket=True)
        users = await self.users_on({"node1": 1})
        andy = users["node1"][0]
        [room] = await self.rooms_on(andy, "node1")
        user = CANDIDATES[-1]
        web = await w.XmppWs(pair.n1.ws_port).login(user)
        self.addCleanup(web.close)
        await self.join(web, room, user)
        await self.say(web, room, "before the failover", "m1")

        await self.actl_ok("service", "stop", "text-conference", "--node", "node1")
        await self.wait_states({"node1": (FOCSNR, CSD), "node2": (RIBM, CSD)}, timeout=15)
        messages, code = await web.until_closed(timeout=15)
        errors = [m for m in messages if m.tag == f"{{{w.NS_STREAM}}}error"]
        self.assertTrue(errors, [m.tag for m in messages])
        # A host:port means nothing to a web client: it is told to reconnect (reset).
        self.assertIsNotNone(errors[-1].find(f"{{{w.NS_STREAMS_ERR}}}reset"),
                             ET.tostring(errors[-1]))
        self.assertEqual(messages[-1].tag, f"{{{w.NS_FRAMING}}}close")
        self.assertEqual(code, 1000)

        again = await w.XmppWs(pair.n2.ws_port).login(user)
        self.addCleanup(again.close)
        await self.join(again, room, user)
        await self.say(again, room, "after the failover", "m2")
        self.assertEqual(await self.archive(again, room),
                         ["before the failover", "after the failover"])
        self.assertIn(room, await asyncio.to_thread(pair.n2.rooms))


if __name__ == "__main__":
    unittest.main()
