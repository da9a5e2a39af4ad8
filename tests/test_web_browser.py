"""The trading page in a real browser: Playwright driving Debian's Chromium
(``/usr/bin/chromium``, which ``.ci/run`` installs; no browser is ever downloaded) against a
live ``alatau demo`` (its bots quote and trade USDT-KZT).

The page shows the demo market's book and trades filling in; a participant logs in with an
Ed25519 key signed in the page, places an order and sees it in open orders and in the book,
cancels it, sees a reject with the server's message, and sees a trade with an order from
another client (the Python SDK) arrive in the trades, its fills and its balances; and a page
whose server restarts connects and logs in again by itself, and one that loses a book update
resyncs.  Screenshots
at desktop and phone width go to ``test-artifacts/`` (ignored by git).

Without ``/usr/bin/chromium`` the tests are skipped, except in CI (``CI`` set), where that is
a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.app.serve import DEMO_PRIVATE_KEYS
from gateway.cluster.nodes import free_port
from gateway.sdk.client import Client

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000
BTC = "BTC-KZT"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI: .ci/run installs it)")
    pytest.skip(reason, allow_module_level=True)


if not CHROMIUM.exists():
    _missing(f"{CHROMIUM} is not installed: apt-get install chromium")
try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:
    _missing("playwright is not installed: pip install -e '.[test]'")


@dataclass
class Demo:
    page_url: str
    ws_url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """``alatau demo`` in a process of its own, on free ports; its output is drained (it
    prints every trade) and kept for the failure message."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.app.cli", "demo", "--duration", "600"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    page_url = ws_url = None
    for line in process.stdout:
        output.append(line)
        if found := re.search(r"on (ws://\S+);", line):
            ws_url = found[1]
        if found := re.search(r"in a browser: (http://\S+)", line):
            page_url = found[1]
            break
    assert page_url is not None and ws_url is not None, "".join(output)
    stdout = process.stdout
    drain = threading.Thread(target=lambda: output.extend(stdout), daemon=True)
    drain.start()
    yield Demo(page_url, ws_url, process, output)
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(timeout=30) == 0, "".join(output[-30:])
    finally:
        if process.poll() is None:
            process.kill()
    drain.join(timeout=5)
    assert not any("a bot failed" in line for line in output), "".join(output[-30:])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, demo: Demo) -> Iterator[Page]:
    """One page for the whole story, opened on the demo market; the errors it logs (a
    script error, a refused connection, a content-security-policy violation) fail it."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    opened.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    opened.goto(demo.page_url)
    yield opened
    context.close()
    assert errors == []


def _rows(page: Page, table: str) -> Any:
    return page.get_by_role("table", name=table).locator(
        "tbody tr[data-price], tbody tr[data-trade-id]"
    )


def _other_client(ws_url: str, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    """Demo bob's orders from the Python SDK, in a thread of its own (Playwright's sync API
    holds this one's event loop)."""

    async def run() -> list[Any]:
        async with Client(ws_url) as client:
            await client.login("demo-bob-key", private_key=DEMO_PRIVATE_KEYS["demo-bob-key"])
            return [await client.call(method, params) for method, params in calls]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=30)


def test_the_demo_market_fills_in_live(page: Page) -> None:
    """Opened on USDT-KZT: the market list with its last price and change, the bots' quotes
    in the book with cumulative totals, and trades that keep arriving."""
    usdt = page.locator('button[data-market="USDT-KZT"]')
    expect(usdt).to_have_attribute("aria-pressed", "true")
    expect(usdt.locator(".last")).to_have_text(re.compile(r"^\d+\.\d{2}$"))
    expect(usdt.locator(".change")).to_have_text(re.compile(r"^[+-]\d+\.\d{2}%$"))
    asks = _rows(page, "Asks of USDT-KZT")
    bids = _rows(page, "Bids of USDT-KZT")
    expect(asks.first).to_be_visible()
    expect(bids.first).to_be_visible()
    # the best bid's total is its own amount; totals grow away from the spread
    first_bid = bids.first.locator("td")
    expect(first_bid.nth(1)).to_have_text(re.compile(r"^\d+\.\d{6}$"))
    assert first_bid.nth(1).inner_text() == first_bid.nth(2).inner_text()
    trades = _rows(page, "Recent trades of USDT-KZT")
    expect(trades.first).to_be_visible()
    newest = int(trades.first.get_attribute("data-trade-id") or 0)
    page.wait_for_function(
        """newest => Number(document.querySelector(
            'table[aria-label="Recent trades of USDT-KZT"] tbody tr').dataset.tradeId) > newest""",
        arg=newest,
    )
    expect(page.locator("#chart canvas").first).to_be_attached()
    expect(page.get_by_role("status").first).to_have_text("live")


