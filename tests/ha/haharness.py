# SPDX-License-Identifier: Apache-2.0
"""Harness for the high-availability tests and the failover drill (tools/tc-drill).

Builds on tests/muc/tcharness.py (imported, not copied): a *pair* of tcbroker nodes sharing
one database (a SQLite file or a PostgreSQL database), configured with [admin] and [ha]
sections, a redundancy group and sub-second SRM settings set through tcctl; an admin API
client; and HaClient, a slixmpp client that follows see-other-host redirects, logs in again on
the surviving node after the re-login delay and re-joins its rooms.

Every wait is bounded: polls every 50 ms against a deadline, never a bare sleep as
synchronisation.
"""

import asyncio
import atexit
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

_HERE = os.path.dirname(os.path.abspath(__file__))
_MUC = os.path.join(os.path.dirname(_HERE), "muc")
if _MUC not in sys.path:
    sys.path.insert(0, _MUC)

import tcharness as th  # noqa: E402
from tcharness import (Message, Presence, attr, body, status_codes, q)  # noqa: E402,F401

POLL = 0.05


class _QuietRedirects(logging.Filter):
    """Drops slixmpp's noise about redirects HaClient handles itself: the bind error that comes
    with see-other-host at login, "Exceeded maximum number of redirection attempts" (we set
    max_redirects to -1 to follow them ourselves), and the pending filter tasks of sessions
    dropped by a failover."""

    def filter(self, record):
        msg = record.getMessage()
        if msg.startswith("Exceeded maximum number of redirection attempts"):
            return False
        if msg.startswith("Error handling {jabber:client}features stanza") and record.exc_info:
            return "resource-constraint" not in str(record.exc_info[1])
        if msg.startswith("Task was destroyed but it is pending") and "run_filters" in msg:
            return False
        return True


for _name in ("slixmpp.basexmpp", "slixmpp.stanza.rootstanza", "slixmpp.xmlstream.stanzabase",
              "slixmpp.xmlstream.xmlstream", "asyncio"):
    logging.getLogger(_name).addFilter(_QuietRedirects())
TOKEN = "ha-test-token"
NODE_NAMES = ("node1", "node2")

# Sub-second SRM settings for tests and drills (SPEC.md section 2 allows them).
FAST_SETTINGS = {
    "heartbeat_interval": "0.1",
    "heartbeat_timeout": "0.6",
    "init_heartbeat_timeout": "2",
    "critical_service_down_delay": "0.5",
    "auto_fallback": "false",
    "auto_fallback_delay": "1",
    # The suites built on users_on() place users on a node by following the vendor's redirect
    # to the assigned node; tests of the default (any node serves any user) and tc-drill pass
    # {"redirect_users": "false"}.
    "redirect_users": "true",
}
RELOGIN = (0.05, 0.2)

TAKEOVER_STATES = {"Taking Over", "Running in Backup Mode"}


class HaError(AssertionError):
    pass


def tool_paths(tcbroker=None, tcctl=None):
    """tcbroker and tcctl: explicit paths, else TC_BROKER/TC_CTL, else the build trees."""
    root = os.path.dirname(os.path.dirname(_HERE))
    out = []
    for given, env, name in ((tcbroker, "TC_BROKER", "tcbroker"), (tcctl, "TC_CTL", "tcctl")):
        path = given or os.environ.get(env)
        if not path:
            for tree in ("release", "asan", "debug"):
                cand = os.path.join(root, "build", tree, "broker", name)
                if os.access(cand, os.X_OK):
                    path = cand
                    break
        if not path or not os.access(path, os.X_OK):
            raise FileNotFoundError(f"{name}: not found (set {env} or pass --{name})")
        out.append(os.path.abspath(path))
    # tcharness reads these from the environment (account templates, PostgreSQL helpers).
    os.environ.setdefault("TC_BROKER", out[0])
    os.environ.setdefault("TC_CTL", out[1])
    return out


