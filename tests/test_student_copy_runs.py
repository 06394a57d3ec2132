"""The student copy runs as its own README says: `make student`, a fresh virtual environment, the README's
install command, then every notebook of the copy top to bottom in the reduced profile (nbval, lax).

Two things differ from a student's laptop, both on purpose. PyTorch comes from `constraints-cpu.txt` (the
CPU build; the README's line for the PyTorch CPU index needs a site this machine cannot reach), and
transformers is pinned to 4.40.0, the lowest release the collection declares (`hf` extra, environment.yml),
so that this test is also the test of that lower bound. Minutes, not seconds: it installs a Jupyter stack.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOWEST_TRANSFORMERS = "4.40.0"  # the `hf` extra's lower bound, kept in step with pyproject.toml


def test_lowest_transformers_is_what_the_collection_declares():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'hf = ["transformers>={LOWEST_TRANSFORMERS.removesuffix(".0")}"]' in pyproject
    assert f"transformers>={LOWEST_TRANSFORMERS.removesuffix('.0')}" in (ROOT / "environment.yml").read_text()


def test_the_student_copy_installs_as_its_readme_says_and_every_notebook_runs(tmp_path):
    dest, env_dir = tmp_path / "student", tmp_path / "venv"
    subprocess.run([sys.executable, str(ROOT / "tools" / "student_copy.py"), str(ROOT / "notebooks"), str(dest)],
                   check=True, capture_output=True, timeout=300)
    readme = (dest / "README.md").read_text()
    install = re.search(r"^\.venv/bin/pip install (-e .*jupyterlab)$", readme, re.M)
    assert install, "the student README must say how to install the copy"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text((ROOT / "constraints-cpu.txt").read_text() + f"transformers=={LOWEST_TRANSFORMERS}\n")
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(constraints)]
    done = subprocess.run([*pip, *shlex.split(install.group(1)), "nbval", "pytest"], cwd=dest, capture_output=True,
                          text=True, timeout=2400)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}", LCLIB_FAST="1", CI="1")
    run = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          "--nbval-current-env", "notebooks"], cwd=dest, env=env, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stdout[-5000:]
    ran = re.search(r"(\d+) passed", run.stdout)
    assert ran and int(ran.group(1)) > 200, run.stdout[-2000:]  # every cell of every notebook, not an empty run
    version = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import transformers; print(transformers.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == LOWEST_TRANSFORMERS
