"""`speechkd create-student --teacher REF --decoder-layers N --output-dir DIR`: stage 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "create-student",
        help="initialise a student from the teacher, keeping maximally spaced decoder layers",
        description=(
            "Copy the teacher and keep N of its decoder layers, spread evenly with the first and last always "
            "kept (or the ones named by --layer-ids). Writes a transformers checkpoint, the processor and "
            "speechkd.json (teacher, layer map, parameter counts) into --output-dir. On CPU the encoder is most "
            "of the cost of short inputs: --encoder-window audio makes a student that encodes only the audio "
            "(plus 2 s) instead of 30 s, for streaming."
        ),
    )
    parser.add_argument(
        "--teacher", default=None, help="local dir, hub id, or bundled:tiny.en / bundled:base"
    )
    parser.add_argument("--output-dir", default=None, help="where the student checkpoint goes")
    parser.add_argument(
        "--decoder-layers", type=int, default=None, help="decoder layers the student keeps (default 2)"
    )
    parser.add_argument(
        "--layer-ids",
        type=_int_list,
        default=None,
        help="teacher decoder layers to keep, comma-separated, e.g. 0,5 (-1 = last); overrides --decoder-layers",
    )
    parser.add_argument(
        "--encoder-layers",
        type=int,
        default=None,
        help="encoder layers to keep, maximally spaced (default: the whole encoder, as the paper advises)",
    )
    parser.add_argument(
        "--encoder-window",
        choices=("padded", "audio"),
        default=None,
        help="padded: Whisper's 30 s input (default, the teacher's); audio: the student's encoder reads only the "
        "audio plus 2 s, which makes short inputs (streaming buffers) much cheaper to encode, once distil has "
        "trained the encoder for it (freeze_encoder: false); an untrained Whisper loops on such input",
    )
    parser.add_argument(
        "--overwrite", action="store_true", default=None, help="replace a non-empty --output-dir"
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML/JSON file; section `create_student`")
    parser.set_defaults(handler=run)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error


def run(args: argparse.Namespace) -> int:
    from speechkd.commands import quiet_transformers
    from speechkd.config import build_config, load_config_file
    from speechkd.student import CreateStudentConfig, create_student

    file_values = load_config_file(args.config, "create_student") if args.config else {}
    source = f"{args.config} [create_student]" if args.config else "create_student"
    config = build_config(CreateStudentConfig, file_values, vars(args), source=source)
    quiet_transformers()
    provenance = create_student(config)
    counts = provenance["parameters"]
    teacher, student = counts["teacher"]["total"], counts["student"]["total"]
    print(
        f"student: decoder layers {provenance['decoder_layer_map']} of the teacher's, "
        f"encoder layers {len(provenance['encoder_layer_map'])}, encoder window {provenance['encoder_window']}"
    )
    print(
        f"parameters: teacher {teacher / 1e6:.1f} M -> student {student / 1e6:.1f} M ({student / teacher:.0%})"
    )
    print(json.dumps({"output_dir": config.output_dir, **counts["student"]}))
    return 0
