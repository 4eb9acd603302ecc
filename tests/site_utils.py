"""Helpers for tests/test_site.py: serve a built website from a local http.server, and check its pages in a
real browser (Playwright's sync API). Each check returns a list of problems, empty when the page is fine, so
that the same checks run on the real site and on a deliberately broken one.

Nothing here imports playwright at module level, so importing this file never fails.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .browser_utils import free_port


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` over http://127.0.0.1:<free port>/ in a background thread; yields the base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # a test prints what fails, not every request
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            # a browser context closed while a response was on its way: not a problem of the site
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = Server(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def page_urls(base: str, html_dir: Path) -> list[str]:
    """Every page of the site: each .html file outside _static, _sources and _images."""
    skip = {"_static", "_sources", "_images"}
    pages = [p for p in sorted(html_dir.rglob("*.html")) if not skip & set(p.relative_to(html_dir).parts)]
    return [urllib.parse.urljoin(base, p.relative_to(html_dir).as_posix()) for p in pages]


def watch_errors(page) -> list[str]:
    """Start recording the page's console errors, uncaught exceptions and failed or 4xx/5xx requests."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url} ({req.failure})"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return errors


# MathJax 2 typesets in a queue that starts when it has loaded; a callback queued now runs after the
# initial typesetting. Pages without maths do not need MathJax at all.
_MATHJAX_DONE_JS = """
() => new Promise((resolve) => {
  if (!document.querySelector('.math')) { resolve('no maths'); return; }
  const start = performance.now();
  (function poll() {
    if (window.MathJax && MathJax.Hub && MathJax.Hub.Queue) {
      // the fonts it asked for are part of the page: a missing one must show up as a failed request
      MathJax.Hub.Queue(() => document.fonts.ready.then(() => resolve('typeset')));
      return;
    }
    if (performance.now() - start > 5000) { resolve('MathJax did not load'); return; }
    setTimeout(poll, 100);
  })();
})
"""

_PAGE_FACTS_JS = """
() => ({
  text: document.body.innerText,
  mathSources: document.querySelectorAll('.math').length,
  mathRendered: document.querySelectorAll('.MathJax, .MathJax_Display').length,
  // a TeX error: MathJax 2 shows the source in a noError box (noErrors extension) or an merror
  mathErrors: document.querySelectorAll('.MathJax .noError, .MathJax .merror').length,
  brokenImages: [...document.images].filter(img => !img.complete || img.naturalWidth === 0)
      .map(img => (img.getAttribute('src') || '').slice(0, 100)),
  images: document.images.length,
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
})
"""


def load_page(page, url: str) -> dict:
    """Open ``url``, wait until it has loaded and MathJax has typeset it, and return what the checks need."""
    page.goto(url, wait_until="load")
    mathjax = page.evaluate(_MATHJAX_DONE_JS)
    page.wait_for_timeout(250)  # requests that the typesetting started
    facts = page.evaluate(_PAGE_FACTS_JS)
    facts["mathjax"] = mathjax
    return facts


def page_problems(url: str, facts: dict, errors: list[str]) -> list[str]:
    """What is wrong with one loaded page: console errors, images that did not load, maths left raw."""
    problems = [f"{url}: {e}" for e in errors]
    problems += [f"{url}: image did not load: {src}" for src in facts["brokenImages"]]
    if "$$" in facts["text"]:
        at = facts["text"].index("$$")
        problems.append(f"{url}: raw $$ in the visible text: ...{facts['text'][max(0, at - 60):at + 60]!r}...")
    if facts["mathSources"]:
        if facts["mathjax"] != "typeset":
            problems.append(f"{url}: maths not typeset: {facts['mathjax']}")
        elif facts["mathRendered"] == 0:
            problems.append(f"{url}: {facts['mathSources']} maths elements but no MathJax output")
        if facts["mathErrors"]:
            problems.append(f"{url}: {facts['mathErrors']} MathJax errors")
    return problems


def link_problems(base: str, facts_by_url: dict[str, dict]) -> list[str]:
    """Every link into the site resolves: the file answers 200, and a #fragment names an element of a page we
    opened (fragments into pages we did not open, such as _sources files, are not checked)."""
    problems = []
    fragments: dict[str, set[str]] = {}
    linked_from: dict[str, str] = {}
    for url, facts in facts_by_url.items():
        for href in facts["links"]:
            if href.startswith(base):
                target, _, fragment = href.partition("#")
                fragments.setdefault(target, set())
                linked_from.setdefault(target, url)
                if fragment:
                    fragments[target].add(urllib.parse.unquote(fragment))
    for target in sorted(fragments):
        try:
            with urllib.request.urlopen(target, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status != 200:
            problems.append(f"link to {target} answers {status} (linked from {linked_from[target]})")
            continue
        opened = facts_by_url.get(target) or facts_by_url.get(urllib.parse.urljoin(target, "index.html"))
        if opened is not None:
            missing = sorted(fragments[target] - set(opened["ids"]))
            problems += [f"link to {target}#{f}: no such anchor (linked from {linked_from[target]})" for f in missing]
    return problems


_VISIBLE_FRAME_JS = """
(root) => {
  const shown = [...root.querySelectorAll('img')].filter(img => !img.hidden);
  return {count: shown.length, src: shown.length ? shown[0].src : '', readout: root.querySelector('output')?.textContent};
}
"""


def companion_problems(page, selector: str = ".flowlib-static") -> list[str]:
    """The first static companion on the page moves: three presses of the right arrow key on its slider
    show another picture (another frame, other pixels on screen) and another readout."""
    import io

    import numpy as np
    from PIL import Image

    root = page.locator(selector).first
    if root.count() == 0:
        return [f"no static companion ({selector}) on the page"]
    root.scroll_into_view_if_needed()
    before = root.evaluate(_VISIBLE_FRAME_JS)
    shot_before = root.screenshot()
    slider = root.locator("input[type=range]")
    slider.focus()
    for _ in range(3):
        slider.press("ArrowRight")
    page.wait_for_timeout(200)
    after = root.evaluate(_VISIBLE_FRAME_JS)
    shot_after = root.screenshot()
    problems = []
    if before["count"] != 1 or after["count"] != 1:
        problems.append(f"the companion should show exactly one picture, it showed {before['count']} then {after['count']}")
    if before["src"] == after["src"]:
        problems.append("moving the slider did not change the picture")
    if before["readout"] == after["readout"]:
        problems.append(f"moving the slider did not change the readout ({before['readout']!r})")
    a = np.asarray(Image.open(io.BytesIO(shot_before)).convert("L"), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(shot_after)).convert("L"), dtype=float)
    if a.shape == b.shape and np.abs(a - b).mean() < 0.5:
        problems.append("the companion looks the same on screen after moving its slider")
    return problems


_SEARCH_RESULTS_JS = """
() => {
  const items = [...document.querySelectorAll('#search-results li, ul.search li')];
  const done = document.querySelector('#search-results .search-summary, #search-results p') !== null;
  return {done: done || items.length > 0, hrefs: items.map(li => li.querySelector('a')?.href || '')};
}
"""


def search_hits(page, base: str, word: str, timeout_ms: int = 30_000) -> list[str]:
    """The links Sphinx's own search page lists for ``word``."""
    page.goto(urllib.parse.urljoin(base, f"search.html?q={urllib.parse.quote(word)}"), wait_until="load")
    page.wait_for_function(f"({_SEARCH_RESULTS_JS})().done", timeout=timeout_ms)
    page.wait_for_timeout(300)  # results are appended one by one
    return page.evaluate(_SEARCH_RESULTS_JS)["hrefs"]
