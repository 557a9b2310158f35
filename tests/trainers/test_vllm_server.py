"""ReasoningGRPOTrainer in TRL's vLLM server mode, against a fake vLLM server over real HTTP (CPU, no vLLM).

See `fake_vllm_server.py` for what the server implements and what is patched (only vLLM's NCCL weight transfer and
the "is vLLM installed / is this CUDA" gates; the HTTP client and the trainer are TRL's and ours, unchanged).
"""

import threading
from dataclasses import dataclass

import pytest
import requests  # noqa: F401  (TRL's vLLM client needs it; the dev extra installs it, so never skip)
import torch
from support.fake_vllm_server import FakeVLLMServer, Generation, patch_trl
from transformers import TrainerCallback

from trl_reasoning import ReasoningGRPOConfig, ReasoningGRPOTrainer
from trl_reasoning.embedded import arithmetic_dataset, build_tiny_model, build_tokenizer
from trl_reasoning.testing import coin_reward


pytestmark = pytest.mark.slow

NUM_GENERATIONS = 4
BATCH_SIZE = 8  # 2 prompts x 4 completions per step
MAX_TOKENS = 8
TEMPERATURE = 0.7
GROUP_PORT = 51299

SETUP_REQUESTS = [
    "GET /health",  # VLLMClient.check_server
    "GET /v1/models",  # the served model's name
    "GET /server_info",  # init_communicator: is there a weight-transfer engine?
    "GET /get_world_size",
    "POST /init_weight_transfer_engine",
    "GET /server_info",  # the trainer checks `--logprobs-mode` for the importance-sampling correction
]
STEP_REQUESTS = [
    "POST /start_weight_update",
    "POST /update_weights",
    "POST /finish_weight_update",
    "POST /reset_prefix_cache",
    "POST /v1/completions",
]


class ModelScorer:
    """The fake server's sampling log-probs: the tiny model's own, under the weights the server last received."""

    def __init__(self, tokenizer):
        self.model = build_tiny_model(tokenizer).eval()
        self.loaded = None
        self.lock = threading.Lock()

    @torch.no_grad()
    def __call__(self, prompt_ids, completion_ids, temperature, weights):
        with self.lock:
            if self.loaded is not weights:
                for name, param in self.model.named_parameters():
                    param.copy_(weights[name])
                self.loaded = weights
            input_ids = torch.tensor([list(prompt_ids) + list(completion_ids)])
            logits = self.model(input_ids=input_ids).logits[0, len(prompt_ids) - 1 : -1] / temperature
            targets = torch.tensor(completion_ids).unsqueeze(1)
            return logits.log_softmax(-1).gather(-1, targets).squeeze(1).tolist()


class SnapshotParameters(TrainerCallback):
    """The trainer's parameters after every optimizer step."""

    def __init__(self):
        self.snapshots = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.snapshots.append(snapshot(model))


def snapshot(model):
    return {name: param.detach().clone() for name, param in model.named_parameters()}


@dataclass
class Run:
    trainer: ReasoningGRPOTrainer
    reward_calls: list[dict]
    weights_at_generation: list[dict]  # initial parameters, then after each optimizer step: generation k used [k]


