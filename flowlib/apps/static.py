"""Static companions of the teaching widgets (introduced in notebook 01).

An ipywidgets slider calls Python, so on the course website, a static page with no kernel, it cannot
move. A static companion draws the picture once per slider position in advance and shows the frames
behind an HTML range input; a few lines of inline JavaScript show the frame that the slider points at.
It works in JupyterLab and on any static page, with nothing to load.

    frames = draw_frames(lambda fig, fan: draw_map(fig, fan=fan), values, figsize=(9.5, 4.3))
    display(slider_frames(frames, values, label="fan a"))
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

__all__ = ["StaticHTML", "draw_frames", "slider_frames"]


@dataclass(frozen=True)
class StaticHTML:
    """A piece of HTML that Jupyter (and myst-nb on the website) displays as HTML: ``display(StaticHTML(...))``."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

# Shows the frame the slider points at; the other frames stay in the page, hidden, so that moving
# the slider never waits for anything.
_ON_INPUT = (
    "for (const [i, img] of this.closest('.flowlib-static').querySelectorAll('img').entries())"
    " { img.hidden = i !== +this.value; }"
    " this.nextElementSibling.textContent = this.dataset.labels.split('|')[+this.value];"
)


def draw_frames(draw: Callable[[Figure, float], None], values: Sequence[float], figsize: tuple[float, float] = (6, 4),
                dpi: int = 80) -> list[bytes]:
    """The PNG bytes of ``draw(fig, value)`` for each value, drawn on one off-screen figure.

    ``draw`` clears and redraws the figure it is given, the same function a live widget calls. Each frame
    is cropped to what was drawn (``bbox_inches="tight"``), so a colour bar at the edge is not cut off.
    """
    if len(values) == 0:
        raise ValueError("draw_frames needs at least one value")
    fig = Figure(figsize=figsize, dpi=dpi)  # not a pyplot figure: it is never shown by itself
    frames = []
    for value in values:
        draw(fig, value)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
        frames.append(buffer.getvalue())
    return frames


def slider_frames(frames: Sequence[bytes], values: Sequence[float], label: str = "", start: int = 0,
                  fmt: str = "{:g}") -> StaticHTML:
    """An HTML range input over precomputed PNG frames: moving it shows ``frames[i]``, the picture for ``values[i]``.

    ``label`` names the slider, ``start`` is the index shown first, ``fmt`` formats the value in the readout.
    The result displays in a notebook and stays interactive on a static page (no kernel needed).
    """
    if len(frames) == 0 or len(frames) != len(values):
        raise ValueError(f"slider_frames needs one frame per value, got {len(frames)} frames and {len(values)} values")
    if not 0 <= start < len(frames):
        raise ValueError(f"start must be an index into the {len(frames)} frames, got {start}")
    readouts = [fmt.format(v) for v in values]
    if any("|" in r for r in readouts):
        raise ValueError("a formatted value may not contain '|' (it separates the readouts)")
    # An id made from the content keeps the output the same on every run.
    digest = hashlib.sha1(b"".join(frames)).hexdigest()[:10]
    images = "\n".join(
        f'<img alt="{html.escape(label)} = {html.escape(r)}" src="data:image/png;base64,{base64.b64encode(f).decode()}"'
        f' style="max-width:100%"{"" if i == start else " hidden"}>'
        for i, (f, r) in enumerate(zip(frames, readouts))
    )
    slider = (
        f'<label>{html.escape(label)} <input type="range" class="flowlib-static-slider" min="0" max="{len(frames) - 1}"'
        f' step="1" value="{start}" data-labels="{html.escape("|".join(readouts))}" oninput="{html.escape(_ON_INPUT)}"'
        f' aria-label="{html.escape(label)}"> <output>{html.escape(readouts[start])}</output></label>'
    )
    return StaticHTML(
        f'<div class="flowlib-static" id="flowlib-static-{digest}">\n{slider}\n<div>\n{images}\n</div>\n</div>'
    )
