"""Stage 1: the teacher transcribes a manifest into filtered pseudo-labels; resumable, shardable by process."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speechkd.config import ConfigError, check_types, one_of, positive, required
from speechkd.files import atomic_write_json, package_versions
from speechkd.filters import OFF, FilterConfig, label_row
from speechkd.manifest import check_manifest_file, read_manifest, write_manifest
from speechkd.options import DEFAULT_DTYPE, DTYPE_NAMES, DecodingOptions

if TYPE_CHECKING:  # the decoding loop and the caches import torch: only once the config has been checked
    from speechkd.decoding import DecodingResult
    from speechkd.encoder_cache import UtteranceCache

PSEUDO_LABELS = "pseudo_labels.jsonl"  # every utterance, with signals and verdict
TRAIN = "train.jsonl"  # the kept ones
SUMMARY = "summary.json"  # written last: its `finished` marks a complete run
STATE = "state.json"  # the generation settings a resumed run must match
CHUNKS = "chunks"  # one JSON file per finished chunk of batches
_INPUT_FIELDS = ("manifest", "dataset", "split", "audio_column", "text_column", "id_column")
# the decoding options that change the teacher's output, as a resumed run's state.json names them
GENERATION_DECODING = (
    "batch_size", "num_beams", "language", "task", "return_timestamps", "max_new_tokens", "long_form",
)  # fmt: skip


@dataclass(frozen=True)
class PseudoLabelConfig:
    """Everything `speechkd pseudo-label` runs with: input, teacher, decoding, chunking and filters."""

    SECTION = "pseudo_label"

    teacher: str = ""
    output_dir: str = ""
    manifest: str | None = None
    dataset: str | None = None  # a Hugging Face dataset (hub id or local folder) instead of a manifest
    split: str | None = None
    audio_column: str = "audio"
    text_column: str | None = "text"
    id_column: str | None = None
    device: str | None = None
    dtype: str = DEFAULT_DTYPE
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    chunk_batches: int = 8  # batches per chunk file: the unit of resumption
    encoder_cache_dir: str | None = (
        None  # keep the teacher's encoder output there for `distill --encoder-cache-dir`
    )
    overwrite: bool = False
    progress: bool = True
    filters: FilterConfig = field(default_factory=FilterConfig)

    def __post_init__(self) -> None:
        if isinstance(self.text_column, str) and self.text_column.lower() in OFF:
            object.__setattr__(self, "text_column", None)
        check_types(self)
        required(self, "teacher", "output_dir")
        if (self.manifest is None) == (self.dataset is None):
            raise ConfigError(
                "pseudo_label: give exactly one input: a manifest (--manifest) or a dataset (--dataset)"
            )
        one_of(self, "dtype", DTYPE_NAMES)
        positive(self, "chunk_batches")

    def generation_settings(self) -> dict[str, Any]:
        """The settings that change the teacher's output: a resumed run must match them exactly."""
        settings = {name: getattr(self, name) for name in _INPUT_FIELDS + ("teacher", "dtype")}
        if self.manifest is not None:
            settings["manifest"] = os.path.abspath(self.manifest)
        settings |= {name: getattr(self.decoding, name) for name in GENERATION_DECODING}
        return settings | {"chunk_batches": self.chunk_batches}


def check_inputs(config: PseudoLabelConfig) -> None:
    """Refuse a missing manifest or a finished output folder before anything heavy loads."""
    if config.manifest is not None:
        check_manifest_file(config.manifest)
    _refuse_finished(Path(config.output_dir), config.overwrite)


@dataclass(frozen=True)
class Plan:
    """The fixed batching of a whole input: chunks of length-grouped batches of record indices."""

    durations: list[float]
    chunks: list[list[list[int]]]

    def chunk_ids(self, records: list[dict], chunk: int) -> list[str]:
        return [records[i]["id"] for batch in self.chunks[chunk] for i in batch]


# ------------------------------------------------------------------ the run