def test_a_wrong_key_is_refused_with_the_servers_message(page: Page) -> None:
    """A login signed with another key shows the server's AUTH_FAILED message."""
    page.get_by_label("API key").fill("demo-broker1-key")
    page.get_by_label("Key type").select_option("ed25519")
    page.get_by_label("Ed25519 private key (hex)").fill(DEMO_PRIVATE_KEYS["demo-bob-key"])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-message")).to_have_text(
        "AUTH_FAILED: login refused: the signature does not match"
    )


def test_log_in_place_see_and_cancel_an_order(page: Page) -> None:
    """broker1 logs in, chooses BTC-KZT, places a limit buy: it shows in open orders and in
    the book, with the market's decimals; canceling it takes it out of both."""
    page.get_by_label("Ed25519 private key (hex)").fill(DEMO_PRIVATE_KEYS["demo-broker1-key"])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#session-who")).to_have_text("logged in as broker1 (BROKER)")
    page.locator(f'button[data-market="{BTC}"]').click()
    expect(page.get_by_role("heading", name=BTC, exact=True)).to_be_visible()
    balances = page.get_by_role("table", name="Balances")
    expect(balances.locator('tr[data-asset="BTC"] td').first).to_have_text("100.00000000")
    expect(balances.locator('tr[data-asset="BTC"]')).to_have_attribute("data-total", "100.00000000")
    page.get_by_label("Price").fill("44000000")
    page.get_by_label("Amount").fill("0.001")
    page.get_by_role("button", name="Buy BTC").click()
    expect(page.locator("#order-result")).to_have_text(
        re.compile(r"^order \d+ buy 0\.00100000 at 44000000\.00: new")
    )
    order_id = re.findall(r"\d+", page.locator("#order-result").inner_text())[0]
    open_order = page.get_by_role("table", name="Open orders").locator(
        f'tr[data-order-id="{order_id}"]'
    )
    expect(open_order).to_contain_text("44000000.00")
    level = page.get_by_role("table", name=f"Bids of {BTC}").locator('tr[data-price="44000000.00"]')
    expect(level.locator("td").nth(1)).to_have_text("0.00100000")
    held_kzt = balances.locator('tr[data-asset="KZT"] td').nth(1)
    expect(held_kzt).not_to_have_text("0.00")
    page.get_by_role("button", name=f"Cancel order {order_id}").click()
    expect(open_order).to_have_count(0)
    expect(level).to_have_count(0)
    expect(held_kzt).to_have_text("0.00")


def test_every_reject_shows_the_servers_message(page: Page) -> None:
    """A price off the tick, one with too many decimals and a limit order without a price
    are refused, each shown with the server's code and message."""
    result = page.locator("#order-result")
    page.get_by_label("Price").fill("44000000.5")
    page.get_by_label("Amount").fill("0.001")
    page.get_by_role("button", name="Buy BTC").click()
    expect(result).to_have_text("INVALID_TICK: price 44000000.50 is not a multiple of the tick 1")
    expect(result).to_have_attribute("role", "alert")
    page.get_by_label("Price").fill("44000000.123")
    page.get_by_role("button", name="Buy BTC").click()
    expect(result).to_have_text("INVALID_NUMBER: price '44000000.123' has more than 2 decimals")
    page.get_by_label("Price").fill("")
    page.get_by_role("button", name="Sell BTC").click()
    expect(result).to_have_text(
        "INVALID_PARAMS: Expected `str` of length >= 1 - at `$.params.price`"
    )


