"""Is this machine ready for the notebooks? ``python -m lclib env`` prints one line per requirement.

Each line is OK, WARN (works, with advice) or FAIL followed by the fix; the exit status is 1 when any line
fails. Checked: Python against lclib's requires-python; torch against its declared range, and where the
notebooks will run it; every package lclib declares (its extras dev, hf, teach too: a missing extra is a
WARN unless a notebook needs it); the shipped weights against the SHA-256 in their config.json (hashed, not
loaded); a writable figures folder; and the Jupyter kernel. ``--root PATH`` names the repository root.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from .digest import sha256_file

# packages of the optional extras that a notebook cannot run without, and why
NOTEBOOKS_NEED = {"transformers": "notebook 06 imports it", "ipykernel": "Jupyter runs the notebooks with it"}


@dataclass(frozen=True)
class Check:
    """One requirement: ok False is a failure; ok True with a fix is a warning (it works, but see the fix)."""

    name: str  # what was checked: "python", "torch", a package, a checkpoint folder
    ok: bool
    detail: str  # what was found
    fix: str = ""  # one phrase: what to do

    @property
    def status(self) -> str:
        return "FAIL" if not self.ok else "WARN" if self.fix else "OK"

    def line(self) -> str:
        return f"{self.status:<4} {self.name} {self.detail}" + (f": {self.fix}" if self.fix else "")


def declared() -> tuple[str, list[str]]:
    """lclib's requires-python and its requirements (extras marked ``extra == "dev"``), as installed."""
    meta = importlib.metadata.metadata("lclib")
    return meta.get("Requires-Python") or "", importlib.metadata.requires("lclib") or []


def check_python(requires: str, version: str | None = None) -> Check:
    """This Python (or version) against requires (a specifier such as ">=3.10")."""
    if version is not None and not isinstance(version, str):
        raise TypeError(f"version must be a string such as '3.11.7' or None, got {type(version).__name__}")
    try:
        spec = SpecifierSet(requires)
    except (InvalidSpecifier, TypeError, AttributeError):
        raise (ValueError if isinstance(requires, str) else TypeError)(
            f"requires must be a version specifier such as '>=3.10', got {requires!r}") from None
    version = version or ".".join(map(str, sys.version_info[:3]))
    if spec.contains(version, prereleases=True):
        return Check("python", True, f"{version} ({requires})")
    return Check("python", False, f"{version}: lclib needs Python{requires}", "make .venv with a newer Python: "
                 "python3.11 -m venv .venv")


def _path(value: str | os.PathLike, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(value).__name__}")
    if not os.fspath(value):
        raise ValueError(f"{name} must name a folder, got an empty path")
    return Path(value)


def _requirements(requirements: list[str]) -> list[tuple[Requirement, str]]:
    """(requirement, extra or "") for those that apply to this platform."""
    if not isinstance(requirements, (list, tuple)):
        raise TypeError(f"requirements must be a list of requirement strings, got {type(requirements).__name__}")
    out = []
    for text in requirements:
        if not isinstance(text, str):
            raise TypeError(f"requirements must hold strings such as 'torch>=2.3', got {text!r}")
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise ValueError(f"requirements must hold requirement strings such as 'torch>=2.3', got {text!r}") from None
        extra = re.search(r"""extra\s*==\s*["']([^"']+)""", str(req.marker or ""))
        if extra or req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append((req, extra.group(1) if extra else ""))
    return out


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_torch(requirements: list[str]) -> Check:
    """torch's version against the declared range, and where the notebooks will run it (lclib.repro.device)."""
    req = next((r for r, _ in _requirements(requirements) if r.name == "torch"), Requirement("torch"))
    have, spec = _installed("torch"), str(req.specifier)
    pip = f"pip install {'' if '+cu' in (have or '') else '-c constraints-cpu.txt '}'{req}'"  # keep a CUDA build
    if have is None or not req.specifier.contains(have, prereleases=True):
        return Check("torch", False, f"{have or 'is not installed'}: the notebooks need torch{spec}", pip)
    import torch

    from . import repro
    try:
        device = repro.device()
    except ValueError as e:
        return Check("torch", False, f"{have}: {e}", "unset LCLIB_DEVICE, or set it to cpu")
    where = f"on the CPU ({torch.get_num_threads()} threads)"
    if device.type == "cuda" and torch.cuda.is_available():
        where = f"on CUDA ({torch.cuda.get_device_name(device)})"
    elif device.type != "cpu":  # forced by LCLIB_DEVICE
        usable = device.type == "mps" and torch.backends.mps.is_available()
        return Check("torch", usable, f"{have}: LCLIB_DEVICE={os.environ.get('LCLIB_DEVICE')} "
                     f"({'untested with the notebooks' if usable else 'not usable here'})", "unset LCLIB_DEVICE")
    elif torch.backends.mps.is_available():
        where += "; Apple MPS is present but unused (lclib.repro.device keeps the CPU)"
    return Check("torch", True, f"{have} ({spec}) runs {where}")


