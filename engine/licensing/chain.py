"""The check chain: a profile's checks plus the operator's options, run in order.

``CheckChain(profile, disabled=..., order=..., extra=...)`` resolves everything at
construction, so a bad option is a ``ConfigError`` when the venue starts, never a surprise on
an order.  ``evaluate(ctx)`` runs the checks in order and stops at the first that rejects.

Many checks give every order of a participant with the same market, order type and time in
force the same verdict for a day under one registry (the licence, account, jurisdiction and
permission checks, and a limit check when the participant has no such limit:
``engine.licensing.checks.STATIC_CHECKS``).  ``plan(ctx)`` runs those once and returns the
checks still to run for such orders; ``evaluate(ctx, plan=...)`` runs only those.  A check
that passes changes nothing in the outcome, so skipping it gives the same decision.

Custom checks (``extra``) are named ``"package.module:callable"`` and imported with
``importlib``; the callable is a function ``(ctx) -> Rejection | None`` or a class whose
instances are (it is created once, with no arguments).  A custom check may return any code:
keep custom codes upper-case (``[A-Z][A-Z0-9_]*``) and stable, because clients and the audit
trail see them as they are.  A custom code is not in ``engine.reject``'s table, so it has no
compact number.  A custom check that returns something other than None or a ``Rejection``
with such a code raises ``CustomCheckError``: a broken check must not decide silently.
"""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

import msgspec

from ..errors import ConfigError, EngineError
from ..markets import Rejection
from . import _config as cfg
from .checks import BUILTIN_CHECKS, STATIC_CHECKS, Check
from .context import OrderContext
from .profiles import DEFAULT_PROFILE, Profile, get_profile

__all__ = [
    "ACCEPTED",
    "REQUIRED_CHECKS",
    "ChainPlan",
    "CheckChain",
    "CustomCheckError",
    "Decision",
    "chain_from_toml",
    "load_chain",
]

REQUIRED_CHECKS: frozenset[str] = frozenset(("participant", "market_status"))
"""Built-in checks that cannot be disabled: later checks, and the exchange, need a known
participant and a known, open market."""

_CUSTOM_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CUSTOM_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_TARGET = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)")


Step = tuple[str, Check, bool]  # (check id, check, custom)

ChainPlan = tuple[Step, ...]
"""The checks of a chain still to run for one shape of order (``CheckChain.plan``)."""


class CustomCheckError(EngineError):
    """A custom check returned something other than None or a valid ``Rejection``."""


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The chain's verdict on one order, for the exchange and the audit trail."""

    accepted: bool
    check: str  # the id of the check that rejected, or "all" when accepted
    code: str | None  # the reject code, None when accepted
    message: str  # why, naming the value; "accepted" when accepted

    @property
    def rejection(self) -> Rejection | None:
        """The ``Rejection`` (code and message), or None when accepted."""
        return None if self.code is None else Rejection(self.code, self.message)


ACCEPTED = Decision(accepted=True, check="all", code=None, message="accepted")


