"""A stand-in for the vLLM server that TRL 1.16's `VLLMClient` talks to, for CPU tests of `vllm_mode="server"`.

TRL 1.16 no longer ships its own server: `trl vllm-serve` execs `VLLM_SERVER_DEV_MODE=1 vllm serve ... --weight-transfer-
config '{"backend": "nccl"}' --logprobs-mode processed_logprobs`, and the client speaks vLLM's OpenAI API plus its
dev-mode weight-transfer routes. :class:`FakeVLLMServer` serves those routes over real HTTP (stdlib, 127.0.0.1, a free
port) with the response shapes vLLM gives:

* ``GET /health``, ``GET /v1/models``, ``GET /server_info?config_format=json``, ``GET /get_world_size``
* ``POST /init_weight_transfer_engine``, ``/start_weight_update``, ``/update_weights``, ``/finish_weight_update``
* ``POST /reset_prefix_cache``, ``POST /v1/completions`` (token-ID prompts, ``n`` choices each, logprobs on request)

Its "model" is deterministic: each choice is a seeded pseudo-random run of ``token_ids`` ending with
``eos_token_id`` (or cut at ``max_tokens``), keyed on the prompt, the choice and the number of earlier generate
requests. Sampling log-probs come from ``logprob_fn`` (e.g. a real model loaded with the received weights).

Weight tensors do not travel over HTTP but over NCCL, which has no CPU backend. :func:`patch_trl` replaces exactly the
NCCL pieces of `trl.generation.vllm_client` (opening the trainer's end of the group, the packed broadcast) with an
in-process channel into the server, which assigns the tensors to the names announced by ``/update_weights`` as vLLM's
workers do. Everything else (HTTP, JSON, the client's own logic) is TRL's.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import torch


TRANSFER_TIMEOUT_S = 10.0


@dataclass
class RecordedRequest:
    """One HTTP request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class Generation:
    """One ``/v1/completions`` call: what was asked, what was answered, and the weights it was answered with."""

    payload: dict
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]  # prompt-major: the ``n`` choices of prompt 0, then of prompt 1, ...
    logprobs: list[list[float]] | None
    weights: dict[str, torch.Tensor]
    weight_version: int


@dataclass
class WeightUpdate:
    """One ``/update_weights`` call: the announced tensors and what arrived over the (fake) NCCL group."""

    update_info: dict
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


class ServerError(Exception):
    """A request the server refuses; answered with HTTP 400 (not 5xx, which the client would retry for seconds)."""


class WeightChannel:
    """The trainer's end of the weight-update group: what `open_trainer_endpoint` returns and the broadcast uses."""

    def __init__(self, server: FakeVLLMServer, init_info: dict):
        self.server = server
        self.init_info = init_info
        self.group = SimpleNamespace(store=object(), socket=object())  # `close_communicator` clears both

    def send(self, tensor: torch.Tensor) -> None:
        self.server._transfer.put(tensor.detach().to("cpu", copy=True))


def packed_nccl_broadcast_producer(iterator, group: WeightChannel, src: int, post_iter_func, **kwargs) -> None:
    """Stand-in for `vllm.distributed.weight_transfer.packed_tensor.packed_nccl_broadcast_producer` (vLLM >= 0.28).

    Like the real one it sends only the tensors, in order; the receiver names them from the ``/update_weights``
    metadata.
    """
    assert src == 0, "the trainer is rank 0 of the weight-update group"
    for item in iterator:
        group.send(post_iter_func(item))


def default_logprobs(prompt_ids, completion_ids, temperature, weights) -> list[float]:
    """Deterministic pseudo log-probs in [-1.4, -0.5] for servers that do not score with a real model."""
    return [-0.5 - ((token * 31 + position) % 10) / 10 for position, token in enumerate(completion_ids)]