def run(argv, timeout=th.PROCESS_TIMEOUT):
    """Runs argv, returns CompletedProcess (never raises on exit status; raises on timeout)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise HaError(f"timed out after {timeout} s: {argv}") from None


# ---------------------------------------------------------------------------------------------
# Stream-error parsing (pure logic, unit-tested in test_logic.py)

def parse_other_host(value):
    """'127.0.0.1:5222' / '[::1]:5222' / 'host' -> (host, port or None)."""
    value = (value or "").strip()
    if not value:
        return None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    return host, (int(port) if port.isdigit() else None)


_UNIT = r"(ms|milliseconds?|s|sec|seconds?)\b"
_RANGE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:to|-|\.\.)\s*(\d+(?:\.\d+)?)\s*" + _UNIT, re.I)
_DELAY_RE = re.compile(r"(\d+(?:\.\d+)?)\s*" + _UNIT, re.I)
NS_RELOGIN = "urn:tcbroker:ha:1"


def _seconds(value, unit):
    value = float(value)
    return value / 1000.0 if unit.lower().startswith("m") else value


def parse_relogin_delay(text, default=None, cap=10.0, rng=random):
    """The re-login delay a stream error text carries, in seconds, capped: a random one in a
    window ('log in again after a random delay of 50 to 200 ms') or a single value ('in
    0.13 s'); `default` when the text names none."""
    m = _RANGE_RE.search(text or "")
    if m:
        lo, hi = _seconds(m.group(1), m.group(3)), _seconds(m.group(2), m.group(3))
        value = rng.uniform(min(lo, hi), max(lo, hi))
    else:
        m = _DELAY_RE.search(text or "")
        if not m:
            return default
        value = _seconds(m.group(1), m.group(2))
    return min(max(value, 0.0), cap)


def relogin_window(error_xml):
    """(min, max) seconds of the <relogin xmlns='urn:tcbroker:ha:1' min-ms max-ms/> element a
    stream error carries, or None."""
    if error_xml is None:
        return None
    el = error_xml.find(f"{{{NS_RELOGIN}}}relogin")
    if el is None:
        return None
    try:
        return float(el.get("min-ms")) / 1000.0, float(el.get("max-ms")) / 1000.0
    except (TypeError, ValueError):
        return None


def node_entry(status, name):
    for n in (status or {}).get("nodes", []):
        if n.get("name") == name:
            return n
    return None


def self_entry(status):
    for n in (status or {}).get("nodes", []):
        if n.get("self"):
            return n
    return None


# ---------------------------------------------------------------------------------------------
# A PostgreSQL server the drill may stop and start again (db-stop)

class NetCut:
    """A real network cut between the nodes of a pair: an nftables table of our own drops every
    TCP packet to or from the nodes' SRM service ports, in both directions and on established
    connections too, as a pulled cable would (nothing is closed politely: the nodes only see
    silence). Needs root and nft (Debian package nftables). heal() removes the table; it is
    also removed at exit."""

    _live = set()

    def __init__(self, ports, one_way=False):
        """`one_way`: drop only packets *to* `ports` (connections dialled to those nodes die,
        those they dial out keep working): an asymmetric cut."""
        self.ports = sorted(int(p) for p in ports)
        self.one_way = one_way
        self.table = f"tc_cut_{os.getpid()}_{random.randrange(1 << 30):x}"
        self.active = False

    _usable = None

    @staticmethod
    def available():
        """Root, nft, and a kernel that takes a table (probed once: a container without
        netfilter skips the real-cut tests instead of failing them)."""
        if NetCut._usable is None:
            NetCut._usable = False
            if os.geteuid() == 0 and shutil.which("nft") is not None:
                probe = f"tc_probe_{os.getpid()}"
                made = subprocess.run(["nft", "add", "table", "inet", probe],
                                      capture_output=True, timeout=10)
                if made.returncode == 0:
                    subprocess.run(["nft", "delete", "table", "inet", probe],
                                   capture_output=True, timeout=10)
                    NetCut._usable = True
        return NetCut._usable

    def cut(self):
        ports = ", ".join(str(p) for p in self.ports)
        script = (f"table inet {self.table} {{\n"
                  f"  chain input {{ type filter hook input priority -10; policy accept;\n"
                  f"    tcp dport {{ {ports} }} drop\n"
                  + ("" if self.one_way else f"    tcp sport {{ {ports} }} drop\n") +
                  f"  }}\n}}\n")
        done = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True,
                              timeout=10)
        if done.returncode != 0:
            raise HaError(f"nft could not cut the link: {done.stderr}")
        self.active = True
        NetCut._live.add(self.table)

    def heal(self):
        if not self.active:
            return
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True,
                       timeout=10)
        self.active = False
        NetCut._live.discard(self.table)


