"""Plots (pure: numpy in, PNG files out). Uses matplotlib's non-interactive Agg backend."""

from __future__ import annotations

import pathlib

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | pathlib.Path) -> pathlib.Path:
    """Save ``fig`` as a PNG at ``path`` and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _finish(fig, ax, path: str | pathlib.Path, title: str = "", **legend) -> pathlib.Path:
    """Draw the legend (no frame; ``legend``: more options of ``ax.legend``) and the title (if any), save."""
    ax.legend(frameon=False, **legend)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _parity(reference: np.ndarray, predicted: dict[str, np.ndarray], label: str, path) -> pathlib.Path:
    """Scatter each model's values against ``reference`` around the diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    reference = np.asarray(reference).ravel()
    values = [reference] + [np.asarray(v).ravel() for v in predicted.values()]
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6", lw=1)
    for name, vals in predicted.items():
        ax.scatter(reference, np.asarray(vals).ravel(), s=14, alpha=0.75, label=name)
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel(f"DFT {label}")
    ax.set_ylabel(f"MLIP {label}")
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_energy_profile(
    coordinate: np.ndarray,
    dft_relative: np.ndarray,
    predicted_relative: dict[str, np.ndarray],
    path: str | pathlib.Path,
    xlabel: str = "coordinate (Å)",
    title: str = "",
) -> pathlib.Path:
    """Relative energy (eV) along a scan or path: DFT against each model."""
    plt = _pyplot()
    order = np.argsort(coordinate)
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    ax.plot(coordinate[order], dft_relative[order], "ko-", lw=2, label="DFT (pw.x)")
    markers = "s^Dv<>p"
    for k, (name, values) in enumerate(predicted_relative.items()):
        ax.plot(coordinate[order], values[order], marker=markers[k % len(markers)], ls="--", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("relative energy (eV)")
    ax.axhline(0.0, color="0.8", lw=0.8)
    return _finish(fig, ax, path, title)


def plot_force_parity(dft_forces: np.ndarray, predicted: dict[str, np.ndarray], path: str | pathlib.Path) -> pathlib.Path:
    """Parity plot of force components (eV/Å): model against DFT."""
    return _parity(dft_forces, predicted, "force component (eV/Å)", path)


def plot_energy_parity(dft_relative: np.ndarray, predicted: dict[str, np.ndarray], path: str | pathlib.Path) -> pathlib.Path:
    """Parity plot of relative energies (eV): model against DFT, same reference frames for both."""
    return _parity(dft_relative, predicted, "relative energy (eV)", path)


def plot_site_energies(
    sites: list[str], dft: np.ndarray, predicted: dict[str, np.ndarray], path: str | pathlib.Path, title: str = ""
) -> pathlib.Path:
    """Adsorption energy (eV) per site: DFT and each model side by side."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    series = {"DFT (pw.x)": np.asarray(dft), **{k: np.asarray(v) for k, v in predicted.items()}}
    width = 0.8 / len(series)
    x = np.arange(len(sites))
    for k, (name, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=name,
               color="k" if k == 0 else None)
    ax.set_xticks(x, sites)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_ylabel("adsorption energy (eV)")
    return _finish(fig, ax, path, title)


def plot_neb_profiles(
    dft_relative: np.ndarray,
    mlip_neb_relative: dict[str, np.ndarray],
    on_dft_band_relative: dict[str, np.ndarray],
    path: str | pathlib.Path,
    title: str = "",
) -> pathlib.Path:
    """Energy (eV, relative to each band's initial image) along the band, as a fraction of the band.

    DFT NEB (black), each model's own NEB (dashed) and each model's energies on the DFT NEB images
    (dotted, same colour): the first shows the barrier error of the model's own NEB, the second the
    energy error at DFT geometries.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    dft_relative = np.asarray(dft_relative, dtype=float)
    x_dft = np.linspace(0.0, 1.0, len(dft_relative))
    ax.plot(x_dft, dft_relative, "ko-", lw=2, label="DFT NEB (neb.x)")
    markers = "s^Dv<>p"
    for k, (name, values) in enumerate(mlip_neb_relative.items()):
        values = np.asarray(values, dtype=float)
        line, = ax.plot(np.linspace(0.0, 1.0, len(values)), values, marker=markers[k % len(markers)], ls="--",
                        label=f"{name} NEB")
        if name in on_dft_band_relative:
            ax.plot(x_dft, np.asarray(on_dft_band_relative[name], dtype=float), ls=":", color=line.get_color(),
                    marker=markers[k % len(markers)], mfc="none", label=f"{name} on DFT band")
    ax.set_xlabel("position along the band (initial 0, final 1)")
    ax.set_ylabel("relative energy (eV)")
    ax.axhline(0.0, color="0.8", lw=0.8)
    return _finish(fig, ax, path, title, fontsize=7)
