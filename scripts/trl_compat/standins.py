"""Local stand-ins for the hub models and datasets that TRL's GRPO tests name, so the tests run offline.

``build_hub_cache(root)`` writes a Hugging Face hub cache (``models--org--name/refs/main`` +
``snapshots/<hash>/``) holding a tiny randomly initialised model and a tiny byte-level BPE tokenizer for every model
id in :data:`CAUSAL_LMS` and :data:`REWARD_MODELS` (and a remote-code model); pointing ``HF_HUB_CACHE`` at it with
``HF_HUB_OFFLINE=1`` makes ``from_pretrained("trl-internal-testing/...")`` load them as if they had been downloaded.

``build_datasets(root)`` saves procedurally generated versions of the ``trl-internal-testing/zen`` datasets (the
configs and columns TRL's tests read) with ``save_to_disk``; :func:`patched_load_dataset` serves them in place of
``datasets.load_dataset`` (splits and ``streaming=True`` included).

Everything is written by this project; nothing is copied from TRL or the hub.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import random
import shutil
import string
from pathlib import Path


BUILD_VERSION = "8"  # bump to rebuild caches made by an older version of this file

# Causal LMs: hub id -> (model_type, extra config kwargs).
CAUSAL_LMS = {
    "trl-internal-testing/tiny-Qwen2ForCausalLM-2.5": ("qwen2", {}),
    "trl-internal-testing/tiny-Qwen3ForCausalLM": ("qwen3", {"head_dim": 8}),
    "trl-internal-testing/tiny-Qwen3MoeForCausalLM": (
        "qwen3_moe",
        {
            "head_dim": 8,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 16,
            "decoder_sparse_step": 1,
        },
    ),
    "trl-internal-testing/tiny-LlamaForCausalLM-3.2": ("llama", {}),
    "trl-internal-testing/tiny-MistralForCausalLM-0.2": ("mistral", {"head_dim": 8}),
    "trl-internal-testing/tiny-Gemma2ForCausalLM": ("gemma2", {"head_dim": 8}),
    "trl-internal-testing/tiny-Cohere2ForCausalLM": ("cohere2", {}),
    "trl-internal-testing/tiny-GptOssForCausalLM": (
        "gpt_oss",
        {"head_dim": 8, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": 16},
    ),
    "trl-internal-testing/tiny-Glm4MoeForCausalLM": (
        "glm4_moe",
        {
            "head_dim": 8,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "moe_intermediate_size": 16,
            "first_k_dense_replace": 1,
            "n_group": 1,
            "topk_group": 1,
        },
    ),
    "trl-internal-testing/tiny-NemotronHForCausalLM-nano": (
        "nemotron_h",
        {
            "head_dim": 8,
            "hybrid_override_pattern": "M*",
            "layers_block_type": ["mamba", "attention"],
            "mamba_num_heads": 4,
            "mamba_head_dim": 8,
            "ssm_state_size": 8,
            "n_groups": 1,
            "mamba_n_groups": 1,
            "expand": 1,
        },
    ),
}

# Stand-ins that always get Qwen's vocabulary size and ids (`build_tokenizer(qwen_vocab=True)`): TRL's tool and
# environment tests, which use only these two models, fake their generations as Qwen token ids.
QWEN_VOCAB_MODELS = {"trl-internal-testing/tiny-Qwen3ForCausalLM", "trl-internal-testing/tiny-Qwen3MoeForCausalLM"}

# Sequence-classification reward models: hub id -> model_type.
REWARD_MODELS = {
    "trl-internal-testing/tiny-Qwen2ForSequenceClassification-2.5": "qwen2",
    "trl-internal-testing/tiny-Qwen3ForSequenceClassification": "qwen3",
    "trl-internal-testing/tiny-LlamaForSequenceClassification-3.2": "llama",
}

# No vision-language stand-ins: transformers' VLM processors (Qwen2-VL, Gemma 3, LLaVA, ...) need torchvision for
# their video/image processors, which this environment does not have, so TRL's VLM tests fail in both runs.

REMOTE_CODE_MODEL = "trl-internal-testing/tiny-RemoteForCausalLM"

# Qwen2.5's / Qwen3's ids of the special tokens TRL's tests hard-code (151643-151645, 151657-151658) and of the
# others in SPECIAL_TOKENS, used with `qwen_vocab`.
QWEN_SPECIAL_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
    "<tool_call>": 151657,
    "</tool_call>": 151658,
    "<tool_response>": 151665,
    "</tool_response>": 151666,
    "<think>": 151667,
    "</think>": 151668,
}

# Pieces of Qwen's vocabulary that TRL's tool and environment tests write as token ids in their fake generations,
# with the text each stands for as read off the tests' comments (for example ids [17453, 0] are "Done!", and
# [151657, 198, 4913, 606, 788, 330, ...] is '<tool_call>\n{"name": "...'). Ids under 256 are the byte alphabet.
QWEN_PIECES = {
    293: " b",
    314: " {",
    330: ' "',
    397: ">\n",
    411: "out",
    450: "dec",
    497: '",',
    522: "</",
    606: "name",
    788: '":',
    894: " any",
    927: "sh",
    944: "'t",
    1318: "text",
    1414: " know",
    1513: " don",
    2765: " won",
    4913: '{"',
    5212: ' {"',
    5392: " tool",
    6023: "hi",
    6659: "call",
    7692: "async",
    9520: "step",
    11248: "}}\n",
    13477: "rement",
    14172: "tool",
    16252: " increment",
    16370: "arguments",
    17453: "Done",
    22785: "_tool",
    35744: "increment",
    64648: "multiply",
    93054: "_multiply",
    95642: '"}}\n',
}
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_response>",
    "</tool_response>",
]
# Of SPECIAL_TOKENS, the ones Qwen's tokenizers add as plain (not special) tokens, so decoding keeps them.
ADDED_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

# The chat template each stand-in's real hub tokenizer ships, by model type, as the name of the identical template
# the installed trl ships (``trl/chat_templates/<name>.jinja``, read at build time). TRL's tool calling
# (``add_response_schema``) recognises a tokenizer by exact equality with one of these, so the tool and environment
# tests need the real template. Model types not listed (their templates need other special tokens) keep
# :data:`CHAT_TEMPLATE`.
HUB_CHAT_TEMPLATES = {"qwen2": "qwen2_5", "qwen3": "qwen3", "qwen3_moe": "qwen3"}

# A ChatML template in the style of Qwen2.5's: optional system prompt, tools, tool calls and tool responses.
CHAT_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{%- if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{%- else %}You are a helpful assistant."
    "{%- endif %}\n\n# Tools\n\n<tools>"
    "{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}\n</tools><|im_end|>\n"
    "{%- elif messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' and tools %}"
    "{%- elif message['role'] == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message['content'] }}\n"
    "</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ message['role'] }}\n"
    "{%- if message['content'] is string %}{{ message['content'] }}"
    "{%- elif message['content'] %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' %}{{ part['text'] }}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message.get('tool_calls') %}{%- for call in message['tool_calls'] %}\n<tool_call>\n"
    '{"name": "{{ call["function"]["name"] }}", "arguments": {{ call["function"]["arguments"] | tojson }}}'
    "\n</tool_call>{%- endfor %}{%- endif %}<|im_end|>\n"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


def trl_chat_template(name: str) -> str:
    """The text of the chat template ``name`` that the installed trl ships (``trl/chat_templates/<name>.jinja``)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


