"""Secrets at rest, production mode and TLS: sealed HMAC secrets never reach the disk in
plaintext, the secrets key file is private, ``--production`` has no demo participants, and
the SDK logs in and trades over ``wss://`` on both transports.

The TLS certificate is generated at test time (``cryptography``), self-signed for 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import stat
import time
from pathlib import Path

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.commands import SetParticipant
from engine.errors import ConfigError
from engine.licensing import load_chain, participant_from_mapping
from gateway.app.serve import DEMO_PRIVATE_KEYS, ServeOptions, build_exchange, serve
from gateway.sdk.client import ApiError, Client
from gateway.sessions.session import Limits
from gateway.storage.datadir import Storage
from gateway.storage.sealing import (
    KEY_FILE_NAME,
    SECRETS_KEY_ENV,
    SealError,
    SecretBox,
    resolve_secret_box,
)
from gateway.wire.auth import generate_ed25519_key, sign, sign_ed25519

from .gateway_harness import ADMIN_KEY, async_test

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_VENUE = ROOT / "engine" / "licensing" / "venue.toml"
FILE_SECRET = "erin-file-secret-9f3a7c"  # an HMAC secret in an operator's venue file
ADMIN_SECRET = "carol-admin-secret-51b2e0"  # one registered with admin.participant
LEGACY_SECRET = "frank-legacy-secret-77d1"  # one journaled in plaintext by an older version


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the sealing box and its key -----------------------------------------------------------


def test_a_sealed_secret_opens_only_with_its_key_and_for_its_api_key() -> None:
    box = SecretBox.random()
    sealed = box.seal("carol-key-1", "s3cret-value")
    assert "s3cret-value" not in sealed and sealed.startswith(f"aesgcm1:{box.key_id}:")
    assert sealed != box.seal("carol-key-1", "s3cret-value")  # a fresh nonce each time
    assert box.open("carol-key-1", sealed) == "s3cret-value"
    with pytest.raises(SealError):
        box.open("mallory-key", sealed)  # the api key is the associated data
    other = SecretBox.random()
    with pytest.raises(SealError, match="sealed under secrets key"):
        other.open("carol-key-1", sealed)
    for garbage in ("", "aesgcm1", "aesgcm1:x:y", f"aesgcm1:{box.key_id}:!!!", "x:y:z"):
        with pytest.raises(SealError):
            box.open("carol-key-1", garbage)


def test_the_key_file_is_created_private_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    box = resolve_secret_box(key_file=None, data_dir=str(data_dir), environ={})
    key_file = data_dir / KEY_FILE_NAME
    assert _mode(data_dir) == 0o700 and _mode(key_file) == 0o600
    assert box.source.endswith("(created)")
    again = resolve_secret_box(key_file=None, data_dir=str(data_dir), environ={})
    assert again.key_id == box.key_id and not again.source.endswith("(created)")
    # an existing data dir that others may read is made private when the key goes in
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    resolve_secret_box(key_file=None, data_dir=str(loose), environ={})
    assert _mode(loose) == 0o700
    # a key file that others may read is refused
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve_secret_box(key_file=None, data_dir=str(data_dir), environ={})


def test_the_key_from_a_file_elsewhere_or_the_environment(tmp_path: Path) -> None:
    elsewhere = tmp_path / "keys" / "alatau.key"
    box = resolve_secret_box(key_file=str(elsewhere), data_dir=str(tmp_path / "d"), environ={})
    assert _mode(elsewhere) == 0o600 and _mode(elsewhere.parent) == 0o700
    assert not (tmp_path / "d").exists()  # nothing in the data dir
    by_env = resolve_secret_box(
        key_file=None, data_dir=None, environ={"ALATAU_SECRETS_KEY_FILE": str(elsewhere)}
    )
    assert by_env.key_id == box.key_id
    raw = resolve_secret_box(key_file=None, data_dir=None, environ={SECRETS_KEY_ENV: "ab" * 32})
    assert raw.key_id == SecretBox(bytes.fromhex("ab" * 32)).key_id
    with pytest.raises(ConfigError, match="64 hex"):
        resolve_secret_box(key_file=None, data_dir=None, environ={SECRETS_KEY_ENV: "nothex"})
    ephemeral = resolve_secret_box(key_file=None, data_dir=None, environ={})
    assert "memory" in ephemeral.source


# -- no plaintext secret on disk ---------------------------------------------------------------


def _venue_file_with_an_hmac_participant(path: Path) -> Path:
    text = SHIPPED_VENUE.read_text()
    text += f"""
