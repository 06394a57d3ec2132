"""Every public function of lclib refuses bad input clearly (issue 12, item 3).

``CASES`` is a table of bad calls. Each names the public function or class it exercises
(``module.name``, the module without "lclib."), what is wrong, the exception expected (ValueError or
TypeError) and a pattern its message must contain: the name of the argument at fault. Wrong types,
bools and floats where an int is expected, non-positive sizes, integer dtypes where a tensor must be
floating, mismatched shapes, NaN and inf where no number is meaningful, unknown names, and requests no
loop can meet (more distinct keys than the pool holds, a length the template cannot fit, absurd sizes).
Every call runs under a 10 s alarm, so a loop without bound fails the test instead of hanging CI.

:func:`test_every_public_name_has_cases_or_a_reason` enumerates the public functions and classes of
``MODULES``: each needs a case here or an ``EXEMPT`` entry with its reason, so a new public function
without one fails. Count the table without pytest:
``python -c "import tests.test_bad_input as t; print(len(t.CASES))"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from matplotlib.figure import Figure

import lclib
from lclib import (checkpoint, digest, dilated, generation, kv_task, model, plotting, positions, probes, repro, rope,
                   run_profile, scaling, spectrum, train, validate)
from lclib.ruler import (adapters, aggregation, drill, evaluate, haystack, metrics, mixture, needles, qa, tokenizer,
                         variable_tracking, words)
from lclib.ruler import tasks as rtasks
from lclib.dilated import patterns as dpatterns
from lclib.dilated import reference as dreference

MODULES = ("lclib.rope", "lclib.scaling", "lclib.spectrum", "lclib.dilated", "lclib.model", "lclib.kv_task", "lclib.train", "lclib.checkpoint", "lclib.digest",
           "lclib.probes",
           "lclib.plotting", "lclib.repro", "lclib.run_profile", "lclib.ruler.tasks", "lclib.ruler.haystack",
           "lclib.ruler.needles", "lclib.ruler.variable_tracking", "lclib.ruler.aggregation", "lclib.ruler.qa",
           "lclib.ruler.lab_layouts", "lclib.ruler.words", "lclib.ruler.tokenizer", "lclib.ruler.metrics",
           "lclib.ruler.adapters", "lclib.ruler.evaluate", "lclib.ruler.mixture", "lclib.ruler.drill", "lclib.kv.cache", "lclib.kv.sizing", "lclib.kv.compression", "lclib.positions", "lclib.generation", "lclib.kernels", "lclib.retrieval",
           "lclib.dilated.patterns", "lclib.dilated.reference", "lclib.dilated.distributed", "lclib.dilated.processes",
           "lclib.env", "lclib.validate")

# modules of lclib left out of MODULES, and why (a new module must be added to one or the other)
EXEMPT_MODULES = {
    "lclib.checks": "notebook checkers: they turn a student's mistake into a hint, tested by test_checkers_adversarial.py",
    "lclib.cli": "the command lines (python -m lclib <command>): argparse types, the one-line error wrapper and one "
                 "file per command, tested by tests/test_cli.py and each command's tests",
}

# public names with no bad call to make, and why
EXEMPT = {
    "dilated.EdgeCounts": "a NamedTuple of results, built by edge_counts",
    "plotting.set_style": "no arguments",
    "plotting.figures_root": "no arguments ($LCLIB_FIGURES is taken as a path as given)",
    "run_profile.pick": "any two values are valid: it returns one of them",
    "repro.banner": "no arguments",
    "validate.is_int": "a predicate: any value gives True or False",
    "validate.is_number": "a predicate: any value gives True or False",
    "repro.build": "no arguments",
    "ruler.adapters.TextModel": "a Protocol: nothing to call",
    "ruler.adapters.TeacherForced": "a NamedTuple of results, built by LabModel.teacher_forced",
    "ruler.haystack.Sample": "a plain record the generators fill, after checking their own arguments",
    **{f"ruler.haystack.{name}": "the generators' shared builder, called with the arguments they have checked "
       "(cases: ruler.needles.niah and the other generators)"
       for name in ("essay_sentences", "noise_lines", "fill", "prefix_fitting", "fill_lines", "insert", "random_slots",
                    "frame", "assemble")},
    **{f"ruler.lab_layouts.{name}": "the lab's layouts, called by niah and variable_tracking after their own checks "
       "(cases: ruler.needles.niah, ruler.variable_tracking.variable_tracking)"
       for name in ("in_noise_sentences", "niah_in_sentences", "vt_in_sentences")},
    "ruler.words.singular_niah_template": "no arguments",
    "ruler.words.all_words": "no arguments",
    "ruler.words.extra_words": "no arguments",
    "ruler.words.default_tokenizer": "no arguments",
}

TIME_LIMIT_S = 10  # per call: every refusal here takes milliseconds; a hang is a loop without bound


@dataclass(frozen=True)
class Bad:
    """One bad call: ``call()`` must raise ``exc`` with a message matching ``match`` (the argument's name)."""

    target: str  # the public function or class exercised, "module.name" without "lclib."
    what: str  # what is wrong, for the test id
    exc: type[Exception]
    match: str  # regular expression searched in the message
    call: Callable[[], object]

    @property
    def id(self) -> str:
        return f"{self.target}-{self.what}"


CASES: list[Bad] = []


def case(target: str, what: str, exc: type[Exception], match: str, call: Callable[[], object]) -> None:
    CASES.append(Bad(target, what, exc, match, call))


# --- small valid objects the bad calls are made with (built on first use) --------------------------

TOK = words.default_tokenizer()
NAN, INF = float("nan"), float("inf")


@functools.cache
def kv_gpt() -> model.GPT:
    """A tiny GPT over the key-value task's vocabulary."""
    torch.manual_seed(0)
    return model.GPT(model.GPTConfig(vocab_size=kv_task.KVTask().vocab_size, n_layer=1, n_head=2, d_model=8))


@functools.cache
def ruler_gpt() -> model.GPT:
    """A tiny GPT over the RULER-lite tokenizer's vocabulary."""
    torch.manual_seed(0)
    return model.GPT(model.GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=8))


def lab_model() -> adapters.LabModel:
    return adapters.LabModel(ruler_gpt())


