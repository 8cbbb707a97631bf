# SPDX-License-Identifier: Apache-2.0
"""A real Prosody (Debian's `prosody` package) as the front server for component mode: its own
configuration, data and log in a temporary directory, c2s and component ports on loopback,
accounts written as Prosody's internal_plain storage files. Runs in the foreground as a child
process; every wait is bounded."""

import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "muc"))

import tcharness as th  # noqa: E402

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
SECRET = "component-secret-for-tests"


def _lua(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encode_host(host):
    # Prosody's datamanager escapes the host and user names of its storage paths.
    return "".join(c if c.isalnum() else "%%%02x" % ord(c) for c in host)


class Prosody:
    def __init__(self, domain=th.DOMAIN, component=th.MUC_DOMAIN, users=th.USERS):
        if not os.path.exists(PROSODY):
            raise RuntimeError("prosody is not installed (scripts/install-deps)")
        self.domain, self.component = domain, component
        self.dir = os.path.realpath(os.path.join(th.tmp_root(), f"prosody-{time.monotonic_ns()}"))
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.c2s_port, self.component_port = th.free_port(), th.free_port()
        crt, key = th.certificate()
        shutil.copyfile(crt, os.path.join(self.dir, "tls.crt"))
        shutil.copyfile(key, os.path.join(self.dir, "tls.key"))
        for user in users:
            self.add_user(user)
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.config = os.path.join(self.dir, "prosody.cfg.lua")
        with open(self.config, "w") as f:
            f.write(f"""
pidfile = {_lua(os.path.join(self.dir, "prosody.pid"))}
data_path = {_lua(self.data)}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = {_lua(self.log_path)} }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s_port} }}
component_ports = {{ {self.component_port} }}
component_interfaces = {{ "127.0.0.1" }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping" }}
-- posix would switch users and daemonise; the test runs Prosody as a plain child process.
modules_disabled = {{ "s2s"; "posix" }}
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = true
ssl = {{ certificate = {_lua(os.path.join(self.dir, "tls.crt"))};
        key = {_lua(os.path.join(self.dir, "tls.key"))} }}
VirtualHost {_lua(domain)}
Component {_lua(component)}
  component_secret = {_lua(SECRET)}
""")
        self.proc = None

    def add_user(self, user, password=th.PASSWORD):
        d = os.path.join(self.data, _encode_host(self.domain), "accounts")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{user}.dat"), "w") as f:
            f.write(f"return {{\n\t[\"password\"] = {_lua(password)};\n}};\n")

    def start(self):
        self.proc = subprocess.Popen([PROSODY, "--config", self.config, "-F"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=th._die_with_parent)
        deadline = time.monotonic() + th.PROCESS_TIMEOUT
        for port in (self.c2s_port, self.component_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"prosody exited with {self.proc.returncode}\n"
                                       f"{self.log_tail()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"prosody not listening on {port}\n{self.log_tail()}")
                    time.sleep(0.05)
        return self

    def log_tail(self, lines=80):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no prosody log)"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(th.PROCESS_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
