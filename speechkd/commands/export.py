"""`speechkd export --format ctranslate2 MODEL OUT`: a student (or any Whisper) for faster-whisper."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="convert a model for a deployment engine (CTranslate2 / faster-whisper)",
        description=(
            "Convert MODEL (a student directory, a hub id or bundled:NAME) with CTranslate2's own converter "
            "into OUT, with the tokenizer and preprocessor files faster-whisper reads. Evaluate the result "
            "with `speechkd evaluate --engine faster-whisper --model OUT`."
        ),
    )
    parser.add_argument("model", help="transformers Whisper checkpoint: directory, hub id, or bundled:NAME")
    parser.add_argument("output_dir", type=Path, metavar="OUT", help="directory to write")
    parser.add_argument("--format", default="ctranslate2", choices=["ctranslate2"], help="(ctranslate2)")
    parser.add_argument(
        "--quantization",
        default=None,
        help="weights as stored: float32 (default), float16, int8, int8_float32 ...",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from speechkd.commands import quiet_transformers
    from speechkd.export import export_ctranslate2

    quiet_transformers()
    output_dir = export_ctranslate2(args.model, args.output_dir, args.quantization, overwrite=args.overwrite)
    print(output_dir)
    return 0
