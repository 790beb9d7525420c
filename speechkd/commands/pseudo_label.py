"""`speechkd pseudo-label --teacher REF --manifest IN --output-dir DIR`: stage 1, teacher pseudo-labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechkd.commands import add_decoding_flags, add_device_flags, quiet_transformers


def _threshold(value: str) -> float | str:
    """A number, or `off` to switch the check off."""
    if value.lower() in ("off", "none"):
        return "off"
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {value!r}") from None


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pseudo-label",
        help="stage 1: transcribe a manifest with the teacher and filter the pseudo-labels",
        description=(
            "Transcribe every utterance of --manifest (or --dataset) with the teacher and write "
            "DIR/pseudo_labels.jsonl (every utterance, with quality signals and the verdict), DIR/train.jsonl "
            "(the kept ones) and DIR/summary.json. Utterances with reference `text` are kept when their "
            "normalised WER is under --wer-threshold; the others pass label-free checks. Rerun the same "
            "command to resume an interrupted run; run it under `accelerate launch` to shard it."
        ),
    )
    parser.add_argument(
        "--teacher", default=None, help="local dir, hub id, or bundled:tiny.en / bundled:base"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--manifest", type=Path, default=None, help="JSONL manifest of the audio to label")
    source.add_argument("--dataset", default=None, help="Hugging Face dataset (hub id or local folder)")
    parser.add_argument("--output-dir", type=Path, default=None, help="where the outputs go")
    parser.add_argument("--config", type=Path, default=None, help="YAML/JSON file; section `pseudo_label`")
    parser.add_argument("--overwrite", action="store_true", default=None, help="redo a finished run")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--chunk-batches", type=int, default=None, help="batches per saved chunk, the unit of resuming (8)"
    )
    parser.add_argument(
        "--encoder-cache-dir",
        default=None,
        help="also keep the teacher's encoder output (float16) there: `distill --encoder-cache-dir` with the same "
        "folder then skips its encoder pass for a student that kept the teacher's encoder",
    )
    data = parser.add_argument_group("--dataset columns")
    data.add_argument("--split", default=None, help="dataset split, e.g. train")
    data.add_argument("--audio-column", default=None, help="audio column (audio)")
    data.add_argument("--text-column", default=None, help="reference text column (text); 'none' for none")
    data.add_argument("--id-column", default=None, help="column of unique ids (default: audio file names)")
    add_device_flags(parser)
    add_decoding_flags(parser)
    _add_filter_flags(parser)
    parser.set_defaults(handler=run)


def _add_filter_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (a number, or 'off')")
    group.add_argument("--wer-threshold", type=float, default=None, help="reject WER >= this percentage (10)")
    group.add_argument("--max-compression-ratio", type=_threshold, default=None, help="gzip ratio (2.4)")
    group.add_argument("--min-avg-logprob", type=_threshold, default=None, help="mean token log-prob (-0.8)")
    group.add_argument("--max-no-speech-prob", type=_threshold, default=None, help="no-speech prob. (off)")
    group.add_argument("--ngram-size", type=int, default=None, help="n for --max-repeated-ngrams (3)")
    group.add_argument(
        "--max-repeated-ngrams", type=_threshold, default=None, help="repeated n-grams allowed (2)"
    )
    group.add_argument("--min-chars-per-second", type=_threshold, default=None, help="(off)")
    group.add_argument("--max-chars-per-second", type=_threshold, default=None, help="(25)")
    group.add_argument(
        "--label-free-filters",
        dest="label_free",
        choices=["auto", "always", "never"],
        default=None,
        help="where label-free checks apply: auto = rows without reference text (default)",
    )


def run(args: argparse.Namespace) -> int:
    from speechkd.config import build_config, load_config_file
    from speechkd.pseudo_label import PseudoLabelConfig, check_inputs, format_summary, pseudo_label

    file_values = load_config_file(args.config, section="pseudo_label") if args.config else {}
    if args.manifest or args.dataset:  # an input given as a flag replaces the config file's input
        file_values = {k: v for k, v in file_values.items() if k not in ("manifest", "dataset")}
    flags = vars(args) | {"progress": False if args.no_progress else None}
    source = f"{args.config} [pseudo_label]" if args.config else "pseudo_label"
    config = build_config(PseudoLabelConfig, file_values, flags, source=source)
    check_inputs(config)  # before transformers loads
    quiet_transformers()
    summary = pseudo_label(config)
    if summary is not None:  # the main process
        print(format_summary(summary, config.output_dir))
    return 0
