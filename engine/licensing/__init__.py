"""Licensing and pre-trade compliance: the registry, the regime profiles and the check chain.

Sans-I/O apart from reading configuration files: nothing here reads a clock (time comes in as
``ts``, ms since the epoch), and every amount is an integer (tiyn for KZT).  Typical use by the
exchange::

    registry = load_registry(path)            # licences and participants
    chain = load_chain(path)                  # [checks]: profile, disabled, order, extra
    ctx = OrderContext(ts=..., profile=chain.profile, registry=registry, ...)
    decision = chain.evaluate(ctx)            # Decision(accepted, check, code, message)

Modules, one job each: ``records`` (License, Participant, ParticipantLimits), ``registry``
(Registry and its TOML loader), ``profiles`` (ALATAU, NBK, AFSA), ``context`` (OrderContext,
ParticipantUsage), ``checks`` (the built-in checks), ``chain`` (CheckChain, Decision).
Errors: ``ConfigError`` for configuration, ``CustomCheckError`` (an ``EngineError``) for a
custom check that returns something invalid.
"""

from .chain import (
    ACCEPTED,
    REQUIRED_CHECKS,
    ChainPlan,
    CheckChain,
    CustomCheckError,
    Decision,
    chain_from_toml,
    load_chain,
)
from .checks import BUILTIN_CHECKS, STATIC_CHECKS, Check, StaticWhen
from .context import OrderContext, ParticipantUsage
from .profiles import (
    AFSA,
    ALATAU,
    BUILTIN_CHECK_IDS,
    NBK,
    PROFILES,
    CategoryRules,
    Profile,
    get_profile,
)
from .records import License, Participant, ParticipantLimits, activity_for
from .registry import (
    Registry,
    license_from_mapping,
    limits_from_mapping,
    load_registry,
    participant_from_mapping,
    registry_from_toml,
)

__all__ = [
    "ACCEPTED",
    "AFSA",
    "ALATAU",
    "BUILTIN_CHECKS",
    "BUILTIN_CHECK_IDS",
    "NBK",
    "PROFILES",
    "REQUIRED_CHECKS",
    "STATIC_CHECKS",
    "CategoryRules",
    "ChainPlan",
    "Check",
    "CheckChain",
    "CustomCheckError",
    "Decision",
    "License",
    "OrderContext",
    "Participant",
    "ParticipantLimits",
    "ParticipantUsage",
    "Profile",
    "Registry",
    "StaticWhen",
    "activity_for",
    "chain_from_toml",
    "get_profile",
    "license_from_mapping",
    "limits_from_mapping",
    "load_chain",
    "load_registry",
    "participant_from_mapping",
    "registry_from_toml",
]
