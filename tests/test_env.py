"""lclib.env (issue 30, item 4): `python -m lclib env` says OK or the fix for each requirement.

On this repository every line is OK (or a WARN) and the exit status 0; each check fails, with its fix, on a
case built to break it: a Python or torch outside the range, a requirement the installed version does not
meet, a checkpoint whose weights no longer match their SHA-256, a figures folder that is a file.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from lclib import cli, env

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = "weights/dilated/dilated_L1"  # the smallest shipped checkpoint


def run_main(capsys, *argv: str) -> tuple[int, list[str]]:
    code = cli.main(["env", *argv])
    return code, capsys.readouterr().out.splitlines()


def test_main_on_this_repository_is_all_ok(capsys, monkeypatch):
    monkeypatch.delenv("LCLIB_FIGURES", raising=False)
    monkeypatch.delenv("LCLIB_DEVICE", raising=False)
    code, lines = run_main(capsys, "--root", str(ROOT))
    assert code == 0, lines
    assert not [line for line in lines if line.startswith("FAIL")], lines
    ok = {line.split()[1] for line in lines if line.startswith("OK ")}
    _, requirements = env.declared()
    base = {Requirement(r).name for r in requirements if "extra" not in r}
    assert {"python", "torch", "weights", "figures"} | base <= ok, lines
    assert any(line.startswith("OK   torch") and ("on the CPU" in line or "on CUDA" in line) for line in lines), lines
    n = len(list((ROOT / "weights").rglob("config.json")))
    assert f"OK   weights {n} checkpoints, SHA-256 verified" in lines
    assert any(line.startswith(("OK   jupyter kernel", "WARN jupyter kernel")) for line in lines), lines


def test_the_command_line_runs():
    run = subprocess.run([sys.executable, "-m", "lclib", "env", "--root", str(ROOT)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "LCLIB_FIGURES": ""})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0].startswith("OK   python")


def test_python_outside_the_range_fails_with_the_fix():
    bad = env.check_python(">=3.10", "3.9.18")
    assert not bad.ok and bad.line().startswith("FAIL python 3.9.18") and "venv" in bad.fix
    assert env.check_python(">=3.10", "3.12.1").ok
    assert env.check_python(">=3.10").ok  # this interpreter runs the tests


def test_torch_outside_the_declared_range_fails_with_the_pip_command():
    bad = env.check_torch(["torch>=99.0", "numpy>=1"])
    assert not bad.ok
    assert "the notebooks need torch>=99.0" in bad.line()
    assert bad.fix == "pip install -c constraints-cpu.txt 'torch>=99.0'"
    good = env.check_torch(["torch>=2.3"])
    assert good.ok and not good.fix and ("threads" in good.detail or "CUDA" in good.detail)


@pytest.mark.parametrize("device", ["toaster", "meta"])  # not a device; a device the notebooks cannot run on
def test_torch_names_a_bad_device_setting(monkeypatch, device):
    monkeypatch.setenv("LCLIB_DEVICE", device)
    bad = env.check_torch(["torch>=2.3"])
    assert not bad.ok and "LCLIB_DEVICE" in bad.line() and "unset LCLIB_DEVICE" in bad.fix


def test_package_the_installed_version_does_not_meet_fails():
    (numpy,) = env.check_packages(["numpy>=999"])
    assert not numpy.ok and "needs >=999" in numpy.detail and numpy.fix == "pip install 'numpy>=999'"
    (missing,) = env.check_packages(["no-such-package-lclib>=1"])
    assert not missing.ok and "is not installed" in missing.detail
    (fine,) = env.check_packages(["numpy>=1.0"])
    assert fine.line().startswith("OK   numpy")


def test_a_missing_optional_extra_warns_unless_a_notebook_needs_it():
    (teach,) = env.check_packages(['no-such-package-lclib>=1; extra == "teach"'])
    assert teach.ok and teach.status == "WARN" and teach.fix.startswith("pip install") and "teach extra" in teach.line()
    (hf,) = env.check_packages(['transformers>=999; extra == "hf"'])
    assert not hf.ok and "notebook 06" in hf.line()
    assert env.check_packages(['numpy>=999; python_version < "3"']) == []  # not for this platform: not checked
    assert [c.name for c in env.check_packages(["torch>=2.3", "numpy"])] == ["numpy"]  # torch has its own line


def copy_checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / CHECKPOINT
    shutil.copytree(ROOT / CHECKPOINT, folder)
    return folder


def test_weights_verify_on_a_copy(tmp_path):
    copy_checkpoint(tmp_path)
    (check,) = env.check_weights(tmp_path)
    assert check.ok and check.detail == "1 checkpoints, SHA-256 verified"


def test_weights_whose_checksum_does_not_match_fail(tmp_path):
    folder = copy_checkpoint(tmp_path)
    blob = bytearray((folder / "model.safetensors").read_bytes())
    blob[-1] ^= 1  # one flipped bit in the last tensor
    (folder / "model.safetensors").write_bytes(bytes(blob))
    (check,) = env.check_weights(tmp_path)
    assert not check.ok and check.name == CHECKPOINT and "SHA-256" in check.detail
    assert check.fix == f"restore it: git checkout -- {CHECKPOINT}"


def test_weights_without_a_checksum_or_tensors_fail(tmp_path):
    folder = copy_checkpoint(tmp_path)
    data = json.loads((folder / "config.json").read_text())
    del data["weights_sha256"]
    (folder / "config.json").write_text(json.dumps(data))
    (check,) = env.check_weights(tmp_path)
    assert not check.ok and "python -m lclib stamp" in check.fix
    (folder / "model.safetensors").unlink()
    (check,) = env.check_weights(tmp_path)
    assert not check.ok and "no model.safetensors" in check.detail
    (none,) = env.check_weights(tmp_path / "empty")
    assert not none.ok and "--root" in none.fix


def test_figures_folder_that_cannot_be_written_fails(tmp_path):
    assert env.check_figures(tmp_path).ok
    assert env.check_figures(tmp_path / "not" / "yet").ok  # save_fig creates it
    assert not (tmp_path / "not").exists()  # the check creates nothing
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for path in (a_file, a_file / "below"):
        check = env.check_figures(path)
        assert not check.ok and "LCLIB_FIGURES" in check.fix


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_figures_folder_fails(tmp_path):
    folder = tmp_path / "figures"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert not env.check_figures(folder).ok
    finally:
        folder.chmod(0o700)


def test_main_exits_1_on_a_failure(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    monkeypatch.setenv("LCLIB_FIGURES", str(a_file))  # where save_fig would write: a file
    copy_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT / "model.safetensors").write_bytes(b"replaced")
    code, lines = run_main(capsys, "--root", str(tmp_path))
    assert code == 1
    fails = [line for line in lines if line.startswith("FAIL")]
    assert [line.split()[1] for line in fails] == [CHECKPOINT, "figures"], lines


def test_missing_kernel_fails_with_the_install_command(monkeypatch):
    kernelspec = pytest.importorskip("jupyter_client.kernelspec")

    def no_kernel(self, name):
        raise kernelspec.NoSuchKernel(name)

    assert env.check_kernel().ok
    monkeypatch.setattr(kernelspec.KernelSpecManager, "get_kernel_spec", no_kernel)
    check = env.check_kernel()
    assert not check.ok and "ipykernel install" in check.fix and "--name python3" in check.fix


def test_bad_root_is_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["env", "--root", "no/such/folder"])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.count("error:") == 1 and "--root" in last and "no/such/folder" in last
