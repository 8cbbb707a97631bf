# SPDX-License-Identifier: Apache-2.0
"""A cluster of redundancy groups (SPEC.md section 1): up to three pairs of tcbroker nodes,
each pair on its own database, all sharing one cluster database (groups, nodes, settings,
accounts, which group hosts which room). Built on haharness: the nodes are haharness.Node and
the clients haharness.HaClient, which only need what a Pair offers (nodes, relogin,
port_to_node), so Cluster offers the same.
"""

import os
import tempfile

import haharness as hh
from haharness import th

DRILL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools", "tc-drill")

# Six ASan brokers share two cores with the clients (and, in CI, with another test): a lease
# renewal can wait behind that for longer than FAST_SETTINGS' 0.6 s timeout allows, and a node
# then reports "Database Failure Auto-Recovery" (seen in CI, all six nodes at once). The cluster
# tests time takeovers against events, not these settings, so a 2 s timeout costs only a
# slower kill -9 takeover.
CLUSTER_SETTINGS = dict(hh.FAST_SETTINGS, heartbeat_interval="0.2", heartbeat_timeout="2",
                        init_heartbeat_timeout="5", redirect_users="false")

# Serving normally, possibly after a slow database moment (the reason stays until the next
# change of state): what "undisturbed" means for a node a test did not touch.
SERVING = ("Normal", ("Normal", "Database Failure Auto-Recovery"))

# Group name -> its nodes, in the order of SPEC.md section 5's walk-through (1A, 1B, ...).
LAYOUT = {"g1": ("n1a", "n1b"), "g2": ("n2a", "n2b"), "g3": ("n3a", "n3b")}


_M64 = (1 << 64) - 1


def _fnv1a(text):
    h = 1469598103934665603
    for b in text.encode():
        h = ((h ^ b) * 1099511628211) & _M64
    return h


def _mix(x):
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & _M64
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & _M64
    x ^= x >> 31
    return x


def owner_of(members, key):
    """ClusterSnapshot::owner_of: rendezvous hashing, as the broker places users and rooms."""
    k = _fnv1a(key)
    return max(members, key=lambda m: (_mix(k ^ _mix(_fnv1a(m))), [-ord(c) for c in m]))


class Cluster:
    """`groups` of LAYOUT's (e.g. 2 = g1 and g2), each a pair with its own database; the
    cluster database is a separate one. SQLite: one file each; PostgreSQL: one database each
    on the test server."""

    def __init__(self, backend="sqlite", groups=3, settings=None, users=(), muc=None,
                 relogin=hh.RELOGIN, root=None, sections=None):
        self.tcbroker, self.tcctl = hh.tool_paths()
        self.backend = backend
        self.dir = tempfile.mkdtemp(prefix="cluster-", dir=root or th.tmp_root())
        self.relogin = relogin
        self.muc = {"default_persistent": True, **(muc or {})}
        self.sections = dict(sections or {})
        self.cluster_url = self._database("cluster")
        self.layout = {}
        self.db_urls = {}
        self.nodes = {}
        self.settings = dict(CLUSTER_SETTINGS, **(settings or {}))
        self.users = list(users)
        for name in list(LAYOUT)[:groups]:
            self.add_group(name, setup=False)
        first = next(iter(self.nodes.values()))
        for k, v in self.settings.items():
            self.ctl_ok("settings", "set", k, str(v), node=first.name)
        self._add_users(self.users)

    def _database(self, name):
        if self.backend == "sqlite":
            return "sqlite://" + os.path.join(self.dir, f"{name}.db")
        if self.backend == "postgresql":
            tag = os.path.basename(self.dir).replace("-", "_")
            return th._createdb(f"cl_{os.getpid()}_{tag}_{name}".lower())
        raise ValueError(f"backend {self.backend}: expected sqlite or postgresql")

    def add_group(self, name, setup=True):
        """Adds LAYOUT's group `name` (its database, its nodes' configurations and its row in
        the cluster database); its nodes are not started."""
        nodes = LAYOUT[name]
        self.layout[name] = nodes
        self.db_urls[name] = self._database(name)
        for n in nodes:
            node = hh.Node(self, n)
            self.write_config(node, name)
            self.nodes[n] = node
        self.ctl_ok("group", "add", name, "--nodes", ",".join(nodes), "--ha", "on",
                    node=nodes[0])
        return [self.nodes[n] for n in nodes]

    def write_config(self, node, group, db_url=None, domain=None):
        sections = {**self.sections, "cluster": {"url": self.cluster_url}}
        if domain is not None:
            sections["node"] = {"domain": domain}
        node.write_config(db_url or self.db_urls[group], self.muc, self.relogin, False, sections)

    def group_of(self, node):
        for g, nodes in self.layout.items():
            if node in nodes:
                return g
        return None

    def ctl_ok(self, *args, node=None, timeout=th.PROCESS_TIMEOUT):
        node = node or next(iter(self.nodes))
        done = self.nodes[node].ctl(*args, timeout=timeout)
        if done.returncode != 0:
            raise hh.HaError(f"tcctl {' '.join(args)}: exit {done.returncode}\n"
                             f"stdout: {done.stdout}\nstderr: {done.stderr}")
        return done.stdout

    def _add_users(self, users):
        for u in users:
            self.ctl_ok("users", "add", u, "--password", th.PASSWORD)

    # -- processes --------------------------------------------------------------------------

    def start(self, nodes=None, timeout=40.0):
        """Starts `nodes` (default all) and waits until every started node is Normal (SERVING)
        and has a data link to every other started node."""
        names = list(nodes or self.nodes)
        for n in names:
            self.nodes[n].spawn()
        for n in names:
            self.nodes[n].wait_ready()
        running = [n for n, node in self.nodes.items() if node.running()]
        self.wait_states({n: SERVING for n in running}, timeout, "startup")
        self.wait_for(lambda: self.meshed(running), timeout, "every node linked to every other")
        return self

    def meshed(self, names):
        """True when each node's cluster status shows every other node of `names` linked."""
        for n in names:
            st = self.nodes[n].cluster_status() if hasattr(self.nodes[n], "cluster_status") \
                else cluster_status(self.nodes[n])
            if st is None:
                return False
            linked = {e["node"] for e in st.get("nodes", []) if e.get("linked")}
            if not set(names) - {n} <= linked:
                return False
        return True

    close = hh.Pair.close
    port_to_node = hh.Pair.port_to_node
    logs = hh.Pair.logs

    # -- states -----------------------------------------------------------------------------

    def states(self):
        """{node: (state, reason)} from each node's own view, else its peer's."""
        out = {}
        views = {name: n.status() for name, n in self.nodes.items() if n.running()}
        for name in self.nodes:
            entry = hh.self_entry(views[name]) if views.get(name) else None
            if entry is None:
                for other, view in views.items():
                    if other != name and view:
                        peer = hh.node_entry(view, name)
                        if peer is not None and peer.get("reachable", True):
                            entry = peer
            out[name] = ((entry.get("state"), entry.get("reason")) if entry
                         else ("(down)", None))
        return out

    wait_states = hh.Pair.wait_states
    wait_for = hh.Pair.wait_for
    room_hosts = hh.Pair.room_hosts


def cluster_status(node, timeout=1.0):
    """GET /api/v1/cluster/status of `node`, or None."""
    code, body = node.api("GET", "/api/v1/cluster/status", timeout=timeout)
    return body if code == 200 and isinstance(body, dict) else None
