# SPDX-License-Identifier: Apache-2.0
"""Harness for the multi-user chat integration tests (XEP-0045, XEP-0313 on rooms).

Real processes and real sockets: every test class starts its own tcbroker (a subprocess on a
fresh database), and tests log in slixmpp clients over TLS. Every wait is bounded: a stanza
that never comes fails the test with what was expected and what did arrive, and a whole test
is bounded by MucTestCase.TEST_TIMEOUT.

Environment:
  TC_BROKER, TC_CTL     the tcbroker and tcctl binaries (required)
  TC_MUC_BACKEND        sqlite (default) or postgresql
  TC_TEST_PG            the tc-test-pg binary; without it PostgreSQL is started from Python
  TC_PG_BIN             PostgreSQL server binaries (default: newest /usr/lib/postgresql/*/bin)
  TC_SKIP_PG            1: skip everything under the postgresql backend
  TC_MUC_TIMEOUT        seconds for one expected stanza (default 10)
  TC_MUC_KEEP           1: keep temporary directories
  TC_MUC_TRACE          1: print every client's stanza trace even when tests pass

Run with Debian's /usr/bin/python3, which has python3-slixmpp:
  TC_BROKER=... TC_CTL=... /usr/bin/python3 -m unittest discover -s tests/muc -v
"""

import asyncio
import atexit
import ctypes
import functools
import inspect
import itertools
import json
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
from xml.sax.saxutils import escape as xml_escape, quoteattr

import slixmpp
from slixmpp.stanza import Iq, Message, Presence

# ---------------------------------------------------------------------------------------------
# Settings

TIMEOUT = float(os.environ.get("TC_MUC_TIMEOUT", "20"))  # one expected stanza
PROCESS_TIMEOUT = 30.0  # start or stop of a broker, a tcctl run, PostgreSQL commands
BACKEND = os.environ.get("TC_MUC_BACKEND", "sqlite")
DOMAIN = "localhost"
MUC_DOMAIN = "conference.localhost"
PASSWORD = "secret-pw"
# Accounts created for every broker; tests log in as these.
USERS = ("alice", "bob", "carol", "dave", "eve", "frank", "boss")

NS_CLIENT = "jabber:client"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_XDATA = "jabber:x:data"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_SID = "urn:xmpp:sid:0"
NS_OID = "urn:xmpp:occupant-id:0"
NS_DELAY = "urn:xmpp:delay"
NS_FORWARD = "urn:xmpp:forward:0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"
NS_ROOMCONFIG = NS_MUC + "#roomconfig"


def _require_env(name):
    value = os.environ.get(name)
    if not value:
        raise unittest.SkipTest(f"{name} is not set (path to the binary)")
    if not os.access(value, os.X_OK):
        raise RuntimeError(f"{name}={value} is not an executable")
    return value


def q(value):
    """An XML attribute value, quoted and escaped."""
    return quoteattr(str(value))


def text(value):
    return xml_escape(str(value))


# ---------------------------------------------------------------------------------------------
# Processes

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # A broker must not outlive a test process that was killed (ctest timeout).
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run(argv, what, timeout=PROCESS_TIMEOUT, **kwargs):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what}: timed out after {timeout} s: {argv}") from None
    if done.returncode != 0:
        raise RuntimeError(f"{what}: exit status {done.returncode}: {argv}\n"
                           f"stdout: {done.stdout}\nstderr: {done.stderr}")
    return done.stdout


