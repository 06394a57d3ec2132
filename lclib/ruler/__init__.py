"""RULER-lite (Hsieh et al. 2024, RULER): synthetic long-context tasks, their scores, and the evaluation.

- `tasks`: the registry (``TASKS``, ``make_sample``), over one module per task family: `needles` (niah),
  `variable_tracking` (vt), `aggregation` (cwe, fwe), `qa`; `haystack` is the builder they share and
  `lab_layouts` the lab's older layouts;
- `words`: word lists and RULER's templates, and the tokenizer whose vocabulary covers them;
- `tokenizer`: a word-level tokenizer with a character fallback (lengths counted offline);
- `metrics`: RULER's string_match_all / string_match_part and its effective-length rule;
- `adapters`: the two-method model interface and its adapters (the lab's GPT, Hugging Face);
- `evaluate`: the sweep over tasks and lengths (its command line: ``python -m lclib ruler``);
- `mixture`, `drill`: batches of tasks (and of a recall drill) for training the lab's small model.
"""

from . import metrics, tasks, tokenizer, words
from .metrics import effective_length, string_match_all, string_match_part
from .tasks import CATEGORY, TASKS, Sample, make_sample

__all__ = ["CATEGORY", "TASKS", "Sample", "effective_length", "make_sample", "metrics", "string_match_all",
           "string_match_part", "tasks", "tokenizer", "words"]
