"""Streaming latency, teacher vs student, on the same long FOTAQ streams (LocalAgreement-2, 1 s chunks).

    HF_HUB_OFFLINE=1 python bench/streaming.py --teacher bundled:base --student DISTILL_OUT/final --language en

Each stream is --lines consecutive dev lines back to back (over a minute of dialogue). Both models run every
stream, alternating which goes first, on one CPU thread by default, on the compute-aware simulated clock:
audio 'arrives' in real time while the model is busy, so a slower model gets larger, later updates, as it
would live. Word latency = emission time (arrival of the audio that completed the update + that update's
compute) minus the end of the word in the audio (the model's own cross-attention alignment). WER is the
streamed text against the reference transcripts (normalised). Target: student mean latency <= 0.6x the
teacher's at a WER difference of at most 2 points.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from speechkd.audio import load_audio
from speechkd.config import build_config
from speechkd.files import atomic_write_json
from speechkd.manifest import read_manifest
from speechkd.models import count_parameters, load_model, speechkd_home
from speechkd.streaming.sources import SimulatedSource
from speechkd.streaming.transcriber import StreamingConfig, StreamingTranscriber, latency_summary, run_stream
from speechkd.text import normalize, word_errors

LATENCY_RATIO_TARGET, WER_GAP_TARGET = 0.6, 0.02


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", required=True, help="teacher model reference")
    parser.add_argument("--student", required=True, help="student model directory (or any reference)")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=speechkd_home() / "data" / "fotaq" / "dev.jsonl",
        help="lines to stream",
    )
    parser.add_argument("--streams", type=int, default=2, help="number of long streams (2)")
    parser.add_argument("--lines", type=int, default=25, help="manifest lines per stream (25, about 60 s)")
    parser.add_argument("--chunk-seconds", type=float, default=1.0, help="new audio per update (1.0)")
    parser.add_argument("--language", default=None, help="language for multilingual models, e.g. en")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1; 0 = torch's default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the per-stream results as JSON")
    return parser.parse_args()


def make_streams(manifest: Path, n_streams: int, lines: int) -> list[tuple[np.ndarray, str]]:
    records = read_manifest(manifest)
    if len(records) < n_streams * lines:
        raise SystemExit(f"{manifest} has {len(records)} lines; {n_streams} streams x {lines} need more")
    streams = []
    for i in range(n_streams):
        group = records[i * lines : (i + 1) * lines]
        streams.append(
            (np.concatenate([load_audio(r["audio"]) for r in group]), " ".join(r["text"] for r in group))
        )
    return streams


def stream_once(model, processor, audio: np.ndarray, config: StreamingConfig) -> dict:
    transcriber = StreamingTranscriber(model, processor, config)
    result = run_stream(transcriber, SimulatedSource(audio, config.chunk_seconds))
    return {
        "text": result.text,
        "latencies": result.latencies,
        "audio_seconds": result.audio_seconds,
        "compute_seconds": result.compute_seconds,
        "n_updates": result.n_updates,
        "max_buffer_seconds": result.max_buffer_seconds,
    }


def summarise(runs: list[dict], references: list[str], language: str | None) -> dict:
    errors = word_errors(
        [normalize(r, language) for r in references], [normalize(run["text"], language) for run in runs]
    )
    latency = latency_summary([t for run in runs for t in run["latencies"]])
    audio = sum(run["audio_seconds"] for run in runs)
    return {
        "wer": errors.wer,
        **{f"latency_{k}": v for k, v in latency.items()},
        "rtf": sum(run["compute_seconds"] for run in runs) / audio,
        "n_words": sum(len(run["latencies"]) for run in runs),
        "n_updates": sum(run["n_updates"] for run in runs),
        "audio_seconds": audio,
    }


def print_table(names: dict[str, str], params: dict[str, int], summary: dict[str, dict]) -> None:
    header = f"{'':8} {'model':34} {'params':>7} {'WER':>6} {'lat mean':>9} {'p50':>6} {'p90':>6} {'RTF':>5} {'words':>6}"
    print(header + "\n" + "-" * len(header))
    for role in ("teacher", "student"):
        s = summary[role]
        print(
            f"{role:8} {names[role][-34:]:34} {params[role] / 1e6:6.1f}M {100 * s['wer']:5.1f}% "
            f"{s['latency_mean']:8.2f}s {s['latency_p50']:5.2f}s {s['latency_p90']:5.2f}s {s['rtf']:5.2f} {s['n_words']:6d}"
        )
    teacher, student = summary["teacher"], summary["student"]
    ratio = {k: student[k] / teacher[k] for k in ("latency_mean", "latency_p50", "latency_p90", "rtf")}
    gap = student["wer"] - teacher["wer"]
    print(
        f"{'ratio':8} {'student / teacher':34} {'':>7} {100 * gap:+5.1f}p {ratio['latency_mean']:8.2f}x "
        f"{ratio['latency_p50']:5.2f}x {ratio['latency_p90']:5.2f}x {ratio['rtf']:5.2f}x"
    )
    met = ratio["latency_mean"] <= LATENCY_RATIO_TARGET and gap <= WER_GAP_TARGET
    print(
        f"\ntarget: mean latency <= {LATENCY_RATIO_TARGET}x teacher at WER gap <= {100 * WER_GAP_TARGET:.0f} points: "
        f"{'met' if met else 'not met'} ({ratio['latency_mean']:.2f}x, {100 * gap:+.1f} points)"
    )


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    names = {"teacher": args.teacher, "student": args.student}
    models = {role: load_model(ref) for role, ref in names.items()}
    config = build_config(
        StreamingConfig, {}, {"chunk_seconds": args.chunk_seconds, "language": args.language}
    )
    streams = make_streams(args.manifest, args.streams, args.lines)
    runs: dict[str, list[dict]] = {"teacher": [], "student": []}
    for i, (audio, _) in enumerate(streams):
        order = ("teacher", "student") if i % 2 == 0 else ("student", "teacher")  # share any load drift
        for role in order:
            runs[role].append(stream_once(*models[role], audio, config))
            print(f"stream {i + 1}/{len(streams)} ({len(audio) / 16000:.0f} s): {role} done", flush=True)
    references = [text for _, text in streams]
    summary = {role: summarise(runs[role], references, args.language) for role in runs}
    params = {role: count_parameters(models[role][0]) for role in models}
    print(
        f"\n{len(streams)} streams, {summary['teacher']['audio_seconds']:.0f} s of audio, "
        f"chunk {args.chunk_seconds:g} s, {torch.get_num_threads()} thread(s)\n"
    )
    print_table(names, params, summary)
    if args.json:
        atomic_write_json(
            args.json,
            {
                "models": names,
                "summary": summary,
                "runs": runs,
                "args": vars(args) | {"manifest": str(args.manifest), "json": str(args.json)},
            },
        )


if __name__ == "__main__":
    main()