_ports_given = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port nobody listens on now, one this process has not handed out before (a
    pair takes six at once, two nodes' client, admin and SRM ports, before any of them binds),
    and one below the kernel's ephemeral range: a port the kernel handed out for a probe is an
    ephemeral one, which any outgoing connection (to PostgreSQL, between the nodes, a redial
    every few hundred ms during a cut) may take before the node binds it; a node then failed to
    start now and then. Ports in 10000..(ephemeral low - 1) are only ever taken on purpose."""
    low, high = 10000, _ephemeral_low() - 1
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(low, high) if high > low else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no free loopback port that was not handed out already")


_tmp_root = None


def tmp_root():
    """One temporary directory per test process, removed at exit (unless TC_MUC_KEEP=1)."""
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = tempfile.mkdtemp(prefix="tc-muc-")
        os.chmod(_tmp_root, 0o755)
        if os.environ.get("TC_MUC_KEEP") != "1":
            atexit.register(shutil.rmtree, _tmp_root, True)
    return _tmp_root


_cert = None


def certificate():
    """A self-signed certificate for localhost, made once per test process."""
    global _cert
    if _cert is None:
        d = os.path.join(tmp_root(), "tls")
        os.makedirs(d, exist_ok=True)
        crt, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
              "-keyout", key, "-out", crt, "-days", "2"], "openssl req")
        _cert = (crt, key)
    return _cert


# ---------------------------------------------------------------------------------------------
# PostgreSQL: one throwaway server per test process, one database per broker

class _TcTestPg:
    """The tc-test-pg tool: prints its URL, runs until its stdin closes."""

    def __init__(self, binary):
        # No PR_SET_PDEATHSIG here: it fires when the *thread* that started the child exits,
        # and the HA tests start the server from a worker thread of one test's event loop
        # (it died with that loop, mid-suite). tc-test-pg stops by itself when its stdin
        # closes, which happens whenever this process goes, killed or not.
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = _readline_bounded(self.proc, 90, "tc-test-pg")
        self.url = line.strip()
        parsed = urllib.parse.urlparse(self.url)
        self.host, self.port, self.user = parsed.hostname, parsed.port, parsed.username

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _readline_bounded(proc, timeout, what):
    """The first stdout line of `proc`, or RuntimeError after `timeout` seconds."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            raise RuntimeError(f"{what}: no URL within {timeout} s")
        if sel.select(left):
            line = proc.stdout.readline()
            if line:
                return line
            proc.wait(10)
            raise RuntimeError(f"{what} exited with {proc.returncode}: {proc.stderr.read()}")


class _PythonPg:
    """The same as tc-test-pg, in Python: initdb, pg_ctl start on a free loopback port."""

    def __init__(self):
        self.bin = os.environ.get("TC_PG_BIN") or self._find_bin()
        self.as_root = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="tc-muc-pg-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._pg(["initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-locale", "--no-sync"], "initdb")
        for attempt in range(3):
            self.port = free_port()
            opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                    "-c max_connections=100 -c fsync=off -c full_page_writes=off")
            try:
                self._pg(["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
                          "-o", opts, "-w", "-t", "60", "start"], "pg_ctl start", timeout=90)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        self.host, self.user = "127.0.0.1", "postgres"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def _find_bin():
        root = "/usr/lib/postgresql"
        versions = sorted((int(v) for v in os.listdir(root) if v.isdigit()), reverse=True)
        for v in versions:
            b = os.path.join(root, str(v), "bin")
            if os.path.exists(os.path.join(b, "pg_ctl")):
                return b
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")

    def _pg(self, argv, what, timeout=PROCESS_TIMEOUT * 2):
        argv = [os.path.join(self.bin, argv[0])] + argv[1:]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        _run(argv, what, timeout=timeout, cwd="/tmp")

    def stop(self):
        try:
            self._pg(["pg_ctl", "-D", self.data, "stop", "-m", "immediate", "-w", "-t", "60"],
                     "pg_ctl stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


_pg = None
_db_counter = itertools.count(1)


def postgres():
    global _pg
    if _pg is None:
        binary = os.environ.get("TC_TEST_PG")
        _pg = _TcTestPg(binary) if binary else _PythonPg()
        atexit.register(_pg.stop)
    return _pg


def _createdb(name, template=None):
    pg = postgres()
    createdb = os.path.join(os.environ.get("TC_PG_BIN") or _PythonPg._find_bin(), "createdb")
    argv = [createdb, "-h", pg.host, "-p", str(pg.port), "-U", pg.user]
    if template:
        argv += ["-T", template]
    _run(argv + [name], "createdb")
    return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{name}"


def new_database_url(template=None):
    """A fresh PostgreSQL database on the process's server (a copy of `template`)."""
    return _createdb(f"muc_{os.getpid()}_{next(_db_counter)}", template)


# ---------------------------------------------------------------------------------------------
# The broker

def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def config_text(db_url, muc, sections=None):
    """The broker's TOML configuration: localhost on an ephemeral port, TLS, `muc` settings and
    other `sections` ({"websocket": {"enabled": True}, ...}; "node", "client" and "tls" entries
    add to those sections)."""
    crt, key = certificate()
    sections = dict(sections or {})
    tls = {"certificate": crt, "private_key": key, **sections.pop("tls", {})}
    client = {"port": 0, **sections.pop("client", {})}
    node = {"domain": DOMAIN, **sections.pop("node", {})}
    lines = ["[node]"] + [f"{k} = {_toml(v)}" for k, v in node.items()] + ["", "[client]"]
    lines += [f"{k} = {_toml(v)}" for k, v in client.items()]
    lines += ["", "[tls]"]
    lines += [f"{k} = {_toml(v)}" for k, v in tls.items()]
    lines += ["", "[storage]", f"url = {_toml(db_url)}", ""]
    for name, settings in sections.items():
        lines += [f"[{name}]"] + [f"{k} = {_toml(v)}" for k, v in settings.items()] + [""]
    lines.append("[muc]")
    for k, v in (muc or {}).items():
        lines.append(f"{k} = {_toml(v)}")
    lines += ["", "[log]", 'level = "debug"', ""]
    return "\n".join(lines)


_templates = {}


def _account_template(binary, ctl, backend):
    """A database holding the schema and the USERS accounts: a SQLite file path, or the name of
    a PostgreSQL database to use as createdb's template. Made once per process and backend."""
    if backend in _templates:
        return _templates[backend]
    d = tempfile.mkdtemp(prefix=f"template-{backend}-", dir=tmp_root())
    if backend == "sqlite":
        db = os.path.join(d, "tc.db")
        url, template = "sqlite://" + db, db
    else:
        template = f"muc_template_{os.getpid()}"
        url = _createdb(template)
    config = os.path.join(d, "tc.toml")
    with open(config, "w") as f:
        f.write(config_text(url, {}))
    for user in USERS:
        _run([ctl, "--config", config, "users", "add", user, "--password", PASSWORD],
             f"tcctl users add {user} (template)")
    _templates[backend] = template
    return template


_brokers = []


def _stop_all_brokers():
    for b in _brokers:
        if b.proc is not None and b.proc.poll() is None:
            b.proc.kill()


atexit.register(_stop_all_brokers)


class Broker:
    """One tcbroker process on its own database. start()/stop()/kill() may repeat; the
    database (and so the rooms) survive them."""

    def __init__(self, name, muc=None, users=USERS, backend=None, sections=None):
        self.sections = sections
        self.binary = _require_env("TC_BROKER")
        self.ctl = _require_env("TC_CTL")
        self.backend = backend or BACKEND
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root())
        if self.backend not in ("sqlite", "postgresql"):
            raise RuntimeError(f"TC_MUC_BACKEND={self.backend}: expected sqlite or postgresql")
        if self.backend == "postgresql" and os.environ.get("TC_SKIP_PG") == "1":
            raise unittest.SkipTest("TC_SKIP_PG=1: no PostgreSQL for the postgresql backend")
        # The standard accounts come from a template database made once per process: a tcctl
        # run per account and broker would cost more than all the tests of a class.
        template = (_account_template(self.binary, self.ctl, self.backend)
                    if users == USERS else None)
        if self.backend == "sqlite":
            db = os.path.join(self.dir, "tc.db")
            if template:
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(template + suffix):
                        shutil.copyfile(template + suffix, db + suffix)
            self.db_url = "sqlite://" + db
        else:
            self.db_url = new_database_url(template)
        self._write_config(muc)
        self.log_path = os.path.join(self.dir, "broker.log")
        self.ready_path = os.path.join(self.dir, "ready.json")
        self.proc = None
        self.port = None
        self.starts = 0
        self.env = None  # the process environment (None: this one's)
        _brokers.append(self)
        if not template:
            for user in users:
                self.add_user(user)

    def _write_config(self, muc):
        self.config = os.path.join(self.dir, "tc.toml")
        with open(self.config, "w") as f:
            f.write(config_text(self.db_url, muc, self.sections))

    def add_user(self, name, password=PASSWORD):
        _run([self.ctl, "--config", self.config, "users", "add", name, "--password", password],
             f"tcctl users add {name}")

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if os.path.exists(self.ready_path):
            os.unlink(self.ready_path)
        self.starts += 1
        log_file = open(self.log_path, "a")
        log_file.write(f"\n===== start #{self.starts} =====\n")
        log_file.flush()
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.config, "--ready-file", self.ready_path],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent, env=self.env)
        log_file.close()
        # The ready file is the only signal the broker gives; poll it against a deadline.
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tcbroker exited with {self.proc.returncode} before it was "
                                   f"ready\n{self.log_tail()}")
            try:
                with open(self.ready_path) as f:
                    ready = json.loads(f.read())
                self.port = int(ready["client_port"])
                self.ready = ready
                if int(ready.get("pid", self.proc.pid)) != self.proc.pid:
                    raise RuntimeError(f"ready file names pid {ready['pid']}, "
                                       f"started {self.proc.pid}")
                return self
            except (FileNotFoundError, ValueError, KeyError):
                pass  # not there yet, or half written
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"tcbroker not ready within {PROCESS_TIMEOUT} s\n"
                                   f"{self.log_tail()}")
            time.sleep(0.02)

    def stop(self):
        """SIGTERM and wait for a clean exit (status 0)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"tcbroker did not stop within {PROCESS_TIMEOUT} s of SIGTERM")
        if rc != 0:
            raise AssertionError(f"tcbroker exited with {rc} after SIGTERM\n{self.log_tail()}")
        return rc

    def kill(self):
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(PROCESS_TIMEOUT)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=150):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no broker log)"

    def close(self):
        if self.running():
            try:
                self.stop()
            except AssertionError:
                self.kill()


# ---------------------------------------------------------------------------------------------
# Stanza helpers (on slixmpp stanza objects; .xml is the ElementTree element)

def _el(stanza):
    return stanza.xml if hasattr(stanza, "xml") else stanza


def tag(stanza):
    return _el(stanza).tag.split("}")[-1]


def attr(stanza, name, default=None):
    return _el(stanza).get(name, default)


def child(stanza, ns, name):
    return _el(stanza).find(f"{{{ns}}}{name}")


def children(stanza, ns, name):
    return _el(stanza).findall(f"{{{ns}}}{name}")


def muc_user_x(stanza):
    return child(stanza, NS_MUC_USER, "x")


def status_codes(stanza):
    """XEP-0045 status codes of a presence or message, as a set of ints."""
    x = muc_user_x(stanza)
    if x is None:
        return set()
    return {int(s.get("code")) for s in x.findall(f"{{{NS_MUC_USER}}}status")}


def muc_item(stanza):
    """The muc#user <item/> of a room presence, as a dict with 'actor' and 'reason' added."""
    x = muc_user_x(stanza)
    item = None if x is None else x.find(f"{{{NS_MUC_USER}}}item")
    if item is None:
        return None
    out = dict(item.attrib)
    actor = item.find(f"{{{NS_MUC_USER}}}actor")
    if actor is not None:
        out["actor"] = actor.get("nick")
    reason = item.find(f"{{{NS_MUC_USER}}}reason")
    if reason is not None:
        out["reason"] = reason.text or ""
    return out