class CheckChain:
    """A profile's built-in checks and the operator's custom ones, in their final order.

    ``profile``: a shipped profile's name ("ALATAU", "NBK", "AFSA") or a ``Profile``.
    ``disabled``: check ids to skip (``REQUIRED_CHECKS`` cannot be).
    ``order``: every enabled check id (built-in and custom), in the order to run them; by
    default the profile's order followed by the custom checks in the order given.
    ``extra``: custom checks, id -> ``"package.module:callable"`` (or the callable itself).
    Ids are lower-case snake_case and must not clash with a built-in id.

    Immutable after construction; ``evaluate`` is O(number of checks).
    """

    __slots__ = ("_custom_ids", "_profile", "_steps")

    def __init__(
        self,
        profile: str | Profile = DEFAULT_PROFILE.name,
        *,
        disabled: Iterable[str] = (),
        order: Sequence[str] | None = None,
        extra: Mapping[str, str | Callable[..., Any]] | None = None,
    ) -> None:
        self._profile = profile if isinstance(profile, Profile) else get_profile(profile)
        custom = {
            check_id: _load_custom(check_id, target) for check_id, target in (extra or {}).items()
        }
        self._custom_ids = frozenset(custom)
        ids = [*self._profile.checks, *custom]
        ids = _without(ids, disabled)
        if order is not None:
            ids = _reordered(ids, order)
        steps: list[Step] = []
        for check_id in ids:
            if check_id in custom:
                steps.append((check_id, custom[check_id], True))
            else:
                steps.append((check_id, BUILTIN_CHECKS[check_id], False))
        self._steps: ChainPlan = tuple(steps)

    @property
    def profile(self) -> Profile:
        """The profile; an ``OrderContext`` for this chain carries it as ``ctx.profile``."""
        return self._profile

    @property
    def check_ids(self) -> tuple[str, ...]:
        """The ids of the checks that run, in order."""
        return tuple(step[0] for step in self._steps)

    @property
    def custom_ids(self) -> frozenset[str]:
        """The ids of the custom checks (whether or not they run)."""
        return self._custom_ids

    def evaluate(self, ctx: OrderContext, *, plan: ChainPlan | None = None) -> Decision:
        """The decision on ``ctx``: the first check that rejects it, or ``ACCEPTED``.

        ``plan``: what ``plan`` returned for an order of the same participant, market, order
        type and time in force on the same Almaty day under the same registry; only its
        checks run.  None runs every check.

        ``EngineError`` if ``ctx.profile`` is not this chain's profile (the checks would
        read the wrong parameters); ``CustomCheckError`` if a custom check misbehaves.
        Exceptions a check raises propagate: they are bugs, not decisions.
        """
        if ctx.profile is not self._profile:
            self._check_profile(ctx)
        for check_id, check, custom in self._steps if plan is None else plan:
            rejection = check(ctx)
            if rejection is not None:
                if custom:
                    _check_custom_result(check_id, rejection)
                return Decision(
                    accepted=False, check=check_id, code=rejection.code, message=rejection.message
                )
        return ACCEPTED

    def plan(self, ctx: OrderContext) -> ChainPlan:
        """The checks still to run for orders like ``ctx``: those whose verdict is not static
        for its participant (``STATIC_CHECKS``; custom checks never are), once the static
        ones have passed ``ctx``.  Every check when one of them rejects ``ctx`` or the
        participant is unknown, so that the first rejection in the chain's order is reported.

        The plan holds for every order of the same participant, market, order type and time
        in force on the same Almaty day under the same registry: the caller keeps it and
        passes it to ``evaluate``.  O(number of checks).
        """
        if ctx.profile is not self._profile:
            self._check_profile(ctx)
        participant = ctx.participant
        if participant is None:
            return self._steps
        static: list[Step] = []
        for step in self._steps:
            when = None if step[2] else STATIC_CHECKS.get(step[0])
            if when is not None and when(participant, self._profile):
                static.append(step)
        if any(check(ctx) is not None for _, check, _ in static):
            return self._steps
        return tuple(step for step in self._steps if step not in static)

    def _check_profile(self, ctx: OrderContext) -> None:
        """``EngineError`` unless ``ctx.profile`` equals the chain's (the caller has seen it
        is not the same object, which is the common case's test)."""
        if ctx.profile != self._profile:
            raise EngineError(
                f"the order context carries profile {ctx.profile.name}, "
                f"the chain runs {self._profile.name}: build it with profile=chain.profile"
            )

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        return f"CheckChain({self._profile.name!r}, checks={list(self.check_ids)})"


def _without(ids: list[str], disabled: Iterable[str]) -> list[str]:
    if isinstance(disabled, str):
        raise ConfigError(f"disabled must be a list of check ids, not the string {disabled!r}")
    disabled = list(disabled)
    for check_id in disabled:
        if check_id not in ids:
            raise ConfigError(f"cannot disable {check_id!r}: no such check ({_known(ids)})")
        if check_id in REQUIRED_CHECKS:
            raise ConfigError(
                f"the check {check_id!r} cannot be disabled: the later checks and the book "
                "need a known participant and market"
            )
    return [check_id for check_id in ids if check_id not in disabled]


def _reordered(ids: list[str], order: Sequence[str]) -> list[str]:
    if isinstance(order, str):
        raise ConfigError(f"order must be a list of check ids, not the string {order!r}")
    order = list(order)
    for check_id in order:
        if check_id not in ids:
            raise ConfigError(
                f"order names {check_id!r}, which is not an enabled check ({_known(ids)})"
            )
    if len(set(order)) != len(order):
        twice = sorted({c for c in order if order.count(c) > 1})
        raise ConfigError(f"order names {', '.join(twice)} more than once")
    missing = [check_id for check_id in ids if check_id not in order]
    if missing:
        raise ConfigError(
            f"order leaves out {', '.join(missing)}: list every enabled check, "
            "or disable the ones you do not want"
        )
    return order


