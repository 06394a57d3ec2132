"""One plot style for the collection, one figure saver, figures shown with alt text, and small plot helpers.

Helpers take data and an optional ``ax``, return the axes, and never call ``plt.show()``.
This module knows nothing of models or notebooks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from . import run_profile


def set_style() -> None:
    """seaborn whitegrid with the colorblind palette; SVG ids salted so saved files are reproducible."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
    mpl.rcParams.update({"figure.dpi": 90, "savefig.dpi": 120, "svg.hashsalt": "lclib", "figure.autolayout": False})


def figures_root() -> Path:
    """Where figures go: $LCLIB_FIGURES, else figures/ at the repository root."""
    override = os.environ.get("LCLIB_FIGURES")
    return Path(override) if override else Path(__file__).resolve().parents[1] / "figures"


def save_fig(fig: mpl.figure.Figure, name: str) -> list[Path]:
    """Save fig as figures/<name>.png and .svg (name like "01_rope/wavelengths"); nothing in FAST.

    Metadata that changes between runs (dates, software version) is left out, so a rerun that
    computes the same numbers writes the same files. Returns the paths written.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str like '01_rope/wavelengths', got {type(name).__name__}")
    if not name or name.startswith("/") or ".." in name:
        raise ValueError(f"name must be a relative figure name like '01_rope/wavelengths', got {name!r}")
    if not isinstance(fig, mpl.figure.Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if run_profile.FAST:
        return []
    stem = figures_root() / name
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return [png, svg]


MIN_ALT_WORDS = 8  # "A figure." describes nothing: say what is plotted and what it shows


def show(fig: mpl.figure.Figure, alt: str, save_as: str | None = None) -> None:
    """Display fig inline with alt text, save it as figures/<save_as> when named (save_fig), then close it.

    alt says what a reader who cannot see the picture needs: the kind of chart, its axes, and what it
    shows, with the numbers computed on this run. It travels with the image in the notebook (output
    metadata "alt", which HTML exports put on the <img>) and as the output's plain-text form.
    """
    if not isinstance(fig, mpl.figure.Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if not isinstance(alt, str):
        raise TypeError(f"alt must be a str describing the figure, got {type(alt).__name__}")
    if len(alt.split()) < MIN_ALT_WORDS:
        raise ValueError(f"alt must describe the figure in at least {MIN_ALT_WORDS} words, got {alt!r}")
    if save_as is not None:
        save_fig(fig, save_as)
    from IPython.core.pylabtools import print_figure
    from IPython.display import display

    png = print_figure(fig, "png", bbox_inches="tight", base64=True)  # what the inline backend would show
    display({"image/png": png, "text/plain": alt}, metadata={"image/png": {"alt": alt}}, raw=True)
    plt.close(fig)  # shown once: the inline backend must not draw it again at the end of the cell


def _check_ax(ax: object) -> None:
    if ax is not None and not isinstance(ax, plt.Axes):
        raise TypeError(f"ax must be None or a matplotlib Axes, got {type(ax).__name__}")


def heatmap(
    data: np.ndarray,
    ax: plt.Axes | None = None,
    *,
    x: Sequence | None = None,
    y: Sequence | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    colorbar_label: str = "",
) -> plt.Axes:
    """A matrix as an image with optional tick values; data shape (len(y), len(x))."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data must be 2-D, got shape {data.shape}")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise TypeError(f"data must hold numbers, got dtype {data.dtype}")
    for name, values, size in (("x", x, data.shape[1]), ("y", y, data.shape[0])):
        if values is not None and len(values) != size:
            raise ValueError(f"{name} must have one label per {'column' if name == 'x' else 'row'} of data ({size}), "
                             f"got {len(values)}")
    _check_ax(ax)
    ax = ax if ax is not None else plt.subplots(figsize=(5, 4))[1]
    image = ax.imshow(data, aspect="auto", origin="upper", vmin=vmin, vmax=vmax, cmap=cmap,
                      interpolation="nearest")
    for values, set_ticks, set_labels, size in (
        (x, ax.set_xticks, ax.set_xticklabels, data.shape[1]),
        (y, ax.set_yticks, ax.set_yticklabels, data.shape[0]),
    ):
        if values is not None:
            idx = np.unique(np.linspace(0, size - 1, min(size, 8)).round().astype(int))
            set_ticks(idx)
            set_labels([str(values[i]) for i in idx])
    ax.grid(False)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    return ax


def lines(
    x: Sequence | np.ndarray,
    ys: Mapping[str, Sequence | np.ndarray],
    ax: plt.Axes | None = None,
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logx: bool | int = False,
    logy: bool = False,
    **kwargs,
) -> plt.Axes:
    """One line per entry of ys against the shared x; logx=2 gives a log2 axis (context lengths)."""
    if not isinstance(ys, Mapping):
        raise TypeError(f"ys must be a dict {{label: values}}, got {type(ys).__name__}")
    for label, y in ys.items():
        if len(np.asarray(y)) != len(np.asarray(x)):
            raise ValueError(f"ys[{label!r}] must have one value per x ({len(np.asarray(x))}), got {len(np.asarray(y))}")
    _check_ax(ax)
    ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]
    for label, y in ys.items():
        ax.plot(x, np.asarray(y), label=label, **kwargs)
    if logx:
        ax.set_xscale("log", base=2 if logx == 2 else 10)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if len(ys) > 1:
        ax.legend(fontsize="small")
    return ax
