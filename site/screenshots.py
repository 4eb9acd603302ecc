"""Screenshots of a built site, for a person to look at: the top of each page, a few of its figures in place,
and its first static companion before and after its slider moves.

    .venv/bin/python site/screenshots.py site/_build/full/html runs/shots index notebooks/03_dequantization
    .venv/bin/python site/screenshots.py site/_build/quick/html runs/shots-quick notebooks/07_latent_exploration

Pages are named without ``.html``. Refuses to write into a folder that holds files already.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_utils import CHROMIUM_ARGS, find_chromium  # noqa: E402
from tests.site_utils import serve  # noqa: E402


def shoot(page, url: str, out: Path, stem: str, figures: int) -> list[Path]:
    """Screenshots of one page; returns the files written."""
    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(1500)  # MathJax typesets after the load event
    written = [out / f"{stem}-top.png"]
    page.screenshot(path=written[-1])
    images = page.locator("main .cell_output img:visible")  # hidden companion frames cannot be scrolled to
    n = images.count()
    picks = sorted({round(i * (n - 1) / max(figures - 1, 1)) for i in range(figures)}) if n else []
    for k in picks:
        images.nth(k).scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        written.append(out / f"{stem}-figure{k:02d}.png")
        page.screenshot(path=written[-1])
    companion = page.locator(".flowlib-static").first
    if page.locator(".flowlib-static").count():
        companion.scroll_into_view_if_needed()
        written.append(out / f"{stem}-companion-before.png")
        companion.screenshot(path=written[-1])
        slider = companion.locator("input[type=range]")
        slider.focus()
        for _ in range(3):
            slider.press("ArrowRight")
        page.wait_for_timeout(200)
        written.append(out / f"{stem}-companion-after.png")
        companion.screenshot(path=written[-1])
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the built site, e.g. site/_build/full/html")
    parser.add_argument("out", type=Path, help="folder for the PNG files (new or empty)")
    parser.add_argument("pages", nargs="+", help="pages without .html: index, notebooks/03_dequantization, ...")
    parser.add_argument("--figures", type=int, default=3, help="figures shown in place per page (default 3)")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        parser.error(f"{args.html} holds no built site (no index.html); run make site or make site-quick")
    missing = [p for p in args.pages if not (args.html / f"{p}.html").exists()]
    if missing:
        parser.error(f"no such page in {args.html}: {', '.join(missing)}")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty; pick a new folder")
    chromium = find_chromium()
    if chromium is None:
        parser.error("Chromium is not installed (/usr/bin/chromium); apt-get install chromium")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with serve(args.html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 950})
        for name in args.pages:
            for path in shoot(page, f"{base}{name}.html", args.out, name.replace("/", "_"), args.figures):
                print(path)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
