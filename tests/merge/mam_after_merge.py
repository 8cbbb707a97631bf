# SPDX-License-Identifier: Apache-2.0
"""After a merge, a node pointed at the merged database serves every room with its whole
history: tc-merge merges two generated per-node databases (with colliding rooms renamed), a
tcbroker starts on the target, and a real XMPP client (slixmpp) pages through the archive of
every room with MAM (XEP-0313 + RSM). Checked per room: the ids, in order, are exactly those
of the database; and a cursor a client held before the merge (a stanza id read from a source)
still pages to the same messages.

Run with Debian's /usr/bin/python3 (python3-slixmpp):
  /usr/bin/python3 tests/merge/mam_after_merge.py --tc-merge B/merge-tool/tc-merge \
      --tcbroker B/broker/tcbroker --tc-test-pg B/tests/support/tc-test-pg
Every wait is bounded; exit status 0 on success.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "muc"))
import tcharness as h  # noqa: E402  (the MUC tests' slixmpp client and broker config)

ROOMS = 14
MESSAGES = 900
PASSWORD = "merge-pw"
TIMEOUT = 60


def run(argv, what, timeout=240, env=None):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{what}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def psql(url, sql):
    return run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
               "psql")


def scram_columns(password, name, iterations=4096):
    """salt, iterations, StoredKey, ServerKey for SCRAM-<name> (RFC 5802 section 3), base64."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac(name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", name).digest()
    stored = hashlib.new(name, client_key).digest()
    server = hmac.new(salted, b"Server Key", name).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return [f"'{b64(salt)}'", str(iterations), f"'{b64(stored)}'", f"'{b64(server)}'"]


def archive_ids(url, room):
    """The room's groupchat stanza ids in archive order (what MAM must return)."""
    out = psql(url, "SELECT stanza_id FROM tc_archive WHERE room_jid = "
                    f"'{room}' AND kind NOT IN ('join', 'leave') ORDER BY seq")
    return [line for line in out.splitlines() if line]


async def mam_all(client, room, after=None, page=97):
    """Every archived message of `room` (after `after`), paging with RSM; returns the ids."""
    ids = []
    for _ in range(10000):
        results, fin, reply = await client.mam(room, max_=page, after=after, timeout=TIMEOUT)
        if h.attr(reply, "type") != "result":
            raise AssertionError(f"MAM on {room} failed: {reply}")
        for archive_id, msg, stamp, _ in results:
            if msg is None or stamp is None:
                raise AssertionError(f"{room}: result {archive_id} lacks message or delay")
            frm = msg.get("from") or ""
            if frm.split("/")[0] != room:
                raise AssertionError(f"{room}: forwarded message from {frm}")
            ids.append(archive_id)
        complete = fin is not None and fin.get("complete") == "true"
        if complete or not results:
            return ids
        after = results[-1][0]
    raise AssertionError(f"{room}: MAM never completed")


async def check(port, target, source_a):
    client = await h.Client("alice", password=PASSWORD).login(port)
    try:
        rooms = [r for r in psql(target, "SELECT jid FROM tc_rooms ORDER BY jid").splitlines() if r]
        assert len(rooms) == 2 * ROOMS, f"{len(rooms)} rooms in the target"
        total = 0
        for room in rooms:
            expected = archive_ids(target, room)
            got = await mam_all(client, room)
            if got != expected:
                raise AssertionError(f"{room}: MAM returned {len(got)} ids, the archive holds "
                                     f"{len(expected)}; first difference at "
                                     f"{next((i for i, (x, y) in enumerate(zip(got, expected)) if x != y), min(len(got), len(expected)))}")
            total += len(got)
        # A cursor held before the merge: a stanza id from node A's database, mid-archive.
        busiest = psql(source_a, "SELECT room_jid FROM tc_archive GROUP BY room_jid "
                                 "ORDER BY count(*) DESC LIMIT 1").strip()
        before = archive_ids(source_a, busiest)
        middle = before[len(before) // 2]
        after_cursor = await mam_all(client, busiest, after=middle)
        if after_cursor != before[len(before) // 2 + 1:]:
            raise AssertionError(f"{busiest}: paging after {middle} returned {len(after_cursor)} "
                                 f"ids, expected {len(before) - len(before) // 2 - 1}")
        print(f"mam_after_merge: {len(rooms)} rooms, {total} messages served through MAM; "
              f"cursor {middle} from the source still pages correctly")
    finally:
        await client.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tc-merge", required=True)
    p.add_argument("--tcbroker", required=True)
    p.add_argument("--tc-test-pg", required=True)
    args = p.parse_args()

    pg = h._TcTestPg(args.tc_test_pg)
    broker = None
    work = h.tmp_root()
    try:
        base = pg.url.rsplit("/", 1)[0]
        for name in ("src_a", "src_b", "target"):
            psql(f"{base}/postgres", f"CREATE DATABASE {name}")
        a, b, target = f"{base}/src_a", f"{base}/src_b", f"{base}/target"
        tool = [args.tc_merge]
        run(tool + ["testdata", "--source-a", a, "--source-b", b, "--rooms", str(ROOMS),
                    "--messages", str(MESSAGES), "--collisions", "2", "--large-every", "150"],
            "testdata")
        tt = tool + ["--target", target]
        run(tt + ["jobs", "add", "--source-a", a, "--source-b", b, "--node-b", "node2",
                  "--collision-policy", "rename"], "jobs add")
        run(tt + ["validate", "1"], "validate")
        run(tt + ["merge", "1", "--progress", "none"], "merge")

        # The operator's last steps: a login for the check, then the node on the target.
        psql(target, "INSERT INTO tc_accounts VALUES ('alice', "
                     + ", ".join(scram_columns(PASSWORD, "sha1") + scram_columns(PASSWORD, "sha256"))
                     + f", {int(time.time() * 1000)})")
        # Members-only rooms let members read their archive (XEP-0313 section 4.1.2).
        psql(target, "INSERT INTO tc_room_affiliations (room_jid, user_jid, affiliation) "
                     "SELECT jid, 'alice@localhost', 'member' FROM tc_rooms "
                     "ON CONFLICT DO NOTHING")
        config = os.path.join(work, "tc.toml")
        with open(config, "w") as f:
            f.write(h.config_text(target, {}))
        ready = os.path.join(work, "ready.json")
        log = open(os.path.join(work, "broker.log"), "w")
        broker = subprocess.Popen([args.tcbroker, "--config", config, "--ready-file", ready],
                                  stdout=log, stderr=subprocess.STDOUT,
                                  preexec_fn=h._die_with_parent)
        deadline = time.monotonic() + TIMEOUT
        port = None
        while port is None:
            if broker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tcbroker did not become ready:\n"
                                   + open(os.path.join(work, "broker.log")).read()[-4000:])
            try:
                with open(ready) as f:
                    port = int(json.loads(f.read())["client_port"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        asyncio.run(asyncio.wait_for(check(port, target, a), 300))
        return 0
    finally:
        if broker is not None and broker.poll() is None:
            broker.terminate()
            try:
                broker.wait(20)
            except subprocess.TimeoutExpired:
                broker.kill()
        pg.stop()


if __name__ == "__main__":
    sys.exit(main())
