"""Licensing records and the registry: the shipped demo venue, TOML loading and its errors."""

from __future__ import annotations

import msgspec
import pytest

from engine.errors import ConfigError
from engine.licensing import (
    License,
    Participant,
    ParticipantLimits,
    Registry,
    license_from_mapping,
    load_registry,
    participant_from_mapping,
    registry_from_toml,
)
from engine.licensing.records import DEFAULT_RETAIL_MONTHLY_CAP, activity_for, day_start_ms

KZT = 100


# -- the shipped demo venue -------------------------------------------------------------------


def test_the_shipped_venue_licence_covers_every_market_to_2030() -> None:
    """The default registry's venue licence is an active NBK licence for "*", 2026..2030."""
    registry = load_registry()
    venue = registry.venue_license
    assert (venue.license_id, venue.regulator, venue.status) == ("ALATAU-VENUE", "NBK", "ACTIVE")
    assert venue.markets == "*"
    assert (venue.valid_from, venue.valid_to) == ("2026-01-01", "2030-12-31")
    assert venue.covers_activity("trading")


def test_the_shipped_participants_are_the_demo_cast() -> None:
    """mm1, alice, bob and broker1 have the categories, licences and keys the docs promise."""
    registry = load_registry()
    cast = {p.participant_id: p for p in registry.participants.values()}
    assert {pid: p.category for pid, p in cast.items()} == {
        "mm1": "MARKET_MAKER",
        "alice": "RETAIL",
        "bob": "PROFESSIONAL",
        "broker1": "BROKER",
    }
    alice = cast["alice"]
    assert (alice.residency, alice.kyc_level, alice.appropriateness_passed) == ("KZ", 2, False)
    assert alice.limits.retail_monthly_cap == 515_000 * KZT
    assert registry.license_for(alice) is registry.venue_license
    assert registry.license_for(cast["bob"]) is registry.venue_license
    mm_licence = registry.license_for(cast["mm1"])
    assert mm_licence is not None and mm_licence.markets == "*"
    broker_licence = registry.license_for(cast["broker1"])
    assert broker_licence is not None
    assert broker_licence.markets == ("BTC-KZT", "ETH-KZT")
    for participant in cast.values():
        assert participant.api_key and participant.api_key.startswith("demo-")
        assert registry.participant_by_api_key(participant.api_key) is participant
    assert registry.participant_by_api_key("nope") is None
    assert registry.license_for(None) is None


def test_secrets_are_masked_in_repr() -> None:
    """A participant's repr shows its api key but never its secret."""
    carol = _participant(api_key="carol-key-1", api_secret="carol-s3cret")
    assert "carol-s3cret" not in repr(carol)
    assert "api_secret='***'" in repr(carol)


