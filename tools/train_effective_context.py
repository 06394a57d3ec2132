"""Train the models of notebook 05 and write their weights, each with its full recipe in config.json.

    base's curriculum (CHAIN), each stage from the last, plain RoPE:
    recall_compact, recall_noise, recall_ruler
             the recall drill (lclib.ruler.drill): 2-6 needles "key -> value", then questions about keys drawn
             with replacement; compact, then in RULER's noise haystack, then in RULER's needle sentence. It
             teaches key matching, which the tasks alone do not (copying any of four needles is right a quarter
             of the time, and a small model settles there)
    stage1, stage2, base
             the lab's RULER needle tasks (lclib.ruler.mixture.LAB_TASKS) at lengths MIN_LEN..L in RULER's
             wording, multi-key drawn twice as often and followed by three more questions about its keys
    lm_ft    base fine-tuned at lengths up to L with the loss on every token (a language model's objective,
             each answer token weighing 20), for the per-token loss over whole sequences (perplexity)
    pi_ft    base fine-tuned with Position Interpolation (scale 4) at lengths up to 2L, 600 steps
    yarn_ft  base fine-tuned with YaRN (scale 4, original length L) at lengths up to 2L, 600 steps
    abf_ft   base fine-tuned with a raised RoPE base (ABF: base x 16, as Llama 2 Long and Llama 3 raise it)
             at lengths up to 2L, 600 steps
             each of the three also with training seeds 2 and 3 (pi_ft_seed2, pi_ft_seed3, ...)
    nope_*   the same curriculum without any position encoding (NoPE: the causal mask only)
    alibi_*  the same curriculum with ALiBi (Press et al. 2022) instead of RoPE
    base2m   base retrained at L (its last stage's data and steps) with the RoPE base raised to 2,000,000: the
             second spectrum of notebook 05b, in which no pair straddles L
    other_2l, other_3l, other_4l
             RULER's other categories (variable tracking, common words, frequent words; the lab's configuration
             lclib.ruler.mixture.LAB_OTHER_TASKS) at lengths MIN_LEN..L, from scratch, 2, 3 and 4 layers: are
             they learnt at this size?

    python tools/train_effective_context.py --out weights/effective_context            # all of them, in order
    python tools/train_effective_context.py --out weights/effective_context --only pi_ft

Every stage goes through lclib.train.train (init_state = the previous stage's weights: one loop, AdamW
with weight decay on matrices only, warm-up then cosine). The recipe (model config, task mixture,
training config, thread count) is stored in each config.json; tests/test_effective_context_weights.py
checks it against RECIPES here. Same recipe, same thread count, same CPU and library build: same
weights, bit for bit.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from lclib import cli, repro
from lclib.checkpoint import load, save
from lclib.model import GPTConfig
from lclib.ruler.drill import RecallDrill
from lclib.ruler.mixture import LAB_OTHER_TASKS, LAB_TASKS, RulerMixture
from lclib.scaling import RopeScaling
from lclib.train import TrainConfig, train

L = 256  # training context of base, in tokens of the RULER-lite tokenizer
MIN_LEN = 144  # the shortest length at which four needles and the template fit
THREADS = 1  # torch CPU threads while training (the thread count changes the last bits of the weights)
MODEL = dict(n_layer=2, n_head=4, d_model=64, rope_base=10000.0, tie_embeddings=False)  # head_dim 16: 8 pairs

_TRAIN = {"batch_size": 32, "warmup": 100, "weight_decay": 0.1, "grad_clip": 1.0, "seed": 0}
_ROPE = {"rope_scaling": None, "rope_base": MODEL["rope_base"]}
_LAB = {"min_len": MIN_LEN, "max_len": L, "singular": None, "weights": {"niah_single_1": 1, "niah_multikey_1": 2,
        "niah_multivalue": 1, "niah_multiquery": 1}, "follow_ups": 3, **_ROPE}

RECIPES: dict[str, dict] = {
    # the recall drill (lclib.ruler.drill): matching keys, before the tasks
    "recall_compact": {"init": None, "drill": {"style": "compact", "min_len": 32, "max_len": 128, "num_keys": [2, 6]},
                       **_ROPE, "train": {**_TRAIN, "steps": 1500, "lr": 3e-3}},
    "recall_noise": {"init": "recall_compact", "drill": {"style": "compact_noise", "min_len": 32, "max_len": 128,
                                                         "num_keys": [2, 6]},
                     **_ROPE, "train": {**_TRAIN, "steps": 900, "lr": 1e-3}},
    "recall_ruler": {"init": "recall_noise", "drill": {"style": "ruler", "min_len": 96, "max_len": 192, "num_keys": [3, 6]},
                     **_ROPE, "train": {**_TRAIN, "steps": 900, "lr": 1e-3}},
    # the four lab tasks in RULER's wording, multi-key drawn twice as often, three follow-up questions on it
    "stage1": {"init": "recall_ruler", **_LAB, "train": {**_TRAIN, "steps": 600, "lr": 1e-3}},
    "stage2": {"init": "stage1", **_LAB, "train": {**_TRAIN, "steps": 1200, "lr": 1e-3}},
    "base": {"init": "stage2", **_LAB, "train": {**_TRAIN, "steps": 900, "lr": 1e-3}},
    # the extensions and the language-model objective, from base, on the plain tasks (no follow-ups)
    # the extensions, from base, on the plain tasks (no follow-ups): see FINE_TUNES below
    "lm_ft": {"init": "base", "min_len": MIN_LEN, "max_len": L, "singular": None, "rope_scaling": None,
              "rope_base": MODEL["rope_base"], "loss_on": "all", "answer_weight": 20.0,
              "train": {"steps": 300, "batch_size": 32, "lr": 1e-3, "warmup": 30, "weight_decay": 0.1,
                        "grad_clip": 1.0, "seed": 2}},
}

# The extensions, from base, at lengths up to 2L on the plain tasks (no follow-ups), 600 steps, three training seeds
# each (name, name_seed2, name_seed3): PI and YaRN with s = 4, and the RoPE base raised 16-fold (ABF)
FINE_TUNES = {
    "pi_ft": {"rope_base": MODEL["rope_base"], "rope_scaling": {"method": "linear", "scale": 4.0}},
    "yarn_ft": {"rope_base": MODEL["rope_base"], "rope_scaling": {"method": "yarn", "scale": 4.0, "original_max_len": L}},
    "abf_ft": {"rope_base": 16 * MODEL["rope_base"], "rope_scaling": None},
}
SEEDS = (1, 2, 3)
for _name, _rope in FINE_TUNES.items():
    for _seed in SEEDS:
        RECIPES[_name if _seed == 1 else f"{_name}_seed{_seed}"] = {
            "init": "base", "min_len": MIN_LEN, "max_len": 2 * L, "singular": None, **_rope,
            "train": {"steps": 600, "batch_size": 32, "lr": 1e-3, "warmup": 60, "weight_decay": 0.1, "grad_clip": 1.0,
                      "seed": _seed}}

# A second spectrum (notebook 05b): base retrained at L on its last stage's data with the RoPE base raised to
# 2,000,000. Pairs 0-2 then turn 41, 6.6 and 1.08 times inside L and pair 3 only 0.18 times: no pair straddles L
# as base's pair 4 does (0.41 turns), which is what the explanation of notebook 05b says matters.
RECIPES["base2m"] = {**RECIPES["base"], "init": "base", "rope_base": 2_000_000.0}

# RULER's other categories, alone, from scratch: base's width, 2, 3 and 4 layers
for _layers in (2, 3, 4):
    RECIPES[f"other_{_layers}l"] = {"init": None, "tasks": "other", "n_layer": _layers, "min_len": MIN_LEN, "max_len": L,
                                    **_ROPE, "train": {**_TRAIN, "steps": 1500, "lr": 3e-3}}

CHAIN = ("recall_compact", "recall_noise", "recall_ruler", "stage1", "stage2", "base")  # base's curriculum, in order

# NoPE and ALiBi, the contrasts to RoPE: the same curriculum, data and seeds, another position encoding
for _pos, _prefix in (("none", "nope"), ("alibi", "alibi")):
    for _name in CHAIN:
        _init = RECIPES[_name]["init"]
        RECIPES[f"{_prefix}_{_name}"] = {**RECIPES[_name], "init": _init and f"{_prefix}_{_init}", "pos_encoding": _pos}


def lab_tasks(name: str) -> dict[str, dict]:
    """The tasks of recipe `name`: LAB_OTHER_TASKS, or LAB_TASKS with the recipe's wording (singular None:
    RULER's; False: plural for every question)."""
    if RECIPES[name].get("tasks") == "other":
        return dict(LAB_OTHER_TASKS)
    return {task: {**params, "singular": RECIPES[name]["singular"]} for task, params in LAB_TASKS.items()}


