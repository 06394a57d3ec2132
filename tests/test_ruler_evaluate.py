"""The RULER-lite probing interface: lab adapter on a tiny GPT, transformers adapter on a tiny Llama."""

import pytest
import torch

from lclib import scaling
from lclib.ruler import adapters as A, evaluate as P
from lclib.ruler.tasks import MAX_LENGTH
from lclib.model import GPT, GPTConfig
from lclib.ruler.mixture import LAB_TASKS
from lclib.ruler.words import default_tokenizer

TOK = default_tokenizer()


class Oracle(torch.nn.Module):
    """A 'model' whose logits put all mass on a fixed continuation: it checks the adapters' plumbing."""

    def __init__(self, answer: str):
        super().__init__()
        self.answer = TOK.encode(answer) + [TOK.eos_id]
        self.prompt_len = None
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids):
        B, T = ids.shape
        logits = torch.zeros(B, T, len(TOK))
        for t in range(T):
            k = t + 1 - self.prompt_len  # index of the completion token predicted at t
            logits[:, t, self.answer[min(max(k, 0), len(self.answer) - 1)]] = 1.0
        return logits


def test_lab_adapter_generate_and_teacher_forced_agree():
    s = P.make_samples(None, "niah_single_1", 128, 1, seed=0)[0]
    model = Oracle(s.completion)
    model.prompt_len = 1 + TOK.count(s.prompt)
    lab = A.LabModel(model)
    assert isinstance(lab, A.TextModel)
    assert lab.generate([s.prompt], 20) == [s.completion.strip()]
    tf = lab.teacher_forced([s.prompt], [s.completion])
    assert tf.text == [s.completion.strip()] and tf.logp[0] < 0 and tf.exact == [True] and tf.first == [True]


def test_evaluate_tiny_gpt_shapes_and_range():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=16)).eval()
    lab = A.LabModel(gpt, batch_size=4)
    for mode in ("teacher_exact", "generate"):
        out = P.evaluate(lab, {"niah_single_1": {"value_len": 3}, "fwe": {}}, [96, 128], samples=2, seed=1, mode=mode)
        assert set(out["scores"]) == {"niah_single_1", "fwe"} and set(out["average"]) == {96, 128}
        assert all(0.0 <= v <= 1.0 for row in out["scores"].values() for v in row.values())
        assert len(out["records"]) == 2 * 2 * 2


def test_set_rope_scaling_changes_lab_outputs():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=16)).eval()
    ids = torch.tensor([TOK.encode(P.make_samples(None, "niah_single_1", 128, 1, 0)[0].prompt)])
    plain = gpt(ids)
    gpt.set_rope_scaling(scaling.RopeScaling("linear", 4.0))
    assert not torch.allclose(plain, gpt(ids))
    gpt.set_rope_scaling(None)
    torch.testing.assert_close(plain, gpt(ids))


def _tiny_llama(scale=None):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=len(TOK), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512)
    if scale is not None:
        A.hf_config_with_scaling(cfg, scale)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


def test_hf_rope_scaling_reaches_the_model():
    head_dim = 16
    plain = _tiny_llama()
    yarn = _tiny_llama(scaling.RopeScaling("yarn", 4.0, original_max_len=128))
    linear = _tiny_llama(scaling.RopeScaling("linear", 4.0))
    want_yarn, factor = scaling.yarn(head_dim, 10000.0, 4.0, 128)
    torch.testing.assert_close(yarn.model.rotary_emb.inv_freq.double(), want_yarn, rtol=1e-6, atol=1e-9)
    assert abs(yarn.model.rotary_emb.attention_scaling - factor) < 1e-9
    torch.testing.assert_close(linear.model.rotary_emb.inv_freq.double(), scaling.linear(head_dim, 10000.0, 4.0)[0],
                               rtol=1e-6, atol=1e-9)
    ids = torch.tensor([TOK.encode("The grass is green. The sky is blue. Here we go.")])
    assert not torch.allclose(plain(ids).logits, linear(ids).logits)  # same weights, other rotation


