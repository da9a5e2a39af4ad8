"""One client connection's protocol logic: login, requests, subscriptions, limits, safety.

A ``Session`` sits between a transport (``gateway.transport.server``) and the venue.  It is fed
whole text frames (``on_frame``) and told when the connection is gone (``on_close``); it
answers through a ``Connection`` it was given (``send`` never blocks; ``close`` with a
code and reason).  No sockets here, so the whole protocol is testable without a network,
in the way the ``websockets`` library keeps its protocol core apart from its I/O.

Requests are handled in arrival order: order entry is queued to the venue's sequencer at
once (so a client's pipelined orders reach the engine in the order it sent them) and
answered when the engine has executed them.  A bad request gets its error code and the
connection stays open; nothing a client sends can raise out of here.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypedDict

from engine.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    SetLicense,
    SetMarket,
    SetParticipant,
    Withdraw,
)
from engine.errors import ConfigError
from engine.fixedpoint import NumberFormatError, parse_units
from engine.licensing import license_from_mapping, participant_from_mapping
from engine.markets import Market
from engine.reports import AdminApplied, CommandRejected, FillReport, OrderReport, Report
from engine.types import OrderType, SelfTradePrevention, Side, TimeInForce
from gateway.sequencer.marketdata import INTERVALS_MS
from gateway.sequencer.queries import BalancesQuery, OpenOrdersQuery
from gateway.sequencer.venue import STOPPED, Venue
from gateway.sessions import lookups
from gateway.sessions.ratelimit import LogLimiter, TokenBucket
from gateway.storage.history import HistoryWriter
from gateway.storage.sealing import SealError, SecretBox
from gateway.wire import protocol
from gateway.wire._answers import changed_reports, order_answer, placed_reports
from gateway.wire._intake import PLACE as PLAIN_PLACE
from gateway.wire._intake import plain_order
from gateway.wire.auth import (
    ReplayGuard,
    admin_key_matches,
    check_public_key,
    check_window,
    verify_ed25519,
    verify_hmac,
)
from gateway.wire.protocol import METHOD_OF, PUBLIC_METHODS, WireError
from gateway.wire.views import (
    OrderResult,
    balance_view,
    market_view,
    order_result,
    order_view,
    units_of,
)

log = logging.getLogger("alatau.session")
# What clients cause is logged at most once per interval, with a count of the rest.
_internal_errors = LogLimiter(log)
_slow_readers = LogLimiter(log)
_refused = LogLimiter(log)

TOO_MANY_FROM_ADDRESS = "too many connections from this address"

# Enum members held once: reading one off its class (``OrderType.MARKET``) goes through
# the enum metaclass's ``__getattr__`` hook, about 850 instructions, on every order.
_MARKET, _LIMIT = OrderType.MARKET, OrderType.LIMIT
_IOC, _GTC = TimeInForce.IOC, TimeInForce.GTC
SIDES = {"buy": Side.BUY, "sell": Side.SELL}
TIFS = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
STPS = {
    "cancel_newest": SelfTradePrevention.CANCEL_NEWEST,
    "cancel_oldest": SelfTradePrevention.CANCEL_OLDEST,
    "cancel_both": SelfTradePrevention.CANCEL_BOTH,
}

# ``placed`` (a session's orders, for cancel-on-disconnect) is pruned past this many.
PRUNE_FLOOR = 10_000

# After this many sessions have closed, the process hands freed memory back to the OS.
TRIM_AFTER_CLOSES = 256
TRIM_DELAY_S = 1.0
TRIM_MIN_INTERVAL_S = 30.0  # a full collection and a trim at most this often


def release_memory() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``): the buffers of
    thousands of closed connections are freed to the allocator, which keeps them in its
    arenas otherwise, so the RSS of a server stays at the peak of a connection storm.
    False where there is no glibc (then nothing is done)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim is False:
        return False
    _malloc_trim(0)
    return True


_malloc_trim: Any = None

# WebSocket close codes used by the server.
CLOSE_POLICY = 1008


class ErrorBody(TypedDict):
    """The ``error`` of a refused request (``protocol.error`` adds what else it has)."""

    code: str
    message: str


# (accepted, the order's result) or (refused, {"code", "message"}) of one order request
Outcome = tuple[bool, OrderResult | ErrorBody]
# What an accepted order request is answered with: the order's report, its market, the
# request's fills and the last of them if it came after the report (``order_result``'s
# arguments); or the refusal.
Picked = tuple[OrderReport, Market, list[FillReport], FillReport | None]
Build = Callable[[int], Command]  # ts (ms) -> the command to sequence


def _place_builder(
    participant_id: str,
    market: str,
    side: Side,
    qty: int,
    order_type: OrderType,
    price: int | None,
    tif: TimeInForce,
    post_only: bool,
    stp: SelfTradePrevention,
    client_order_id: str | None,
) -> Build:
    """The place command of a request, given its stamp (the venue stamps a batch at once)."""
    return lambda ts: PlaceOrder(
        ts=ts,
        participant_id=participant_id,
        market=market,
        side=side,
        qty=qty,
        order_type=order_type,
        price=price,
        tif=tif,
        post_only=post_only,
        stp=stp,
        client_order_id=client_order_id,
    )


def _cancel_builder(
    participant_id: str, market: str, order_id: int | None, client_order_id: str | None
) -> Build:
    """The cancel command of a request, given its stamp."""
    return lambda ts: CancelOrder(
        ts=ts,
        participant_id=participant_id,
        market=market,
        order_id=order_id,
        client_order_id=client_order_id,
    )


def _outcome(picked: Picked | ErrorBody) -> Outcome:
    """(accepted, result-or-error) of an order request (a batch's item), from what it is
    answered with."""
    if isinstance(picked, tuple):
        return True, order_result(*picked)
    return False, picked


def _stopped_answer(answer: object) -> bool:
    """Whether a query's answer is the venue's ``STOPPED`` sentinel (in place of whatever
    type of answer the query has, so a typed ``answer is STOPPED`` reads as impossible)."""
    return answer is STOPPED


class Connection(Protocol):
    """What a session needs of its transport."""

    def send(self, data: bytes) -> None: ...

    def buffered(self) -> int: ...

    def close(self, code: int, reason: str) -> None: ...


class Limits:
    """Per-connection safety limits (the server's options set them)."""

    def __init__(
        self,
        *,
        connection_rate: float = 2_000.0,
        connection_burst: float = 4_000.0,
        participant_rate: float = 5_000.0,
        participant_burst: float = 10_000.0,
        max_buffered_bytes: int = 8 * 1024 * 1024,
        login_window_ms: int = 30_000,
        max_connections_per_address: int = 256,
        max_sessions_per_participant: int = 32,
    ) -> None:
        self.connection_rate = connection_rate
        self.connection_burst = connection_burst
        self.participant_rate = participant_rate
        self.participant_burst = participant_burst
        self.max_buffered_bytes = max_buffered_bytes
        self.login_window_ms = login_window_ms
        # Connections open at once from one remote address (refused at accept past it),
        # and logged-in sessions of one participant (``TOO_MANY_CONNECTIONS`` on login).
        self.max_connections_per_address = max_connections_per_address
        self.max_sessions_per_participant = max_sessions_per_participant


class Gateway:
    """What all sessions share: the venue, the admin key, limits and participant buckets."""

    session_type: type[Session]
    """What ``open_session`` makes: ``Session``, or a subclass (the bench's floors)."""

    def __init__(
        self,
        venue: Venue,
        *,
        admin_key: str | None,
        limits: Limits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        secret_box: SecretBox | None = None,
    ) -> None:
        self.venue = venue
        self.admin_key = admin_key
        self.limits = limits or Limits()
        self.monotonic = monotonic
        self.sessions: set[Session] = set()
        self._participant_buckets: dict[str, TokenBucket] = {}
        # Seals HMAC secrets before they are sequenced, opens them at login
        # (gateway.storage.sealing)
        self.secret_box = secret_box or SecretBox.random()
        self.replay_guard = ReplayGuard(lambda: self.limits.login_window_ms)
        # Signed HTTP requests: a timestamp is good once per api key (its own memory, so
        # an HTTP request never collides with a websocket login of the same millisecond)
        self.http_replay_guard = ReplayGuard(lambda: self.limits.login_window_ms)
        # The history database (gateway.storage.history), when the server keeps one
        self.history: HistoryWriter | None = None
        self._warned_plaintext: set[str] = set()
        self.connections_per_address: dict[str, int] = {}
        self.sessions_per_participant: dict[str, int] = {}
        self._closed_since_trim = 0
        self._trim: Any = None  # asyncio.TimerHandle of a pending memory trim
        self._last_trim = float("-inf")
        self.trims = 0

    def check_login(
        self, participant: Any, params: protocol.LoginParams, now_ms: int
    ) -> str | None:
        """None if ``params`` log in as ``participant``, else the reason (never raises)."""
        return self.check_signature(participant, params, now_ms)

    def check_signature(
        self,
        participant: Any,
        params: protocol.LoginParams,
        now_ms: int,
        message: bytes | None = None,
        replay_guard: ReplayGuard | None = None,
    ) -> str | None:
        """None if ``params.signature`` is ``participant``'s signature of ``message`` (the
        login message when None) within the window and not seen before by
        ``replay_guard`` (the logins' when None), else the reason (never raises).  A signed
        HTTP request is checked here too, with its own message and guard."""
        reason = check_window(params.timestamp, now_ms, self.limits.login_window_ms)
        if reason is not None:
            return reason
        if participant.api_public_key is not None:
            reason = verify_ed25519(
                participant.api_public_key,
                params.api_key,
                params.timestamp,
                params.signature,
                message,
            )
        else:
            secret = participant.api_secret
            if participant.api_secret_sealed is not None:
                try:
                    secret = self.secret_box.open(params.api_key, participant.api_secret_sealed)
                except SealError as exc:
                    log.error("cannot open the HMAC secret of %s: %s", params.api_key, exc)
                    return "the server cannot check this key's secret (see the server's log)"
            elif secret is not None and participant.participant_id not in self._warned_plaintext:
                self._warned_plaintext.add(participant.participant_id)
                log.warning(
                    "participant %s has a plaintext api_secret (from data written before "
                    "secrets were sealed); it is sealed again at the next start",
                    participant.participant_id,
                )
            if secret is None:
                return "this api_key has no credential"
            reason = verify_hmac(
                secret, params.api_key, params.timestamp, params.signature, message
            )
        if reason is not None:
            return reason
        guard = self.replay_guard if replay_guard is None else replay_guard
        return guard.check_and_remember(params.api_key, params.timestamp, now_ms)

    def _schedule_trim(self) -> None:
        """After a storm of connections has closed, give their memory back to the OS (see
        ``release_memory``), once things have been quiet for ``TRIM_DELAY_S``."""
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (sans-I/O tests): nothing to schedule on
            return

        def trim() -> None:
            self._trim = None
            self._closed_since_trim = 0
            self._last_trim = loop.time()
            self.trims += 1
            gc.collect()  # what closed connections left in reference cycles
            release_memory()

        delay = max(TRIM_DELAY_S, self._last_trim + TRIM_MIN_INTERVAL_S - loop.time())
        self._trim = loop.call_later(delay, trim)

    def participant_bucket(self, participant_id: str) -> TokenBucket:
        bucket = self._participant_buckets.get(participant_id)
        if bucket is None:
            bucket = TokenBucket(
                self.limits.participant_rate, self.limits.participant_burst, self.monotonic()
            )
            self._participant_buckets[participant_id] = bucket
        return bucket

    def open_session(self, connection: Connection, address: str | None = None) -> Session | None:
        """A session for a new connection from ``address`` (the peer's IP; None: not
        counted), or None if that address has ``max_connections_per_address`` open already:
        the transport then closes the connection (``CLOSE_POLICY``, ``TOO_MANY_FROM_ADDRESS``)."""
        if address is not None:
            count = self.connections_per_address.get(address, 0)
            if count >= self.limits.max_connections_per_address:
                _refused.log(
                    logging.WARNING,
                    "refused a connection from %s: %d open from there already",
                    address,
                    count,
                )
                return None
            self.connections_per_address[address] = count + 1
        session = self.session_type(self, connection)
        session.address = address
        self.sessions.add(session)
        return session

    def _forget(self, session: Session) -> None:
        """A session ended: it no longer counts against its address or participant."""
        self.sessions.discard(session)
        self._closed_since_trim += 1
        if self._closed_since_trim >= TRIM_AFTER_CLOSES and self._trim is None:
            self._schedule_trim()
        for counts, key in (
            (self.connections_per_address, session.address),
            (self.sessions_per_participant, session.participant_id),
        ):
            if key is not None:
                left = counts.get(key, 0) - 1
                if left > 0:
                    counts[key] = left
                else:
                    counts.pop(key, None)


class Session:
    def __init__(self, gateway: Gateway, connection: Connection) -> None:
        self.gateway = gateway
        # Read on every message sent: the gateway's limits are fixed when it is made.
        self._max_buffered_bytes = gateway.limits.max_buffered_bytes
        self.venue = gateway.venue
        self.connection = connection
        self.participant_id: str | None = None
        self.is_admin = False
        self.channels: set[str] = set()
        self.cancel_on_disconnect = False
        self.placed: set[tuple[str, int]] = set()  # (market, order_id) placed by this session
        self._pruning = False  # a query for what of ``placed`` is still open is under way
        # ``placed`` is pruned when it grows past this, which then doubles what is left:
        # amortized O(1) per order however many stay open (see ``_forget_closed_orders``).
        self._prune_at = PRUNE_FLOOR
        self.prunes = 0  # full listings made for pruning (for tests)
        self.closed = False
        self.address: str | None = None  # the peer's IP, counted by the gateway
        self._bucket = TokenBucket(
            gateway.limits.connection_rate, gateway.limits.connection_burst, gateway.monotonic()
        )
        self._dead_man: Any = None  # asyncio.TimerHandle of session.cancel_all_after
        # The logged-in participant's bucket (shared by its sessions), once there is one
        self._participant_bucket: TokenBucket | None = None

    # -- transport events ----------------------------------------------------------------

    def on_frame(self, frame: bytes | str) -> None:
        """Handle one text frame.  Never raises for anything the client sent."""
        if self.closed:
            return
        request_id = None
        try:
            now = self.gateway.monotonic()
            wait = self._bucket.take(now)
            if wait:  # every frame counts, even a malformed one
                raise WireError(
                    "RATE_LIMITED",
                    f"too many requests on this connection: retry after {_ms(wait)} ms",
                    protocol.request_id_of(frame),
                    retry_after_ms=_ms(wait),
                )
            # A plain order.place / order.cancel of a logged-in participant is read in one
            # pass (``plain_order``); anything else, or None, is decoded the general way.
            plain = None if self.participant_id is None else plain_order(frame, self.venue.markets)
            if plain is None:
                request = protocol.decode_request(frame)
                request_id = request.id
            else:
                request_id = plain[1]
            bucket = self._participant_bucket
            if bucket is not None and (wait := bucket.take(now)):
                raise WireError(
                    "RATE_LIMITED",
                    f"too many requests from {self.participant_id}: retry after {_ms(wait)} ms",
                    request_id,
                    retry_after_ms=_ms(wait),
                )
            if plain is not None:
                self._submit_plain(plain)
                return
            handler, public, admin = _DISPATCH[type(request)]
            if not public and not (self.is_admin if admin else self.participant_id is not None):
                raise WireError(
                    "UNAUTHENTICATED",
                    "admin login required" if admin else "log in first",
                    request_id,
                )
            handler(self, request)
        except WireError as exc:
            echoed = exc.request_id if exc.request_id is not None else request_id
            self.send(protocol.error(echoed, exc.code, exc.message, **exc.extra))
        except Exception:  # a bug of ours: this request fails, the connection lives on
            _internal_errors.log(logging.ERROR, "a request failed inside the server", exc_info=True)
            if request_id is None:
                request_id = protocol.request_id_of(frame)
            self.send(
                protocol.error(
                    request_id,
                    "INTERNAL",
                    "the server failed to handle the request; it may or may not have run",
                )
            )

    def on_close(self) -> None:
        """The connection is gone: unsubscribe, and cancel what the session asked to."""
        if self.closed:
            return
        self.closed = True
        self.gateway._forget(self)
        for channel in self.channels:
            if channel == "orders":
                if self.participant_id is not None:
                    self.venue.unlisten_orders(self.participant_id, self)
            else:
                self.venue.channels.unsubscribe(channel, self)
        self.channels.clear()
        # A pending dead-man switch stays armed: protecting a client that went away is
        # exactly what it is for.
        if self.cancel_on_disconnect and self.participant_id is not None:
            participant_id = self.participant_id
            try:
                for market, order_id in sorted(self.placed):

                    def cancel(ts: int, market: str = market, order_id: int = order_id) -> Command:
                        return CancelOrder(
                            ts=ts,
                            participant_id=participant_id,
                            market=market,
                            order_id=order_id,
                            reason="disconnect",
                        )

                    self.venue.submit(cancel)
            except WireError:  # the venue is stopping: its final snapshot keeps the orders
                log.warning("cancel-on-disconnect for %s skipped: shutting down", participant_id)

    def send(self, data: bytes) -> None:
        """Queue a message; a client that lets too much pile up is disconnected."""
        if self.closed:
            return
        self.connection.send(data)
        buffered = self.connection.buffered()
        if buffered > self._max_buffered_bytes:
            _slow_readers.log(logging.WARNING, "closing a slow reader (%d bytes queued)", buffered)
            self.connection.close(
                CLOSE_POLICY,
                f"slow reader: more than {self._max_buffered_bytes} bytes queued",
            )
            self.on_close()

    # -- checks --------------------------------------------------------------------------

    def _participant(self, request_id: Any) -> str:
        """The participant logged in on this connection.  ``on_frame`` runs a method that
        needs a login only after one, so this always has one to return where it is used;
        were it not so, the request would fail ``UNAUTHENTICATED``."""
        participant_id = self.participant_id
        if participant_id is None:
            raise WireError("UNAUTHENTICATED", "log in first", request_id)
        return participant_id

    def _market(self, symbol: str, request_id: Any) -> Market:
        market = self.venue.markets.get(symbol)
        if market is None:
            raise WireError("UNKNOWN_MARKET", f"no market {symbol[:32]!r}", request_id)
        return market

    def _reply(self, request_id: Any, result: Any) -> None:
        self.send(protocol.ok(request_id, result))

    # -- auth and session methods --------------------------------------------------------

    def _login(self, request: protocol.Login) -> None:
        params = request.params
        registry = self.venue.registry
        participant = registry.participant_by_api_key(params.api_key)
        reason: str | None = "unknown api_key"
        if participant is not None:
            reason = self.gateway.check_login(participant, params, self.venue.now_ms())
        if participant is None or reason is not None:
            raise WireError("AUTH_FAILED", f"login refused: {reason}", request.id)
        if self.participant_id not in (None, participant.participant_id):
            raise WireError(
                "AUTH_FAILED", "this connection is logged in as someone else", request.id
            )
        if self.participant_id is None:
            self._count_login(participant.participant_id, request.id)
        self.participant_id = participant.participant_id
        self._participant_bucket = self.gateway.participant_bucket(self.participant_id)
        self._reply(
            request.id,
            {
                "participant": participant.participant_id,
                "category": participant.category,
                "permissions": ["trade", "read"],
            },
        )

    def _count_login(self, participant_id: str, request_id: Any) -> None:
        """Count this session against its participant's cap, or refuse the login."""
        counts = self.gateway.sessions_per_participant
        count = counts.get(participant_id, 0)
        cap = self.gateway.limits.max_sessions_per_participant
        if count >= cap:
            raise WireError(
                "TOO_MANY_CONNECTIONS",
                f"{participant_id} has {cap} sessions logged in already: close one first",
                request_id,
            )
        counts[participant_id] = count + 1

    def _admin_login(self, request: protocol.AdminLogin) -> None:
        if not admin_key_matches(self.gateway.admin_key, request.params.admin_key):
            raise WireError("AUTH_FAILED", "login refused: wrong admin key", request.id)
        self.is_admin = True
        self._reply(request.id, {"admin": True})

    def _ping(self, request: protocol.Ping) -> None:
        health = self.venue.health()
        if health["status"] != "ok":  # a monitor that only pings must not be told all is well
            raise WireError("VENUE_STOPPED", health["reason"], request.id)
        self._reply(request.id, {"pong": True, "time": self.venue.now_ms()})

    def _health(self, request: protocol.Health) -> None:
        self._reply(request.id, {**self.venue.health(), "time": self.venue.now_ms()})

    def _stopped(self) -> ErrorBody:
        """The error of a request the venue stopped before confirming (``STOPPED``)."""
        return {
            "code": "VENUE_STOPPED",
            "message": f"{self.venue.health()['reason']}: this request was not confirmed "
            "and may not have run; check orders.open once the venue is back",
        }

    def _send_stopped(self, request_id: Any) -> None:
        error = self._stopped()
        self.send(protocol.error(request_id, error["code"], error["message"]))

    def _markets(self, request: protocol.MarketsList) -> None:
        venue = self.venue
        self._reply(
            request.id,
            [market_view(m, venue.reference_price(s)) for s, m in venue.markets.items()],
        )

    def _subscribe(self, request: protocol.Subscribe) -> None:
        channels = self.venue.channels
        for channel in request.params.channels:
            if channel == "orders":
                if self.participant_id is None:
                    raise WireError("UNAUTHENTICATED", "log in to follow `orders`", request.id)
            elif not channels.is_public(channel):
                raise WireError(
                    "INVALID_PARAMS",
                    f"no channel {channel!r}: use book:SYMBOL, trades:SYMBOL, ticker:SYMBOL,"
                    f" candles:SYMBOL:INTERVAL ({' '.join(INTERVALS_MS)}) or orders",
                    request.id,
                )
        requested = list(dict.fromkeys(request.params.channels))
        for channel in requested:
            if channel in self.channels:
                continue
            self.channels.add(channel)
            if channel == "orders":
                self.venue.listen_orders(self._participant(request.id), self)
            else:
                channels.subscribe(channel, self)
        self._reply(request.id, {"channels": sorted(self.channels)})
        # Every book, ticker and candles channel named gets its current state first (the
        # book's snapshot, the ticker, the open candle), also one already followed:
        # subscribing again is how a client that saw a seq gap gets back in step.
        now_ms = self.venue.now_ms()
        for channel in requested:
            if channel != "orders":
                first = channels.first_message(channel, now_ms)
                if first is not None:
                    self.send(first)

    def _unsubscribe(self, request: protocol.Unsubscribe) -> None:
        for channel in request.params.channels:
            if channel not in self.channels:
                continue
            self.channels.discard(channel)
            if channel == "orders":
                self.venue.unlisten_orders(self._participant(request.id), self)
            else:
                self.venue.channels.unsubscribe(channel, self)
        self._reply(request.id, {"channels": sorted(self.channels)})

    def _cancel_on_disconnect(self, request: protocol.CancelOnDisconnect) -> None:
        self.cancel_on_disconnect = request.params.enabled
        self._reply(request.id, {"enabled": self.cancel_on_disconnect})

    def _cancel_all_after(self, request: protocol.CancelAllAfter) -> None:
        import asyncio

        if self._dead_man is not None:
            self._dead_man.cancel()
            self._dead_man = None
        timeout_ms = request.params.timeout_ms
        if timeout_ms:
            participant_id = self._participant(request.id)

            def fire() -> None:
                self._dead_man = None
                self.venue.submit(
                    lambda ts: CancelAll(
                        ts=ts, participant_id=participant_id, reason="dead_man_switch"
                    )
                )

            self._dead_man = asyncio.get_running_loop().call_later(timeout_ms / 1000, fire)
        self._reply(request.id, {"timeout_ms": timeout_ms})

    # -- account -------------------------------------------------------------------------

    def _balances(self, request: protocol.Balances) -> None:
        scales = self.venue.scales

        def done(rows: list[tuple[str, int, int, int]]) -> None:
            if _stopped_answer(rows):
                return self._send_stopped(request.id)
            result = []
            for asset, total, available, held in rows:
                view = balance_view(
                    _Balance(asset, total, available, held),
                    scales.get(asset, 0),
                )
                del view["type"]
                result.append(view)
            self._reply(request.id, result)

        self.venue.query(BalancesQuery(self._participant(request.id)), done)

    def _open_orders(self, request: protocol.OpenOrders) -> None:
        """A page of the participant's open orders: ``{"orders": [...], "next": cursor}``,
        ``next`` the ``after_order_id`` of the next page, null on the last one."""
        params = request.params
        market = params.market
        if market is not None:
            self._market(market, request.id)
        markets = self.venue.markets

        def done(answer: tuple[list[OrderReport], int | None]) -> None:
            if _stopped_answer(answer):
                return self._send_stopped(request.id)
            orders, cursor = answer
            self._reply(
                request.id,
                {
                    "orders": [_without_type(order_view(o, markets[o.market])) for o in orders],
                    "next": cursor,
                },
            )

        query = OpenOrdersQuery(
            self._participant(request.id),
            market,
            after_order_id=params.after_order_id,
            limit=params.limit,
        )
        self.venue.query(query, done)

    # -- lookups (gateway.sessions.lookups, shared with the HTTP door) ------------------

    def _order_status(self, request: protocol.OrderStatus) -> None:
        """One of the participant's orders, open (a query, in sequence with the commands
        sent before it) or closed (the history database, read off the loop)."""
        params = request.params
        lookups.order_status(
            self.venue,
            self.gateway.history,
            self._participant(request.id),
            params.order_id,
            params.client_order_id,
            self._lookup_done(request.id),
        )

    def _orders_history(self, request: protocol.OrdersHistory) -> None:
        self._history_page(request.id, request.params, lookups.orders_history)

    def _fills_history(self, request: protocol.FillsHistory) -> None:
        self._history_page(request.id, request.params, lookups.fills_history)

    def _history_page(
        self,
        request_id: Any,
        params: protocol.HistoryParams,
        lookup: Callable[..., Coroutine[Any, Any, dict[str, Any]]],
    ) -> None:
        """Answer ``orders.history`` or ``fills.history``: a page of ``lookup``, read on the
        history database's reader thread while the loop serves other requests, so the
        answer may come after those of requests sent after it."""
        self._check_running(request_id)
        page = lookup(
            self.venue,
            self.gateway.history,
            self._participant(request_id),
            params.market,
            params.start,
            params.end,
            params.limit,
            params.cursor,
        )
        lookups.answer(page, self._lookup_done(request_id))

    def _lookup_done(self, request_id: Any) -> Callable[[dict[str, Any] | WireError], None]:
        """What answers a lookup's request when it is done (``send`` drops it once the
        connection has closed)."""

        def done(answer: dict[str, Any] | WireError) -> None:
            if isinstance(answer, WireError):
                self.send(protocol.error(request_id, answer.code, answer.message, **answer.extra))
            else:
                self._reply(request_id, answer)

        return done

    def _recent_trades(self, request: protocol.RecentTrades) -> None:
        self._check_running(request.id)
        params = request.params
        self._reply(request.id, lookups.recent_trades(self.venue, params.market, params.limit))

    def _depth(self, request: protocol.MarketDepth) -> None:
        self._check_running(request.id)
        params = request.params
        self._reply(request.id, lookups.depth(self.venue, params.market, params.limit))

    def _check_running(self, request_id: Any) -> None:
        """``VENUE_STOPPED`` once the venue has stopped, as HTTP answers 503 then: what it
        published last may never have been made durable."""
        health = self.venue.health()
        if health["status"] != "ok":
            raise WireError("VENUE_STOPPED", health["reason"], request_id)

    # -- order entry ---------------------------------------------------------------------

    def _place_command(self, params: protocol.PlaceParams, request_id: Any) -> Build:
        market = self._market(params.market, request_id)
        try:
            qty = units_of(params.qty, market.base_scale, "qty")
            price = (
                None
                if params.price is None
                else units_of(params.price, market.quote_scale, "price")
            )
        except NumberFormatError as exc:
            raise WireError(exc.code, str(exc), request_id) from None
        is_market = params.type == "market"
        if is_market and price is not None:
            raise WireError("INVALID_PARAMS", "a market order takes no `price`", request_id)
        if not is_market and price is None:
            raise WireError("INVALID_PARAMS", "a limit order needs a `price`", request_id)
        tif = TIFS[params.tif] if params.tif else (_IOC if is_market else _GTC)
        return _place_builder(
            self._participant(request_id),
            market.symbol,
            SIDES[params.side],
            qty,
            _MARKET if is_market else _LIMIT,
            price,
            tif,
            params.post_only,
            STPS[params.stp],
            params.client_order_id,
        )

    def _plain_command(self, plain: tuple[Any, ...]) -> Build:
        """The command of what ``plain_order`` read: the one ``_place_command`` or
        ``_cancel_command`` builds for the same frame (tests/test_intake.py)."""
        participant_id = self._participant(plain[1])
        if plain[0] == PLAIN_PLACE:
            _, _, market, side, qty, order_type, price, tif, post_only, stp, coid = plain
            return _place_builder(
                participant_id,
                market.symbol,
                side,
                qty,
                order_type,
                price,
                tif,
                post_only,
                stp,
                coid,
            )
        _, _, market, order_id, client_order_id = plain
        return _cancel_builder(participant_id, market.symbol, order_id, client_order_id)

    def _submit_plain(self, plain: tuple[Any, ...]) -> None:
        """Submit what ``plain_order`` read, answered as ``_place`` or ``_cancel`` answers."""
        request_id = plain[1]
        build = self._plain_command(plain)
        if plain[0] == PLAIN_PLACE:
            self.venue.submit(build, lambda reports: self._answer_place(request_id, reports))
        else:
            self.venue.submit(build, lambda reports: self._answer_change(request_id, reports))

    def _place(self, request: protocol.Place) -> None:
        build = self._place_command(request.params, request.id)
        self.venue.submit(build, lambda reports: self._answer_place(request.id, reports))

    def _answer_place(self, request_id: Any, reports: list[Report]) -> None:
        self._answer_order(request_id, self._placed(reports))

    def _answer_order(self, request_id: Any, picked: Picked | ErrorBody) -> None:
        """Answer an order request: the order written straight to bytes (``order_answer``,
        the same bytes as ``protocol.ok`` of ``order_result``), or the refusal."""
        if isinstance(picked, tuple):
            report, market, fills, after = picked
            self.send(
                order_answer(
                    request_id, report, fills, after, market.quote_scale, market.base_scale
                )
            )
        else:
            self.send(protocol.error(request_id, picked["code"], picked["message"]))

    def _place_outcome(self, reports: list[Report]) -> Outcome:
        """(accepted, result-or-error) of a place command, from its reports."""
        return _outcome(self._placed(reports))

    def _placed(self, reports: list[Report]) -> Picked | ErrorBody:
        """What a place command is answered with, from its reports."""
        if reports is STOPPED:
            return self._stopped()
        markets = self.venue.markets
        # after: a fill after ``last``, when the order's state is the fill's
        mine, last, fills, after = placed_reports(reports, self.participant_id)
        if mine is None or last is None:
            return {"code": "INTERNAL", "message": "the order was not reported"}
        order_id = mine.order_id
        if mine.status == "rejected" or order_id is None:  # only a rejected order has no id
            code = mine.reason or "INTERNAL"  # a rejection always names its code
            return {"code": code, "message": mine.message or code}
        symbol = mine.market
        market = markets[symbol]
        placed = self.placed
        placed.add((symbol, order_id))
        if len(placed) > self._prune_at and not self._pruning:
            self._forget_closed_orders()
        if last.status in ("filled", "canceled", "expired"):
            placed.discard((symbol, order_id))
        return last, market, fills, after

    def _forget_closed_orders(self) -> None:
        """Drop from ``placed`` the orders that have closed since (filled as a maker, say),
        so cancel-on-disconnect has no more to go through than what is open.

        This lists all the participant's open orders, so it must not run on every order:
        the next prune is due when ``placed`` has grown to twice what this one leaves (at
        least ``PRUNE_FLOOR``), so n orders cost O(log n) listings of at most O(n) each."""
        self._pruning = True
        self.prunes += 1
        asked = set(self.placed)

        def done(answer: tuple[list[OrderReport], int | None]) -> None:
            self._pruning = False
            if _stopped_answer(answer):
                return
            still_open = {(o.market, o.order_id) for o in answer[0]}
            self.placed -= asked - still_open  # placed meanwhile: kept
            self._prune_at = max(PRUNE_FLOOR, 2 * len(self.placed))

        self.venue.query(OpenOrdersQuery(self._participant(None)), done)

    def _batch(self, request: protocol.Batch) -> None:
        builders = self._builders(request.params.orders, self._place_command, request.id)
        self._submit_batch(request.id, builders, self._place_outcome)

    def _cancel_batch(self, request: protocol.CancelBatch) -> None:
        builders = self._builders(request.params.orders, self._cancel_command, request.id)
        self._submit_batch(request.id, builders, self._change_outcome)

    @staticmethod
    def _builders(
        items: list[Any], make: Callable[[Any, Any], Build], request_id: Any
    ) -> list[Build | WireError]:
        """A batch's commands, each item's builder or the error its own checks raised."""
        builders: list[Build | WireError] = []
        for params in items:
            try:
                builders.append(make(params, request_id))
            except WireError as exc:
                builders.append(exc)
        return builders

    def _submit_batch(
        self,
        request_id: Any,
        builders: list[Build | WireError],
        outcome: Callable[[list[Report]], Outcome],
    ) -> None:
        """Submit a batch's commands in order (an item that failed its own checks is not
        submitted); answer once every one has run, with one result or error per item."""
        results: list[Any] = [None] * len(builders)
        remaining = [sum(1 for b in builders if not isinstance(b, WireError))]

        def finish() -> None:
            self._reply(request_id, results)

        for index, build in enumerate(builders):
            if isinstance(build, WireError):
                results[index] = {
                    "ok": False,
                    "error": {"code": build.code, "message": build.message},
                }
                continue

            def done(reports: list[Report], index: int = index) -> None:
                accepted, body = outcome(reports)
                results[index] = (
                    {"ok": True, "result": body} if accepted else {"ok": False, "error": body}
                )
                remaining[0] -= 1
                if remaining[0] == 0:
                    finish()

            self.venue.submit(build, done)
        if remaining[0] == 0:
            finish()

    def _order_ref(self, params: Any, request_id: Any) -> tuple[int | None, str | None]:
        if (params.order_id is None) == (params.client_order_id is None):
            raise WireError(
                "INVALID_PARAMS", "give exactly one of `order_id` and `client_order_id`", request_id
            )
        return params.order_id, params.client_order_id

    def _cancel_command(self, params: protocol.CancelParams, request_id: Any) -> Build:
        market = self._market(params.market, request_id)
        order_id, client_order_id = self._order_ref(params, request_id)
        return _cancel_builder(
            self._participant(request_id), market.symbol, order_id, client_order_id
        )

    def _cancel(self, request: protocol.Cancel) -> None:
        build = self._cancel_command(request.params, request.id)
        self.venue.submit(build, lambda reports: self._answer_change(request.id, reports))

    def _amend(self, request: protocol.Amend) -> None:
        params = request.params
        market = self._market(params.market, request.id)
        order_id, client_order_id = self._order_ref(params, request.id)
        if params.qty is None and params.price is None:
            raise WireError("INVALID_PARAMS", "an amend needs `qty` and/or `price`", request.id)
        try:
            qty = None if params.qty is None else market.parse_qty(params.qty)
            price = None if params.price is None else market.parse_price(params.price)
        except NumberFormatError as exc:
            raise WireError(exc.code, str(exc), request.id) from None
        participant_id = self._participant(request.id)

        def build(ts: int) -> AmendOrder:
            return AmendOrder(
                ts=ts,
                participant_id=participant_id,
                market=market.symbol,
                order_id=order_id,
                client_order_id=client_order_id,
                qty=qty,
                price=price,
            )

        self.venue.submit(build, lambda reports: self._answer_change(request.id, reports))

    def _answer_change(self, request_id: Any, reports: list[Report]) -> None:
        """Answer a cancel or amend: the order's last state (with fills), or the refusal."""
        self._answer_order(request_id, self._changed(reports))

    def _change_outcome(self, reports: list[Report]) -> Outcome:
        """(accepted, result-or-error) of a cancel or amend, from its reports."""
        return _outcome(self._changed(reports))

    def _changed(self, reports: list[Report]) -> Picked | ErrorBody:
        """What a cancel or amend is answered with, from its reports."""
        if reports is STOPPED:
            return self._stopped()
        markets = self.venue.markets
        # after: a fill after ``last`` (a crossing amend), when the order's state is the fill's
        rejected, target, last, fills, after = changed_reports(reports, self.participant_id)
        if rejected is not None:
            return {"code": rejected.code, "message": rejected.message}
        if target is None or last is None:  # (last is set whenever target is)
            return {"code": "INTERNAL", "message": "the order was not reported"}
        if last.status in ("filled", "canceled", "expired"):
            self.placed.discard((last.market, target))
        return last, markets[last.market], fills, after

    def _cancel_all(self, request: protocol.CancelAllOrders) -> None:
        params = request.params
        if params.market is not None:
            self._market(params.market, request.id)
        participant_id = self._participant(request.id)
        side = None if params.side is None else SIDES[params.side]

        def build(ts: int) -> CancelAll:
            return CancelAll(ts=ts, participant_id=participant_id, market=params.market, side=side)

        def done(reports: list[Report]) -> None:
            if reports is STOPPED:
                return self._send_stopped(request.id)
            ids = [
                r.order_id
                for r in reports
                if type(r) is OrderReport
                and r.status == "canceled"
                and r.participant_id == participant_id
            ]
            for r in reports:
                if type(r) is OrderReport and r.status == "canceled":
                    self.placed.discard((r.market, r.order_id))
            self._reply(request.id, {"count": len(ids), "order_ids": ids})

        self.venue.submit(build, done)

    # -- admin ---------------------------------------------------------------------------

    def _admin_submit(self, request_id: Any, build: Callable[[int], Any]) -> None:
        def done(reports: list[Report]) -> None:
            if reports is STOPPED:
                return self._send_stopped(request_id)
            for report in reports:
                if type(report) is CommandRejected:
                    self.send(protocol.error(request_id, report.code, report.message))
                    return
            applied = [r.detail for r in reports if type(r) is AdminApplied]
            self._reply(request_id, {"applied": applied})

        self.venue.submit(build, done)

    def _admin_license(self, request: protocol.AdminLicense) -> None:
        try:
            record = license_from_mapping(request.params, "params")
        except ConfigError as exc:
            raise WireError("INVALID_PARAMS", str(exc), request.id) from None
        self._admin_submit(request.id, lambda ts: SetLicense(ts=ts, license=record))

    def _admin_participant(self, request: protocol.AdminParticipant) -> None:
        try:
            record = participant_from_mapping(request.params, "params")
        except ConfigError as exc:
            raise WireError("INVALID_PARAMS", str(exc), request.id) from None
        if record.api_public_key is not None:
            problem = check_public_key(record.api_public_key)
            if problem is not None:
                raise WireError("INVALID_PARAMS", f"params: {problem}", request.id)
        # The plaintext HMAC secret goes no further than this: the command carries it sealed.
        record = self.gateway.secret_box.seal_participant(record)
        try:
            self.venue.registry.with_participant(record)
        except ConfigError as exc:
            raise WireError("INVALID_PARAMS", str(exc), request.id) from None
        self._admin_submit(request.id, lambda ts: SetParticipant(ts=ts, participant=record))

    def _admin_funds(self, request: protocol.AdminDeposit | protocol.AdminWithdraw) -> None:
        params = request.params
        scale = self.venue.scales.get(params.asset)
        if scale is None:
            raise WireError("UNKNOWN_ASSET", f"no asset {params.asset!r} is traded", request.id)
        try:
            amount = parse_units(params.amount, scale, field="amount")
        except NumberFormatError as exc:
            raise WireError(exc.code, str(exc), request.id) from None
        command = Deposit if type(request) is protocol.AdminDeposit else Withdraw
        self._admin_submit(
            request.id,
            lambda ts: command(
                ts=ts, participant_id=params.participant_id, asset=params.asset, amount=amount
            ),
        )

    def _admin_market(self, request: protocol.AdminMarket) -> None:
        params = request.params
        market = self._market(params.market, request.id)
        try:
            reference = (
                None
                if params.reference_price is None
                else market.parse_price(params.reference_price)
            )
        except NumberFormatError as exc:
            raise WireError(exc.code, str(exc), request.id) from None
        self._admin_submit(
            request.id,
            lambda ts: SetMarket(
                ts=ts, market=market.symbol, status=params.status, reference_price=reference
            ),
        )


Gateway.session_type = Session


class _Balance:
    """A balance row shaped like a BalanceReport for ``balance_view``."""

    __slots__ = ("asset", "available", "held", "total")

    def __init__(self, asset: str, total: int, available: int, held: int) -> None:
        self.asset, self.total, self.available, self.held = asset, total, available, held


def _ms(seconds: float) -> int:
    """A wait in seconds as whole milliseconds, rounded up (at least 1)."""
    return max(1, int(seconds * 1000) + 1)


def _without_type(view: dict[str, Any]) -> dict[str, Any]:
    view.pop("type", None)
    return view


_HANDLERS: dict[type, Callable[[Session, Any], None]] = {
    protocol.Login: Session._login,
    protocol.AdminLogin: Session._admin_login,
    protocol.MarketsList: Session._markets,
    protocol.Place: Session._place,
    protocol.Cancel: Session._cancel,
    protocol.Amend: Session._amend,
    protocol.CancelAllOrders: Session._cancel_all,
    protocol.Batch: Session._batch,
    protocol.CancelBatch: Session._cancel_batch,
    protocol.OpenOrders: Session._open_orders,
    protocol.OrderStatus: Session._order_status,
    protocol.OrdersHistory: Session._orders_history,
    protocol.FillsHistory: Session._fills_history,
    protocol.RecentTrades: Session._recent_trades,
    protocol.MarketDepth: Session._depth,
    protocol.Balances: Session._balances,
    protocol.CancelOnDisconnect: Session._cancel_on_disconnect,
    protocol.CancelAllAfter: Session._cancel_all_after,
    protocol.Subscribe: Session._subscribe,
    protocol.Unsubscribe: Session._unsubscribe,
    protocol.Ping: Session._ping,
    protocol.Health: Session._health,
    protocol.AdminLicense: Session._admin_license,
    protocol.AdminParticipant: Session._admin_participant,
    protocol.AdminDeposit: Session._admin_funds,
    protocol.AdminWithdraw: Session._admin_funds,
    protocol.AdminMarket: Session._admin_market,
}

# Per request type, what ``on_frame`` needs, in one lookup: (handler, public: no login
# needed, admin: an admin login needed).
_DISPATCH: dict[type, tuple[Callable[[Session, Any], None], bool, bool]] = {
    kind: (handler, METHOD_OF[kind] in PUBLIC_METHODS, METHOD_OF[kind].startswith("admin."))
    for kind, handler in _HANDLERS.items()
}
