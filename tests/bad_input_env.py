"""Bad-input cases for lclib.env (issue 30, item 4): the checks behind `python -m lclib env`.

A wrong type, a malformed specifier or requirement, an empty path: one ValueError or TypeError naming the
argument. A requirement that is not met is not bad input: the check returns a FAIL line (tests/test_env.py).
Loaded by tests/test_bad_input.py.
"""

from __future__ import annotations

from pathlib import Path

from lclib import env

EXEMPT = {
    "env.Check": "a plain record of one check's result, built by the checks",
    "env.declared": "no arguments",
    "env.check_kernel": "no arguments",
}


def register(case) -> None:
    case("env.check_python", "requires-int", TypeError, "requires", lambda: env.check_python(3))
    case("env.check_python", "requires-malformed", ValueError, "requires", lambda: env.check_python("3.10 or later"))
    case("env.check_python", "version-float", TypeError, "version", lambda: env.check_python(">=3.10", 3.11))
    case("env.check_torch", "requirements-str", TypeError, "requirements", lambda: env.check_torch("torch>=2.3"))
    case("env.check_torch", "requirements-none", TypeError, "requirements", lambda: env.check_torch(None))
    case("env.check_torch", "requirement-int", TypeError, "requirements", lambda: env.check_torch(["numpy", 2]))
    case("env.check_packages", "requirements-str", TypeError, "requirements", lambda: env.check_packages("numpy"))
    case("env.check_packages", "requirement-malformed", ValueError, "requirements",
         lambda: env.check_packages(["numpy >= = 1"]))
    case("env.check_weights", "root-int", TypeError, "root", lambda: env.check_weights(123))
    case("env.check_weights", "root-empty", ValueError, "root", lambda: env.check_weights(""))
    case("env.check_figures", "folder-none", TypeError, "folder", lambda: env.check_figures(None))
    case("env.check_figures", "folder-empty", ValueError, "folder", lambda: env.check_figures(""))
    case("env.run_checks", "root-list", TypeError, "root", lambda: env.run_checks([Path(".")]))