def tokenizer_for(tokenizer, model_type: str):
    """``tokenizer``, or a copy of it with the chat template of ``model_type``'s hub tokenizer (see
    :data:`HUB_CHAT_TEMPLATES`)."""
    import copy

    if model_type not in HUB_CHAT_TEMPLATES:
        return tokenizer
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = trl_chat_template(HUB_CHAT_TEMPLATES[model_type])
    return tokenizer


def zen_lines() -> list[str]:
    """The 19 aphorisms of PEP 20, decoded from the standard library's ``this`` module (which prints on import)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import this
    text = codecs.decode(this.s, "rot13")
    return [line for line in text.splitlines()[2:] if line.strip()]


def gpt2_byte_alphabet() -> list[str]:
    """The 256 characters of byte-level BPE in GPT-2's order (byte ``b`` printed as itself when printable, else as
    ``chr(256 + k)``), which is also the order of ids 0-255 in Qwen's vocabulary: ``!`` is 0, ``\\n`` 198, space 220."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + k) for k in range(len(others))]


def _byte_level(text: str) -> str:
    """``text`` as byte-level BPE writes it (each UTF-8 byte as its character in :func:`gpt2_byte_alphabet`)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    order = printable + [b for b in range(256) if b not in printable]
    char_of_byte = dict(zip(order, gpt2_byte_alphabet(), strict=True))
    return "".join(char_of_byte[b] for b in text.encode())


def build_tokenizer(qwen_vocab: bool = False):
    """A byte-level BPE ``Qwen2Tokenizer`` trained in-process on the zen lines (about 410 tokens).

    ``<|im_start|>``, ``<|im_end|>`` and the vision tokens are special tokens; ``<think>``, ``<tool_call>`` and
    ``<tool_response>`` (and their closing tags) are added tokens that decoding keeps, as in Qwen2.5's and Qwen3's
    tokenizers.

    With ``qwen_vocab``, the vocabulary has Qwen's size and the ids TRL's tests hard-code: the byte alphabet at ids
    0-255 in GPT-2's order, the pieces of :data:`QWEN_PIECES` and the special tokens of :data:`QWEN_SPECIAL_IDS` at
    Qwen's ids, every other id an unmerged three-character piece; a 151k-row embedding makes training several times
    slower.
    """
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    corpus = zen_lines() * 4 + [string.printable, "What color is the sky? The sky is blue. 0123456789 + - * ="]
    bpe = Tokenizer(models.BPE())
    # With Qwen's vocabulary size, every position of a sequence costs a 151k-wide log-softmax on a CPU, so the
    # tool-calling prompts (a long system text listing the tools) must be short: merges there may cross words, and
    # the rendered tool prompts of Qwen's templates are in the corpus, so they take a few dozen tokens.
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=not qwen_vocab)
    if qwen_vocab:
        corpus += _tool_prompt_corpus() * 4
    trainer = trainers.BpeTrainer(
        vocab_size=4000 if qwen_vocab else 400,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    trained = sorted(bpe.get_vocab().items(), key=lambda item: item[1])
    merges = [tuple(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]
    if qwen_vocab:
        by_id = dict(enumerate(gpt2_byte_alphabet()))
        by_id.update({index: _byte_level(text) for index, text in QWEN_PIECES.items()})
        by_id.update({index: token for token, index in QWEN_SPECIAL_IDS.items()})
        size = max(by_id) + 1
        taken = set(by_id.values())
        free = (index for index in range(size) if index not in by_id)
        fillers = ("".join(chars) for chars in itertools.product(string.ascii_letters + string.digits, repeat=3))
        for piece in itertools.chain((token for token, _ in trained), fillers):
            if piece in taken:
                continue
            index = next(free, None)
            if index is None:
                break
            by_id[index] = piece
            taken.add(piece)
        vocab = {token: index for index, token in by_id.items()}
    else:
        vocab = dict(trained)
        for offset, token in enumerate(SPECIAL_TOKENS):
            vocab[token] = len(trained) + offset
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    special = [token for token in SPECIAL_TOKENS[1:] if token not in ADDED_TOKENS]
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in ADDED_TOKENS])
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    if qwen_vocab:  # keep the cross-word pre-tokenizer (a saved Qwen2Tokenizer would restore Qwen's word split)
        tokenizer._tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tokenizer.standin_generic_class = True
    return tokenizer


def _sample_tools():
    def multiply_tool(a: int, b: int) -> int:
        """
        Multiplies two integers.

        Args:
            a: The first integer.
            b: The second integer.
        """
        return a * b

    def increment(step: int) -> int:
        """
        Increments the counter.

        Args:
            step: The amount to add.
        """
        return step

    def shout(text: str) -> str:
        """
        Returns the text in upper case.

        Args:
            text: The text to shout.
        """
        return text.upper()

    return [multiply_tool, increment, shout]


def _tool_prompt_corpus() -> list[str]:
    """The prompts Qwen's chat templates (as trl ships them) render for a user turn with a few sample tools."""
    import jinja2
    from transformers.utils import get_json_schema

    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    environment.filters["tojson"] = lambda value, **kwargs: json.dumps(value, ensure_ascii=False, **kwargs)
    schemas = [get_json_schema(tool) for tool in _sample_tools()]
    texts = []
    for name in sorted(set(HUB_CHAT_TEMPLATES.values())):
        template = environment.from_string(trl_chat_template(name))
        for tools in [schemas[:1], schemas[1:2], schemas[2:], schemas]:
            messages = [{"role": "user", "content": "Beautiful is better than"}]
            texts.append(template.render(messages=messages, tools=tools, add_generation_prompt=True))
    return texts