def error_of(stanza):
    """(type, condition) of an error stanza, or None."""
    e = child(stanza, NS_CLIENT, "error")
    if e is None:
        return None
    for c in e:
        if c.tag.startswith("{" + NS_STANZAS + "}") and not c.tag.endswith("}text"):
            return e.get("type"), c.tag.split("}")[-1]
    return e.get("type"), None


def body(stanza):
    b = child(stanza, NS_CLIENT, "body")
    return None if b is None else (b.text or "")


def subject(stanza):
    s = child(stanza, NS_CLIENT, "subject")
    return None if s is None else (s.text or "")


def stanza_ids(stanza, by=None):
    return [s.get("id") for s in children(stanza, NS_SID, "stanza-id")
            if by is None or s.get("by") == by]


def occupant_id(stanza):
    o = child(stanza, NS_OID, "occupant-id")
    return None if o is None else o.get("id")


def delay(stanza):
    d = child(stanza, NS_DELAY, "delay")
    return None if d is None else dict(d.attrib)


def form_fields(x_element):
    """{var: [values]} of a jabber:x:data form element."""
    out = {}
    for f in x_element.findall(f"{{{NS_XDATA}}}field"):
        out[f.get("var")] = [v.text or "" for v in f.findall(f"{{{NS_XDATA}}}value")]
    return out


