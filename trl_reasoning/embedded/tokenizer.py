"""The embedded character-level tokenizer, and loading a saved one as it was saved."""

from __future__ import annotations

import string


SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]
CHARACTERS = list(string.digits + string.ascii_letters + string.punctuation + " \n")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer():
    """A character-level ``PreTrainedTokenizerFast`` with a chat template (pad ``<|pad|>``, eos ``<|im_end|>``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        bos_token=None,
        unk_token="?",
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.padding_side = "left"
    return tokenizer


def load_pretrained_tokenizer(name_or_path: str, **kwargs):
    """``AutoTokenizer.from_pretrained``, except that a directory holding a plain ``tokenizers`` tokenizer (the
    embedded character tokenizer, saved with a model) is loaded as it was saved.

    transformers 5 rebuilds such a tokenizer as the model type's own class (``Qwen2Tokenizer`` next to a Qwen2
    ``config.json``), which drops the character tokenizer's newline tokens: the model trained on one encoding would
    be evaluated on another. Hub ids and directories of other tokenizers go to ``AutoTokenizer`` unchanged.
    """
    import json
    from pathlib import Path

    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    config = Path(name_or_path) / "tokenizer_config.json"
    if config.is_file() and (Path(name_or_path) / "tokenizer.json").is_file():
        saved_class = json.loads(config.read_text()).get("tokenizer_class")
        if saved_class in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return PreTrainedTokenizerFast.from_pretrained(name_or_path, **kwargs)
    return AutoTokenizer.from_pretrained(name_or_path, **kwargs)
