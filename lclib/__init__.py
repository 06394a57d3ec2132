"""lclib: the small library behind "Long-Context Models, hands-on".

One concept per module, read from the ground up (the README's layout gives each a line):
the ground (``validate``, ``run_profile``, ``repro``, ``plotting``, ``digest``, ``env``); positions and their
maths (``rope``, ``scaling``, ``spectrum``, ``kernels``, ``dilated/``); the model (``positions``,
``generation``, ``kv/``, ``model``); the lab (``kv_task``, ``checkpoint``, ``train``, ``probes``); the
benchmarks (``ruler/``, ``retrieval``); and on top ``checks/`` (the exercises' checkers) and ``cli/``
(``python -m lclib <command>``). Imports only run downward. Importing ``lclib`` imports none of them:
``from lclib import rope``.
"""

__version__ = "0.1.0"
