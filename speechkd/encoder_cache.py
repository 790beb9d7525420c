"""The encoder cache: the contract between pseudo-labelling (which may fill it) and distillation (which reads it).

A frozen encoder gives the same output for an utterance every time, so it runs once per utterance and its
output is kept. An entry is one utterance's dict `{"duration": seconds, "encoder_states" | "features" |
"teacher_states": float16 tensor}`, stored as `KEY.pt` (KEY = `audio_key` of the audio path) in the folder
`encoder_cache_folder(root, encoders...)`, which is named by the encoders' weights, so that a changed encoder
never reads a stale entry. Commands name the root `--encoder-cache-dir`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm


def encoder_entry(duration: float, **tensors: torch.Tensor) -> dict:
    """One utterance's cache entry: its duration and its tensors, as float16 on the CPU."""
    return {"duration": float(duration), **{name: t.half().cpu().clone() for name, t in tensors.items()}}


def audio_key(path: str) -> str:
    """A cache key for an audio file: its path, size and modification time (so edited audio is re-encoded)."""
    try:
        stat = os.stat(path)
        signature = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    except OSError:
        signature = f"{path}|missing"
    return hashlib.sha1(signature.encode()).hexdigest()[:24]


class UtteranceCache:
    """Per-utterance tensors computed by frozen models: one file per utterance in a folder, or a dict."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.memory: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def __contains__(self, key: str) -> bool:
        if self.folder is None:
            return key in self.memory
        return (self.folder / f"{key}.pt").exists()

    def get(self, key: str) -> dict:
        if self.folder is None:
            return self.memory[key]
        return torch.load(self.folder / f"{key}.pt", weights_only=True)

    def duration(self, key: str) -> float:
        """An entry's duration without reading its tensors (the file is memory-mapped, not loaded)."""
        if self.folder is None:
            return float(self.memory[key]["duration"])
        return float(torch.load(self.folder / f"{key}.pt", weights_only=True, mmap=True)["duration"])

    def put(self, key: str, entry: dict) -> None:
        if self.folder is None:
            self.memory[key] = entry
            return
        temp = self.folder / f".{key}.{os.getpid()}.tmp"
        torch.save(entry, temp)
        os.replace(temp, self.folder / f"{key}.pt")

    def mark_failed(self, key: str, message: str) -> None:
        self.errors[key] = message
        if self.folder is not None:
            (self.folder / f"{key}.failed").write_text(message, encoding="utf-8")

    def failure(self, key: str) -> str | None:
        if key in self.errors or self.folder is None:
            return self.errors.get(key)
        path = self.folder / f"{key}.failed"
        return path.read_text(encoding="utf-8") if path.exists() else None


def fingerprint(*parts: torch.nn.Module | str) -> str:
    """A short hash of model weights (a sample of every tensor) and settings, naming a cache folder."""
    digest = hashlib.sha1()
    for part in parts:
        if isinstance(part, str):
            digest.update(part.encode())
            continue
        for p in part.parameters():
            digest.update(p.detach().flatten()[:4096].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def encoder_cache_folder(root: Path, *parts: torch.nn.Module | str) -> Path:
    """The encoder cache folder under ROOT for these encoders (or settings): shared by pseudo-label and distill."""
    return Path(root) / f"encoder-{fingerprint(*parts)}"


def fill_cache(
    examples: Sequence,
    cache: UtteranceCache,
    compute: Callable[[Sequence, list], list[dict]],
    load: Callable[[Sequence], tuple[list, list, dict[str, str]]],
    batch_size: int,
    desc: str,
    progress: bool = True,
) -> None:
    """Run COMPUTE on every example (with `.key`) whose entry is missing; LOAD gives (loaded, audios, errors).

    Unreadable audio is recorded as failed, not raised.
    """
    todo = list({e.key: e for e in examples if e.key not in cache and cache.failure(e.key) is None}.values())
    bar = tqdm(total=len(todo), desc=desc, unit="utt", disable=not progress or not todo)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        loaded, audios, errors = load(chunk)
        for key, message in errors.items():
            cache.mark_failed(key, message)
        if loaded:
            for example, entry in zip(loaded, compute(loaded, audios)):
                cache.put(example.key, entry)
        bar.update(len(chunk))
    bar.close()
