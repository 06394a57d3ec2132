"""lclib: the small library behind "Long-Context Models, hands-on".

One concept per module: ``rope``, ``profile``, ``repro``, ``plotting``, ``checks`` (and, as the
collection grows, ``scaling``, ``dilated``, ``model``, ``tasks``, ``train``, ``probes``).
Importing ``lclib`` imports none of them: ``from lclib import rope``.
"""

__version__ = "0.1.0"