def training_data(name: str) -> RulerMixture | RecallDrill:
    """The training data of recipe `name`: a recall drill, or the lab tasks with their lengths, wording, task
    weights, follow-ups and loss."""
    r = RECIPES[name]
    if "drill" in r:
        d = r["drill"]
        return RecallDrill(d["min_len"], d["max_len"], d["style"], num_keys=tuple(d["num_keys"]))
    return RulerMixture(r["min_len"], r["max_len"], lab_tasks(name), weights=r.get("weights"),
                        follow_ups=r.get("follow_ups", 0), loss_on=r.get("loss_on", "answers"),
                        answer_weight=r.get("answer_weight", 1.0))


def model_config(name: str, vocab_size: int) -> GPTConfig:
    """The GPTConfig a recipe trains (base's architecture; the recipe's depth, position encoding, RoPE base and
    scaling)."""
    r = RECIPES[name]
    scaling = None if r["rope_scaling"] is None else RopeScaling.from_dict(r["rope_scaling"])
    arch = {**MODEL, "rope_base": r["rope_base"], "n_layer": r.get("n_layer", MODEL["n_layer"])}
    return GPTConfig(vocab_size=vocab_size, **arch, rope_scaling=scaling, pos_encoding=r.get("pos_encoding", "rope"))


def train_one(name: str, out: Path, progress: bool = True, threads: int = THREADS):
    """Train recipe `name` (its init read from out/<init>), save it to out/name; return (model, history)."""
    r = RECIPES[name]
    mix = training_data(name)
    tcfg = TrainConfig(**r["train"])
    init_state = load(out / r["init"]).state_dict() if r["init"] else None
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model, history = train(model_config(name, mix.vocab_size), mix, tcfg, init_state=init_state, desc=name,
                               progress=progress, device="cpu")
    finally:
        torch.set_num_threads(previous)
    return model, history, mix, tcfg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="weights/effective_context")
    parser.add_argument("--only", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    cli.add_debug(parser)
    args = parser.parse_args()
    return cli.run(lambda: train_all(args), args.debug)


def train_all(args: argparse.Namespace) -> int:
    out = Path(args.out)
    print(repro.banner())
    for name in args.only:
        start = time.perf_counter()
        model, history, mix, tcfg = train_one(name, out, progress=not args.quiet)
        last = history["loss"][-100:]
        save(model, out / name, task=mix.to_dict(), train=asdict(tcfg), recipe={"name": name, **RECIPES[name]},
             threads=THREADS, build=repro.build(), wall_s=round(history["wall_s"], 1), loss_last100=round(sum(last) / len(last), 4))
        print(json.dumps({"name": name, "params": model.num_params(), "wall_s": round(time.perf_counter() - start, 1),
                          "loss_last100": round(sum(last) / len(last), 4)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