def train_against(server, tmp_path, max_steps):
    tokenizer = build_tokenizer()
    reward_calls = []

    def coin(prompts, completions, completion_ids, **kwargs):
        reward_calls.append(
            {"prompts": prompts, "completions": completions, "completion_ids": [list(ids) for ids in completion_ids]}
        )
        return coin_reward(completions)

    config = ReasoningGRPOConfig(
        output_dir=str(tmp_path),
        advantage_estimator="w_reinforce",
        use_vllm=True,
        vllm_mode="server",
        vllm_server_host=server.host,
        vllm_server_port=server.port,
        vllm_server_timeout=5.0,
        vllm_group_port=GROUP_PORT,
        per_device_train_batch_size=BATCH_SIZE,
        num_generations=NUM_GENERATIONS,
        max_completion_length=MAX_TOKENS,
        temperature=TEMPERATURE,
        max_steps=max_steps,
        learning_rate=1e-2,
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
    )
    callback = SnapshotParameters()
    trainer = ReasoningGRPOTrainer(
        model=build_tiny_model(tokenizer),
        reward_funcs=[coin],
        args=config,
        train_dataset=arithmetic_dataset(32),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    initial = snapshot(trainer.model)
    trainer.train()
    return Run(trainer, reward_calls, [initial, *callback.snapshots])


def assert_server_weights_match(server_weights, trainer_weights):
    """The server holds exactly the trainer's parameters: same names, dtypes, shapes and values."""
    assert sorted(server_weights) == sorted(trainer_weights), (
        f"parameter names differ: server-only {sorted(set(server_weights) - set(trainer_weights))}, "
        f"trainer-only {sorted(set(trainer_weights) - set(server_weights))}"
    )
    mismatched = [
        f"{name} (max |diff| {(server_weights[name].double() - value.double()).abs().max().item():.3g})"
        for name, value in trainer_weights.items()
        if server_weights[name].dtype != value.dtype or not torch.equal(server_weights[name], value)
    ]
    assert not mismatched, (
        f"the server's weights differ from the trainer's in {len(mismatched)}/{len(trainer_weights)} tensors: "
        + ", ".join(mismatched[:3])
        + (", ..." if len(mismatched) > 3 else "")
    )


def assert_completions_from_server(reward_calls, generations: list[Generation], tokenizer):
    """Each step trained on exactly the prompts the server was sent and the completions it returned, in order."""
    assert len(reward_calls) == len(generations), f"{len(reward_calls)} scored batches, {len(generations)} generations"
    for step, (call, generation) in enumerate(zip(reward_calls, generations, strict=True)):
        assert call["completion_ids"] == generation.completion_ids, f"step {step}: completions not from the server"
        texts = tokenizer.batch_decode(generation.completion_ids, skip_special_tokens=True)
        assert [c[-1]["content"] for c in call["completions"]] == texts, f"step {step}: completion texts"
        unique_prompts = call["prompts"][::NUM_GENERATIONS]
        sent = [
            tokenizer(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True))["input_ids"]
            for p in unique_prompts
        ]
        assert generation.prompt_ids == sent, f"step {step}: the server was not sent the trained prompts"


