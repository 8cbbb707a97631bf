# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the slixmpp integration scripts.

Every wait is bounded by TIMEOUT, so a server that never answers fails the
script with a message instead of hanging ctest. Run with Debian's
/usr/bin/python3, which has python3-slixmpp.
"""

import asyncio
import logging
import ssl
import sys

import slixmpp
from slixmpp.stanza import StreamFeatures

TIMEOUT = 15.0  # seconds, for any single expected event


class Failure(Exception):
    """A check failed; main() prints it and exits 1."""


def check(condition, message):
    if not condition:
        raise Failure(message)


async def within(awaitable, what, timeout=TIMEOUT):
    """Awaits with a deadline; a timeout becomes a Failure naming `what`."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise Failure(f"timed out after {timeout} s waiting for {what}") from None


class Session:
    """One slixmpp.ClientXMPP and the events a test waits for.

    `outcome` resolves to "started" (session_start, after the roster was
    fetched), "failed_auth", or "disconnected", whichever comes first.
    """

    def __init__(self, jid, password, mechanism=None, plugins=(), sm=False):
        self.xmpp = slixmpp.ClientXMPP(jid, password)
        # The test broker's certificate is self-signed.
        self.xmpp.ssl_context.check_hostname = False
        self.xmpp.ssl_context.verify_mode = ssl.CERT_NONE
        for plugin in ("xep_0030", "xep_0199") + tuple(plugins):
            self.xmpp.register_plugin(plugin)
        if sm:
            self.xmpp.register_plugin("xep_0198", {"allow_resume": False})
        if mechanism:
            self.xmpp["feature_mechanisms"].use_mechs = {mechanism}
        loop = asyncio.get_running_loop()
        self.outcome = loop.create_future()
        self.sm_enabled = loop.create_future()
        self.auth_failures = []  # SASL failure conditions, in order
        self.connection_failures = []
        self.features_seen = []  # every <stream:features/> received, as text
        self.messages = asyncio.Queue()
        self.message_errors = asyncio.Queue()
        self.roster_reply = None

        x = self.xmpp
        x.add_event_handler("session_start", self._on_session_start)
        x.add_event_handler("failed_auth", self._on_failed_auth)
        x.add_event_handler("failed_all_auth", lambda _: self._settle("failed_auth"))
        x.add_event_handler("disconnected", lambda _: self._settle("disconnected"))
        # slixmpp retries a failed connection by itself; the caller's timeout bounds that.
        x.add_event_handler("connection_failed", self.connection_failures.append)
        x.add_event_handler("sm_enabled", lambda _: self._resolve(self.sm_enabled, True))
        x.add_event_handler("sm_failed", lambda _: self._resolve(self.sm_enabled, False))
        x.add_event_handler("message", self.messages.put_nowait)
        x.add_event_handler("message_error", self.message_errors.put_nowait)
        x.add_filter("in", self._record_features)

    @staticmethod
    def _resolve(future, value):
        if not future.done():
            future.set_result(value)

    def _settle(self, outcome):
        self._resolve(self.outcome, outcome)

    def _record_features(self, stanza):
        if isinstance(stanza, StreamFeatures):
            self.features_seen.append(str(stanza))
        return stanza

    def _on_failed_auth(self, failure):
        self.auth_failures.append(failure["condition"])
        self._settle("failed_auth")

    async def _on_session_start(self, _event):
        try:
            self.roster_reply = await self.xmpp.get_roster(timeout=TIMEOUT)
            self.xmpp.send_presence()
            self._settle("started")
        except Exception as e:  # the roster get is part of the contract
            if not self.outcome.done():
                self.outcome.set_exception(Failure(f"roster get failed: {e!r}"))

    def connect(self, host, port):
        # slixmpp still runs its resolver on an IP literal and falls back to the address when that
        # finds nothing; should it find something, the default port keeps it on the test server.
        self.xmpp.default_port = port
        # force_starttls (the default) aborts if the server offers no STARTTLS.
        self.xmpp.connect(address=(host, port))

    async def login(self, host, port):
        """Connects and waits for the session; a Failure unless it started."""
        self.connect(host, port)
        outcome = await within(asyncio.shield(self.outcome),
                               f"login of {self.xmpp.boundjid} "
                               f"(connection failures: {self.connection_failures})")
        check(outcome == "started",
              f"login of {self.xmpp.boundjid.bare} ended with {outcome} "
              f"(SASL failures: {self.auth_failures})")
        return self

    def tls_active(self):
        transport = self.xmpp.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    async def close(self):
        if self.xmpp.transport is not None:
            try:
                await asyncio.wait_for(self.xmpp.disconnect(), 5)
            except (asyncio.TimeoutError, Exception):
                self.xmpp.abort()


def setup_logging(debug):
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run(main_coroutine):
    """Runs the script's coroutine and turns the result into an exit status."""
    try:
        asyncio.run(main_coroutine)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    except Exception:  # an unexpected exception is a failure too, with its trace
        logging.exception("FAIL: unexpected exception")
        return 2
    print("OK", file=sys.stderr, flush=True)
    return 0
