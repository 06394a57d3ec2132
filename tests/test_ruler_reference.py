"""RULER-lite against RULER's own text and parameters (tests/data/ruler_reference.json, a copy of the
transcription of the RULER paper v3 and NVIDIA/RULER with its provenance): templates, answer prefixes,
default parameters, needle and chain formats, and the tokenizer's round trip of RULER's text."""

import inspect
import json
import re
import uuid
from pathlib import Path

import pytest

from lclib.ruler import tasks as ruler, words as W

REF = json.loads((Path(__file__).parent / "data" / "ruler_reference.json").read_text())
BY_ID = {t["task_id"]: t for t in REF["tasks"]}
TOK = W.default_tokenizer()
OURS = {"vt": "vt", "cwe": "cwe", "fwe": "fwe", "qa_1": "qa", "qa_2": "qa"}  # RULER's id -> ours (niah_* alike)
IMPLEMENTED = sorted(BY_ID)


def defaults(task: str) -> dict:
    """Our generator's parameters for a task name: the function's defaults, then the TASKS partial's."""
    fn = ruler.TASKS[task]
    func, kw = (fn.func, fn.keywords) if hasattr(fn, "func") else (fn, {})
    params = {k: p.default for k, p in inspect.signature(func).parameters.items() if p.default is not p.empty}
    return {**params, **kw}


def our_template(task: str, fmt: dict) -> tuple[str, str]:
    if task.startswith("niah"):
        p = defaults(task)
        template = W.singular_niah_template() if p["num_queries"] * p["num_values"] == 1 else W.TEMPLATES["niah"]
        fmt = dict(fmt, type_v=p["value_kind"], type_v_singular=p["value_kind"][:-1])
    else:
        template = W.TEMPLATES[task]
    return template[0].format(**fmt), template[1].format(**fmt)


@pytest.mark.parametrize("rid", IMPLEMENTED)
def test_template_and_answer_prefix_are_rulers(rid):
    ref = BY_ID[rid]
    text = ref.get("task_template_after_singularization", ref.get("task_template"))
    prefix = ref.get("answer_prefix_after_singularization", ref.get("answer_prefix"))
    fill = {"context": "{context}", "query": "{query}", "num_v": "{num_v}", "num_cw": 10}  # RULER writes "10"
    assert our_template(rid if rid.startswith("niah") else OURS[rid], fill) == (text, prefix)


@pytest.mark.parametrize("rid", IMPLEMENTED)
def test_default_parameters_are_rulers(rid):
    cfg = BY_ID[rid]["config_yaml"]
    if rid.startswith("niah"):
        p = defaults(rid)
        counts = BY_ID[rid]["effective_counts"]
        assert p["haystack"] == cfg["type_haystack"]
        assert (p["key_kind"], p["value_kind"]) == (cfg["type_needle_k"], cfg["type_needle_v"])
        assert (p["num_keys"], p["num_values"], p["num_queries"]) == \
            (counts["keys_inserted"], counts["values_per_key"], counts["keys_queried"])
        assert p["value_len"] == 7  # "random 7-digit integer" (1000000..9999999)
    elif rid == "vt":
        p = defaults("vt")
        assert (p["num_chains"], p["num_hops"], p["name_len"]) == (cfg["num_chains"], cfg["num_hops"], 5)
        assert p["layout"] == "lines" and p["example"] is not False
    elif rid == "cwe":
        s = ruler.make_sample("cwe", 4096, seed=0)
        assert (s.metadata["num_common"], s.metadata["freq_common"], s.metadata["freq_uncommon"]) == \
            (cfg["num_cw"], cfg["freq_cw"], cfg["freq_ucw"])
        short = ruler.make_sample("cwe", 2048, seed=0).metadata  # RULER's variant below 4096: 6 and 1
        assert (short["freq_common"], short["freq_uncommon"]) == (6, 1)
    elif rid == "fwe":
        assert defaults("fwe")["alpha"] == cfg["alpha"]
    else:
        assert "qa" in ruler.TASKS  # SQuAD / HotpotQA replaced by synthetic documents (see lclib.ruler.tasks)


def test_niah_needles_keys_and_values_have_rulers_format():
    assert W.NEEDLE.format(type_v="numbers", key="{key}", value="{value}") == BY_ID["niah_single_1"]["needle_example"]
    s = ruler.make_sample("niah_single_1", 512, seed=5)
    key, value = s.metadata["keys"][0], s.answers[0]
    assert re.fullmatch(r"[a-z]+-[a-z]+", key) and re.fullmatch(r"[1-9]\d{6}", value)
    assert f"One of the special magic numbers for {key} is: {value}." in s.prompt
    u = ruler.make_sample("niah_multikey_3", 1024, seed=5)
    for v in [u.answers[0], u.metadata["keys"][0]]:
        assert len(v) == 36 and str(uuid.UUID(v)) == v and uuid.UUID(v).version == 4
    lines = u.prompt.split("afterwards.\n")[1].split("\nWhat is")[0].split("\n")
    assert all(re.fullmatch(r"One of the special magic uuids for [0-9a-f-]{36} is: [0-9a-f-]{36}\.", x) for x in lines[:-1])
    mq = ruler.make_sample("niah_multiquery", 1024, seed=5)
    k = mq.metadata["keys"]
    assert f"for {k[0]}, {k[1]}, {k[2]}, and {k[3]} mentioned" in mq.prompt  # RULER's query for several keys


