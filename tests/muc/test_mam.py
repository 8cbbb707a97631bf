# SPDX-License-Identifier: Apache-2.0
"""XEP-0313 message archive management on rooms, with XEP-0059 paging."""

import datetime
import unittest

from tcharness import (NS_MAM, NS_XDATA, MucTestCase, attr, body, error_of, fin_info,
                       form_fields, q, stanza_ids)


def parse_stamp(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class MamTests(MucTestCase):
    N = 25

    async def _archived_room(self, config=None):
        """A room with N messages, alternately from Alice and Bob. Returns the clients, the
        room and the reflected messages as (stanza-id, body, nick) in order."""
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice", config)
        await bob.join(room, "Bob")
        sent = []
        for i in range(self.N):
            who, nick = (alice, "Alice") if i % 2 == 0 else (bob, "Bob")
            m = await who.say(room, f"archived {i}")
            sent.append((stanza_ids(m, by=room)[0], f"archived {i}", nick))
        return alice, bob, room, sent

    def _ids(self, results):
        return [r[0] for r in results]

    async def test_whole_archive(self):
        alice, _, room, sent = await self._archived_room()
        results, fin, reply = await alice.mam(room)
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        # The archive ids are the stanza-ids given at reflection (XEP-0359 / XEP-0313 §5.2).
        self.assertEqual(self._ids(results), [s[0] for s in sent])
        for (_, msg, stamp, wrapper), (sid, text_, nick) in zip(results, sent):
            self.assertIsNotNone(msg, f"no forwarded message in {wrapper}")
            self.assertEqual(attr(wrapper, "from"), room)
            self.assertEqual(body(msg), text_)
            self.assertEqual(msg.get("from"), f"{room}/{nick}")
            self.assertEqual(msg.get("type"), "groupchat")
            self.assertIsNotNone(stamp, "XEP-0313 §4.2: forwarded with a delay")
        stamps = [parse_stamp(r[2]) for r in results]
        self.assertEqual(stamps, sorted(stamps))
        info = fin_info(fin)
        self.assertTrue(info["complete"], "the whole archive in one page is complete")
        self.assertEqual((info["first"], info["last"]), (sent[0][0], sent[-1][0]))
        self.assertEqual(info["count"], self.N)

    async def test_paging_forward(self):
        alice, _, room, sent = await self._archived_room()
        ids = [s[0] for s in sent]
        pages, after = [], None
        for expected, complete in ((ids[0:10], False), (ids[10:20], False), (ids[20:25], True)):
            results, fin, _ = await alice.mam(room, max_=10, after=after)
            info = fin_info(fin)
            self.assertEqual(self._ids(results), expected)
            self.assertEqual(info["complete"], complete, f"page after {after}")
            self.assertEqual((info["first"], info["last"]), (expected[0], expected[-1]))
            self.assertEqual(info["count"], self.N)
            pages.append(results)
            after = info["last"]
        # A page that ends exactly at the newest message is complete too.
        results, fin, _ = await alice.mam(room, max_=5, after=ids[19])
        self.assertEqual(self._ids(results), ids[20:25])
        self.assertTrue(fin_info(fin)["complete"],
                        "XEP-0313: the page holding the last message must say complete")
        # After the last message: nothing, complete.
        results, fin, _ = await alice.mam(room, max_=10, after=ids[-1])
        self.assertEqual(results, [])
        self.assertTrue(fin_info(fin)["complete"])

    async def test_paging_backward(self):
        alice, _, room, sent = await self._archived_room()
        ids = [s[0] for s in sent]
        before = ""  # XEP-0059 §2.5: an empty <before/> asks for the last page
        for expected, complete in ((ids[15:25], False), (ids[5:15], False), (ids[0:5], True)):
            results, fin, _ = await alice.mam(room, max_=10, before=before)
            info = fin_info(fin)
            # Within a page, messages are oldest first (XEP-0313 §4.2 / §5.1).
            self.assertEqual(self._ids(results), expected, f"page before {before!r}")
            self.assertEqual(info["complete"], complete, f"page before {before!r}")
            self.assertEqual((info["first"], info["last"]), (expected[0], expected[-1]))
            self.assertEqual(info["count"], self.N)
            before = info["first"]
        results, fin, _ = await alice.mam(room, max_=5, before=ids[5])
        self.assertEqual(self._ids(results), ids[0:5])
        self.assertTrue(fin_info(fin)["complete"],
                        "XEP-0313: the page holding the first message must say complete")

    async def test_max_zero_gives_count(self):
        alice, _, room, sent = await self._archived_room()
        results, fin, reply = await alice.mam(room, max_=0)
        self.assertEqual(attr(reply, "type"), "result", str(reply))
        self.assertEqual(results, [])
        self.assertEqual(fin_info(fin)["count"], self.N)

    async def test_start_and_end(self):
        alice, _, room, sent = await self._archived_room()
        everything, _, _ = await alice.mam(room)
        stamps = [r[2] for r in everything]
        ids = self._ids(everything)

        def between(lo, hi):
            return [i for i, s in zip(ids, stamps)
                    if (lo is None or parse_stamp(s) >= parse_stamp(lo))
                    and (hi is None or parse_stamp(s) <= parse_stamp(hi))]

        start, end = stamps[10], stamps[14]
        results, fin, _ = await alice.mam(room, {"start": start})
        self.assertEqual(self._ids(results), between(start, None))
        self.assertNotIn(ids[0], self._ids(results))
        self.assertIn(ids[10], self._ids(results), "start is inclusive")
        results, _, _ = await alice.mam(room, {"end": end})
        self.assertEqual(self._ids(results), between(None, end))
        self.assertIn(ids[14], self._ids(results), "end is inclusive")
        self.assertNotIn(ids[-1], self._ids(results))
        results, fin, _ = await alice.mam(room, {"start": start, "end": end})
        self.assertEqual(self._ids(results), between(start, end))
        self.assertEqual(fin_info(fin)["count"], len(between(start, end)))
        # With paging inside the range.
        results, fin, _ = await alice.mam(room, {"start": start, "end": end}, max_=2)
        self.assertEqual(self._ids(results), between(start, end)[:2])
        self.assertFalse(fin_info(fin)["complete"])
        # A range in the future is empty.
        future = (datetime.datetime.now(datetime.timezone.utc)
                  + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        results, fin, _ = await alice.mam(room, {"start": future})
        self.assertEqual(results, [])
        self.assertTrue(fin_info(fin)["complete"])

    async def test_with_nick(self):
        alice, _, room, sent = await self._archived_room()
        results, fin, _ = await alice.mam(room, {"with": f"{room}/Bob"})
        self.assertEqual(self._ids(results), [s[0] for s in sent if s[2] == "Bob"])
        for _, msg, _, _ in results:
            self.assertEqual(msg.get("from"), f"{room}/Bob")
        self.assertEqual(fin_info(fin)["count"], len([s for s in sent if s[2] == "Bob"]))
        results, fin, _ = await alice.mam(room, {"with": f"{room}/Nobody"})
        self.assertEqual(results, [])
        self.assertTrue(fin_info(fin)["complete"])
        # with + paging
        bob_ids = [s[0] for s in sent if s[2] == "Bob"]
        results, fin, _ = await alice.mam(room, {"with": f"{room}/Bob"}, max_=5, after=bob_ids[4])
        self.assertEqual(self._ids(results), bob_ids[5:10])

    async def test_unknown_cursor(self):
        alice, _, room, _ = await self._archived_room()
        reply = await alice.iq("set", room, f"<query xmlns={q(NS_MAM)}>"
                                            "<set xmlns='http://jabber.org/protocol/rsm'>"
                                            "<after>no-such-id</after></set></query>")
        # XEP-0313 §4.3.2 / XEP-0059: <item-not-found/> for an unknown id.
        self.assertEqual(attr(reply, "type"), "error", str(reply))
        self.assertEqual(error_of(reply)[1], "item-not-found")
        reply = await alice.iq("set", room, f"<query xmlns={q(NS_MAM)}>"
                                            "<set xmlns='http://jabber.org/protocol/rsm'>"
                                            "<before>no-such-id</before></set></query>")
        self.assertEqual(error_of(reply)[1], "item-not-found", str(reply))

    async def test_search_form(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        reply = await alice.iq_ok("get", room, f"<query xmlns={q(NS_MAM)}/>")
        x = reply.xml.find(f"{{{NS_MAM}}}query/{{{NS_XDATA}}}x")
        self.assertIsNotNone(x, str(reply))
        fields = form_fields(x)
        self.assertEqual(fields.get("FORM_TYPE"), [NS_MAM])
        for var in ("with", "start", "end"):
            self.assertIn(var, fields)

    async def test_access_control(self):
        alice, bob, carol, dave = await self.clients_for("alice", "bob", "carol", "dave")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await alice.say(room, "secret plans")
        await alice.set_affiliation(room, bob.bare, "outcast")
        # An outcast may not read the archive (XEP-0313 §5.1.2 for MUC: only who may join).
        self.assertEqual(await bob.iq_error("set", room, f"<query xmlns={q(NS_MAM)}/>"),
                         ("auth", "forbidden"))
        # Anyone may read an open room's archive without joining.
        results, _, _ = await carol.mam(room)
        self.assertEqual([body(r[1]) for r in results], ["secret plans"])
        # In a members-only room, non-members may not; members may.
        await alice.configure_ok(room, {"muc#roomconfig_membersonly": True})
        self.assertEqual(await carol.iq_error("set", room, f"<query xmlns={q(NS_MAM)}/>"),
                         ("auth", "forbidden"))
        await alice.set_affiliation(room, dave.bare, "member")
        results, _, _ = await dave.mam(room)
        self.assertEqual([body(r[1]) for r in results], ["secret plans"])

    async def test_only_messages_with_body_are_archived(self):
        alice, bob = await self.clients_for("alice", "bob")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        await bob.join(room, "Bob")
        alice.send(f"<message to={q(room)} type='groupchat' id='cs'>"
                   "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        await bob.expect(lambda s: attr(s, "id") == "cs", "chat state")
        await alice.say(room, "with a body")
        results, _, _ = await alice.mam(room)
        self.assertEqual([body(r[1]) for r in results], ["with a body"])

    async def test_unknown_room(self):
        alice = await self.client("alice")
        reply = await alice.iq("set", self.room("missing"), f"<query xmlns={q(NS_MAM)}/>")
        self.assertEqual(error_of(reply)[1], "item-not-found")


class MamPageCapTests(MucTestCase):
    MUC_CONFIG = {"mam_max_page": 5}

    async def test_page_size_is_capped(self):
        alice = await self.client("alice")
        room = self.room()
        await self.create_room(alice, room, "Alice")
        ids = [stanza_ids(await alice.say(room, f"m{i}"), by=room)[0] for i in range(8)]
        results, fin, _ = await alice.mam(room)
        self.assertEqual([r[0] for r in results], ids[:5])
        self.assertFalse(fin_info(fin)["complete"])
        results, fin, _ = await alice.mam(room, max_=50, after=ids[4])
        self.assertEqual([r[0] for r in results], ids[5:8])
        self.assertTrue(fin_info(fin)["complete"])


if __name__ == "__main__":
    unittest.main()