def test_the_demo_participants_have_ed25519_public_keys() -> None:
    """The shipped venue registers public keys only: no secret in the file."""
    for participant in load_registry().participants.values():
        assert participant.api_secret is None and participant.api_secret_sealed is None
        assert participant.api_public_key is not None and len(participant.api_public_key) == 64


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"api_key": "carol-key-1"}, "api_key needs exactly one credential"),
        (
            {"api_key": "carol-key-1", "api_secret": "carol-s3cret", "api_public_key": "a" * 64},
            "api_key needs exactly one credential",
        ),
        ({"api_public_key": "a" * 64}, "a credential without an api_key"),
        ({"api_key": "carol-key-1", "api_public_key": "A" * 64}, "64 hex characters"),
        ({"api_key": "carol-key-1", "api_public_key": "ab" * 16}, "64 hex characters"),
        ({"api_key": "carol-key-1", "api_secret_sealed": ""}, "must be a non-empty string"),
    ],
)
def test_participant_credentials(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _participant(**changes)


def test_participant_from_mapping_takes_a_public_key_in_either_case() -> None:
    record = participant_from_mapping(
        {
            "participant_id": "dave",
            "category": "RETAIL",
            "residency": "KZ",
            "kyc_level": 1,
            "api_key": "dave-key-1",
            "api_public_key": "AB" * 32,
        }
    )
    assert record.api_public_key == "ab" * 32


# -- licences ---------------------------------------------------------------------------------


def _licence(**changes) -> License:
    fields = {
        "license_id": "L1",
        "regulator": "AFSA",
        "number": "AFSA-1",
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
    }
    return License(**{**fields, **changes})


def test_licence_bounds_are_almaty_days() -> None:
    """valid_from starts at 00:00 UTC+5; the licence ends at 24:00 UTC+5 of valid_to."""
    lic = _licence()
    assert lic.valid_from_ms == 1_767_207_600_000  # 2025-12-31T19:00:00Z
    assert lic.valid_until_ms == 1_798_743_600_000  # 2026-12-31T19:00:00Z
    assert not lic.is_valid_at(lic.valid_from_ms - 1)
    assert lic.is_valid_at(lic.valid_from_ms)
    assert lic.is_valid_at(lic.valid_until_ms - 1)
    assert not lic.is_valid_at(lic.valid_until_ms)
    assert day_start_ms("1970-01-02") == 86_400_000 - 5 * 3_600_000


def test_a_licence_is_active_only_when_active_and_in_date() -> None:
    """is_active_at needs the ACTIVE status and a ts within the dates."""
    ts = day_start_ms("2026-06-01")
    assert _licence().is_active_at(ts)
    assert not _licence(status="SUSPENDED").is_active_at(ts)
    assert not _licence().is_active_at(day_start_ms("2027-01-01"))


def test_scope_star_covers_everything() -> None:
    """ "*" covers any market and activity; a list covers what it names."""
    assert _licence().covers_market("XRP-KZT") and _licence().covers_activity("brokerage")
    narrow = _licence(markets=("BTC-KZT",), activities=("trading",))
    assert narrow.covers_market("BTC-KZT") and not narrow.covers_market("ETH-KZT")
    assert narrow.covers_activity("trading") and not narrow.covers_activity("market_making")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"regulator": "FCA"}, "regulator must be one of NBK, AFSA, not 'FCA'"),
        ({"status": "active"}, "status must be one of ACTIVE, SUSPENDED, REVOKED"),
        ({"number": " "}, "number must be a non-empty string"),
        ({"valid_from": "2026-13-01"}, "valid_from"),
        ({"valid_from": "20260101"}, "is not an ISO date"),
        ({"valid_to": "2025-12-31"}, "valid_to 2025-12-31 is before valid_from 2026-01-01"),
        ({"activities": ("trading", "custody")}, "activities must be one of"),
        ({"activities": ()}, "non-empty list"),
        ({"markets": ("btc-kzt",)}, "is not a market such as BTC-KZT"),
        ({"markets": ("BTC-KZT", "BTC-KZT")}, "lists a name twice"),
        ({"license_id": "bad id"}, "license_id 'bad id'"),
    ],
)
def test_bad_licences_are_config_errors(changes: dict, match: str) -> None:
    """Every invalid licence field is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match=match):
        _licence(**changes)


# -- participants -----------------------------------------------------------------------------


def _participant(**changes) -> Participant:
    fields = {"participant_id": "p1", "category": "RETAIL", "residency": "KZ", "kyc_level": 1}
    return Participant(**{**fields, **changes})


def test_participant_defaults() -> None:
    """A new participant is active, untested, with the default retail cap and no limits."""
    p = _participant()
    assert (p.status, p.appropriateness_passed, p.license_id) == ("active", False, None)
    assert p.limits == ParticipantLimits()
    assert p.limits.retail_monthly_cap == DEFAULT_RETAIL_MONTHLY_CAP == 51_500_000
    assert p.limits.retail_monthly_cap_tested is None


def test_each_category_has_its_activity() -> None:
    """Market makers need market_making, brokers brokerage, the others trading."""
    assert [activity_for(c) for c in ("RETAIL", "PROFESSIONAL", "MARKET_MAKER", "BROKER")] == [
        "trading",
        "trading",
        "market_making",
        "brokerage",
    ]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"category": "WHALE"}, "category must be one of RETAIL"),
        ({"status": "closed"}, "status must be one of active, suspended, frozen"),
        ({"residency": "kz"}, "residency 'kz' must be an ISO 3166"),
        ({"kyc_level": 4}, "kyc_level must be 0, 1, 2 or 3, not 4"),
        ({"kyc_level": True}, "kyc_level must be 0, 1, 2 or 3"),
        ({"appropriateness_passed": 1}, "appropriateness_passed must be true or false"),
        ({"category": "BROKER"}, "a BROKER trades under its own licence: set license_id"),
        ({"license_id": "L1"}, "a RETAIL client trades under the venue's licence"),
        ({"api_key": "short", "api_secret": "long-enough"}, "api_key must be a string of"),
        ({"api_key": "long-enough"}, "api_key needs exactly one credential"),
        ({"limits": {"max_open_orders": 1}}, "limits must be a ParticipantLimits"),
        ({"participant_id": ""}, "participant_id ''"),
    ],
)
def test_bad_participants_are_config_errors(changes: dict, match: str) -> None:
    """Every invalid participant field is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match=match):
        _participant(**changes)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"max_open_orders": -1}, "max_open_orders must be a non-negative integer, not -1"),
        ({"daily_notional": 1.5}, "daily_notional must be a non-negative integer"),
        ({"retail_monthly_cap": None}, "retail_monthly_cap must be a non-negative integer"),
        ({"max_order_notional": True}, "max_order_notional must be a non-negative integer"),
    ],
)
def test_bad_limits_are_config_errors(changes: dict, match: str) -> None:
    """Limits are non-negative integers (tiyn or counts) or None; never floats or bools."""
    with pytest.raises(ConfigError, match=match):
        ParticipantLimits(**changes)


