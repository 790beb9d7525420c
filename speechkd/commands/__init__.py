"""Argument parsing for each `speechkd` subcommand: flags in, a config and one library call out."""

from __future__ import annotations

import argparse


def quiet_transformers() -> None:
    """Keep transformers' per-call generation warnings off the user's terminal."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1 ... (default: the GPU when present)"
    )
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="weights and activations (default float32; float16 falls back to float32 on CPU)",
    )


def add_decoding_flags(parser: argparse.ArgumentParser, batch_size: int = 16) -> None:
    group = parser.add_argument_group("decoding")
    group.add_argument(
        "--batch-size", type=int, default=batch_size, help=f"utterances per batch ({batch_size})"
    )
    group.add_argument("--num-beams", type=int, default=1, help="beam size (1 = greedy, the default)")
    group.add_argument("--language", default=None, help="language code for multilingual models, e.g. en")
    group.add_argument("--task", default=None, choices=["transcribe", "translate"], help="multilingual task")
    group.add_argument("--return-timestamps", action="store_true", help="decode with timestamp tokens")
    group.add_argument(
        "--max-new-tokens", type=int, default=None, help="token budget per utterance (default: from duration)"
    )
    group.add_argument(
        "--no-long-form",
        dest="long_form",
        action="store_false",
        help="reject audio over 30 s instead of decoding it long-form",
    )


def decoding_options(args: argparse.Namespace):
    from speechkd.decoding import DecodingOptions

    return DecodingOptions(
        batch_size=args.batch_size,
        num_beams=args.num_beams,
        language=args.language,
        task=args.task,
        return_timestamps=args.return_timestamps,
        max_new_tokens=args.max_new_tokens,
        long_form=args.long_form,
    )