def test_reasoning_grpo_trains_through_vllm_server(tmp_path, monkeypatch):
    tokenizer = build_tokenizer()
    digits = tokenizer.convert_tokens_to_ids(list("0123456789"))
    steps = 3
    with FakeVLLMServer(digits, tokenizer.eos_token_id, logprob_fn=ModelScorer(tokenizer)) as server:
        patch_trl(monkeypatch, server)
        run = train_against(server, tmp_path, max_steps=steps)
        # TRL syncs before each generation; the last optimizer step's weights go out with the next one.
        run.trainer.vllm_generation.sync_weights()

    # The protocol: connect, set up the weight-transfer group, then per step sync -> reset cache -> generate.
    assert server.endpoints() == SETUP_REQUESTS + STEP_REQUESTS * steps + STEP_REQUESTS[:-1]
    expected_init = {"master_address": "127.0.0.1", "master_port": GROUP_PORT, "rank_offset": 1, "world_size": 2}
    assert server.init_info == {**expected_init, "packed": True}
    assert server.prefix_cache_resets == steps + 1

    # One generate request per step, with the configured sampling parameters, for the step's unique prompts.
    assert len(server.generations) == steps
    for generation in server.generations:
        payload = generation.payload
        assert (payload["n"], payload["temperature"], payload["max_tokens"]) == (
            NUM_GENERATIONS,
            TEMPERATURE,
            MAX_TOKENS,
        )
        assert payload["logprobs"] == 0 and payload["return_token_ids"] and payload["return_tokens_as_token_ids"]
        assert len(generation.prompt_ids) == BATCH_SIZE // NUM_GENERATIONS
        assert len(generation.completion_ids) == BATCH_SIZE

    # The trainer scored and trained on exactly what the server produced.
    assert_completions_from_server(run.reward_calls, server.generations, tokenizer)
    completion_lengths = {len(ids) for g in server.generations for ids in g.completion_ids}
    assert len(completion_lengths) > 2, "the fake model should produce varied lengths"

    # Every generation ran on the trainer's current weights: synced in full, under the right names, bit for bit.
    names = list(run.weights_at_generation[0])
    assert len(server.weight_updates) == steps + 1
    for update in server.weight_updates:
        assert update.update_info["names"] == names
        assert update.update_info["dtype_names"] == ["float32"] * len(names)
    for step, generation in enumerate(server.generations):
        assert generation.weight_version == step + 1
        assert_server_weights_match(generation.weights, run.weights_at_generation[step])
    assert_server_weights_match(server.weights, run.weights_at_generation[steps])
    for before, after in zip(run.weights_at_generation[:-1], run.weights_at_generation[1:], strict=True):
        assert any(not torch.equal(before[n], after[n]) for n in names), "an optimizer step left the model unchanged"

    # The check can fail: one perturbed element, or a completion token the server never produced, is caught.
    tampered = dict(server.generations[-1].weights)
    tampered[names[-1]] = tampered[names[-1]].clone()
    tampered[names[-1]].view(-1)[0] += 1e-6
    with pytest.raises(AssertionError, match=rf"differ from the trainer's in 1/{len(names)} tensors: {names[-1]} "):
        assert_server_weights_match(tampered, run.weights_at_generation[steps - 1])
    forged = [dict(call) for call in run.reward_calls]
    forged[1]["completion_ids"] = [list(ids) for ids in forged[1]["completion_ids"]]
    forged[1]["completion_ids"][5][0] = tokenizer.convert_tokens_to_ids("x")
    with pytest.raises(AssertionError, match="step 1: completions not from the server"):
        assert_completions_from_server(forged, server.generations, tokenizer)

    # The method's metrics are logged, and vLLM's sampling log-probs agree with the trainer's (same weights).
    logs = [entry for entry in run.trainer.state.log_history if "loss" in entry]
    assert len(logs) == steps
    for entry in logs:
        for metric in ("advantage/frac_correct", "advantage/frac_dropped", "advantage/mean_abs"):
            assert metric in entry, metric
        assert entry["sampling/sampling_logp_difference/max"] < 1e-4
        assert abs(entry["sampling/importance_sampling_ratio/min"] - 1) < 1e-3


def test_broken_weight_sync_is_detected(tmp_path, monkeypatch):
    """Negative control: a transfer that keeps re-sending the first weights it saw must fail the weight check."""
    tokenizer = build_tokenizer()
    digits = tokenizer.convert_tokens_to_ids(list("0123456789"))
    first_sent = []

    def stale_broadcast(iterator, group, src, post_iter_func, **kwargs):
        current = [post_iter_func(item).clone() for item in iterator]
        if not first_sent:
            first_sent.extend(current)
        for tensor in first_sent:
            group.send(tensor)

    with FakeVLLMServer(digits, tokenizer.eos_token_id, logprob_fn=ModelScorer(tokenizer)) as server:
        patch_trl(monkeypatch, server)
        monkeypatch.setattr("trl.generation.vllm_client.packed_nccl_broadcast_producer", stale_broadcast)
        run = train_against(server, tmp_path, max_steps=2)

    assert server.endpoints() == SETUP_REQUESTS + STEP_REQUESTS * 2  # the protocol itself looked fine
    assert_completions_from_server(run.reward_calls, server.generations, tokenizer)
    assert_server_weights_match(server.generations[0].weights, run.weights_at_generation[0])
    with pytest.raises(AssertionError, match="the server's weights differ from the trainer's") as failure:
        assert_server_weights_match(server.generations[1].weights, run.weights_at_generation[1])
    assert f"in {len(run.weights_at_generation[1])}/" in str(failure.value)  # every tensor is stale
    # The stale policy also shows in TRL's own sampling diagnostics.
    logs = [entry for entry in run.trainer.state.log_history if "loss" in entry]
    assert logs[0]["sampling/sampling_logp_difference/max"] < 1e-4
    assert logs[1]["sampling/sampling_logp_difference/max"] > 1e-3
