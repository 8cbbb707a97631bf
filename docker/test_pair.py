# SPDX-License-Identifier: Apache-2.0
"""The compose pair, from outside (docker/test-pair runs it once the containers are up):
clients log in on both nodes' published ports, a room is made and used, node1's container is
killed with SIGKILL, node2 takes over, and the room's whole archive is there."""

import asyncio
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ha"))

import haharness as hh  # noqa: E402
from haharness import th  # noqa: E402

PROJECT = sys.argv[1] if len(sys.argv) > 1 else "tcbroker-pair"
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}
NODE1, NODE2 = 5222, 5223


def container(service):
    return f"{PROJECT}_{service}_1"


def ha_status(service):
    done = subprocess.run(["podman", "exec", container(service), "tcctl", "--config",
                           "/etc/tcbroker/tcbroker.toml", "ha", "status", "--json"],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout)
    except ValueError:
        return None


def states(status):
    return {n["name"]: (n.get("state"), n.get("reason")) for n in status.get("nodes", [])}


async def login(user, port):
    deadline = time.monotonic() + 90
    while True:
        c = th.Client(user, password=PASSWORDS[user])
        try:
            return await c.login(port)
        except Exception as e:  # not up yet
            c.abort()
            if time.monotonic() > deadline:
                raise AssertionError(f"{user} cannot log in on {port}: {e}") from None
            await asyncio.sleep(1)


async def main():
    both_normal = lambda: (s := ha_status("node2")) and all(  # noqa: E731
        states(s).get(n, (None,))[0] == "Normal" for n in ("node1", "node2"))
    await hh.poll_until(both_normal, 120, "both nodes Normal")
    print("pair up:", states(ha_status("node2")), flush=True)
    # The image's HEALTHCHECK (tcctl ha status), run on demand: podman without systemd has
    # no timer that runs it by itself.
    for service in ("node1", "node2"):
        subprocess.run(["podman", "healthcheck", "run", container(service)], check=True,
                       timeout=30)
    print("healthchecks pass", flush=True)
    alice, bob = await login("alice", NODE1), await login("bob", NODE2)
    room = f"docker-{int(time.time())}@{th.MUC_DOMAIN}"
    await alice.join(room, "alice")
    await bob.join(room, "bob")
    await alice.say(room, "before the kill")
    await bob.expect(th.is_groupchat(f"{room}/alice", "before the kill"), "alice's message")
    print(f"chatting in {room} across the nodes", flush=True)

    killed = time.monotonic()
    subprocess.run(["podman", "kill", "-s", "KILL", container("node1")], check=True, timeout=30)
    await hh.poll_until(lambda: (s := ha_status("node2")) and
                        states(s).get("node2", (None,))[0] == "Running in Backup Mode", 60,
                        "node2 took over")
    print(f"node2 took over {time.monotonic() - killed:.1f} s after the kill: "
          f"{states(ha_status('node2'))}", flush=True)
    alice = await login("alice", NODE2)
    await alice.join(room, "alice")
    results, _fin, _reply = await alice.mam(room, max_=50)
    bodies = [m.findtext(f"{{{th.NS_CLIENT}}}body") for _i, m, _s, _x in results]
    assert bodies.count("before the kill") == 1, bodies
    await alice.say(room, "after the kill")
    await bob.expect(th.is_groupchat(f"{room}/alice", "after the kill"), "after the kill")
    print("archive intact, room live on node2: OK", flush=True)
    for c in (alice, bob):
        await c.close()


if __name__ == "__main__":
    asyncio.run(main())
