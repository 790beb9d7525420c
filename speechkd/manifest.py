"""JSONL manifests: read (validated, errors with line numbers), write (atomic), HF datasets adapter."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from speechkd.files import atomic_open
from speechkd.paths import speechkd_home

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".au", ".webm")
_STRING_FIELDS = ("id", "text", "speaker", "language")
# How embedded audio bytes begin, to name the cached file when the dataset kept no file name.
_MAGIC_SUFFIXES = {b"RIFF": ".wav", b"fLaC": ".flac", b"OggS": ".ogg", b"ID3": ".mp3", b"\xff\xfb": ".mp3"}


class ManifestError(ValueError):
    """A manifest or dataset is unusable; the message names the file, the 1-based line and the cause."""

    def __init__(self, path: str | os.PathLike, cause: str, line: int | None = None):
        self.path, self.cause, self.line = str(path), cause, line
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {cause}")

    def __reduce__(self):  # keeps the error picklable across worker processes
        return ManifestError, (self.path, self.cause, self.line)


# ---------------------------------------------------------------------------- reading


def check_manifest_file(path: str | os.PathLike) -> Path:
    """The manifest's path; a ManifestError when it is missing or not a file."""
    manifest = Path(path)
    if not manifest.is_file():
        cause = "not a file" if manifest.exists() else "manifest not found; check the path"
        raise ManifestError(manifest, cause)
    return manifest


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read and validate a JSONL manifest; `id` is filled in and `audio` made absolute."""
    manifest = check_manifest_file(path)
    folder = os.path.abspath(manifest.parent)
    records: list[dict[str, Any]] = []
    line_of_id: dict[str, int] = {}
    with manifest.open("rb") as lines:
        for line_number, raw_line in enumerate(lines, start=1):
            record = _parse_line(manifest, line_number, raw_line)
            if record is None:
                continue
            record_id = record.setdefault("id", os.path.splitext(record["audio"])[0])
            if record_id in line_of_id:
                cause = f"duplicate id {record_id!r} (first used on line {line_of_id[record_id]})"
                raise ManifestError(manifest, cause, line_number)
            line_of_id[record_id] = line_number
            record["audio"] = os.path.abspath(os.path.join(folder, record["audio"]))
            records.append(record)
    return records


def _parse_line(manifest: Path, line_number: int, raw_line: bytes) -> dict[str, Any] | None:
    def fail(cause: str) -> ManifestError:
        return ManifestError(manifest, cause, line_number)

    try:
        line = raw_line.decode("utf-8-sig" if line_number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        raise fail(f"not valid UTF-8 ({error})") from error
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise fail(f"invalid JSON ({error.msg} at column {error.colno})") from error
    if not isinstance(record, dict):
        raise fail(f"expected a JSON object, got {type(record).__name__}")
    if "audio" not in record:
        raise fail("missing required field 'audio'")
    if not isinstance(record["audio"], str) or not record["audio"].strip():
        raise fail(f"'audio' must be a non-empty string, got {record['audio']!r}")
    for field in _STRING_FIELDS:
        if field in record and not isinstance(record[field], str):
            raise fail(f"{field!r} must be a string, got {type(record[field]).__name__} {record[field]!r}")
    if "id" in record and not record["id"].strip():
        raise fail(f"'id' must not be empty or blank, got {record['id']!r}")
    if "duration" in record and not _is_duration(record["duration"]):
        raise fail(f"'duration' must be a number of seconds >= 0, got {record['duration']!r}")
    return record


def _is_duration(value: Any) -> bool:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return is_number and math.isfinite(value) and value >= 0


# ---------------------------------------------------------------------------- writing


def write_manifest(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Atomically write records as JSONL, audio paths relative to the manifest's folder where sensible."""
    manifest = Path(path)
    folder = os.path.abspath(manifest.parent)
    with atomic_open(manifest, "w") as out:
        for index, record in enumerate(records):
            audio = record.get("audio")
            if not isinstance(audio, (str, os.PathLike)):
                raise ManifestError(manifest, f"record {index} (id {record.get('id')!r}) has no 'audio' path")
            line = {**record, "audio": _portable_path(os.fspath(audio), folder)}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def _portable_path(audio: str, folder: str) -> str:
    # Relative paths let a manifest travel with its audio; paths sharing nothing with the manifest's
    # folder but the filesystem root read (and move) better as absolute ones.
    absolute = os.path.abspath(audio)
    try:
        shared = os.path.commonpath([absolute, folder])
        relative = os.path.relpath(absolute, folder)
    except ValueError:  # different drives on Windows
        return absolute
    return absolute if os.path.dirname(shared) == shared else relative


# ---------------------------------------------------------------------------- Hugging Face datasets


def records_from_dataset(
    source: str | os.PathLike,
    split: str | None = None,
    audio_column: str = "audio",
    text_column: str | None = "text",
    id_column: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    speaker_column: str | None = None,
) -> list[dict[str, Any]]:
    """Manifest records from a save_to_disk folder, a parquet folder, an audiofolder or a hub dataset."""
    from datasets import Audio

    source = os.fspath(source)
    dataset = _load_dataset(source, split)
    wanted = list(dict.fromkeys(c for c in (audio_column, text_column, id_column, speaker_column) if c))
    missing = [column for column in wanted if column not in dataset.column_names]
    if missing:
        cause = f"no column {', '.join(map(repr, missing))}; available columns: {dataset.column_names}"
        raise ManifestError(source, f"{cause}; choose others with audio_column/text_column/id_column")
    # decode=False hands back {"path", "bytes"} as stored, so no audio decoder (torchcodec) is needed.
    dataset = dataset.select_columns(wanted).cast_column(audio_column, Audio(decode=False))
    audio_dir = Path(cache_dir) if cache_dir else _default_cache_dir(source, split)
    records: list[dict[str, Any]] = []
    row_of_id: dict[str, int] = {}
    for row_index, row in enumerate(tqdm(dataset, desc=f"reading {source}", unit="utt")):
        record_id = _row_id(row, row_index, audio_column, id_column)
        if record_id in row_of_id:
            cause = f"rows {row_of_id[record_id]} and {row_index} share the id {record_id!r}"
            raise ManifestError(source, f"{cause}; name a column of unique ids with id_column")
        row_of_id[record_id] = row_index
        record = {"id": record_id, "audio": _audio_file(row[audio_column], record_id, source, audio_dir)}
        for column, field in ((text_column, "text"), (speaker_column, "speaker")):
            if column and row[column] is not None:
                record[field] = str(row[column])
        records.append(record)
    return records


