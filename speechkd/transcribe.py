"""Quick transcription of files or a manifest with any model: the `speechkd transcribe` command's library."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speechkd.config import check_types, one_of, required
from speechkd.manifest import ManifestError, read_manifest
from speechkd.options import DEFAULT_DTYPE, DTYPE_NAMES, DecodingOptions
from speechkd.text import normalised_word_errors


@dataclass(frozen=True)
class TranscribeConfig:
    """What `speechkd transcribe` runs: a model, a device/dtype and the decoding options."""

    SECTION = "transcribe"

    model: str = ""
    device: str | None = None
    dtype: str = DEFAULT_DTYPE
    decoding: DecodingOptions = field(default_factory=DecodingOptions)

    def __post_init__(self) -> None:
        check_types(self)
        required(self, "model")
        one_of(self, "dtype", DTYPE_NAMES)


def input_records(files: Sequence[str | os.PathLike], manifest: str | os.PathLike | None) -> list[dict]:
    """The utterances to transcribe: audio FILES, or a manifest's records (refused when it has none)."""
    if bool(files) == bool(manifest):
        raise ValueError("give either audio FILEs or --manifest, not both and not neither")
    if not manifest:
        return [{"id": str(path), "audio": str(Path(path).resolve())} for path in files]
    records = read_manifest(manifest)
    if not records:
        raise ManifestError(manifest, "no utterances to transcribe")
    return records


def transcribe_records(config: TranscribeConfig, records: list[dict], progress: bool = True) -> list[dict]:
    """Transcribe manifest records (with absolute `audio` paths); each output row keeps the input fields."""
    from tqdm.auto import tqdm

    from speechkd.decoding import check_language_options, transcribe_paths
    from speechkd.models import load_model

    model, processor = load_model(config.model, device=config.device, dtype=config.dtype)
    check_language_options(model, config.decoding)
    rows: list[dict | None] = [None] * len(records)
    paths = [r["audio"] for r in records]
    bar = tqdm(total=len(records), unit="utt", desc="transcribe", disable=not progress)
    for indices, results in transcribe_paths(model, processor, paths, config.decoding):
        for i, result in zip(indices, results):
            rows[i] = dict(records[i]) | {"hypothesis": result.text, "error": result.error}
        bar.update(len(indices))
    bar.close()
    return rows


def score_rows(rows: list[dict], language: str | None = "en") -> dict | None:
    """Normalised WER of hypotheses against `text`, over the rows that have a reference and decoded."""
    scored = [r for r in rows if r.get("text") is not None and r.get("error") is None]
    if not scored:
        return None
    errors = normalised_word_errors([r["text"] for r in scored], [r["hypothesis"] for r in scored], language)
    return {
        "wer": errors.wer,
        "n_utterances": len(scored),
        "n_failed": sum(r["error"] is not None for r in rows),
    }
