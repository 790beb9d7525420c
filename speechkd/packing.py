"""Pack consecutive short utterances into clips of up to 30 s (one speaker per clip), as Distil-Whisper does.

Whisper's encoder always sees a 30 s window, so a 3 s line costs as much to encode (and, in training, as much
cross-attention) as 30 s of speech: packing carries ten times the speech through each encoder pass and each
training sample, and gives the student long multi-sentence labels like the ones it meets when streaming or
transcribing long recordings. Each packed clip names the clip before it from the same speaker (`previous`), so
`distill --prompt-probability` can condition it on that clip's text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from speechkd.audio import SAMPLE_RATE, AudioError, load_audio
from speechkd.files import atomic_write_json
from speechkd.manifest import write_manifest

TEXT_FIELDS = ("text", "teacher_text")


@dataclass
class Pack:
    """Utterances of one speaker whose audio goes into one clip, in manifest order."""

    group: str | None
    records: list[dict] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(len(a) for a in self.audio) / SAMPLE_RATE


def pack_manifest(
    records: list[dict],
    output_dir: str | os.PathLike,
    max_seconds: float = 30.0,
    group_field: str | None = "speaker",
    gap_seconds: float = 0.0,
    progress: bool = True,
) -> dict:
    """Write OUTPUT_DIR/audio/*.flac and OUTPUT_DIR/packed.jsonl; return counts (and the unreadable utterances).

    Utterances are grouped by GROUP_FIELD (stable: manifest order within a speaker) and packed greedily.
    """
    output_dir = Path(output_dir)
    (output_dir / "audio").mkdir(parents=True, exist_ok=True)
    gap = np.zeros(int(round(gap_seconds * SAMPLE_RATE)), dtype=np.float32)
    limit = int(round(max_seconds * SAMPLE_RATE))
    rows, skipped, previous, counts = [], [], {}, {}
    current: Pack | None = None
    if group_field:  # one speaker's utterances together, each speaker in order of first appearance
        first_seen: dict = {}
        for record in records:
            first_seen.setdefault(record.get(group_field), len(first_seen))
        records = sorted(records, key=lambda r: first_seen[r.get(group_field)])
    for record in tqdm(records, desc="pack", unit="utt", disable=not progress):
        try:
            audio = load_audio(record["audio"])
        except AudioError as error:
            skipped.append({"id": record["id"], "error": str(error)})
            continue
        if len(audio) > limit:
            seconds = len(audio) / SAMPLE_RATE
            skipped.append({"id": record["id"], "error": f"{seconds:.1f} s is longer than {max_seconds} s"})
            continue
        group = record.get(group_field) if group_field else None
        if current is not None and (current.group != group or _length(current, audio, gap) > limit):
            rows.append(_write_pack(current, output_dir, gap, previous, counts))
            current = None
        current = current or Pack(group)
        current.records.append(record)
        current.audio.append(audio)
    if current is not None:
        rows.append(_write_pack(current, output_dir, gap, previous, counts))
    write_manifest(output_dir / "packed.jsonl", rows)
    summary = {
        "utterances": len(records) - len(skipped),
        "clips": len(rows),
        "hours": round(sum(r["duration"] for r in rows) / 3600, 3),
        "mean_clip_seconds": round(sum(r["duration"] for r in rows) / max(len(rows), 1), 2),
        "skipped": len(skipped),
        "skipped_utterances": skipped,
        "max_seconds": max_seconds,
        "group_field": group_field,
    }
    atomic_write_json(output_dir / "summary.json", summary)
    return summary


def _length(pack: Pack, audio: np.ndarray, gap: np.ndarray) -> int:
    return sum(len(a) for a in pack.audio) + len(gap) * len(pack.audio) + len(audio)


def _write_pack(pack: Pack, output_dir: Path, gap: np.ndarray, previous: dict, counts: dict) -> dict:
    """Write one clip (skipped when the same clip is already on disk) and return its manifest row."""
    index = counts.get(pack.group, 0)
    counts[pack.group] = index + 1
    clip_id = f"{_safe(pack.group or 'all')}-{index:05d}-{pack.records[0]['id']}"
    pieces = [piece for audio in pack.audio for piece in (audio, gap)][:-1] if len(gap) else pack.audio
    samples = np.concatenate(pieces)
    path = output_dir / "audio" / f"{clip_id}.flac"
    if not path.exists() or sf.info(path).frames != len(samples):
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        sf.write(temp, samples, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
        os.replace(temp, path)
    row = {"id": clip_id, "audio": str(path.resolve()), "duration": round(len(samples) / SAMPLE_RATE, 3)}
    for name in TEXT_FIELDS:
        texts = [r.get(name) for r in pack.records]
        if all(isinstance(t, str) for t in texts):
            row[name] = " ".join(t.strip() for t in texts if t.strip())
    if pack.group is not None:
        row["speaker"] = pack.group
    if pack.group in previous:
        row["previous"] = previous[pack.group]
    previous[pack.group] = clip_id
    row["parts"] = [r["id"] for r in pack.records]
    return row


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))[:40]
