"""The resident page in real headless Chromium (Playwright): the QR appears and refreshes before expiry."""

from __future__ import annotations

import dataclasses
import os
import shutil

import httpx
import pytest

from hutong.card import service as S
from hutong.card.verify import verify_qr

CHROMIUM = os.environ.get("HUTONG_CHROMIUM", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
                                reason="chromium is not installed")


def _poll(check, seconds: float) -> None:
    """Poll ``check()`` from Python (no string predicates: the node's page CSP forbids eval)."""
    import time

    deadline = time.time() + seconds
    while not check():
        assert time.time() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
        try:
            yield b
        finally:
            b.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_page_shows_and_refreshes_qr(server, server_store, browser, h):
    h.put_patient(server_store, "p1", resident_id=h.rid(11))
    # A 3-second code lifetime so the refresh happens within the test.
    server_store._card_service = S.CardService(
        server_store, dataclasses.replace(server_store.settings, card_qr_ttl_seconds=3))
    card, token = S.issue_card(server_store, "Patient/p1")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"{server}{card['page']}#t={token}")
    page.wait_for_selector("#qr svg", timeout=10_000)
    assert "电子健康卡" in page.title()
    assert "#t=" not in page.url  # the token left the address bar
    first = page.get_attribute("#qr", "data-qr-text")
    assert first.startswith("HTC1:")
    _poll(lambda: int(page.get_attribute("#qr", "data-refreshes") or 0) >= 2, 15)
    second = page.get_attribute("#qr", "data-qr-text")
    assert second != first
    jwks = httpx.get(f"{server}/api/card/keys").json()
    assert verify_qr(second, jwks).card_id == card["card_id"]
    # Reopening the page without the fragment uses the token kept in the browser.
    page.goto(f"{server}{card['page']}")
    page.wait_for_selector("#qr svg", timeout=10_000)
    # A frozen card shows a Chinese message instead of a code.
    S.set_status(server_store, card["card_id"], "frozen")
    page.click("#refresh")
    page.wait_for_selector("#message:has-text('冻结')", timeout=10_000)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_page_without_token_explains(server, server_store, browser, h):
    h.put_patient(server_store, "p1")
    card, _ = S.issue_card(server_store, "Patient/p1")
    page = browser.new_page()
    page.set_extra_http_headers({"X-Hutong-Role": "resident"})
    page.goto(f"{server}{card['page']}")
    _poll(lambda: bool((page.text_content("#message") or "").strip()), 10)
    assert page.query_selector("#qr svg") is None
