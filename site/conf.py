"""Sphinx configuration of the course website: the notebooks, executed by myst-nb, the API reference
from flowlib's docstrings, and the benchmarks. Built by ``make site`` (full mode) or ``make site-quick``.

Sphinx reads only files under site/, so each build first mirrors notebooks/*.ipynb into the git-ignored
site/notebooks/ (see ``_mirror_notebooks``): the pages are ``notebooks/NN_topic.html`` and links between
notebooks resolve as they do in JupyterLab.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import jupyter_server_mathjax

SITE = Path(__file__).resolve().parent
ROOT = SITE.parent
sys.path.insert(0, str(SITE / "_ext"))
QUICK = os.environ.get("FLOWLIB_QUICK", "") not in {"", "0"}



def _mirror_notebooks(src: Path, dst: Path) -> None:
    """Copy the notebooks that changed into dst (keeping their times, so Sphinx rereads only those) and
    delete copies whose notebook is gone. dst holds nothing else: it is a mirror made for the build."""
    dst.mkdir(exist_ok=True)
    wanted = {p.name: p for p in src.glob("*.ipynb")}
    for stale in dst.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name, notebook in wanted.items():
        copy = dst / name
        if not copy.exists() or copy.read_bytes() != notebook.read_bytes():
            shutil.copy2(notebook, copy)


_mirror_notebooks(ROOT / "notebooks", SITE / "notebooks")

project = "flowlib: normalizing flows, hands-on"
author = "the flowlib course"
copyright = "the flowlib course authors"

# napoleon: the docstrings write their arguments Google style ("Args:")
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "notebook_source"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "substitution"]
# benchmarks.md says which mode built the site, beside the execution table of that build
myst_substitutions = {"build_mode": "quick" if QUICK else "full"}
myst_heading_anchors = 3

# Outputs come from running every notebook during the build. jupyter-cache keeps each result and
# reruns a notebook only when its code changed. Quick and full mode get separate caches (the
# Makefile gives each mode its own build folder), since the code is the same and the outputs are not.
nb_execution_mode = "cache"
nb_execution_cache_path = os.environ.get("FLOWLIB_SITE_CACHE", str(SITE / "_build" / ("quick" if QUICK else "full") / "jupyter_cache"))
nb_execution_raise_on_error = True  # a notebook that fails fails the build
nb_execution_show_tb = True
nb_execution_timeout = 600 if QUICK else 1800  # seconds per cell; full mode trains and scores more
nb_execution_in_temp = False  # run in notebooks/, as in JupyterLab (relative paths to data/ work)
nb_merge_streams = True
# A static page has no kernel: the ipywidgets would need their JavaScript from a CDN, and they could
# not call Python anyway. Their static companions (flowlib.apps.static) need nothing.
nb_ipywidgets_js = {}

# Maths from local files: MathJax 2.7 as shipped by jupyter-server-mathjax, copied to _static/mathjax.
# The package ships one combined configuration (HTML-CSS output) and the STIX-Web fonts only: MathJax's
# default TeX fonts would be requested and missing. HTML-CSS tells web fonts apart with a font-face at
# about:blank, a request that Chromium reports as an error on every page; local() makes no request.
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": True},
    "HTML-CSS": {
        "availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web", "imageFont": None,
        "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}},
    },
    # HTMLorMML would pick native MathML in Chromium, whose styles ask for TeX fonts the package lacks
    "MMLorHTML": {"prefer": "HTML"},
    # The hidden MathML kept for screen readers matches those styles too: their six web fonts become local()
    "NativeMML": {"styles": {f"@font-face /*{i}*/": {"src": "local('MathJax_missing')"} for i in range(1, 7)}},
    "messageStyle": "none",
}
myst_update_mathjax = False  # its settings are for MathJax 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "sphinx_book_theme"
html_title = "flowlib: normalizing flows, hands-on"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"  # else the browser asks for /favicon.ico, which is not there
html_css_files = ["course.css"]
html_sourcelink_suffix = ""  # _sources/notebooks/NN_topic.ipynb is the notebook itself, downloadable
# Figures and notebook outputs are drawn on white; without a default the theme logs an error on every page.
html_context = {"default_mode": "light"}
html_theme_options = {
    "use_download_button": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}


def _copy_mathjax(app, exception) -> None:
    """Copy MathJax into the built site once (about 600 files); later builds find it there."""
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / "MathJax.js").exists():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", target, dirs_exist_ok=True)


def setup(app) -> None:
    app.connect("build-finished", _copy_mathjax)