def pseudo_label(config: PseudoLabelConfig, records: list[dict] | None = None) -> dict | None:
    """Label every record (or resume), then merge on the main process; returns the summary there."""
    check_inputs(config)
    import torch
    from accelerate import PartialState

    from speechkd.models import pick_device, resolve_model

    # Without CUDA, accelerate starts CPU ranks (gloo) only when told cpu=True. Ranks that finish early
    # wait at the barrier for the slowest: allow for long shards.
    state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(hours=24))
    if state.num_processes != int(os.environ.get("WORLD_SIZE", "1")):
        raise RuntimeError(
            f"launched {os.environ['WORLD_SIZE']} processes but accelerate joined {state.num_processes}"
        )
    with state.main_process_first():  # the first process converts bundled models and caches dataset audio
        records = records if records is not None else read_input(config)
        resolve_model(config.teacher)
    if not records:
        raise ValueError(f"{config.manifest or config.dataset}: no utterances to label")
    output_dir = Path(config.output_dir)
    plan = plan_batches(records, config)
    settings = config.generation_settings() | {
        "device_type": pick_device(config.device).type,  # a GPU and a CPU round differently
        "input_fingerprint": _fingerprint(records, plan),
    }
    _check_output_dir(output_dir, settings, config.overwrite)
    state.wait_for_everyone()
    if state.is_main_process:
        _start_output_dir(output_dir, settings, config.overwrite)
    state.wait_for_everyone()
    mine = [c for c in range(len(plan.chunks)) if c % state.num_processes == state.process_index]
    _label_chunks(config, records, plan, mine, state)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    return merge_chunks(config, records, plan)


def read_input(config: PseudoLabelConfig) -> list[dict]:
    """The manifest's records, or a dataset's rows turned into records (audio cached as files)."""
    if config.manifest is not None:
        return read_manifest(config.manifest)
    from speechkd.manifest import records_from_dataset

    return records_from_dataset(
        config.dataset, config.split, config.audio_column, config.text_column, config.id_column
    )


def plan_batches(records: list[dict], config: PseudoLabelConfig) -> Plan:
    """Batch the whole input once, by duration, so a resumed or sharded run decodes the very same batches."""
    from speechkd.decoding import length_grouped_batches, utterance_duration

    durations = [utterance_duration(record) for record in records]
    batches = length_grouped_batches(durations, config.decoding.batch_size)
    size = config.chunk_batches
    return Plan(durations, [batches[i : i + size] for i in range(0, len(batches), size)])


def _fingerprint(records: list[dict], plan: Plan) -> str:
    digest = hashlib.sha1()
    for record, duration in zip(records, plan.durations):
        digest.update(f"{record['id']}\t{record['audio']}\t{duration:.4f}\n".encode())
    return digest.hexdigest()


def _refuse_finished(output_dir: Path, overwrite: bool) -> None:
    summary = output_dir / SUMMARY
    if overwrite or not summary.exists():
        return
    if json.loads(summary.read_text(encoding="utf-8")).get("finished"):
        raise FileExistsError(
            f"{output_dir} holds a finished pseudo-labelling run ({summary}); "
            "pass --overwrite to redo it, or choose another --output-dir"
        )


def _check_output_dir(output_dir: Path, settings: dict, overwrite: bool) -> None:
    if overwrite:
        return
    _refuse_finished(output_dir, overwrite)
    state_file = output_dir / STATE
    if not state_file.exists():
        return
    previous = json.loads(state_file.read_text(encoding="utf-8"))["settings"]
    changed = sorted(k for k in settings.keys() | previous.keys() if settings.get(k) != previous.get(k))
    if changed:
        details = ", ".join(f"{k}: {previous.get(k)!r} -> {settings.get(k)!r}" for k in changed)
        raise ValueError(
            f"{output_dir} holds an unfinished run with other settings ({details}); resume it with the "
            "same settings, pass --overwrite to start again, or choose another --output-dir"
        )


def _start_output_dir(output_dir: Path, settings: dict, overwrite: bool) -> None:
    if overwrite:
        shutil.rmtree(output_dir / CHUNKS, ignore_errors=True)
        for name in (SUMMARY, PSEUDO_LABELS, TRAIN, STATE):
            (output_dir / name).unlink(missing_ok=True)
    (output_dir / CHUNKS).mkdir(parents=True, exist_ok=True)
    for leftover in (output_dir / CHUNKS).glob(".*.tmp"):  # half-written by a killed run
        leftover.unlink(missing_ok=True)
    if not (output_dir / STATE).exists():
        atomic_write_json(output_dir / STATE, {"settings": settings})


def chunk_path(output_dir: Path, chunk: int) -> Path:
    return output_dir / CHUNKS / f"chunk-{chunk:06d}.json"