def _tiny_config(model_type: str, tokenizer, **extra):
    from transformers import AutoConfig

    kwargs = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    kwargs.update(extra)
    return AutoConfig.for_model(model_type, **kwargs)


def _snapshot_dir(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in a hub cache, with ``refs/main`` pointing at it."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(f"{repo_id}:{BUILD_VERSION}".encode()).hexdigest()
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    snapshot.mkdir(parents=True)
    return snapshot


def _save(model, tokenizer, directory: Path, generation: bool = True) -> None:
    model.config._name_or_path = str(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    if getattr(tokenizer, "standin_generic_class", False):  # load it with its own pre-tokenizer (see build_tokenizer)
        config_path = directory / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        config["tokenizer_class"] = "TokenizersBackend"
        config_path.write_text(json.dumps(config, indent=2))
    if generation:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.save_pretrained(directory)


REMOTE_CONFIG_CODE = """from transformers import Qwen2Config


class RemoteConfig(Qwen2Config):
    model_type = "remote"
"""

REMOTE_MODEL_CODE = """from transformers import Qwen2ForCausalLM

from .configuration_remote import RemoteConfig


class RemoteForCausalLM(Qwen2ForCausalLM):
    config_class = RemoteConfig
"""


def build_hub_cache(cache: Path, qwen_vocab: bool = False, log=print) -> dict[str, str]:
    """Write every stand-in model into the hub cache ``cache``; returns ``{repo_id: "ok" | error}``.

    ``qwen_vocab``: see :func:`build_tokenizer`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(qwen_vocab)
    qwen_tokenizer = tokenizer if qwen_vocab else build_tokenizer(qwen_vocab=True)
    status: dict[str, str] = {}

    def attempt(repo_id, build):
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(hashlib.sha1(repo_id.encode()).hexdigest()[:8], 16))
                build(_snapshot_dir(cache, repo_id))
            status[repo_id] = "ok"
        except Exception as error:  # a stand-in we cannot build: the tests that need it fail in both runs
            status[repo_id] = f"{type(error).__name__}: {error}"[:300]
            shutil.rmtree(cache / ("models--" + repo_id.replace("/", "--")), ignore_errors=True)
        log(f"  {repo_id}: {status[repo_id]}")

    for repo_id, (model_type, extra) in CAUSAL_LMS.items():

        def build(directory, repo_id=repo_id, model_type=model_type, extra=extra):
            vocab = qwen_tokenizer if repo_id in QWEN_VOCAB_MODELS else tokenizer
            model = AutoModelForCausalLM.from_config(_tiny_config(model_type, vocab, **extra))
            _save(model, tokenizer_for(vocab, model_type), directory)

        attempt(repo_id, build)

    for repo_id, model_type in REWARD_MODELS.items():

        def build(directory, model_type=model_type):
            config = _tiny_config(model_type, tokenizer, num_labels=1)
            model = AutoModelForSequenceClassification.from_config(config)
            _save(model, tokenizer_for(tokenizer, model_type), directory, generation=False)

        attempt(repo_id, build)

    def build_remote(directory):
        (directory / "configuration_remote.py").write_text(REMOTE_CONFIG_CODE)
        (directory / "modeling_remote.py").write_text(REMOTE_MODEL_CODE)
        config = _tiny_config("qwen2", tokenizer)
        config_dict = config.to_dict()
        config_dict.update(
            model_type="remote",
            architectures=["RemoteForCausalLM"],
            auto_map={
                "AutoConfig": "configuration_remote.RemoteConfig",
                "AutoModelForCausalLM": "modeling_remote.RemoteForCausalLM",
            },
        )
        model = AutoModelForCausalLM.from_config(config)
        model.save_pretrained(directory)
        (directory / "config.json").write_text(json.dumps(config_dict, indent=2))
        tokenizer.save_pretrained(directory)

    attempt(REMOTE_CODE_MODEL, build_remote)

    return status


# ---------------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------------

DATASET_IDS = ("trl-internal-testing/zen", "trl-internal-testing/zen-image", "trl-internal-testing/zen-multi-image")


# Words kept of each aphorism: the first twelve as in TRL's zen prompts (its tests compare them: "Beautiful is
# better than", "Explicit is", ...), the rest our choice.
ZEN_PROMPT_WORDS = [4, 2, 3, 1, 4, 3, 1, 4, 3, 3, 2, 6, 3, 5, 4, 2, 3, 4, 3]


def _zen_prompts() -> list[str]:
    """The first words of each aphorism ("Beautiful is better than"), as TRL's zen prompts are."""
    return [" ".join(line.split()[:words]) for line, words in zip(zen_lines(), ZEN_PROMPT_WORDS, strict=True)]


def _image(seed: int, size: int = 32):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))


