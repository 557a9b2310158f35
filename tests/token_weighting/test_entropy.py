"""Entropy-based token weighting. EMPG (arXiv 2509.09265, ``token_weighting="empg"``) as an advantage
transformation: its worked example, edge cases, a float64 loop reference, 1 vs 2 processes, step segmentation
(delimiters, merged tokens, turns) and the trainer wiring. EMPG's entropy scale alone
(``token_weighting="entropy_token_scale"``) against independent numbers. Config checks."""

import math
import threading

import pytest
import torch
from support import FakeGather, make_trainer

from trl_reasoning import ReasoningGRPOConfig
from trl_reasoning.embedded import build_tokenizer
from trl_reasoning.empg import empg_advantages, step_ids_from_delimiter, step_ids_from_turns, token_pieces
from trl_reasoning.token_weights import entropy_modulation


# docs/methods/token-weighting.md, Worked example: k = k' = 1, ζ = 0.05; trajectory A (A = +1) has step entropies [0.2, 1.0, 0.5],
# trajectory B (A = −1) [1.5, 0.1]. Each step here spans several tokens, with padding after B.
STEP_ENTROPIES = ([0.2, 1.0, 0.5], [1.5, 0.1])
SCALE = ([1.301746, 0.735120, 1.050662], [0.514343, 1.398129])
CLARITY = ([0.931063, 0.525788, 0.751477], [0.367879, 1.0])
FINAL = ([1.070252, 0.514910, 0.792879], [-0.722127, -1.655913])
MEAN_MODULATED = 0.257784
WORKED_ENTROPIES = [[0.2, 0.2, 1.0, 1.0, 1.0, 0.5], [1.5, 1.5, 0.1, 0.1, math.nan, math.nan]]
WORKED_STEPS = [[0, 0, 1, 1, 1, 2], [0, 0, 1, 1, -1, -1]]


def worked(advantages=(1.0, -1.0), **kwargs):
    return empg_advantages(
        torch.tensor(WORKED_ENTROPIES, dtype=torch.float64),
        torch.tensor(WORKED_STEPS),
        torch.tensor(advantages, dtype=torch.float64),
        **kwargs,
    )


