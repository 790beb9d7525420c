"""Writing files so that a crash never leaves half of one: atomic writes, staged model folders, versions."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, Any

PROVENANCE_FILE = "speechkd.json"  # what a model folder is and where it came from


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text so that readers see the old file or the new one, never half of one."""
    with atomic_open(Path(path), "w") as out:
        out.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Atomically write `obj` as pretty-printed UTF-8 JSON."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_open(path: Path, mode: str) -> Iterator[IO[Any]]:
    """A file handle on a temporary sibling of PATH, moved onto PATH when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    text_options = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
    try:
        with open(temp_path, mode.replace("w", "x"), **text_options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_dir(target: Path, replace: bool = True) -> Iterator[Path]:
    """A staging folder beside TARGET that becomes TARGET when the block ends without error.

    REPLACE=False keeps a TARGET that another process finished first (the staged copy is dropped).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        if target.exists() and not replace:
            return
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_provenance(folder: Path, provenance: dict) -> None:
    (Path(folder) / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")


def save_model_dir(model, processor, target: str | os.PathLike, provenance: dict) -> Path:
    """Write a transformers checkpoint (model, processor, speechkd.json) into TARGET, replacing it atomically."""
    with staged_dir(Path(target)) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        write_provenance(staging, provenance)
    return Path(target)


def package_versions(packages: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each package (None when absent), and Python's."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found