def _known(ids: Iterable[str]) -> str:
    return "known: " + ", ".join(ids)


def _load_custom(check_id: object, target: object) -> Check:
    """Resolve one custom check: validate its id, import its target, make it a callable."""
    if not isinstance(check_id, str) or _CUSTOM_ID.fullmatch(check_id) is None:
        raise ConfigError(
            f"custom check id {check_id!r} must be lower-case snake_case, such as no_fridays"
        )
    if check_id in BUILTIN_CHECKS or check_id == ACCEPTED.check:
        raise ConfigError(f"custom check id {check_id!r} is taken by a built-in check")
    where = f"custom check {check_id}"
    obj = _import_target(where, target) if isinstance(target, str) else target
    if inspect.isclass(obj):
        cls = obj
        try:
            obj = cls()
        except TypeError as exc:
            raise ConfigError(
                f"{where}: cannot create {cls.__name__}() with no arguments: {exc}"
            ) from exc
    if not callable(obj):
        raise ConfigError(f"{where}: {target!r} is not callable")
    try:
        inspect.signature(obj).bind(None)
    except TypeError:
        raise ConfigError(f"{where}: {target!r} must take one argument, the OrderContext") from None
    except ValueError:  # no signature available (some builtins): trust it
        pass
    # A callable that takes one argument is all that can be checked before it runs; that
    # it returns a Rejection or None is its author's promise (as for any Check).
    return cast(Check, obj)


def _import_target(where: str, target: str) -> Any:
    match = _TARGET.fullmatch(target)
    if match is None:
        raise ConfigError(f'{where}: {target!r} is not "package.module:callable"')
    module_name, attr_path = match.groups()
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r}: {exc}") from exc
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ConfigError(f"{where}: {module_name} has no {attr_path!r}") from None
    return obj


def _check_custom_result(check_id: str, result: object) -> None:
    if not isinstance(result, Rejection):
        raise CustomCheckError(
            f"custom check {check_id} returned {result!r}: return None or a Rejection"
        )
    if not isinstance(result.code, str) or _CUSTOM_CODE.fullmatch(result.code) is None:
        raise CustomCheckError(
            f"custom check {check_id} returned the code {result.code!r}: codes are upper-case "
            "letters, digits and _, such as NO_TRADING_ON_FRIDAYS"
        )
    if not isinstance(result.message, str):
        raise CustomCheckError(f"custom check {check_id} returned a message that is not a str")


# -- loading --------------------------------------------------------------------------------------

_CHECKS_KEYS = frozenset(("profile", "disabled", "order", "extra"))


def load_chain(path: str | Path | None = None) -> CheckChain:
    """The chain of a venue file's ``[checks]`` table; None reads the shipped ``venue.toml``.

    A file without ``[checks]`` gets the default chain (the ALATAU profile, all checks).
    """
    if path is None:
        text = resources.files(__package__).joinpath("venue.toml").read_text(encoding="utf-8")
        return chain_from_toml(text, source="engine/licensing/venue.toml")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the venue file {path}: {exc}") from exc
    return chain_from_toml(text, source=str(path))


def chain_from_toml(text: str, *, source: str = "<string>") -> CheckChain:
    """The chain of a TOML document's ``[checks]`` table (``load_chain`` without the file)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _chain_from_table(document.get("checks", {}))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _chain_from_table(value: object) -> CheckChain:
    data = cfg.table(value, "[checks]")
    cfg.check_keys(data, "[checks]", frozenset(), _CHECKS_KEYS)
    profile = cfg.string(data, "profile", "[checks]") if "profile" in data else "ALATAU"
    disabled = cfg.names(data, "disabled", "[checks]", star=False) if "disabled" in data else ()
    order = cfg.names(data, "order", "[checks]", star=False) if "order" in data else None
    extra = cfg.table(data.get("extra", {}), "[checks.extra]")
    for check_id in extra:
        cfg.string(extra, check_id, "[checks.extra]")
    try:
        return CheckChain(profile, disabled=disabled, order=order, extra=extra)
    except ConfigError as exc:
        raise ConfigError(f"[checks]: {exc}") from None