class _WordTok:
    """A transformers-like tokenizer around the RULER-lite one (no download in tests)."""

    pad_token_id, eos_token_id = TOK.pad_id, TOK.eos_id

    def __call__(self, text, add_special_tokens=True, return_tensors=None):
        ids = TOK.encode(text)
        if return_tensors == "pt":
            return _Enc({"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)})
        return {"input_ids": ids}

    def decode(self, ids, skip_special_tokens=True):
        return TOK.decode(ids.tolist())


class _Enc(dict):
    def to(self, device):
        return _Enc({k: v.to(device) for k, v in self.items()})


def test_hf_adapter_runs_the_sweep():
    model = _tiny_llama(scaling.RopeScaling("yarn", 2.0, original_max_len=128))
    hf = A.HFModel(model, _WordTok())
    assert hf.count("The grass is green.") == 5
    out = P.evaluate(hf, {"niah_single_1": {"value_len": 3}}, [96], samples=2, seed=0, budget="lab")
    assert 0.0 <= out["average"][96] <= 1.0


class _Recorder:
    """A TextModel that records what it is asked: prompt lengths and the tokens it may write."""

    def __init__(self):
        self.asked = []

    def count(self, text):
        return TOK.count(text)

    def generate(self, prompts, max_new_tokens):
        self.asked.append(([TOK.count(p) for p in prompts], max_new_tokens))
        return [""] * len(prompts)


@pytest.mark.parametrize("task, reserve", [("niah_multikey_1", 128), ("vt", 30), ("fwe", 50)])
def test_ruler_budget_builds_the_prompt_to_length_minus_tokens_to_generate(task, reserve):
    """RULER's accounting: prompt + tokens_to_generate <= length; the model may write exactly that many tokens."""
    rec = _Recorder()
    P.evaluate(rec, [task], [512], samples=2, seed=0)  # a model other than a LabModel: RULER's budget by default
    (lengths, new_tokens), = rec.asked
    assert new_tokens == reserve == P.tokens_to_generate(task)
    assert all(abs(n - (512 - reserve)) <= 5 for n in lengths)  # the generators hit a length within a few tokens
    lab = P.evaluate(rec, [task], [512], samples=2, seed=0, budget="lab")  # the lab's: the prompt has the length
    longest = max(TOK.count(x.completion) for x in P.make_samples(TOK.count, task, 512, 2, 0))
    assert all(abs(n - 512) <= 5 for n in rec.asked[-1][0]) and rec.asked[-1][1] == longest + 2
    assert lab["records"][0]["length"] == 512


def test_tokens_to_generate_follows_ruler():
    assert {t: P.tokens_to_generate(t) for t in ("niah_single_1", "niah_multiquery", "vt", "cwe", "fwe", "qa")} == \
        {"niah_single_1": 128, "niah_multiquery": 128, "vt": 30, "cwe": 120, "fwe": 50, "qa": 32}


def test_rope_len_prompt_fixes_dynamic_ntk_at_the_prompt_length():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=16)).eval()
    with torch.no_grad():
        for block in gpt.blocks:
            block.attn.qkv.weight.normal_(0.0, 1.0)  # loud attention: positions move the logits
    s = P.make_samples(None, "niah_single_1", 128, 2, 0, value_len=3)
    prompts, comps = [x.prompt for x in s], [x.completion for x in s]

    def logp(rope_len):
        return A.LabModel(gpt, rope_len=rope_len).teacher_forced(prompts, comps).logp

    gpt.set_rope_scaling(scaling.RopeScaling("dynamic_ntk", 4.0, original_max_len=64))
    assert logp("prompt") != logp("sequence")  # l = prompt alone, or prompt plus answer tokens
    prompt_len = 1 + TOK.count(prompts[0])  # BOS + prompt: the length the frequencies are fixed at
    alpha = 4.0 * prompt_len / 64 - 3.0
    fixed = logp("prompt")
    gpt.set_rope_scaling(scaling.RopeScaling("ntk", alpha))
    assert logp("sequence") == pytest.approx(fixed, abs=1e-4)
    gpt.set_rope_scaling(scaling.RopeScaling("yarn", 4.0, original_max_len=64))
    assert logp("prompt") == logp("sequence")  # a static method does not care
    with pytest.raises(ValueError, match="rope_len"):
        A.LabModel(gpt, rope_len="answer")


def test_evaluate_refuses_bad_arguments():
    gpt = GPT(GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=16)).eval()
    lab = A.LabModel(gpt)
    with pytest.raises(ValueError, match="mode"):
        P.evaluate(lab, ["niah_single_1"], [128], mode="beam")
    with pytest.raises(ValueError, match="lengths"):
        P.evaluate(lab, ["niah_single_1"], [128, 0])
    with pytest.raises(ValueError, match="samples"):
        P.evaluate(lab, ["niah_single_1"], [128], samples=0)
    with pytest.raises(TypeError, match="model"):
        P.evaluate(object(), ["niah_single_1"], [128])


def test_token_nll_is_the_cross_entropy_of_every_next_token():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=16)).eval()
    texts = ["The grass is green. The sky is blue.", "Here we go.", "The sun is yellow. There and back again."]
    got = A.LabModel(model, batch_size=2).token_nll(texts)
    for text, nll in zip(texts, got):
        ids = torch.tensor([[TOK.bos_id] + TOK.encode(text) + [TOK.eos_id]])  # (1, T + 2)
        with torch.no_grad():
            want = torch.nn.functional.cross_entropy(model(ids[:, :-1])[0], ids[0, 1:], reduction="none")
        assert nll.shape == (TOK.count(text) + 1,)
        torch.testing.assert_close(nll, want)
    uniform = A.LabModel(lambda ids: torch.zeros(*ids.shape, len(TOK)), device="cpu").token_nll(texts[:1])[0]
    torch.testing.assert_close(uniform.mean(), torch.tensor(float(torch.log(torch.tensor(float(len(TOK)))))))


