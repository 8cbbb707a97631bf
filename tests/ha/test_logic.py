# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the pure logic in haharness.py and tools/tc-drill (no broker needed)."""

import importlib.machinery
import importlib.util
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import haharness as hh  # noqa: E402

_DRILL = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "tc-drill")
_loader = importlib.machinery.SourceFileLoader("tc_drill", _DRILL)
_spec = importlib.util.spec_from_loader("tc_drill", _loader)
drill = importlib.util.module_from_spec(_spec)
_loader.exec_module(drill)


class StreamErrorParsing(unittest.TestCase):
    def test_other_host(self):
        self.assertEqual(hh.parse_other_host("127.0.0.1:5223"), ("127.0.0.1", 5223))
        self.assertEqual(hh.parse_other_host(" [::1]:5223 "), ("::1", 5223))
        self.assertEqual(hh.parse_other_host("example.org"), ("example.org", None))
        self.assertEqual(hh.parse_other_host("[::1]"), ("::1", None))
        self.assertIsNone(hh.parse_other_host(""))
        self.assertIsNone(hh.parse_other_host(None))

    def test_relogin_delay(self):
        self.assertAlmostEqual(hh.parse_relogin_delay("log in again in 0.13 s"), 0.13)
        self.assertAlmostEqual(hh.parse_relogin_delay("retry after 130 ms"), 0.13)
        self.assertAlmostEqual(hh.parse_relogin_delay("relogin delay 2 seconds"), 2.0)
        self.assertEqual(hh.parse_relogin_delay("moved", default=0.5), 0.5)
        self.assertEqual(hh.parse_relogin_delay("in 900 s", cap=10), 10)
        self.assertIsNone(hh.parse_relogin_delay(None))
        text_ = ("your users and rooms are served by node2 now; log in again after a random "
                 "delay of 50 to 200 ms")
        for _ in range(50):
            d = hh.parse_relogin_delay(text_)
            self.assertTrue(0.05 <= d <= 0.2, d)

        class Low:
            @staticmethod
            def uniform(a, b):
                return a
        self.assertAlmostEqual(hh.parse_relogin_delay("0.5 - 2 s", rng=Low), 0.5)

    def test_relogin_window(self):
        import xml.etree.ElementTree as ET
        e = ET.fromstring("<error xmlns='http://etherx.jabber.org/streams'>"
                          "<relogin xmlns='urn:tcbroker:ha:1' min-ms='50' max-ms='200'/></error>")
        self.assertEqual(hh.relogin_window(e), (0.05, 0.2))
        self.assertIsNone(hh.relogin_window(ET.fromstring("<error/>")))
        self.assertIsNone(hh.relogin_window(None))


STATUS = {"nodes": [
    {"name": "node1", "self": False, "state": "Normal", "reason": "Normal", "reachable": True,
     "services": {"database": "running"}},
    {"name": "node2", "self": True, "state": "Normal", "reason": "Normal", "reachable": True,
     "services": {"database": "running"}}]}


def status_with(**changes):
    import copy
    st = copy.deepcopy(STATUS)
    for key, value in changes.items():
        node, field = key.split("__")
        entry = hh.node_entry(st, node)
        if field == "db":
            entry["services"]["database"] = value
        else:
            entry[field] = value
    return st


class Detection(unittest.TestCase):
    def test_entries(self):
        self.assertEqual(hh.self_entry(STATUS)["name"], "node2")
        self.assertEqual(hh.node_entry(STATUS, "node1")["state"], "Normal")
        self.assertIsNone(hh.node_entry(STATUS, "node3"))
        self.assertIsNone(hh.self_entry(None))

    def test_healthy_is_not_detected(self):
        for fault in drill.FAULTS:
            self.assertFalse(drill.detected(fault, STATUS), fault)
        self.assertFalse(drill.detected("sigkill", None))

    def test_takeover(self):
        st = status_with(node2__state="Taking Over", node2__reason="Peer Down")
        self.assertTrue(drill.detected("sigkill", st))
        self.assertTrue(drill.detected("service-stop", st))
        self.assertFalse(drill.detected("link-cut", st))

    def test_peer_unreachable(self):
        st = status_with(node1__reachable=False)
        self.assertTrue(drill.detected("sigkill", st))
        self.assertTrue(drill.detected("link-cut", st))

    def test_db(self):
        self.assertTrue(drill.detected("db-stop", status_with(node1__db="failed")))
        self.assertTrue(drill.detected("db-stop", status_with(
            node2__state="Running in Failed Mode")))


