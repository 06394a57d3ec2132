"""Reproducibility: seeding, device choice, and the banner every notebook prints first."""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

from . import run_profile, validate


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch.Generator seeded the same way."""
    seed = validate.integer("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def device() -> torch.device:
    """CUDA when present, else CPU (MPS is skipped: some ops we use are not reliable there yet)."""
    forced = os.environ.get("LCLIB_DEVICE")
    if forced:
        try:
            return torch.device(forced)
        except RuntimeError:
            raise ValueError(f"LCLIB_DEVICE must name a torch device such as 'cpu' or 'cuda:0', got {forced!r}") from None
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build() -> dict[str, str]:
    """What decides the last bits of a CPU training run besides its recipe and thread count: the torch build
    and the instruction set its CPU kernels use (AVX2, AVX512, ...), which set the order floats are summed in.
    Stored beside trained weights, so that a retrain knows whether it may expect the same bits."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def banner() -> str:
    """One line with versions, device and profile, for the first cell's output."""
    dev = device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    return (
        f"python {platform.python_version()} | torch {torch.__version__} | numpy {np.__version__} | "
        f"device {dev.type} ({name}) | profile {run_profile.NAME}"
    )


def setup_notebook(seed: int = 0) -> torch.device:
    """Seed everything, set the plot style, print the banner; return the device to use."""
    from . import plotting  # plotting is a sibling, imported lazily to keep repro light

    seed_everything(seed)
    plotting.set_style()
    print(banner())
    return device()
