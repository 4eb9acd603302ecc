"""Real-browser tests of the widgets: JupyterLab in headless Chromium runs notebook 07, then
moving the interpolation slider must change the interpolated image on screen; it runs notebook
08, then pressing *resample* and picking another degradation must each redraw its posterior strip;
it runs notebook 10's spline cells, then moving a knot must redraw the map.

Needs Chromium (/usr/bin/chromium or `chromium` on PATH) and the `playwright` Python package;
it never downloads a browser. Run it alone with

    .venv/bin/python -m pytest tests/test_browser.py -v -s

or deselect it with `-m "not browser"`. Screenshots land in pytest's tmp folder (printed).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

import pytest

from .browser_utils import (
    CHROMIUM_ARGS,
    LabServer,
    error_outputs,
    find_chromium,
    open_notebook,
    prepare_notebook,
    run_all_cells,
    unexecuted_code_cells,
    wait_image_settled,
    wait_run_finished,
    write_notebook,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_latent_exploration.ipynb"
NB_NAME = NOTEBOOK.name
NOTEBOOK_08 = ROOT / "notebooks" / "08_conditional_flows.ipynb"
POSTERIOR_IMAGE = ".flowlib-posterior-image"
RAISES_NAME = "raises_zero_division.ipynb"
NOTEBOOK_10 = ROOT / "notebooks" / "10_beyond_coupling.ipynb"
SPLINE_NAME = "spline_knots_from_10.ipynb"
SPLINE_DRAWING = ".flowlib-spline-drawing"
IMAGE = ".flowlib-interp-image"
SLIDER = ".flowlib-interp-slider"
MIN_MEAN_ABS_DIFF = 1.0  # on a 0-255 scale
# First cell of the stand-in that raises: a slider whose callback raises into an Output widget,
# the way notebook 07 wires its callbacks (Output.capture).
RAISING_WIDGET = """\
import ipywidgets as widgets
from IPython.display import display

slider = widgets.FloatSlider(min=0, max=1, step=0.05, description="t")
slider.add_class("flowlib-interp-slider")
errors = widgets.Output()
slider.observe(errors.capture()(lambda change: 1 / 0), names="value")
display(widgets.VBox([slider, errors]))
print("before")
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium or `chromium` on PATH); apt-get install chromium")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    return path


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory):
    """One JupyterLab server for this module, serving a temp folder that holds a clean copy of
    notebooks 07 and 08 (when they exist) and a stand-in notebook that raises."""
    base = tmp_path_factory.mktemp("browser")
    root = base / "notebooks"
    root.mkdir()
    for notebook in (NOTEBOOK, NOTEBOOK_08):
        if notebook.exists():
            prepare_notebook(notebook, root / notebook.name)
    write_notebook(root / RAISES_NAME, [RAISING_WIDGET, "1 / 0", "print('never runs')"])
    if NOTEBOOK_10.exists():
        write_notebook(root / SPLINE_NAME, _spline_cells())
    env = {"FLOWLIB_QUICK": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if os.environ.get("FLOWLIB_DATA"):
        env["FLOWLIB_DATA"] = os.environ["FLOWLIB_DATA"]
    server = LabServer(root, base / "home", env)
    try:
        start = time.monotonic()
        server.start()
        print(f"\nJupyterLab up at {server.url} after {time.monotonic() - start:.1f} s (log: {server.log_path})")
        yield server
    finally:
        start = time.monotonic()
        server.stop()
        print(f"\nJupyterLab stopped in {time.monotonic() - start:.1f} s")


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    console_errors: list[str] = []
    page.on("pageerror", lambda exc: console_errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.console_errors = console_errors
    yield page
    try:
        page.screenshot(path=str(tmp_path / "page_at_teardown.png"))  # the state a failure left behind
    except Exception as exc:  # a crashed page must not hide the test's own failure
        print(f"no teardown screenshot: {exc}")
    finally:
        context.close()


def _spline_cells() -> list[str]:
    """Notebook 10's own cells for the knot widget: its set-up, the drawing function, the widget."""
    import json

    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK_10.read_text())["cells"] if c["cell_type"] == "code"]
    drawing = next(c for c in cells if "def draw_spline" in c)
    widget = next(c for c in cells if "flowlib-spline-drawing" in c)
    return [cells[0], drawing, widget]


def _pixels(png: bytes, size=None):
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    if size is not None and img.size != size:
        img = img.resize(size)
    return img, np.asarray(img, dtype=np.float64)


def _diagnostics(page, lab) -> str:
    errs = "\n---\n".join(error_outputs(page)) or "(none)"
    console = "\n".join(page.console_errors[-10:]) or "(none)"
    return (
        f"\nerror outputs in the notebook:\n{errs}\nbrowser console errors:\n{console}\nserver log tail:\n{lab.log_tail(12)}"
    )


