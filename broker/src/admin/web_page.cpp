// SPDX-License-Identifier: Apache-2.0
#include "admin/web_page.h"

namespace tc::broker::admin {
namespace {

// One self-contained page: inline CSS and vanilla JS, no external resources. Everything the
// API returns is HTML-escaped before it is shown (esc()), and actions are plain fetch() calls
// with the bearer token kept in sessionStorage (gone when the tab closes).
constexpr std::string_view kPage = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tcbroker - redundancy group</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#2b3a4a;color:#fff;padding:10px 18px;display:flex;align-items:center;gap:16px}
header h1{font-size:18px;margin:0;flex:1}
main{padding:16px 18px;max-width:1200px}
fieldset{background:#fff;border:1px solid #ccd;border-radius:6px;margin:0 0 14px;padding:10px 14px}
legend{font-weight:600;padding:0 6px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e5e8;font-size:14px;vertical-align:top}
th{background:#eef0f3}
.kv td:first-child{width:220px;color:#555}
.st-Normal{color:#17702b;font-weight:600}
.st-bad{color:#b3261e;font-weight:600}
.st-warn{color:#a15c00;font-weight:600}
.svc{display:flex;align-items:center;gap:6px;margin:2px 0}
.svc span{min-width:130px}
.running{color:#17702b}.stopped{color:#a15c00}.failed{color:#b3261e}
button{padding:4px 12px;border-radius:4px;border:1px solid #889;background:#fff;cursor:pointer}
button:disabled{opacity:.4;cursor:default}
button.primary{background:#2b5fab;color:#fff;border-color:#2b5fab}
#msg{min-height:20px;margin-bottom:10px}
.err{color:#b3261e}.ok{color:#17702b}
#login{max-width:420px}
input{padding:5px;width:100%;box-sizing:border-box}
ul{margin:4px 0;padding-left:20px}
small{color:#666}
</style>
</head>
<body>
<header><h1>tcbroker &middot; Server Recovery Manager</h1><span id="updated"></span>
<button id="logout" hidden>Forget token</button></header>
<main>
<div id="msg"></div>
<fieldset id="login" hidden><legend>Admin token</legend>
<p><small>The token is the node's <code>[admin] token</code> (or the first line of
<code>token_file</code>). It is kept in this tab only.</small></p>
<form id="loginform"><input id="token" type="password" autocomplete="off" placeholder="token">
<p><button class="primary" type="submit">Connect</button></p></form></fieldset>
<div id="view" hidden>
<fieldset><legend>Redundancy group</legend><table class="kv" id="group"></table></fieldset>
<fieldset><legend>Nodes</legend><table>
<thead><tr><th>Node</th><th>State</th><th>Reason</th><th>Reachable</th><th>Lease epoch</th>
<th>Partitions</th><th>Rooms</th><th>Users</th><th>Critical services</th></tr></thead>
<tbody id="nodes"></tbody></table></fieldset>
<fieldset><legend>Status</legend><table class="kv" id="cause"></table></fieldset>
<fieldset><legend>Actions</legend><div id="actions"></div></fieldset>
<fieldset><legend>Cluster settings</legend><table class="kv" id="settings"></table></fieldset>
<fieldset id="clusterbox" hidden><legend>Cluster: every group and node</legend><table>
<thead><tr><th>Group</th><th>Node</th><th>State</th><th>Reason</th><th>Linked</th>
<th>Partitions</th><th>Rooms</th><th>Users</th><th>Clients</th></tr></thead>
<tbody id="cluster"></tbody></table>
<small>Other groups' nodes as their last ping over the node-to-node link said, or the cluster
database's registry when not linked. Failover and fallback are per group: on a node of that
group.</small></fieldset>
</div>
</main>
<script>
"use strict";
const SERVICES = ["router", "text-conference", "database", "authentication"];
const BAD = ["Running in Failed Mode", "Failed Over with Critical Services not Running", "Unknown"];
let busy = false;
function esc(v) {
  return String(v === undefined || v === null ? "" : v).replace(/[&<>"'`=\/]/g,
    c => "&#" + c.charCodeAt(0) + ";");
}
function token() { return sessionStorage.getItem("tc-admin-token") || ""; }
function say(text, cls) {
  document.getElementById("msg").innerHTML = text ? '<span class="' + cls + '">' + esc(text) + "</span>" : "";
}
async function api(method, path, body) {
  const opts = {method, headers: {"Authorization": "Bearer " + token()}};
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data = {};
  try { data = await res.json(); } catch (e) { data = {}; }
  if (res.status === 401) {
    sessionStorage.removeItem("tc-admin-token");
    showLogin(data.error || "unauthorised");
    throw new Error(data.error || "unauthorised");
  }
  if (!res.ok) throw new Error(data.error || ("HTTP " + res.status));
  return data;
}
function showLogin(why) {
  document.getElementById("login").hidden = false;
  document.getElementById("view").hidden = true;
  document.getElementById("logout").hidden = true;
  if (why) say(why, "err");
}
function stateClass(s) {
  if (s === "Normal") return "st-Normal";
  if (BAD.includes(s)) return "st-bad";
  return "st-warn";
}
function row(k, v) { return "<tr><td>" + esc(k) + "</td><td>" + v + "</td></tr>"; }
function render(st) {
  const g = st.group || {};
  document.getElementById("group").innerHTML =
    row("Group name", esc(g.name)) + row("Description", esc(g.description)) +
    row("High availability", g.ha_enabled ? "on" : "off") +
    row("User assignment mode", esc(g.assignment_mode));
  const nodes = st.nodes || [];
  document.getElementById("nodes").innerHTML = nodes.map(n => {
    const svc = n.services || {};
    const svcs = SERVICES.map(s => {
      const v = svc[s] || "unknown";
      return '<div class="svc"><span>' + esc(s) + ': <b class="' + esc(v) + '">' + esc(v) + "</b></span>" +
        '<button data-act="stop" data-node="' + esc(n.name) + '" data-svc="' + esc(s) + '"' +
        (v === "running" ? "" : " disabled") + ">Stop</button>" +
        '<button data-act="start" data-node="' + esc(n.name) + '" data-svc="' + esc(s) + '"' +
        (v === "running" ? " disabled" : "") + ">Start</button></div>";
    }).join("");
    return "<tr><td>" + esc(n.name) + (n.self ? " <small>(this node)</small>" : "") + "</td>" +
      '<td class="' + stateClass(n.state) + '">' + esc(n.state) + "</td><td>" + esc(n.reason) + "</td>" +
      "<td>" + (n.reachable ? "yes" : '<span class="st-bad">no</span>') + "</td>" +
      "<td>" + esc(n.lease_epoch) + "</td><td>" + esc((n.partitions || []).join(", ")) + "</td>" +
      "<td>" + esc(n.rooms_hosted) + "</td><td>" + esc(n.users_connected) + "</td><td>" + svcs + "</td></tr>";
  }).join("");
  const warnings = st.warnings || [];
  document.getElementById("cause").innerHTML =
    row("Cause", esc(st.cause)) + row("Recommended action", esc(st.recommended_action)) +
    (warnings.length ? row("Warnings", "<ul>" + warnings.map(w => "<li>" + esc(w) + "</li>").join("") + "</ul>") : "");
  const al = st.allowed || {};
  const fo = al.failover || [], fb = al.fallback || [];
  let acts = nodes.map(n =>
    '<button data-act="failover" data-node="' + esc(n.name) + '"' + (fo.includes(n.name) ? "" : " disabled") +
    ">Failover " + esc(n.name) + "</button> " +
    '<button data-act="fallback" data-node="' + esc(n.name) + '"' + (fb.includes(n.name) ? "" : " disabled") +
    ">Fallback " + esc(n.name) + "</button> ").join("");
  acts += '<button data-act="recover" data-group="' + esc(g.name) + '"' + (al.recover ? "" : " disabled") +
    ">Recover group</button>";
  document.getElementById("actions").innerHTML = acts;
  const s = st.settings || {};
  document.getElementById("settings").innerHTML =
    Object.keys(s).map(k => row(k, esc(s[k]))).join("");
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}
async function refresh() {
  if (!token() || busy) return;
  try {
    const st = await api("GET", "/api/v1/ha/status");
    document.getElementById("login").hidden = true;
    document.getElementById("view").hidden = false;
    document.getElementById("logout").hidden = false;
    render(st);
  } catch (e) {
    if (token()) say("status: " + e.message, "err");
    return;
  }
  try {
    renderCluster(await api("GET", "/api/v1/cluster/status"));
  } catch (e) {
    document.getElementById("clusterbox").hidden = true;  // a node in no group
  }
}
function renderCluster(cl) {
  const nodes = cl.nodes || [];
  document.getElementById("clusterbox").hidden = (cl.groups || []).length < 2;
  document.getElementById("cluster").innerHTML = nodes.map(n =>
    "<tr><td>" + esc(n.group) + "</td><td>" + esc(n.node) + (n.self ? " (this node)" : "") +
    '</td><td class="' + stateClass(n.state) + '">' + esc(n.state) + "</td><td>" + esc(n.reason) +
    "</td><td>" + (n.linked ? "yes" : "no") + "</td><td>" + esc((n.partitions || []).join(", ")) +
    "</td><td>" + esc(n.rooms_hosted) + "</td><td>" + esc(n.users_connected) + "</td><td>" +
    esc(n.client_endpoint) + "</td></tr>").join("");
}
async function act(b) {
  const a = b.dataset.act, node = b.dataset.node;
  let path, body, what;
  if (a === "failover" || a === "fallback") {
    path = "/api/v1/ha/" + a; body = {node}; what = a + " of " + node;
  } else if (a === "recover") {
    path = "/api/v1/ha/recover"; body = {group: b.dataset.group}; what = "recovery of " + b.dataset.group;
  } else {
    path = "/api/v1/services/" + a; body = {node, service: b.dataset.svc};
    what = a + " " + b.dataset.svc + " on " + node;
  }
  if (!confirm("Start " + what + "?")) return;
  busy = true;
  try {
    const r = await api("POST", path, body);
    say(r.message || (what + ": done"), "ok");
  } catch (e) {
    say(what + ": " + e.message, "err");
  } finally {
    busy = false;
    refresh();
  }
}
document.addEventListener("click", ev => {
  const b = ev.target.closest("button[data-act]");
  if (b && !b.disabled) act(b);
});
document.getElementById("loginform").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem("tc-admin-token", document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  say("", "");
  refresh();
});
document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem("tc-admin-token");
  showLogin("");
});
if (token()) refresh(); else showLogin("");
setInterval(refresh, 2000);
</script>
</body>
</html>
)html";

}  // namespace

std::string_view web_page() {
  return kPage;
}

}  // namespace tc::broker::admin