# -- the registry, copy-on-write --------------------------------------------------------------


def test_with_participant_returns_a_new_registry() -> None:
    """with_participant leaves the old registry as it was."""
    old = load_registry()
    alice = old.participant("alice")
    assert alice is not None
    new = old.with_participant(msgspec.structs.replace(alice, status="suspended"))
    assert old.participant("alice") is alice
    new_alice = new.participant("alice")
    assert new_alice is not None and new_alice.status == "suspended"
    carol = _participant(participant_id="carol", api_key="carol-key-1", api_secret="carol-s3cret")
    newer = new.with_participant(carol)
    assert newer.participant("carol") is carol and new.participant("carol") is None
    assert len(newer.participants) == len(old.participants) + 1


def test_an_api_key_change_moves_the_lookup() -> None:
    """Replacing a participant's api_key frees the old key and indexes the new one."""
    old = load_registry()
    alice = old.participant("alice")
    assert alice is not None
    new = old.with_participant(msgspec.structs.replace(alice, api_key="alice-rotated-key"))
    assert new.participant_by_api_key("demo-alice-key") is None
    assert new.participant_by_api_key("alice-rotated-key") == new.participant("alice")
    assert old.participant_by_api_key("demo-alice-key") is alice


def test_with_participant_refuses_a_taken_api_key_or_a_missing_licence() -> None:
    """Another participant's api_key or an unknown licence is a ConfigError; nothing changes."""
    registry = load_registry()
    bob = registry.participant("bob")
    assert bob is not None
    with pytest.raises(ConfigError, match="already used by participant alice"):
        registry.with_participant(msgspec.structs.replace(bob, api_key="demo-alice-key"))
    broker = _participant(participant_id="b2", category="BROKER", license_id="NOPE")
    with pytest.raises(ConfigError, match="licence 'NOPE' is unknown"):
        registry.with_participant(broker)
    assert registry.participant("bob") is bob


def test_with_license_replaces_a_licence() -> None:
    """with_license replaces the licence of the same id in a new registry."""
    old = load_registry()
    revoked = msgspec.structs.replace(old.venue_license, status="REVOKED")
    new = old.with_license(revoked)
    assert new.venue_license.status == "REVOKED"
    assert old.venue_license.status == "ACTIVE"
    added = new.with_license(_licence(license_id="NEW-1"))
    assert added.license("NEW-1") is not None and new.license("NEW-1") is None


