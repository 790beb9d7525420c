"""Teacher vs 2-layer student: WER, RTFx, speed-up, speculative decoding, and the same pair in faster-whisper.

    HF_HUB_OFFLINE=1 python bench/evaluate.py --output-dir /tmp/bench-eval [--student DISTILL_OUT/final] [--every 6]

Without --student an untrained student is made with `speechkd create-student` (numbers then show per-token
costs; the student's transcripts are meaningless). Everything runs at batch size 1 on one CPU thread by
default, the systems of a run interleaved utterance by utterance. Prints one table; each run's full
metrics.json and report.md stay under --output-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from speechkd.commands import quiet_transformers
from speechkd.config import build_config
from speechkd.evaluate import EvaluateConfig, evaluate
from speechkd.manifest import read_manifest, write_manifest


def speechkd(*args: str) -> None:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-m", "speechkd.cli", *args], check=True, env=env, stdout=subprocess.DEVNULL
    )


def make_student(teacher: str, output_dir: Path, encoder_layers: int | None = None) -> Path:
    if not (output_dir / "config.json").exists():
        extra = ["--encoder-layers", str(encoder_layers)] if encoder_layers else []
        speechkd(
            "create-student",
            "--teacher",
            teacher,
            "--decoder-layers",
            "2",
            "--output-dir",
            str(output_dir),
            *extra,
        )
    return output_dir


def export(model: str, output_dir: Path) -> Path:
    if not (output_dir / "model.bin").exists():
        speechkd("export", "--format", "ctranslate2", model, str(output_dir))
    return output_dir


def run(args, name: str, **values) -> dict:
    """One evaluation (or its earlier metrics.json when it already finished)."""
    output_dir = args.output_dir / name
    if (output_dir / "metrics.json").exists():
        return json.loads((output_dir / "metrics.json").read_text())
    options = dict(
        manifests=(str(args.manifest),),
        output_dir=str(output_dir),
        language="en",
        batch_size=1,
        threads=args.threads,
        max_utterances=args.max_utterances,
        profile_utterances=args.profile_utterances,
        **values,
    )
    config = build_config(EvaluateConfig, {}, options)  # flat option names, as the flags spell them
    return evaluate(config)


def row(label: str, engine: str, report: dict, speedup: float | None, predicted: float | None = None) -> str:
    latency = report.get("latency_p50")
    cells = [
        label,
        engine,
        f"{report['parameters'] / 1e6:.1f} M" if report.get("parameters") else "–",
        f"{100 * report['wer']:.2f}" if report.get("wer") is not None else "–",
        f"{report['rtfx']:.2f}",
        f"{speedup:.2f}×" if speedup else "–",
        f"{predicted:.2f}×" if predicted else "–",
        f"{1000 * latency:.0f}" if latency else "–",
        f"{report['tokens_per_second']:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = [
    "| system | engine | parameters | WER % | RTFx | speed-up vs teacher (measured) "
    "| speed-up at the teacher's token count (predicted) | latency p50 (ms) | tokens/s |",
    "|---|---|---|---|---|---|---|---|---|",
]


def transformers_rows(args, student: str) -> tuple[list[str], dict]:
    """One pass: student, teacher and teacher + student draft, interleaved utterance by utterance."""
    metrics = run(args, "transformers", model=student, baseline=args.teacher, assistant=student)
    pupil, teacher = metrics["systems"]["model"], metrics["systems"]["baseline"]
    rows = [
        row("teacher", "transformers", teacher, 1.0),
        row(
            "student (2 dec)",
            "transformers",
            pupil,
            metrics["comparison"]["speedup"],
            metrics["comparison"]["equal_tokens_speedup"],
        ),
        row(
            "teacher + student draft",
            "transformers",
            metrics["systems"]["speculative"],
            metrics["speculative"]["speedup"],
        ),
    ]
    return rows, metrics


def small_encoder_row(args) -> str:
    """A student with fewer encoder layers, against the teacher in its own run."""
    layers = args.encoder_layers
    small = str(make_student(args.teacher, args.output_dir / f"student-2-enc{layers}", layers))
    metrics = run(args, f"encoder-{layers}", model=small, baseline=args.teacher)
    comparison = metrics["comparison"]
    label = f"student (2 dec, {layers} enc)"
    return row(
        label,
        "transformers",
        metrics["systems"]["model"],
        comparison["speedup"],
        comparison["equal_tokens_speedup"],
    )


def faster_whisper_rows(args, student: str) -> list[str]:
    """The same pair converted with CTranslate2 and run through faster-whisper, in their own run."""
    ct2_teacher = export(args.teacher, args.output_dir / "teacher-ct2")
    ct2_student = export(student, args.output_dir / "student-ct2")
    metrics = run(
        args, "faster-whisper", model=str(ct2_student), baseline=str(ct2_teacher), engine="faster-whisper"
    )
    teacher, pupil = metrics["systems"]["baseline"], metrics["systems"]["model"]
    return [
        row("teacher", "faster-whisper", teacher, 1.0),
        row("student (2 dec)", "faster-whisper", pupil, metrics["comparison"]["speedup"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--teacher", default="bundled:base")
    parser.add_argument("--student", default=None, help="a (trained) student; default: an untrained one")
    parser.add_argument("--manifest", type=Path, default=Path.home() / ".cache/speechkd/data/fotaq/dev.jsonl")
    parser.add_argument("--max-utterances", type=int, default=None)
    parser.add_argument("--every", type=int, default=1, help="every Nth utterance (a spread-out subset)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile-utterances", type=int, default=4)
    parser.add_argument("--encoder-layers", type=int, default=None, help="also a student with this many")
    parser.add_argument("--no-faster-whisper", action="store_true")
    parser.add_argument(
        "--tune", type=int, default=0, help="also sweep draft lengths on this many utterances"
    )
    args = parser.parse_args()
    quiet_transformers()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if args.every > 1:
        subset = args.output_dir / f"{args.manifest.stem}-every{args.every}.jsonl"
        write_manifest(subset, read_manifest(args.manifest)[:: args.every])
        args.manifest = subset
    student = args.student or str(make_student(args.teacher, args.output_dir / "student-2"))

    lines, metrics = transformers_rows(args, student)
    if args.encoder_layers:
        lines.append(small_encoder_row(args))
    if not args.no_faster_whisper:
        lines += faster_whisper_rows(args, student)
    spec = metrics["speculative"]
    n = metrics["systems"]["baseline"]["n_utterances"]
    print(
        f"\n{metrics['device']}; {n} utterances of {args.manifest}, batch size 1; speed-ups within each run\n"
    )
    print("\n".join(HEADER + lines))
    print(
        f"\nspeculative: speed-up {spec['speedup']:.2f}×, acceptance {100 * (spec['acceptance'] or 0):.1f} %, "
        f"{spec['proposed_per_round']:.2f} proposed / {spec['accepted_per_round']:.2f} accepted per round, "
        f"mismatches {spec['speculative_mismatches']} of {spec['n_utterances']}; predicted from costs "
        f"{spec.get('expected_decoder_speedup', 0):.2f}× (decoder loop), a perfect draft "
        f"{spec.get('perfect_draft_decoder_speedup', 0):.2f}× (decoder loop) / "
        f"{spec.get('perfect_draft_speedup', 0):.2f}× (end to end)"
    )
    print_profile(metrics)
    if args.tune:
        print_tuning(args, student)


DRAFT_SETTINGS = [  # (tokens, schedule, confidence): transformers 5.x default first, then 4.x-era and shorter
    (20, "constant", None),
    (20, "constant", 0.0),
    (5, "heuristic", None),
    (3, "constant", None),
    (1, "constant", None),
]


def print_tuning(args, student: str) -> None:
    print(
        "\ndraft tokens | schedule | confidence | speed-up | acceptance % | proposed / accepted per round | mismatches"
    )
    for tokens, schedule, confidence in DRAFT_SETTINGS:
        name = f"tune-{tokens}-{schedule}-{confidence}"
        values = {"draft_tokens": tokens, "draft_schedule": schedule, "draft_confidence": confidence}
        limited = argparse.Namespace(**(vars(args) | {"max_utterances": args.tune, "profile_utterances": 0}))
        spec = run(limited, name, model=args.teacher, assistant=student, **values)["speculative"]
        print(
            f"{tokens} | {schedule} | {0.4 if confidence is None else confidence} | {spec['speedup']:.2f}× | "
            f"{100 * (spec['acceptance'] or 0):.1f} | {spec['proposed_per_round']:.2f} / "
            f"{spec['accepted_per_round']:.2f} | {spec['speculative_mismatches']}"
        )


def print_profile(metrics: dict) -> None:
    profiles = metrics.get("cost_profile", {})
    names = {"model": "student", "baseline": "teacher", "speculative": "teacher + draft"}
    print(
        "\nbatch size 1, ms | encoder (30 s) | first decoder step | decoder step | projection | generate/call "
        "| generate/token | overhead/token | draft step"
    )
    keys = ("encoder_ms", "first_step_ms", "decoder_step_ms", "projection_ms", "generate_call_ms")
    keys += ("generate_ms_per_token", "overhead_ms_per_token", "draft_step_ms")
    for name, p in profiles.items():
        print(" | ".join([names[name]] + ["–" if p.get(k) is None else f"{p[k]:.1f}" for k in keys]))


if __name__ == "__main__":
    main()
