"""An audio-window student at batch size 16: one window per batch (today) against the batch's longest window (before).

    HF_HUB_OFFLINE=1 python bench/window_batches.py --model runs/demo-cpu/distill/final --manifest runs/demo-cpu/data/eval.jsonl

`grouped`: speechkd's decoding loop, batches of one encoder window each, so every line is read on its own
window (its transcript is the batch-size-1 one). `longest`: what speechkd did before issue 17: length-sorted
batches whose encoder read the longest clip's window, so a short line's input depended on its batch-mates.
`single`: batch size 1, the reference transcripts. The modes alternate round by round on the same lines; the
table gives pooled RTFx (audio seconds / decode seconds, feature extraction included), WER, and how many
transcripts differ from batch size 1.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from speechkd.audio import SAMPLE_RATE, load_audio
from speechkd.commands import quiet_transformers
from speechkd.decoding import DecodingOptions, decode_audios, decode_short_form, length_grouped_batches
from speechkd.encoder_window import cut_features, window_of
from speechkd.manifest import read_manifest
from speechkd.models import load_model
from speechkd.text import normalised_word_errors


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="an audio-window student (create-student --encoder-window audio)"
    )
    parser.add_argument("--manifest", type=Path, required=True, help="lines to decode (with `text`)")
    parser.add_argument("--limit", type=int, default=100, help="first N lines (100)")
    parser.add_argument("--batch-size", type=int, default=16, help="(16)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per mode (2)")
    parser.add_argument("--language", default="en", help="language for multilingual models (en)")
    return parser.parse_args()


def longest_window(model, processor, audios, options: DecodingOptions) -> list[str]:
    """The old rule: length-sorted batches, each encoded on the window of its longest clip."""
    texts = [""] * len(audios)
    for batch in length_grouped_batches([len(a) for a in audios], options.batch_size):
        clips = [audios[i] for i in batch]
        features = processor.feature_extractor(
            clips, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        longest = max(len(a) for a in clips) / SAMPLE_RATE
        states = model.get_encoder()(cut_features(model, features, longest)).last_hidden_state
        for i, result in zip(
            batch, decode_short_form(model, processor, clips, options, encoder_states=states)
        ):
            texts[i] = result.text
    return texts


def grouped(model, processor, audios, options: DecodingOptions) -> list[str]:
    return [r.text for r in decode_audios(model, processor, audios, options)]


@torch.no_grad()
def main() -> None:
    args = parse_args()
    quiet_transformers()
    model, processor = load_model(args.model, device="cpu")
    if window_of(model) != "audio":
        raise SystemExit(f"{args.model} reads Whisper's padded 30 s window: nothing to compare")
    records = read_manifest(args.manifest)[: args.limit]
    audios = [load_audio(r["audio"]) for r in records]
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    language = args.language if getattr(model.generation_config, "is_multilingual", False) else None
    options = DecodingOptions(batch_size=args.batch_size, language=language)
    single = DecodingOptions(batch_size=1, language=language)
    modes = {
        "grouped": lambda: grouped(model, processor, audios, options),
        "longest": lambda: longest_window(model, processor, audios, options),
        "single": lambda: grouped(model, processor, audios, single),
    }
    times, texts = dict.fromkeys(modes, 0.0), {}
    for _ in range(args.rounds):
        for name, run in modes.items():
            started = time.perf_counter()
            texts[name] = run()
            times[name] += time.perf_counter() - started
    references = [r["text"] for r in records]
    print(
        f"{len(records)} lines, {seconds:.1f} s of audio, batch size {args.batch_size}, {args.rounds} rounds\n"
    )
    print("| mode | batch size | RTFx | WER % | transcripts unlike batch size 1 |")
    print("|---|---|---|---|---|")
    for name in modes:
        wer = normalised_word_errors(references, texts[name], args.language).wer
        differ = sum(a != b for a, b in zip(texts[name], texts["single"]))
        size = 1 if name == "single" else args.batch_size
        rtfx = seconds * args.rounds / times[name]
        print(f"| {name} | {size} | {rtfx:.1f} | {100 * wer:.2f} | {differ} |")


if __name__ == "__main__":
    main()