def test_teacher_match_credits_each_value_in_place_where_exact_match_wants_every_token():
    params = {"num_keys": 1, "num_values": 4, "value_len": 4, "value_kind": "numbers", "key_kind": "vocab_words"}
    s = P.make_samples(None, "niah_multivalue", 200, 1, seed=0, **params)[0]
    values = s.answers
    wrong_last = s.completion.replace(values[-1], "".join("9" if c != "9" else "8" for c in values[-1]))
    no_stop = s.completion.rstrip().rstrip(".") + ","  # every value right, then "," where "." ends the answer
    for answer, exact, match in ((s.completion, 1.0, 1.0), (wrong_last, 0.0, 0.75), (no_stop, 0.0, 1.0)):
        model = Oracle(answer)
        model.prompt_len = 1 + TOK.count(s.prompt)
        scores = {mode: P.evaluate(A.LabModel(model), {"niah_multivalue": params}, [200], samples=1, seed=0,
                                   mode=mode)["scores"]["niah_multivalue"][200] for mode in ("teacher_exact", "teacher_match")}
        assert scores == {"teacher_exact": exact, "teacher_match": match}, answer


# --- issue 29: one result per prompt, lists of str, and the length cap ---------------------------------------

class _Short:
    """A TextModel that returns one output whatever the number of prompts (the fault evaluate must not score)."""

    def count(self, text):
        return TOK.count(text)

    def generate(self, prompts, max_new_tokens):
        return [" 1234."]


class _Text(_Short):
    def generate(self, prompts, max_new_tokens):
        return " 1234."  # one str: its characters would pass for outputs


def test_evaluate_refuses_a_model_that_returns_other_than_one_output_per_prompt():
    # before: one output for four prompts gave a score over that one sample
    with pytest.raises(ValueError, match=r"_Short\.generate returned 1 results for 4 prompts"):
        P.evaluate(_Short(), ["niah_single_1"], [256], samples=4, budget="lab")
    with pytest.raises(TypeError, match=r"_Text\.generate must return a list"):
        P.evaluate(_Text(), ["niah_single_1"], [256], samples=4, budget="lab")

    class ShortTeacher(A.LabModel):
        def teacher_forced(self, prompts, completions):
            out = super().teacher_forced(prompts, completions)
            return A.TeacherForced(*(field[:1] for field in out))

    model = ShortTeacher(GPT(GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=8)))
    with pytest.raises(ValueError, match=r"ShortTeacher\.teacher_forced returned 1 results for 3 prompts"):
        P.evaluate(model, {"niah_single_1": LAB_TASKS["niah_single_1"]}, [128], samples=3, mode="teacher_exact")


def test_lab_model_refuses_a_str_where_a_list_of_str_belongs():
    lab = A.LabModel(GPT(GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=8)))
    # before: teacher_forced("ab", "cd") read two one-letter prompts, token_nll("abc") three one-letter texts
    with pytest.raises(TypeError, match="prompts"):
        lab.teacher_forced("ab", "cd")
    with pytest.raises(TypeError, match="completions"):
        lab.teacher_forced(["a", "b"], "cd")
    with pytest.raises(TypeError, match="texts"):
        lab.token_nll("abc")
    with pytest.raises(TypeError, match="prompts"):
        lab.generate(["fine", 3], 2)
    assert len(lab.token_nll(["abc"])) == 1 and len(lab.teacher_forced(["a b"], [" c."]).exact) == 1


def test_every_entry_point_refuses_lengths_past_its_cap_at_once():
    lab = A.LabModel(GPT(GPTConfig(vocab_size=len(TOK), n_layer=1, n_head=2, d_model=8)))
    with pytest.raises(ValueError, match="lengths"):
        P.evaluate(lab, ["niah_single_1"], [A.LAB_MAX_LENGTH + 1], samples=1)
    with pytest.raises(ValueError, match="lengths"):
        P.evaluate(_Short(), ["niah_single_1"], [MAX_LENGTH + 1], samples=1)
    with pytest.raises(ValueError, match="samples"):
        P.evaluate(lab, ["niah_single_1"], [64], samples=P.MAX_SAMPLES + 1)
    with pytest.raises(ValueError, match="max_new_tokens"):
        lab.generate(["a"], 10**9)  # before: a loop of a billion forward passes on a model that never says EOS
    with pytest.raises(ValueError, match="LAB_MAX_LENGTH"):
        lab.token_nll(["word " * (A.LAB_MAX_LENGTH + 1)])
    with pytest.raises(ValueError, match="depths"):
        P.evaluate(lab, ["niah_single_1"], [64], samples=1, depths="0.5")


def test_lab_model_names_a_model_whose_logits_have_the_wrong_shape():
    lab = A.LabModel(lambda ids: torch.zeros(ids.shape[0], len(TOK)))  # (B, vocab): the last position only
    with pytest.raises(ValueError, match=r"logits \(B, seq_len, vocab\)"):
        lab.teacher_forced(["a b"], [" c."])