def test_registry_invariants_hold_on_construction() -> None:
    """A missing venue licence and duplicate ids are ConfigErrors."""
    lic = _licence()
    with pytest.raises(ConfigError, match="venue licence 'X' is not among"):
        Registry("X", [lic])
    with pytest.raises(ConfigError, match="licence L1 is defined twice"):
        Registry("L1", [lic, lic])
    with pytest.raises(ConfigError, match="participant p1 is defined twice"):
        Registry("L1", [lic], [_participant(), _participant()])


# -- TOML -------------------------------------------------------------------------------------

VENUE = """
[venue]
license_id = "V"

[[licenses]]
license_id = "V"
regulator = "AFSA"
number = "AFSA-V-1"
valid_from = "2026-01-01"
valid_to = "2027-12-31"

[[licenses]]
license_id = "MM"
regulator = "NBK"
number = "NBK-MM-9"
activities = ["market_making"]
markets = ["BTC-KZT"]
valid_from = 2026-03-01
valid_to = 2026-12-31
status = "SUSPENDED"

[[participants]]
participant_id = "carol"
category = "RETAIL"
residency = "UZ"
kyc_level = 1
appropriateness_passed = true
api_key = "carol-key-1"
api_secret = "carol-secret-1"
[participants.limits]
max_order_notional = "100000.50"
daily_notional = "250000"
max_open_orders = 10
retail_monthly_cap = "515000.00"
retail_monthly_cap_tested = "1000000.00"

[[participants]]
participant_id = "dan"
category = "MARKET_MAKER"
residency = "KZ"
kyc_level = 3
license_id = "MM"
"""


def test_a_venue_file_loads(tmp_path) -> None:
    """A venue file in tmp_path loads with amounts in tiyn and TOML dates as ISO strings."""
    path = tmp_path / "venue.toml"
    path.write_text(VENUE, encoding="utf-8")
    registry = load_registry(path)
    assert registry.venue_license.number == "AFSA-V-1"
    assert registry.venue_license.activities == "*"
    mm = registry.license("MM")
    assert mm is not None
    assert (mm.valid_from, mm.valid_to, mm.status) == ("2026-03-01", "2026-12-31", "SUSPENDED")
    carol = registry.participant("carol")
    assert carol is not None
    assert carol.limits == ParticipantLimits(
        max_order_notional=10_000_050,
        daily_notional=25_000_000,
        max_open_orders=10,
        retail_monthly_cap=51_500_000,
        retail_monthly_cap_tested=100_000_000,
    )
    dan = registry.participant("dan")
    assert dan is not None and registry.license_for(dan) is mm
    assert dan.limits == ParticipantLimits()