class Probe(unittest.TestCase):
    def test_every_room_answered(self):
        r = drill.probe_summary(["a", "b", "c"], {"a": 10.5, "b": 11.0, "c": 10.2}, 10.0)
        self.assertEqual(r["rooms_probed"], 3)
        self.assertEqual(r["time_to_all_rooms_answer_ms"], 1000.0)
        self.assertEqual(r["rooms_answered_median_ms"], 500.0)
        self.assertEqual(r["rooms_never_answered"], 0)

    def test_a_room_that_never_answers_leaves_no_time(self):
        r = drill.probe_summary(["a", "b"], {"a": 10.5}, 10.0)
        self.assertIsNone(r["time_to_all_rooms_answer_ms"])
        self.assertEqual(r["rooms_never_answered"], 1)
        self.assertEqual(r["rooms_never_answered_samples"], ["b"])

    def test_no_rooms(self):
        r = drill.probe_summary([], {}, 10.0)
        self.assertIsNone(r["time_to_all_rooms_answer_ms"])
        self.assertEqual(r["rooms_never_answered"], 0)


class States(unittest.TestCase):
    def test_expected(self):
        self.assertTrue(drill.states_ok("sigkill", {
            "node1": ["(down)", None], "node2": ["Running in Backup Mode", "Peer Down"]}))
        self.assertFalse(drill.states_ok("sigkill", {
            "node1": ["(down)", None], "node2": ["Running in Backup Mode", "Peer Reboot"]}))
        self.assertFalse(drill.states_ok("service-stop", {
            "node1": ["Failed Over", "Critical Service Down"],
            "node2": ["Running in Backup Mode", "Critical Service Down"]}))
        self.assertTrue(drill.states_ok("link-cut", {"node1": ["Normal", "Normal"],
                                                     "node2": ["Normal", "Normal"]}))
        self.assertFalse(drill.states_ok("db-stop", {"node1": ["Normal", "Normal"]}))
        self.assertTrue(drill.states_ok("db-stop", {
            "node1": ["Normal", "Database Failure Auto-Recovery"], "node2": ["Normal", "Normal"]}))
        self.assertFalse(drill.states_ok("db-stop", {
            "node1": ["Running in Failed Mode", "Database Failure"],
            "node2": ["Normal", "Normal"]}))

    def test_matches(self):
        self.assertTrue(hh._matches(("Idle", "On Admin Request"), ("Idle", None)))
        self.assertFalse(hh._matches(("Idle", "On Admin Request"), ("Idle", "Normal")))
        self.assertFalse(hh._matches(None, ("Idle", None)))
        self.assertTrue(hh._matches(("Normal", "B"), ("Normal", ("A", "B"))))
        self.assertFalse(hh._matches(("Normal", "C"), ("Normal", ("A", "B"))))


def sent(id_, room, t_sent, t_ack=None, error=None, sender="a", conn=1):
    s = drill.Sent(id_, f"body-{id_}", room, sender, conn, t_sent)
    s.t_ack, s.error = t_ack, error
    return s


class Summary(unittest.TestCase):
    def test_lost_duplicates_availability(self):
        msgs = [sent(1, "r1", 9.0, 9.01),            # before the fault, archived
                sent(2, "r1", 10.1, 10.9),           # after: r1 back at 0.9 s
                sent(3, "r2", 9.99, 10.05),          # sent before, reflected after: ignored
                sent(4, "r2", 10.2, 11.5),           # r2 back at 1.5 s, but lost
                sent(5, "r2", 10.3, None, error=10.31),
                sent(6, "r2", 10.4, None, conn=1),   # no answer on a live session
                sent(7, "r2", 10.4, None, conn=2)]   # no answer, session gone
        archives = {"r1": ["body-1", "body-2", "body-2"], "r2": ["body-3"]}
        out = drill.summarize(msgs, archives, 10.0, ["r1", "r2"], {"a": 1})
        self.assertEqual(out["sent"], 7)
        self.assertEqual(out["acknowledged"], 4)
        self.assertEqual(out["lost"], 1)
        self.assertEqual(out["lost_samples"], ["r2 body-4"])
        self.assertEqual(out["duplicates"], 1)
        self.assertEqual(out["errors"], 1)
        self.assertEqual(out["unanswered"], 2)
        self.assertEqual(out["silently_dropped"], 1)
        self.assertAlmostEqual(out["time_to_rooms_available_ms"], 1500.0, places=3)
        self.assertEqual(out["rooms_never_available"], [])

    def test_room_never_available(self):
        msgs = [sent(1, "r1", 10.1, 10.2), sent(2, "r2", 10.1, None, error=10.2)]
        out = drill.summarize(msgs, {"r1": ["body-1"], "r2": None}, 10.0, ["r1", "r2"])
        self.assertIsNone(out["time_to_rooms_available_ms"])
        self.assertEqual(out["rooms_never_available"], ["r2"])
        self.assertEqual(out["archives_unreadable"], ["r2"])
        self.assertEqual(out["lost"], 0)