def form_types(x_element):
    return {f.get("var"): f.get("type") for f in x_element.findall(f"{{{NS_XDATA}}}field")}


# Predicates --------------------------------------------------------------------------------

def is_presence(frm=None, type_=None):
    def pred(s):
        return (isinstance(s, Presence) and (frm is None or attr(s, "from") == frm)
                and (type_ is None or attr(s, "type") == type_))
    return pred


def is_available(frm):
    return lambda s: is_presence(frm)(s) and attr(s, "type") in (None, "available")


def is_unavailable(frm):
    return is_presence(frm, "unavailable")


def is_message(frm=None, type_=None, with_body=None):
    def pred(s):
        return (isinstance(s, Message) and (frm is None or attr(s, "from") == frm)
                and (type_ is None or attr(s, "type", "normal") == type_)
                and (with_body is None or body(s) == with_body))
    return pred


def is_groupchat(frm=None, body_text=None):
    def pred(s):
        return (is_message(frm, "groupchat")(s) and body(s) is not None
                and (body_text is None or body(s) == body_text))
    return pred


def is_mam_result(queryid):
    def pred(s):
        if not isinstance(s, Message):
            return False
        r = child(s, NS_MAM, "result")
        return r is not None and r.get("queryid") == queryid
    return pred


# ---------------------------------------------------------------------------------------------
# Clients

class TimeoutFailure(AssertionError):
    pass


class _Entry:
    __slots__ = ("stanza", "consumed")

    def __init__(self, stanza):
        self.stanza = stanza
        self.consumed = False


class Joined:
    """What a join brought: other occupants' presences, the self-presence, the discussion
    history (delayed messages) and the subject message, in arrival order."""

    def __init__(self):
        self.others = []
        self.self_presence = None
        self.history = []
        self.subject = None

    @property
    def codes(self):
        return status_codes(self.self_presence)

    @property
    def item(self):
        return muc_item(self.self_presence)