def _load_dataset(source: str, split: str | None):
    import datasets

    folder = Path(source)
    if not folder.is_dir():
        try:  # hub datasets; the datasets library itself honours HF_HUB_OFFLINE
            loaded = datasets.load_dataset(source, split=split)
        except Exception as error:
            cause = f"not a local folder, and loading it from the Hugging Face hub failed: {error}"
            advice = "check the name and the network; with HF_HUB_OFFLINE=1 only cached datasets load"
            raise ManifestError(source, f"{cause}; {advice}") from error
    elif any((folder / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json")):
        loaded = datasets.load_from_disk(source)
    elif any(folder.rglob("*.parquet")):
        loaded = datasets.load_dataset("parquet", data_dir=source)
    else:
        return _load_audiofolder(folder, split)
    if isinstance(loaded, datasets.DatasetDict):
        if split is None and len(loaded) == 1:
            split = next(iter(loaded))
        if split not in loaded:
            asked = "no split chosen" if split is None else f"split {split!r} not found"
            raise ManifestError(source, f"{asked}; choose one of {list(loaded)}")
        return loaded[split]
    return loaded


def _load_audiofolder(folder: Path, split: str | None):
    # The `audiofolder` builder encodes audio through torchcodec, so its layout is read here instead:
    # metadata.csv/metadata.jsonl with a `file_name` column, or else every audio file in the folder.
    from datasets import Dataset

    root = folder / split if split and (folder / split).is_dir() else folder
    for metadata in (root / "metadata.jsonl", root / "metadata.csv"):
        if metadata.is_file():
            with metadata.open(encoding="utf-8", newline="") as lines:
                if metadata.suffix == ".csv":
                    rows = list(csv.DictReader(lines))
                else:
                    rows = [json.loads(line) for line in lines if line.strip()]
            if not rows or "file_name" not in rows[0]:
                raise ManifestError(metadata, "an audiofolder metadata file needs a 'file_name' column")
            return Dataset.from_list([{"audio": str(root / row.pop("file_name")), **row} for row in rows])
    audio_files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not audio_files:
        cause = "no dataset here: no save_to_disk files, parquet files, audiofolder metadata or audio files"
        raise ManifestError(folder, cause)
    return Dataset.from_dict({"audio": audio_files})


def _row_id(row: dict[str, Any], row_index: int, audio_column: str, id_column: str | None) -> str:
    if id_column:
        return str(row[id_column])
    path = row[audio_column].get("path")
    return Path(path).stem if path else f"{row_index:08d}"


def _audio_file(audio: dict[str, Any], record_id: str, source: str, audio_dir: Path) -> str:
    path, data = audio.get("path"), audio.get("bytes")
    if path and os.path.isfile(path):
        return os.path.abspath(path)
    if data is None:
        raise ManifestError(source, f"utterance {record_id!r}: audio {path!r} is neither a file nor bytes")
    target = audio_dir / f"{_safe_file_name(record_id)}{_audio_suffix(path, data)}"
    if not (target.is_file() and target.stat().st_size == len(data)):  # written once, reused after
        with atomic_open(target, "wb") as out:
            out.write(data)
    return os.path.abspath(target)


def _audio_suffix(path: str | None, data: bytes) -> str:
    suffix = Path(path).suffix.lower() if path else ""
    if suffix in AUDIO_EXTENSIONS:
        return suffix
    if data[4:8] == b"ftyp":
        return ".m4a"
    return next((ext for magic, ext in _MAGIC_SUFFIXES.items() if data.startswith(magic)), ".bin")


def _safe_file_name(name: str) -> str:
    safe = re.sub(r"[^\w.-]+", "_", name).lstrip(".") or "_"
    # Two ids that clean up to the same name must not share a file.
    return safe if safe == name else f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _default_cache_dir(source: str, split: str | None) -> Path:
    home = speechkd_home()
    if Path(source).is_dir():  # the hash keeps same-named folders apart
        absolute = os.path.abspath(source)
        name = f"{Path(absolute).name}-{hashlib.sha1(absolute.encode()).hexdigest()[:8]}"
    else:
        name = source.replace("/", "--")
    return home / "datasets" / _safe_file_name(name) / (split or "all")


def combine_manifests(
    paths: Iterable[str | os.PathLike], n: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """Records of several manifests together, optionally N of them drawn at random (kept in input order)."""
    records: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in paths:
        for record in read_manifest(path):
            if record["id"] in seen:
                raise ManifestError(path, f"id {record['id']!r} also appears in {seen[record['id']]}")
            seen[record["id"]] = str(path)
            records.append(record)
    if n is not None and n < len(records):
        keep = sorted(random.Random(seed).sample(range(len(records)), n))
        records = [records[i] for i in keep]
    return records
