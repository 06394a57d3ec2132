"""RULER-lite (Hsieh et al. 2024, RULER): synthetic long-context tasks, their scores, and the evaluation.

- `tasks`: the generators (a prompt of a chosen length in tokens, its answers, a needle depth);
- `words`: word lists and RULER's templates, and the tokenizer whose vocabulary covers them;
- `tokenizer`: a word-level tokenizer with a character fallback (lengths counted offline);
- `metrics`: RULER's string_match_all / string_match_part and its effective-length rule;
- `evaluate`: the two-method model interface, adapters (the lab's GPT, Hugging Face), the sweep, the CLI;
- `mixture`: batches of tasks for training the lab's small model.
"""

from . import metrics, tasks, tokenizer, words
from .metrics import effective_length, string_match_all, string_match_part
from .tasks import CATEGORY, TASKS, Sample, make_sample

__all__ = ["CATEGORY", "TASKS", "Sample", "effective_length", "make_sample", "metrics", "string_match_all",
           "string_match_part", "tasks", "tokenizer", "words"]