def check_packages(requirements: list[str]) -> list[Check]:
    """Each declared package but torch against its specifier; a missing optional extra is a WARN."""
    checks = []
    for req, extra in _requirements(requirements):
        if req.name == "torch":
            continue
        have, need = _installed(req.name), NOTEBOOKS_NEED.get(req.name)
        pip = f"pip install '{req.name}{req.specifier}'"
        where = f" ({extra} extra{': ' + need if need else ''})" if extra else ""
        if have is not None and req.specifier.contains(have, prereleases=True):
            checks.append(Check(req.name, True, f"{have} ({req.specifier}){where}"))
        else:
            found = f"{have}: needs {req.specifier}" if have else "is not installed"
            checks.append(Check(req.name, bool(extra) and not need, found + where, pip))
    return checks


def check_weights(root: Path) -> list[Check]:
    """Every root/weights/**/config.json: its model.safetensors present and matching weights_sha256."""
    root = _path(root, "root")
    configs = sorted((root / "weights").rglob("config.json"))
    if not configs:
        return [Check("weights", False, f"none under {root / 'weights'}", "run from the repository root, or pass --root")]
    bad = []
    for config in configs:
        folder, tensors = config.parent.relative_to(root).as_posix(), config.parent / "model.safetensors"
        try:
            want = json.loads(config.read_text()).get("weights_sha256")
        except (OSError, ValueError, AttributeError):
            want = None
        restore = f"restore it: git checkout -- {folder}"
        if not tensors.is_file():
            bad.append(Check(folder, False, "has no model.safetensors", restore))
        elif not isinstance(want, str):
            bad.append(Check(folder, False, "has no weights_sha256 in config.json",
                             f"{restore}, or if you trust it: python -m lclib stamp {folder}"))
        elif sha256_file(tensors) != want:
            bad.append(Check(folder, False, "model.safetensors does not match its SHA-256 (corrupted or replaced)", restore))
    return bad or [Check("weights", True, f"{len(configs)} checkpoints, SHA-256 verified")]


def check_figures(folder: Path) -> Check:
    """Can a notebook write figures to folder (or create it)? A temporary file is made and removed."""
    folder = _path(folder, "folder")
    probe = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    fix = "set LCLIB_FIGURES to a folder you can write, or make this one writable"
    if probe is None or not probe.is_dir():
        return Check("figures", False, f"{folder}: {probe} is not a folder", fix)
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        return Check("figures", False, f"{folder} is not writable ({e.strerror})", fix)
    return Check("figures", True, f"{folder} is writable")


def check_kernel() -> Check:
    """A 'python3' Jupyter kernel that runs this Python, where Jupyter is installed."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:  # Colab and JupyterHub bring their own
        return Check("jupyter kernel", True, "no Jupyter here", "to run the notebooks here: pip install jupyterlab")
    install = f"{sys.executable} -m ipykernel install --sys-prefix --name python3"
    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        return Check("jupyter kernel", False, "no 'python3' kernel", install)
    if os.path.abspath(argv0) != os.path.abspath(sys.executable) and argv0 not in ("python", "python3"):
        return Check("jupyter kernel", True, f"python3 runs {argv0}, not this Python", install)
    return Check("jupyter kernel", True, f"python3 runs {argv0}")


def run_checks(root: Path) -> list[Check]:
    """Every check, in the order printed."""
    root = _path(root, "root")
    try:
        requires, requirements = declared()
    except importlib.metadata.PackageNotFoundError:
        checks = [Check("lclib", False, "is not installed", "from the repository root: pip install -c constraints-cpu.txt -e .")]
    else:
        checks = [check_python(requires), check_torch(requirements), *check_packages(requirements)]
    try:
        from .plotting import figures_root  # where save_fig writes
        figures = figures_root()
    except ImportError:  # matplotlib missing (its own line says so): the folder is found the same way
        figures = Path(os.environ.get("LCLIB_FIGURES") or root / "figures")
    return [*checks, *check_weights(root), check_figures(figures), check_kernel()]