def build_datasets(root: Path) -> None:
    """Save ``zen`` (``standard_prompt_only``, ``conversational_prompt_only``), ``zen-image`` and ``zen-multi-image``
    (``conversational_prompt_only``), each with a 17-row ``train`` and a 2-row ``test`` split, under ``root``."""
    from datasets import Dataset, DatasetDict, Features, Image, List, Value, disable_progress_bars

    disable_progress_bars()
    root = Path(root)
    prompts = _zen_prompts()
    splits = {"train": prompts[:17], "test": prompts[17:19]}

    def save(name, config, make):
        DatasetDict({split: make(rows, split) for split, rows in splits.items()}).save_to_disk(
            root / name.split("/")[-1] / config
        )

    save("zen", "standard_prompt_only", lambda rows, _: Dataset.from_dict({"prompt": rows}))
    save(
        "zen",
        "conversational_prompt_only",
        lambda rows, _: Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in rows]}),
    )
    rng = random.Random(0)
    questions = ["What is in the image?", "Describe the image.", "What color dominates?", "Is this a cat?"]

    def image_rows(rows, split, images_per_row):
        offset = 0 if split == "train" else 100
        prompt = [
            [{"role": "user", "content": [{"type": "image", "text": None}] * images_per_row + [text_part()]}]
            for _ in rows
        ]
        message = {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
        if images_per_row == 1:
            images = [_image(offset + i) for i in range(len(rows))]
            features = Features({"prompt": List(message), "image": Image()})
            return Dataset.from_dict({"prompt": prompt, "image": images}, features=features)
        images = [[_image(offset + 10 * i + k) for k in range(images_per_row)] for i in range(len(rows))]
        features = Features({"prompt": List(message), "images": List(Image())})
        return Dataset.from_dict({"prompt": prompt, "images": images}, features=features)

    def text_part():
        return {"type": "text", "text": rng.choice(questions)}

    save("zen-image", "conversational_prompt_only", lambda rows, split: image_rows(rows, split, 1))
    save("zen-multi-image", "conversational_prompt_only", lambda rows, split: image_rows(rows, split, 2))


def shim_import_utils() -> None:
    """Let ``from trl.import_utils import is_<package>_available`` succeed for helpers the installed trl dropped.

    TRL's test utilities at a given commit import the availability checks of that commit; a helper the installed
    trl no longer has is answered by whether ``<package>`` is importable (a module-level ``__getattr__``).
    """
    import importlib.util

    import trl.import_utils as import_utils

    def missing(name):
        if name.startswith("is_") and name.endswith("_available"):
            package = name[len("is_") : -len("_available")]
            return lambda *args, **kwargs: importlib.util.find_spec(package) is not None
        raise AttributeError(f"module 'trl.import_utils' has no attribute {name!r}")

    if not hasattr(import_utils, "__getattr__"):
        import_utils.__getattr__ = missing


def patched_load_dataset(original, root: Path):
    """A ``load_dataset`` that serves the saved stand-ins for :data:`DATASET_IDS` and calls ``original`` otherwise."""
    from datasets import DatasetDict, IterableDatasetDict, load_from_disk

    root = Path(root)

    def load_dataset(path, name=None, *args, split=None, streaming=False, **kwargs):
        if path not in DATASET_IDS:
            return original(path, name, *args, split=split, streaming=streaming, **kwargs)
        config = name or kwargs.pop("data_dir", None) or "standard_prompt_only"
        folder = root / path.split("/")[-1] / config
        if not folder.exists():
            raise FileNotFoundError(f"no local stand-in for dataset {path!r} config {config!r} ({folder})")
        full = load_from_disk(str(folder))
        if streaming:
            full = IterableDatasetDict({key: value.to_iterable_dataset() for key, value in full.items()})
        if split is not None:
            return full[split]
        return full if streaming else DatasetDict(full)

    return load_dataset
