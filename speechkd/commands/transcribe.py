"""`speechkd transcribe --model REF FILE... | --manifest M`: quick transcription with any model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechkd.commands import add_decoding_flags, add_device_flags, quiet_transformers


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio files or a manifest with any model",
        description=(
            "Transcribe FILEs or the utterances of a --manifest. Prints one transcript per line in input "
            "order (or writes JSONL with --output). With a manifest that has `text`, prints the normalised WER."
        ),
    )
    parser.add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="audio files (wav, flac, mp3, ogg)"
    )
    parser.add_argument("--model", default=None, help="local dir, hub id, or bundled:tiny.en / bundled:base")
    parser.add_argument("--manifest", type=Path, default=None, help="JSONL manifest instead of FILEs")
    parser.add_argument(
        "--output", type=Path, default=None, help="write rows (input fields + hypothesis) as JSONL"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--config", type=Path, default=None, help="YAML/JSON file; section `transcribe`")
    add_device_flags(parser)
    add_decoding_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from speechkd.config import build_config, load_config_file
    from speechkd.manifest import write_manifest
    from speechkd.transcribe import TranscribeConfig, input_records, score_rows, transcribe_records

    file_values = load_config_file(args.config, section="transcribe") if args.config else {}
    source = f"{args.config} [transcribe]" if args.config else "transcribe"
    config = build_config(TranscribeConfig, file_values, vars(args), source=source)
    records = input_records(args.files, args.manifest)
    quiet_transformers()
    rows = transcribe_records(config, records, progress=not args.no_progress)
    if args.output:
        write_manifest(args.output, rows)
    else:
        for row in rows:
            print(row["hypothesis"] if row["error"] is None else f"[{row['id']}: {row['error']}]")
    failed = [row for row in rows if row["error"] is not None]
    for row in failed:
        print(f"failed: {row['id']}: {row['error']}", file=sys.stderr)
    score = score_rows(rows, config.decoding.language)
    if score is not None:
        print(
            json.dumps({"model": config.model, **score}), file=sys.stderr if not args.output else sys.stdout
        )
    return 1 if failed and len(failed) == len(rows) else 0
