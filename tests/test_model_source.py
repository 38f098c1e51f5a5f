"""Where the model comes from: resolution order, cache stamps, assembly from chunk packages, GGUF checks.

Unit logic runs on small fake chunk packages (a few KB, made in tmp_path and put on sys.path); one test
resolves the real embedded model.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from lsp_verify.model import source
from lsp_verify.model.source import (
    CorruptModel,
    EmbeddedModel,
    ModelFile,
    ModelNotFound,
    check_gguf,
    resolve_model,
)

# ----------------------------------------------------------------------------------------------- helpers


def gguf_bytes(
    *, version: int = 3, tensors: list[tuple[str, int, int]] | None = None, kv: dict[str, str] | None = None
) -> bytes:
    """A small valid GGUF: string metadata, and F32 tensors given as (name, n_elements, offset)."""
    tensors = tensors or []
    kv = kv or {"general.architecture": "toy"}
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv)))
    for key, value in kv.items():
        out += struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", 8)
        out += struct.pack("<Q", len(value)) + value.encode()
    for name, n, offset in tensors:
        out += struct.pack("<Q", len(name)) + name.encode() + struct.pack("<IQIQ", 1, n, 0, offset)
    if tensors:
        out += b"\0" * (-len(out) % 32)
        out += b"\0" * max(offset + 4 * n for _, n, offset in tensors)
    return bytes(out)


def write_gguf(path: Path, **kwargs: object) -> Path:
    path.write_bytes(gguf_bytes(**kwargs))  # type: ignore[arg-type]
    return path


class FakeChunks:
    """Three tiny chunk packages on sys.path standing in for the embedded model."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.parts = [os.urandom(5000 + 1000 * i) for i in range(3)]
        self.blob = b"".join(self.parts)
        self.packages = tuple(f"{prefix}{i}" for i in range(1, 4))
        for i, (package, data) in enumerate(zip(self.packages, self.parts, strict=True)):
            (root / package / "data").mkdir(parents=True)
            (root / package / "__init__.py").write_text("")
            (root / package / "data" / f"part{i + 1:02d}.bin").write_bytes(data)
        self.model = EmbeddedModel(
            name=source.DEFAULT_EMBEDDED,
            description="fake model",
            distributions=tuple(f"{p.replace('_', '-')}==1.0" for p in self.packages),
            packages=self.packages,
            size=len(self.blob),
            sha256=hashlib.sha256(self.blob).hexdigest(),
            filename="fake.gguf",
        )


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> FakeChunks:
    root = tmp_path / "site"
    # A unique prefix per test: the import system caches package locations by name.
    chunks = FakeChunks(root, f"fakechunks_{abs(hash(request.node.nodeid)) % 10**8}_part")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setitem(source.EMBEDDED_MODELS, source.DEFAULT_EMBEDDED, chunks.model)
    return chunks


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------------------------- order


def test_assembles_from_chunks_then_uses_the_cache(fake: FakeChunks, cache: Path) -> None:
    messages: list[str] = []
    first = resolve_model(env={}, cache_dir=cache, progress=messages.append)
    assert first.origin == "assembled"
    assert first.sha256_verified
    assert first.path.read_bytes() == fake.blob
    assert first.size == len(fake.blob)
    assert any("chunk 3/3" in m for m in messages)
    assert leftovers(cache) == []

    second = resolve_model(env={}, cache_dir=cache)
    assert (second.origin, second.path, second.sha256_verified) == ("cache", first.path, True)


