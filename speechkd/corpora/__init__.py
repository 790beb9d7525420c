"""Bundled demo corpora: real speech unpacked from Debian packages, written as audio files + manifests."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from speechkd.files import atomic_write_text

MARKER_NAME = "corpus.json"  # written last by `prepare`: its presence means the folder is complete


class CorpusError(RuntimeError):
    """A corpus could not be obtained, unpacked, parsed or written; the message says which file and why."""


@dataclass(frozen=True)
class Corpus:
    """A bundled corpus: where its speech comes from and the manifests `prepare` writes."""

    name: str
    debian_package: str
    splits: tuple[str, ...]
    description: str
    module: str  # submodule of speechkd.corpora with `prepare(output_dir, deb, overwrite, limit)`


CORPORA: dict[str, Corpus] = {
    "fotaq": Corpus(
        name="fotaq",
        debian_package="flight-of-the-amazon-queen",
        splits=("train", "dev", "unlabelled"),
        description="Flight of the Amazon Queen: acted game dialogue, US English, 11.025 kHz MP3",
        module="fotaq",
    ),
    "pocketsphinx": Corpus(
        name="pocketsphinx",
        debian_package="pocketsphinx-testdata",
        splits=("test",),
        description="pocketsphinx-testdata: 5 LibriVox sentences (Sense and Sensibility), 16 kHz WAV",
        module="pocketsphinx",
    ),
}


def prepare_corpus(
    name: str, output_dir: Path, deb: Path | None = None, overwrite: bool = False, limit: int | None = None
) -> dict:
    """Materialise corpus `name` (audio + manifests) in `output_dir`; return its summary.

    `deb` is the package file (else found in the cache or fetched with apt-get); `limit` keeps only the
    first N utterances of each split (for quick tests); a finished folder is reused unless `overwrite`.
    """
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}")
    module = importlib.import_module(f"speechkd.corpora.{CORPORA[name].module}")
    return module.prepare(Path(output_dir), deb=deb, overwrite=overwrite, limit=limit)


def format_summary(summary: dict) -> str:
    """A few printable lines: utterances, hours and speakers per split, and where the manifests are."""
    lines = [
        f"{summary['corpus']} in {summary['output_dir']}" + (" (reused)" if summary.get("reused") else "")
    ]
    for split, stats in summary["splits"].items():
        lines.append(
            f"  {split:<11} {stats['utterances']:>6} utterances  {stats['hours']:6.2f} h  "
            f"{stats['speakers']:>3} speakers  {summary['manifests'][split]}"
        )
    lines.append(f"  speakers: {summary['speakers']}")
    return "\n".join(lines)


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    """Write one JSON object a line, atomically (temporary file + os.replace)."""
    atomic_write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def finished_corpus(output_dir: Path, manifests: dict[str, Path], marker: dict) -> bool:
    """True when `output_dir` holds a complete corpus made with the same settings (`marker`)."""
    marker_path = output_dir / MARKER_NAME
    if not marker_path.is_file() or not all(path.is_file() for path in manifests.values()):
        return False
    try:
        if json.loads(marker_path.read_text(encoding="utf-8")) != marker:
            return False
        records = [record for path in manifests.values() for record in read_jsonl(path)]
    except (OSError, ValueError):
        return False
    return all((output_dir / record["audio"]).is_file() for record in records)


def write_marker(output_dir: Path, marker: dict) -> None:
    tmp = output_dir / f".{MARKER_NAME}.tmp"
    tmp.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, output_dir / MARKER_NAME)


def summarise(name: str, output_dir: Path, manifests: dict[str, Path], reused: bool) -> dict:
    """Utterances, hours and speakers per split, read back from the written manifests."""
    splits, all_speakers = {}, set()
    for split, path in manifests.items():
        records = read_jsonl(path)
        speakers = {record["speaker"] for record in records if "speaker" in record}
        all_speakers |= speakers
        seconds = sum(record.get("duration", 0.0) for record in records)
        splits[split] = {
            "utterances": len(records),
            "hours": round(seconds / 3600, 3),
            "speakers": len(speakers),
        }
    return {
        "corpus": name,
        "output_dir": str(output_dir),
        "manifests": {split: str(path) for split, path in manifests.items()},
        "splits": splits,
        "speakers": len(all_speakers),
        "reused": reused,
    }