[[participants]]
participant_id = "erin"
category = "PROFESSIONAL"
residency = "KZ"
kyc_level = 3
api_key = "erin-key-1"
api_secret = "{FILE_SECRET}"
"""
    path.write_text(text)
    return path


async def _serving(options: ServeOptions) -> tuple[asyncio.Task, asyncio.Event, str]:
    started: asyncio.Future = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(options, started=started, stop=stop))
    done, _ = await asyncio.wait({server, started}, timeout=30, return_when="FIRST_COMPLETED")
    if server in done:
        raise AssertionError(f"the server exited with {server.result()}")
    host, port = started.result()
    scheme = "ws" if options.tls_cert is None else "wss"
    return server, stop, f"{scheme}://{host}:{port}"


async def _stop(server: asyncio.Task, stop: asyncio.Event) -> None:
    stop.set()
    assert await asyncio.wait_for(server, 30) == 0


@pytest.mark.parametrize("engine_process", [False, True], ids=["one-process", "engine-process"])
@async_test
async def test_hmac_secrets_are_never_on_disk_in_plaintext(
    tmp_path: Path, engine_process: bool
) -> None:
    """A venue file's HMAC secret and one registered with admin.participant: both log in,
    before and after a restart, and no file of the data directory (journal, snapshots,
    audit trail) holds either in plaintext."""
    data_dir = tmp_path / "data"
    options = ServeOptions(
        port=0,
        quiet=True,
        admin_key=ADMIN_KEY,
        limits=Limits(),
        data_dir=str(data_dir),
        venue_file=str(_venue_file_with_an_hmac_participant(tmp_path / "venue.toml")),
        engine_process=engine_process,
    )
    server, stop, url = await _serving(options)
    try:
        async with Client(url) as admin:
            await admin.admin_login(ADMIN_KEY)
            await admin.call(
                "admin.participant",
                {
                    "participant_id": "carol",
                    "category": "PROFESSIONAL",
                    "residency": "KZ",
                    "kyc_level": 3,
                    "api_key": "carol-key-1",
                    "api_secret": ADMIN_SECRET,
                },
            )
            await admin.call(
                "admin.deposit", {"participant_id": "carol", "asset": "KZT", "amount": "100000"}
            )
        async with Client(url) as erin, Client(url) as carol:
            assert (await erin.login("erin-key-1", FILE_SECRET))["participant"] == "erin"
            assert (await carol.login("carol-key-1", ADMIN_SECRET))["participant"] == "carol"
            with pytest.raises(ApiError) as refused:
                async with Client(url) as other:
                    await other.login("carol-key-1", "not-the-secret")
            assert refused.value.code == "AUTH_FAILED"
    finally:
        await _stop(server, stop)
    # the restart reads the sealed secrets from the snapshot and journal, with the key file
    server, stop, url = await _serving(options)
    try:
        async with Client(url) as erin, Client(url) as carol:
            assert (await erin.login("erin-key-1", FILE_SECRET))["participant"] == "erin"
            assert (await carol.login("carol-key-1", ADMIN_SECRET))["participant"] == "carol"
    finally:
        await _stop(server, stop)
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name.startswith("snapshot") for p in files), files
    assert len(files) >= 3, files
    for path in files:
        content = path.read_bytes()
        for secret in (FILE_SECRET, ADMIN_SECRET):
            assert secret.encode() not in content, f"{secret} in plaintext in {path}"
    assert _mode(data_dir / KEY_FILE_NAME) == 0o600 and _mode(data_dir) == 0o700


# -- production ------------------------------------------------------------------------------


async def _login_code(url: str, api_key: str, private_key: str) -> str | None:
    async with Client(url) as client:
        try:
            await client.login(api_key, private_key=private_key)
        except ApiError as exc:
            return exc.code
    return None


@async_test
async def test_production_refuses_every_published_demo_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, stop, url = await _serving(
        ServeOptions(port=0, admin_key=ADMIN_KEY, limits=Limits(), production=True)
    )
    try:
        for api_key, private_key in DEMO_PRIVATE_KEYS.items():
            assert await _login_code(url, api_key, private_key) == "AUTH_FAILED", api_key
        async with Client(url) as admin:
            await admin.admin_login(ADMIN_KEY)
            with pytest.raises(ApiError) as refused:  # no demo funds, no demo participants
                await admin.call(
                    "admin.deposit", {"participant_id": "bob", "asset": "KZT", "amount": "1"}
                )
            assert refused.value.code == "PARTICIPANT_UNKNOWN"
            # the operator registers a participant, with a key of its own: it logs in
            private_key, public_key = generate_ed25519_key()
            await admin.call(
                "admin.participant",
                {
                    "participant_id": "dana",
                    "category": "PROFESSIONAL",
                    "residency": "KZ",
                    "kyc_level": 3,
                    "api_key": "dana-key-1",
                    "api_public_key": public_key,
                },
            )
        assert await _login_code(url, "dana-key-1", private_key) is None
    finally:
        await _stop(server, stop)
    out = capsys.readouterr().out
    assert "no participants" in out and "private_key=" not in out and "admin key" not in out


@async_test
async def test_the_demo_venue_has_every_demo_key_and_refuses_a_replayed_login() -> None:
    server, stop, url = await _serving(
        ServeOptions(port=0, quiet=True, admin_key=ADMIN_KEY, limits=Limits())
    )
    try:
        for api_key, private_key in DEMO_PRIVATE_KEYS.items():
            assert await _login_code(url, api_key, private_key) is None, api_key
        ts = int(time.time() * 1000) - 1_000
        frame = json.dumps(
            {
                "id": 1,
                "method": "auth.login",
                "params": {
                    "api_key": "demo-bob-key",
                    "timestamp": ts,
                    "signature": sign_ed25519(
                        DEMO_PRIVATE_KEYS["demo-bob-key"], "demo-bob-key", ts
                    ),
                },
            }
        )
        answers = []
        for _ in range(2):  # the same frame on two connections
            async with websockets.connect(url) as ws:
                await ws.send(frame)
                answers.append(json.loads(await ws.recv()))
        assert answers[0]["ok"] is True
        assert answers[1]["error"]["code"] == "AUTH_FAILED"
        assert "replayed" in answers[1]["error"]["message"]
        # a fresh timestamp logs in
        assert await _login_code(url, "demo-bob-key", DEMO_PRIVATE_KEYS["demo-bob-key"]) is None
    finally:
        await _stop(server, stop)


@async_test
async def test_production_refuses_a_data_dir_with_demo_participants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(tmp_path / "data")
    demo = ServeOptions(port=0, quiet=True, admin_key=ADMIN_KEY, data_dir=data_dir)
    server, stop, _ = await _serving(demo)
    await _stop(server, stop)
    production = ServeOptions(
        port=0, quiet=True, admin_key=ADMIN_KEY, data_dir=data_dir, production=True
    )
    assert await asyncio.wait_for(serve(production), 30) == 2
    assert "published demo keys" in capsys.readouterr().err


# -- TLS ---------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alatau test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


@pytest.mark.parametrize("transport", ["picows", "websockets"])
@async_test
async def test_the_sdk_logs_in_and_trades_over_wss(tmp_path: Path, transport: str) -> None:
    cert, key = _self_signed(tmp_path)
    options = ServeOptions(
        port=0,
        quiet=True,
        admin_key=ADMIN_KEY,
        limits=Limits(),
        transport=transport,
        tls_cert=str(cert),
        tls_key=str(key),
    )
    server, stop, url = await _serving(options)
    assert url.startswith("wss://")
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        async with Client(url, ssl=trust) as bob, Client(url, ssl=trust) as mm1:
            await bob.login("demo-bob-key", private_key=DEMO_PRIVATE_KEYS["demo-bob-key"])
            await mm1.login("demo-mm1-key", private_key=DEMO_PRIVATE_KEYS["demo-mm1-key"])
            resting = await mm1.place("USDT-KZT", "sell", "10", "515.00", post_only=True)
            taken = await bob.place("USDT-KZT", "buy", "10", "515.00", tif="IOC")
            assert taken["status"] == "filled", taken
            assert resting["status"] == "new"
        # a client that does not trust the certificate does not get in
        with pytest.raises(ssl.SSLCertVerificationError):
            async with Client(url):
                pass
    finally:
        await _stop(server, stop)


@async_test
async def test_a_tls_certificate_needs_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, _ = _self_signed(tmp_path)
    options = ServeOptions(port=0, quiet=True, admin_key=ADMIN_KEY, tls_cert=str(cert))
    assert await asyncio.wait_for(serve(options), 30) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_the_documented_login_signatures() -> None:
    """The signatures in docs/protocol.md's examples are the real ones."""
    docs = (ROOT / "docs" / "protocol.md").read_text()
    ed25519 = sign_ed25519(DEMO_PRIVATE_KEYS["demo-bob-key"], "demo-bob-key", 1_795_657_775_655)
    hmac_signature = sign("carol-secret", "carol-key", 1_795_657_775_655)
    assert len(ed25519) == 128 and ed25519 in docs
    assert len(hmac_signature) == 64 and hmac_signature in docs


