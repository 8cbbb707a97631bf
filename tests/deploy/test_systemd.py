# SPDX-License-Identifier: Apache-2.0
"""Running under systemd (Type=notify): readiness, the watchdog, stopping, and SIGHUP reloading
the log level and the TLS certificate without dropping sessions. A real tcbroker process; the
test plays systemd's part by listening on the notification socket itself.

  TC_BROKER=... TC_CTL=... /usr/bin/python3 -B -m unittest discover -s tests/deploy -v
"""

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import ssl
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ha"))

import haharness as hh  # noqa: E402
from haharness import th  # noqa: E402

WATCHDOG_USEC = 400_000


class NotifySocket:
    """systemd's side of sd_notify: a datagram socket; each datagram is a dict of assignments."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"tc-notify-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(th.tmp_root(), f"notify-{time.monotonic_ns()}.sock")
            self.sock.bind(self.address)
        self.got = []

    def next(self, timeout=th.TIMEOUT):
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.split("\n") if "=" in line)
        self.got.append(message)
        return message

    def wait_for(self, key, timeout=th.TIMEOUT, skip=("WATCHDOG",)):
        """The next message that sets `key`; watchdog pings in between are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}= from tcbroker; got {self.got[-10:]}")
            m = self.next(left)
            if key in m:
                return m
            if not set(m) <= set(skip):
                raise AssertionError(f"expected {key}=, got {m}")

    def close(self):
        self.sock.close()
        if not self.address.startswith("@"):
            os.unlink(self.address)


def make_certificate(directory, name):
    crt, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    th._run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
             f"/CN=localhost/O={name}", "-keyout", key, "-out", crt, "-days", "2"],
            "openssl req")
    return crt, key


def starttls_fingerprint(port):
    """Opens a stream, STARTTLS, and returns the SHA-256 of the certificate the server shows."""
    with socket.create_connection(("127.0.0.1", port), timeout=th.TIMEOUT) as s:
        s.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
        data = b""
        while b"</stream:features>" not in data:
            chunk = s.recv(4096)
            assert chunk, f"stream ended before features: {data!r}"
            data += chunk
        s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        data = b""
        while b"<proceed" not in data:
            chunk = s.recv(4096)
            assert chunk, f"no proceed: {data!r}"
            data += chunk
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def read(path):
    with open(path) as f:
        return f.read()


def file_fingerprint(crt):
    der = ssl.PEM_cert_to_DER_cert(read(crt))
    return hashlib.sha256(der).hexdigest()