@contextlib.contextmanager
def _explained(page, lab, what: str):
    """Turn a Playwright timeout (or other browser error) into a failure that says what the
    notebook looked like: error outputs, cells still pending, console errors, server log."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        yield
    except PlaywrightError as exc:
        pending = "\n".join(unexecuted_code_cells(page)) or "(none)"
        pytest.fail(f"{what}: {exc}\ncode cells without an execution count:\n{pending}{_diagnostics(page, lab)}")


def _move_slider(page) -> str:
    """Move the interpolation slider to about t=0.5: keyboard on the noUiSlider handle, falling
    back to a mouse drag if the keys did nothing. Returns the slider's readout."""
    handle = page.locator(f"{SLIDER} .noUi-handle")
    readout = page.locator(f"{SLIDER} .widget-readout")
    start = readout.inner_text().strip()
    handle.focus()
    for _ in range(10):
        handle.press("ArrowRight")
    if readout.inner_text().strip() == start:
        track = page.locator(f"{SLIDER} .noUi-base").bounding_box()
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(track["x"] + 0.6 * track["width"], track["y"] + track["height"] / 2, steps=8)
        page.mouse.up()
    return readout.inner_text().strip()


def _run_whole_notebook(page, lab, name: str, timeout_ms: int) -> float:
    """Open ``name``, Run All, and fail unless every code cell ran without error output; returns the start time."""
    start = time.monotonic()
    with _explained(page, lab, f"opening {name} and starting its kernel"):
        open_notebook(page, lab, name)
    print(f"\n{name} open, kernel idle after {time.monotonic() - start:.1f} s")
    with _explained(page, lab, f"running all cells of {name}"):
        run_all_cells(page)
        wait_run_finished(page, timeout_ms=timeout_ms)
    print(f"Run All Cells finished after {time.monotonic() - start:.1f} s")
    errors = error_outputs(page)
    assert not errors, f"{name} shows error output(s):{_diagnostics(page, lab)}"
    missing = unexecuted_code_cells(page)
    assert not missing, f"cells without an execution count after Run All: {missing}{_diagnostics(page, lab)}"
    return start


def test_latent_interpolation_slider_changes_image(lab, page, tmp_path):
    if not NOTEBOOK.exists():
        pytest.skip(f"{NOTEBOOK.relative_to(ROOT)} does not exist yet")
    start = _run_whole_notebook(page, lab, NB_NAME, timeout_ms=240_000)

    image, slider = page.locator(IMAGE), page.locator(SLIDER)
    assert image.count() == 1, f"expected exactly one {IMAGE}, found {image.count()}{_diagnostics(page, lab)}"
    assert slider.count() == 1, f"expected exactly one {SLIDER}, found {slider.count()}{_diagnostics(page, lab)}"
    with _explained(page, lab, f"waiting for {IMAGE} to show a loaded image"):
        wait_image_settled(page, IMAGE)
        slider.scroll_into_view_if_needed()
        src_before = image.get_attribute("src")
        before_png = image.screenshot(path=str(tmp_path / "interp_before.png"))

    with _explained(page, lab, f"moving {SLIDER} and waiting for {IMAGE} to change"):
        readout = _move_slider(page)
        page.wait_for_function(
            "([sel, old]) => document.querySelector(sel)?.src !== old", arg=[IMAGE, src_before], timeout=30_000
        )
        wait_image_settled(page, IMAGE)
        after_png = image.screenshot(path=str(tmp_path / "interp_after.png"))
    slider.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "page_after.png"), full_page=True)

    before_img, before = _pixels(before_png)
    _, after = _pixels(after_png, size=before_img.size)
    diff = float(abs(after - before).mean())
    print(
        f"slider moved and image compared after {time.monotonic() - start:.1f} s"
        f"\nslider readout after moving: {readout}; mean |after - before| = {diff:.2f} (0-255)"
        f"\n  before: {tmp_path / 'interp_before.png'}\n  after:  {tmp_path / 'interp_after.png'}"
        f"\n  page:   {tmp_path / 'page_after.png'}"
    )
    assert diff > MIN_MEAN_ABS_DIFF, (
        f"moving the slider (readout {readout}) barely changed the image: mean abs diff {diff:.3f}{_diagnostics(page, lab)}"
    )
    errors = error_outputs(page)
    assert not errors, f"error output(s) after moving the slider:{_diagnostics(page, lab)}"


