"""The shared parts: profile switch, seeding, figure saving, environment.yml, checkers."""

import base64
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # only this test process; notebooks keep their inline backend
import matplotlib.pyplot as plt
import pytest
import torch

from lclib import checks, plotting, repro, rope, run_profile

ROOT = Path(__file__).resolve().parents[1]


def _flag(env: dict) -> str:
    code = "from lclib import run_profile; print(run_profile.FAST, run_profile.pick(1, 2), run_profile.tag('t'))"
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "LCLIB_FAST")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True).stdout.strip()


def test_profile_switch():
    assert _flag({}) == "False 1 t"
    assert _flag({"CI": "true"}) == "True 2 t (FAST)"
    assert _flag({"LCLIB_FAST": "1"}) == "True 2 t (FAST)"
    assert _flag({"CI": "true", "LCLIB_FAST": "0"}) == "False 1 t"


def test_seed_everything_is_deterministic():
    repro.seed_everything(3)
    a = torch.randn(4)
    repro.seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    with pytest.raises(TypeError, match="seed"):
        repro.seed_everything(1.5)


def test_banner_names_profile_and_device():
    text = repro.banner()
    assert f"profile {run_profile.NAME}" in text and "torch" in text and repro.device().type in text


def test_save_fig_writes_png_and_svg_reproducibly(tmp_path, monkeypatch):
    monkeypatch.setenv("LCLIB_FIGURES", str(tmp_path))
    monkeypatch.setattr(run_profile, "FAST", False)
    plotting.set_style()
    paths = []
    for _ in range(2):
        fig, ax = plt.subplots()
        plotting.lines([1, 2, 3], {"a": [1, 4, 9]}, ax=ax, logx=2)
        paths.append([p.read_bytes() for p in plotting.save_fig(fig, "00_test/curve")])
        plt.close(fig)
    assert (tmp_path / "00_test/curve.png").exists() and (tmp_path / "00_test/curve.svg").exists()
    assert paths[0] == paths[1], "the same figure must give the same bytes"
    monkeypatch.setattr(run_profile, "FAST", True)
    fig, _ = plt.subplots()
    assert plotting.save_fig(fig, "00_test/skipped") == []
    assert not (tmp_path / "00_test/skipped.png").exists()
    with pytest.raises(ValueError, match="name"):
        plotting.save_fig(fig, "/abs/path")
    plt.close("all")


def test_show_displays_the_figure_with_its_alt_text_and_closes_it(tmp_path, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append((a, k)))
    monkeypatch.setenv("LCLIB_FIGURES", str(tmp_path))
    monkeypatch.setattr(run_profile, "FAST", False)
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1, 4, 9])
    alt = "Line chart of y against x: three points rising from 1 to 9."
    plotting.show(fig, alt, save_as="00_test/shown")
    (bundle,), kwargs = shown[0]
    assert bundle["text/plain"] == alt and kwargs["metadata"] == {"image/png": {"alt": alt}} and kwargs["raw"]
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"  # a PNG, base64 as Jupyter stores it
    assert (tmp_path / "00_test/shown.png").exists()
    assert not plt.fignum_exists(fig.number)  # closed: the inline backend will not draw it a second time


def test_heatmap_returns_axes_and_rejects_1d():
    ax = plotting.heatmap([[0, 1], [1, 0]], x=[10, 20], y=["a", "b"])
    assert ax.get_xticklabels()[1].get_text() == "20"
    with pytest.raises(ValueError, match="2-D"):
        plotting.heatmap([1, 2, 3])
    plt.close("all")


def _names(requirements):
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_names_every_dependency():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = _names(meta["dependencies"]) | _names(meta["optional-dependencies"]["dev"])
    listed = {re.split(r"[<>=! ]", line.strip()[2:], maxsplit=1)[0].lower()
              for line in (ROOT / "environment.yml").read_text().splitlines() if line.strip().startswith("- ")}
    conda_names = {"torch": "pytorch"}
    missing = {n for n in needed if conda_names.get(n, n) not in listed}
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    assert "python=3.11" in listed or any(x.startswith("python") for x in listed)


def test_torch_is_a_range_not_a_pin():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(d for d in deps if d.startswith("torch"))
    assert "==" not in torch_req


def _stub(*args):
    raise NotImplementedError


def _rotate(x, positions, inv_freq, layout):
    """RoPE written out (the checker hides lclib's own while the answer runs): pairs (2i, 2i+1) or (i, i+d/2)."""
    angles = positions.double()[:, None] * inv_freq.double()[None, :]  # (seq_len, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    if layout == "interleaved":
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    a, b = x.chunk(2, dim=-1)
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)


def test_rope_checkers_fail_on_wrong_answers_and_pass_on_right_ones(capsys):
    assert checks.check_rope_interleaved(_stub) is False
    assert "Not done yet" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="half-split"):
        checks.check_rope_interleaved(lambda x, p, f: _rotate(x, p, f, "half"))
    with pytest.raises(checks.CheckFailed, match="-angle"):
        checks.check_rope_interleaved(lambda x, p, f: _rotate(x, -p, f, "interleaved"))
    with pytest.raises(checks.CheckFailed, match="write it yourself"):
        checks.check_rope_interleaved(lambda x, p, f: rope.apply_rope(x, p, f, "interleaved"))
    assert checks.check_rope_interleaved(lambda x, p, f: _rotate(x, p, f, "interleaved")) is True
    assert "Correct" in capsys.readouterr().out

    def right_score(q, k, offset):
        return q @ rope.apply_rope(k[None], torch.tensor([-offset]), rope.inv_freq(q.shape[-1]))[0]

    assert checks.check_relative_score(right_score) is True
    assert checks.check_relative_score(_stub) is False
    with pytest.raises(checks.CheckFailed, match="sign"):
        checks.check_relative_score(lambda q, k, o: right_score(q, k, -o))

    def first_beyond(head_dim, base, context_len):
        return int((rope.wavelengths(rope.inv_freq(head_dim, base)) <= context_len).sum())

    assert checks.check_first_pair_beyond(first_beyond) is True
    assert checks.check_first_pair_beyond(_stub) is False
    with pytest.raises(checks.CheckFailed, match="off by one"):
        checks.check_first_pair_beyond(lambda *a: first_beyond(*a) + 1)