class Systemd(th.MucTestCase):
    OWN_BROKER = False

    def broker_with(self, env, sections=None, name="systemd"):
        b = th.Broker(name, sections=sections)
        b.env = dict(os.environ, **env)
        self.extra_brokers.append(b)
        return b

    async def test_ready_watchdog_reload_and_stopping_are_notified(self):
        for abstract in (False, True):
            with self.subTest(abstract_socket=abstract):
                notify = NotifySocket(abstract)
                self.addCleanup(notify.close)
                b = self.broker_with({"NOTIFY_SOCKET": notify.address,
                                      "WATCHDOG_USEC": str(WATCHDOG_USEC)},
                                     name=f"systemd-{int(abstract)}")
                await asyncio.to_thread(b.start)
                ready = await asyncio.to_thread(notify.wait_for, "READY")
                self.assertEqual(ready["READY"], "1")
                self.assertIn(f"127.0.0.1:{b.port}", ready["STATUS"])
                # The client port serves by then.
                c = await self.client("alice", broker=b)
                await c.close()
                # Watchdog pings at half the timeout, while every shard runs tasks.
                started = time.monotonic()
                pings = 0
                while time.monotonic() - started < 1.0:
                    m = await asyncio.to_thread(notify.next, 1.0)
                    pings += m.get("WATCHDOG") == "1"
                self.assertGreaterEqual(pings, 3, notify.got[-10:])
                self.assertLessEqual(pings, 8, notify.got[-10:])
                b.proc.send_signal(signal.SIGHUP)
                reloading = await asyncio.to_thread(notify.wait_for, "RELOADING")
                self.assertEqual(reloading["RELOADING"], "1")
                self.assertGreater(int(reloading["MONOTONIC_USEC"]), 0)
                again = await asyncio.to_thread(notify.wait_for, "READY")
                self.assertEqual(again["READY"], "1")
                b.proc.send_signal(signal.SIGTERM)
                stopping = await asyncio.to_thread(notify.wait_for, "STOPPING")
                self.assertEqual(stopping["STOPPING"], "1")
                self.assertEqual(await asyncio.to_thread(b.proc.wait, th.PROCESS_TIMEOUT), 0)

    async def test_no_watchdog_for_another_pid_and_nothing_without_a_socket(self):
        notify = NotifySocket()
        self.addCleanup(notify.close)
        b = self.broker_with({"NOTIFY_SOCKET": notify.address,
                              "WATCHDOG_USEC": str(WATCHDOG_USEC), "WATCHDOG_PID": "1"})
        await asyncio.to_thread(b.start)
        await asyncio.to_thread(notify.wait_for, "READY")
        # No WATCHDOG=1: it is for pid 1. The margin: 0.6 s is three of the half-timeout
        # periods (0.2 s) in which a watchdog ping would otherwise have come.
        with self.assertRaises(socket.timeout):
            await asyncio.to_thread(notify.next, 0.6)
        plain = self.broker_with({}, name="no-systemd")
        plain.env.pop("NOTIFY_SOCKET", None)
        await asyncio.to_thread(plain.start)
        await self.client("bob", broker=plain)

    async def test_sighup_swaps_the_certificate_and_log_level_without_dropping_sessions(self):
        b = self.broker_with({})
        d = b.dir
        first = make_certificate(d, "first")
        second = make_certificate(d, "second")
        live_crt, live_key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
        shutil.copyfile(first[0], live_crt)
        shutil.copyfile(first[1], live_key)
        config = read(b.config)
        config = config.replace(f'certificate = "{th.certificate()[0]}"',
                                f'certificate = "{live_crt}"')
        config = config.replace(f'private_key = "{th.certificate()[1]}"',
                                f'private_key = "{live_key}"')
        config = config.replace('level = "debug"', 'level = "info"')
        with open(b.config, "w") as f:
            f.write(config)
        await asyncio.to_thread(b.start)
        self.assertEqual(await asyncio.to_thread(starttls_fingerprint, b.port),
                         file_fingerprint(first[0]))
        room = self.room()
        alice = await self.client("alice", broker=b)
        await alice.join(room, "alice")
        await alice.say(room, "before the reload")
        self.assertNotIn(" debug ", read(b.log_path), "debug lines at level info")

        def log_has(text, after=0):
            return text in read(b.log_path)[after:]

        # A new certificate and a debug log level; open sessions stay.
        shutil.copyfile(second[0], live_crt)
        shutil.copyfile(second[1], live_key)
        with open(b.config, "w") as f:
            f.write(config.replace('level = "info"', 'level = "debug"'))
        mark = len(read(b.log_path))
        b.proc.send_signal(signal.SIGHUP)
        await hh.poll_until(lambda: log_has("configuration reloaded", mark),
                            th.TIMEOUT, "the reload logged")
        self.assertEqual(await asyncio.to_thread(starttls_fingerprint, b.port),
                         file_fingerprint(second[0]))
        await alice.say(room, "after the reload")  # the same session, still served
        await hh.poll_until(lambda: log_has(" debug ", mark),
                            th.TIMEOUT, "debug lines after the level change")

        # A broken file changes nothing: the node keeps serving with what it has.
        with open(b.config, "w") as f:
            f.write("[node\n")
        mark = len(read(b.log_path))
        b.proc.send_signal(signal.SIGHUP)
        await hh.poll_until(lambda: log_has("configuration not reloaded", mark),
                            th.TIMEOUT, "the refusal logged")
        self.assertEqual(await asyncio.to_thread(starttls_fingerprint, b.port),
                         file_fingerprint(second[0]))
        await alice.say(room, "after a bad reload")
        self.assertTrue(b.running())


if __name__ == "__main__":
    unittest.main()
