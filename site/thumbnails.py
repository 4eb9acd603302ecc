"""The landing page's picture of each notebook: one figure from its page in a built site, shrunk and saved as
site/_static/thumbs/NN.png (committed, so the landing page needs no build of its own).

    .venv/bin/python site/thumbnails.py site/_build/full/html            # list each page's figures
    .venv/bin/python site/thumbnails.py site/_build/full/html --write    # write the chosen ones

PICKS says which figure of a page (0 = the first) is its picture; they were chosen by looking at the full build.
Figures inside a static companion are skipped (they are frames, not figures). --write refuses to overwrite a
thumbnail that differs from the new one unless --force is given.
"""

from __future__ import annotations

import argparse
import base64
import io
import re
import sys
from pathlib import Path

from PIL import Image

SITE = Path(__file__).resolve().parent
THUMBS = SITE / "_static" / "thumbs"
WIDTH = 240  # pixels; the landing page shows them at 160
PICKS = {"01": 2, "02": 5, "03": 3, "04": 2, "05": 2, "06": 4, "07": 2, "08": 2, "09": 0, "10": 3, "11": 6}

_IMG = re.compile(r'<img[^>]*\bsrc="([^"]+)"', re.S)


def page_figures(html_dir: Path, page: Path) -> list[bytes]:
    """The figures of one notebook page, in order: output images from files or data URIs, companion frames left out."""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r'<div class="flowlib-static".*?</div>\s*</div>', "", text, flags=re.S)
    figures = []
    for src in _IMG.findall(text):
        if src.startswith("data:image/png;base64,"):
            figures.append(base64.b64decode(src.split(",", 1)[1]))
        elif "_images/" in src:
            figures.append((page.parent / src).resolve().read_bytes())
    return figures


def thumbnail(png: bytes) -> bytes:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > WIDTH:
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(colors=128).save(buffer, format="PNG", optimize=True)  # a small palette: a few KiB each
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="a built site, e.g. site/_build/full/html")
    parser.add_argument("--write", action="store_true", help="write site/_static/thumbs/NN.png")
    parser.add_argument("--force", action="store_true", help="overwrite thumbnails that changed")
    args = parser.parse_args(argv)
    pages = sorted((args.html / "notebooks").glob("[0-9][0-9]_*.html"))
    if not pages:
        parser.error(f"{args.html} holds no notebook pages; run make site (or make site-quick) first")
    THUMBS.mkdir(parents=True, exist_ok=True)
    for page in pages:
        number = page.name[:2]
        figures = page_figures(args.html, page)
        pick = PICKS.get(number, 0)
        print(f"{page.name}: {len(figures)} figures, picture = figure {pick}")
        if not args.write:
            continue
        if pick >= len(figures):
            parser.error(f"{page.name} has {len(figures)} figures, PICKS asks for figure {pick}")
        target, new = THUMBS / f"{number}.png", thumbnail(figures[pick])
        if target.exists() and target.read_bytes() != new and not args.force:
            parser.error(f"{target} exists and differs; pass --force to replace it")
        target.write_bytes(new)
        print(f"  wrote {target.relative_to(SITE.parent)} ({len(new) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