@async_test
async def test_plaintext_secrets_from_older_data_are_sealed_at_start(tmp_path: Path) -> None:
    """A data directory whose journal holds a plaintext api_secret (as written before
    secrets were sealed): the server starts, the key logs in, and registers it again
    sealed, so the newest snapshot holds no plaintext."""
    data_dir = tmp_path / "data"
    storage = Storage(data_dir)
    exchange, _, _ = storage.recover(load_chain(), lambda: build_exchange(ServeOptions()))
    legacy = participant_from_mapping(
        {
            "participant_id": "frank",
            "category": "PROFESSIONAL",
            "residency": "KZ",
            "kyc_level": 3,
            "api_key": "frank-key-1",
            "api_secret": LEGACY_SECRET,
        }
    )
    command = SetParticipant(ts=int(time.time() * 1000), participant=legacy)
    storage.append(command, exchange.execute(command))
    storage.sync()
    storage.close(final_snapshot=False)
    assert any(LEGACY_SECRET.encode() in p.read_bytes() for p in data_dir.iterdir() if p.is_file())

    options = ServeOptions(port=0, quiet=True, admin_key=ADMIN_KEY, data_dir=str(data_dir))
    server, stop, url = await _serving(options)
    try:
        async with Client(url) as frank:
            assert (await frank.login("frank-key-1", LEGACY_SECRET))["participant"] == "frank"
    finally:
        await _stop(server, stop)
    newest = max(data_dir.glob("snapshot-*"))
    assert LEGACY_SECRET.encode() not in newest.read_bytes()
    server, stop, url = await _serving(options)  # and from the sealed state, it still works
    try:
        async with Client(url) as frank:
            assert (await frank.login("frank-key-1", LEGACY_SECRET))["participant"] == "frank"
    finally:
        await _stop(server, stop)