def test_a_trade_with_another_client_arrives(page: Page, demo: Demo) -> None:
    """bob's sell from the Python SDK takes part of broker1's resting buy: the trade shows in
    the trades, broker1's fill in its fills, the order stays open partly filled with the rest
    in the book, the BTC balance rises by exactly the quantity; Cancel all takes the rest."""
    page.get_by_label("Price").fill("44500000")
    page.get_by_label("Amount").fill("0.003")
    page.get_by_label("Post-only").check()
    page.get_by_role("button", name="Buy BTC").click()
    expect(page.locator("#order-result")).to_have_text(re.compile(r": new, filled 0\.00000000$"))
    level = page.get_by_role("table", name=f"Bids of {BTC}").locator('tr[data-price="44500000.00"]')
    expect(level.locator("td").nth(1)).to_have_text("0.00300000")
    [sold] = _other_client(
        demo.ws_url,
        (
            "order.place",
            {"market": BTC, "side": "sell", "price": "44500000", "qty": "0.002", "tif": "IOC"},
        ),
    )
    assert sold["status"] == "filled", sold
    trade_id = sold["fills"][0]["trade_id"]
    trade = page.get_by_role("table", name=f"Recent trades of {BTC}").locator(
        f'tr[data-trade-id="{trade_id}"]'
    )
    expect(trade).to_contain_text("44500000.00")
    expect(trade).to_contain_text("0.00200000")
    fill = page.get_by_role("table", name="Fills").locator(f'tr[data-trade-id="{trade_id}"]')
    expect(fill).to_contain_text("maker")
    expect(fill).to_contain_text("44500000.00")
    open_orders = page.get_by_role("table", name="Open orders").locator("tr[data-order-id]")
    expect(open_orders).to_have_count(1)
    expect(open_orders.locator("td").nth(4)).to_have_text("0.00200000")
    expect(open_orders.locator("td").nth(5)).to_have_text("partially filled")
    expect(level.locator("td").nth(1)).to_have_text("0.00100000")
    balances = page.get_by_role("table", name="Balances")
    expect(balances.locator('tr[data-asset="BTC"] td').first).to_have_text("100.00200000")
    expect(balances.locator('tr[data-asset="BTC"]')).to_have_attribute("data-total", "100.00200000")
    expect(page.locator(f'button[data-market="{BTC}"] .last')).to_have_text("44500000.00")
    page.get_by_role("button", name="Cancel all").click()
    expect(open_orders).to_have_count(0)
    expect(level).to_have_count(0)


