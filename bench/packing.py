"""Pseudo-labelling speed with and without packing: the teacher on short lines vs on the same lines packed to 30 s.

The same FOTAQ lines are transcribed twice: one line per input (length-grouped batches), and packed into clips of
up to 30 s per speaker (`speechkd data pack`). The clips are split into blocks; for each block both systems
transcribe the same audio (the clips, or the lines they hold), taking turns going first. WER is pooled over the
clips (each system's text for a clip against the clip's joined references, normalised). Prints one table.

    HF_HUB_OFFLINE=1 python bench/packing.py --manifest ~/.cache/speechkd/data/fotaq/train.jsonl \
        --model bundled:base --language en --limit 400 --threads 2
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pseudo_label import speechkd_system

from speechkd.audio import SAMPLE_RATE, load_audio
from speechkd.commands import quiet_transformers
from speechkd.manifest import read_manifest
from speechkd.packing import pack_manifest
from speechkd.text import normalize, word_errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, required=True, help="lines with `text` and `speaker`")
    parser.add_argument("--model", default="bundled:base")
    parser.add_argument("--language", default=None, help="for multilingual teachers, e.g. en")
    parser.add_argument("--limit", type=int, default=400, help="lines drawn at random (400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_transformers()

    records = read_manifest(args.manifest)
    keep = sorted(random.Random(args.seed).sample(range(len(records)), min(args.limit, len(records))))
    records = [records[i] for i in keep]
    by_id = {r["id"]: r for r in records}
    with tempfile.TemporaryDirectory() as folder:
        pack_manifest(records, folder, progress=False)
        clips = read_manifest(Path(folder) / "packed.jsonl")
        clip_audio = {c["id"]: load_audio(c["audio"]) for c in clips}
    line_audio = {r["id"]: load_audio(r["audio"]) for r in records}
    transcribe = speechkd_system(args.model, args.batch_size, language=args.language)

    def unpacked(block: list[dict]) -> list[str]:
        ids = [p for c in block for p in c["parts"]]
        texts = dict(zip(ids, transcribe([line_audio[i] for i in ids])))
        return [" ".join(texts[p] for p in c["parts"]) for c in block]

    def packed(block: list[dict]) -> list[str]:
        return transcribe([clip_audio[c["id"]] for c in block])

    systems = {"one line per input": unpacked, "packed to 30 s": packed}
    results = {name: {"wall": 0.0, "texts": []} for name in systems}
    bounds = np.linspace(0, len(clips), args.blocks + 1).astype(int)
    for b in range(args.blocks):
        block = clips[bounds[b] : bounds[b + 1]]
        names = list(systems)[b % 2 :] + list(systems)[: b % 2]
        for name in names:
            start = time.perf_counter()
            results[name]["texts"] += systems[name](block)
            results[name]["wall"] += time.perf_counter() - start
        print(
            f"block {b + 1}/{args.blocks}: " + ", ".join(f"{n} {r['wall']:.0f} s" for n, r in results.items())
        )

    seconds = sum(len(a) for a in clip_audio.values()) / SAMPLE_RATE
    references = [normalize(" ".join(by_id[p]["text"] for p in c["parts"])) for c in clips]
    base = results["one line per input"]["wall"]
    print(f"\n{len(records)} lines of {args.manifest} (seed {args.seed}) = {len(clips)} clips, {seconds:.0f} s of "
          f"audio (mean line {seconds / len(records):.1f} s, mean clip {seconds / len(clips):.1f} s), model "
          f"{args.model}, batch {args.batch_size}, {args.threads} thread(s), CPU\n")  # fmt: skip
    print("| teacher input | RTFx | speed-up | WER % (pooled over clips) |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        wer = word_errors(references, [normalize(t) for t in r["texts"]]).wer
        print(f"| {name} | {seconds / r['wall']:.2f} | {base / r['wall']:.2f}× | {100 * wer:.2f} |")


if __name__ == "__main__":
    main()
