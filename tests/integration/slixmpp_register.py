#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""XEP-0077 in-band registration against a running tcbroker, with slixmpp.

--expect created: the server advertises registration after STARTTLS; the new
  account is created in band and the client then logs in with it.
--expect refused: the server does not advertise registration, a login with
  the unknown account fails, and a registration attempt forced anyway does not
  log anyone in (the caller also checks with tcctl that no account appeared).
Exits 0 when the expectation held, non-zero with a FAIL: line otherwise.
"""

import argparse
import asyncio
import sys

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza import Iq, StreamFeatures

from slixmpp_common import TIMEOUT, Session, check, run, setup_logging, within

REGISTER_FEATURE = "http://jabber.org/features/iq-register"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"


class Registrant(Session):
    """A Session that answers the registration form with its own credentials."""

    def __init__(self, jid, password, force=False):
        super().__init__(jid, password, plugins=("xep_0004", "xep_0066", "xep_0077"))
        if force:
            self.xmpp.add_filter("in", self._offer_register_anyway)
        # slixmpp 1.8 holds back every stanza until the session starts, the pre-authentication
        # registration iqs included, which would then never leave; this lets them through.
        self.xmpp._always_send_everything = True
        self.form_requested = False
        self.registration = asyncio.get_running_loop().create_future()  # "result" or a condition
        self.xmpp.add_event_handler("register", self._on_register)
        self.xmpp.add_filter("in", self._record_iq_error)

    def _offer_register_anyway(self, features):
        # Pretend the server offered registration after STARTTLS, so the client tries it before
        # authenticating. (slixmpp's own force_registration waits for an ssl.SSLSocket, which an
        # asyncio transport never is, so it would never fire.)
        if (isinstance(features, StreamFeatures) and self.tls_active()
                and features.xml.find(f"{{{SASL_NS}}}mechanisms") is not None):
            features.enable("register")
        return features

    def _record_iq_error(self, stanza):
        # An error to the form request never reaches _on_register; catch it here.
        if isinstance(stanza, Iq) and stanza["type"] == "error" and not self.registration.done():
            self.registration.set_result(stanza["error"]["condition"] or "error")
        return stanza

    async def _on_register(self, _form):
        self.form_requested = True
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.xmpp.boundjid.user
        iq["register"]["password"] = self.xmpp.password
        try:
            await iq.send(timeout=TIMEOUT)
            outcome = "result"
        except IqError as e:
            outcome = e.iq["error"]["condition"] or "error"
        except IqTimeout:
            outcome = "timeout"
        if not self.registration.done():
            self.registration.set_result(outcome)


async def expect_created(args):
    session = Registrant(args.jid, args.password)
    try:
        await session.login(args.host, args.port)
        check(session.tls_active(), "registered and logged in without TLS")
        check(session.form_requested, "logged in without the register feature being used")
        check(session.registration.done() and session.registration.result() == "result",
              f"registration set answered with {session.registration.result()!r}")
        check(any(REGISTER_FEATURE in f for f in session.features_seen),
              "the register stream feature was never advertised")
    finally:
        await session.close()


async def expect_refused(args):
    # 1. Not advertised, and the account does not exist.
    session = Registrant(args.jid, args.password)
    try:
        session.connect(args.host, args.port)
        outcome = await within(asyncio.shield(session.outcome), "the login attempt to end")
        check(outcome == "failed_auth",
              f"login of an unregistered account ended with {outcome}, expected failed_auth")
        check(not session.form_requested, "registration form offered although disabled")
        check(session.features_seen, "no stream features seen")
        check(not any(REGISTER_FEATURE in f for f in session.features_seen),
              f"register feature advertised although disabled: {session.features_seen}")
    finally:
        await session.close()

    # 2. A client that tries anyway must not get an account (nor a session).
    forced = Registrant(args.jid, args.password, force=True)
    try:
        forced.connect(args.host, args.port)
        done, _ = await asyncio.wait([forced.outcome, forced.registration], timeout=TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        check(done, "forced registration: the server neither answered nor closed the stream")
        if not forced.registration.done():
            outcome = forced.outcome.result()
            check(outcome == "disconnected",
                  f"forced registration was never attempted (the login ended with {outcome})")
        if forced.registration.done():
            check(forced.registration.result() != "result",
                  "forced registration was accepted although registration is disabled")
        if forced.outcome.done():
            check(forced.outcome.result() != "started",
                  "forced registration ended in a session although registration is disabled")
    finally:
        await forced.close()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jid", required=True, help="the account to register")
    parser.add_argument("--password", required=True)
    parser.add_argument("--expect", choices=("created", "refused"), required=True)
    parser.add_argument("--debug", action="store_true", help="log every stanza")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    setup_logging(ARGS.debug)
    sys.exit(run((expect_created if ARGS.expect == "created" else expect_refused)(ARGS)))
