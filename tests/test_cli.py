"""Every command line answers bad input with one line: exit 2 for a bad argument, 1 for a failure."""

import subprocess
import sys
from pathlib import Path

import pytest

from lclib import cli

ROOT = Path(__file__).resolve().parents[1]
KV = str(ROOT / "weights" / "lost_in_the_middle" / "skewed_seed0")
RULER = str(ROOT / "weights" / "effective_context" / "base")


def _not_json(tmp_path: Path) -> str:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{ this is not json")
    return str(folder)


# (id, main, argv, exit status, words the one line must contain)
CASES = [
    ("sweep-samples-0", cli.main, ["position-sweep", "--checkpoint", KV, "--pairs", "4", "--samples", "0"], 2, "--samples"),
    ("sweep-pairs-word", cli.main, ["position-sweep", "--checkpoint", KV, "--pairs", "four"], 2, "--pairs"),
    ("sweep-missing-folder", cli.main, ["position-sweep", "--checkpoint", "no/such/folder", "--pairs", "4"], 1, "no/such/folder"),
    ("sweep-ruler-checkpoint", cli.main, ["position-sweep", "--checkpoint", RULER, "--pairs", "4"], 1, "RULER-lite checkpoint"),
    ("sweep-not-json", cli.main, ["position-sweep", "--checkpoint", "NOT_JSON", "--pairs", "4"], 1, "error"),
    ("ruler-empty-length", cli.main, ["ruler", "--checkpoint", RULER, "--lengths", "160,,320"], 2, "--lengths"),
    ("ruler-million-tokens", cli.main, ["ruler", "--checkpoint", RULER, "--lengths", "1000000"], 2, "--lengths"),
    ("ruler-samples-0", cli.main, ["ruler", "--checkpoint", RULER, "--samples", "0"], 2, "--samples"),
    ("ruler-scale-nan", cli.main, ["ruler", "--checkpoint", RULER, "--scale", "nan"], 2, "--scale"),
    ("ruler-threshold-above-1", cli.main, ["ruler", "--checkpoint", RULER, "--threshold", "1.5"], 2, "--threshold"),
    ("ruler-unknown-method", cli.main, ["ruler", "--checkpoint", RULER, "--method", "magic"], 2, "--method"),
    # the default lengths L..8L come from --original-max-len: refused before loading, not read for hours
    ("ruler-original-max-len-huge", cli.main, ["ruler", "--checkpoint", RULER, "--original-max-len", "100000"], 1,
     "--original-max-len"),
    ("ruler-samples-huge", cli.main, ["ruler", "--checkpoint", RULER, "--lengths", "256", "--samples", "100000000"], 1,
     "--samples"),
    ("sweep-pairs-huge", cli.main, ["position-sweep", "--checkpoint", KV, "--pairs", "10000000"], 1, "MAX_SWEEP_TOKENS"),
    ("ruler-kv-checkpoint", cli.main, ["ruler", "--checkpoint", KV], 1, "not a RULER-lite checkpoint"),
    ("ruler-unknown-task", cli.main, ["ruler", "--checkpoint", RULER, "--tasks", "bogus", "--lengths", "256"], 1, "bogus"),
    ("ruler-missing-folder", cli.main, ["ruler", "--checkpoint", "no/such/folder"], 1, "no/such/folder"),
    ("train-steps-0", cli.main, ["train", "--out", "OUT", "--steps", "0"], 2, "--steps"),
    ("train-three-pairs", cli.main, ["train", "--out", "OUT", "--pairs", "1", "2", "3"], 2, "--pairs"),
    ("train-negative-lr", cli.main, ["train", "--out", "OUT", "--lr", "-1"], 2, "--lr"),
    ("train-unknown-encoding", cli.main, ["train", "--out", "OUT", "--steps", "1", "--pos-encoding", "magic"], 1, "pos_encoding"),
    ("train-unknown-demand", cli.main, ["train", "--out", "OUT", "--steps", "1", "--demand", "magic"], 1, "'magic'"),
]


@pytest.mark.parametrize("main, argv, status, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_command_line_is_one_line(main, argv, status, words, tmp_path, capsys, within):
    argv = [_not_json(tmp_path) if a == "NOT_JSON" else str(tmp_path / "out") if a == "OUT" else a for a in argv]

    def run():
        try:
            return main(argv)
        except SystemExit as e:  # argparse exits on a bad argument
            return e.code

    code = within(30, run)  # bad input is refused at once: a command that starts the work instead fails here
    err = capsys.readouterr().err
    assert code == status, err
    last = err.strip().splitlines()[-1]
    assert last.count("error:") == 1 and words in last, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_debug_shows_the_traceback():
    with pytest.raises(FileNotFoundError, match="folder"):
        cli.main(["position-sweep", "--checkpoint", "no/such/folder", "--pairs", "4", "--debug"])


@pytest.mark.parametrize("script, argv, status", [
    ("tools/train_lost_in_the_middle.py", ["--steps", "0"], 2),
    ("tools/train_effective_context.py", ["--out", "no/such/folder", "--only", "pi_ft"], 1),
    ("tools/reproduce.py", ["--only", "everything"], 2),
])
def test_training_tools_fail_in_one_line(script, argv, status):
    run = subprocess.run([sys.executable, script, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == status, run.stderr
    assert run.stderr.strip().splitlines()[-1].count("error:") == 1 and "Traceback" not in run.stderr


COMMANDS = ("train", "stamp", "position-sweep", "ruler", "env")


def test_one_entry_point_lists_every_command():
    run = subprocess.run([sys.executable, "-m", "lclib", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert all(command in run.stdout for command in COMMANDS), run.stdout
    bare = subprocess.run([sys.executable, "-m", "lclib"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and bare.stderr.strip().splitlines()[-1].count("error:") == 1


def test_the_command_lines_import_no_torch_until_a_command_runs():
    """`python -m lclib env` must answer where torch is missing: the parsers are built from the standard library."""
    code = ("import sys\nfrom lclib import cli\ntry:\n    cli.main(['env', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip().splitlines()[-1] == "False", run.stdout + run.stderr


def test_only_the_cli_package_holds_command_lines():
    """No library module defines main or runs as a script: command lines live in lclib/cli/ (issue 28)."""
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "lclib").rglob("*.py"))
                 if "cli" not in path.relative_to(ROOT / "lclib").parts[:1] and path.name != "__main__.py"
                 and ("\ndef main(" in path.read_text() or '__name__ == "__main__"' in path.read_text())]
    assert not offenders, offenders