def test_cached_model_is_not_rehashed_while_the_stamp_matches(
    fake: FakeChunks, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve_model(env={}, cache_dir=cache)

    def no_hashing(path: Path) -> str:
        raise AssertionError("the stamp should have spared re-hashing")

    monkeypatch.setattr(source, "_sha256_file", no_hashing)
    assert resolve_model(env={}, cache_dir=cache).origin == "cache"


def test_stale_stamp_rehashes_and_damaged_cache_is_rebuilt(fake: FakeChunks, cache: Path) -> None:
    path = resolve_model(env={}, cache_dir=cache).path
    os.utime(path, ns=(1, 1))  # touched: the stamp no longer vouches for it, hashing does
    assert resolve_model(env={}, cache_dir=cache).origin == "cache"

    damaged = bytearray(fake.blob)
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, wrong bytes, new mtime
    again = resolve_model(env={}, cache_dir=cache)
    assert again.origin == "assembled"
    assert again.path.read_bytes() == fake.blob


def test_explicit_beats_env_beats_cache(fake: FakeChunks, cache: Path, tmp_path: Path) -> None:
    resolve_model(env={}, cache_dir=cache)  # a cached model exists
    explicit = write_gguf(tmp_path / "explicit.gguf")
    from_env = write_gguf(tmp_path / "env.gguf")
    env = {"LSP_VERIFY_MODEL": str(from_env)}

    got = resolve_model(explicit, env=env, cache_dir=cache)
    assert (got.path, got.origin, got.sha256_verified) == (explicit.resolve(), "explicit", False)
    got = resolve_model(None, env=env, cache_dir=cache)
    assert (got.path, got.origin) == (from_env.resolve(), "env")
    got = resolve_model(None, env={"LSP_VERIFY_MODEL": ""}, cache_dir=cache)
    assert got.origin == "cache"
    got = resolve_model("embedded:0.5b", env=env, cache_dir=cache)
    assert got.origin == "cache"


def test_cache_dir_comes_from_env(fake: FakeChunks, tmp_path: Path) -> None:
    got = resolve_model(env={"LSP_VERIFY_CACHE": str(tmp_path / "c1")})
    assert got.path.parent == tmp_path / "c1"
    got = resolve_model(env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert got.path.parent == tmp_path / "xdg" / "lsp-verify" / "models"


def test_named_path_that_is_missing_or_not_gguf_is_an_error(
    fake: FakeChunks, cache: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve_model(tmp_path / "nope.gguf", env={}, cache_dir=cache)
    with pytest.raises(ModelNotFound, match=r"LSP_VERIFY_MODEL.*does not exist"):
        resolve_model(env={"LSP_VERIFY_MODEL": str(tmp_path / "nope.gguf")}, cache_dir=cache)
    not_gguf = tmp_path / "model.safetensors"
    not_gguf.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + b"\0" * 64)
    with pytest.raises(CorruptModel, match="not a GGUF"):
        resolve_model(not_gguf, env={}, cache_dir=cache)
    with pytest.raises(ModelNotFound, match="unknown embedded model"):
        resolve_model("embedded:70b", env={}, cache_dir=cache)


def test_nothing_found_lists_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = EmbeddedModel(
        source.DEFAULT_EMBEDDED,
        "fake",
        ("no-such-chunk-pkg1==1.0",),
        ("no_such_chunk_pkg1",),
        10,
        "0" * 64,
        "x.gguf",
    )
    monkeypatch.setitem(source.EMBEDDED_MODELS, source.DEFAULT_EMBEDDED, missing)
    with pytest.raises(ModelNotFound) as info:
        resolve_model(env={}, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "model path: not set" in message
    assert "LSP_VERIFY_MODEL: not set" in message
    assert str(tmp_path / "cache" / "x.gguf") in message
    assert "no_such_chunk_pkg1" in message and "not installed" in message
    assert "pip install 'lsp-verify[model]'" in message
    assert "LSP_VERIFY_MODEL" in message.split("Fix:")[1]


def test_damaged_chunks_are_reported_and_leave_no_file(fake: FakeChunks, cache: Path) -> None:
    chunk = source._package_dir(fake.packages[1])
    assert chunk is not None
    data = bytearray((chunk / "data" / "part02.bin").read_bytes())
    data[0] ^= 0xFF
    (chunk / "data" / "part02.bin").write_bytes(bytes(data))
    with pytest.raises(CorruptModel, match="force-reinstall"):
        resolve_model(env={}, cache_dir=cache)
    assert not (cache / "fake.gguf").exists()
    assert leftovers(cache) == []


def test_wrong_chunk_sizes_are_a_clear_not_found(fake: FakeChunks, cache: Path) -> None:
    chunk = source._package_dir(fake.packages[2])
    assert chunk is not None
    (chunk / "data" / "part03.bin").write_bytes(b"short")
    with pytest.raises(ModelNotFound, match="chunks add up to"):
        resolve_model(env={}, cache_dir=cache)


# ----------------------------------------------------------------------------------------------- concurrency


def test_concurrent_threads_yield_one_verified_file(fake: FakeChunks, cache: Path) -> None:
    barrier = threading.Barrier(4)
    results: list[ModelFile] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(resolve_model(env={}, cache_dir=cache))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(r.origin for r in results) == ["assembled", "cache", "cache", "cache"]
    assert {r.path for r in results} == {cache / "fake.gguf"}
    assert (cache / "fake.gguf").read_bytes() == fake.blob
    assert leftovers(cache) == []


def test_concurrent_processes_yield_one_verified_file(fake: FakeChunks, cache: Path, tmp_path: Path) -> None:
    spec = tuple(fake.model.__dict__.values())
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {[str(tmp_path / "site"), *sys.path]!r}
        from lsp_verify.model import source
        source.EMBEDDED_MODELS[source.DEFAULT_EMBEDDED] = source.EmbeddedModel(*{spec!r})
        print(source.resolve_model(env={{}}, cache_dir=source.Path({str(cache)!r})).origin)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    origins = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert origins == ["assembled", "cache", "cache"]
    assert (cache / "fake.gguf").read_bytes() == fake.blob
    assert leftovers(cache) == []


# ----------------------------------------------------------------------------------------------- GGUF checks


def test_check_gguf_accepts_a_valid_file(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "ok.gguf", tensors=[("a", 16, 0), ("b", 8, 64)])
    info = check_gguf(path)
    assert (info.version, info.n_tensors, info.n_kv) == (3, 2, 1)
    assert info.data_end == info.file_size
    assert info.metadata["general.architecture"] == "toy"


def test_bad_magic_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"GGML" + gguf_bytes()[4:])
    with pytest.raises(CorruptModel, match=r"not a GGUF model \(starts with b'GGML'"):
        check_gguf(path)


def test_truncated_tensor_data_is_corrupt(tmp_path: Path) -> None:
    whole = gguf_bytes(tensors=[("a", 1000, 0)])
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole[:-10])
    with pytest.raises(CorruptModel, match="truncated: its tensors need"):
        check_gguf(path)


def test_truncated_header_is_corrupt(tmp_path: Path) -> None:
    whole = gguf_bytes(kv={"general.name": "x" * 200})
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole[:100])
    with pytest.raises(CorruptModel, match=r"truncated: the header ends inside general\.name"):
        check_gguf(path)


def test_implausible_header_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "huge.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 1) + b"\0" * 64)
    with pytest.raises(CorruptModel, match="implausible"):
        check_gguf(path)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 99, 0, 0))
    with pytest.raises(CorruptModel, match="unsupported GGUF version 99"):
        check_gguf(path)
    path.write_bytes(b"GGUF")
    with pytest.raises(CorruptModel, match="only 4 bytes"):
        check_gguf(path)


# ------------------------------------------------------------------------------------------- the real model


@pytest.mark.model
def test_real_embedded_model_resolves_verified(model_file: ModelFile) -> None:
    assert model_file.sha256_verified
    assert model_file.size == 491_400_064
    assert model_file.origin in ("cache", "assembled")
    info = check_gguf(model_file.path)
    assert info.data_end == info.file_size  # every tensor type known: the exact end is the file's end
    assert info.metadata["general.architecture"] == "qwen2"
    assert info.has_fim_tokens


@pytest.mark.model
def test_real_model_cut_short_is_reported_as_truncated(model_file: ModelFile, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with open(model_file.path, "rb") as src:
        cut.write_bytes(src.read(8 << 20))
    with pytest.raises(CorruptModel, match="truncated"):
        check_gguf(cut)
