"""lclib: the small library behind "Long-Context Models, hands-on".

One concept per module: ``rope`` (rotary embedding), ``scaling`` (context-extension methods), ``spectrum``
(the rotary pairs against a training context), ``dilated`` and ``dilated_distributed`` (LongNet), ``model``,
``tasks``, ``train``, ``probes``, ``kv_cache``, ``kv_compression``, ``kernels``, ``retrieval``, ``ruler`` (a
package: RULER-lite), and the helpers ``profile``, ``repro``, ``plotting``, ``cli``, ``checks``.
Importing ``lclib`` imports none of them: ``from lclib import rope``.
"""

__version__ = "0.1.0"