@atexit.register
def _heal_all_cuts():
    for table in list(NetCut._live):
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True, timeout=10)
    for cut in list(DbCut._live):
        cut.close()


def _cgroup2_root():
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on a hybrid
    host), or None."""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return None


class DbCut:
    """A real cut between ONE node and the database, the other node and the peer link left
    alone: the node runs in a cgroup of its own (cgroup v2) and an nftables rule drops every
    packet its sockets send to the database's port, so its queries and acknowledgements vanish
    (nothing is closed; the node sees silence). prepare(node) must run before the node starts
    (a socket belongs to the cgroup its process was in when it was made). Needs root, nft and
    a writable cgroup v2 hierarchy."""

    _live = set()
    _usable = None

    def __init__(self, db_port):
        self.db_port = int(db_port)
        self.root = _cgroup2_root()
        self.name = f"tc-dbcut-{os.getpid()}-{random.randrange(1 << 30):x}"
        self.table = f"tc_dbcut_{os.getpid()}_{random.randrange(1 << 30):x}"
        self.path = os.path.join(self.root, self.name) if self.root else None
        self.active = False

    @staticmethod
    def available():
        if DbCut._usable is None:
            DbCut._usable = False
            root = _cgroup2_root()
            if NetCut.available() and root and os.access(root, os.W_OK):
                probe = DbCut(9)
                try:
                    os.mkdir(probe.path)
                    probe._rules()
                    DbCut._usable = True
                except (OSError, HaError):
                    pass
                finally:
                    subprocess.run(["nft", "delete", "table", "inet", probe.table],
                                   capture_output=True, timeout=10)
                    try:
                        os.rmdir(probe.path)
                    except OSError:
                        pass
        return DbCut._usable

    def _rules(self):
        # nft names a cgroup by its path under /sys/fs/cgroup.
        rel = os.path.relpath(self.path, "/sys/fs/cgroup")
        level = len(os.path.relpath(self.path, self.root).split(os.sep))
        script = (f"table inet {self.table} {{\n"
                  f"  chain output {{ type filter hook output priority -10; policy accept;\n"
                  f"    socket cgroupv2 level {level} {json.dumps(rel)} tcp dport {self.db_port}"
                  f" drop\n  }}\n}}\n")
        done = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True,
                              timeout=10)
        if done.returncode != 0:
            raise HaError(f"nft could not cut the database: {done.stderr}")

    def prepare(self, node):
        os.makedirs(self.path, exist_ok=True)
        node.cgroup = self.path
        DbCut._live.add(self)

    def cut(self):
        self._rules()
        self.active = True

    def heal(self):
        if self.active:
            subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True,
                           timeout=10)
            self.active = False

    def close(self):
        """Heals and removes the cgroup (once its processes are gone)."""
        self.heal()
        try:
            os.rmdir(self.path)
        except OSError:
            pass
        DbCut._live.discard(self)


class StoppablePg(th._PythonPg):
    """tcharness's Python PostgreSQL, plus halt() (pg_ctl stop -m immediate) and resume()."""

    def _opts(self):
        return (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c max_connections=100 -c fsync=off -c full_page_writes=off")

    def halt(self):
        self._pg(["pg_ctl", "-D", self.data, "stop", "-m", "immediate", "-w", "-t", "30"],
                 "pg_ctl stop -m immediate")

    def resume(self):
        self._pg(["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
                  "-o", self._opts(), "-w", "-t", "60", "start"], "pg_ctl start", timeout=90)

    def createdb(self, name):
        createdb = os.path.join(self.bin, "createdb")
        th._run([createdb, "-h", self.host, "-p", str(self.port), "-U", self.user, name],
                "createdb")
        return f"postgresql://{self.user}@{self.host}:{self.port}/{name}"


# ---------------------------------------------------------------------------------------------
# Nodes and the pair

class Node:
    def __init__(self, pair, name):
        self.pair = pair
        self.name = name
        self.dir = os.path.join(pair.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.client_port = th.free_port()
        self.admin_port = th.free_port()
        self.srm_port = th.free_port()
        self.ws_port = th.free_port()
        self.config = os.path.join(self.dir, f"{name}.toml")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.ready_path = os.path.join(self.dir, "ready.json")
        self.proc = None
        self.starts = 0
        self.token = TOKEN
        self.cgroup = None  # DbCut.prepare: the cgroup v2 directory the node runs in

    def write_config(self, db_url, muc, relogin, websocket=False, sections=None):
        sections = dict(sections or {})
        if websocket:
            sections["websocket"] = {"enabled": True, "port": self.ws_port,
                                     "consider_secure": True}
        text = th.config_text(db_url, muc, sections)
        text = text.replace("[node]\n", f"[node]\nname = {th._toml(self.name)}\n", 1)
        text = text.replace("[client]\nport = 0",
                            f'[client]\naddress = "127.0.0.1"\nport = {self.client_port}', 1)
        text += (f'\n[admin]\naddress = "127.0.0.1"\nport = {self.admin_port}\n'
                 f"token = {th._toml(self.token)}\n"
                 f'\n[ha]\naddress = "127.0.0.1"\nport = {self.srm_port}\n'
                 f"relogin_min = {relogin[0]!r}\nrelogin_max = {relogin[1]!r}\n")
        with open(self.config, "w") as f:
            f.write(text)

    # -- process ------------------------------------------------------------------------------

    def spawn(self):
        assert not self.running(), f"{self.name} already running"
        if os.path.exists(self.ready_path):
            os.unlink(self.ready_path)
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"\n===== start #{self.starts} =====\n")
        log.flush()
        cgroup = self.cgroup

        def preexec():
            th._die_with_parent()
            if cgroup:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
        self.proc = subprocess.Popen(
            [self.pair.tcbroker, "--config", self.config, "--ready-file", self.ready_path],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        log.close()

    def wait_ready(self, timeout=th.PROCESS_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise HaError(f"{self.name}: tcbroker exited with {self.proc.returncode} before "
                              f"it was ready\n{self.log_tail()}")
            try:
                with open(self.ready_path) as f:
                    ready = json.loads(f.read())
                port = int(ready["client_port"])
                if port != self.client_port:
                    raise HaError(f"{self.name}: ready file names client port {port}, "
                                  f"configured {self.client_port}")
                return self
            except (FileNotFoundError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise HaError(f"{self.name}: not ready within {timeout} s\n{self.log_tail()}")
            time.sleep(0.02)

    def start(self):
        self.spawn()
        return self.wait_ready()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(th.PROCESS_TIMEOUT)

    def terminate(self, wait=True):
        """SIGTERM; with `wait`, waits (bounded) for the exit and returns the status."""
        if not self.running():
            return None
        self.proc.send_signal(signal.SIGTERM)
        if not wait:
            return None
        try:
            return self.proc.wait(th.PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise HaError(f"{self.name}: did not stop within {th.PROCESS_TIMEOUT} s of SIGTERM")

    def close(self):
        """Stops the node (SIGTERM, SIGKILL if it does not go); for MucTestCase's teardown."""
        if self.running():
            try:
                self.terminate()
            except HaError:
                self.kill()

    def log_tail(self, lines=120):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no broker log)"

    # -- admin --------------------------------------------------------------------------------

    def api(self, method, path, payload=None, timeout=2.0):
        """(HTTP status, JSON body or text) of an admin request; (None, error) if unreachable."""
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data,
                                     method=method)
        req.add_header("Authorization", f"Bearer {getattr(self, 'token', TOKEN)}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw, code = r.read(), r.status
        except urllib.error.HTTPError as e:
            raw, code = e.read(), e.code
        except (OSError, ValueError) as e:
            return None, str(e)
        try:
            return code, json.loads(raw or b"null")
        except ValueError:
            return code, raw.decode(errors="replace")

    def status(self, timeout=1.0):
        code, body_ = self.api("GET", "/api/v1/ha/status", timeout=timeout)
        return body_ if code == 200 and isinstance(body_, dict) else None

    def rooms(self, timeout=1.0):
        """Live rooms on this node (set), or None when the admin API does not answer."""
        code, body_ = self.api("GET", "/api/v1/rooms", timeout=timeout)
        if code != 200 or not isinstance(body_, dict):
            return None
        return set(body_.get("rooms", []))

    def ctl(self, *args, timeout=th.PROCESS_TIMEOUT):
        return run([self.pair.tcctl, "--config", self.config, *args], timeout)


class Pair:
    """Two nodes, one database, one redundancy group "pair"."""

    def __init__(self, backend="sqlite", tcbroker=None, tcctl=None, settings=None, ha=True,
                 users=(), muc=None, relogin=RELOGIN, pg=None, root=None, group="pair",
                 websocket=False, sections=None):
        self.tcbroker, self.tcctl = tool_paths(tcbroker, tcctl)
        self.backend = backend
        self.group = group
        self.dir = tempfile.mkdtemp(prefix="pair-", dir=root or th.tmp_root())
        self.owned_pg = None
        if backend == "sqlite":
            self.db_url = "sqlite://" + os.path.join(self.dir, "shared.db")
        elif backend == "postgresql":
            name = f"ha_{os.getpid()}_{os.path.basename(self.dir).replace('-', '_')}".lower()
            self.db_url = pg.createdb(name) if pg is not None else th._createdb(name)
        else:
            raise ValueError(f"backend {backend}: expected sqlite or postgresql")
        self.nodes = {n: Node(self, n) for n in NODE_NAMES}
        self.muc = {"default_persistent": True, **(muc or {})}
        for node in self.nodes.values():
            node.write_config(self.db_url, self.muc, relogin, websocket, sections)
        self.relogin = relogin
        self.settings = dict(FAST_SETTINGS, **(settings or {}))
        self.ha = ha
        self.users = list(users)
        self._setup_db()

    @property
    def n1(self):
        return self.nodes["node1"]

    @property
    def n2(self):
        return self.nodes["node2"]

    def ctl_ok(self, *args, node="node1", timeout=th.PROCESS_TIMEOUT):
        done = self.nodes[node].ctl(*args, timeout=timeout)
        if done.returncode != 0:
            raise HaError(f"tcctl {' '.join(args)}: exit {done.returncode}\n"
                          f"stdout: {done.stdout}\nstderr: {done.stderr}")
        return done.stdout

    def _setup_db(self):
        self.ctl_ok("group", "add", self.group, "--nodes", ",".join(NODE_NAMES),
                    "--ha", "on" if self.ha else "off")
        for k, v in self.settings.items():
            self.ctl_ok("settings", "set", k, str(v))
        self.add_users(self.users)

    def add_users(self, users):
        # In parallel: PBKDF2 makes each tcctl run cost a little.
        pending = list(users)
        while pending:
            batch, pending = pending[:8], pending[8:]
            procs = [(u, subprocess.Popen(
                [self.tcctl, "--config", self.n1.config, "users", "add", u,
                 "--password", th.PASSWORD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, text=True)) for u in batch]
            for u, p in procs:
                try:
                    out, err = p.communicate(timeout=th.PROCESS_TIMEOUT)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.communicate()
                    raise HaError(f"tcctl users add {u}: timed out")
                if p.returncode != 0:
                    raise HaError(f"tcctl users add {u}: exit {p.returncode}: {out}{err}")

    def start(self, wait_normal=True, timeout=30.0):
        for node in self.nodes.values():
            node.spawn()
        for node in self.nodes.values():
            node.wait_ready()
        if wait_normal:
            expect = ("Normal", "Normal") if self.ha else ("Unknown", None)
            self.wait_states({"node1": expect, "node2": expect}, timeout, what="startup")
            if self.ha:
                self.wait_for(self.peers_reachable, timeout, "both nodes reach their peer")
        return self

    def peers_reachable(self):
        """True when each node's status shows its peer reachable."""
        for name, node in self.nodes.items():
            peer = node_entry(node.status(), "node2" if name == "node1" else "node1")
            if peer is None or peer.get("reachable") is not True:
                return False
        return True

    def close(self):
        for node in self.nodes.values():
            if node.running():
                try:
                    node.terminate()
                except HaError:
                    node.kill()

    def port_to_node(self, port):
        for n in self.nodes.values():
            if n.client_port == port:
                return n.name
        return None

    def logs(self):
        return "\n".join(f"--- {n.name} log ({n.dir}) ---\n{n.log_tail()}"
                         for n in self.nodes.values())

    # -- states ---------------------------------------------------------------------------------

    def states(self):
        """{node: (state, reason)} from each node's own view; a node whose admin API does not
        answer is taken from its peer's view, or ("(down)", None)."""
        views = {name: n.status() for name, n in self.nodes.items()}
        out = {}
        for name in self.nodes:
            entry = self_entry(views[name]) if views[name] else None
            if entry is None:
                for other, view in views.items():
                    if other != name and view:
                        peer = node_entry(view, name)
                        if peer is not None and peer.get("reachable", True):
                            entry = peer
            out[name] = ((entry.get("state"), entry.get("reason")) if entry
                         else ("(down)", None))
        return out

    def wait_states(self, expect, timeout=15.0, what="states", seen=None):
        """Polls until each node's (state, reason) matches `expect` {node: (state, reason)}
        (reason None: any). Returns the states; raises HaError with the last ones. `seen`
        (a list) collects every distinct sample."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.states()
            if seen is not None and (not seen or seen[-1] != last):
                seen.append(last)
            if all(_matches(last.get(n), want) for n, want in expect.items()):
                return last
            if time.monotonic() > deadline:
                raise HaError(f"{what}: expected {expect} within {timeout} s, last {last}")
            time.sleep(POLL)

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise HaError(f"{what}: not within {timeout} s")
            time.sleep(POLL)

    def room_hosts(self):
        """{room: [nodes hosting it]} from both nodes' /api/v1/rooms."""
        out = {}
        for name, n in self.nodes.items():
            for r in n.rooms() or ():
                out.setdefault(r, []).append(name)
        return out


def _matches(have, want):
    """`have` (state, reason) against `want` (state, reason): a reason of None matches any,
    a tuple or set any of its members."""
    if not have:
        return False
    state, reason = want
    if reason is None:
        ok_reason = True
    elif isinstance(reason, (tuple, set, frozenset, list)):
        ok_reason = have[1] in reason
    else:
        ok_reason = have[1] == reason
    return have[0] == state and ok_reason


# ---------------------------------------------------------------------------------------------
# Async helpers

async def poll_until(pred, timeout, what, interval=POLL):
    """Awaits (bounded) a truthy pred() run in a worker thread (it may do blocking I/O)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        if time.monotonic() > deadline:
            raise HaError(f"{what}: not within {timeout} s")
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------------------------------
# A client that survives failover

class HaClient:
    """A user's session across failovers: a tcharness.Client per connection. Follows
    see-other-host at login (at once) and during a session (after the re-login delay the
    stream error text names, else a random one in the pair's [relogin_min, relogin_max]);
    when its node dies without a word, tries the other node. Re-joins its rooms."""

    def __init__(self, pair, user, resource="r", trace=None, on_stanza=None,
                 login_timeout=10.0):
        self.pair = pair
        self.user = user
        self.resource = resource
        self.trace = trace if trace is not None else []
        self.on_stanza = on_stanza
        self.login_timeout = login_timeout
        self.c = None
        self.port = None
        self.redirect = None      # (port, delay) of the last see-other-host
        self.redirects = []       # every see-other-host: (time, text, target)
        self.relogin_windows = []  # the <relogin/> window of each, or None
        self.rooms = {}           # room -> nick
        self.logins = []          # (time, node)
        self.needs_join = set()   # rooms that dropped us (unavailable 110, not-acceptable)
        self.rejoins = 0
        self.room_drops = []      # (time, session, room) of each 110 unavailable we got
        self.joining = set()      # rooms with a join of ours under way
        self.sessions = 0         # logins so far: numbers the current session
        self.lock = asyncio.Lock()

    @property
    def node(self):
        return self.pair.port_to_node(self.port)

    @property
    def connected(self):
        return (self.c is not None and not self.c.disconnected.done()
                and self.c.xmpp.transport is not None)

    def _on_stream_error(self, error):
        if error["condition"] != "see-other-host":
            return
        text_ = error["text"] or ""
        target = parse_other_host(error["see_other_host"])
        self.redirects.append((time.monotonic(), text_, target))
        window = relogin_window(getattr(error, "xml", None))
        delay = (random.uniform(*window) if window else parse_relogin_delay(text_))
        self.relogin_windows.append(window)
        if target and target[1]:
            self.redirect = (target[1], delay)

    def _on_in(self, stanza):
        if isinstance(stanza, (Presence, Message)):
            frm = attr(stanza, "from") or ""
            room, _, nick = frm.partition("/")
            if room in self.rooms:
                if (isinstance(stanza, Presence) and attr(stanza, "type") == "unavailable"
                        and nick == self.rooms[room] and 110 in status_codes(stanza)):
                    self.room_drops.append((time.monotonic(), self.sessions, room))
                    # While a join of ours is under way, its answer decides (a late removal
                    # of an earlier session may come first); afterwards, we are out.
                    if room not in self.joining:
                        self.needs_join.add(room)
                elif (isinstance(stanza, Message) and attr(stanza, "type") == "error"
                      and (th.error_of(stanza) or (None, None))[1] == "not-acceptable"):
                    self.needs_join.add(room)
        if self.on_stanza is not None:
            try:
                self.on_stanza(self, stanza)
            except Exception as e:  # never break the stream
                self.trace.append(f"{self.user}: on_stanza raised {e!r}")
        return stanza

    def _on_connection_failed(self, c):
        def handler(_event):
            c._settle(c._outcome, "connection_failed")
            try:
                c.xmpp.cancel_connection_attempt()
            except Exception:
                pass
        return handler

    async def _login_once(self, port):
        c = th.Client(self.user, self.resource, trace=self.trace)
        c.xmpp.max_redirects = -1  # we follow see-other-host ourselves (with the delay)
        c.xmpp.add_event_handler("stream_error", self._on_stream_error)
        c.xmpp.add_event_handler("connection_failed", self._on_connection_failed(c))
        c.xmpp.add_filter("in", self._on_in)
        self.redirect = None
        try:
            await asyncio.wait_for(c.login(port), self.login_timeout)
        except (AssertionError, asyncio.TimeoutError) as e:
            c.abort()
            return None, e
        self.c, self.port = c, port
        self.sessions += 1
        self.logins.append((time.monotonic(), self.node))
        return c, None

    async def connect(self, port=None, deadline=None, first_delay=0.0):
        """Logs in (bounded by `deadline`, default 30 s): at `port` or the other node of the
        last one, following redirects at once. Returns the node name."""
        deadline = deadline or time.monotonic() + 30.0
        ports = [n.client_port for n in self.pair.nodes.values()]
        port = port or self.port or ports[0]
        delay = first_delay
        last_error = None
        while time.monotonic() < deadline:
            if delay:
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            c, err = await self._login_once(port)
            if c is not None:
                return self.node
            last_error = err
            if self.redirect:
                port, delay = self.redirect[0], 0.0  # wrong node at login: go at once
            else:
                port = ports[1] if port == ports[0] else ports[0]  # dead node: try the other
                delay = 0.1
        raise HaError(f"{self.user}: no login before the deadline (last: {last_error})")

    async def reconnect_if_needed(self, deadline=None):
        """After a disconnect: waits the re-login delay, logs in again, re-joins rooms.
        Returns True if it reconnected."""
        if self.connected:
            return False
        async with self.lock:
            if self.connected:
                return False
            if self.redirect:
                port, delay = self.redirect
                if delay is None:
                    delay = random.uniform(*self.pair.relogin)
            else:
                ports = [n.client_port for n in self.pair.nodes.values()]
                port = self.port
                delay = random.uniform(*self.pair.relogin)
                if port is None:
                    port = ports[0]
            await self.connect(port, deadline, first_delay=delay)
            await self.rejoin(deadline)
            return True

    async def join(self, room, nick=None, timeout=10.0):
        nick = nick or self.user
        joined = await self.c.join(room, nick, history={"maxstanzas": 0}, timeout=timeout)
        self.rooms[room] = nick
        return joined

    async def join_quick(self, room, nick, timeout=5.0):
        """Joins (or re-joins) `room` and awaits only the self-presence (110) or an error:
        a room that still counts us as an occupant answers a repeated join with a presence
        and no subject (XEP-0045 7.2), so the full join sequence may never come."""
        full = f"{room}/{nick}"
        self.joining.add(room)
        try:
            self.c.send_join(room, nick, history={"maxstanzas": 0})
            p = await self.c.expect(lambda s: isinstance(s, Presence)
                                    and attr(s, "from") == full
                                    and (attr(s, "type") == "error"
                                         or (attr(s, "type") != "unavailable"
                                             and 110 in status_codes(s))),
                                    f"self-presence of {full}", timeout)
        finally:
            self.joining.discard(room)
        if attr(p, "type") == "error":
            raise HaError(f"{self.user}: join {full} refused: {th.error_of(p)}")
        self.needs_join.discard(room)
        return p

    async def rejoin_dropped(self, timeout=5.0):
        """Re-joins the rooms that dropped us while the session stayed up (a room stays in
        needs_join until its join succeeded). True when all are back."""
        for room in list(self.needs_join):
            if not self.connected:
                return False
            self.rejoins += 1
            try:
                await self.join_quick(room, self.rooms[room], timeout)
            except AssertionError as e:
                self.trace.append(f"{self.user}: re-join {room} failed: {e}"[:500])
        return not self.needs_join

    async def rejoin(self, deadline=None):
        """After a new login: joins every room again."""
        self.needs_join.clear()
        for room, nick in list(self.rooms.items()):
            left = 10.0 if deadline is None else max(1.0, deadline - time.monotonic())
            try:
                await self.join_quick(room, nick, timeout=min(10.0, left))
            except AssertionError as e:
                self.trace.append(f"{self.user}: re-join {room} failed: {e}"[:500])
                self.needs_join.add(room)

    async def wait_moved(self, timeout):
        """Awaits (bounded) the disconnect of the current session."""
        try:
            await asyncio.wait_for(asyncio.shield(self.c.disconnected), timeout)
        except asyncio.TimeoutError:
            raise HaError(f"{self.user}: not disconnected within {timeout} s") from None

    async def mam_all(self, room, page=100, timeout=15.0):
        """Every archived message of `room` (paged): list of (archive id, body, from)."""
        out, after = [], None
        deadline = time.monotonic() + timeout * 4
        while time.monotonic() < deadline:
            results, fin, reply = await self.c.mam(room, max_=page, after=after, timeout=timeout)
            if attr(reply, "type") != "result":
                raise HaError(f"MAM on {room} failed: {reply}")
            for aid, msg, _stamp, _s in results:
                if msg is not None:
                    b = msg.find(f"{{{th.NS_CLIENT}}}body")
                    out.append((aid, None if b is None else (b.text or ""), msg.get("from")))
            info = th.fin_info(fin) or {}
            if info.get("complete") or not results:
                return out
            after = info.get("last") or results[-1][0]
        raise HaError(f"MAM on {room}: paging did not finish")

    async def close(self):
        if self.c is not None:
            await self.c.close()

    def abort(self):
        if self.c is not None and self.c.xmpp.transport is not None:
            self.c.abort()