class Planning(unittest.TestCase):
    def test_sample_alternates(self):
        hosts = {"a": ["node1"], "b": ["node1"], "c": ["node2"], "d": ["node1", "node2"],
                 "e": ["node1"]}
        self.assertEqual(drill.choose_sample(hosts, list("abcde"), 3), ["a", "c", "b"])
        self.assertEqual(drill.choose_sample(hosts, list("abcde"), 10), ["a", "c", "b", "e"])

    def test_every_room_seated(self):
        for clients, rooms in ((6, 4), (2, 16), (3, 1), (4, 9)):
            sample = [f"r{i}" for i in range(rooms)]
            plan = drill.assign_rooms(clients, sample)
            self.assertEqual(set(plan), set(range(clients)))
            self.assertEqual({r for rs in plan.values() for r in rs}, set(sample))
            for rs in plan.values():
                self.assertTrue(rs)
                self.assertEqual(len(rs), len(set(rs)))

    def test_args(self):
        a = drill.parse_args(["--fault", "db-stop"])
        self.assertEqual(a.backend, "postgresql")
        self.assertEqual(drill.parse_args(["--fault", "sigkill"]).backend, "sqlite")
        with self.assertRaises(SystemExit):
            drill.parse_args(["--fault", "db-stop", "--backend", "sqlite"])
        with self.assertRaises(SystemExit):
            drill.parse_args(["--fault", "nope"])


class Config(unittest.TestCase):
    def test_node_config(self):
        import tempfile
        import tomllib
        pair = hh.Pair.__new__(hh.Pair)
        pair.dir = tempfile.mkdtemp(prefix="cfg-", dir=hh.th.tmp_root())
        node = hh.Node(pair, "node1")
        node.write_config("sqlite:///tmp/x.db", {"default_persistent": True}, (0.05, 0.2))
        with open(node.config, "rb") as f:
            cfg = tomllib.load(f)
        self.assertEqual(cfg["node"]["name"], "node1")
        self.assertEqual(cfg["client"], {"address": "127.0.0.1", "port": node.client_port})
        self.assertEqual(cfg["admin"]["port"], node.admin_port)
        self.assertEqual(cfg["admin"]["token"], hh.TOKEN)
        self.assertEqual(cfg["ha"]["port"], node.srm_port)
        self.assertEqual(cfg["ha"]["relogin_min"], 0.05)
        self.assertEqual(cfg["storage"]["url"], "sqlite:///tmp/x.db")
        self.assertTrue(cfg["muc"]["default_persistent"])



class LongestSilence(unittest.TestCase):
    """tc-drill's liveness figure for a cut link: own-node senders only, gaps from the fault
    to the end of the cut."""

    def sent(self, room, node, t_sent, t_ack):
        s = drill.Sent("id", "body", room, "u", 1, t_sent, node)
        s.t_ack = t_ack
        return s

    def test_counts_only_the_rooms_own_node_and_the_window(self):
        hosts = {"a": ["node1"], "b": ["node2"]}
        sent = [self.sent("a", "node1", 10.1, 10.2), self.sent("a", "node1", 10.5, 11.4),
                self.sent("a", "node2", 10.6, None),   # far sender: not counted
                self.sent("b", "node2", 10.0, 10.1), self.sent("b", "node2", 10.8, 10.9),
                self.sent("b", "node2", 11.5, 11.6),
                self.sent("a", "node1", 9.0, 9.1)]     # before the fault
        # a: acks at 10.2 and 11.4 (1.2 s between them); b: at most 0.8 s.
        self.assertEqual(drill.longest_silence(sent, hosts, 10.0, 12.0), (1200.0, "a"))
        sent.append(self.sent("b", "node2", 11.95, None))  # unanswered till the end
        self.assertEqual(drill.longest_silence(sent, hosts, 10.0, 12.0), (1200.0, "a"))

    def test_a_room_whose_own_senders_never_heard_back_is_silent_throughout(self):
        hosts = {"a": ["node1"]}
        sent = [self.sent("a", "node1", 10.5, None)]
        self.assertEqual(drill.longest_silence(sent, hosts, 10.0, 13.0), (3000.0, "a"))
        self.assertEqual(drill.longest_silence([], hosts, 10.0, 13.0), (None, None))

if __name__ == "__main__":
    unittest.main()