def test_noise_and_essay_placement():
    noise = ruler.make_sample("niah_single_1", 2048, seed=1)
    lines = noise.prompt.split("afterwards.\n")[1].split("\nWhat is")[0].split("\n")
    assert REF["niah_template_notes"]["noise_sentence"] == W.NOISE_BLOCK
    needles = [x for x in lines if x.startswith("One of the special magic")]
    assert len(needles) == 1 and lines.index(needles[0]) < len(lines) - 1  # RULER: a needle goes before a block
    rest = [x for x in lines if x not in needles]
    assert all(x == W.NOISE_BLOCK for x in rest[:-1]) and W.NOISE_BLOCK.startswith(rest[-1])  # last line: cut noise
    assert list(W.DEPTHS) == [round(100 * i / 39) for i in range(40)] and len(set(W.DEPTHS)) == 40
    essay = ruler.make_sample("niah_multikey_1", 2048, seed=1)
    for needle_depth in essay.metadata["needle_depths"]:  # each needle sits at one of RULER's 40 depths
        assert min(abs(100 * needle_depth - d) for d in W.DEPTHS) < 3


def test_variable_tracking_chain_and_example():
    s = ruler.make_sample("vt", 4096, seed=2)
    names, value = s.answers, re.search(r"assigned the value (\d+) in the text above\.\s*Answer", s.prompt[-400:]).group(1)
    main = s.prompt[s.prompt.rindex("Memorize and track"):]
    assert f"\nVAR {names[0]} = {value}\n" in main and len(value) == 5
    for a, b in zip(names, names[1:]):
        assert f"\nVAR {b} = VAR {a} \n" in main  # RULER's line, trailing space included
    assert len(names) == 5 and all(re.fullmatch(r"[A-Z]{5}", n) for n in names)
    example = s.prompt[:s.prompt.rindex("Memorize and track")]
    shot = re.search(r"they are:  ([A-Z]{3}(?: [A-Z]{3}){4})\n\n$", example)  # its 3-letter answer, then "\n" + "\n"
    assert shot and example.startswith("Memorize and track the chain(s)")
    assert s.prompt.endswith(f", 5 variables are assigned the value {value}, they are: ")
    assert s.completion == ", ".join(names) + "." and TOK.encode(s.prompt + s.completion) == \
        TOK.encode(s.prompt) + TOK.encode(s.completion)


def test_aggregation_formats():
    cwe = ruler.make_sample("cwe", 4096, seed=3)
    assert cwe.prompt.count("Below is a numbered list") == 2  # RULER's example, then the task
    assert re.search(r"Memorize the ones that appear most often\.\n1\. \S+ 2\. \S+ 3\. ", cwe.prompt)
    fwe = ruler.make_sample("fwe", 4096, seed=3)
    words = fwe.prompt.split("coded words. ")[1].split("\nQuestion:")[0].split()
    assert all(re.fullmatch(r"[a-z]{6}", w) for w in fwe.answers)
    assert all(w == "..." or re.fullmatch(r"[a-z]{6}", w) for w in words)
    assert fwe.metadata["unambiguous"]
    qa = ruler.make_sample("qa", 1024, seed=3)
    headers = re.findall(r"(?:^|\n\n)Document (\d+):\n", qa.prompt)
    assert headers and [int(h) for h in headers] == list(range(1, len(headers) + 1))


@pytest.mark.parametrize("task", ["vt", "cwe", "fwe", "qa", "niah_single_1", "niah_multivalue"])
def test_rulers_text_round_trips_through_the_tokenizer(task):
    """decode(encode(t)) == t for RULER's templates ("chain(s)", "'....'", " ..."), except the one
    difference no token can carry: whitespace. Runs of spaces come back as one, a space after a
    newline or before one is dropped, and the prompt's trailing space (VT's "they are: ") is dropped."""
    s = ruler.make_sample(task, 4096, seed=4)
    canonical = re.sub(r" *\n *", "\n", re.sub(r" +", " ", s.prompt)).rstrip(" ")
    assert TOK.decode(TOK.encode(s.prompt)) == canonical
    assert TOK.unk_id not in TOK.encode(s.prompt)


def test_prefixes_end_as_rulers_and_completions_join():
    for task in ruler.TASKS:
        s = ruler.make_sample(task, 4096, seed=0)
        assert s.completion.startswith(" ") != s.prompt.endswith(" ")  # exactly one space between them
        assert TOK.encode(s.prompt + s.completion) == TOK.encode(s.prompt) + TOK.encode(s.completion)
