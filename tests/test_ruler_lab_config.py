"""The lab's named configuration of RULER's needle tasks generates exactly what the shipped models saw.

The models in weights/effective_context were trained and are measured on these samples; a change to a
generator's defaults must not move them (the lab names every parameter). The digests pin the text of
15 samples per task (three lengths, five seeds, fixed and random depths).
"""

import hashlib
import inspect

import pytest

from lclib.ruler import mixture, tasks

DIGESTS = {"niah_single_1": "197990be35d24aae", "niah_multikey_1": "c427f224784c586d",
           "niah_multivalue": "5b582cb4c9946ef9", "niah_multiquery": "60558fd3f8862f04"}
OTHER_DIGESTS = {"vt": "3b53c186541a22fd", "cwe": "bf928b3168294eef", "fwe": "51ac36f4a85a99ff"}


@pytest.mark.parametrize("task", sorted(DIGESTS))
def test_lab_samples_are_unchanged(task):
    h = hashlib.sha256()
    for n in (144, 256, 1024):
        for seed in range(5):
            s = tasks.make_sample(task, n, seed, depth=None if seed % 2 else 0.3, **mixture.LAB_TASKS[task])
            h.update((s.prompt + "|" + s.completion + "|" + ",".join(s.answers)).encode())
    assert h.hexdigest()[:16] == DIGESTS[task]


@pytest.mark.parametrize("task", sorted(OTHER_DIGESTS))
def test_lab_samples_of_the_other_categories_are_unchanged(task):
    h = hashlib.sha256()
    for n in (144, 256, 1024):
        for seed in range(5):
            s = tasks.make_sample(task, n, seed, depth=None, **mixture.LAB_OTHER_TASKS[task])
            h.update((s.prompt + "|" + s.completion + "|" + ",".join(s.answers)).encode())
    assert h.hexdigest()[:16] == OTHER_DIGESTS[task]


def test_lab_config_of_the_other_categories_names_every_parameter():
    for task, params in mixture.LAB_OTHER_TASKS.items():
        named = set(inspect.signature(tasks.TASKS[task]).parameters) - {"tokenizer", "seq_len", "seed", "depth", "task"}
        assert set(params) == named, task


def test_lab_other_tasks_are_the_reduced_rules():
    vt = tasks.make_sample("vt", 256, 1, **mixture.LAB_OTHER_TASKS["vt"])
    assert len(vt.answers) == 3 and all(len(a) == 1 for a in vt.answers)  # 2 hops, one-letter names
    cwe = tasks.make_sample("cwe", 256, 1, **mixture.LAB_OTHER_TASKS["cwe"])
    listed = cwe.prompt.split("\n")[1].split()[1::2]  # "1. w 2. w ...": the words
    assert sorted(listed.count(w) for w in set(listed))[-4:] == [1, 6, 6, 6]  # RULER's 6 against 1 below 4K
    fwe = tasks.make_sample("fwe", 256, 1, **mixture.LAB_OTHER_TASKS["fwe"])
    assert fwe.metadata["unambiguous"] and "..." not in fwe.answers and all(len(a) == 1 for a in fwe.answers)


def test_lab_config_names_every_needle_parameter():
    for task, params in mixture.LAB_TASKS.items():
        assert {"haystack", "key_kind", "value_kind", "value_len", "num_keys", "num_values", "num_queries",
                "singular"} <= set(params), task


def test_single_needle_prompts_use_rulers_singular_wording_unless_told():
    s = tasks.make_sample("niah_single_1", 200, 0, haystack="noise", value_len=4)
    assert s.prompt.startswith("A special magic number is hidden within the following text.")
    assert s.prompt.endswith("mentioned in the provided text is")
    assert "One of the special magic numbers for" in s.prompt  # the needle keeps RULER's plural
    lab = tasks.make_sample("niah_single_1", 200, 0, **mixture.LAB_TASKS["niah_single_1"])
    assert lab.prompt.startswith("A special magic number is hidden") and lab.prompt.endswith("text is")
    plural = tasks.make_sample("niah_single_1", 200, 0, **{**mixture.LAB_TASKS["niah_single_1"], "singular": False})
    assert plural.prompt.startswith("Some special magic numbers are hidden") and plural.prompt.endswith("text are")
    m = tasks.make_sample("niah_multivalue", 200, 0, **mixture.LAB_TASKS["niah_multivalue"])
    assert m.prompt.startswith("Some special magic numbers are hidden") and m.prompt.endswith("text are")
    with pytest.raises(TypeError, match="singular"):
        tasks.make_sample("niah_single_1", 200, 0, singular="yes")
