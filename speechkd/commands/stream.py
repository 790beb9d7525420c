"""`speechkd stream --model REF --audio FILE | --mic`: live transcription in the terminal, with latency statistics."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from speechkd.commands import add_device_flags, quiet_transformers

GREY, RESET, CLEAR_LINE = "\033[90m", "\033[0m", "\r\033[K"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="streaming transcription demo (LocalAgreement-2) with latency statistics",
        description=(
            "Play an audio file as if live (or capture a microphone) and transcribe it as it arrives: "
            "committed text is printed as it is confirmed, the partial hypothesis is redrawn in place. "
            "At the end: word latency (emission time minus the time the word ended in the audio: mean, "
            "p50, p90), real-time factor, and WER against the offline transcript or --reference."
        ),
    )
    parser.add_argument("--model", default=None, help="local dir, hub id, or bundled:tiny.en / bundled:base")
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML/JSON file; section `stream` (flags win)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--audio", type=Path, help="audio file to stream (wav, flac, mp3, ogg)")
    source.add_argument(
        "--mic", action="store_true", default=None, help="capture the default microphone (needs sounddevice)"
    )
    parser.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        default=None,
        help="do not wait for the audio in real time; latency uses a simulated clock (arrival + compute)",
    )
    parser.add_argument("--chunk-seconds", type=float, default=None, help="new audio per update (1.0)")
    parser.add_argument("--trim-seconds", type=float, default=None, help="trim the buffer past this (15)")
    parser.add_argument("--prompt-chars", type=int, default=None, help="committed text used as prompt (200)")
    parser.add_argument("--language", default=None, help="language code for multilingual models, e.g. en")
    parser.add_argument("--num-beams", type=int, default=None, help="beam size (1 = greedy)")
    parser.add_argument(
        "--reference", type=Path, default=None, help="reference transcript (text file) for WER"
    )
    parser.add_argument(
        "--no-offline",
        dest="offline",
        action="store_false",
        default=None,
        help="skip the offline transcript (no WER without --reference)",
    )
    parser.add_argument("--mic-seconds", type=float, default=None, help="stop the microphone after N s")
    parser.add_argument("--json", type=Path, default=None, help="also write the statistics as JSON")
    add_device_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from speechkd.config import build_config, load_config_file
    from speechkd.files import atomic_write_json
    from speechkd.streaming.stream import StreamConfig, stream

    file_values = load_config_file(args.config, section="stream") if args.config else {}
    if args.audio or args.mic:  # a source given as a flag replaces the config file's
        file_values = {k: v for k, v in file_values.items() if k not in ("audio", "mic")}
    source = f"{args.config} [stream]" if args.config else "stream"
    config = build_config(StreamConfig, file_values, vars(args), source=source)
    quiet_transformers()
    view = TerminalView(sys.stdout)
    try:
        outcome = stream(config, view.show)
    finally:
        view.close()
    print(format_statistics(outcome.stats, outcome.reference_kind))
    if args.json:
        atomic_write_json(args.json, {"model": config.model, "audio": config.audio or "mic", **outcome.stats})
    return 0


class TerminalView:
    """Committed text as lines, the partial hypothesis redrawn in place (grey) when writing to a terminal."""

    def __init__(self, stream):
        self.stream, self.tty = stream, stream.isatty()

    def show(self, update, emitted_at: float) -> None:
        if self.tty:
            self.stream.write(CLEAR_LINE)
        if update.committed:
            self.stream.write(f"{emitted_at:7.2f}s  {' '.join(w.text for w in update.committed)}\n")
        if self.tty and update.partial:
            width = shutil.get_terminal_size().columns - 12
            partial = update.partial_text
            partial = partial if len(partial) <= width else "…" + partial[-width + 1 :]
            self.stream.write(f"{'':9}{GREY}{partial}{RESET}")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()


def format_statistics(stats: dict, reference_kind: str) -> str:
    latency = stats["latency"]
    lines = [
        "",
        f"words committed  {stats['n_words']} in {stats['n_updates']} updates, {stats['n_trims']} trims "
        f"(max buffer {stats['max_buffer_seconds']:.1f} s)",
        f"audio            {stats['audio_seconds']:.1f} s, compute {stats['compute_seconds']:.1f} s, "
        f"RTF {stats['rtf']:.2f}",
    ]
    if latency["mean"] is not None:
        lines.append(
            f"word latency     mean {latency['mean']:.2f} s, p50 {latency['p50']:.2f} s, p90 {latency['p90']:.2f} s"
        )
    if stats.get("wer") is not None:
        lines.append(f"WER              {100 * stats['wer']:.1f}% vs the {reference_kind}")
    return "\n".join(lines)
