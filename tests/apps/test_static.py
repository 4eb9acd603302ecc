"""flowlib/apps/static.py: precomputed frames behind an HTML range input (the widgets' static companions).
That the slider really moves the picture in a browser is tested on the built site (tests/test_site.py)."""

from __future__ import annotations

import base64
import re

import pytest

from flowlib.apps.static import StaticHTML, draw_frames, slider_frames


def _draw(fig, value):
    fig.clear()
    ax = fig.subplots()
    ax.plot([0, 1], [0, value])
    ax.set_ylim(-1, 1)


def test_draw_frames_gives_one_png_per_value_and_they_differ():
    frames = draw_frames(_draw, [-1.0, 0.0, 1.0], figsize=(2, 2), dpi=40)
    assert len(frames) == 3
    assert all(f.startswith(b"\x89PNG") for f in frames)
    assert len(set(frames)) == 3


def test_slider_frames_holds_every_frame_and_shows_only_the_start():
    frames = draw_frames(_draw, [-1.0, 0.0, 1.0], figsize=(2, 2), dpi=40)
    out = slider_frames(frames, [-1.0, 0.0, 1.0], label="fan a", start=1)
    assert isinstance(out, StaticHTML) and out._repr_html_() == out.html
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', out.html)
    assert [base64.b64decode(s) for s in sources] == frames
    images = re.findall(r"<img [^>]*>", out.html)
    assert ["hidden" in img for img in images] == [True, False, True]
    assert 'type="range"' in out.html and 'max="2"' in out.html and 'value="1"' in out.html
    assert "<output>0</output>" in out.html
    assert 'data-labels="-1|0|1"' in out.html


def test_slider_frames_is_deterministic_and_ids_differ_by_content():
    frames = draw_frames(_draw, [0.0, 0.5], figsize=(2, 2), dpi=40)
    other = draw_frames(_draw, [0.0, -0.5], figsize=(2, 2), dpi=40)
    assert slider_frames(frames, [0.0, 0.5]).html == slider_frames(frames, [0.0, 0.5]).html
    ids = {re.search(r'id="([^"]+)"', slider_frames(f, [0.0, 0.5]).html).group(1) for f in (frames, other)}
    assert len(ids) == 2


def test_label_is_escaped():
    out = slider_frames([b"png"], [0.0], label='<b>"x"</b>')
    assert "<b>" not in out.html


@pytest.mark.parametrize(
    "frames, values, start, message",
    [([], [], 0, "one frame per value"), ([b"a"], [0.0, 1.0], 0, "one frame per value"), ([b"a"], [0.0], 1, "start")],
)
def test_bad_input_is_refused_with_a_clear_message(frames, values, start, message):
    with pytest.raises(ValueError, match=message):
        slider_frames(frames, values, start=start)


def test_draw_frames_needs_values():
    with pytest.raises(ValueError, match="at least one value"):
        draw_frames(_draw, [])


def test_a_readout_with_markup_characters_is_escaped():
    frames = [b"\x89PNG one", b"\x89PNG two"]
    out = slider_frames(frames, ['a "quoted" <b>', "x & y"], label="kind", fmt="{}").html
    assert "<b>" not in out and '"quoted"' not in out
    assert "&lt;b&gt;" in out and "x &amp; y" in out
