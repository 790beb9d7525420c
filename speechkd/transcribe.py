"""Quick transcription of files or a manifest with any model: the `speechkd transcribe` command's library."""

from __future__ import annotations

from dataclasses import dataclass

from tqdm.auto import tqdm

from speechkd.decoding import DecodingOptions, check_language_options, transcribe_paths
from speechkd.models import load_model
from speechkd.text import normalised_word_errors


@dataclass(frozen=True)
class TranscribeConfig:
    """What `speechkd transcribe` runs: a model, a device/dtype and the decoding options."""

    model: str
    device: str | None = None
    dtype: str = "float32"
    decoding: DecodingOptions = DecodingOptions()


def transcribe_records(config: TranscribeConfig, records: list[dict], progress: bool = True) -> list[dict]:
    """Transcribe manifest records (with absolute `audio` paths); each output row keeps the input fields."""
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