def _label_chunks(config: PseudoLabelConfig, records: list[dict], plan: Plan, mine: list[int], state) -> None:
    from tqdm.auto import tqdm

    output_dir = Path(config.output_dir)
    todo = [c for c in mine if not chunk_path(output_dir, c).exists()]
    total = sum(len(b) for c in todo for b in plan.chunks[c])
    if len(todo) < len(mine):
        done = sum(len(b) for c in mine if c not in todo for b in plan.chunks[c])
        print(
            f"pseudo-label: resuming in {output_dir}: {done} utterances already labelled, {total} to go",
            file=sys.stderr,
        )
    if not todo:
        return
    model, processor = _load_teacher(config, state)
    cache = open_encoder_cache(config, model)
    desc = "pseudo-label" + (f" [process {state.process_index}]" if state.num_processes > 1 else "")
    with tqdm(total=total, unit="utt", desc=desc, disable=not config.progress) as bar:
        for chunk in todo:
            started = time.perf_counter()
            rows = []
            for batch, results in _decode_batches(
                model, processor, records, plan.chunks[chunk], config, cache
            ):
                rows += [{"index": i, **_signals(r, processor, config)} for i, r in zip(batch, results)]
                if cache is not None:
                    _keep_encoder_states(cache, records, batch, results)
                bar.update(len(batch))
            payload = {
                "chunk": chunk,
                "process": state.process_index,
                "ids": plan.chunk_ids(records, chunk),
                "decode_seconds": time.perf_counter() - started,
                "rows": rows,
            }
            atomic_write_json(chunk_path(output_dir, chunk), payload, indent=None)


def _load_teacher(config: PseudoLabelConfig, state):
    from speechkd.decoding import check_language_options
    from speechkd.models import load_model

    device = config.device
    if state.num_processes > 1 and device in (None, "auto", "cuda"):
        device = str(state.device)  # one accelerator per process
    model, processor = load_model(config.teacher, device=device, dtype=config.dtype)
    check_language_options(model, config.decoding)
    return model, processor


def open_encoder_cache(config: PseudoLabelConfig, model) -> UtteranceCache | None:
    """Where the teacher's encoder output goes: the folder `distill --encoder-cache-dir` reads for a student that
    kept the teacher's encoder (named by the encoder's weights, so another encoder never reads it)."""
    from speechkd.encoder_cache import UtteranceCache, encoder_cache_folder
    from speechkd.encoder_window import window_of

    if config.encoder_cache_dir is None:
        return None
    if window_of(model) == "audio":  # its output's length follows each batch; distil needs the 30 s view
        print(f"pseudo-label: {config.teacher} reads audio-length windows; its encoder output is not cached",
              file=sys.stderr)  # fmt: skip
        return None
    return UtteranceCache(encoder_cache_folder(config.encoder_cache_dir, model.model.encoder))


def _keep_encoder_states(
    cache: UtteranceCache, records: list[dict], batch: list[int], results: list[DecodingResult]
) -> None:
    from speechkd.encoder_cache import audio_key, encoder_entry

    for index, result in zip(batch, results):
        if result.encoder_states is not None:  # short-form clips only; long-form audio is not trained on
            entry = encoder_entry(result.duration, encoder_states=result.encoder_states)
            cache.put(audio_key(records[index]["audio"]), entry)
            result.encoder_states = None


def _decode_batches(
    model,
    processor,
    records: list[dict],
    batches: list[list[int]],
    config: PseudoLabelConfig,
    cache: UtteranceCache | None = None,
) -> Iterator[tuple[list[int], list[DecodingResult]]]:
    """Decode batch after batch while the next batch's audio loads in a background thread."""
    from speechkd.decoding import decode_loaded, load_batch

    options = dataclasses.replace(config.decoding, keep_encoder_states=cache is not None)
    with ThreadPoolExecutor(max_workers=1) as loader:
        pending = loader.submit(load_batch, [records[i]["audio"] for i in batches[0]])
        for k, batch in enumerate(batches):
            audios, errors = pending.result()
            if k + 1 < len(batches):
                pending = loader.submit(load_batch, [records[i]["audio"] for i in batches[k + 1]])
            yield batch, decode_loaded(model, processor, audios, errors, options)


def _signals(result: DecodingResult, processor, config: PseudoLabelConfig) -> dict[str, Any]:
    def rounded(value: float | None, digits: int) -> float | None:
        return None if value is None else round(float(value), digits)

    timestamped = {}
    if config.decoding.return_timestamps and not result.error:  # with <|t|> tokens, for the distiller
        text = processor.tokenizer.decode(result.tokens, decode_with_timestamps=True)
        timestamped["teacher_text_timestamped"] = text.strip()
    return {
        "teacher_text": result.text,
        "avg_logprob": rounded(result.avg_logprob, 5),
        "no_speech_prob": rounded(result.no_speech_prob, 5),
        "compression_ratio": rounded(result.compression_ratio, 4),
        "n_tokens": result.n_tokens,
        "decoded_duration": rounded(result.duration, 3),
        "error": result.error,
    } | timestamped


# ------------------------------------------------------------------ merging and the summary


