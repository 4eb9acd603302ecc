"""Real-browser tests of the course website built in quick mode (make site-quick, into site/_build/quick/html):
served from a local http.server and opened in headless Chromium, every page loads with no console error,
every image has loaded, the maths is typeset by the local MathJax, every internal link resolves, Sphinx's
search finds the dequantization notebook, and notebook 01's static companion moves.

A last test builds a small, deliberately broken page with the site's own conf.py and shows that the same
checks fail on it (the negative control).

Skips with a reason when the site is not built (a failure in CI, CI=true) or Chromium or playwright are
missing. `make test` builds the quick site first; alone: make site-quick && make site-tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .browser_utils import CHROMIUM_ARGS, find_chromium
from .site_utils import (
    companion_problems,
    link_problems,
    load_page,
    page_problems,
    page_urls,
    search_hits,
    serve,
    watch_errors,
)

pytestmark = [pytest.mark.browser, pytest.mark.site]

ROOT = Path(__file__).resolve().parents[1]
SITE_HTML = Path(os.environ.get("FLOWLIB_SITE_HTML", ROOT / "site" / "_build" / "quick" / "html"))


@pytest.fixture(scope="module")
def site_html() -> Path:
    if not (SITE_HTML / "index.html").exists():
        msg = f"the quick site is not built ({SITE_HTML / 'index.html'} is missing); run make site-quick"
        if os.environ.get("CI", "").lower() in {"1", "true"}:
            pytest.fail(msg)
        pytest.skip(msg)
    return SITE_HTML


@pytest.fixture(scope="module")
def browser():
    path = find_chromium()
    if path is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium or `chromium` on PATH); apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def base(site_html):
    with serve(site_html) as url:
        yield url


def _offline_context(browser):
    """A browser context that reaches only the local server: a page that needs a CDN fails here as it would offline."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    local = ("http://127.0.0.1", "data:")
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local) else route.abort())
    return context


@pytest.fixture
def page(browser):
    context = _offline_context(browser)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _check_site(browser, base: str, html_dir: Path) -> tuple[list[str], dict[str, dict]]:
    """Open every page in its own context; return all problems found and what each page held."""
    problems, facts_by_url = [], {}
    for url in page_urls(base, html_dir):
        context = _offline_context(browser)
        page = context.new_page()
        errors = watch_errors(page)
        try:
            facts = load_page(page, url)
            problems += page_problems(url, facts, errors)
            facts_by_url[url] = facts
        finally:
            context.close()
    problems += link_problems(base, facts_by_url)
    return problems, facts_by_url


@pytest.fixture(scope="module")
def site_check(browser, base, site_html):
    return _check_site(browser, base, site_html)


def test_every_page_loads_cleanly_with_images_maths_and_links(site_check):
    problems, facts_by_url = site_check
    assert len(facts_by_url) >= 14, f"expected the landing page, 11 notebooks, api and benchmarks: {sorted(facts_by_url)}"
    assert not problems, "\n".join(problems)


def test_notebook_pages_have_figures_and_typeset_maths(site_check):
    _, facts_by_url = site_check
    for url, facts in facts_by_url.items():
        if "/notebooks/" in url:
            assert facts["images"] > 0, f"{url} shows no figure"
            assert facts["mathRendered"] > 0, f"{url} has no typeset maths"
            assert "Download it" in facts["text"] and "make lab" in facts["text"], f"{url} lacks the source note"


def test_search_finds_the_dequantization_notebook(page, base):
    hits = search_hits(page, base, "dequantization")
    assert any("notebooks/03_dequantization.html" in h for h in hits), f"search results: {hits}"


def test_static_companion_of_notebook_01_moves(page, base):
    errors = watch_errors(page)
    load_page(page, base + "notebooks/01_change_of_variables.html")
    problems = companion_problems(page)
    assert not problems and not errors, "\n".join(problems + errors)



def test_the_benchmarks_page_tables_how_long_every_notebook_ran(site_html):
    """The build's own execution table (myst-nb's nb-exec-table) names every notebook, and the page says the mode."""
    text = (site_html / "benchmarks.html").read_text()
    marker = 'id="how-long-each-notebook-ran-for-this-site"'
    assert marker in text, "the benchmarks page lacks its execution-time section"
    section = text.split(marker, 1)[1]
    assert "<table" in section and "quick mode" in section, "no execution table, or the page does not say quick mode"
    missing = [nb.stem for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if nb.stem not in section]
    assert not missing, f"the execution table lacks {missing}"

BROKEN_PAGE = """\
# A broken page

Maths the local MathJax never typesets, because the build points at a missing copy: $x^2$

![a picture that is not there](missing.png)

```{raw} html
<a href="nowhere.html">a link to nowhere</a>
<p>$$ y = x^2 $$</p>
<script>thisFunctionDoesNotExist();</script>
<div class="flowlib-static"><label>t <input type="range" min="0" max="1" value="0"> <output>0</output></label>
<div><img src="data:image/png;base64,{png}"><img hidden src="data:image/png;base64,{png}"></div></div>
```
"""


@pytest.mark.slow
def test_the_checks_fail_on_a_broken_page(browser, tmp_path):
    """Negative control: a page built with the site's conf.py and a missing MathJax, a missing image, a dead
    link, raw $$, a script error and a companion whose slider does nothing. Each check must report its defect."""
    pytest.importorskip("sphinx", reason="the site's packages are not installed (make site-setup)")
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(buffer, format="PNG")
    png = base64.b64encode(buffer.getvalue()).decode()
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text(BROKEN_PAGE.replace("{png}", png))
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(ROOT / "site"), "-D", "nb_execution_mode=off",
           "-D", "mathjax_path=no-such-mathjax/MathJax.js", str(src), str(out)]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert (out / "index.html").exists(), built.stderr
    shutil.rmtree(out / "_static" / "mathjax", ignore_errors=True)  # the build's copy, so MathJax cannot load

    with serve(out) as url:
        problems, _ = _check_site(browser, url, out)
        context = _offline_context(browser)
        page = context.new_page()
        load_page(page, url + "index.html")
        still = companion_problems(page)
        context.close()
    text = "\n".join(problems)
    assert "thisFunctionDoesNotExist" in text, text
    assert "missing.png" in text, text
    assert "nowhere.html answers 404" in text, text
    assert "maths not typeset" in text, text
    assert "raw $$" in text, text
    assert "moving the slider did not change the picture" in still, still
    print(textwrap.indent(text + "\n" + "\n".join(still), "  found: "))