def _unverified_context(*_args, **_kwargs):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Client:
    """A logged-in slixmpp client that keeps every stanza it receives in an inbox, so a test
    can await the first not-yet-consumed stanza matching a predicate, in any order."""

    _ids = itertools.count(1)

    def __init__(self, user, resource="r", password=PASSWORD, trace=None):
        self.user = user
        self.bare = f"{user}@{DOMAIN}"
        self.jid = f"{self.bare}/{resource}"
        self.name = f"{user}/{resource}"
        # The broker's certificate is self-signed, so nothing is verified; that also spares
        # loading the system CA store (a quarter of a second per client).
        real_default_context = ssl.create_default_context
        ssl.create_default_context = _unverified_context
        try:
            self.xmpp = slixmpp.ClientXMPP(self.jid, password)
        finally:
            ssl.create_default_context = real_default_context
        self.xmpp.ssl_context.check_hostname = False
        self.xmpp.ssl_context.verify_mode = ssl.CERT_NONE
        for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0059", "xep_0199", "xep_0313"):
            self.xmpp.register_plugin(plugin)
        self.inbox = []
        self._waiters = []
        self.trace = trace if trace is not None else []
        loop = asyncio.get_running_loop()
        self._outcome = loop.create_future()
        self.disconnected = loop.create_future()
        x = self.xmpp
        x.add_event_handler("session_start", lambda _: self._settle(self._outcome, "started"))
        x.add_event_handler("failed_all_auth", lambda _: self._settle(self._outcome, "failed_auth"))
        x.add_event_handler("disconnected", self._on_disconnected)
        x.add_filter("in", self._on_in)
        x.add_filter("out", self._on_out)

    @staticmethod
    def _settle(future, value):
        if not future.done():
            future.set_result(value)

    def _on_disconnected(self, _):
        self._settle(self._outcome, "disconnected")
        self._settle(self.disconnected, True)

    def _on_out(self, stanza):
        self.trace.append(f"{self.name} >> {stanza}")
        return stanza

    def _on_in(self, stanza):
        if not isinstance(stanza, (Message, Presence, Iq)):
            return stanza
        self.trace.append(f"{self.name} << {stanza}")
        for i, (pred, fut) in enumerate(self._waiters):
            if not fut.done() and pred(stanza):
                fut.set_result(stanza)
                del self._waiters[i]
                entry = _Entry(stanza)
                entry.consumed = True
                self.inbox.append(entry)
                return stanza
        self.inbox.append(_Entry(stanza))
        return stanza

    def send(self, xml):
        """Sends raw XML (one stanza). Returns False, sending nothing, when the connection is
        already gone (the server was killed): slixmpp may notice the lost transport before its
        "disconnected" event has run, so `disconnected` is settled here too and whatever the
        caller awaits next fails at once with "the stream closed" instead of a stray
        NotConnectedError. Kill-under-load tests check the return value and stop sending."""
        self.trace.append(f"{self.name} >> {xml}")
        try:
            self.xmpp.send_raw(xml)
        except slixmpp.xmlstream.xmlstream.NotConnectedError:
            self.trace.append(f"{self.name}: not sent, the connection is gone")
            self._on_disconnected(None)
            return False
        return True

    @property
    def connected(self):
        """False once the stream closed or the transport is gone."""
        return not self.disconnected.done() and self.xmpp.transport is not None

    @classmethod
    def new_id(cls, prefix="t"):
        return f"{prefix}{next(cls._ids)}"

    async def login(self, port):
        self.xmpp.default_port = port
        self.xmpp.connect(address=("127.0.0.1", port))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(self._outcome), TIMEOUT * 2)
        except asyncio.TimeoutError:
            raise TimeoutFailure(f"login of {self.jid} timed out") from None
        if outcome != "started":
            raise AssertionError(f"login of {self.jid} ended with {outcome}")
        return self

    async def close(self):
        if self.xmpp.transport is None:
            return
        try:
            await asyncio.wait_for(self.xmpp.disconnect(wait=2), 5)
        except Exception:
            self.xmpp.abort()

    def abort(self):
        """Drops the TCP connection without closing the stream (a client crash)."""
        try:
            self.xmpp.abort()
        except AttributeError:
            # slixmpp over asyncio's SSL transport: a connection the server already dropped
            # has no SSL protocol left to abort (sslproto: 'NoneType' has no '_abort'); it is
            # gone either way. Seen in tc-drill's clean-up, where it hid the drill's report.
            pass

    # -- waiting ------------------------------------------------------------------------------

    def take(self, pred):
        """The first unconsumed inbox stanza matching `pred` (consumed now), or None."""
        for e in self.inbox:
            if not e.consumed and pred(e.stanza):
                e.consumed = True
                return e.stanza
        return None

    def pending(self, pred=lambda s: True):
        """Unconsumed inbox stanzas matching `pred` (left unconsumed)."""
        return [e.stanza for e in self.inbox if not e.consumed and pred(e.stanza)]

    async def expect(self, pred, what, timeout=None):
        """Awaits (bounded) the first unconsumed stanza matching `pred` and consumes it."""
        got = self.take(pred)
        if got is not None:
            return got
        fut = asyncio.get_running_loop().create_future()
        waiter = (pred, fut)
        self._waiters.append(waiter)
        try:
            # A closed stream brings nothing more: fail at once rather than at the deadline.
            await asyncio.wait({fut, self.disconnected}, timeout=timeout or TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
            if fut.done():
                return fut.result()
            recent = "\n  ".join(str(s)[:400] for s in self.pending(
                lambda s: not isinstance(s, Iq) or (attr(s, "id") or "").startswith("iq"))[-8:])
            why = ("the stream closed" if self.disconnected.done()
                   else f"timed out after {timeout or TIMEOUT} s")
            raise TimeoutFailure(f"{self.name}: no {what} ({why}); unconsumed stanzas:"
                                 f"\n  {recent}")
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not fut.done():
                fut.cancel()

    async def expect_n(self, pred, n, what, timeout=None):
        return [await self.expect(pred, f"{what} #{i + 1}/{n}", timeout) for i in range(n)]

    async def iq(self, type_, to, payload, timeout=None, id_=None):
        """Sends an iq with `payload` (raw XML) and awaits its result or error."""
        id_ = id_ or self.new_id("iq")
        self.send(f"<iq type={q(type_)} to={q(to)} id={q(id_)}>{payload}</iq>")
        return await self.expect(
            lambda s: (isinstance(s, Iq) and attr(s, "id") == id_
                       and attr(s, "type") in ("result", "error")),
            f"iq reply to {id_} ({payload[:80]})", timeout)

    async def iq_ok(self, type_, to, payload, timeout=None):
        reply = await self.iq(type_, to, payload, timeout)
        if attr(reply, "type") != "result":
            raise AssertionError(f"{self.name}: iq {type_} to {to} failed: {reply}")
        return reply

    async def iq_error(self, type_, to, payload, timeout=None):
        reply = await self.iq(type_, to, payload, timeout)
        if attr(reply, "type") != "error":
            raise AssertionError(f"{self.name}: iq {type_} to {to} should have failed: {reply}")
        return error_of(reply)

    async def barrier(self, room):
        """Awaits a round trip through `room`: any stanza the room sent to this client before
        it handled the probe has arrived afterwards (the room delivers in order)."""
        await self.iq("get", room, f"<query xmlns={q(NS_DISCO_INFO)}/>")

    # -- MUC operations ----------------------------------------------------------------------

    def send_join(self, room, nick, password=None, history=None, extra=""):
        parts = []
        if password is not None:
            parts.append(f"<password>{text(password)}</password>")
        if history is not None:
            attrs = " ".join(f"{k}={q(v)}" for k, v in history.items())
            parts.append(f"<history {attrs}/>")
        self.send(f"<presence to={q(room + '/' + nick)}>"
                  f"<x xmlns={q(NS_MUC)}>{''.join(parts)}</x>{extra}</presence>")

    async def join(self, room, nick, password=None, history=None, extra="", timeout=None):
        """Joins and awaits the whole join sequence up to the subject message (XEP-0045 §7.2:
        occupants' presences, self-presence with 110, history, subject)."""
        self.send_join(room, nick, password, history, extra)
        full = f"{room}/{nick}"
        joined = Joined()
        in_room = lambda s: (attr(s, "from") or "").split("/")[0] == room
        # Presences of others come first; the self-presence (110) ends them.
        while True:
            p = await self.expect(lambda s: isinstance(s, Presence) and in_room(s),
                                  f"join presences in {room} as {nick}", timeout)
            if attr(p, "type") == "error":
                raise AssertionError(f"{self.name}: join {full} refused: {error_of(p)}\n{p}")
            if attr(p, "from") == full and 110 in status_codes(p):
                joined.self_presence = p
                break
            joined.others.append(p)
        while True:
            m = await self.expect(lambda s: isinstance(s, Message) and in_room(s)
                                  and attr(s, "type") == "groupchat",
                                  f"history or subject in {room}", timeout)
            if subject(m) is not None and body(m) is None:
                joined.subject = m
                return joined
            joined.history.append(m)

    async def join_error(self, room, nick, password=None, history=None):
        """Joins expecting refusal; returns (type, condition) of the error presence."""
        self.send_join(room, nick, password, history)
        p = await self.expect(lambda s: isinstance(s, Presence)
                              and attr(s, "from") == f"{room}/{nick}"
                              and (attr(s, "type") == "error" or 110 in status_codes(s)),
                              f"error presence for {room}/{nick}")
        if attr(p, "type") != "error":
            raise AssertionError(f"{self.name}: join {room}/{nick} should have been refused:\n{p}")
        return error_of(p)

    async def leave(self, room, nick):
        self.send(f"<presence to={q(room + '/' + nick)} type='unavailable'/>")
        return await self.expect(lambda s: is_unavailable(f"{room}/{nick}")(s)
                                 and 110 in status_codes(s), f"own unavailable from {room}")

    def send_groupchat(self, room, body_text, id_=None, extra=""):
        id_ = id_ or self.new_id("m")
        self.send(f"<message to={q(room)} type='groupchat' id={q(id_)}>"
                  f"<body>{text(body_text)}</body>{extra}</message>")
        return id_

    async def say(self, room, body_text, extra="", timeout=None):
        """Sends a groupchat message and awaits its reflection (which, by the durability
        rule, means it is committed). Returns the reflected stanza."""
        id_ = self.send_groupchat(room, body_text, extra=extra)
        return await self.expect(
            lambda s: isinstance(s, Message) and attr(s, "id") == id_
            and (attr(s, "from") or "").startswith(room),
            f"reflection of groupchat {id_} in {room}", timeout)

    async def set_subject(self, room, text_):
        id_ = self.new_id("s")
        self.send(f"<message to={q(room)} type='groupchat' id={q(id_)}>"
                  f"<subject>{text(text_)}</subject></message>")
        return await self.expect(lambda s: isinstance(s, Message) and attr(s, "id") == id_,
                                 f"subject reflection or error {id_}")

    async def get_config(self, room):
        reply = await self.iq_ok("get", room, f"<query xmlns={q(NS_MUC_OWNER)}/>")
        x = reply.xml.find(f"{{{NS_MUC_OWNER}}}query/{{{NS_XDATA}}}x")
        if x is None:
            raise AssertionError(f"no data form in the owner get reply: {reply}")
        return x

    @staticmethod
    def config_form(fields):
        """A submitted muc#roomconfig form with `fields` {var: value or [values]}."""
        out = [f"<x xmlns={q(NS_XDATA)} type='submit'>",
               f"<field var='FORM_TYPE'><value>{NS_ROOMCONFIG}</value></field>"]
        for var, value in fields.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            if isinstance(value, bool):
                values = ["1" if value else "0"]
            out.append(f"<field var={q(var)}>"
                       + "".join(f"<value>{text(v)}</value>" for v in values) + "</field>")
        out.append("</x>")
        return "".join(out)

    async def configure(self, room, fields):
        """Submits the owner form; returns the iq reply (result or error)."""
        return await self.iq("set", room, f"<query xmlns={q(NS_MUC_OWNER)}>"
                                          f"{self.config_form(fields)}</query>")

    async def configure_ok(self, room, fields):
        reply = await self.configure(room, fields)
        if attr(reply, "type") != "result":
            raise AssertionError(f"configuring {room} with {fields} failed: {reply}")
        return reply

    async def admin_set(self, room, items_xml):
        return await self.iq("set", room, f"<query xmlns={q(NS_MUC_ADMIN)}>{items_xml}</query>")

    async def set_affiliation(self, room, jid, affiliation, reason=None):
        r = f"<reason>{text(reason)}</reason>" if reason else ""
        reply = await self.admin_set(
            room, f"<item jid={q(jid)} affiliation={q(affiliation)}>{r}</item>")
        if attr(reply, "type") != "result":
            raise AssertionError(f"setting {jid} to {affiliation} in {room} failed: {reply}")
        return reply

    async def set_role(self, room, nick, role, reason=None):
        r = f"<reason>{text(reason)}</reason>" if reason else ""
        return await self.admin_set(room, f"<item nick={q(nick)} role={q(role)}>{r}</item>")

    async def affiliation_list(self, room, affiliation):
        reply = await self.iq_ok("get", room, f"<query xmlns={q(NS_MUC_ADMIN)}>"
                                              f"<item affiliation={q(affiliation)}/></query>")
        items = reply.xml.findall(f"{{{NS_MUC_ADMIN}}}query/{{{NS_MUC_ADMIN}}}item")
        return {i.get("jid"): i.get("affiliation") for i in items}

    async def disco_info(self, to):
        reply = await self.iq_ok("get", to, f"<query xmlns={q(NS_DISCO_INFO)}/>")
        query = reply.xml.find(f"{{{NS_DISCO_INFO}}}query")
        features = {f.get("var") for f in query.findall(f"{{{NS_DISCO_INFO}}}feature")}
        identities = [dict(i.attrib) for i in query.findall(f"{{{NS_DISCO_INFO}}}identity")]
        forms = {}
        for x in query.findall(f"{{{NS_XDATA}}}x"):
            fields = form_fields(x)
            forms[(fields.get("FORM_TYPE") or [""])[0]] = fields
        return features, identities, forms

    async def mam(self, room, fields=None, max_=None, after=None, before=None, timeout=None):
        """A XEP-0313 query on `room`; returns (results, fin, iq reply). `results` are
        (archive id, forwarded message element, delay stamp) in arrival order."""
        queryid = self.new_id("q")
        form = ""
        if fields:
            form = (f"<x xmlns={q(NS_XDATA)} type='submit'>"
                    f"<field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>"
                    + "".join(f"<field var={q(k)}><value>{text(v)}</value></field>"
                              for k, v in fields.items()) + "</x>")
        rsm = ""
        if max_ is not None or after is not None or before is not None:
            rsm = f"<set xmlns={q(NS_RSM)}>"
            if max_ is not None:
                rsm += f"<max>{max_}</max>"
            if after is not None:
                rsm += f"<after>{text(after)}</after>"
            if before is not None:
                rsm += f"<before>{text(before)}</before>" if before else "<before/>"
            rsm += "</set>"
        reply = await self.iq("set", room,
                              f"<query xmlns={q(NS_MAM)} queryid={q(queryid)}>{form}{rsm}</query>",
                              timeout)
        results = []
        # XEP-0313 §4.2: the results come before the iq result, and the stream is ordered.
        for s in self.pending(is_mam_result(queryid)):
            self.take(lambda x, s=s: x is s)
            r = child(s, NS_MAM, "result")
            fwd = r.find(f"{{{NS_FORWARD}}}forwarded")
            msg = None if fwd is None else fwd.find(f"{{{NS_CLIENT}}}message")
            d = None if fwd is None else fwd.find(f"{{{NS_DELAY}}}delay")
            results.append((r.get("id"), msg, None if d is None else d.get("stamp"), s))
        fin = reply.xml.find(f"{{{NS_MAM}}}fin")
        return results, fin, reply


def fin_info(fin):
    """complete flag, first, last, count of a MAM <fin/>."""
    if fin is None:
        return None
    s = fin.find(f"{{{NS_RSM}}}set")

    def t(name):
        e = None if s is None else s.find(f"{{{NS_RSM}}}{name}")
        return None if e is None else (e.text or "")
    count = t("count")
    return {"complete": fin.get("complete") in ("true", "1"), "first": t("first"),
            "last": t("last"), "count": None if count is None else int(count)}


# ---------------------------------------------------------------------------------------------
# Test case base

_room_counter = itertools.count(1)


def unique_room(prefix="room"):
    return f"{prefix}-{os.getpid()}-{next(_room_counter)}@{MUC_DOMAIN}"


def _bounded(method, seconds):
    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            return await asyncio.wait_for(method(self, *args, **kwargs), seconds)
        except asyncio.TimeoutError:
            raise TimeoutFailure(f"{method.__name__} did not finish within {seconds} s") from None
    return wrapper


class MucTestCase(unittest.IsolatedAsyncioTestCase):
    """One broker per test class (set MUC_CONFIG for its [muc] settings, or OWN_BROKER =
    False to manage brokers in the test). Every async test_* method is bounded by
    TEST_TIMEOUT. On failure the broker log and the clients' stanza traces are printed."""

    MUC_CONFIG = {}
    SECTIONS = None  # other configuration sections: {"websocket": {...}}
    TEST_TIMEOUT = 60.0
    OWN_BROKER = True
    broker = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, fn in list(vars(cls).items()):
            if name.startswith("test") and inspect.iscoroutinefunction(fn):
                setattr(cls, name, _bounded(fn, cls.TEST_TIMEOUT))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.OWN_BROKER:
            cls.broker = Broker(cls.__name__.lower(), muc=cls.MUC_CONFIG, sections=cls.SECTIONS)
            try:
                cls.broker.start()
            except Exception:
                cls.broker.close()
                raise

    @classmethod
    def tearDownClass(cls):
        if cls.OWN_BROKER and cls.broker is not None:
            cls.broker.close()
        super().tearDownClass()

    async def asyncSetUp(self):
        # unittest runs the loop in debug mode, which is slow and floods stderr with
        # "Executing ... took N seconds" for TLS handshakes.
        asyncio.get_running_loop().set_debug(False)

    def setUp(self):
        self.trace = []
        self.clients = []
        self.extra_brokers = []

    async def asyncTearDown(self):
        for c in self.clients:
            if c.xmpp.transport is not None:
                c.abort()

    def tearDown(self):
        failed = self._failed()
        if failed or os.environ.get("TC_MUC_TRACE") == "1":
            out = [f"\n===== {self.id()} ====="]
            for b in [self.broker] + self.extra_brokers:
                if b is not None:
                    out.append(f"--- broker log ({b.dir}) ---\n{b.log_tail()}")
            out.append("--- client trace ---")
            out.extend(line[:2000] for line in self.trace[-200:])
            print("\n".join(out), file=sys.stderr, flush=True)
        for b in self.extra_brokers:
            b.close()

    def _failed(self):
        # unittest records a failed test part in the result at once (Python 3.11).
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in list(result.errors) + list(result.failures))

    async def client(self, user, resource="r", broker=None):
        c = Client(user, resource, trace=self.trace)
        self.clients.append(c)
        return await c.login((broker or self.broker).port)

    async def clients_for(self, *users):
        return await asyncio.gather(*(self.client(u) for u in users))

    def room(self, prefix=None):
        return unique_room(prefix or self._testMethodName.replace("test_", "").replace("_", "-"))

    async def create_room(self, owner, room, nick="owner", config=None):
        """`owner` creates `room` (201) and, with `config`, submits the owner form."""
        joined = await owner.join(room, nick)
        self.assertIn(201, joined.codes, f"{room} should have been created")
        if config:
            await owner.configure_ok(room, config)
        return joined