class FakeVLLMServer:
    """A deterministic vLLM server on 127.0.0.1; use as a context manager (starts and stops its thread).

    Args:
        token_ids: tokens the "model" writes before ``eos_token_id``.
        eos_token_id: end of sequence; a choice that stops early ends with it.
        seed: changes every completion.
        logprob_fn: ``(prompt_ids, completion_ids, temperature, weights) -> list[float]``, the sampling log-probs.
        world_size: the number of vLLM workers reported by ``/get_world_size``.
        model_name: the id served by ``/v1/models``.
    """

    def __init__(
        self,
        token_ids: list[int],
        eos_token_id: int,
        *,
        seed: int = 0,
        logprob_fn=default_logprobs,
        world_size: int = 1,
        model_name: str = "fake-vllm-model",
    ):
        self.token_ids = list(token_ids)
        self.eos_token_id = eos_token_id
        self.seed = seed
        self.logprob_fn = logprob_fn
        self.world_size = world_size
        self.model_name = model_name

        self.requests: list[RecordedRequest] = []
        self.generations: list[Generation] = []
        self.weight_updates: list[WeightUpdate] = []
        self.weights: dict[str, torch.Tensor] = {}  # replaced (never mutated) by each finished update
        self.weight_version = 0  # finished weight updates
        self.prefix_cache_resets = 0
        self.init_info: dict | None = None
        self.trainer_init_info: dict | None = None

        self._lock = threading.Lock()
        self._transfer: queue.Queue[torch.Tensor] = queue.Queue()
        self._trainer_joined = threading.Event()
        self._pending: dict[str, torch.Tensor] | None = None  # set between start and finish of an update
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeVLLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as `requests.Session` expects

            def do_GET(self):
                server._handle(self, "GET")

            def do_POST(self):
                server._handle(self, "POST")

            def log_message(self, format, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-vllm-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def endpoints(self) -> list[str]:
        """``"METHOD /path"`` of every request so far, in arrival order."""
        return [f"{request.method} {request.path}" for request in self.requests]

    # --------------------------------------------------------------------------- trainer side of the NCCL group

    def open_trainer_endpoint(self, init_info: dict) -> WeightChannel:
        """Stand-in for `vllm.distributed.weight_transfer.nccl_common.trainer_init`: join the group as rank 0."""
        self.trainer_init_info = dict(init_info)
        self._trainer_joined.set()
        return WeightChannel(self, init_info)

    # ------------------------------------------------------------------------------------------------- routing

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        with self._lock:
            self.requests.append(RecordedRequest(method, url.path, parse_qs(url.query), body))

        route = self._routes().get((method, url.path.rstrip("/") or "/"))
        if route is None:
            status, content = 404, {"detail": "Not Found"}
        else:
            try:
                status, content = 200, route(body, parse_qs(url.query))
            except ServerError as error:
                status, content = 400, {"detail": str(error)}
            except Exception:  # a bug in the fake or in `logprob_fn`: answer 400 so the client fails fast
                status, content = 400, {"detail": traceback.format_exc()}

        data = b"" if content is None else json.dumps(content).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _routes(self) -> dict:
        return {
            ("GET", "/health"): lambda body, query: None,  # vLLM answers 200 with an empty body
            ("GET", "/v1/models"): self._models,
            ("GET", "/server_info"): self._server_info,
            ("GET", "/get_world_size"): lambda body, query: {"world_size": self.world_size},
            ("POST", "/init_weight_transfer_engine"): self._init_weight_transfer_engine,
            ("POST", "/start_weight_update"): self._start_weight_update,
            ("POST", "/update_weights"): self._update_weights,
            ("POST", "/finish_weight_update"): self._finish_weight_update,
            ("POST", "/reset_prefix_cache"): self._reset_prefix_cache,
            ("POST", "/v1/completions"): self._completions,
        }

    # ------------------------------------------------------------------------------------------------ handlers

    def _models(self, body, query) -> dict:
        model = {"id": self.model_name, "object": "model", "owned_by": "vllm", "root": self.model_name}
        return {"object": "list", "data": [model]}

    def _server_info(self, body, query) -> dict:
        return {
            "vllm_config": {
                "model_config": {"model": self.model_name, "logprobs_mode": "processed_logprobs"},
                "parallel_config": {"world_size": self.world_size},
                "weight_transfer_config": {"backend": "nccl"},
            }
        }

    def _init_weight_transfer_engine(self, body, query) -> dict:
        init_info = (body or {}).get("init_info")
        if init_info is None:
            raise ServerError("Missing 'init_info' in request body")
        # The workers block in the rendezvous until the trainer joins as rank 0.
        if not self._trainer_joined.wait(TRANSFER_TIMEOUT_S):
            raise ServerError("the trainer never joined the weight-update group")
        if init_info != self.trainer_init_info:
            raise ServerError(f"rendezvous mismatch: server {init_info} vs trainer {self.trainer_init_info}")
        if init_info["world_size"] != self.world_size + 1 or init_info["rank_offset"] != 1:
            raise ServerError(f"bad group layout {init_info} for {self.world_size} worker(s)")
        self.init_info = init_info
        return {"message": "Weight transfer initialized"}

    def _start_weight_update(self, body, query) -> dict:
        if self.init_info is None:
            raise ServerError("start_weight_update before init_weight_transfer_engine")
        if self._pending is not None:
            raise ServerError("start_weight_update called while a weight update is already in progress")
        self._pending = {}
        return {"message": "Weight update started"}

    def _update_weights(self, body, query) -> dict:
        update_info = (body or {}).get("update_info")
        if update_info is None:
            raise ServerError("Missing 'update_info' in request body")
        if self._pending is None:
            raise ServerError("update_weights outside start_weight_update/finish_weight_update")
        update = WeightUpdate(update_info)
        self.weight_updates.append(update)
        names, dtypes, shapes = update_info["names"], update_info["dtype_names"], update_info["shapes"]
        # Like vLLM's workers: receive one tensor per announced name, in order, and check it against the metadata.
        for name, dtype, shape in zip(names, dtypes, shapes, strict=True):
            try:
                tensor = self._transfer.get(timeout=TRANSFER_TIMEOUT_S)
            except queue.Empty:
                raise ServerError(f"no tensor arrived for {name!r}") from None
            if str(tensor.dtype).removeprefix("torch.") != dtype or list(tensor.shape) != list(shape):
                raise ServerError(f"{name!r}: announced {dtype}{shape}, received {tensor.dtype}{list(tensor.shape)}")
            update.tensors[name] = tensor
        self._pending.update(update.tensors)
        return {"message": "Weights updated"}

    def _finish_weight_update(self, body, query) -> dict:
        if self._pending is None:
            raise ServerError("finish_weight_update without start_weight_update")
        if not self._transfer.empty():
            raise ServerError("tensors were broadcast that no update announced")
        self.weights = {**self.weights, **self._pending}
        self.weight_version += 1
        self._pending = None
        return {"message": "Weight update finished"}

    def _reset_prefix_cache(self, body, query) -> dict:
        self.prefix_cache_resets += 1
        return {"success": True}  # vLLM >= 0.26

    def _completions(self, body, query) -> dict:
        payload = body or {}
        if payload.get("model") != self.model_name:
            raise ServerError(f"The model `{payload.get('model')}` does not exist.")
        prompts = payload["prompt"]
        if not (isinstance(prompts, list) and all(isinstance(p, list) for p in prompts)):
            raise ServerError("this fake server only serves token-ID prompts (a list of lists of ints)")
        n, max_tokens = payload.get("n", 1), payload.get("max_tokens", 16)
        temperature, want_logprobs = payload.get("temperature", 1.0), payload.get("logprobs") is not None

        with self._lock:
            call = len(self.generations)
            weights, version = self.weights, self.weight_version
            generation = Generation(payload, [], [], [] if want_logprobs else None, weights, version)
            self.generations.append(generation)

        choices = []
        for prompt_index, prompt_ids in enumerate(prompts):
            generation.prompt_ids.append(list(prompt_ids))
            for sample in range(n):
                token_ids, finish_reason = self.sample(prompt_ids, sample, max_tokens, call)
                generation.completion_ids.append(token_ids)
                choice = {
                    "index": prompt_index * n + sample,
                    "text": "",
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    "stop_reason": None,
                    "prompt_logprobs": None,
                    "prompt_token_ids": list(prompt_ids),
                    "token_ids": token_ids,
                }
                if want_logprobs:
                    values = [float(v) for v in self.logprob_fn(prompt_ids, token_ids, temperature, weights)]
                    generation.logprobs.append(values)
                    tokens = [f"token_id:{token}" for token in token_ids]
                    choice["logprobs"] = {
                        "text_offset": [0] * len(token_ids),
                        "token_logprobs": values,
                        "tokens": tokens,
                        "top_logprobs": [{token: value} for token, value in zip(tokens, values, strict=True)],
                    }
                choices.append(choice)
        prompt_tokens = sum(len(p) for p in prompts)
        completion_tokens = sum(len(c["token_ids"]) for c in choices)
        return {
            "id": f"cmpl-fake-{call}",
            "object": "text_completion",
            "created": 0,
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def sample(self, prompt_ids: list[int], sample: int, max_tokens: int, call: int) -> tuple[list[int], str]:
        """The deterministic completion for one choice: (token ids, finish reason)."""
        rng = random.Random(f"{self.seed}:{call}:{sample}:{list(prompt_ids)}")
        if rng.random() < 0.25:  # runs out of tokens
            return [rng.choice(self.token_ids) for _ in range(max_tokens)], "length"
        length = rng.randint(1, max_tokens)  # eos included
        return [rng.choice(self.token_ids) for _ in range(length - 1)] + [self.eos_token_id], "stop"


def patch_trl(monkeypatch, server: FakeVLLMServer) -> None:
    """Point TRL 1.16's vLLM server mode at ``server`` on a machine with neither vLLM nor CUDA.

    * ``is_vllm_available`` gates `VLLMGeneration` and `VLLMClient`: report vLLM as installed.
    * The client takes vLLM >= 0.28's code paths (stateful NCCL trainer engine, ``/reset_prefix_cache`` answering
      ``{"success": ...}``), the ones the supported range resolves to; the flags were computed at import time.
    * ``get_ip``, ``open_trainer_endpoint`` and ``packed_nccl_broadcast_producer`` are vLLM imports the module lacks
      without vLLM: the trainer's address, and the NCCL group and broadcast, replaced by :class:`WeightChannel`.
    * `init_communicator` refuses non-CUDA devices because NCCL needs one; the channel needs none, so it gets an
      index-less CUDA device (which makes it skip `torch.cuda.set_device`). Its HTTP calls run unchanged.
    """
    from trl.generation import vllm_client, vllm_generation

    def vllm_is_available(min_version: str | None = None) -> bool:
        return True

    monkeypatch.setattr(vllm_generation, "is_vllm_available", vllm_is_available)
    monkeypatch.setattr(vllm_client, "is_vllm_available", vllm_is_available)
    monkeypatch.setattr(vllm_client, "_HAS_STATEFUL_TRAINER_ENGINE", True)
    monkeypatch.setattr(vllm_client, "_HAS_RESET_PREFIX_CACHE_SUCCESS", True)
    monkeypatch.setattr(vllm_client, "get_ip", lambda: "127.0.0.1", raising=False)
    monkeypatch.setattr(vllm_client, "open_trainer_endpoint", server.open_trainer_endpoint, raising=False)
    monkeypatch.setattr(vllm_client, "packed_nccl_broadcast_producer", packed_nccl_broadcast_producer, raising=False)

    init_communicator = vllm_client.VLLMClient.init_communicator

    def init_communicator_without_cuda(self, device=0):
        return init_communicator(self, device="cuda")

    monkeypatch.setattr(vllm_client.VLLMClient, "init_communicator", init_communicator_without_cuda)