def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def x4(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.zeros(shape or (1, 2, 8, 4), dtype=dtype)


def xr(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(batch, heads, seq_len, head_dim) = (1, 2, 8, 8): what COS, SIN and INV8 rotate."""
    return torch.zeros(1, 2, 8, 8, dtype=dtype)


def qkv(n: int = 8, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return x4(1, 2, n, 4, dtype=dtype), x4(1, 2, n, 4, dtype=dtype), x4(1, 2, n, 4, dtype=dtype)


def long_q(n: int) -> torch.Tensor:
    """(1, 1, n, 1) without n floats of memory: an expanded view."""
    return torch.zeros(1, 1, 1, 1).expand(1, 1, n, 1)


def in_tmp(fn: Callable[[Path], object]) -> Callable[[], object]:
    """A call of fn(a fresh temporary folder), removed afterwards."""
    def run() -> object:
        with tempfile.TemporaryDirectory() as tmp:
            return fn(Path(tmp))
    return run


def checkpoint_with(tmp: Path, **model_fields: object) -> Path:
    """A checkpoint of kv_gpt() whose config.json model entry has model_fields changed."""
    checkpoint.save(kv_gpt(), tmp / "m")
    data = json.loads((tmp / "m" / "config.json").read_text())
    data["model"].update(model_fields)
    data.pop("weights_sha256")
    (tmp / "m" / "config.json").write_text(json.dumps(data))
    return tmp / "m"


def write_json(tmp: Path, data: object) -> Path:
    (tmp / "config.json").write_text(json.dumps(data))
    return tmp


def with_env(name: str, value: str, fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        old = os.environ.get(name)
        os.environ[name] = value
        try:
            return fn()
        finally:
            if old is None:
                del os.environ[name]
            else:
                os.environ[name] = old
    return run


def run_steps_with(**overrides: object) -> Callable[[], object]:
    """lclib.train.run_steps on a tiny model, with some arguments replaced."""
    def run() -> object:
        net = kv_gpt()
        opt = SimpleNamespace(param_groups=[], zero_grad=lambda set_to_none=True: None, step=lambda: None)  # no update
        kwargs = dict(model=net, opt=opt, sample=kv_task.KVTask(n_pairs=2).sample,
                      config=train.TrainConfig(steps=1, batch_size=1, warmup=0), losses=[])
        kwargs.update(overrides)
        return train.run_steps(**kwargs)
    return run


def loss_batch(**overrides: object) -> dict:
    batch = kv_task.KVTask(n_pairs=2).sample(2, gen())
    return {"tokens": batch["tokens"], "targets": batch["targets"], **overrides}


F64 = torch.float64
FAKE_HF = SimpleNamespace(generate=lambda **kwargs: None)  # has what HFModel calls on a model
FAKE_HF_TOKENIZER = lambda text, **kwargs: {"input_ids": text.split()}  # noqa: E731
INV8 = rope.inv_freq(8)  # (4,) float64


# --- lclib.validate: the shared checks refuse what they exist to refuse, naming the argument -------------
case("validate.integer", "bool", TypeError, "n_pairs", lambda: validate.integer("n_pairs", True))
case("validate.integer", "float", TypeError, "n_pairs", lambda: validate.integer("n_pairs", 2.0))
case("validate.integer", "below-low", ValueError, "n_pairs", lambda: validate.integer("n_pairs", 0, low=1))
case("validate.integer", "above-high", ValueError, "depth", lambda: validate.integer("depth", 17, low=1, high=16))
case("validate.number", "str", TypeError, "scale", lambda: validate.number("scale", "4"))
case("validate.number", "bool", TypeError, "scale", lambda: validate.number("scale", False))
case("validate.number", "nan", ValueError, "scale", lambda: validate.number("scale", NAN))
case("validate.number", "inf", ValueError, "scale", lambda: validate.number("scale", INF, low=1))
case("validate.number", "open-low", ValueError, "tau", lambda: validate.number("tau", 0.0, low=0, low_open=True))
case("validate.one_of", "unknown", ValueError, "layout", lambda: validate.one_of("layout", "diagonal", ("half", "interleaved")))
case("validate.one_of", "bool", ValueError, "causal_mode", lambda: validate.one_of("causal_mode", True, (0, 1)))
case("validate.tensor", "list", TypeError, r"\bq\b", lambda: validate.tensor("q", [1.0, 2.0]))
case("validate.tensor", "wrong-dim", ValueError, r"\bq\b", lambda: validate.tensor("q", torch.zeros(2, 3), dim=4))
case("validate.tensor", "int-not-floating", TypeError, r"\bq\b", lambda: validate.tensor("q", torch.zeros(2, dtype=torch.long), floating=True))
case("validate.tensor", "float-not-integer", TypeError, "tokens", lambda: validate.tensor("tokens", torch.zeros(2), floating=False))
case("validate.finite_vector", "2d", ValueError, r"\bp\b", lambda: validate.finite_vector("p", torch.ones(2, 2)))
case("validate.finite_vector", "nan", ValueError, r"\bp\b", lambda: validate.finite_vector("p", [0.5, NAN]))
case("validate.finite_vector", "str", TypeError, r"\bp\b", lambda: validate.finite_vector("p", "uniform"))
case("validate.token_ids", "1d", ValueError, "tokens", lambda: validate.token_ids("tokens", torch.zeros(3, dtype=torch.long), 10))
case("validate.token_ids", "float", TypeError, "tokens", lambda: validate.token_ids("tokens", torch.zeros(1, 3), 10))
case("validate.token_ids", "above-vocab", ValueError, "tokens", lambda: validate.token_ids("tokens", torch.tensor([[1, 10]]), 10))


# --- lclib.rope --------------------------------------------------------------------------------------

case("rope.inv_freq", "head_dim-str", TypeError, "head_dim", lambda: rope.inv_freq("64"))
case("rope.inv_freq", "head_dim-bool", TypeError, "head_dim", lambda: rope.inv_freq(True))
case("rope.inv_freq", "head_dim-float", TypeError, "head_dim", lambda: rope.inv_freq(64.0))
case("rope.inv_freq", "head_dim-zero", ValueError, "head_dim", lambda: rope.inv_freq(0))
case("rope.inv_freq", "head_dim-odd", ValueError, "head_dim", lambda: rope.inv_freq(63))
case("rope.inv_freq", "base-str", TypeError, "base", lambda: rope.inv_freq(8, "10000"))
case("rope.inv_freq", "base-one", ValueError, "base", lambda: rope.inv_freq(8, 1.0))
case("rope.inv_freq", "base-nan", ValueError, "base", lambda: rope.inv_freq(8, NAN))
case("rope.inv_freq", "base-inf", ValueError, "base", lambda: rope.inv_freq(8, INF))
case("rope.wavelengths", "inv_freq-list", TypeError, "inv_freq", lambda: rope.wavelengths([1.0, 0.1]))
case("rope.wavelengths", "inv_freq-int-dtype", TypeError, "inv_freq", lambda: rope.wavelengths(torch.tensor([1, 0])))
case("rope.rope_cos_sin", "positions-list", TypeError, "positions", lambda: rope.rope_cos_sin([0, 1], INV8))
case("rope.rope_cos_sin", "positions-2d", ValueError, "positions", lambda: rope.rope_cos_sin(torch.zeros(2, 2), INV8))
case("rope.rope_cos_sin", "inv_freq-int-dtype", TypeError, "inv_freq",
     lambda: rope.rope_cos_sin(torch.arange(3), torch.tensor([1, 0])))
case("rope.rope_cos_sin", "inv_freq-2d", ValueError, "inv_freq", lambda: rope.rope_cos_sin(torch.arange(3), INV8[None]))
case("rope.rope_cos_sin", "attention_factor-nan", ValueError, "attention_factor",
     lambda: rope.rope_cos_sin(torch.arange(3), INV8, attention_factor=NAN))
case("rope.rope_cos_sin", "attention_factor-str", TypeError, "attention_factor",
     lambda: rope.rope_cos_sin(torch.arange(3), INV8, attention_factor="1"))
case("rope.rope_cos_sin", "dtype-int", TypeError, "dtype",
     lambda: rope.rope_cos_sin(torch.arange(3), INV8, dtype=torch.int64))
COS, SIN = rope.rope_cos_sin(torch.arange(8), INV8)  # (8, 4) each
case("rope.apply_rope_cached", "x-int-dtype", TypeError, r"\bx\b", lambda: rope.apply_rope_cached(xr(dtype=torch.int64), COS, SIN))
case("rope.apply_rope_cached", "x-list", TypeError, r"\bx\b", lambda: rope.apply_rope_cached([[0.0] * 8] * 8, COS, SIN))
case("rope.apply_rope_cached", "cos-shape", ValueError, "cos", lambda: rope.apply_rope_cached(xr(), COS[:4], SIN[:4]))
case("rope.apply_rope_cached", "cos-list", TypeError, "cos", lambda: rope.apply_rope_cached(xr(), COS.tolist(), SIN))
case("rope.apply_rope_cached", "layout-unknown", ValueError, "layout", lambda: rope.apply_rope_cached(xr(), COS, SIN, "llama"))
case("rope.apply_rope_cached", "out-is-x", ValueError, "out", lambda: (lambda x: rope.apply_rope_cached(x, COS, SIN, out=x))(xr()))
case("rope.apply_rope", "x-list", TypeError, r"\bx\b", lambda: rope.apply_rope([1.0, 2.0], torch.arange(1), rope.inv_freq(2)))
case("rope.apply_rope", "x-int-dtype", TypeError, r"\bx\b", lambda: rope.apply_rope(xr(dtype=torch.int64), torch.arange(8), INV8))
case("rope.apply_rope", "x-1d", ValueError, r"\bx\b", lambda: rope.apply_rope(torch.zeros(8), torch.arange(1), INV8))
case("rope.apply_rope", "head_dim-odd", ValueError, "head_dim", lambda: rope.apply_rope(torch.zeros(5, 7), torch.arange(5), INV8))
case("rope.apply_rope", "positions-shape", ValueError, "positions", lambda: rope.apply_rope(xr(), torch.arange(7), INV8))
case("rope.apply_rope", "positions-list", TypeError, "positions", lambda: rope.apply_rope(xr(), list(range(8)), INV8))
case("rope.apply_rope", "inv_freq-shape", ValueError, "inv_freq", lambda: rope.apply_rope(xr(), torch.arange(8), INV8[:2]))
case("rope.apply_rope", "inv_freq-int-dtype", TypeError, "inv_freq",
     lambda: rope.apply_rope(torch.zeros(8, 2), torch.arange(8), torch.tensor([1])))
case("rope.apply_rope", "layout-unknown", ValueError, "layout", lambda: rope.apply_rope(xr(), torch.arange(8), INV8, "llama"))
case("rope.apply_rope", "attention_factor-nan", ValueError, "attention_factor",
     lambda: rope.apply_rope(xr(), torch.arange(8), INV8, attention_factor=NAN))
case("rope.apply_rope", "attention_factor-zero", ValueError, "attention_factor",
     lambda: rope.apply_rope(xr(), torch.arange(8), INV8, attention_factor=0.0))
case("rope.apply_rope_complex", "x-list", TypeError, r"\bx\b", lambda: rope.apply_rope_complex([[1.0, 2.0]], torch.arange(1), rope.inv_freq(2)))
case("rope.apply_rope_complex", "x-int-dtype", TypeError, r"\bx\b",
     lambda: rope.apply_rope_complex(xr(dtype=torch.int64), torch.arange(8), INV8))
case("rope.apply_rope_complex", "head_dim-odd", ValueError, "head_dim",
     lambda: rope.apply_rope_complex(torch.zeros(5, 7), torch.arange(5), INV8))
case("rope.apply_rope_complex", "positions-shape", ValueError, "positions",
     lambda: rope.apply_rope_complex(xr(), torch.arange(7), INV8))
case("rope.apply_rope_complex", "inv_freq-shape", ValueError, "inv_freq",
     lambda: rope.apply_rope_complex(xr(), torch.arange(8), INV8[:2]))
case("rope.layout_permutation", "head_dim-str", TypeError, "head_dim", lambda: rope.layout_permutation("8"))
case("rope.layout_permutation", "head_dim-odd", ValueError, "head_dim", lambda: rope.layout_permutation(7))
case("rope.layout_permutation", "head_dim-negative", ValueError, "head_dim", lambda: rope.layout_permutation(-8))
case("rope.decay_bound", "distances-2d", ValueError, "distances", lambda: rope.decay_bound(8, 10000.0, torch.zeros(2, 2)))
case("rope.decay_bound", "distances-str", TypeError, "distances", lambda: rope.decay_bound(8, 10000.0, "0, 1, 2"))
case("rope.decay_bound", "distances-nan", ValueError, "distances", lambda: rope.decay_bound(8, 10000.0, [0.0, NAN]))
case("rope.decay_bound", "head_dim-odd", ValueError, "head_dim", lambda: rope.decay_bound(7, 10000.0, [0.0]))
case("rope.decay_bound", "base-nan", ValueError, "base", lambda: rope.decay_bound(8, NAN, [0.0]))

# --- lclib.scaling -----------------------------------------------------------------------------------

case("scaling.linear", "scale-nan", ValueError, "scale", lambda: scaling.linear(8, 10000.0, NAN))
case("scaling.linear", "scale-inf", ValueError, "scale", lambda: scaling.linear(8, 10000.0, INF))
case("scaling.linear", "scale-below-one", ValueError, "scale", lambda: scaling.linear(8, 10000.0, 0.5))
case("scaling.linear", "scale-str", TypeError, "scale", lambda: scaling.linear(8, 10000.0, "4"))
case("scaling.linear", "scale-bool", TypeError, "scale", lambda: scaling.linear(8, 10000.0, True))
case("scaling.linear", "head_dim-str", TypeError, "head_dim", lambda: scaling.linear("8", 10000.0, 4.0))
case("scaling.linear", "base-inf", ValueError, "base", lambda: scaling.linear(8, INF, 4.0))
case("scaling.ntk", "head_dim-two", ValueError, "head_dim", lambda: scaling.ntk(2, 10000.0, 4.0))
case("scaling.ntk", "scale-nan", ValueError, "scale", lambda: scaling.ntk(8, 10000.0, NAN))
case("scaling.dynamic_ntk", "original_max_len-zero", ValueError, "original_max_len",
     lambda: scaling.dynamic_ntk(8, 10000.0, 4.0, 0, 10))
case("scaling.dynamic_ntk", "original_max_len-float", TypeError, "original_max_len",
     lambda: scaling.dynamic_ntk(8, 10000.0, 4.0, 64.0, 10))
case("scaling.dynamic_ntk", "seq_len-str", TypeError, "seq_len", lambda: scaling.dynamic_ntk(8, 10000.0, 4.0, 64, "10"))
case("scaling.dynamic_ntk", "seq_len-bool", TypeError, "seq_len", lambda: scaling.dynamic_ntk(8, 10000.0, 4.0, 64, True))
case("scaling.dynamic_ntk", "seq_len-negative", ValueError, "seq_len", lambda: scaling.dynamic_ntk(8, 10000.0, 4.0, 64, -1))
case("scaling.yarn_temperature", "scale-str", TypeError, "scale", lambda: scaling.yarn_temperature("4"))
case("scaling.yarn_temperature", "scale-nan", ValueError, "scale", lambda: scaling.yarn_temperature(NAN))
case("scaling.yarn_temperature", "scale-inf", ValueError, "scale", lambda: scaling.yarn_temperature(INF))
case("scaling.yarn_correction_range", "beta_fast-nan", ValueError, "beta_fast",
     lambda: scaling.yarn_correction_range(8, 10000.0, 64, beta_fast=NAN))
case("scaling.yarn_correction_range", "beta_slow-above-beta_fast", ValueError, "beta_fast",
     lambda: scaling.yarn_correction_range(8, 10000.0, 64, beta_fast=1.0, beta_slow=32.0))
case("scaling.yarn_correction_range", "original_max_len-zero", ValueError, "original_max_len",
     lambda: scaling.yarn_correction_range(8, 10000.0, 0))
case("scaling.yarn_correction_range", "truncate-str", TypeError, "truncate",
     lambda: scaling.yarn_correction_range(8, 10000.0, 64, truncate="no"))
case("scaling.yarn_ramp", "beta_slow-zero", ValueError, "beta_slow", lambda: scaling.yarn_ramp(8, 10000.0, 64, beta_slow=0.0))
case("scaling.yarn_ramp", "head_dim-odd", ValueError, "head_dim", lambda: scaling.yarn_ramp(7, 10000.0, 64))
case("scaling.yarn", "attention_factor-nan", ValueError, "attention_factor",
     lambda: scaling.yarn(8, 10000.0, 4.0, 64, attention_factor=NAN))
case("scaling.yarn", "attention_factor-negative", ValueError, "attention_factor",
     lambda: scaling.yarn(8, 10000.0, 4.0, 64, attention_factor=-1.0))
case("scaling.yarn", "original_max_len-bool", TypeError, "original_max_len", lambda: scaling.yarn(8, 10000.0, 4.0, True))
case("scaling.yarn", "scale-below-one", ValueError, "scale", lambda: scaling.yarn(8, 10000.0, 0.5, 64))
case("scaling.llama3", "low_freq_factor-above-high", ValueError, "low_freq_factor",
     lambda: scaling.llama3(8, 10000.0, 4.0, 64, low_freq_factor=4.0, high_freq_factor=1.0))
case("scaling.llama3", "high_freq_factor-nan", ValueError, "high_freq_factor",
     lambda: scaling.llama3(8, 10000.0, 4.0, 64, high_freq_factor=NAN))
case("scaling.llama3", "original_max_len-str", TypeError, "original_max_len", lambda: scaling.llama3(8, 10000.0, 4.0, "64"))
case("scaling.RopeScaling", "method-unknown", ValueError, "method", lambda: scaling.RopeScaling("longrope", 4.0))
case("scaling.RopeScaling", "scale-nan", ValueError, "scale", lambda: scaling.RopeScaling("linear", NAN))
case("scaling.RopeScaling", "yarn-without-original_max_len", ValueError, "original_max_len",
     lambda: scaling.RopeScaling("yarn", 4.0))
case("scaling.RopeScaling", "truncate-str", TypeError, "truncate",
     lambda: scaling.RopeScaling("yarn", 4.0, 64, truncate="no"))
case("scaling.RopeScaling", "attention_factor-zero", ValueError, "attention_factor",
     lambda: scaling.RopeScaling("yarn", 4.0, 64, attention_factor=0.0))
case("scaling.RopeScaling", "from_dict-unknown-key", ValueError, "config has unknown key",
     lambda: scaling.RopeScaling.from_dict({"rope_type": "linear", "factor": 2.0, "fator": 2.0}))
case("scaling.RopeScaling", "from_dict-list", TypeError, "config", lambda: scaling.RopeScaling.from_dict([("factor", 2.0)]))
case("scaling.RopeScaling", "frequencies-seq_len-zero", ValueError, "seq_len",
     lambda: scaling.RopeScaling("dynamic_ntk", 4.0, 64).frequencies(8, 10000.0, seq_len=0))
case("scaling.RopeScaling", "frequencies-head_dim-odd", ValueError, "head_dim",
     lambda: scaling.RopeScaling("linear", 4.0).frequencies(7, 10000.0))

# --- lclib.spectrum ----------------------------------------------------------------------------------

case("spectrum.turns", "inv_freq-list", TypeError, "inv_freq", lambda: spectrum.turns([1.0, 0.1], 256))
case("spectrum.turns", "context-zero", ValueError, "context", lambda: spectrum.turns(rope.inv_freq(8), 0))
case("spectrum.turns", "context-float", TypeError, "context", lambda: spectrum.turns(rope.inv_freq(8), 256.0))
case("spectrum.critical_dimension", "head_dim-odd", ValueError, "head_dim", lambda: spectrum.critical_dimension(15, 10000.0, 256))
case("spectrum.critical_dimension", "base-one", ValueError, "base", lambda: spectrum.critical_dimension(16, 1.0, 256))
case("spectrum.critical_dimension", "context-bool", TypeError, "context", lambda: spectrum.critical_dimension(16, 10000.0, True))
case("spectrum.factors", "scaling-str", TypeError, "scaling", lambda: spectrum.factors("yarn", 16, 10000.0))
case("spectrum.factors", "scale-below-one", ValueError, "scale",
     lambda: spectrum.factors(scaling.RopeScaling("linear", 0.5), 16, 10000.0))
case("spectrum.rope_shape", "model-str", TypeError, "model", lambda: spectrum.rope_shape("base"))
case("spectrum.rope_shape", "model-without-rope", ValueError, "pos_encoding",
     lambda: spectrum.rope_shape(model.GPTConfig(pos_encoding="alibi")))
case("spectrum.pair_table", "model-nope", ValueError, "no spectrum", lambda: spectrum.pair_table(model.GPTConfig(pos_encoding="none"), 256))
case("spectrum.pair_table", "scalings-list", TypeError, "scalings",
     lambda: spectrum.pair_table(model.GPTConfig(), 256, [scaling.RopeScaling("linear", 2.0)]))
case("spectrum.pair_table", "context-negative", ValueError, "context", lambda: spectrum.pair_table(model.GPTConfig(), -1))
case("spectrum.PairScaling", "pairs-list", TypeError, "pairs", lambda: spectrum.PairScaling([4], 8.0))
case("spectrum.PairScaling", "pairs-negative", ValueError, "pairs", lambda: spectrum.PairScaling((-1,), 8.0))
case("spectrum.PairScaling", "factor-zero", ValueError, "factor", lambda: spectrum.PairScaling((4,), 0.0))
case("spectrum.PairScaling", "attention_factor-nan", ValueError, "attention_factor",
     lambda: spectrum.PairScaling(attention_factor=NAN))
case("spectrum.PairScaling", "frequencies-pair-beyond-head_dim", ValueError, "pairs",
     lambda: spectrum.PairScaling((8,), 8.0).frequencies(16, 10000.0))


# --- lclib.dilated -----------------------------------------------------------------------------------

case("dilated.pattern_mask", "seq_len-zero", ValueError, r"\bseq_len must", lambda: dilated.pattern_mask(0, 4, 1))
case("dilated.pattern_mask", "seq_len-str", TypeError, r"\bseq_len must", lambda: dilated.pattern_mask("8", 4, 1))
case("dilated.pattern_mask", "n_head-zero", ValueError, "n_head", lambda: dilated.pattern_mask(8, 4, 1, n_head=0))
case("dilated.pattern_mask", "segment_len-zero", ValueError, "segment_len", lambda: dilated.pattern_mask(8, 0, 1))
case("dilated.pattern_mask", "segment_len-list", TypeError, "segment_len", lambda: dilated.pattern_mask(8, [4, 8], [1, 2]))
case("dilated.pattern_mask", "dilation-above-segment_len", ValueError, "dilation", lambda: dilated.pattern_mask(8, 4, 8))
case("dilated.pattern_mask", "seq_len-absurd", ValueError, "seq_len", lambda: dilated.pattern_mask(10**7, 4, 1))
case("dilated.attention_mask", "lengths-mismatched", ValueError, "segment_lengths",
     lambda: dilated.attention_mask(8, [4, 8], [1]))
case("dilated.attention_mask", "segment_lengths-empty", ValueError, "segment_lengths", lambda: dilated.attention_mask(8, [], []))
case("dilated.attention_mask", "n_head-float", TypeError, "n_head",
     lambda: dilated.attention_mask(8, [4], [1], n_head=2.0))
case("dilated.attention_mask", "seq_len-absurd", ValueError, "seq_len", lambda: dilated.attention_mask(10**7, [4], [1]))
case("dilated.multiplicity", "dilation_rates-zero", ValueError, "dilation_rates", lambda: dilated.multiplicity(8, [4], [0]))
case("dilated.multiplicity", "seq_len-absurd", ValueError, "seq_len", lambda: dilated.multiplicity(10**7, [4], [1]))
case("dilated.edge_counts", "seq_len-zero", ValueError, r"\bseq_len must", lambda: dilated.edge_counts(0, [4], [1]))
case("dilated.edge_counts", "segment_lengths-str", TypeError, "segment_lengths", lambda: dilated.edge_counts(8, "4", 1))
case("dilated.edge_counts", "seq_len-absurd", ValueError, "seq_len", lambda: dilated.edge_counts(10**12, [4], [1]))
case("dilated.edge_counts", "n_head-absurd", ValueError, "n_head",
     lambda: dilated.edge_counts(64, [4, 8], [1, 2], n_head=10**9))
case("dilated.edge_counts", "patterns-too-many-unnested", ValueError, "segment_lengths",
     lambda: dilated.edge_counts(64, list(range(3, 63)), [1] * 60))
case("dilated.distinct_edges", "seq_len-absurd", ValueError, "seq_len", lambda: dilated.distinct_edges(10**12, [4], [1]))
case("dilated.distinct_edges", "n_head-zero", ValueError, "n_head", lambda: dilated.distinct_edges(8, [4], [1], 0))
case("dilated.distinct_edges", "patterns-too-many-unnested", ValueError, "segment_lengths",
     lambda: dilated.distinct_edges(64, list(range(3, 63)), [1] * 60))
PATH4 = torch.eye(4, dtype=torch.bool)
case("dilated.reach", "mask-int-dtype", ValueError, "mask", lambda: dilated.reach(PATH4.long(), 2))
case("dilated.reach", "mask-list", TypeError, "mask", lambda: dilated.reach(PATH4.tolist(), 2))
case("dilated.reach", "mask-not-square", ValueError, "mask", lambda: dilated.reach(PATH4[:3], 2))
case("dilated.reach", "layers-zero", ValueError, "layers", lambda: dilated.reach(PATH4, 0))
case("dilated.reach", "layers-str", TypeError, "layers", lambda: dilated.reach(PATH4, "2"))
for fn in (dilated.dilated_attention_reference, dilated.dilated_attention):
    name = f"dilated.{fn.__name__}"
    case(name, "q-3d", ValueError, r"\bq must", lambda fn=fn: fn(torch.zeros(2, 8, 4), *qkv()[1:], [4], [1]))
    case(name, "q-list", TypeError, r"\bq must", lambda fn=fn: fn([[0.0]], *qkv()[1:], [4], [1]))
    case(name, "k-shape", ValueError, r"\bk must", lambda fn=fn: fn(qkv()[0], x4(1, 2, 7, 4), qkv()[2], [4], [1]))
    case(name, "v-shape", ValueError, r"\bv must", lambda fn=fn: fn(*qkv()[:2], x4(1, 1, 8, 4), [4], [1]))
    case(name, "q-int-dtype", TypeError, r"\bq\b", lambda fn=fn: fn(*qkv(dtype=torch.int64), [4], [1]))
    case(name, "k-dtype-mismatched", TypeError, r"\bk\b", lambda fn=fn: fn(qkv()[0], qkv(dtype=F64)[1], qkv()[2], [4], [1]))
    case(name, "segment_lengths-zero", ValueError, "segment_lengths", lambda fn=fn: fn(*qkv(), [0], [1]))
case("dilated.dilated_attention_reference", "seq_len-absurd", ValueError, "seq_len",
     lambda: dilated.dilated_attention_reference(long_q(10**7), long_q(10**7), long_q(10**7), [4], [1]))
case("dilated.dilated_attention", "kernel-unknown", ValueError, "kernel",
     lambda: dilated.dilated_attention(*qkv(), [4], [1], kernel="flash"))
case("dilated.make_bias_attention", "dilation_rates-zero", ValueError, "dilation_rates",
     lambda: dilated.make_bias_attention([4], [0]))
case("dilated.make_attention", "kernel-unknown", ValueError, "kernel", lambda: dilated.make_attention([4], [1], kernel="flash"))
case("dilated.make_attention", "dilation_rates-zero", ValueError, "dilation_rates", lambda: dilated.make_attention([4], [0]))
case("dilated.make_attention", "lengths-mismatched", ValueError, "segment_lengths",
     lambda: dilated.make_attention([4, 8], [1]))
case("dilated.patterns.check_patterns", "segment_lengths-none", TypeError, "segment_lengths",
     lambda: dpatterns.check_patterns(None, 1))
case("dilated.patterns.check_patterns", "dilation_rates-float", TypeError, r"dilation_rates\[1\]",
     lambda: dpatterns.check_patterns([4, 8], [1, 2.0]))
case("dilated.patterns.check_patterns", "dilation_rates-above-segment", ValueError, r"dilation_rates\[0\]",
     lambda: dpatterns.check_patterns([4], [8]))
case("dilated.reference.check_qkv", "v-list", TypeError, r"\bv must", lambda: dreference.check_qkv(*qkv()[:2], [0.0]))
case("dilated.reference.check_qkv", "seq_len-empty", ValueError, r"seq_len / P \(dim 2",
     lambda: dreference.check_qkv(*qkv(0), length_name="seq_len / P"))
case("dilated.reference.masked_softmax", "scores-int", TypeError, "scores",
     lambda: dreference.masked_softmax(torch.zeros(2, 3, dtype=torch.long)))
case("dilated.reference.masked_softmax", "keep-float", ValueError, "keep",
     lambda: dreference.masked_softmax(torch.zeros(2, 3), torch.ones(2, 3)))
case("dilated.reference.masked_softmax", "keep-not-broadcastable", ValueError, "keep",
     lambda: dreference.masked_softmax(torch.zeros(2, 3), torch.ones(3, 3, dtype=torch.bool)))
case("dilated.reference.mix", "lse-shape", ValueError, r"\blse\b",
     lambda: dreference.mix(torch.zeros(2, 4), torch.zeros(3), torch.zeros(2, 4), torch.zeros(2)))
case("dilated.reference.mix", "out_i-list", TypeError, "out_i",
     lambda: dreference.mix(torch.zeros(2, 4), torch.zeros(2), [[0.0] * 4] * 2, torch.zeros(2)))

# --- lclib.model -------------------------------------------------------------------------------------

ROTARY = positions.RotaryEmbedding
case("positions.RotaryEmbedding", "layout-unknown", ValueError, "layout", lambda: ROTARY(8, layout="llama"))
case("positions.RotaryEmbedding", "head_dim-odd", ValueError, "head_dim", lambda: ROTARY(7))
case("positions.RotaryEmbedding", "base-one", ValueError, "base", lambda: ROTARY(8, base=1.0))
case("positions.RotaryEmbedding", "scaling-str", TypeError, "scaling", lambda: ROTARY(8, scaling="yarn"))
case("positions.RotaryEmbedding", "set_scaling-number", TypeError, "scaling", lambda: ROTARY(8).set_scaling(2.0))
case("positions.RotaryEmbedding", "set_kernel-unknown", ValueError, "kernel", lambda: ROTARY(8).set_kernel("fast"))
case("positions.RotaryEmbedding", "forward-cos-shape", ValueError, "cos", lambda: ROTARY(8)(xr(), COS[:3], SIN[:3]))
case("positions.RotaryEmbedding", "forward-x-int-dtype", TypeError, r"\bx\b", lambda: ROTARY(8)(xr(dtype=torch.int64), COS, SIN))
case("positions.check_scaling", "scaling-str", TypeError, "scaling", lambda: positions.check_scaling("yarn"))
case("positions.check_scaling", "scaling-named", TypeError, "rope_scaling", lambda: positions.check_scaling(2.0, "rope_scaling"))
case("positions.ALiBi", "n_head-zero", ValueError, "n_head", lambda: positions.ALiBi(0))
case("positions.ALiBi", "n_head-str", TypeError, "n_head", lambda: positions.ALiBi("4"))
case("positions.ALiBi", "n_head-bool", TypeError, "n_head", lambda: positions.ALiBi(True))
case("positions.ALiBi", "n_head-float", TypeError, "n_head", lambda: positions.ALiBi(2.0))
case("positions.ALiBi", "bias-seq_len-zero", ValueError, "seq_len", lambda: positions.ALiBi(2).bias(0))
case("positions.ALiBi", "bias-seq_len-str", TypeError, "seq_len", lambda: positions.ALiBi(2).bias("8"))
case("positions.ALiBi", "bias-dtype-int", TypeError, "dtype", lambda: positions.ALiBi(2).bias(8, dtype=torch.int64))
case("model.sdpa_attention", "q-3d", ValueError, r"\bq\b", lambda: model.sdpa_attention(torch.zeros(2, 8, 4), *qkv()[1:], True))
case("model.sdpa_attention", "k-shape", ValueError, r"\bk\b", lambda: model.sdpa_attention(qkv()[0], x4(1, 2, 7, 4), qkv()[2], True))
case("model.sdpa_attention", "v-shape", ValueError, r"\bv\b", lambda: model.sdpa_attention(*qkv()[:2], x4(1, 1, 8, 4), True))
case("model.sdpa_attention", "q-int-dtype", TypeError, r"\bq\b", lambda: model.sdpa_attention(*qkv(dtype=torch.int64), True))
for what, kw, exc, match in [
        ("vocab_size-zero", dict(vocab_size=0), ValueError, "vocab_size"), ("n_head-str", dict(n_head="4"), TypeError, "n_head"),
        ("n_layer-bool", dict(n_layer=True), TypeError, "n_layer"), ("mlp_ratio-float", dict(mlp_ratio=2.5), TypeError, "mlp_ratio"),
        ("pos_encoding-unknown", dict(pos_encoding="learned"), ValueError, "pos_encoding"),
        ("rope_layout-unknown", dict(rope_layout="zigzag"), ValueError, "rope_layout"),
        ("init-unknown", dict(init="xavier"), ValueError, "init"), ("rope_base-nan", dict(rope_base=NAN), ValueError, "rope_base"),
        ("rope_base-str", dict(rope_base="10000"), TypeError, "rope_base"),
        ("n_kv_head-zero", dict(n_kv_head=0), ValueError, "n_kv_head"), ("n_kv_head-float", dict(n_kv_head=2.0), TypeError, "n_kv_head"),
        ("n_kv_head-not-dividing", dict(n_kv_head=3), ValueError, "n_kv_head"),
        ("rope_base-one", dict(rope_base=1.0), ValueError, "rope_base"),
        ("rope_scaling-str", dict(rope_scaling="yarn"), TypeError, "rope_scaling"),
        ("tie_embeddings-str", dict(tie_embeddings="yes"), TypeError, "tie_embeddings")]:
    case("model.GPTConfig", what, exc, match, lambda kw=kw: model.GPTConfig(**kw))
case("model.GPTConfig", "d_model-not-divisible-by-n_head", ValueError, "d_model", lambda: model.GPTConfig(d_model=10, n_head=4))
case("model.Attention", "config-dict", TypeError, "config", lambda: model.Attention({"n_head": 2}))
case("model.Attention", "attention_fn-not-callable", TypeError, "attention_fn",
     lambda: model.Attention(model.GPTConfig(), attention_fn="sdpa"))
case("model.Block", "config-none", TypeError, "config", lambda: model.Block(None))
case("model.Block", "attention_fn-not-callable", TypeError, "attention_fn", lambda: model.Block(model.GPTConfig(), 3))
case("model.GPT", "config-dict", TypeError, "config", lambda: model.GPT({"vocab_size": 84}))
case("model.GPT", "attention_fn-not-callable", TypeError, "attention_fn", lambda: model.GPT(model.GPTConfig(), "dilated"))
case("model.GPT", "forward-tokens-1d", ValueError, "tokens", lambda: kv_gpt()(torch.zeros(5, dtype=torch.long)))
case("model.GPT", "forward-tokens-float", TypeError, "tokens", lambda: kv_gpt()(torch.zeros(1, 5)))
case("model.GPT", "forward-tokens-above-vocab", ValueError, "tokens", lambda: kv_gpt()(torch.full((1, 5), 84)))
case("model.GPT", "forward-tokens-negative", ValueError, "tokens", lambda: kv_gpt()(torch.full((1, 5), -1)))
case("model.GPT", "forward-positions-shape", ValueError, "positions",
     lambda: kv_gpt()(torch.zeros(1, 5, dtype=torch.long), positions=torch.arange(4)))
case("model.GPT", "forward-positions-list", TypeError, "positions",
     lambda: kv_gpt()(torch.zeros(1, 5, dtype=torch.long), positions=list(range(5))))
case("model.GPT", "forward-rope_len-zero", ValueError, "rope_len", lambda: kv_gpt()(torch.zeros(1, 5, dtype=torch.long), rope_len=0))
case("model.GPT", "forward-rope_len-bool", TypeError, "rope_len",
     lambda: kv_gpt()(torch.zeros(1, 5, dtype=torch.long), rope_len=True))
case("model.GPT", "set_attention-not-callable", TypeError, "attention_fn",
     lambda: model.GPT(model.GPTConfig(n_layer=1, d_model=8, n_head=2)).set_attention("dilated"))
case("model.GPT", "set_rope_scaling-str", TypeError, "rope_scaling",
     lambda: model.GPT(model.GPTConfig(n_layer=1, d_model=8, n_head=2)).set_rope_scaling("yarn"))
case("model.GPT", "set_rope_kernel-nope", ValueError, "kernel",
     lambda: model.GPT(model.GPTConfig(n_layer=1, d_model=8, n_head=2, pos_encoding="none")).set_rope_kernel("eager"))
case("model.attention_mask", "q_positions-list", TypeError, "q_positions", lambda: model.attention_mask([0, 1], torch.arange(2)))
case("model.attention_mask", "k_positions-float", TypeError, "k_positions",
     lambda: model.attention_mask(torch.arange(2), torch.zeros(2)))
case("model.attention_mask", "q_positions-2d", TypeError, "q_positions",
     lambda: model.attention_mask(torch.arange(4).view(2, 2), torch.arange(2)))
case("generation.greedy_decode", "logits_fn-none", TypeError, "logits_fn", lambda: generation.greedy_decode(None, torch.zeros(1, 2, dtype=torch.long), 1))
case("generation.greedy_decode", "tokens-1d", ValueError, "tokens", lambda: generation.greedy_decode(kv_gpt(), torch.zeros(2, dtype=torch.long), 1))
case("generation.greedy_decode", "tokens-float", TypeError, "tokens", lambda: generation.greedy_decode(kv_gpt(), torch.zeros(1, 2), 1))
case("generation.greedy_decode", "max_new_tokens-negative", ValueError, "max_new_tokens",
     lambda: generation.greedy_decode(kv_gpt(), torch.zeros(1, 2, dtype=torch.long), -1))
case("generation.greedy_decode", "stop_id-str", TypeError, "stop_id",
     lambda: generation.greedy_decode(kv_gpt(), torch.zeros(1, 2, dtype=torch.long), 1, stop_id="eos"))

# --- lclib.kv_task ------------------------------------------------------------------------------------

case("kv_task.demand", "kind-unknown", ValueError, "kind", lambda: kv_task.demand("middle", 8))
case("kv_task.demand", "n_pairs-zero", ValueError, "n_pairs", lambda: kv_task.demand("uniform", 0))
case("kv_task.demand", "n_pairs-str", TypeError, "n_pairs", lambda: kv_task.demand("uniform", "8"))
case("kv_task.demand", "n_pairs-bool", TypeError, "n_pairs", lambda: kv_task.demand("uniform", True))
case("kv_task.demand", "eps-above-one", ValueError, "eps", lambda: kv_task.demand("smooth", 8, eps=1.5))
case("kv_task.demand", "eps-nan", ValueError, "eps", lambda: kv_task.demand("smooth", 8, eps=NAN))
case("kv_task.demand", "eps-str", TypeError, "eps", lambda: kv_task.demand("smooth", 8, eps="0.25"))
case("kv_task.demand", "tau-zero", ValueError, "tau", lambda: kv_task.demand("smooth", 8, tau=0.0))
case("kv_task.demand", "tau-nan", ValueError, "tau", lambda: kv_task.demand("smooth", 8, tau=NAN))
case("kv_task.demand", "tau-str", TypeError, "tau", lambda: kv_task.demand("smooth", 8, tau="3"))
case("kv_task.demand", "ends-zero", ValueError, "ends", lambda: kv_task.demand("ends", 8, ends=0))
case("kv_task.demand", "ends-float", TypeError, "ends", lambda: kv_task.demand("ends", 8, ends=2.5))
for what, kw, match in [
        ("n_pairs-zero", dict(n_pairs=0), "n_pairs"), ("n_pairs-str", dict(n_pairs="24"), "n_pairs"),
        ("n_pairs-bool", dict(n_pairs=True), "n_pairs"), ("n_pairs-float", dict(n_pairs=24.0), "n_pairs"),
        ("n_pairs-range-reversed", dict(n_pairs=(8, 4)), "n_pairs"), ("n_pairs-three-numbers", dict(n_pairs=(2, 4, 8)), "n_pairs"),
        ("key_symbols-zero", dict(key_symbols=0), "key_symbols"), ("key_symbols-above-64", dict(key_symbols=65), "key_symbols"),
        ("questions-zero", dict(questions=0), "questions"),
        ("demand-unknown", dict(demand="middle"), "demand"),
        ("demand_params-unknown-key", dict(demand_params={"tua": 3.0}), "demand_params"),
        ("demand_params-tau-nan", dict(demand_params={"tau": NAN}), "tau")]:
    case("kv_task.KVTask", what, ValueError, match, lambda kw=kw: kv_task.KVTask(**kw))
for what, kw in [("key_symbols-str", dict(key_symbols="32")), ("key_symbols-bool", dict(key_symbols=True)),
                 ("questions-str", dict(questions="8"))]:
    case("kv_task.KVTask", what, TypeError, what.split("-")[0], lambda kw=kw: kv_task.KVTask(**kw))
case("kv_task.KVTask", "distinct_keys-str", TypeError, "distinct_keys", lambda: kv_task.KVTask(distinct_keys="yes"))
case("kv_task.KVTask", "demand_params-list", TypeError, "demand_params", lambda: kv_task.KVTask(demand_params=[("tau", 3.0)]))
case("kv_task.KVTask", "distinct-keys-more-pairs-than-keys", ValueError, "key_symbols",
     lambda: kv_task.KVTask(n_pairs=40, key_symbols=32, distinct_keys=True))
case("kv_task.KVTask", "sample-batch-zero", ValueError, "batch", lambda: kv_task.KVTask().sample(0, gen()))
case("kv_task.KVTask", "sample-batch-str", TypeError, "batch", lambda: kv_task.KVTask().sample("2", gen()))
case("kv_task.KVTask", "sample-n_pairs-zero", ValueError, "n_pairs", lambda: kv_task.KVTask().sample(2, gen(), n_pairs=0))
case("kv_task.KVTask", "sample-distinct-keys-more-pairs-than-keys", ValueError, "n_pairs",
     lambda: kv_task.KVTask(n_pairs=8, key_symbols=8, distinct_keys=True).sample(2, gen(), n_pairs=9))
case("kv_task.KVTask", "sample-query_positions-out-of-range", ValueError, "query_positions",
     lambda: kv_task.KVTask().sample(2, gen(), n_pairs=4, query_positions=torch.tensor([[4], [0]])))
case("kv_task.KVTask", "sample-query_positions-wrong-batch", ValueError, "query_positions",
     lambda: kv_task.KVTask().sample(2, gen(), n_pairs=4, query_positions=torch.tensor([[0], [1], [2]])))
case("kv_task.token_text", "token-above-vocab", ValueError, "token", lambda: kv_task.token_text(84))
case("kv_task.token_text", "token-negative", ValueError, "token", lambda: kv_task.token_text(-1))
case("kv_task.token_text", "token-str", TypeError, "token", lambda: kv_task.token_text("5"))
case("kv_task.to_text", "tokens-float", TypeError, "tokens", lambda: kv_task.to_text(torch.tensor([1.5, 4.0])))
case("kv_task.to_text", "tokens-str", TypeError, "tokens", lambda: kv_task.to_text("BOS K01"))
case("kv_task.to_text", "tokens-above-vocab", ValueError, "token", lambda: kv_task.to_text(torch.tensor([1, 99])))
case("kv_task.bayes_accuracy", "p-2d", ValueError, r"\bp\b", lambda: kv_task.bayes_accuracy(torch.ones(2, 2) / 4, 8))
case("kv_task.bayes_accuracy", "p-nan", ValueError, r"\bp\b", lambda: kv_task.bayes_accuracy(torch.tensor([0.5, NAN]), 8))
case("kv_task.bayes_accuracy", "p-str", TypeError, r"\bp\b", lambda: kv_task.bayes_accuracy("uniform", 8))
case("kv_task.bayes_accuracy", "key_symbols-zero", ValueError, "key_symbols", lambda: kv_task.bayes_accuracy(torch.ones(4) / 4, 0))
case("kv_task.bayes_accuracy", "key_symbols-float", TypeError, "key_symbols",
     lambda: kv_task.bayes_accuracy(torch.ones(4) / 4, 2.5))
case("kv_task.bayes_accuracy", "key_symbols-str", TypeError, "key_symbols",
     lambda: kv_task.bayes_accuracy(torch.ones(4) / 4, "32"))
KV4 = kv_task.KVTask(n_pairs=4).sample(2, gen())
case("kv_task.bayes_logprob", "p-shape", ValueError, r"\bp\b", lambda: kv_task.bayes_logprob(KV4, torch.ones(3) / 3))
case("kv_task.bayes_logprob", "p-zero", ValueError, r"\bp\b", lambda: kv_task.bayes_logprob(KV4, torch.tensor([0.5, 0.5, 0.0, 0.0])))
case("kv_task.bayes_logprob", "p-nan", ValueError, r"\bp\b", lambda: kv_task.bayes_logprob(KV4, torch.tensor([0.5, NAN, 0.2, 0.3])))

# --- lclib.train -------------------------------------------------------------------------------------

for what, kw, exc, match in [
        ("steps-zero", dict(steps=0), ValueError, "steps"), ("steps-float", dict(steps=10.0), TypeError, "steps"),
        ("steps-bool", dict(steps=True), TypeError, "steps"), ("batch_size-zero", dict(batch_size=0), ValueError, "batch_size"),
        ("lr-nan", dict(lr=NAN), ValueError, r"\blr\b"), ("lr-zero", dict(lr=0.0), ValueError, r"\blr\b"),
        ("lr-inf", dict(lr=INF), ValueError, r"\blr\b"), ("lr-str", dict(lr="3e-3"), TypeError, r"\blr\b"),
        ("warmup-negative", dict(warmup=-1), ValueError, "warmup"),
        ("weight_decay-negative", dict(weight_decay=-0.1), ValueError, "weight_decay"),
        ("weight_decay-nan", dict(weight_decay=NAN), ValueError, "weight_decay"),
        ("grad_clip-zero", dict(grad_clip=0.0), ValueError, "grad_clip"), ("seed-str", dict(seed="0"), TypeError, "seed")]:
    case("train.TrainConfig", what, exc, match, lambda kw=kw: train.TrainConfig(**kw))
case("train.lr_at", "step-negative", ValueError, "step", lambda: train.lr_at(-1, train.TrainConfig()))
case("train.lr_at", "step-str", TypeError, "step", lambda: train.lr_at("5", train.TrainConfig()))
case("train.lr_at", "config-dict", TypeError, r"\bconfig\b", lambda: train.lr_at(5, {"lr": 1e-3}))
case("train.answer_loss", "batch-list", TypeError, "batch", lambda: train.answer_loss(kv_gpt(), [torch.zeros(1, 5)]))
case("train.answer_loss", "batch-without-targets", ValueError, "targets",
     lambda: train.answer_loss(kv_gpt(), {"tokens": torch.zeros(1, 5, dtype=torch.long)}))
case("train.answer_loss", "targets-shape", ValueError, "targets",
     lambda: train.answer_loss(kv_gpt(), loss_batch(targets=torch.zeros(2, 3, dtype=torch.long))))
case("train.answer_loss", "weights-shape", ValueError, "weights",
     lambda: train.answer_loss(kv_gpt(), loss_batch(weights=torch.ones(2))))
TINY = model.GPTConfig(vocab_size=84, n_layer=1, n_head=2, d_model=8)
case("train.train", "model_config-dict", TypeError, "model_config",
     lambda: train.train({"vocab_size": 84}, kv_task.KVTask(), train.TrainConfig(steps=1), progress=False))
case("train.train", "task-without-sample", TypeError, "task",
     lambda: train.train(TINY, "kv", train.TrainConfig(steps=1), progress=False))
case("train.train", "config-dict", TypeError, r"\bconfig\b", lambda: train.train(TINY, kv_task.KVTask(), {"steps": 1}, progress=False))
case("train.train", "vocab_size-below-task", ValueError, "vocab_size",
     lambda: train.train(dataclasses.replace(TINY, vocab_size=10), kv_task.KVTask(), train.TrainConfig(steps=1), progress=False))
case("train.train", "eval_every-negative", ValueError, "eval_every",
     lambda: train.train(TINY, kv_task.KVTask(), train.TrainConfig(steps=1), eval_fn=lambda m, s: {}, eval_every=-1,
                         progress=False))
case("train.train", "eval_fn-not-callable", TypeError, "eval_fn",
     lambda: train.train(TINY, kv_task.KVTask(), train.TrainConfig(steps=1), eval_fn="exact", progress=False))
case("train.train", "init_state-list", TypeError, "init_state",
     lambda: train.train(TINY, kv_task.KVTask(), train.TrainConfig(steps=1), init_state=[], progress=False))
case("train.run_steps", "config-dict", TypeError, r"\bconfig\b", run_steps_with(config={"steps": 1}))
case("train.run_steps", "sample-not-callable", TypeError, "sample", run_steps_with(sample=kv_task.KVTask()))
case("train.run_steps", "losses-tuple", TypeError, "losses", run_steps_with(losses=()))
case("train.run_steps", "after_step-not-callable", TypeError, "after_step", run_steps_with(after_step=1))
case("checkpoint.save", "model-not-gpt", TypeError, "model", in_tmp(lambda tmp: checkpoint.save(kv_gpt().state_dict(), tmp / "m")))
case("checkpoint.save", "metadata-reserved-key", ValueError, "metadata", in_tmp(lambda tmp: checkpoint.save(kv_gpt(), tmp / "m", format=1)))
case("checkpoint.save", "metadata-not-json", TypeError, "metadata",
     in_tmp(lambda tmp: checkpoint.save(kv_gpt(), tmp / "m", note=torch.zeros(2))))
case("checkpoint.save", "path-int", TypeError, "path", lambda: checkpoint.save(kv_gpt(), 7))
case("checkpoint.load", "path-int", TypeError, "path", lambda: checkpoint.load(7))
case("checkpoint.load", "config-n_head-zero", ValueError, "n_head", in_tmp(lambda tmp: checkpoint.load(checkpoint_with(tmp, n_head=0))))
case("checkpoint.load", "config-unknown-field", ValueError, "n_heads", in_tmp(lambda tmp: checkpoint.load(checkpoint_with(tmp, n_heads=2))))
case("checkpoint.read_metadata", "config-not-an-object", ValueError, "config.json",
     in_tmp(lambda tmp: checkpoint.read_metadata(write_json(tmp, [1, 2]))))

# --- lclib.probes ----------------------------------------------------------------------------------

case("probes.wilson_interval", "trials-zero", ValueError, "trials", lambda: probes.wilson_interval(torch.tensor([1]), 0))
case("probes.wilson_interval", "trials-str", TypeError, "trials", lambda: probes.wilson_interval(torch.tensor([1]), "10"))
case("probes.wilson_interval", "successes-above-trials", ValueError, "successes",
     lambda: probes.wilson_interval(torch.tensor([12]), 10))
case("probes.mean_ci", "values-str", TypeError, "values", lambda: probes.mean_ci("0.5"))
case("probes.mean_ci", "dim-out-of-range", ValueError, r"\bdim\b", lambda: probes.mean_ci(torch.zeros(3, 2), dim=2))
case("probes.mean_ci", "values-empty", ValueError, "values", lambda: probes.mean_ci(torch.zeros(0)))
case("probes.t_quantile_95", "dof-zero", ValueError, "dof", lambda: probes.t_quantile_95(0))
case("probes.t_quantile_95", "dof-str", TypeError, "dof", lambda: probes.t_quantile_95("3"))
case("probes.t_quantile_95", "dof-bool", TypeError, "dof", lambda: probes.t_quantile_95(True))
case("probes.position_sweep", "samples-zero", ValueError, "samples",
     lambda: probes.position_sweep(kv_gpt(), kv_task.KVTask(n_pairs=4), 4, samples=0))
case("probes.position_sweep", "n_pairs-str", TypeError, "n_pairs",
     lambda: probes.position_sweep(kv_gpt(), kv_task.KVTask(n_pairs=4), "4", samples=1))
case("probes.position_sweep", "batch_size-zero", ValueError, "batch_size",
     lambda: probes.position_sweep(kv_gpt(), kv_task.KVTask(n_pairs=4), 4, samples=1, batch_size=0))
case("probes.position_sweep", "model-not-a-module", TypeError, "model",
     lambda: probes.position_sweep("gpt", kv_task.KVTask(n_pairs=4), 4, samples=1))
case("probes.position_sweep", "task-not-a-kvtask", TypeError, "task",
     lambda: probes.position_sweep(kv_gpt(), "kv", 4, samples=1))
case("probes.u_shape", "acc-2d", ValueError, "acc", lambda: probes.u_shape(torch.zeros(2, 5)))
case("probes.u_shape", "acc-too-short", ValueError, "acc", lambda: probes.u_shape(torch.zeros(2)))
case("probes.u_shape", "ends-zero", ValueError, "ends", lambda: probes.u_shape(torch.zeros(5), ends=0))
case("probes.u_shape", "ends-str", TypeError, "ends", lambda: probes.u_shape(torch.zeros(5), ends="1"))
case("probes.sweep_to_json", "result-list", TypeError, "result", lambda: probes.sweep_to_json([0.5]))

# --- lclib.plotting, lclib.run_profile, lclib.repro ------------------------------------------------------

case("plotting.save_fig", "name-empty", ValueError, "name", lambda: plotting.save_fig(None, ""))
case("plotting.save_fig", "name-absolute", ValueError, "name", lambda: plotting.save_fig(None, "/tmp/x"))
case("plotting.save_fig", "name-parent", ValueError, "name", lambda: plotting.save_fig(None, "../x"))
case("plotting.save_fig", "name-int", TypeError, "name", lambda: plotting.save_fig(None, 7))
case("plotting.save_fig", "fig-not-a-figure", TypeError, "fig", lambda: plotting.save_fig("figure", "test/x"))
case("plotting.show", "fig-not-a-figure", TypeError, "fig", lambda: plotting.show("figure", "a line chart of one thing against another"))
case("plotting.show", "alt-none", TypeError, "alt", lambda: plotting.show(Figure(), None))
case("plotting.show", "alt-too-short", ValueError, "alt", lambda: plotting.show(Figure(), "a figure"))
case("plotting.show", "save_as-absolute", ValueError, "name",
     lambda: plotting.show(Figure(), "a line chart of one thing against another", save_as="/tmp/x"))
case("plotting.heatmap", "data-1d", ValueError, "data", lambda: plotting.heatmap([1.0, 2.0]))
case("plotting.heatmap", "data-str", TypeError, "data", lambda: plotting.heatmap([["a", "b"]]))
case("plotting.heatmap", "x-labels-too-few", ValueError, r"\bx\b", lambda: plotting.heatmap([[1.0] * 4] * 3, x=[1, 2]))
case("plotting.heatmap", "y-labels-too-few", ValueError, r"\by\b", lambda: plotting.heatmap([[1.0] * 4] * 3, y=[1]))
case("plotting.heatmap", "ax-str", TypeError, r"\bax\b", lambda: plotting.heatmap([[1.0]], ax="left"))
case("plotting.lines", "ys-list", TypeError, r"\bys\b", lambda: plotting.lines([1, 2], [[1, 2]]))
case("plotting.lines", "ys-length-mismatched", ValueError, r"\bys\b", lambda: plotting.lines([1, 2, 3], {"a": [1, 2]}))
case("plotting.lines", "ax-str", TypeError, r"\bax\b", lambda: plotting.lines([1, 2], {"a": [1, 2]}, ax="left"))
case("run_profile.tag", "title-int", TypeError, "title", lambda: run_profile.tag(7))
case("repro.seed_everything", "seed-str", TypeError, "seed", lambda: repro.seed_everything("0"))
case("repro.seed_everything", "seed-bool", TypeError, "seed", lambda: repro.seed_everything(True))
case("repro.seed_everything", "seed-float", TypeError, "seed", lambda: repro.seed_everything(0.5))
case("repro.device", "LCLIB_DEVICE-unknown", ValueError, "LCLIB_DEVICE", with_env("LCLIB_DEVICE", "gpu", repro.device))
case("repro.setup_notebook", "seed-str", TypeError, "seed", lambda: repro.setup_notebook("0"))

# --- lclib.ruler.tasks -------------------------------------------------------------------------------

for target, fn in [("needles.niah", needles.niah), ("variable_tracking.variable_tracking", variable_tracking.variable_tracking),
                   ("aggregation.common_words", aggregation.common_words),
                   ("aggregation.frequent_words", aggregation.frequent_words), ("qa.multidoc_qa", qa.multidoc_qa)]:
    target = f"ruler.{target}"
    case(target, "seq_len-short", ValueError, "seq_len", lambda fn=fn: fn(TOK, 16, 0))
    case(target, "seq_len-str", TypeError, "seq_len", lambda fn=fn: fn(TOK, "512", 0))
    case(target, "seed-str", TypeError, "seed", lambda fn=fn: fn(TOK, 512, "0"))
    case(target, "depth-above-one", ValueError, "depth", lambda fn=fn: fn(TOK, 512, 0, depth=1.5))
    case(target, "depth-nan", ValueError, "depth", lambda fn=fn: fn(TOK, 512, 0, depth=NAN))
    case(target, "depth-str", TypeError, "depth", lambda fn=fn: fn(TOK, 512, 0, depth="0.5"))
    case(target, "tokenizer-none", TypeError, "tokenizer", lambda fn=fn: fn(None, 512, 0))
case("ruler.needles.niah", "seq_len-bool", TypeError, "seq_len", lambda: needles.niah(TOK, True, 0))
case("ruler.needles.niah", "seq_len-too-short-for-needles", ValueError, "seq_len", lambda: needles.niah(TOK, 64, 0, num_keys=8))
case("ruler.needles.niah", "haystack-unknown", ValueError, "haystack", lambda: needles.niah(TOK, 512, 0, haystack="lorem"))
case("ruler.needles.niah", "key_kind-unknown", ValueError, "key_kind", lambda: needles.niah(TOK, 512, 0, key_kind="names"))
case("ruler.needles.niah", "value_kind-unknown", ValueError, "value_kind", lambda: needles.niah(TOK, 512, 0, value_kind="names"))
case("ruler.needles.niah", "num_keys-zero", ValueError, "num_keys", lambda: needles.niah(TOK, 512, 0, num_keys=0))
case("ruler.needles.niah", "num_queries-above-num_keys", ValueError, "num_queries",
     lambda: needles.niah(TOK, 512, 0, num_keys=2, num_queries=3))
case("ruler.needles.niah", "num_queries-str", TypeError, "num_queries", lambda: needles.niah(TOK, 512, 0, num_queries="1"))
case("ruler.needles.niah", "value_len-zero", ValueError, "value_len", lambda: needles.niah(TOK, 512, 0, value_len=0))
case("ruler.needles.niah", "singular-str", TypeError, "singular", lambda: needles.niah(TOK, 512, 0, singular="yes"))
# requests no pool can meet: each must end in a ValueError, not a search without end
case("ruler.needles.niah", "num_keys-beyond-key-pool", ValueError, "num_keys",
     lambda: needles.niah(TOK, 4096, 0, key_kind="vocab_words", num_keys=100))
case("ruler.needles.niah", "num_values-beyond-value-pool", ValueError, "num_values",
     lambda: needles.niah(TOK, 4096, 0, value_kind="vocab_words", num_values=60))
case("ruler.needles.niah", "needle-haystack-keys-used-up", ValueError, "num_keys",
     lambda: needles.niah(TOK, 2048, 0, haystack="needle", key_kind="vocab_words", num_keys=len(words.KEY_WORDS)))
case("ruler.needles.niah", "needle-haystack-values-used-up", ValueError, "num_keys",
     lambda: needles.niah(TOK, 1024, 0, haystack="needle", value_len=1, num_keys=9))
case("ruler.needles.niah", "essay-haystack-more-needles-than-depths", ValueError, "num_keys",
     lambda: needles.niah(TOK, 2048, 0, haystack="essay", num_keys=41))
case("ruler.needles.niah_question", "key-int", TypeError, "key", lambda: needles.niah_question(7))
case("ruler.needles.niah_question", "value_kind-unknown", ValueError, "value_kind", lambda: needles.niah_question("apple", "names"))
case("ruler.needles.niah_question", "singular-str", TypeError, "singular", lambda: needles.niah_question("apple", singular="no"))
case("ruler.variable_tracking.variable_tracking", "num_hops-zero", ValueError, "num_hops", lambda: variable_tracking.variable_tracking(TOK, 512, 0, num_hops=0))
case("ruler.variable_tracking.variable_tracking", "num_chains-str", TypeError, "num_chains",
     lambda: variable_tracking.variable_tracking(TOK, 512, 0, num_chains="1"))
case("ruler.variable_tracking.variable_tracking", "name_len-zero", ValueError, "name_len",
     lambda: variable_tracking.variable_tracking(TOK, 512, 0, name_len=0))
case("ruler.variable_tracking.variable_tracking", "layout-unknown", ValueError, "layout",
     lambda: variable_tracking.variable_tracking(TOK, 512, 0, layout="table"))
case("ruler.variable_tracking.variable_tracking", "example-str", TypeError, "example",
     lambda: variable_tracking.variable_tracking(TOK, 512, 0, example="yes"))
case("ruler.variable_tracking.variable_tracking", "example-does-not-fit", ValueError, "seq_len",
     lambda: variable_tracking.variable_tracking(TOK, 128, 0, example=True))
case("ruler.variable_tracking.variable_tracking", "names-beyond-pool", ValueError, "name_len",
     lambda: variable_tracking.variable_tracking(TOK, 4096, 0, name_len=1, num_hops=30))
case("ruler.aggregation.common_words", "num_common-zero", ValueError, "num_common", lambda: aggregation.common_words(TOK, 2048, 0, num_common=0))
case("ruler.aggregation.common_words", "freq_common-not-above-freq_uncommon", ValueError, "freq_common",
     lambda: aggregation.common_words(TOK, 2048, 0, freq_common=2, freq_uncommon=3))
case("ruler.aggregation.common_words", "num_common-not-below-example", ValueError, "num_common",
     lambda: aggregation.common_words(TOK, 2048, 0, num_common=20))
case("ruler.aggregation.common_words", "length-too-short-for-words", ValueError, "seq_len", lambda: aggregation.common_words(TOK, 512, 0))
case("ruler.aggregation.common_words", "num_common-beyond-word-pool", ValueError, "num_common",
     lambda: aggregation.common_words(TOK, 2048, 0, num_common=10**6, example=False))
case("ruler.aggregation.common_words", "freq_common-absurd", ValueError, "seq_len",
     lambda: aggregation.common_words(TOK, 2048, 0, freq_common=10**9, example=False))
case("ruler.aggregation.frequent_words", "alpha-one", ValueError, "alpha", lambda: aggregation.frequent_words(TOK, 512, 0, alpha=1.0))
case("ruler.aggregation.frequent_words", "alpha-nan", ValueError, "alpha", lambda: aggregation.frequent_words(TOK, 512, 0, alpha=NAN))
case("ruler.aggregation.frequent_words", "alpha-inf", ValueError, "alpha", lambda: aggregation.frequent_words(TOK, 512, 0, alpha=INF))
case("ruler.aggregation.frequent_words", "alpha-str", TypeError, "alpha", lambda: aggregation.frequent_words(TOK, 512, 0, alpha="2"))
case("ruler.aggregation.frequent_words", "word_len-zero", ValueError, "word_len", lambda: aggregation.frequent_words(TOK, 512, 0, word_len=0))
case("ruler.aggregation.frequent_words", "word_len-one-beyond-pool", ValueError, "word_len",
     lambda: aggregation.frequent_words(TOK, 4096, 0, word_len=1))
case("ruler.aggregation.frequent_words", "word_len-absurd", ValueError, "word_len",
     lambda: aggregation.frequent_words(TOK, 512, 0, word_len=10**7))
case("ruler.qa.multidoc_qa", "facts_per_doc-zero", ValueError, "facts_per_doc",
     lambda: qa.multidoc_qa(TOK, 512, 0, facts_per_doc=0))
case("ruler.qa.multidoc_qa", "facts_per_doc-above-relations", ValueError, "facts_per_doc",
     lambda: qa.multidoc_qa(TOK, 512, 0, facts_per_doc=5))
case("ruler.haystack.check_length", "seq_len-str", TypeError, "seq_len", lambda: haystack.check_length("seq_len", "512"))
case("ruler.haystack.check_length", "max_len-above-cap", ValueError, "max_len",
     lambda: haystack.check_length("max_len", haystack.MAX_LENGTH + 1))
case("ruler.haystack.check_args", "tokenizer-str", TypeError, "tokenizer", lambda: haystack.check_args("gpt2", 512, None, 0))
case("ruler.haystack.check_args", "depth-negative", ValueError, "depth", lambda: haystack.check_args(TOK, 512, -0.1, 0))
case("ruler.haystack.check_args", "seed-float", TypeError, "seed", lambda: haystack.check_args(TOK, 512, None, 0.5))
case("ruler.haystack.token_cost", "tokenizer-counts-no-token", ValueError, "tokenizer.count",
     lambda: haystack.token_cost(SimpleNamespace(count=lambda text: 0), "a sentence"))
case("ruler.haystack.check_room", "seq_len-too-short", ValueError, "seq_len",
     lambda: haystack.check_room(TOK, "niah", 32, "needles", 100, "One of the special magic numbers"))
case("ruler.haystack.distinct", "pool-too-small", ValueError, "num_keys", lambda: haystack.distinct(lambda: "a", 2, "num_keys"))
case("ruler.haystack.build", "template-longer-than-seq_len", ValueError, "seq_len",
     lambda: haystack.build(TOK, "niah", ("The grass is green. {context}", ""), {}, 2, lambda budget: [], [],
                            lambda units: [], " ", [], {}))
case("ruler.tasks.make_sample", "task-unknown", ValueError, "task", lambda: rtasks.make_sample("niah_single_9", 512, 0))
case("ruler.tasks.make_sample", "task-int", ValueError, "task", lambda: rtasks.make_sample(1, 512, 0))
case("ruler.tasks.make_sample", "param-unknown", TypeError, "num_key\\b", lambda: rtasks.make_sample("niah_single_1", 512, 0, num_key=2))
case("ruler.tasks.make_sample", "tokenizer-without-count", TypeError, "tokenizer",
     lambda: rtasks.make_sample("niah_single_1", 512, 0, tokenizer="gpt2"))
case("ruler.tasks.make_sample", "seq_len-short", ValueError, "seq_len", lambda: rtasks.make_sample("qa", 31, 0))

# --- lclib.ruler.tokenizer, lclib.ruler.metrics ------------------------------------------------------

case("ruler.tokenizer.WordTokenizer", "words-with-space", ValueError, "words", lambda: tokenizer.WordTokenizer(["two words"]))
case("ruler.tokenizer.WordTokenizer", "words-str", TypeError, "words", lambda: tokenizer.WordTokenizer("hello"))
case("ruler.tokenizer.WordTokenizer", "words-int", TypeError, "words", lambda: tokenizer.WordTokenizer(7))
case("ruler.tokenizer.WordTokenizer", "words-int-item", TypeError, "words", lambda: tokenizer.WordTokenizer(["hello", 7]))
case("ruler.tokenizer.WordTokenizer", "encode-int", TypeError, "text", lambda: TOK.encode(7))
case("ruler.tokenizer.WordTokenizer", "count-int", TypeError, "text", lambda: TOK.count(7))
case("ruler.tokenizer.WordTokenizer", "tokens-none", TypeError, "text", lambda: TOK.tokens(None))
case("ruler.tokenizer.WordTokenizer", "decode-id-outside-vocabulary", ValueError, "ids", lambda: TOK.decode([len(TOK)]))
case("ruler.tokenizer.WordTokenizer", "decode-str", TypeError, "ids", lambda: TOK.decode("hello"))
case("ruler.tokenizer.WordTokenizer", "decode-float-id", TypeError, "ids", lambda: TOK.decode([5.7]))
case("ruler.tokenizer.words_of", "texts-str", TypeError, "texts", lambda: tokenizer.words_of("hello world"))
case("ruler.tokenizer.words_of", "texts-int-item", TypeError, "texts", lambda: tokenizer.words_of(["hello", 7]))
for fn in (metrics.string_match_all, metrics.string_match_part):
    target = f"ruler.metrics.{fn.__name__}"
    case(target, "references-empty", ValueError, "references", lambda fn=fn: fn("1234", []))
    case(target, "references-none", TypeError, "references", lambda fn=fn: fn("1234", None))
    case(target, "references-int-item", TypeError, "references", lambda fn=fn: fn("1234", [1234]))
    case(target, "prediction-int", TypeError, "prediction", lambda fn=fn: fn(1234, ["1234"]))
case("ruler.metrics.score", "lengths-mismatched", ValueError, "predictions", lambda: metrics.score("niah", ["a"], [["a"], ["b"]]))
case("ruler.metrics.score", "predictions-empty", ValueError, "predictions", lambda: metrics.score("niah", [], []))
case("ruler.metrics.score", "predictions-str", TypeError, "predictions", lambda: metrics.score("niah", "a", [["a"]]))
case("ruler.metrics.score", "task-int", TypeError, "task", lambda: metrics.score(7, ["a"], [["a"]]))
case("ruler.metrics.task_average", "table-empty", ValueError, "table", lambda: metrics.task_average({}))
case("ruler.metrics.task_average", "lengths-mismatched", ValueError, "table",
     lambda: metrics.task_average({"a": {64: 1.0}, "b": {128: 1.0}}))
case("ruler.metrics.task_average", "table-list", TypeError, "table", lambda: metrics.task_average([{64: 1.0}]))
case("ruler.metrics.effective_length", "scores-empty", ValueError, "scores", lambda: metrics.effective_length({}, 0.85))
case("ruler.metrics.effective_length", "scores-list", TypeError, "scores", lambda: metrics.effective_length([0.9, 0.8], 0.85))
case("ruler.metrics.effective_length", "threshold-nan", ValueError, "threshold",
     lambda: metrics.effective_length({64: 0.9}, NAN))
case("ruler.metrics.effective_length", "threshold-str", TypeError, "threshold",
     lambda: metrics.effective_length({64: 0.9}, "0.85"))

# --- lclib.ruler.evaluate, lclib.ruler.mixture -------------------------------------------------------

case("ruler.adapters.LabModel", "model-not-callable", TypeError, "model", lambda: adapters.LabModel("gpt"))
case("ruler.adapters.LabModel", "batch_size-zero", ValueError, "batch_size", lambda: adapters.LabModel(ruler_gpt(), batch_size=0))
case("ruler.adapters.LabModel", "rope_len-unknown", ValueError, "rope_len", lambda: adapters.LabModel(ruler_gpt(), rope_len="all"))
case("ruler.adapters.LabModel", "tokenizer-without-encode", TypeError, "tokenizer",
     lambda: adapters.LabModel(ruler_gpt(), tokenizer="gpt2"))
case("ruler.adapters.LabModel", "generate-max_new_tokens-zero", ValueError, "max_new_tokens",
     lambda: lab_model().generate(["Hello"], 0))
case("ruler.adapters.LabModel", "generate-prompts-str", TypeError, "prompts", lambda: lab_model().generate("Hello", 2))
case("ruler.adapters.LabModel", "teacher_forced-lengths-mismatched", ValueError, "prompts",
     lambda: lab_model().teacher_forced(["a", "b"], ["c"]))
case("ruler.adapters.HFModel", "model-without-generate", TypeError, "model", lambda: adapters.HFModel("gpt2", FAKE_HF_TOKENIZER))
case("ruler.adapters.HFModel", "tokenizer-not-callable", TypeError, "tokenizer", lambda: adapters.HFModel(FAKE_HF, TOK))
case("ruler.adapters.hf_config_with_scaling", "scaling-str", TypeError, "scaling",
     lambda: adapters.hf_config_with_scaling(type("Config", (), {})(), "yarn"))
case("ruler.adapters.hf_config_with_scaling", "config-dict", TypeError, "config",
     lambda: adapters.hf_config_with_scaling({"rope_theta": 10000.0}, None))
case("ruler.evaluate.make_samples", "samples-zero", ValueError, "samples", lambda: evaluate.make_samples(None, "qa", 512, 0, 0))
case("ruler.evaluate.make_samples", "count-not-callable", TypeError, "count",
     lambda: evaluate.make_samples(512, "qa", 512, 1, 0))
case("ruler.evaluate.make_samples", "task-unknown", ValueError, "task", lambda: evaluate.make_samples(None, "qa_9", 512, 1, 0))
case("ruler.evaluate.make_samples", "depths-above-one", ValueError, "depth",
     lambda: evaluate.make_samples(None, "qa", 512, 1, 0, depths=[1.5]))
case("ruler.evaluate.evaluate", "mode-unknown", ValueError, "mode", lambda: evaluate.evaluate(lab_model(), ["qa"], [64], mode="beam"))
case("ruler.evaluate.evaluate", "model-without-generate", TypeError, "model", lambda: evaluate.evaluate(object(), ["qa"], [64]))
case("ruler.evaluate.evaluate", "teacher-mode-needs-lab-model", TypeError, r"\bmode\b",
     lambda: evaluate.evaluate(adapters.HFModel(FAKE_HF, FAKE_HF_TOKENIZER), ["qa"], [64], mode="teacher_exact"))
case("ruler.evaluate.evaluate", "budget-unknown", ValueError, "budget",
     lambda: evaluate.evaluate(lab_model(), ["qa"], [256], budget="all"))
case("ruler.evaluate.evaluate", "budget-ruler-leaves-no-prompt", ValueError, "budget",
     lambda: evaluate.evaluate(adapters.HFModel(FAKE_HF, FAKE_HF_TOKENIZER), ["niah_single_1"], [128]))
case("ruler.evaluate.evaluate", "lengths-empty", ValueError, "lengths", lambda: evaluate.evaluate(lab_model(), ["qa"], []))
case("ruler.evaluate.evaluate", "lengths-short", ValueError, "lengths", lambda: evaluate.evaluate(lab_model(), ["qa"], [16]))
case("ruler.evaluate.evaluate", "samples-zero", ValueError, "samples",
     lambda: evaluate.evaluate(lab_model(), ["qa"], [64], samples=0))
case("ruler.evaluate.evaluate", "tasks-unknown", ValueError, "tasks",
     lambda: evaluate.evaluate(lab_model(), ["niah_single_1", "qa_9"], [256], samples=1, mode="teacher_exact"))
case("ruler.evaluate.evaluate", "tasks-str", TypeError, "tasks", lambda: evaluate.evaluate(lab_model(), "qa", [64]))
case("ruler.evaluate.evaluate", "tasks-empty", ValueError, "tasks", lambda: evaluate.evaluate(lab_model(), [], [64]))
case("ruler.evaluate.tokens_to_generate", "task-unknown", ValueError, "task", lambda: evaluate.tokens_to_generate("niah"))
MIX = "ruler.mixture.RulerMixture"
case(MIX, "min_len-float", TypeError, "min_len", lambda: mixture.RulerMixture(144.0, 160))
case(MIX, "min_len-short", ValueError, "min_len", lambda: mixture.RulerMixture(16, 160))
case(MIX, "max_len-below-min_len", ValueError, "max_len", lambda: mixture.RulerMixture(160, 144))
case(MIX, "tasks-unknown", ValueError, "tasks", lambda: mixture.RulerMixture(144, 160, {"niah_single_9": {}}))
case(MIX, "tasks-empty", ValueError, "tasks", lambda: mixture.RulerMixture(144, 160, {}))
case(MIX, "tasks-params-bad", ValueError, "num_keys", lambda: mixture.RulerMixture(144, 160, {"niah_single_1": {"num_keys": 0}}))
case(MIX, "tasks-params-unknown", TypeError, "num_key\\b",
     lambda: mixture.RulerMixture(144, 160, {"niah_single_1": {"num_key": 2}}))
case(MIX, "weights-zero", ValueError, "weights",
     lambda: mixture.RulerMixture(144, 160, {"niah_single_1": {}}, weights={"niah_single_1": 0}))
case(MIX, "follow_ups-negative", ValueError, "follow_ups", lambda: mixture.RulerMixture(144, 160, follow_ups=-1))
case(MIX, "loss_on-unknown", ValueError, "loss_on", lambda: mixture.RulerMixture(144, 160, loss_on="prompt"))
case(MIX, "answer_weight-nan", ValueError, "answer_weight", lambda: mixture.RulerMixture(144, 160, answer_weight=NAN))
case(MIX, "answer_weight-inf", ValueError, "answer_weight", lambda: mixture.RulerMixture(144, 160, answer_weight=INF))
case(MIX, "sample-batch-zero", ValueError, "batch", lambda: mixture.RulerMixture(144, 160).sample(0, gen()))
case("ruler.mixture.draw_seeds", "batch-zero", ValueError, "batch", lambda: mixture.draw_seeds(0, gen(), 32, 64))
case("ruler.mixture.draw_seeds", "generator-int", TypeError, "generator", lambda: mixture.draw_seeds(2, 0, 32, 64))
case("ruler.mixture.pack_rows", "rows-empty", ValueError, "rows", lambda: mixture.pack_rows([], 0))
case("ruler.mixture.pack_rows", "rows-flags-short", ValueError, "rows", lambda: mixture.pack_rows([([1, 2, 3], [False, True])], 0))
case("ruler.mixture.pack_rows", "loss_on-unknown", ValueError, "loss_on",
     lambda: mixture.pack_rows([([1, 2], [False, True])], 0, loss_on="prompt"))
DRILL = "ruler.drill.RecallDrill"
case(DRILL, "style-unknown", ValueError, "style", lambda: drill.RecallDrill(32, 128, "prose"))
case(DRILL, "min_len-float", TypeError, "min_len", lambda: drill.RecallDrill(32.0, 128, "compact"))
case(DRILL, "max_len-below-min_len", ValueError, "max_len", lambda: drill.RecallDrill(200, 128, "compact"))
case(DRILL, "num_keys-zero", ValueError, "num_keys", lambda: drill.RecallDrill(32, 128, "compact", num_keys=(0, 3)))
case(DRILL, "num_keys-int", ValueError, "num_keys", lambda: drill.RecallDrill(32, 128, "compact", num_keys=5))
case(DRILL, "key_pool-below-num_keys", ValueError, "key_pool", lambda: drill.RecallDrill(32, 128, "compact", key_pool=3))
case(DRILL, "fillers-zero", ValueError, "fillers", lambda: drill.RecallDrill(32, 128, "compact", fillers=0))
case(DRILL, "sample-batch-zero", ValueError, "batch", lambda: drill.RecallDrill(32, 128, "compact").sample(0, gen()))


# --- more cases, one file per area: tests/bad_input_<area>.py defines register(case) and EXEMPT ------

def _register_area_cases() -> None:
    for path in sorted(Path(__file__).parent.glob("bad_input_*.py")):
        spec = importlib.util.spec_from_file_location(f"bad_input_cases.{path.stem}", path)
        area = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(area)
        area.register(case)
        EXEMPT.update(getattr(area, "EXEMPT", {}))  # the area's public names with no bad call, and why


_register_area_cases()


# --- the tests ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in the main thread after seconds (SIGALRM; no guard where there is none)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s: a loop without bound?")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("bad", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_call_raises_clear_error(bad: Bad):
    with time_limit(TIME_LIMIT_S), pytest.raises(bad.exc, match=bad.match):
        bad.call()


def public_names(module_name: str) -> list[str]:
    """Functions (cached ones too) and classes defined in the module whose names do not start with "_".

    A package in MODULES also counts what its __init__ re-exports from its own modules, and such a name
    is tested once, under the package's path (``dilated.edge_counts``), not again under its module's.
    """
    module = importlib.import_module(module_name)
    package = module_name in MODULES and hasattr(module, "__path__")
    parent = module_name.rpartition(".")[0]
    exported = vars(importlib.import_module(parent)) if parent in MODULES else {}
    return [name for name, obj in vars(module).items() if not name.startswith("_")
            and (inspect.isfunction(inspect.unwrap(obj)) or inspect.isclass(obj))
            and (getattr(obj, "__module__", None) == module_name
                 or package and str(getattr(obj, "__module__", "")).startswith(module_name + "."))
            and exported.get(name) is not obj]


def short(module_name: str) -> str:
    return module_name.removeprefix("lclib.")


def test_every_public_name_has_cases_or_a_reason():
    covered = {c.target for c in CASES}
    names = {f"{short(m)}.{n}" for m in MODULES for n in public_names(m)}
    missing = sorted(names - covered - set(EXEMPT))
    assert not missing, f"public names with no bad call in CASES and no reason in EXEMPT: {missing}"
    assert not covered - names, f"CASES name functions that are not public names of MODULES: {sorted(covered - names)}"
    assert not set(EXEMPT) - names, f"EXEMPT names that are gone: {sorted(set(EXEMPT) - names)}"
    assert not covered & set(EXEMPT), f"both tested and exempt: {sorted(covered & set(EXEMPT))}"
    assert all(c.exc in (ValueError, TypeError) for c in CASES)
    assert len({c.id for c in CASES}) == len(CASES), "two cases share an id"


def test_every_module_is_listed_or_exempt():
    found = [m.name for m in pkgutil.walk_packages(lclib.__path__, "lclib.")]
    unlisted = [m for m in found if public_names(m) and m not in MODULES
                and not any(m == e or m.startswith(e + ".") for e in EXEMPT_MODULES)]
    assert not unlisted, f"modules of lclib with public functions, neither in MODULES nor in EXEMPT_MODULES: {unlisted}"


def test_reach_stops_once_every_path_is_found():
    """reach(mask, layers) is the same for every layers >= n - 1: a huge depth must not loop layer by layer."""
    mask = dilated.attention_mask(32, [4, 8, 32], [1, 2, 4], n_head=4).any(0)
    with time_limit(TIME_LIMIT_S):  # 10^9 matrix products would take hours
        deep = dilated.reach(mask, 10**9)
    assert torch.equal(deep, dilated.reach(mask, 31))


def test_kv_task_with_as_many_keys_as_pairs_still_samples():
    """The edge of the bound: distinct keys with exactly key_symbols pairs is possible, and works."""
    batch = kv_task.KVTask(n_pairs=8, key_symbols=8, distinct_keys=True).sample(4, gen())
    assert all(len(set(row.tolist())) == 8 for row in batch["keys"])

