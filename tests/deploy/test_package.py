# SPDX-License-Identifier: Apache-2.0
"""The Debian package (cmake/TcPackaging.cmake, packaging/): built with cpack from the build
directory under test, then inspected: control fields, conffiles, maintainer scripts, contents;
the packaged configuration is valid for the packaged tcbroker; the systemd unit verifies and
its sandbox scores as systemd's own analysis judges "OK".

TC_DEPLOY_INSTALL=1 also installs it on this machine with dpkg (it creates the tcbroker user,
a certificate and a token), runs the packaged node as that user on the packaged configuration,
logs a client in, and purges the package again. Only for throwaway machines.

  TC_BUILD_DIR=build/asan TC_BROKER=... TC_CTL=... \\
      /usr/bin/python3 -B -m unittest discover -s tests/deploy -p test_package.py -v
"""

import asyncio
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "muc"))

import tcharness as th  # noqa: E402

BUILD = os.environ.get("TC_BUILD_DIR")
CPACK_TIMEOUT = 600


def read(path):
    with open(path) as f:
        return f.read()


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 120), **kwargs).stdout


class Package(th.MucTestCase):
    OWN_BROKER = False
    TEST_TIMEOUT = CPACK_TIMEOUT + 120
    deb = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not BUILD or not os.path.exists(os.path.join(BUILD, "CPackConfig.cmake")):
            raise unittest.SkipTest("TC_BUILD_DIR with a configured build is needed")
        cls.out = tempfile.mkdtemp(prefix="deb-", dir=th.tmp_root())
        # Uncompressed: the sanitiser build's binaries are large and this is not a release.
        run(["cpack", "-G", "DEB", "-B", cls.out, "-D", "CPACK_DEBIAN_COMPRESSION_TYPE=none"],
            cwd=BUILD, timeout=CPACK_TIMEOUT)
        [cls.deb] = glob.glob(os.path.join(cls.out, "tcbroker_*.deb"))
        cls.root = os.path.join(cls.out, "root")
        run(["dpkg-deb", "-x", cls.deb, cls.root])

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "out", None):
            shutil.rmtree(cls.out, ignore_errors=True)
        super().tearDownClass()

    def field(self, name):
        return run(["dpkg-deb", "-f", self.deb, name]).strip()

    def test_control_fields_and_maintainer_scripts(self):
        self.assertEqual(self.field("Package"), "tcbroker")
        depends = self.field("Depends")
        for dep in ("adduser", "openssl", "libssl3", "libsqlite3-0"):
            self.assertIn(dep, depends)
        control = os.path.join(self.out, "control")
        run(["dpkg-deb", "-e", self.deb, control])
        self.assertEqual(read(os.path.join(control, "conffiles")).split(),
                         ["/etc/tcbroker/tcbroker.toml"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(control, script)
            self.assertTrue(os.access(path, os.X_OK), f"{script} is not executable")
            run(["sh", "-n", path])  # parses
        postinst = read(os.path.join(control, "postinst"))
        self.assertIn("adduser --system --group", postinst)

    def test_contents(self):
        listing = run(["dpkg-deb", "-c", self.deb])
        for path in ("./usr/bin/tcbroker", "./usr/bin/tcctl", "./usr/bin/tc-merge",
                     "./etc/tcbroker/tcbroker.toml", "./lib/systemd/system/tcbroker.service",
                     "./usr/share/doc/tcbroker/operator-guide.md"):
            self.assertRegex(listing, re.escape(path) + r"\n", f"{path} missing")
        self.assertRegex(listing, r"-rw-r--r-- root/root .* \./etc/tcbroker/tcbroker\.toml")

    def test_packaged_configuration_is_valid(self):
        binary = os.path.join(self.root, "usr", "bin", "tcbroker")
        config = os.path.join(self.root, "etc", "tcbroker", "tcbroker.toml")
        out = run([binary, "--config", config, "--check-config"])
        self.assertIn("configuration OK", out)

    def test_systemd_unit_verifies_and_is_sandboxed(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("no systemd-analyze")
        unit = read(os.path.join(self.root, "lib", "systemd", "system",
                                 "tcbroker.service"))
        for line in ("Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID",
                     "User=tcbroker", "ProtectSystem=strict", "NoNewPrivileges=yes"):
            self.assertIn(line, unit)
        local = os.path.join(self.out, "tcbroker.service")
        with open(local, "w") as f:
            f.write(unit.replace("/usr/bin/tcbroker",
                                 os.path.join(self.root, "usr", "bin", "tcbroker")))
        run(["systemd-analyze", "verify", local])
        security = run(["systemd-analyze", "security", "--offline=yes", local])
        level = re.search(r"Overall exposure level for tcbroker\.service: ([0-9.]+) (\w+)",
                          security)
        self.assertIsNotNone(level, security[-500:])
        self.assertLessEqual(float(level.group(1)), 2.0, security[-2000:])
        self.assertEqual(level.group(2), "OK")

    @unittest.skipUnless(os.environ.get("TC_DEPLOY_INSTALL") == "1",
                         "TC_DEPLOY_INSTALL=1 installs the package on this machine")
    async def test_install_run_and_purge(self):
        await asyncio.to_thread(run, ["dpkg", "-i", self.deb], timeout=300)
        try:
            self.assertIn("tcbroker", run(["getent", "passwd", "tcbroker"]))
            for f in ("tls.crt", "tls.key", "admin.token"):
                self.assertTrue(os.path.exists(f"/etc/tcbroker/{f}"), f)
            run(["/usr/bin/tcbroker", "--config", "/etc/tcbroker/tcbroker.toml",
                 "--check-config"])
            port = th.free_port()
            config = read("/etc/tcbroker/tcbroker.toml")
            config = config.replace("port = 5222", f"port = {port}").replace(
                'address = "0.0.0.0"', 'address = "127.0.0.1"')
            config += "\n[ha]\nport = 0\n"
            test_config = "/var/lib/tcbroker/test.toml"
            with open(test_config, "w") as f:
                f.write(config.replace("[admin]\n", "[admin]\nport = 0\n"))
            run(["/usr/bin/tcctl", "--config", test_config, "users", "add", "alice",
                 "--password", th.PASSWORD])
            run(["chown", "-R", "tcbroker:tcbroker", "/var/lib/tcbroker"])
            proc = subprocess.Popen(["runuser", "-u", "tcbroker", "--", "/usr/bin/tcbroker",
                                     "--config", test_config], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + th.PROCESS_TIMEOUT
                while True:
                    try:
                        c = th.Client("alice", trace=self.trace)
                        self.clients.append(c)
                        await c.login(port)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
                await c.close()
            finally:
                proc.terminate()
                proc.wait(30)
        finally:
            await asyncio.to_thread(run, ["dpkg", "--purge", "tcbroker"], timeout=300)
        self.assertFalse(os.path.exists("/usr/bin/tcbroker"))
        self.assertFalse(os.path.exists("/var/lib/tcbroker"))


if __name__ == "__main__":
    unittest.main()