def _changed_strip(page, lab, tmp_path, what: str, act, name: str):
    """Do ``act()``, wait for the posterior strip's src to change and settle; its pixels must differ."""
    image = page.locator(POSTERIOR_IMAGE)
    with _explained(page, lab, f"{what}: waiting for {POSTERIOR_IMAGE} to change"):
        src_before = image.get_attribute("src")
        before_png = image.screenshot()
        act()
        page.wait_for_function(
            "([sel, old]) => document.querySelector(sel)?.src !== old", arg=[POSTERIOR_IMAGE, src_before], timeout=60_000
        )
        wait_image_settled(page, POSTERIOR_IMAGE)
        after_png = image.screenshot(path=str(tmp_path / f"{name}.png"))
    before_img, before = _pixels(before_png)
    _, after = _pixels(after_png, size=before_img.size)
    diff = float(abs(after - before).mean())
    print(f"{what}: mean |after - before| = {diff:.2f} (0-255); {tmp_path / f'{name}.png'}")
    assert diff > MIN_MEAN_ABS_DIFF, f"{what} barely changed the posterior strip: {diff:.3f}{_diagnostics(page, lab)}"


def test_posterior_explorer_resamples_and_switches_degradation(lab, page, tmp_path):
    if not NOTEBOOK_08.exists():
        pytest.skip(f"{NOTEBOOK_08.relative_to(ROOT)} does not exist yet")
    _run_whole_notebook(page, lab, NOTEBOOK_08.name, timeout_ms=300_000)

    image = page.locator(POSTERIOR_IMAGE)
    assert image.count() == 1, f"expected exactly one {POSTERIOR_IMAGE}, found {image.count()}{_diagnostics(page, lab)}"
    with _explained(page, lab, f"waiting for {POSTERIOR_IMAGE} to show a loaded image"):
        image.scroll_into_view_if_needed()
        wait_image_settled(page, POSTERIOR_IMAGE)
    button = page.locator(".flowlib-posterior-resample")
    _changed_strip(page, lab, tmp_path, "pressing resample", lambda: button.click(), "posterior_resampled")
    select = page.locator(".flowlib-posterior-degradation select")
    pick = lambda: select.select_option(label="inpainting, top half hidden")  # noqa: E731
    _changed_strip(page, lab, tmp_path, "picking inpainting", pick, "posterior_inpainting")
    errors = error_outputs(page)
    assert not errors, f"error output(s) after using the explorer:{_diagnostics(page, lab)}"


def test_moving_a_spline_knot_redraws_the_map(lab, page, tmp_path):
    if not NOTEBOOK_10.exists():
        pytest.skip(f"{NOTEBOOK_10.relative_to(ROOT)} does not exist yet")
    _run_whole_notebook(page, lab, SPLINE_NAME, timeout_ms=120_000)
    image = page.locator(f"{SPLINE_DRAWING} img")
    assert image.count() == 1, f"expected one picture in {SPLINE_DRAWING}, found {image.count()}{_diagnostics(page, lab)}"
    handle = page.locator(".flowlib-spline-x .noUi-handle")
    readout = page.locator(".flowlib-spline-x .widget-readout")
    with _explained(page, lab, "moving knot 2's position and waiting for the map to be redrawn"):
        handle.scroll_into_view_if_needed()
        src_before, start = image.get_attribute("src"), readout.inner_text().strip()
        before_png = image.screenshot()
        handle.focus()
        for _ in range(10):
            handle.press("ArrowRight")
        page.wait_for_function("([sel, old]) => document.querySelector(sel)?.src !== old",
                               arg=[f"{SPLINE_DRAWING} img", src_before], timeout=30_000)
        wait_image_settled(page, f"{SPLINE_DRAWING} img")
        after_png = image.screenshot(path=str(tmp_path / "spline_after.png"))
    assert readout.inner_text().strip() != start, "the knot's position slider did not move"
    before_img, before = _pixels(before_png)
    _, after = _pixels(after_png, size=before_img.size)
    diff = float(abs(after - before).mean())
    print(f"knot moved from x = {start} to {readout.inner_text().strip()}: mean |after - before| = {diff:.2f}")
    assert diff > 0.2, f"moving the knot barely changed the picture: {diff:.3f}{_diagnostics(page, lab)}"
    assert not error_outputs(page), f"error output(s) after moving the knot:{_diagnostics(page, lab)}"


def test_error_detector_sees_an_exception(lab, page):
    """The 'no error output' checks above mean something: on a notebook whose second cell raises
    ZeroDivisionError, Run All stops there and the detector reports it; an exception in a slider
    callback, captured into an Output widget, is reported as well."""
    open_notebook(page, lab, RAISES_NAME)
    run_all_cells(page)
    wait_run_finished(page, timeout_ms=120_000)
    errors = error_outputs(page)
    assert len(errors) == 1 and "ZeroDivisionError" in errors[0], errors
    missing = unexecuted_code_cells(page)
    assert len(missing) == 1 and "never runs" in missing[0], missing

    readout = _move_slider(page)
    assert readout != "0.00", "the slider did not move"
    page.wait_for_function(f"() => document.querySelectorAll('{SLIDER} ~ * .jp-OutputArea-output').length > 0")
    errors = error_outputs(page)
    in_callbacks = [e for e in errors if "Output.capture" in e]
    assert in_callbacks and len(errors) == len(in_callbacks) + 1, errors  # one per slider step, plus 1 / 0
