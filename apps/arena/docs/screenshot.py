"""Regenerate `arena.png` for the README: a sample pair file, a live arena, one headless screenshot.

Run from the repository root: `uv run python apps/arena/docs/screenshot.py` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from nmm_core.pairs import Pair, Side, write_pairs

HERE = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def sample_pairs(folder: Path) -> Path:
    """One bar-chart question answered by a base and a fine-tuned model."""
    from PIL import Image, ImageDraw

    (folder / "images").mkdir(parents=True)
    img = Image.new("RGB", (360, 220), "white")
    draw = ImageDraw.Draw(img)
    for i, (label, value) in enumerate([("2021", 60), ("2022", 110), ("2023", 150), ("2024", 95)]):
        x = 40 + i * 80
        draw.rectangle([x, 190 - value, x + 50, 190], fill=(70, 120, 200))
        draw.text((x + 12, 196), label, fill="black")
    draw.line([30, 190, 340, 190], fill="black")
    img.save(folder / "images" / "chart.png")
    pair = Pair("chartqa:sample-1", "sample-1", "images/chart.png", "In which year was the value highest?",
                ["2023"], Side("Qwen2-VL-2B (base)", "The highest bar is 2022."),
                Side("Qwen2-VL-2B + LoRA", "2023"), "chartqa")
    return write_pairs([pair], folder / "pairs.jsonl")


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from nmm_arena.app import create_app
    from nmm_arena.catalog import load_catalog
    from nmm_arena.db import Database
    from nmm_arena.keys import new_token, token_sha256

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(load_catalog(sample_pairs(Path(tmp))), Database(Path(tmp) / "arena.sqlite"),
                         admin_sha256=token_sha256(new_token()))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1000, "height": 720})
                page.goto(f"http://127.0.0.1:{port}/")
                page.fill("#comment", "The tallest bar is 2023.")
                page.screenshot(path=str(HERE / "arena.png"), full_page=True)
                browser.close()
        finally:
            server.should_exit = True
            thread.join()
    print(HERE / "arena.png")


if __name__ == "__main__":
    sys.exit(main())
