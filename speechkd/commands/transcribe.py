"""`speechkd transcribe --model REF FILE... | --manifest M`: quick transcription with any model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechkd.commands import add_decoding_flags, add_device_flags, decoding_options


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
    parser.add_argument("--model", required=True, help="local dir, hub id, or bundled:tiny.en / bundled:base")
    parser.add_argument("--manifest", type=Path, default=None, help="JSONL manifest instead of FILEs")
    parser.add_argument(
        "--output", type=Path, default=None, help="write rows (input fields + hypothesis) as JSONL"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_flags(parser)
    add_decoding_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from speechkd.commands import quiet_transformers
    from speechkd.manifest import read_manifest, write_manifest
    from speechkd.transcribe import TranscribeConfig, score_rows, transcribe_records

    if bool(args.files) == bool(args.manifest):
        raise ValueError("give either audio FILEs or --manifest, not both and not neither")
    quiet_transformers()
    if args.manifest:
        records = read_manifest(args.manifest)
    else:
        records = [{"id": str(path), "audio": str(path.resolve())} for path in args.files]
    config = TranscribeConfig(
        model=args.model, device=args.device, dtype=args.dtype or "float32", decoding=decoding_options(args)
    )
    rows = transcribe_records(config, records, progress=not args.no_progress)
    if args.output:
        write_manifest(args.output, rows)
    else:
        for row in rows:
            print(row["hypothesis"] if row["error"] is None else f"[{row['id']}: {row['error']}]")
    failed = [row for row in rows if row["error"] is not None]
    for row in failed:
        print(f"failed: {row['id']}: {row['error']}", file=sys.stderr)
    score = score_rows(rows, args.language)
    if score is not None:
        print(json.dumps({"model": args.model, **score}), file=sys.stderr if not args.output else sys.stdout)
    return 1 if failed and len(failed) == len(rows) else 0
