"""flowlib.apps.plot: the course style, shared density scales, and what the Jacobian picture shows."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import flowlib as fl  # noqa: E402
from flowlib.apps import plot  # noqa: E402


def log_normal(scale: float):
    # log N(x; 0, scale^2 I) in two dimensions
    return lambda x: -0.5 * (x**2).sum(1) / scale**2 - math.log(2 * math.pi * scale**2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_use_course_style_sets_dpi_and_fonts():
    with matplotlib.rc_context({"figure.dpi": 80, "legend.fontsize": 8}):
        plot.use_course_style()
        assert plt.rcParams["figure.dpi"] == 100
        assert plt.rcParams["legend.fontsize"] >= 9


def test_figure_png_is_a_png_of_the_figure_size():
    fig = matplotlib.figure.Figure(figsize=(2, 1), dpi=100)
    fig.subplots().plot([0, 1])
    img = Image.open(io.BytesIO(plot.figure_png(fig)))
    assert img.format == "PNG" and img.size == (200, 100)


def test_density_grid_matches_log_density_grid():
    X, Y, P = plot.density_grid(log_normal(1.0), bounds=3, resolution=31)
    _, _, logp = plot.log_density_grid(log_normal(1.0), bounds=3, resolution=31)
    assert P.shape == (31, 31) and np.allclose(np.log(P), logp, atol=1e-5)
    assert math.isclose(P[15, 15], 1 / (2 * math.pi), rel_tol=1e-5)  # the centre of the grid is the origin
    assert math.isclose(P.sum() * (6 / 30) ** 2, 1.0, abs_tol=0.02)


def test_density_2d_keeps_old_call_and_adds_ticks_and_colorbar():
    fig, ax = plt.subplots()
    plot.plot_density_2d(log_normal(1.0), ax, 4, 50, "old positional call", "viridis", ticks=False)
    assert list(ax.get_xticks()) == [] and ax.get_title() == "old positional call"
    fig, ax = plt.subplots()
    plot.plot_density_2d(log_normal(1.0), ax, resolution=50, colorbar=True)
    assert len(ax.get_xticks()) > 0 and ax.get_xlabel() == "$x_0$"
    assert len(fig.axes) == 2 and "per unit area" in fig.axes[1].get_ylabel()


def test_density_2d_log_clips_floor_below_max():
    fig, ax = plt.subplots()
    plot.plot_density_2d(log_normal(1.0), ax, resolution=51, log=True, floor=6.0, colorbar=True)
    vmin, vmax = ax.images[0].get_clim()
    assert math.isclose(vmax, -math.log(2 * math.pi), rel_tol=1e-4) and math.isclose(vmax - vmin, 6.0)
    assert "nats" in fig.axes[1].get_ylabel()


@pytest.mark.parametrize("log", [False, True])
def test_densities_2d_share_one_scale(log):
    # a broad density next to a sharp one: on a shared scale the broad one's peak is far below the top
    fig, axes = plt.subplots(1, 2)
    cbar = plot.plot_densities_2d([log_normal(2.0), log_normal(0.5)], axes, ["broad", "sharp"], resolution=81, log=log)
    clims = [ax.images[0].get_clim() for ax in axes]
    assert clims[0] == clims[1]
    peak_sharp = -math.log(2 * math.pi * 0.25)
    assert math.isclose(clims[0][1], peak_sharp if log else math.exp(peak_sharp), rel_tol=1e-3)
    broad = axes[0].images[0].get_array()
    assert broad.max() < 0.1 * clims[0][1] if not log else broad.max() < clims[0][1] - 2
    assert cbar is not None and [ax.get_title() for ax in axes] == ["broad", "sharp"]


def test_jacobian_default_is_linear_and_symmetric():
    fig, ax = plt.subplots()
    plot.plot_jacobian(torch.tensor([[2.0, 0.0], [-0.5, 1.0]]), ax=ax, title="t")
    norm = ax.images[0].norm
    assert (norm.vmin, norm.vmax) == (-2.0, 2.0) and type(norm).__name__ == "Normalize"


def test_jacobian_symlog_lifts_small_entries():
    jac = torch.tensor([[100.0, 0.0], [0.5, 1.0]])
    fig, axes = plt.subplots(1, 2)
    plot.plot_jacobian(jac, ax=axes[0])
    plot.plot_jacobian(jac, ax=axes[1], symlog=True)
    linear, symlog = (ax.images[0].norm(0.5) - 0.5 for ax in axes)
    assert linear < 0.01 < 0.2 < symlog  # 0.5 is almost white on the linear scale, clearly coloured on symlog
    assert list(axes[1].images[0].colorbar.get_ticks()) == [-100, -10, -1, 0, 1, 10, 100]  # decades, no crowding


def test_jacobian_marks_exact_zeros_and_draws_blocks():
    jac = torch.tensor([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [1e-9, 0.2, 2.0]])
    fig, ax = plt.subplots()
    plot.plot_jacobian(jac, ax=ax, mark_zeros=True, blocks=[1], labels=["a", "b", "c"])
    shown = ax.images[0].get_array()
    assert shown.mask.sum() == 3 and not shown.mask[2, 0]  # 1e-9 is not an exact zero
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert sorted((p.get_x() + 0.5, p.get_y() + 0.5) for p in hatched) == [(1, 0), (2, 0), (2, 1)]
    assert ax.get_legend().get_texts()[0].get_text() == "exactly 0"
    assert sorted((list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines) == [
        ([0, 1], [0.5, 0.5]), ([0.5, 0.5], [0, 1])]  # the block boundary, across and down
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]


def test_plot_samples_and_warped_grid_draw():
    fig, axes = plt.subplots(1, 2)
    plot.plot_samples(torch.randn(50, 2), axes[0], title="s")
    plot.plot_warped_grid(lambda v: 2 * v, axes[1], bounds=1, lines=3, points=5)
    assert len(axes[0].collections) == 1 and len(axes[1].lines) == 6
    assert np.allclose(np.abs(axes[1].lines[0].get_xydata()).max(), 2.0)


def test_module_is_exported():
    assert fl.plot is plot
