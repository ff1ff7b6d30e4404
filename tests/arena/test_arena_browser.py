"""A real browser (Playwright driving Debian's chromium) against a real `nmm-arena` server."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Offline-safe flags: no sandbox (containers), no GPU, no calls home.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
EVIL = '<script>alert("pwned")</script>'


def _browser_or_skip() -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (Debian package `chromium`)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (nmm-arena[browser])"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test cannot run under CI=true: {reason}")
        pytest.skip(f"browser test skipped: {reason}")


# an <img>'s natural width once it has loaded (0 if it failed), however far it had got when asked
_LOADED_WIDTH = """img => img.complete ? img.naturalWidth : new Promise(done => {
    img.addEventListener("load", () => done(img.naturalWidth), {once: true});
    img.addEventListener("error", () => done(0), {once: true});
})"""


def test_click_through_votes_then_admin_view_leaderboard_and_export(tmp_path, pairs_writer, server, admin):
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    pairs = pairs_writer(tmp_path / "run", 5, answers={2: (EVIL, "a plain answer")})
    choices = ["A is better", "B is better", "Tie", "Both bad", "A is better"]
    board_now = ("--study-board-every-votes", "1")  # the public board recomputed at each vote
    with server(pairs, tmp_path / "arena.sqlite", *board_now) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{url}/leaderboard")  # private while the study runs
            expect(page.locator(".notice")).to_contain_text("private")
            expect(page.locator("nav a")).to_have_text(["judge", "admin"])

            page.goto(url)
            seen_evil = False
            for n, label in enumerate(choices):
                expect(page.locator(".progress")).to_contain_text(f"judged {n} of 5")
                image = page.locator("img.image")
                expect(image).to_be_visible()
                # the image may still be loading when it becomes visible: wait for its load (or error)
                assert image.evaluate(_LOADED_WIDTH) == 32
                answers = page.locator(".answer .text").all_inner_texts()
                seen_evil |= EVIL in answers  # shown as text, exactly as the model wrote it
                if n == 0:
                    page.fill("#comment", "first <b>vote</b>")
                    page.screenshot(path=str(tmp_path / "arena.png"))
                page.get_by_role("button", name=label, exact=True).click()
            expect(page.locator(".notice")).to_contain_text("judged all 5 pairs")
            assert seen_evil and dialogs == []
            assert (tmp_path / "arena.png").stat().st_size > 10_000

            # Without the token: a log-in form, and the exports refuse.
            assert page.request.get(f"{url}/export.json").status == 401
            page.locator("nav").get_by_role("link", name="admin").click()
            page.fill("#token", "not-the-admin-token")
            page.get_by_role("button", name="Log in").click()
            expect(page.locator(".notice")).to_contain_text("Wrong admin token")
            page.fill("#token", admin["Authorization"].split()[1])
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(f"{url}/admin")
            expect(page.locator(".summary")).to_contain_text("5 votes on 5 pairs")
            expect(page.locator(".total")).to_have_text("5 votes")
            votes = page.locator("table.votes tbody tr")
            expect(votes).to_have_count(5)
            assert votes.last.locator("td.text").inner_text() == "first <b>vote</b>"  # text, not markup
            cells = page.locator("table.pairs tbody tr td").all_inner_texts()
            assert cells[:7] == ["base", "fine-tuned", "5", *cells[3:5], "1", "1"]
            assert int(cells[3]) + int(cells[4]) == 3  # three decisive votes, split by who was shown where
            expect(page.locator("table.models tbody tr")).to_have_count(2)
            page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)

            # The admin's log-in opens the leaderboard and the exports (the browser's cookie).
            page.goto(f"{url}/leaderboard")
            expect(page.locator(".total")).to_have_text("5 votes")
            rows = page.request.get(f"{url}/export.json").json()
            assert [r["choice"] for r in rows] == ["left", "right", "tie", "both_bad", "left"]
            assert rows[0]["comment"] == "first <b>vote</b>"
            table = list(csv.DictReader(io.StringIO(page.request.get(f"{url}/export.csv").text())))
            assert [r["choice"] for r in table] == [r["choice"] for r in rows]
            page.goto(f"{url}/admin")
            page.get_by_role("button", name="Log out").click()
            assert page.request.get(f"{url}/export.json").status == 401
        finally:
            browser.close()
