# SPDX-License-Identifier: Apache-2.0
"""A real web client in a real browser: Converse.js (npm `converse.js`) served from a local
page, in headless Chromium (Debian `chromium`) driven by puppeteer-core, logs in over
tcbroker's WebSocket listener, joins a room where a desktop client (slixmpp over TCP) spoke
before, posts, sees its message reflected by the room, and, in a fresh browser profile with
nothing cached, sees the room's history again from the server.

The npm packages are installed on first use into $TC_WEB_DIR (default: $TC_BUILD_DIR/web, else
a temporary directory) with `npm ci` from package-lock.json; set TC_WEB_SKIP=1 to skip.

  TC_BROKER=... TC_CTL=... TC_BUILD_DIR=build/asan \\
      /usr/bin/python3 -B -m unittest discover -s tests/web -p test_converse.py -v
"""

import asyncio
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "muc"))

import tcharness as th  # noqa: E402

CHROMIUM = os.environ.get("TC_CHROMIUM", "/usr/bin/chromium")
NPM_TIMEOUT = 600  # seconds for `npm ci` (downloads ~130 MB the first time)
DRIVER_TIMEOUT = 240  # seconds for the whole browser session


def web_dir():
    """A directory holding package.json, its lock, node_modules, the driver and the page.
    `npm ci` runs again only when the lock file changed."""
    base = os.environ.get("TC_WEB_DIR")
    if not base:
        build = os.environ.get("TC_BUILD_DIR")
        base = os.path.join(build, "web") if build else os.path.join(th.tmp_root(), "web")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(HERE, "package-lock.json"), "rb") as f:
        lock_hash = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(base, ".installed")
    installed = open(stamp).read().strip() if os.path.exists(stamp) else ""
    if installed != lock_hash or not os.path.isdir(os.path.join(base, "node_modules")):
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(os.path.join(HERE, name), os.path.join(base, name))
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                       cwd=base, check=True, timeout=NPM_TIMEOUT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with open(stamp, "w") as f:
            f.write(lock_hash)
    # The driver imports puppeteer-core: ES modules resolve from their own directory.
    shutil.copyfile(os.path.join(HERE, "converse_driver.mjs"),
                    os.path.join(base, "converse_driver.mjs"))
    page = os.path.join(base, "page")
    os.makedirs(page, exist_ok=True)
    shutil.copyfile(os.path.join(HERE, "page", "index.html"), os.path.join(page, "index.html"))
    dist = os.path.join(page, "dist")
    if not os.path.exists(dist):
        os.symlink(os.path.join(base, "node_modules", "converse.js", "dist"), dist)
    return base


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_page(directory):
    """A static HTTP server for the page on 127.0.0.1 (another origin than the WebSocket)."""
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Converse(th.MucTestCase):
    OWN_BROKER = False
    TEST_TIMEOUT = NPM_TIMEOUT + DRIVER_TIMEOUT + 60

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if os.environ.get("TC_WEB_SKIP") == "1":
            raise unittest.SkipTest("TC_WEB_SKIP=1")
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} is not installed (scripts/install-deps)")
        if not os.path.exists(CHROMIUM):
            raise unittest.SkipTest(f"no browser at {CHROMIUM} (scripts/install-deps)")

    async def test_converse_joins_posts_and_sees_history_after_reload(self):
        base = await asyncio.to_thread(web_dir)
        page_server = serve_page(os.path.join(base, "page"))
        self.addCleanup(page_server.shutdown)
        page_origin = f"http://127.0.0.1:{page_server.server_address[1]}"
        broker = th.Broker("converse", sections={"websocket": {
            "enabled": True, "port": 0, "consider_secure": True,
            "allowed_origins": [page_origin]}})
        self.extra_brokers.append(broker)
        broker.start()
        ws_url = f"ws://127.0.0.1:{broker.ready['websocket_port']}/xmpp-websocket"

        room = self.room("web")
        bob = await self.client("bob", broker=broker)
        await bob.join(room, "bob")
        earlier = "hello from a desktop client"
        await bob.say(room, earlier)

        posted = "hello from Converse.js"
        screenshot = os.path.join(broker.dir, "converse-room.png")
        query = "&".join(f"{k}={v}" for k, v in {
            "ws": ws_url, "jid": "alice@localhost", "password": th.PASSWORD,
            "room": room, "nick": "alice"}.items())
        env = dict(os.environ, TC_WEB_PAGE=f"{page_origin}/index.html?{query}",
                   TC_WEB_ROOM=room, TC_WEB_BODY=posted, TC_WEB_EXPECT=earlier,
                   TC_WEB_SCREENSHOT=screenshot, TC_CHROMIUM=CHROMIUM,
                   TC_WEB_TIMEOUT_MS=str(int(th.TIMEOUT * 3000)))
        proc = await asyncio.create_subprocess_exec(
            "node", os.path.join(base, "converse_driver.mjs"), cwd=base, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        # bob sees the browser's message while the driver runs.
        seen = asyncio.ensure_future(
            bob.expect(th.is_groupchat(f"{room}/alice", posted), "the browser's message",
                       timeout=DRIVER_TIMEOUT))
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), DRIVER_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            seen.cancel()
            self.fail(f"the browser session did not finish within {DRIVER_TIMEOUT} s")
        lines = out.decode(errors="replace").splitlines()
        self.trace.extend("driver: " + line for line in lines)
        steps = {}
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            steps[event.get("step")] = event
        self.assertEqual(proc.returncode, 0,
                         "the browser session failed: " + json.dumps(steps.get("failed")))
        for name in ("room-open", "earlier-message-shown", "reflected", "history", "done"):
            self.assertIn(name, steps)
        await seen
        self.assertTrue(os.path.getsize(screenshot) > 10_000, "a screenshot of the room")
        history = steps["history"]["messages"]
        shown = [m for m in history if m["body"] in (earlier, posted)]
        self.assertEqual([m["body"] for m in shown], [earlier, posted],
                         "the history in order, each message once")
        # The fresh profile had nothing cached: Converse marks what it got from MAM.
        self.assertTrue(all(m["archived"] and m["reflected"] for m in shown), shown)
        if os.environ.get("TC_WEB_SCREENSHOT_TO"):
            shutil.copyfile(screenshot, os.environ["TC_WEB_SCREENSHOT_TO"])


if __name__ == "__main__":
    unittest.main()
