"""Argument parsing for each `speechkd` subcommand: flags in, a config and one library call out."""

from __future__ import annotations

import argparse

from speechkd.options import DEFAULT_DTYPE, DTYPE_NAMES, TASKS


def quiet_transformers() -> None:
    """Keep transformers' per-call generation warnings off the user's terminal."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def add_device_flags(parser: argparse.ArgumentParser):
    """--device and --dtype in a "device" group (returned, for a command's own extra flags)."""
    group = parser.add_argument_group("device")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the GPU when present)")
    group.add_argument(
        "--dtype",
        default=None,
        choices=DTYPE_NAMES,
        help=f"weights and activations (default {DEFAULT_DTYPE}; float16 falls back to float32 on CPU)",
    )
    return group


def add_decoding_flags(
    parser: argparse.ArgumentParser,
    batch_size_help: str = "utterances per batch (16)",
    timestamps: bool = True,
):
    """The decoding flags in a "decoding" group (returned). Every default is None, "not given", so values
    from a --config file survive; DecodingOptions holds the real defaults."""
    group = parser.add_argument_group("decoding")
    group.add_argument("--batch-size", type=int, default=None, help=batch_size_help)
    group.add_argument("--num-beams", type=int, default=None, help="beam size (1 = greedy, the default)")
    group.add_argument("--language", default=None, help="language code for multilingual models, e.g. en")
    group.add_argument("--task", default=None, choices=TASKS, help="multilingual task")
    if timestamps:
        group.add_argument(
            "--return-timestamps", action="store_true", default=None, help="decode with timestamp tokens"
        )
    group.add_argument(
        "--max-new-tokens", type=int, default=None, help="token budget per utterance (default: from duration)"
    )
    group.add_argument(
        "--no-long-form",
        dest="long_form",
        action="store_false",
        default=None,
        help="reject audio over 30 s instead of decoding it long-form",
    )
    return group
