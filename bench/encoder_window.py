"""What cutting Whisper's 30 s padding does to accuracy and encoder time, per model and margin.

    HF_HUB_OFFLINE=1 python bench/encoder_window.py --models bundled:base runs/demo-cpu-stream/distill/final

Each model decodes the same dev lines (greedy, no timestamps) with its encoder reading the full 30 s window
(`padded`) and then only the audio plus MARGIN seconds, rounded up to whole seconds (what
`create-student --encoder-window audio` students read with a 1 s margin). Encoder time is measured alone,
per utterance, on one thread by default; the rows of one model run back to back on the same lines.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from speechkd.audio import SAMPLE_RATE, load_audio
from speechkd.commands import quiet_transformers
from speechkd.decoding import DecodingOptions, decode_short_form
from speechkd.encoder_window import max_frames, set_window, window_frames, window_of
from speechkd.manifest import read_manifest
from speechkd.models import load_model, speechkd_home
from speechkd.text import normalize, word_errors


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", required=True, help="model references")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=speechkd_home() / "data" / "fotaq" / "dev.jsonl",
        help="lines to decode",
    )
    parser.add_argument("--limit", type=int, default=80, help="first N lines of the manifest (80)")
    parser.add_argument("--margins", type=float, nargs="+", default=[1.0, 2.0, 5.0], help="seconds (1 2 5)")
    parser.add_argument("--language", default="en", help="language for multilingual models (en)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1; 0 = torch's default)")
    return parser.parse_args()


@torch.no_grad()
def run(model, processor, records, audios, margin: float | None, language: str | None) -> dict:
    multilingual = getattr(model.generation_config, "is_multilingual", False)
    options = DecodingOptions(batch_size=1, language=language if multilingual else None)
    encoder, most = model.get_encoder(), max_frames(model.config)
    hypotheses, encoder_seconds = [], 0.0
    for audio in audios:
        features = processor.feature_extractor([audio], sampling_rate=SAMPLE_RATE, return_tensors="pt")
        frames = most if margin is None else window_frames(model, len(audio) / SAMPLE_RATE, margin)
        started = time.perf_counter()
        states = encoder(features.input_features[..., :frames]).last_hidden_state
        encoder_seconds += time.perf_counter() - started
        hypotheses.append(
            decode_short_form(model, processor, [audio], options, encoder_states=states)[0].text
        )
    references = [normalize(r["text"], language) for r in records]
    wer = word_errors(references, [normalize(h, language) for h in hypotheses]).wer
    return {"wer": wer, "encoder_ms": 1000 * encoder_seconds / len(audios)}


def main() -> None:
    args = parse_args()
    quiet_transformers()
    if args.threads:
        torch.set_num_threads(args.threads)
    records = read_manifest(args.manifest)[: args.limit]
    audios = [load_audio(r["audio"]) for r in records]
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    print(f"{len(records)} lines of {args.manifest} ({seconds:.0f} s, mean {seconds / len(records):.1f} s)\n")
    print("| model (trained window) | encoder input | WER | encoder ms / line | encoder time vs padded |")
    print("|---|---|---:|---:|---:|")
    for ref in args.models:
        model, processor = load_model(ref, device="cpu")
        trained = window_of(model)
        set_window(model, "audio")  # accepts both the 30 s and the cut input
        padded = None
        for margin in [None, *args.margins]:
            row = run(model, processor, records, audios, margin, args.language)
            padded = padded or row["encoder_ms"]
            label = "30 s (padded)" if margin is None else f"audio + {margin:g} s"
            print(
                f"| {ref} ({trained}) | {label} | {100 * row['wer']:.1f} % | {row['encoder_ms']:.0f} | "
                f"{row['encoder_ms'] / padded:.2f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
