"""`speechkd evaluate --model REF --manifest M --output-dir DIR [--baseline REF] [--assistant DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechkd.commands import add_decoding_flags, add_device_flags, quiet_transformers


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="WER, RTFx and latency of a model, against a baseline, and as a speculative draft",
        description=(
            "Evaluate --model on one or more manifests: normalised and orthographic WER, CER, S/D/I, per "
            "manifest and speaker, long-form hallucination signals; RTFx (Open ASR Leaderboard timing) and "
            "latency at batch size 1. --baseline runs a second model on the same utterances, interleaved, for "
            "the speed-up and a bootstrap CI on the WER difference; --assistant makes --model decode with a "
            "student draft (speculative decoding). Writes metrics.json, predictions.jsonl, report.md and plots."
        ),
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML/JSON file; its `evaluate` section")
    parser.add_argument("--model", default=None, help="model to evaluate: directory, hub id, or bundled:NAME")
    parser.add_argument(
        "--manifest",
        dest="manifests",
        action="append",
        default=None,
        metavar="M",
        help="JSONL manifest (repeatable)",
    )
    parser.add_argument("--output-dir", default=None, help="where metrics.json, predictions and plots go")
    parser.add_argument("--baseline", default=None, help="model to compare with, usually the teacher")
    parser.add_argument("--assistant", default=None, help="student that drafts for --model (speculative)")
    parser.add_argument(
        "--engine",
        default=None,
        choices=["transformers", "faster-whisper"],
        help="transformers (default) or faster-whisper on directories from `speechkd export`",
    )
    parser.add_argument(
        "--no-reference", action="store_true", default=None, help="manifests without text: speed only"
    )
    parser.add_argument(
        "--overwrite", action="store_true", default=None, help="replace a finished evaluation"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    device = add_device_flags(parser)
    device.add_argument(
        "--compute-type", default=None, help="faster-whisper compute type, e.g. int8 (default: dtype)"
    )
    device.add_argument("--threads", type=int, default=None, help="CPU threads for torch and CTranslate2")
    decoding = add_decoding_flags(parser, "utterances per batch for RTFx (16)", timestamps=False)
    decoding.add_argument(
        "--max-utterances", type=int, default=None, help="evaluate the first N of each manifest"
    )
    _add_measurement_flags(parser)
    parser.set_defaults(handler=run)


def _add_measurement_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("measurement")
    group.add_argument("--warmup", type=int, default=None, help="untimed decode calls per system first (1)")
    group.add_argument(
        "--latency-utterances",
        type=int,
        default=None,
        help="utterances timed at batch size 1 when --batch-size > 1, for latency and speculative decoding (64)",
    )
    group.add_argument(
        "--draft-tokens", type=int, default=None, help="speculative draft tokens per round (5)"
    )
    group.add_argument(
        "--draft-schedule",
        default=None,
        choices=["constant", "heuristic", "heuristic_transient"],
        help="(heuristic)",
    )
    group.add_argument("--draft-confidence", type=float, default=None, help="stop drafting below (0.4)")
    group.add_argument(
        "--profile-utterances", type=int, default=None, help="per-component cost profile (4; 0 off)"
    )
    group.add_argument("--bootstrap-samples", type=int, default=None, help="resamples for the WER CI (1000)")
    group.add_argument("--seed", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    from speechkd.config import build_config, load_config_file
    from speechkd.evaluate.config import EvaluateConfig, check_inputs

    file_values = load_config_file(args.config, section="evaluate") if args.config else {}
    source = f"{args.config} [evaluate]" if args.config else "evaluate"
    config = build_config(EvaluateConfig, file_values, vars(args), source=source)
    check_inputs(config)  # before torch loads
    from speechkd.evaluate import evaluate
    from speechkd.evaluate.report import summary_lines

    quiet_transformers()
    metrics = evaluate(config)
    print("\n".join(summary_lines(metrics)))
    print(f"wrote {Path(config.output_dir) / 'metrics.json'} and report.md", file=sys.stderr)
    return 1 if metrics["n_failed"] == metrics["n_utterances"] else 0
