"""Critical-token scores (cDPO): the spec's worked example, a slow per-position float64 reference, chunking, masking,
dtypes, extreme logits, the size of the largest intermediate tensor, input checks and the memory benchmark."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from trl_reasoning import token_weights
from trl_reasoning.token_weights import (
    critical_token_scores,
    critical_token_scores_from_hidden,
    critical_token_weights,
)


ROOT = Path(__file__).resolve().parents[2]

# docs/methods/cdpo.md, Worked example: vocabulary of 3, β = 1, rejected tokens [0, 2, 1].
EXAMPLE_POSITIVE = [[2.0, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.0]]
EXAMPLE_NEGATIVE = [[1.0, 1.0, 0.0], [0.0, 0.0, 3.0], [0.0, 2.0, 0.0]]
EXAMPLE_TOKENS = [0, 2, 1]
EXAMPLE_SCORES = [0.8437947345, 0.0900305732, 0.0158762400]
EXAMPLE_WEIGHTS = [0.1562052655, 0.9099694268, 0.9841237600]


def _example(dtype=torch.float64):
    positive = torch.tensor([EXAMPLE_POSITIVE], dtype=dtype)
    negative = torch.tensor([EXAMPLE_NEGATIVE], dtype=dtype)
    return positive, negative, torch.tensor([EXAMPLE_TOKENS])


def _reference_scores(positive, negative, token_ids, mask, beta):
    """One position at a time, in float64, with a plain softmax over the vocabulary."""
    positive, negative = positive.double(), negative.double()
    batch, length = token_ids.shape
    out = torch.zeros(batch, length, dtype=torch.float64)
    for b in range(batch):
        for t in range(length):
            if mask is not None and not mask[b, t]:
                continue
            probs = torch.softmax((1 + beta) * positive[b, t] - beta * negative[b, t], dim=0)
            out[b, t] = probs[int(token_ids[b, t])]
    return out


def _random_case(batch, length, vocab, seed, garbage=True):
    generator = torch.Generator().manual_seed(seed)
    positive = 3 * torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64)
    negative = positive + 2 * torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64)
    token_ids = torch.randint(0, vocab, (batch, length), generator=generator)
    mask = torch.rand(batch, length, generator=generator) < 0.7
    if garbage:  # padding ids that must never be used as indices
        alternate = torch.arange(length) % 2 == 0  # deterministic: both kinds of garbage appear
        token_ids = torch.where(mask, token_ids, torch.where(alternate, -100, vocab + 7))
    return positive, negative, token_ids, mask


class _LargestNewTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op allocates (views of their inputs excluded)."""

    def __init__(self):
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for tensor in tree_flatten(out)[0]:
                if isinstance(tensor, torch.Tensor):
                    self.max_numel = max(self.max_numel, tensor.numel())
        return out


# -- the worked example --------------------------------------------------------------------------------------------