def test_empg_matches_the_worked_example():
    out = worked(zeta=0.05)
    steps = out.steps
    torch.testing.assert_close(
        out.step_advantages[steps], torch.tensor(sum(FINAL, []), dtype=torch.float64), atol=1e-6, rtol=0
    )
    # Every token of a step carries its step's advantage; padding gets 0.
    expected_tokens = [[1.070252] * 2 + [0.514910] * 3 + [0.792879], [-0.722127] * 2 + [-1.655913] * 2 + [0.0] * 2]
    torch.testing.assert_close(out.advantages, torch.tensor(expected_tokens, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        out.step_entropies[steps], torch.tensor(STEP_ENTROPIES[0] + STEP_ENTROPIES[1], dtype=torch.float64)
    )
    assert out.stats["shift"].item() == pytest.approx(MEAN_MODULATED, abs=1e-6)
    assert out.stats["scale_min"].item() == pytest.approx(0.514343, abs=1e-6)
    assert out.stats["scale_max"].item() == pytest.approx(1.398129, abs=1e-6)
    assert out.stats["steps"].item() == 5 and out.stats["completions"].item() == 2
    assert out.step_advantages[steps].sum().item() == pytest.approx(0.0, abs=1e-12)  # zero mean over steps


def test_empg_components_of_the_worked_example():
    # ζ = 0 and A = 1 everywhere: A_final = g − mean(g) = g − 1, so g is read off directly.
    out = worked(advantages=(1.0, 1.0), zeta=0.0)
    torch.testing.assert_close(
        out.step_advantages[out.steps] + 1, torch.tensor(sum(SCALE, []), dtype=torch.float64), atol=1e-6, rtol=0
    )
    # A = 0 and ζ = 1: A_mod is the bonus f(H_{t+1}) of the next step (none on a last step).
    bonus = [CLARITY[0][1], CLARITY[0][2], 0.0, CLARITY[1][1], 0.0]
    out = worked(advantages=(0.0, 0.0), zeta=1.0)
    expected = torch.tensor(bonus, dtype=torch.float64) - sum(bonus) / 5
    torch.testing.assert_close(out.step_advantages[out.steps], expected, atol=1e-6, rtol=0)
    assert out.stats["bonus_mean"].item() == pytest.approx(sum(bonus) / 3, abs=1e-6)


def test_empg_edge_cases():
    # Every step equally uncertain: H~ = 0, g = f = 1, A_mod = A + ζ on steps with a next step.
    entropies = torch.full((2, 3), 0.5, dtype=torch.float64)  # step means exactly 0.5: max − min = 0
    out = empg_advantages(
        entropies, torch.tensor([[0, 0, 1], [0, 0, 0]]), torch.tensor([1.0, -1.0]).double(), zeta=0.1
    )
    modulated = [1.1, 1.0, -1.0]
    expected = torch.tensor(modulated, dtype=torch.float64) - sum(modulated) / 3
    torch.testing.assert_close(out.step_advantages[out.steps], expected, atol=1e-12, rtol=0)
    # One step per completion: no bonus; g alone, re-centred. H = [0.2, 1.0] → H~ = [0, 1 / (1 + 1.25e-8)].
    ones = torch.zeros(2, 2, dtype=torch.long)
    out = empg_advantages(torch.tensor([[0.2, 0.2], [1.0, 1.0]]).double(), ones, torch.tensor([1.0, 1.0]).double())
    raw = torch.tensor([1.0, math.exp(-0.8 / (0.8 + 1e-8))], dtype=torch.float64)
    torch.testing.assert_close(out.step_advantages[out.steps], raw / raw.mean() - 1, atol=1e-12, rtol=0)
    assert out.stats["bonus_mean"].item() == 0.0
    # A single step in the whole batch: H~ = 0, g = 1, no bonus, and the re-centring removes everything.
    single = empg_advantages(torch.ones(1, 3), torch.zeros(1, 3, dtype=torch.long), torch.tensor([2.0]))
    assert torch.equal(single.advantages, torch.zeros(1, 3))
    # No step anywhere: all zeros.
    empty = empg_advantages(torch.rand(2, 3), torch.full((2, 3), -1), torch.tensor([1.0, -1.0]))
    assert torch.equal(empty.advantages, torch.zeros(2, 3)) and empty.stats["steps"].item() == 0
    # Gaps in the step numbering and masked tokens change nothing.
    gapped = empg_advantages(
        torch.tensor(WORKED_ENTROPIES, dtype=torch.float64),
        torch.tensor([[0, 0, 3, 3, 3, 7], [2, 2, 5, 5, 9, 9]]),
        torch.tensor([1.0, -1.0], dtype=torch.float64),
        mask=torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
        zeta=0.05,
    )
    torch.testing.assert_close(gapped.advantages, worked(zeta=0.05).advantages, atol=1e-15, rtol=0)
    # Garbage entropies on padding are never read.
    padded = torch.tensor(WORKED_ENTROPIES, dtype=torch.float64)
    padded[1, 4:] = torch.tensor([1e9, -math.inf])
    again = empg_advantages(padded, torch.tensor(WORKED_STEPS), torch.tensor([1.0, -1.0]).double(), zeta=0.05)
    torch.testing.assert_close(again.advantages, worked(zeta=0.05).advantages, atol=0, rtol=0)


def test_empg_rejects_bad_input():
    entropies, steps, advantages = torch.rand(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2)
    with pytest.raises(ValueError, match="`k` must be a finite number > 0"):
        empg_advantages(entropies, steps, advantages, k=0)
    with pytest.raises(ValueError, match="`zeta` must be a finite number >= 0"):
        empg_advantages(entropies, steps, advantages, zeta=-0.1)
    with pytest.raises(ValueError, match="`future_k`"):
        empg_advantages(entropies, steps, advantages, future_k=math.inf)
    with pytest.raises(ValueError, match="`step_ids` must have the shape"):
        empg_advantages(entropies, steps[:, :2], advantages)
    with pytest.raises(ValueError, match="integer tensor"):
        empg_advantages(entropies, steps.float(), advantages)
    with pytest.raises(ValueError, match=r"\(2,\) trajectory advantages"):
        empg_advantages(entropies, steps, torch.zeros(2, 3))


def loop_reference(entropies, step_ids, advantages, mask, k, future_k, zeta):
    """EMPG written out step by step with Python floats (an independent reading of docs/methods/token-weighting.md, The formula)."""
    batch, length = len(entropies), len(entropies[0])
    trajectories = []  # per completion: ordered list of (step id, mean entropy, token positions)
    for i in range(batch):
        by_step: dict[int, list[int]] = {}
        for t in range(length):
            if mask[i][t] and step_ids[i][t] >= 0:
                by_step.setdefault(step_ids[i][t], []).append(t)
        trajectories.append([(s, sum(entropies[i][t] for t in ts) / len(ts), ts) for s, ts in sorted(by_step.items())])
    all_h = [h for steps in trajectories for _, h, _ in steps]
    out = [[0.0] * length for _ in range(batch)]
    if not all_h:
        return out
    low, high = min(all_h), max(all_h)
    norm = [[(h - low) / (high - low + 1e-8) for _, h, _ in steps] for steps in trajectories]
    mean_raw = sum(math.exp(-k * x) for row in norm for x in row) / len(all_h)
    modulated = []
    for i, steps in enumerate(trajectories):
        row = []
        for j in range(len(steps)):
            g = math.exp(-k * norm[i][j]) / mean_raw
            bonus = zeta * math.exp(-future_k * norm[i][j + 1]) if j + 1 < len(steps) else 0.0
            row.append(g * advantages[i] + bonus)
        modulated.append(row)
    mean = sum(sum(row) for row in modulated) / len(all_h)
    for i, steps in enumerate(trajectories):
        for j, (_, _, ts) in enumerate(steps):
            for t in ts:
                out[i][t] = modulated[i][j] - mean
    return out


def random_batch(seed, batch=6, length=12):
    generator = torch.Generator().manual_seed(seed)
    entropies = torch.rand(batch, length, generator=generator, dtype=torch.float64) * 4
    boundaries = torch.rand(batch, length, generator=generator) < 0.3
    step_ids = boundaries.long().cumsum(dim=1)
    step_ids[torch.rand(batch, length, generator=generator) < 0.1] = -1  # tool output
    mask = torch.rand(batch, length, generator=generator) > 0.15
    advantages = torch.randn(batch, generator=generator, dtype=torch.float64)
    return entropies, step_ids, advantages, mask


@pytest.mark.parametrize("seed", range(5))
def test_empg_matches_a_float64_loop(seed):
    entropies, step_ids, advantages, mask = random_batch(seed)
    k, future_k, zeta = 0.5 + seed * 0.3, 1.5 - seed * 0.2, 0.1 * seed
    out = empg_advantages(entropies, step_ids, advantages, mask, k=k, future_k=future_k, zeta=zeta)
    expected = loop_reference(
        entropies.tolist(), step_ids.tolist(), advantages.tolist(), mask.tolist(), k, future_k, zeta
    )
    torch.testing.assert_close(out.advantages, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)


def test_empg_over_two_processes_equals_the_global_batch():
    entropies, step_ids, advantages, mask = random_batch(11, batch=8)
    mask[5] = False  # a process may hold a completion without any step
    whole = empg_advantages(entropies, step_ids, advantages, mask, zeta=0.1)
    gather, parts = FakeGather(2), [None, None]

    def run(rank):
        rows = slice(4 * rank, 4 * rank + 4)
        parts[rank] = empg_advantages(
            entropies[rows], step_ids[rows], advantages[rows], mask[rows], zeta=0.1, gather=gather.for_rank(rank)
        )

    threads = [threading.Thread(target=run, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    torch.testing.assert_close(torch.cat([part.advantages for part in parts]), whole.advantages, rtol=0, atol=1e-12)
    for name, value in whole.stats.items():
        assert parts[0].stats[name].item() == pytest.approx(value.item(), abs=1e-12), name


# --- step segmentation --------------------------------------------------------------------------------------------


def char_ids(tokenizer, text):
    """Character tokenizer ids, one per character (its pre-tokenizer would map "\\n\\n" to one unknown token)."""
    return [tokenizer.convert_tokens_to_ids(char) for char in text]


def pad(rows, value=0):
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [value] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    return ids, mask


def step_texts(tokenizer, ids, mask, step_ids):
    """Decoded text of each step, per completion."""
    out = []
    for b in range(ids.size(0)):
        steps: dict[int, list[int]] = {}
        for t in range(ids.size(1)):
            if step_ids[b, t] >= 0:
                steps.setdefault(int(step_ids[b, t]), []).append(int(ids[b, t]))
        out.append([tokenizer.decode(tokens) for _, tokens in sorted(steps.items())])
    return out


def test_delimiter_steps_with_the_character_tokenizer():
    tokenizer = build_tokenizer()
    eos = tokenizer.eos_token_id
    texts = ["ab.\n\ncd\n\n\n\nef\n\n", "\n\nxy\n\nz", "no step here", "a\n\n\nb"]
    ids, mask = pad([char_ids(tokenizer, text) + [eos] for text in texts], tokenizer.pad_token_id)
    step_ids = step_ids_from_delimiter(ids, mask, tokenizer)
    assert (step_ids[mask == 0] == -1).all()
    assert step_texts(tokenizer, ids, mask, step_ids) == [
        ["ab.\n\n", "cd\n\n\n\n", "ef\n\n<|im_end|>"],  # a run is one boundary; a trailing one makes no step
        ["\n\nxy\n\n", "z<|im_end|>"],  # a leading blank line stays with the first step
        ["no step here<|im_end|>"],
        ["a\n\n", "\nb<|im_end|>"],
    ]
    # Another delimiter; the step indices count from 0.
    custom = step_ids_from_delimiter(ids, mask, tokenizer, delimiter=" ")
    assert step_texts(tokenizer, ids, mask, custom)[2] == ["no ", "step ", "here<|im_end|>"]
    assert custom[2, :3].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="non-empty string"):
        step_ids_from_delimiter(ids, mask, tokenizer, delimiter="")


class PieceTokenizer:
    """A tokenizer whose tokens are fixed strings (no Rust backend): tokens that merge the delimiter with neighbours."""

    vocab = ["<eos>", "Step", " one", ".\n\n", "Two", "\n\n\n", "x", "\n", "\n\nThe", " end", ".\n"]

    def batch_decode(self, sequences, skip_special_tokens=True, clean_up_tokenization_spaces=False):
        return ["".join(self.vocab[i] for i in ids if not (skip_special_tokens and i == 0)) for ids in sequences]

    def decode(self, ids):
        return self.batch_decode([ids])[0]


def test_delimiter_steps_with_merged_tokens():
    tokenizer = PieceTokenizer()
    rows = [
        [1, 2, 3, 4, 5, 6, 0],  # "Step one.\n\n" | "Two\n\n\n" | "x"
        [6, 7, 7, 4, 10, 7, 4, 0],  # "x\n\n" made of two "\n" tokens | "Two.\n\nTwo": ".\n" + "\n" closes
        [6, 8, 9, 3, 0],  # "\n\nThe" merges the delimiter with the next word: it closes the first step
    ]
    ids, mask = pad(rows)
    step_ids = step_ids_from_delimiter(ids, mask, tokenizer)
    assert step_ids[0, :7].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert step_ids[1, :8].tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert step_ids[2, :5].tolist() == [0, 0, 1, 1, 1]


BYTE_LEVEL_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@pytest.fixture(scope="module")
def byte_level_tokenizer():
    """A byte-level BPE tokenizer with Qwen2's pre-tokenizer (punctuation merges with the newlines after it)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(BYTE_LEVEL_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    corpus = [
        f"We add {a} and {b}.\n\nThen we check it.\n\nSo the answer is {a + b}.\n\n"
        for a in range(9)
        for b in range(9)
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|im_end|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|im_end|>")


def test_delimiter_steps_with_a_byte_level_bpe(byte_level_tokenizer):
    tokenizer = byte_level_tokenizer
    texts = ["We add é and 😀.\n\nThen we check it.\n\n\n\nSo the answer is 7.\n\n", "Café 中文.\n\nSo 3."]
    rows = [tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for text in texts]
    assert tokenizer.convert_tokens_to_ids(".ĊĊ") in rows[0]  # the delimiter is merged with the full stop
    # Pieces concatenate to the decoded text, multi-byte characters split over byte tokens included.
    for row, text in zip(rows, texts, strict=True):
        assert "".join(token_pieces(tokenizer, [row])[0]) == text
    ids, mask = pad(rows, tokenizer.pad_token_id)
    step_ids = step_ids_from_delimiter(ids, mask, tokenizer)
    assert step_texts(tokenizer, ids, mask, step_ids) == [
        ["We add é and 😀.\n\n", "Then we check it.\n\n\n\n", "So the answer is 7.\n\n<|im_end|>"],
        ["Café 中文.\n\n", "So 3.<|im_end|>"],
    ]


def test_turn_steps_from_the_tool_mask():
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0]])
    tool_mask = torch.tensor([[1, 1, 0, 0, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]])
    assert step_ids_from_turns(mask, tool_mask).tolist() == [
        [0, 0, -1, -1, 1, -1, 2, -1],
        [0, 0, 0, 0, -1, -1, -1, -1],
    ]
    assert step_ids_from_turns(mask).tolist() == [[0] * 7 + [-1], [0] * 4 + [-1] * 4]
    # Delimiters and turns together: tool output belongs to no step, and a turn always starts a new step.
    tokenizer = build_tokenizer()
    row = char_ids(tokenizer, "a\n\nb") + char_ids(tokenizer, "TOOL\n\nOUT") + char_ids(tokenizer, "c")
    tools = [1] * 4 + [0] * 9 + [1]
    ids, full = pad([row])
    step_ids = step_ids_from_delimiter(ids, full, tokenizer, tool_mask=torch.tensor([tools]))
    kept = step_ids[0][step_ids[0] >= 0].tolist()
    assert kept[:3] == [0, 0, 0] and kept[3] == 1 and kept[4] > 1 and (step_ids[0][4:13] == -1).all()


# --- configuration and trainer ------------------------------------------------------------------------------------


def test_config_checks_empg(tmp_path):
    def config(**kwargs):
        return ReasoningGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)

    defaults = config(token_weighting="empg")
    assert (defaults.empg_zeta, defaults.empg_future_k, defaults.entropy_modulation_k) == (0.1, 1.0, 1.0)
    assert (defaults.empg_steps, defaults.empg_step_delimiter) == ("auto", "\n\n")
    with pytest.warns(FutureWarning, match="old name of 'entropy_token_scale'"):
        assert config(token_weighting="entropy").token_weighting == "entropy_token_scale"
    with pytest.raises(ValueError, match="empg_zeta=-1.0 must be a finite number >= 0"):
        config(token_weighting="empg", empg_zeta=-1.0)
    with pytest.raises(ValueError, match="empg_future_k=0.0"):
        config(token_weighting="empg", empg_future_k=0.0)
    with pytest.raises(ValueError, match="empg_steps='sentences' is invalid"):
        config(token_weighting="empg", empg_steps="sentences")
    assert config(token_weighting="empg", empg_step_delimiter="\\n\\n").empg_step_delimiter == "\n\n"  # CLI escapes
    with pytest.raises(ValueError, match="empg_step_delimiter='' must be a non-empty string"):
        config(token_weighting="empg", empg_step_delimiter="")
    with pytest.raises(ValueError, match="policy_loss='trl'"):
        config(token_weighting="empg", policy_loss="topr")


def test_config_checks_token_weighting(tmp_path):
    def config(**kwargs):
        return ReasoningGRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)

    assert config(token_weighting="none").token_weighting is None
    with pytest.raises(ValueError, match="token_weighting='other' is not a registered token weighting"):
        config(token_weighting="other")
    with pytest.raises(ValueError, match="critical_positive_adapter and critical_negative_adapter"):
        config(token_weighting="critical_tokens")
    with pytest.raises(ValueError, match="policy_loss='trl'"):
        config(token_weighting="entropy_token_scale", policy_loss="topr")
    with pytest.raises(ValueError, match="entropy_modulation_k"):
        config(token_weighting="entropy_token_scale", entropy_modulation_k=0.0)


# The worked example as two completions of one prompt: 3 steps (correct, A = +1 under W-REINFORCE with λ = 1) and
# 2 steps (wrong, A = −1). Scripted entropies are constant within each step, so each step's mean is its worked-example value.
WORKED_COMPLETIONS = ("ab\n\ncd\n\nef", "gh\n\nij")
WORKED_TOKEN_ENTROPIES = ([0.2] * 4 + [1.0] * 4 + [0.5] * 3, [1.5] * 4 + [0.1] * 3)  # the last token is EOS
WORKED_TOKEN_ADVANTAGES = ([1.070252] * 4 + [0.514910] * 4 + [0.792879] * 3, [-0.722127] * 4 + [-1.655913] * 3)


def three_steps_reward(completions, **kwargs):
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(text.count("\n\n") == 2) for text in texts]


def worked_rollout(prompts, trainer):
    tokenizer = trainer.processing_class
    texts = [
        p if isinstance(p, str) else tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    prompt_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    completions = [WORKED_COMPLETIONS[i % 2] for i in range(len(prompts))]
    completion_ids = [char_ids(tokenizer, text) + [tokenizer.eos_token_id] for text in completions]
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def test_empg_in_the_trainer_reproduces_the_worked_example(tmp_path):
    trainer = make_trainer(
        tmp_path,
        reward_funcs=(three_steps_reward,),
        token_weighting="empg",
        empg_zeta=0.05,
        advantage_estimator="w_reinforce",
        positive_weight=1.0,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=16,
        trainer_kwargs={"rollout_func": worked_rollout},
    )
    trainer.model.train()

    def scripted_entropies(batch, mode):
        width = batch["completion_ids"].size(1)
        return torch.tensor([row + [0.0] * (width - len(row)) for row in WORKED_TOKEN_ENTROPIES])

    trainer._rollout_entropies = scripted_entropies
    inputs = trainer._generate_and_score_completions([trainer.train_dataset[0]] * 2)
    assert list(trainer._logs["advantages"])[-2:] == [1.0, -1.0]
    mask = inputs["completion_mask"].bool()
    expected = torch.tensor([row + [0.0] * (mask.size(1) - len(row)) for row in WORKED_TOKEN_ADVANTAGES])
    assert inputs["advantages"].shape == mask.shape
    torch.testing.assert_close(inputs["advantages"][mask], expected[mask], atol=1e-6, rtol=0)
    metrics = trainer._metrics["train"]
    assert metrics["empg/steps_per_completion"][-1] == 2.5
    assert metrics["empg/shift"][-1] == pytest.approx(MEAN_MODULATED, abs=1e-6)
    assert metrics["empg/scale_min"][-1] == pytest.approx(0.514343, abs=1e-6)
    assert metrics["empg/scale_max"][-1] == pytest.approx(1.398129, abs=1e-6)
    assert metrics["empg/entropy_mean"][-1] == pytest.approx(sum(STEP_ENTROPIES[0] + STEP_ENTROPIES[1]) / 5, abs=1e-6)

    # TRL's loss takes the (B, T) advantages: finite, with gradients reaching the parameters.
    trainer.current_gradient_accumulation_steps = 1
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters())


# The same example as multi-turn trajectories: model turns separated by tool output (a rollout_func's env_mask, which
# TRL turns into tool_mask). Each turn is a step; tool tokens get an entropy that must never be read.
TURNS = (["ab", "cd", "ef"], ["gh", "ij"])
TOOL = "TOOL"


def turn_rollout(prompts, trainer):
    tokenizer = trainer.processing_class
    texts = [
        p if isinstance(p, str) else tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    completion_ids, env_mask = [], []
    for i in range(len(prompts)):
        ids, mask = [], []
        for n, turn in enumerate(TURNS[i % 2]):
            if n:
                ids += char_ids(tokenizer, TOOL)
                mask += [0] * len(TOOL)
            ids += char_ids(tokenizer, turn)
            mask += [1] * len(turn)
        completion_ids.append(ids + [tokenizer.eos_token_id])
        env_mask.append(mask + [1])
    prompt_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None, "env_mask": env_mask}


def two_tool_calls_reward(completions, **kwargs):
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(text.count(TOOL) == 2) for text in texts]


def test_empg_in_the_trainer_uses_assistant_turns_as_steps(tmp_path):
    trainer = make_trainer(
        tmp_path,
        reward_funcs=(two_tool_calls_reward,),
        token_weighting="empg",
        empg_zeta=0.05,
        advantage_estimator="w_reinforce",
        positive_weight=1.0,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=32,
        trainer_kwargs={"rollout_func": turn_rollout},
    )
    trainer.model.train()
    step_entropy, final = STEP_ENTROPIES, FINAL

    def scripted_entropies(batch, mode):
        rows = []
        for i, turns in enumerate(TURNS):
            row = []
            for n, turn in enumerate(turns):
                row += ([99.0] * len(TOOL) if n else []) + [step_entropy[i][n]] * len(turn)
            rows.append(row + [step_entropy[i][-1]])  # EOS belongs to the last turn
        width = batch["completion_ids"].size(1)
        return torch.tensor([row + [0.0] * (width - len(row)) for row in rows])

    trainer._rollout_entropies = scripted_entropies
    inputs = trainer._generate_and_score_completions([trainer.train_dataset[0]] * 2)
    assert list(trainer._logs["advantages"])[-2:] == [1.0, -1.0]
    model_tokens = (inputs["completion_mask"] * inputs["tool_mask"]).bool()
    expected = []
    for i, turns in enumerate(TURNS):
        row = []
        for n, turn in enumerate(turns):
            row += ([0.0] * len(TOOL) if n else []) + [final[i][n]] * len(turn)
        expected.append(row + [final[i][-1]] + [0.0] * (model_tokens.size(1) - len(row) - 1))
    expected = torch.tensor(expected)
    torch.testing.assert_close(inputs["advantages"][model_tokens], expected[model_tokens], atol=1e-6, rtol=0)
    assert (inputs["advantages"][~model_tokens] == 0).all()  # tool output and padding: no step
    assert trainer._metrics["train"]["empg/steps_per_completion"][-1] == 2.5


def test_empg_training_runs_and_logs(tmp_path):
    trainer = make_trainer(tmp_path, token_weighting="empg", max_steps=2)  # steps split at blank lines
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"empg/steps_per_completion", "empg/scale_max", "empg/bonus_mean", "empg/shift"} <= logged
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())


# --- entropy_token_scale: EMPG's entropy scale alone ------------------------------------------------------------------


# docs/methods/token-weighting.md, Worked example, with each step a token: trajectory A's entropies [0.2, 1.0, 0.5], B's [1.5, 0.1].
EMPG_ENTROPIES = [[0.2, 1.0, 0.5], [1.5, 0.1, 0.0]]
EMPG_MASK = [[1, 1, 1], [1, 1, 0]]
EMPG_SCALE = [[1.301746, 0.735120, 1.050662], [0.514343, 1.398129, 0.0]]


def test_entropy_modulation_matches_empg_worked_example():
    scale = entropy_modulation(torch.tensor(EMPG_ENTROPIES, dtype=torch.float64), torch.tensor(EMPG_MASK))
    torch.testing.assert_close(scale, torch.tensor(EMPG_SCALE, dtype=torch.float64), atol=1e-6, rtol=0)
    assert scale[torch.tensor(EMPG_MASK).bool()].mean().item() == pytest.approx(1.0)


def test_entropy_modulation_k_and_degenerate_batches():
    entropies, mask = torch.tensor(EMPG_ENTROPIES, dtype=torch.float64), torch.tensor(EMPG_MASK)
    # k = 2 by hand: normalised entropies [1/14, 9/14, 4/14 | 1, 0]
    normalized = torch.tensor([1 / 14, 9 / 14, 4 / 14, 1.0, 0.0], dtype=torch.float64)
    expected = torch.exp(-2 * normalized) / torch.exp(-2 * normalized).mean()
    scale = entropy_modulation(entropies, mask, k=2.0)
    torch.testing.assert_close(scale[mask.bool()], expected, atol=1e-7, rtol=0)
    # every token equally uncertain: all weights 1; no valid token: all 0
    assert (entropy_modulation(torch.full((2, 3), 0.7), torch.ones(2, 3)) == 1).all()
    assert (entropy_modulation(torch.rand(2, 3), torch.zeros(2, 3)) == 0).all()
    with pytest.raises(ValueError, match="k=0"):
        entropy_modulation(entropies, mask, k=0)
    with pytest.raises(ValueError, match="same shape"):
        entropy_modulation(entropies, mask[:, :2])


def test_entropy_modulation_over_processes_equals_the_global_batch():
    torch.manual_seed(0)
    entropies, mask = torch.rand(6, 5, dtype=torch.float64) * 3, (torch.rand(6, 5) > 0.3).long()
    whole = entropy_modulation(entropies, mask, k=1.0)
    gather, parts = FakeGather(2), [None, None]

    def run(rank):
        rows = slice(3 * rank, 3 * rank + 3)
        parts[rank] = entropy_modulation(entropies[rows], mask[rows], gather=gather.for_rank(rank))

    threads = [threading.Thread(target=run, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=1e-12)


def test_entropy_weighting_in_the_trainer_scales_each_token(tmp_path):
    trainer = make_trainer(tmp_path, token_weighting="entropy_token_scale", model_dtype=torch.float64, bf16=False)
    trainer.model.train()
    batch = [trainer.train_dataset[i] for i in (0, 0, 0, 0, 1, 1, 1, 1)]
    inputs = trainer._generate_and_score_completions(batch)
    sequence = torch.tensor(list(trainer._logs["advantages"])[-8:], dtype=torch.float64)
    mask = inputs["completion_mask"].bool()
    assert inputs["advantages"].shape == mask.shape

    # Independent entropies: the model's full softmax at every completion position.
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():
        logits = trainer.model(input_ids=ids, attention_mask=attention).logits.double()
    logits = logits[:, inputs["prompt_ids"].size(1) - 1 : -1] / trainer.temperature
    entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
    low, high = entropy[mask].min(), entropy[mask].max()
    scale = torch.exp(-(entropy - low) / (high - low + 1e-8))
    scale = scale / scale[mask].mean()
    expected = sequence.unsqueeze(1) * scale
    # TRL's fused LM head computes entropies in float32; the random model's entropies span a narrow range, which the
    # min-max normalisation stretches to [0, 1], so float32 rounding shows at ~1e-4.
    torch.testing.assert_close(inputs["advantages"][mask].double(), expected[mask], rtol=5e-4, atol=1e-6)
    assert sequence.abs().sum() > 0 and scale[mask].max() - scale[mask].min() > 0.5
    metrics = trainer._metrics["train"]
    assert metrics["token_weight/scale_max"][-1] == pytest.approx(scale[mask].max().item(), rel=5e-4)
    assert metrics["token_weight/entropy_mean"][-1] == pytest.approx(entropy[mask].mean().item(), rel=1e-5)
