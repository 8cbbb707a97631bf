# SPDX-License-Identifier: Apache-2.0
"""Each user's message archive (XEP-0313 on the account), with real slixmpp clients against a
real broker: one-to-one messages in both users' archives with the recipient's XEP-0359
stanza-id, 'with', start/end, XEP-0059 paging and the #extended ids, what is not archived
(groupchat, XEP-0334 hints, headlines, chat states, forged ids), offline messages, a restart,
nobody else's archive, and im.mam_max_page.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/im \\
      -p test_mam.py -v
"""

import datetime
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "muc"))

import tcharness as th  # noqa: E402
from test_roster import ImTestCase, online  # noqa: E402

D = th.DOMAIN
EXTENDED = th.NS_MAM + "#extended"
HINTS = "urn:xmpp:hints"
PAGE = 5  # im.mam_max_page of this broker


def parse_stamp(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def ids(results):
    return [r[0] for r in results]


def bodies(results):
    return [th.body(r[1]) for r in results]


async def ping(c):
    """A round trip: what the client sent before has been handled (and committed)."""
    await c.iq_ok("get", D, f"<ping xmlns={th.q(th.NS_PING)}/>")


async def chat(sender, recipient, to, text, extra=""):
    """Sends a chat message and awaits it at `recipient`; returns the delivered stanza."""
    sender.send(f"<message to={th.q(to)} type='chat'><body>{th.text(text)}</body>{extra}"
                "</message>")
    return await recipient.expect(th.is_message(with_body=text), f"the message {text!r}")


class UserArchive(ImTestCase):
    SECTIONS = {"im": {"mam_max_page": PAGE}}

    async def test_conversation_is_in_both_archives_with_the_recipients_ids(self):
        alice, bob = await self.client("alice"), await self.client("bob")
        # (sender, recipient, 'to', body): alternating, to full and bare JIDs.
        turns = [(alice, bob, f"bob@{D}/r", "hello bob"), (bob, alice, f"alice@{D}", "hi alice"),
                 (alice, bob, f"bob@{D}", "how are you?"), (bob, alice, f"alice@{D}/r", "fine")]
        got = {}
        for sender, recipient, to, text in turns:
            m = await chat(sender, recipient, to, text)
            sids = th.stanza_ids(m, by=recipient.bare)
            self.assertEqual(len(sids), 1, f"one stanza-id by {recipient.bare}: {m}")
            got[text] = sids[0]

        for c, other in ((alice, bob), (bob, alice)):
            results, fin, _ = await c.mam(c.bare)
            self.assertEqual(bodies(results), [t[3] for t in turns], f"{c.name}'s archive")
            info = th.fin_info(fin)
            self.assertTrue(info["complete"])
            self.assertEqual(info["count"], 4)
            self.assertEqual((info["first"], info["last"]), (results[0][0], results[-1][0]))
            for (rid, msg, stamp, _), (sender, recipient, to, text) in zip(results, turns):
                self.assertEqual(th.attr(msg, "from"), sender.jid)
                self.assertEqual(th.attr(msg, "to"), to)
                self.assertIsNotNone(stamp, "each result has its delay")
                if recipient is c:
                    self.assertEqual(rid, got[text], "the id the recipient was given")
            self.assertEqual(len(set(ids(results))), 4)

        # 'with': a bare JID matches every resource; a full JID that one only.
        results, _, _ = await alice.mam(alice.bare, {"with": f"bob@{D}"})
        self.assertEqual(len(results), 4)
        results, fin, _ = await alice.mam(alice.bare, {"with": f"bob@{D}/r"})
        self.assertEqual(bodies(results), ["hello bob", "hi alice", "fine"])
        self.assertEqual(th.fin_info(fin)["count"], 3)
        results, fin, _ = await alice.mam(alice.bare, {"with": f"carol@{D}"})
        self.assertEqual(results, [])
        self.assertTrue(th.fin_info(fin)["complete"])
        # A query without 'to' is on the user's own archive too.
        alice.send(f"<iq type='set' id='no-to'><query xmlns={th.q(th.NS_MAM)} queryid='no-to'>"
                   f"<set xmlns={th.q(th.NS_RSM)}><max>2</max></set></query></iq>")
        reply = await alice.expect(lambda s: th.attr(s, "id") == "no-to", "the result")
        self.assertEqual(th.attr(reply, "type"), "result")
        results = [alice.take(th.is_mam_result("no-to")) for _ in range(3)]
        self.assertEqual(len([r for r in results if r is not None]), 2)

    async def test_form_disco_and_nobody_elses_archive(self):
        carol, dave = await self.client("carol"), await self.client("dave")
        reply = await carol.iq_ok("get", carol.bare, f"<query xmlns={th.q(th.NS_MAM)}/>")
        x = reply.xml.find(f"{{{th.NS_MAM}}}query/{{{th.NS_XDATA}}}x")
        self.assertIsNotNone(x, f"the search form: {reply}")
        fields = th.form_fields(x)
        self.assertEqual(fields["FORM_TYPE"], [th.NS_MAM])
        self.assertTrue({"with", "start", "end", "before-id", "after-id"} <= set(fields))

        features, identities, _ = await carol.disco_info(carol.bare)
        self.assertIn(th.NS_MAM, features)
        self.assertIn(EXTENDED, features)
        self.assertIn({"category": "account", "type": "registered"}, identities)
        features, _, _ = await carol.disco_info(D)
        self.assertNotIn(th.NS_MAM, features, "the server keeps no archive of its own")

        await chat(carol, dave, f"dave@{D}", "private")
        # Dave may not read carol's archive, nor get a single result from it.
        queryid = th.Client.new_id("q")
        reply = await dave.iq("set", carol.bare,
                              f"<query xmlns={th.q(th.NS_MAM)} queryid={th.q(queryid)}/>")
        self.assertEqual(th.attr(reply, "type"), "error")
        self.assertIn(th.error_of(reply)[1], ("forbidden", "service-unavailable"))
        self.assertEqual(dave.pending(th.is_mam_result(queryid)), [])
        # A query to the server's domain is not a query of the user's archive.
        err = await dave.iq_error("set", D, f"<query xmlns={th.q(th.NS_MAM)}/>")
        self.assertEqual(err[1], "service-unavailable")
        # Malformed queries are refused clearly.
        for fields, condition in (({"start": "yesterday"}, "bad-request"),
                                  ({"ids": "x"}, "bad-request"),
                                  ({"after-id": "no-such-id"}, "item-not-found")):
            queryid = th.Client.new_id("q")
            form = (f"<x xmlns={th.q(th.NS_XDATA)} type='submit'>"
                    + "".join(f"<field var={th.q(k)}><value>{th.text(v)}</value></field>"
                              for k, v in fields.items()) + "</x>")
            err = await carol.iq_error("set", carol.bare,
                                       f"<query xmlns={th.q(th.NS_MAM)}>{form}</query>")
            self.assertEqual(err[1], condition, fields)

    async def test_what_is_not_archived(self):
        eve, frank = await self.client("eve"), await self.client("frank")
        room = self.room()
        await self.create_room(eve, room, "Eve")
        await frank.join(room, "Frank")
        await eve.say(room, "to the room")
        await frank.expect(th.is_groupchat(body_text="to the room"), "the groupchat")

        kept_before = await chat(eve, frank, f"frank@{D}", "kept 1")
        hinted = await chat(eve, frank, f"frank@{D}", "not stored",
                            f"<no-store xmlns={th.q(HINTS)}/>")
        self.assertEqual(th.stanza_ids(hinted, by=frank.bare), [], "no id: not archived")
        await chat(eve, frank, f"frank@{D}", "not kept",
                   f"<no-permanent-store xmlns={th.q(HINTS)}/>")
        eve.send(f"<message to='frank@{D}' type='headline'><body>news</body></message>")
        await frank.expect(th.is_message(with_body="news"), "the headline")
        eve.send(f"<message to='frank@{D}' type='chat'><composing "
                 "xmlns='http://jabber.org/protocol/chatstates'/></message>")
        # An id that claims to be frank's archive's is dropped; frank's own is added.
        forged = await chat(eve, frank, f"frank@{D}", "kept 2",
                            f"<stanza-id xmlns={th.q(th.NS_SID)} by='frank@{D}' id='forged'/>")
        self.assertNotIn("forged", th.stanza_ids(forged))
        self.assertEqual(len(th.stanza_ids(forged, by=frank.bare)), 1)
        await ping(eve)

        for c in (eve, frank):
            results, fin, _ = await c.mam(c.bare)
            self.assertEqual(bodies(results), ["kept 1", "kept 2"], f"{c.name}'s archive")
            self.assertEqual(th.fin_info(fin)["count"], 2)
        results, _, _ = await frank.mam(frank.bare)
        self.assertEqual(ids(results), th.stanza_ids(kept_before, by=frank.bare)
                         + th.stanza_ids(forged, by=frank.bare))

    async def test_offline_message_is_archived_and_survives_a_restart(self):
        boss = await self.client("boss")
        await online(boss)
        boss.send(f"<message to='dave@{D}' type='chat'><body>while you were out</body>"
                  "</message>")
        await ping(boss)  # the sender's ack is the commit
        results, _, _ = await boss.mam(boss.bare, {"with": f"dave@{D}"})
        self.assertEqual(bodies(results), ["while you were out"])
        sent_id = results[0][0]
        await boss.close()

        self.broker.kill()
        self.broker.start()

        dave = await self.client("dave", "later")
        await online(dave)
        m = await dave.expect(th.is_message(with_body="while you were out"), "the offline message")
        self.assertIsNotNone(th.delay(m))
        delivered = th.stanza_ids(m, by=dave.bare)
        self.assertEqual(len(delivered), 1)
        results, _, _ = await dave.mam(dave.bare, {"with": f"boss@{D}"})
        self.assertEqual(bodies(results), ["while you were out"])
        self.assertEqual(ids(results), delivered, "the id the offline message carried")
        self.assertEqual(delivered, [sent_id])
        boss = await self.client("boss", "again")
        results, _, _ = await boss.mam(boss.bare, {"with": f"dave@{D}"})
        self.assertEqual(ids(results), [sent_id], "the sender's archive survived the restart")


class Paging(ImTestCase):
    SECTIONS = {"im": {"mam_max_page": PAGE}}
    N = 12

    async def _conversation(self, sender, recipient):
        """N messages from `sender` to `recipient`; returns the recipient's client and the
        stanza-ids it got, in order."""
        a, b = await self.client(sender), await self.client(recipient)
        sent = []
        for i in range(self.N):
            m = await chat(a, b, b.bare, f"m{i}")
            sent.append(th.stanza_ids(m, by=b.bare)[0])
        return b, sent

    async def test_pages_limits_windows_and_extended_ids(self):
        bob, sent = await self._conversation("alice", "bob")
        # The page size limit: no RSM, or a larger max, gets PAGE messages.
        for max_ in (None, 100):
            results, fin, _ = await bob.mam(bob.bare, max_=max_)
            self.assertEqual(ids(results), sent[:PAGE], f"max {max_}")
            info = th.fin_info(fin)
            self.assertFalse(info["complete"])
            self.assertEqual(info["count"], self.N)

        # Forward through every page.
        collected, after, pages = [], None, 0
        while True:
            results, fin, _ = await bob.mam(bob.bare, max_=PAGE, after=after)
            pages += 1
            collected += ids(results)
            info = th.fin_info(fin)
            if info["complete"]:
                break
            self.assertLess(pages, 5, "paging ends")
            after = info["last"]
        self.assertEqual(collected, sent)
        self.assertEqual(pages, 3)

        # Backward: the last page, then the one before it.
        results, fin, _ = await bob.mam(bob.bare, max_=4, before="")
        self.assertEqual(ids(results), sent[-4:])
        self.assertFalse(th.fin_info(fin)["complete"])
        results, fin, _ = await bob.mam(bob.bare, max_=4, before=sent[-4])
        self.assertEqual(ids(results), sent[-8:-4])
        results, fin, _ = await bob.mam(bob.bare, max_=4, before=sent[2])
        self.assertEqual(ids(results), sent[:2])
        self.assertTrue(th.fin_info(fin)["complete"])
        err = await bob.iq_error("set", bob.bare, f"<query xmlns={th.q(th.NS_MAM)}><set "
                                 f"xmlns={th.q(th.NS_RSM)}><after>nope</after></set></query>")
        self.assertEqual(err[1], "item-not-found")

        # #extended: after-id and before-id narrow the set, RSM pages inside it.
        window = {"after-id": sent[2], "before-id": sent[9]}
        results, fin, _ = await bob.mam(bob.bare, window, max_=4)
        self.assertEqual(ids(results), sent[3:7])
        info = th.fin_info(fin)
        self.assertFalse(info["complete"])
        self.assertEqual(info["count"], 6)
        results, fin, _ = await bob.mam(bob.bare, window, max_=4, after=info["last"])
        self.assertEqual(ids(results), sent[7:9])
        self.assertTrue(th.fin_info(fin)["complete"])

    async def test_start_and_end(self):
        bob, sent = await self._conversation("carol", "dave")
        everything = []
        after = None
        while True:
            results, fin, _ = await bob.mam(bob.bare, {"with": f"carol@{D}"}, after=after)
            everything += results
            if th.fin_info(fin)["complete"]:
                break
            after = th.fin_info(fin)["last"]
        self.assertEqual(ids(everything), sent)
        stamps = [r[2] for r in everything]

        def between(lo, hi):
            return [i for i, s in zip(sent, stamps)
                    if (lo is None or parse_stamp(s) >= parse_stamp(lo))
                    and (hi is None or parse_stamp(s) <= parse_stamp(hi))]

        start, end = stamps[3], stamps[6]
        results, fin, _ = await bob.mam(bob.bare, {"start": start, "end": end})
        self.assertEqual(ids(results), between(start, end)[:PAGE])
        self.assertIn(sent[3], ids(results), "start is inclusive")
        self.assertEqual(th.fin_info(fin)["count"], len(between(start, end)))
        results, _, _ = await bob.mam(bob.bare, {"start": stamps[-1]})
        self.assertEqual(ids(results)[-1], sent[-1])
        self.assertNotIn(sent[0], ids(results))
        future = (datetime.datetime.now(datetime.timezone.utc)
                  + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        results, fin, _ = await bob.mam(bob.bare, {"start": future})
        self.assertEqual(results, [])
        self.assertTrue(th.fin_info(fin)["complete"])


if __name__ == "__main__":
    unittest.main()