def _edit(old: str, new: str) -> str:
    assert old in VENUE, old
    return VENUE.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (VENUE + "\n[extra]\n", "unknown top-level keys extra"),
        (_edit('[venue]\nlicense_id = "V"', "[venue]"), r"\[venue\]: missing license_id"),
        (_edit('[venue]\nlicense_id = "V"', '[venue]\nlicense_id = "V"\nname = "x"'), "name"),
        (_edit('[venue]\nlicense_id = "V"', '[venue]\nlicense_id = "W"'), "'W' is not among"),
        (_edit('regulator = "AFSA"', 'regulator = "SEC"'), "licence V: regulator must be one"),
        (_edit('status = "SUSPENDED"', 'status = "PAUSED"'), "licence MM: status must be"),
        (_edit('number = "AFSA-V-1"', 'number = "AFSA-V-1"\nscope = 1'), "unknown keys scope"),
        (_edit('number = "AFSA-V-1"\n', ""), "licence V: missing number"),
        (_edit('markets = ["BTC-KZT"]', 'markets = "BTC-KZT"'), 'markets must be "\\*" or a'),
        (_edit('activities = ["market_making"]', 'activities = ["mm"]'), "activities must be"),
        (_edit('valid_to = "2027-12-31"', 'valid_to = "31.12.2027"'), "is not an ISO date"),
        (_edit('valid_to = "2027-12-31"', "valid_to = 2027-12-31T00:00:00"), "must be a date"),
        (_edit('license_id = "MM"\nregulator', 'license_id = "V"\nregulator'), "V is defined tw"),
        (_edit('category = "RETAIL"', 'category = "retail"'), "category must be one of"),
        (_edit('residency = "UZ"', 'residency = "UZB"'), "residency 'UZB' must be an ISO"),
        (_edit("kyc_level = 1", "kyc_level = 5"), "kyc_level must be 0, 1, 2 or 3, not 5"),
        (_edit("kyc_level = 1", 'kyc_level = "1"'), "kyc_level must be an integer"),
        (_edit("kyc_level = 1", "kyc_level = 1\nstatus = 'gone'"), "status must be one of"),
        (_edit("kyc_level = 1", "kyc_level = 1\nnickname = 'c'"), "unknown keys nickname"),
        (
            _edit('kyc_level = 3\nlicense_id = "MM"', 'kyc_level = 3\nlicense_id = "MX"'),
            "'MX' is unknown",
        ),
        (_edit('participant_id = "dan"', 'participant_id = "carol"'), "carol is defined twice"),
        (
            _edit(
                'kyc_level = 3\nlicense_id = "MM"',
                'kyc_level = 3\nlicense_id = "MM"\n'
                'api_key = "carol-key-1"\napi_secret = "another-secret"',
            ),
            "already used by",
        ),
        (_edit('daily_notional = "250000"', "daily_notional = 250000.0"), "is a TOML float"),
        (_edit('daily_notional = "250000"', "daily_notional = 250000"), "must be a KZT decimal"),
        (_edit('daily_notional = "250000"', 'daily_notional = "250000.001"'), "more than 2"),
        (_edit('daily_notional = "250000"', 'daily_notional = "-1"'), "not a plain decimal"),
        (_edit("max_open_orders = 10", "max_open_orders = -1"), "max_open_orders must be a non"),
        (_edit("max_open_orders = 10", 'max_open_orders = "10"'), "must be an integer"),
        (_edit("max_open_orders = 10", "max_orders = 10"), "limits: unknown keys max_orders"),
        (_edit("appropriateness_passed = true", 'appropriateness_passed = "yes"'), "true or fa"),
        (
            _edit('kyc_level = 3\nlicense_id = "MM"', "kyc_level = 3"),
            "MARKET_MAKER trades under its",
        ),
        ("[venue]\nlicense_id = 'V'\n", "no licenses: write each one as a"),
        ("[venue\n", "not valid TOML"),
    ],
)
def test_bad_venue_files_are_config_errors(text: str, match: str) -> None:
    """Each problem in a venue file is a ConfigError naming the source, record and field."""
    with pytest.raises(ConfigError, match=match) as info:
        registry_from_toml(text, source="ops/venue.toml")
    assert str(info.value).startswith("ops/venue.toml: ")


def test_a_missing_venue_file_is_a_config_error(tmp_path) -> None:
    """A venue file that cannot be read is a ConfigError naming its path."""
    with pytest.raises(ConfigError, match="cannot read the venue file"):
        load_registry(tmp_path / "nope.toml")


def test_admin_params_build_the_same_records() -> None:
    """admin.license / admin.participant params (JSON-shaped) build records like the file."""
    lic = license_from_mapping(
        {
            "license_id": "AFSA-2",
            "regulator": "AFSA",
            "number": "AFSA-2",
            "markets": ["BTC-KZT"],
            "valid_from": "2026-01-01",
            "valid_to": "2026-06-30",
            "status": "ACTIVE",
        }
    )
    assert lic.activities == "*" and lic.markets == ("BTC-KZT",)
    participant = participant_from_mapping(
        {
            "participant_id": "erin",
            "category": "PROFESSIONAL",
            "residency": "KZ",
            "kyc_level": 3,
            "status": "active",
            "appropriateness_passed": False,
            "license_id": None,
            "api_key": "erin-key-123",
            "api_secret": "erin-secret-123",
            "limits": {"daily_notional": "1000000.00"},
        }
    )
    assert participant.limits.daily_notional == 1_000_000 * KZT
    with pytest.raises(ConfigError, match="participant must be a table"):
        participant_from_mapping([])  # type: ignore[arg-type]
