"""A training mixture of RULER-lite tasks for the lab's small model, and the command line that trains it.

RULER evaluates models trained on natural text; ours have seen nothing, so they are trained on the
tasks themselves, at lengths up to L, and then read at L, 2L, 4L, 8L. ``LITE_TASKS`` shrinks
RULER's parameters to what a 2-layer model can learn in minutes (4-digit values, 2-hop chains,
3 common words) without changing what each task asks. Sequences are ``BOS prompt completion EOS``
with the loss on the completion and EOS only, the interface of `lclib.train.train`.

    python -m lclib.ruler_mix --out weights/effective_context/stage1 --length 160 --steps 1500 --threads 1
    python -m lclib.ruler_mix --out weights/effective_context/base --init weights/effective_context/stage1 \
        --length 160 --steps 1200 --lr 2e-3 --threads 1
    python -m lclib.ruler_mix --out weights/effective_context/yarn_ft --init weights/effective_context/base \
        --length 320 --steps 150 --lr 1e-3 --method yarn --scale 4 --original-max-len 160 --threads 1
(the shipped stage1 was trained with an earlier mixture: 2 queries, lengths 112..160; notebook 05, section 4).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from . import tasks as ruler
from .words import default_tokenizer

IGNORE = -100  # the target value F.cross_entropy skips (as lclib.tasks.IGNORE)

LITE_TASKS: dict[str, dict] = {
    "niah_single_1": {"value_len": 4},
    "niah_single_2": {"value_len": 4},
    "niah_multikey_1": {"value_len": 4, "num_keys": 3},
    "niah_multivalue": {"value_len": 4, "num_values": 2},
    "niah_multiquery": {"value_len": 4, "num_keys": 4, "num_queries": 4},
    "vt": {"num_hops": 2, "name_len": 3},
    "cwe": {"num_common": 3, "freq_common": 3},
    "fwe": {},
    "qa": {},
}


class RulerMixture:
    """Batches of RULER-lite samples, one task per sequence, one length per batch drawn in [min_len, max_len]."""

    def __init__(self, min_len: int, max_len: int, tasks: dict[str, dict] | None = None):
        if not 32 <= min_len <= max_len:
            raise ValueError(f"need 32 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.min_len, self.max_len = min_len, max_len
        self.tasks = dict(LITE_TASKS if tasks is None else tasks)
        self.tok = default_tokenizer()
        self.vocab_size = len(self.tok)

    def to_dict(self) -> dict:
        return {"min_len": self.min_len, "max_len": self.max_len, "tasks": self.tasks}

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """tokens (B, T) long, targets (B, T) long: the next token on the completion and EOS, IGNORE elsewhere."""
        draw = torch.randint(0, 2**31 - 1, (batch + 1,), generator=generator).tolist()
        length = self.min_len + draw[0] % (self.max_len - self.min_len + 1)
        names = list(self.tasks)
        rows, answer_from = [], []
        for seed in draw[1:]:
            task = names[seed % len(names)]
            s = ruler.make_sample(task, length, seed, tokenizer=self.tok, **self.tasks[task])
            prompt = [self.tok.bos_id] + self.tok.encode(s.prompt)
            rows.append(prompt + self.tok.encode(s.completion) + [self.tok.eos_id])
            answer_from.append(len(prompt))
        T = max(len(r) for r in rows)
        tokens = torch.full((batch, T), self.tok.pad_id, dtype=torch.long)
        targets = torch.full((batch, T), IGNORE, dtype=torch.long)
        for b, (row, a) in enumerate(zip(rows, answer_from)):
            tokens[b, :len(row)] = torch.tensor(row)
            targets[b, a - 1:len(row) - 1] = torch.tensor(row[a:])  # logits at t predict token t + 1
        return {"tokens": tokens, "targets": targets}


def finetune(model, scaling, mix: RulerMixture, cfg, on_step=None) -> tuple:
    """Continue training a lab GPT under a RoPE scaling (a short fine-tune at the new length, as PI and
    YaRN do), with the step loop of `lclib.train` (warm-up then cosine, clipping); AdamW decays every
    parameter here. on_step(steps done, model, history) runs after each step."""
    import time

    from .evaluate import set_rope_scaling
    from ..train import run_steps

    torch.manual_seed(cfg.seed)
    model = set_rope_scaling(model, scaling).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    history: dict = {"loss": []}
    start = time.perf_counter()
    run_steps(model, opt, mix.sample, cfg, history["loss"],
              None if on_step is None else lambda done: on_step(done, model, history))
    history["wall_s"] = time.perf_counter() - start
    return model.eval(), history


def main(argv: list[str] | None = None) -> int:
    from ..model import GPTConfig
    from ..scaling import RopeScaling
    from ..train import TrainConfig, load, save, train

    p = argparse.ArgumentParser(prog="python -m lclib.ruler_mix", description="Train the lab model on RULER-lite.")
    p.add_argument("--out", required=True)
    p.add_argument("--length", type=int, default=160, help="L: sequences of length max(136, 0.7 L)..L")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--init", default=None, help="fine-tune from this checkpoint")
    p.add_argument("--method", default="none", help="RoPE scaling while (fine-)training: none, linear, ntk, yarn, ...")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--original-max-len", type=int, default=None)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    mix = RulerMixture(max(136, int(0.7 * a.length)), a.length)
    scaling = None if a.method == "none" else RopeScaling(a.method, a.scale, original_max_len=a.original_max_len)
    if a.init:
        init = load(a.init)
    else:
        mcfg = GPTConfig(vocab_size=mix.vocab_size, n_layer=a.layers, n_head=a.heads, d_model=a.d_model,
                         rope_scaling=scaling)
    tcfg = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                       warmup=min(100, max(1, a.steps // 10)))
    def snapshot(step: int, model, history: dict) -> None:  # a checkpoint every 300 steps, to watch progress
        if step % 300 == 0 and step < tcfg.steps:
            save(model, a.out, task=mix.to_dict(), train=asdict(tcfg), init=a.init, at_step=step)

    model, history = finetune(init, scaling, mix, tcfg, snapshot) if a.init else train(mcfg, mix, tcfg)
    save(model, a.out, task=mix.to_dict(), train=asdict(tcfg), wall_s=round(history["wall_s"], 1), init=a.init,
         loss_last100=sum(history["loss"][-100:]) / len(history["loss"][-100:]))
    print(json.dumps({"out": str(Path(a.out)), "params": model.num_params(), "wall_s": round(history["wall_s"], 1),
                      "final_loss": history["loss"][-1]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