def test_accessible_names_and_screenshots_at_desktop_and_phone_width(page: Page) -> None:
    """The book, trades, form fields and buttons have accessible names; the page fits a
    phone's width without sideways scrolling; screenshots of both go to test-artifacts/."""
    for role, name in [
        ("table", f"Asks of {BTC}"),
        ("table", f"Bids of {BTC}"),
        ("table", f"Recent trades of {BTC}"),
        ("table", "Open orders"),
        ("table", "Fills"),
        ("table", "Balances"),
        ("list", "Markets"),
        ("group", "Candle interval"),
        ("combobox", "Type"),
        ("textbox", "Price KZT"),
        ("textbox", "Amount BTC"),
        ("checkbox", "Post-only"),
        ("checkbox", "IOC"),
        ("button", "Buy BTC"),
        ("button", "Sell BTC"),
        ("button", "Cancel all"),
        ("button", "Log out"),
    ]:
        expect(page.get_by_role(role, name=name, exact=True)).to_have_count(1)  # type: ignore[arg-type]
    page.locator('button[data-market="USDT-KZT"]').click()  # the busy demo market
    expect(_rows(page, "Asks of USDT-KZT").first).to_be_visible()
    expect(_rows(page, "Recent trades of USDT-KZT").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=ARTIFACTS / "web-desktop.png")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a 390 px phone"
    expect(page.get_by_role("button", name="Buy USDT")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "web-phone.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def _serve(port: int, http_port: int) -> subprocess.Popen[str]:
    """``alatau serve --ephemeral`` on these ports, once it listens."""
    options = ["--ephemeral", "--quiet", "--port", str(port), "--http-port", str(http_port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.app.cli", "serve", *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "web page on" in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process
    raise AssertionError("".join(lines))


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_the_page_reconnects_and_logs_in_again_after_a_restart(browser: Browser) -> None:
    """The server restarts under a logged-in page: it says so, connects again, logs in again
    with the key it kept in memory, and trades; Log out leaves it connected, logged out.  The
    key is stored in the browser only when asked to (then a reload logs in), until Log out."""
    port, http_port = free_port(), free_port()
    server = _serve(port, http_port)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"http://127.0.0.1:{http_port}/#{BTC}")
        page.get_by_label("API key").fill("demo-bob-key")
        page.get_by_label("Ed25519 private key (hex)").fill(DEMO_PRIVATE_KEYS["demo-bob-key"])
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#session-who")).to_have_text("logged in as bob (PROFESSIONAL)")
        _stop(server)
        expect(page.locator("#status")).to_contain_text("reconnecting")
        server = _serve(port, http_port)
        expect(page.locator("#status")).to_have_text("live")
        page.get_by_label("Price").fill("44000000")
        page.get_by_label("Amount").fill("0.001")
        page.get_by_role("button", name="Buy BTC").click()
        expect(page.locator("#order-result")).to_have_text(re.compile(r"^order 1 buy .*: new"))
        bids = page.get_by_role("table", name=f"Bids of {BTC}")
        expect(bids.locator('tr[data-price="44000000.00"]')).to_have_count(1)
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        expect(page.locator("#status")).to_have_text("live")
        assert page.evaluate("localStorage.length") == 0  # nothing was remembered
        # asked to, the page keeps the key and logs in with it on the next load
        page.get_by_label("Ed25519 private key (hex)").fill(DEMO_PRIVATE_KEYS["demo-bob-key"])
        page.get_by_label("Remember the key in this browser").check()
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#session-who")).to_have_text("logged in as bob (PROFESSIONAL)")
        page.reload()
        expect(page.locator("#session-who")).to_have_text("logged in as bob (PROFESSIONAL)")
        page.get_by_role("button", name="Log out").click()
        assert page.evaluate("localStorage.length") == 0
    finally:
        context.close()
        _stop(server)


def test_a_lost_book_update_makes_the_page_resync(browser: Browser) -> None:
    """One ``book`` update is taken out of the page's websocket on the way (Playwright's
    websocket routing): the next update's ``first_seq`` shows the gap, the page subscribes
    again, and the new snapshot gives it the whole book, with the level it never saw."""
    port, http_port = free_port(), free_port()
    server = _serve(port, http_port)
    sent: list[str] = []
    dropped: list[str] = []
    snapshots: list[str] = []

    def route(page_side: Any) -> None:
        venue_side = page_side.connect_to_server()

        def to_venue(message: str | bytes) -> None:
            sent.append(str(message))
            venue_side.send(message)

        def to_page(message: str | bytes) -> None:
            text = str(message)
            if not dropped and '"channel":"book"' in text and '"type":"update"' in text:
                dropped.append(text)
                return
            if '"channel":"book"' in text and '"type":"snapshot"' in text:
                snapshots.append(text)
            page_side.send(message)

        page_side.on_message(to_venue)
        venue_side.on_message(to_page)

    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.route_web_socket(re.compile(r"^ws://"), route)
        page.goto(f"http://127.0.0.1:{http_port}/#ETH-KZT")
        expect(page.locator(".spread")).to_have_text("the book is empty")
        # The empty book is also what the page shows before its snapshot comes: the orders
        # must come after it, as updates (else the snapshot holds them, and no update is
        # there to lose: the flake of an earlier run under load).
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not snapshots and time.monotonic() < deadline:
            page.wait_for_timeout(20)
        assert snapshots, "the page's book snapshot never came"
        _other_client(
            f"ws://127.0.0.1:{port}",
            (
                "order.place",
                {"market": "ETH-KZT", "side": "sell", "price": "1710000", "qty": "0.01"},
            ),
            (
                "order.place",
                {"market": "ETH-KZT", "side": "sell", "price": "1720000", "qty": "0.02"},
            ),
        )
        asks = page.get_by_role("table", name="Asks of ETH-KZT").locator("tbody tr")
        expect(asks).to_have_count(2)
        expect(asks.nth(1)).to_have_attribute("data-price", "1710000.00")  # best at the bottom
        expect(asks.nth(1).locator("td").nth(1)).to_have_text("0.01000000")
        expect(asks.nth(0).locator("td").nth(2)).to_have_text("0.03000000")
        assert len(dropped) == 1 and '"first_seq":1' in dropped[0]
        subscribes = [f for f in sent if '"subscribe"' in f and "book:ETH-KZT" in f]
        assert len(subscribes) == 2, sent
    finally:
        context.close()
        _stop(server)