def test_worked_example_scores_and_weights():
    positive, negative, tokens = _example()
    scores = critical_token_scores(positive, negative, tokens, beta=1.0)
    weights = critical_token_weights(positive, negative, tokens, beta=1.0)
    assert scores.dtype == weights.dtype == torch.float64
    torch.testing.assert_close(scores, torch.tensor([EXAMPLE_SCORES], dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(weights, torch.tensor([EXAMPLE_WEIGHTS], dtype=torch.float64), atol=1e-8, rtol=0)


def test_worked_example_float32_and_log_softmax_invariance():
    positive, negative, tokens = _example()
    from_log_probs = critical_token_scores(positive.log_softmax(-1), negative.log_softmax(-1), tokens)
    torch.testing.assert_close(from_log_probs, torch.tensor([EXAMPLE_SCORES], dtype=torch.float64), atol=1e-8, rtol=0)
    # Any per-position shift of either model's logits cancels.
    shifted = critical_token_scores(positive + torch.tensor([[[5.0], [-3.0], [100.0]]]), negative - 7.0, tokens)
    torch.testing.assert_close(shifted, torch.tensor([EXAMPLE_SCORES], dtype=torch.float64), atol=1e-8, rtol=0)
    positive32, negative32, _ = _example(torch.float32)
    scores32 = critical_token_scores(positive32, negative32, tokens)
    assert scores32.dtype == torch.float32
    torch.testing.assert_close(scores32, torch.tensor([EXAMPLE_SCORES]), atol=1e-6, rtol=0)


# -- against the slow reference ------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize(("batch", "length", "vocab", "seed"), [(1, 1, 2, 0), (2, 5, 7, 1), (3, 8, 11, 2)])
def test_matches_per_position_reference(beta, batch, length, vocab, seed):
    positive, negative, token_ids, mask = _random_case(batch, length, vocab, seed)
    expected = _reference_scores(positive, negative, token_ids, mask, beta)
    for chunk_size in (1, 3, length, length + 5, None):
        scores = critical_token_scores(positive, negative, token_ids, mask, beta=beta, chunk_size=chunk_size)
        weights = critical_token_weights(positive, negative, token_ids, mask, beta=beta, chunk_size=chunk_size)
        torch.testing.assert_close(scores, expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(weights, torch.where(mask, 1 - expected, 0.0), atol=1e-12, rtol=0)
        assert torch.all(scores[~mask] == 0) and torch.all(weights[~mask] == 0)
    # float32 inputs: float32 output, same numbers to float32 precision.
    scores32 = critical_token_scores(positive.float(), negative.float(), token_ids, mask, beta=beta, chunk_size=2)
    assert scores32.dtype == torch.float32
    torch.testing.assert_close(scores32.double(), expected, atol=2e-6, rtol=1e-5)


def test_beta_zero_is_the_positive_models_probability():
    positive, negative, token_ids, _ = _random_case(2, 6, 9, seed=3, garbage=False)
    expected = positive.softmax(-1).gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(critical_token_scores(positive, negative, token_ids, beta=0.0), expected)
    torch.testing.assert_close(critical_token_scores(positive, 1e3 * negative, token_ids, beta=0), expected)


def test_mask_forms_and_fully_masked_rows():
    positive, negative, token_ids, mask = _random_case(3, 7, 5, seed=4)
    mask[1] = False
    expected = _reference_scores(positive, negative, token_ids, mask, 1.0)
    for mask_form in (mask, mask.long(), mask.float()):
        scores = critical_token_scores(positive, negative, token_ids, mask_form, chunk_size=2)
        torch.testing.assert_close(scores, expected, atol=1e-12, rtol=0)
    assert torch.all(scores[1] == 0)
    # No mask scores every position (ids must then all be valid).
    clean_ids = token_ids.clamp(0, 4)
    everything = torch.ones_like(mask)
    torch.testing.assert_close(
        critical_token_scores(positive, negative, clean_ids),
        _reference_scores(positive, negative, clean_ids, everything, 1.0),
        atol=1e-12,
        rtol=0,
    )


def test_no_grad_and_dtypes():
    positive, negative, token_ids, mask = _random_case(2, 4, 6, seed=5)
    positive32 = positive.float().requires_grad_()
    scores = critical_token_scores(positive32, negative.float(), token_ids, mask)
    assert scores.dtype == torch.float32 and not scores.requires_grad
    assert critical_token_weights(positive32, negative, token_ids, mask).dtype == torch.float64  # mixed → float64
    assert critical_token_scores(positive.half(), negative.bfloat16(), token_ids, mask).dtype == torch.float32
    assert critical_token_scores(positive.float(), negative.float(), token_ids.int(), mask).dtype == torch.float32


# -- from hidden states --------------------------------------------------------------------------------------------


def _hidden_case(batch, length, hidden_size, vocab, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    positive = torch.randn(batch, length, hidden_size, generator=generator, dtype=dtype)
    negative = positive + 0.5 * torch.randn(batch, length, hidden_size, generator=generator, dtype=dtype)
    weight = torch.randn(vocab, hidden_size, generator=generator, dtype=dtype) / hidden_size**0.5
    bias = torch.randn(vocab, generator=generator, dtype=dtype)
    token_ids = torch.randint(0, vocab, (batch, length), generator=generator)
    mask = torch.rand(batch, length, generator=generator) < 0.8
    token_ids = torch.where(mask, token_ids, -100)
    return positive, negative, weight, bias, token_ids, mask


@pytest.mark.parametrize(("bias", "logit_scale", "beta"), [(False, 1.0, 1.0), (True, 1.0, 0.5), (True, 2.5, 2.0)])
def test_from_hidden_matches_logits_path(bias, logit_scale, beta):
    positive, negative, weight, lm_bias, token_ids, mask = _hidden_case(2, 9, 6, 13, seed=6)
    lm_bias = lm_bias if bias else None

    def logits(hidden):
        out = hidden @ weight.T
        return logit_scale * (out + lm_bias if lm_bias is not None else out)

    expected = _reference_scores(logits(positive), logits(negative), token_ids, mask, beta)
    for chunk_size in (1, 4, 9, 20, None):
        scores = critical_token_scores_from_hidden(
            positive,
            negative,
            weight,
            token_ids,
            mask,
            beta=beta,
            lm_head_bias=lm_bias,
            logit_scale=logit_scale,
            chunk_size=chunk_size,
        )
        assert scores.dtype == torch.float64
        torch.testing.assert_close(scores, expected, atol=1e-12, rtol=0)
    via_logits = critical_token_scores(logits(positive), logits(negative), token_ids, mask, beta=beta)
    torch.testing.assert_close(via_logits, expected, atol=1e-12, rtol=0)
    # float32 and bf16 hidden states / head: float32 output close to the float64 numbers.
    scores32 = critical_token_scores_from_hidden(
        positive.float(),
        negative.float(),
        weight.float(),
        token_ids,
        mask,
        beta=beta,
        lm_head_bias=None if lm_bias is None else lm_bias.float(),
        logit_scale=logit_scale,
        chunk_size=4,
    )
    assert scores32.dtype == torch.float32
    torch.testing.assert_close(scores32.double(), expected, atol=1e-5, rtol=1e-4)
    positive_bf, negative_bf, weight_bf = positive.bfloat16(), negative.bfloat16(), weight.bfloat16()
    scores_bf = critical_token_scores_from_hidden(
        positive_bf, negative_bf, weight_bf, token_ids, mask, beta=beta, logit_scale=logit_scale
    )
    assert scores_bf.dtype == torch.float32
    expected_bf = _reference_scores(
        logit_scale * positive_bf.double() @ weight_bf.double().T,
        logit_scale * negative_bf.double() @ weight_bf.double().T,
        token_ids,
        mask,
        beta,
    )
    torch.testing.assert_close(scores_bf.double(), expected_bf, atol=1e-5, rtol=1e-4)


# -- low precision and extreme inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_are_computed_in_float32(low):
    positive, negative, token_ids, mask = _random_case(2, 10, 50, seed=7)
    positive_low, negative_low = positive.to(low), negative.to(low)
    scores = critical_token_scores(positive_low, negative_low, token_ids, mask, chunk_size=3)
    weights = critical_token_weights(positive_low, negative_low, token_ids, mask, chunk_size=3)
    assert scores.dtype == weights.dtype == torch.float32
    # The same rounded inputs, upcast first: float32 agreement, not bf16-level agreement.
    as_float32 = critical_token_scores(positive_low.float(), negative_low.float(), token_ids, mask)
    torch.testing.assert_close(scores, as_float32, atol=1e-6, rtol=1e-5)
    expected = _reference_scores(positive_low, negative_low, token_ids, mask, 1.0)
    torch.testing.assert_close(scores.double(), expected, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(weights, torch.where(mask, 1 - scores, 0.0), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_extreme_logits_stay_finite(dtype):
    generator = torch.Generator().manual_seed(8)
    positive = (torch.randint(-1, 2, (2, 6, 40), generator=generator) * 1e4).to(dtype)
    negative = (torch.randint(-1, 2, (2, 6, 40), generator=generator) * 1e4).to(dtype)
    token_ids = torch.randint(0, 40, (2, 6), generator=generator)
    for beta in (0.0, 1.0, 3.0):
        scores = critical_token_scores(positive, negative, token_ids, beta=beta, chunk_size=4)
        weights = critical_token_weights(positive, negative, token_ids, beta=beta, chunk_size=4)
        for values in (scores, weights):
            assert torch.isfinite(values).all()
            assert ((values >= 0) & (values <= 1)).all()
        torch.testing.assert_close(scores.double(), _reference_scores(positive, negative, token_ids, None, beta))
    # A token far ahead of every other: score 1, weight 0; far behind: score 0, weight 1.
    positive = torch.zeros(1, 2, 5, dtype=dtype)
    positive[0, 0, 2] = 1e4
    positive[0, 1, 2] = -1e4
    tokens = torch.tensor([[2, 2]])
    assert critical_token_scores(positive, positive, tokens).tolist() == [[1.0, 0.0]]
    assert critical_token_weights(positive, positive, tokens).tolist() == [[0.0, 1.0]]


def test_weights_keep_precision_near_score_one():
    # s = 1/(1 + 4·e^−30), so 1 − s = 4·e^−30/(1 + 4·e^−30) ≈ 3.7e-13: 0 if computed as 1 − s (even in float64).
    positive = torch.tensor([[[0.0, -30.0, -30.0, -30.0, -30.0]]])
    tokens = torch.tensor([[0]])
    for beta in (0.0, 1.0):
        weight = critical_token_weights(positive, torch.zeros_like(positive), tokens, beta=beta)
        rest = 4 * math.exp(-30 * (1 + beta))
        assert weight.item() == pytest.approx(rest / (1 + rest), rel=1e-5)


# -- memory: one (B, chunk, V) slice at a time ---------------------------------------------------------------------


def _largest_new_tensor(function, *args, **kwargs):
    with _LargestNewTensor() as recorder:
        function(*args, **kwargs)
    return recorder.max_numel


def test_largest_intermediate_is_one_chunk():
    batch, length, vocab, hidden_size = 2, 24, 300, 8
    positive, negative, token_ids, mask = _random_case(batch, length, vocab, seed=9)
    positive, negative = positive.float(), negative.float()
    slack = 64  # (B, T) bookkeeping tensors

    def naive(positive, negative, token_ids):
        probs = torch.softmax(2 * positive - negative, dim=-1)
        return probs.gather(-1, token_ids.clamp(0, vocab - 1).unsqueeze(-1))

    # The recorder sees a full-size intermediate when there is one...
    assert _largest_new_tensor(naive, positive, negative, token_ids) >= batch * length * vocab
    # ...and none here: the largest is one chunk.
    for chunk_size in (1, 3, 5):
        for function in (critical_token_scores, critical_token_weights):
            for inputs in ((positive, negative), (positive.bfloat16(), negative.bfloat16())):
                largest = _largest_new_tensor(function, *inputs, token_ids, mask, chunk_size=chunk_size)
                assert largest <= batch * chunk_size * vocab + slack, (chunk_size, largest)
        hidden_p, hidden_n, weight, bias, _, _ = _hidden_case(batch, length, hidden_size, vocab, 10, torch.float32)
        largest = _largest_new_tensor(
            critical_token_scores_from_hidden,
            hidden_p,
            hidden_n,
            weight,
            token_ids,
            mask,
            lm_head_bias=bias,
            logit_scale=2.0,
            chunk_size=chunk_size,
        )
        assert largest <= batch * chunk_size * vocab + slack, (chunk_size, largest)
    assert batch * 5 * vocab + slack < batch * length * vocab


def _peak_live_bytes(function, *args, **kwargs):
    """Peak of the bytes held by the CPU allocator during the call, from the profiler's allocation/free events."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profiler:
        function(*args, **kwargs)
    events = sorted(
        (event for event in profiler.profiler.kineto_results.events() if event.name() == "[memory]"),
        key=lambda event: event.start_ns(),
    )
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def test_one_chunk_alive_at_a_time(monkeypatch):
    # bf16 logits are upcast block by block; with one row per block the extra is one float32 row of V.
    monkeypatch.setattr(token_weights, "_UPCAST_BLOCK_ELEMENTS", 1)
    batch, length, vocab, hidden_size = 2, 24, 3000, 16
    positive, negative, token_ids, mask = _random_case(batch, length, vocab, seed=15)
    positive, negative = positive.float(), negative.float()
    slack = 64 * batch * length  # (B, T) bookkeeping tensors
    full = batch * length * vocab * 4
    assert _peak_live_bytes(lambda: torch.softmax(2 * positive - negative, dim=-1)) >= 2 * full  # the probe works
    hidden_p, hidden_n, weight, bias, _, _ = _hidden_case(batch, length, hidden_size, vocab, 16, torch.float32)
    for chunk_size in (1, 4, 8):
        one_slice = batch * chunk_size * vocab * 4
        peak = _peak_live_bytes(critical_token_weights, positive, negative, token_ids, mask, chunk_size=chunk_size)
        assert peak <= one_slice + slack, (chunk_size, peak, one_slice)
        low = positive.bfloat16(), negative.bfloat16()
        peak = _peak_live_bytes(critical_token_weights, *low, token_ids, mask, chunk_size=chunk_size)
        assert peak <= one_slice + 4 * vocab + slack, (chunk_size, peak, one_slice)
        peak = _peak_live_bytes(
            critical_token_scores_from_hidden,
            hidden_p,
            hidden_n,
            weight,
            token_ids,
            mask,
            lm_head_bias=bias,
            chunk_size=chunk_size,
        )
        assert peak <= one_slice + slack, (chunk_size, peak, one_slice)


def test_automatic_chunk_size(monkeypatch):
    batch, length, vocab = 2, 20, 100
    positive, negative, token_ids, mask = _random_case(batch, length, vocab, seed=11)
    positive, negative = positive.float(), negative.float()
    expected = critical_token_scores(positive, negative, token_ids, mask, chunk_size=length)
    # Default budget: 64 MiB of float32 per slice, so this small input is one chunk.
    assert token_weights._AUTO_CHUNK_BYTES == 64 * 2**20
    assert _largest_new_tensor(critical_token_scores, positive, negative, token_ids, mask) == batch * length * vocab
    # A budget of 3 positions' worth of float32 → chunks of 3; below one position → chunks of 1.
    for budget, chunk in ((3 * 4 * batch * vocab + 5, 3), (100, 1)):
        monkeypatch.setattr(token_weights, "_AUTO_CHUNK_BYTES", budget)
        largest = _largest_new_tensor(critical_token_scores, positive, negative, token_ids, mask)
        assert largest == batch * chunk * vocab
        torch.testing.assert_close(critical_token_scores(positive, negative, token_ids, mask), expected)


# -- input checks --------------------------------------------------------------------------------------------------


def _bad_calls():
    positive, negative, token_ids, mask = _random_case(2, 4, 6, seed=12, garbage=False)
    hidden_p, hidden_n, weight, bias, _, _ = _hidden_case(2, 4, 3, 6, 13)
    ok = dict(positive_logits=positive, negative_logits=negative, token_ids=token_ids, mask=mask)
    hidden_ok = dict(positive_hidden=hidden_p, negative_hidden=hidden_n, lm_head_weight=weight, token_ids=token_ids)
    bad_ids = token_ids.clone()
    bad_ids[0, 1] = 6
    negative_ids = token_ids.clone()
    negative_ids[1, 2] = -1
    return [
        ("positive_logits", critical_token_scores, {**ok, "positive_logits": positive[0]}),
        ("negative_logits", critical_token_scores, {**ok, "negative_logits": negative[:, :3]}),
        ("negative_logits", critical_token_weights, {**ok, "negative_logits": negative[..., :5]}),
        ("token_ids", critical_token_scores, {**ok, "token_ids": token_ids[:, :3]}),
        ("mask", critical_token_scores, {**ok, "mask": mask[:1]}),
        ("beta", critical_token_scores, {**ok, "beta": -0.5}),
        ("beta", critical_token_weights, {**ok, "beta": float("nan")}),
        ("token_ids", critical_token_scores, {**ok, "token_ids": token_ids.float()}),
        ("token_ids", critical_token_scores, {**ok, "token_ids": bad_ids, "mask": None}),
        ("token_ids", critical_token_weights, {**ok, "token_ids": negative_ids, "mask": None}),
        ("chunk_size", critical_token_scores, {**ok, "chunk_size": 0}),
        ("chunk_size", critical_token_weights, {**ok, "chunk_size": 1.5}),
        ("positive_hidden", critical_token_scores_from_hidden, {**hidden_ok, "positive_hidden": hidden_p[0]}),
        ("negative_hidden", critical_token_scores_from_hidden, {**hidden_ok, "negative_hidden": hidden_n[:, :2]}),
        ("lm_head_weight", critical_token_scores_from_hidden, {**hidden_ok, "lm_head_weight": weight.T}),
        ("lm_head_weight", critical_token_scores_from_hidden, {**hidden_ok, "lm_head_weight": weight[0]}),
        ("lm_head_bias", critical_token_scores_from_hidden, {**hidden_ok, "lm_head_bias": bias[:3]}),
        ("token_ids", critical_token_scores_from_hidden, {**hidden_ok, "token_ids": bad_ids}),
        ("beta", critical_token_scores_from_hidden, {**hidden_ok, "beta": -1.0}),
        ("chunk_size", critical_token_scores_from_hidden, {**hidden_ok, "chunk_size": -2}),
        ("mask", critical_token_scores_from_hidden, {**hidden_ok, "mask": mask.T}),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())))
def test_bad_input_raises_value_error_naming_the_argument(case):
    name, function, kwargs = _bad_calls()[case]
    with pytest.raises(ValueError, match=f"`{name}`"):
        function(**kwargs)


def test_garbage_ids_at_masked_positions_are_fine():
    positive, negative, token_ids, mask = _random_case(2, 6, 8, seed=14)
    assert (token_ids[~mask] < 0).any() and (token_ids[~mask] >= 8).any()
    scores = critical_token_scores(positive, negative, token_ids, mask, chunk_size=4)
    assert torch.all(scores[~mask] == 0) and torch.all(scores[mask] > 0)


# -- benchmark -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_memory_benchmark_quick():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "critical_token_memory.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert len(table) >= 2 + 1 + 1 + 2, result.stdout  # header, separator, naive, logits, ≥ 2 chunk sizes
    assert any("naive" in line for line in table) and any("from_hidden" in line for line in table)
    assert "agree" in result.stdout.lower()
