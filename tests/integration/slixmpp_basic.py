#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Basic c2s checks against a running tcbroker with slixmpp clients.

Logs in two users over STARTTLS (the first with SCRAM-SHA-256 and stream
management, the second with PLAIN), then checks: XEP-0199 ping to the server,
XEP-0030 disco#info on the domain, chat messages both ways, an error for a
message to a user that does not exist, an error for an unknown iq namespace, XEP-0198
acks, and that a wrong password fails SASL. Exits 0 when every check passed,
non-zero with a FAIL: line otherwise.
"""

import argparse
import asyncio
import sys
import uuid

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0198 import stanza as sm_stanza
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from slixmpp_common import TIMEOUT, Failure, Session, check, run, setup_logging, within

UNKNOWN_NS = "urn:example:tcbroker:no-such-namespace"


async def expect_chat(receiver, sender, body):
    while True:
        msg = await within(receiver.messages.get(), f"chat message {body!r}")
        if msg["body"] == body:
            break
    check(msg["type"] == "chat", f"message type {msg['type']!r}, expected 'chat'")
    check(msg["from"].bare == sender.xmpp.boundjid.bare,
          f"message from {msg['from']}, expected {sender.xmpp.boundjid.bare}")


async def check_ping(session, domain):
    try:
        reply = await within(session.xmpp["xep_0199"].send_ping(domain, timeout=TIMEOUT),
                             "ping reply")
    except IqError as e:
        raise Failure(f"ping to {domain} got an error: {e.iq['error']['condition']}") from None
    check(reply["type"] == "result", f"ping reply type {reply['type']!r}")


async def check_disco(session, domain):
    try:
        info = await within(session.xmpp["xep_0030"].get_info(jid=domain, timeout=TIMEOUT),
                            "disco#info reply")
    except IqError as e:
        raise Failure(f"disco#info on {domain}: error {e.iq['error']['condition']}") from None
    disco = info["disco_info"]
    identities = {(category, kind) for category, kind, *_ in disco["identities"]}
    features = set(disco["features"])
    check(("server", "im") in identities, f"no server/im identity in {identities}")
    for feature in ("urn:xmpp:ping", "http://jabber.org/protocol/disco#info",
                    "http://jabber.org/protocol/disco#items"):
        check(feature in features, f"feature {feature} missing from {sorted(features)}")


async def check_unknown_namespace(session, domain):
    iq = session.xmpp.make_iq_get(queryxmlns=UNKNOWN_NS, ito=domain)
    try:
        reply = await within(iq.send(timeout=TIMEOUT), "reply to an unknown namespace")
    except IqError as e:
        condition = e.iq["error"]["condition"]
        check(condition == "service-unavailable",
              f"unknown namespace: condition {condition!r}, expected service-unavailable")
        return
    except IqTimeout:
        raise Failure("unknown namespace: no reply") from None
    raise Failure(f"unknown namespace answered with type {reply['type']!r}, expected error")


async def check_unknown_user_bounce(session, unknown_jid):
    body = "to-nobody-" + uuid.uuid4().hex
    session.xmpp.send_message(mto=unknown_jid, mbody=body, mtype="chat")
    error = await within(session.message_errors.get(), f"error bounce from {unknown_jid}")
    check(error["error"]["condition"] == "service-unavailable",
          f"unknown user bounce condition {error['error']['condition']!r}")
    check(error["error"]["type"] == "cancel",
          f"unknown user bounce type {error['error']['type']!r}")


async def check_stream_management(session):
    enabled = await within(asyncio.shield(session.sm_enabled), "XEP-0198 <enabled/>")
    check(enabled, "server answered <enable/> with <failed/>")
    acks = asyncio.Queue()
    session.xmpp.register_handler(
        Callback("test acks", MatchXPath(sm_stanza.Ack.tag_name()),
                 lambda ack: acks.put_nowait(int(ack["h"])), instream=True))
    # Everything sent before this point has been answered, so the server has handled all of it.
    await check_ping(session, session.xmpp.boundjid.domain)
    expected = session.xmpp["xep_0198"].seq
    session.xmpp["xep_0198"].request_ack()
    seen = []
    while True:
        h = await within(acks.get(), f"<a h='{expected}'/> (saw {seen})")
        seen.append(h)
        if h == expected:
            return
        check(h < expected, f"server acked h={h}, but only {expected} stanzas were sent")


async def check_wrong_password(args):
    session = Session(args.jid, args.password + "-wrong")
    session.connect(args.host, args.port)
    outcome = await within(asyncio.shield(session.outcome), "the wrong-password login to end")
    check(outcome == "failed_auth",
          f"wrong password: login ended with {outcome}, expected failed_auth")
    check(session.auth_failures and session.auth_failures[0] == "not-authorized",
          f"wrong password: SASL failures {session.auth_failures}, expected not-authorized")
    await session.close()


async def main(args):
    domain = slixmpp.JID(args.jid).domain
    alice = await Session(args.jid, args.password, mechanism="SCRAM-SHA-256",
                          sm=True).login(args.host, args.port)
    bob = await Session(args.peer_jid, args.peer_password,
                        mechanism="PLAIN").login(args.host, args.port)
    try:
        for session in (alice, bob):
            check(session.tls_active(), f"{session.xmpp.boundjid} is not on TLS")
            check(session.xmpp.boundjid.resource, "the server bound no resource")
            check(session.roster_reply is not None and session.roster_reply["type"] == "result",
                  "roster get not answered with a result")

        await check_ping(alice, domain)
        await check_disco(alice, domain)

        body = "hello-bob-" + uuid.uuid4().hex
        alice.xmpp.send_message(mto=bob.xmpp.boundjid.bare, mbody=body, mtype="chat")
        await expect_chat(bob, alice, body)
        body = "hello-alice-" + uuid.uuid4().hex
        bob.xmpp.send_message(mto=alice.xmpp.boundjid.full, mbody=body, mtype="chat")
        await expect_chat(alice, bob, body)

        if args.unknown_jid:
            await check_unknown_user_bounce(alice, args.unknown_jid)
        await check_unknown_namespace(bob, domain)
        await check_stream_management(alice)
    finally:
        await alice.close()
        await bob.close()
    await check_wrong_password(args)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jid", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--peer-jid", required=True)
    parser.add_argument("--peer-password", required=True)
    parser.add_argument("--unknown-jid", help="a JID of this domain with no account")
    parser.add_argument("--debug", action="store_true", help="log every stanza")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    setup_logging(ARGS.debug)
    sys.exit(run(main(ARGS)))