def merge_chunks(config: PseudoLabelConfig, records: list[dict], plan: Plan) -> dict:
    """Join the chunk files with the input, apply the filters, write the outputs and the summary."""
    output_dir = Path(config.output_dir)
    signals: list[dict | None] = [None] * len(records)
    decode_seconds = 0.0
    for chunk in range(len(plan.chunks)):
        if not chunk_path(output_dir, chunk).exists():
            raise FileNotFoundError(
                f"{chunk_path(output_dir, chunk)} is missing: a process failed; rerun to resume"
            )
        payload = json.loads(chunk_path(output_dir, chunk).read_text(encoding="utf-8"))
        if payload["ids"] != plan.chunk_ids(records, chunk):
            raise ValueError(
                f"{chunk_path(output_dir, chunk)} does not match the input; rerun with --overwrite"
            )
        decode_seconds += payload["decode_seconds"]
        for row in payload["rows"]:
            signals[row.pop("index")] = row
    language = config.decoding.language
    rows = [label_row(record, found, config.filters, language) for record, found in zip(records, signals)]
    write_manifest(output_dir / PSEUDO_LABELS, rows)
    write_manifest(output_dir / TRAIN, [row for row in rows if row["kept"]])
    summary = summarize(rows, config, decode_seconds)
    atomic_write_json(output_dir / SUMMARY, summary)
    return summary


def summarize(rows: list[dict], config: PseudoLabelConfig, decode_seconds: float) -> dict:
    """Counts by reject reason, hours in/kept, teacher WER where references exist, speed, settings."""
    from speechkd.config import config_to_dict

    language = config.decoding.language
    reasons = Counter(row["reject_reason"].split(":")[0] for row in rows if not row["kept"])
    decoded = [
        row for row in rows if not (row["reject_reason"] or "").startswith(("audio_error", "too_long"))
    ]
    audio_seconds = sum(row.get("duration") or 0.0 for row in decoded)
    kept_seconds = sum(row.get("duration") or 0.0 for row in rows if row["kept"])
    return {
        "finished": True,
        "teacher": config.teacher,
        "input": config.manifest or config.dataset,
        "n_utterances": len(rows),
        "n_kept": sum(row["kept"] for row in rows),
        "n_rejected": sum(not row["kept"] for row in rows),
        "reject_reasons": dict(sorted(reasons.items())),
        "hours_in": round(sum(row.get("duration") or 0.0 for row in rows) / 3600, 4),
        "hours_kept": round(kept_seconds / 3600, 4),
        "teacher_wer": _pooled_wer([row for row in decoded if row.get("wer") is not None], language),
        "teacher_wer_kept": _pooled_wer(
            [r for r in rows if r["kept"] and r.get("wer") is not None], language
        ),
        "n_with_reference": sum(row.get("text") is not None for row in rows),
        "n_scored": sum(row.get("wer") is not None for row in decoded),  # references left after normalising
        "audio_seconds_decoded": round(audio_seconds, 2),
        "decode_seconds": round(decode_seconds, 2),
        "rtfx": round(audio_seconds / decode_seconds, 2) if decode_seconds else None,
        "settings": config_to_dict(config),
        "versions": package_versions(("speechkd", "torch", "transformers", "accelerate")),
    }


def _pooled_wer(rows: list[dict], language: str | None) -> float | None:
    from speechkd.text import normalised_word_errors

    if not rows:
        return None
    errors = normalised_word_errors([r["text"] for r in rows], [r["teacher_text"] for r in rows], language)
    return round(errors.wer, 4)


def format_summary(summary: dict, output_dir: str | os.PathLike) -> str:
    """A few lines for the terminal: kept/rejected with reasons, hours, teacher WER and speed."""
    n, kept = summary["n_utterances"], summary["n_kept"]
    lines = [
        f"pseudo-labelled {n} utterances ({summary['hours_in']:.2f} h) with {summary['teacher']}: "
        f"kept {kept} ({kept / n:.0%}, {summary['hours_kept']:.2f} h)"
    ]
    if summary["reject_reasons"]:
        reasons = ", ".join(f"{reason} {count}" for reason, count in summary["reject_reasons"].items())
        lines.append(f"  rejected {summary['n_rejected']}: {reasons}")
    if summary["teacher_wer"] is not None:
        kept_wer = summary["teacher_wer_kept"]
        lines.append(
            f"  teacher WER {summary['teacher_wer']:.1%} on {summary.get('n_scored', summary['n_with_reference'])} references"
            + ("" if kept_wer is None else f"; {kept_wer:.1%} on the kept ones")
        )
    if summary["rtfx"] is not None:
        lines.append(f"  speed: RTFx {summary['rtfx']:.1f} ({summary['decode_seconds']:.0f} s of decoding)")
    lines.append(f"  wrote {Path(output_dir) / TRAIN} and {PSEUDO_LABELS}, {SUMMARY}")
    return "\n".join(lines)
