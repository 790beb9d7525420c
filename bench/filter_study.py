"""How well do label-free filters predict a bad pseudo-label (WER >= threshold)? Prints markdown tables.

Pseudo-labels a seeded random subset of a labelled manifest (FOTAQ train) with the teacher through the
real stage (resumable: rerun to continue), then scores each label-free check alone, a threshold sweep per
signal, and the combined defaults against the reference WER the stage computed.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python bench/filter_study.py \
        --manifest ~/.cache/speechkd/data/fotaq/train.jsonl --teacher bundled:tiny.en --limit 400
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path

from speechkd.commands import quiet_transformers
from speechkd.filters import FilterConfig, label_free_reason
from speechkd.manifest import read_manifest
from speechkd.models import speechkd_home
from speechkd.options import DecodingOptions
from speechkd.pseudo_label import PseudoLabelConfig, pseudo_label
from speechkd.text import normalize, word_errors

# Every label-free threshold switched off: a study row switches one back on.
ALL_OFF = FilterConfig(
    max_compression_ratio=None,
    min_avg_logprob=None,
    max_no_speech_prob=None,
    max_repeated_ngrams=None,
    min_chars_per_second=None,
    max_chars_per_second=None,
    label_free="always",
)
CHECK_THRESHOLD = {  # label-free check -> the threshold it reads
    "compression_ratio": "max_compression_ratio",
    "low_logprob": "min_avg_logprob",
    "no_speech": "max_no_speech_prob",
    "repeated_ngrams": "max_repeated_ngrams",
    "chars_per_second": "max_chars_per_second",
}
SWEEPS = {
    "max_compression_ratio": [1.6, 1.8, 2.0, 2.4],
    "min_avg_logprob": [-0.5, -0.6, -0.7, -0.8, -1.0, -1.2],
    "max_no_speech_prob": [0.2, 0.3, 0.4, 0.6],
    "max_repeated_ngrams": [0, 1, 2, 4],
    "max_chars_per_second": [20.0, 25.0, 30.0],
    "min_chars_per_second": [2.0, 4.0, 6.0],
}


def subset(manifest: Path, limit: int, seed: int) -> list[dict]:
    records = read_manifest(manifest)
    random.Random(seed).shuffle(records)
    return records[:limit]


def score(rows: list[dict], config: FilterConfig, threshold: float, name: str) -> dict:
    """Precision/recall of "rejected" for "WER >= threshold", share kept, WER of kept vs rejected."""
    rejected = [label_free_reason(row, config) is not None for row in rows]
    bad = [row["wer"] * 100 >= threshold for row in rows]
    hits = sum(r and b for r, b in zip(rejected, bad))
    kept_rows = [row for row, r in zip(rows, rejected) if not r]
    rejected_rows = [row for row, r in zip(rows, rejected) if r]
    return {
        "filter": name,
        "precision": hits / sum(rejected) if any(rejected) else None,
        "recall": hits / sum(bad) if any(bad) else None,
        "kept": len(kept_rows) / len(rows),
        "wer_kept": pooled_wer(kept_rows),
        "wer_rejected": pooled_wer(rejected_rows),
        "bad_kept": sum(b and not r for r, b in zip(rejected, bad)) / max(1, len(kept_rows)),
    }


def pooled_wer(rows: list[dict]) -> float | None:
    if not rows:
        return None
    refs = [normalize(row["text"]) for row in rows]
    return word_errors(refs, [normalize(row["teacher_text"]) for row in rows]).wer


def table(results: list[dict]) -> str:
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f}"

    lines = [
        "| filter | precision % | recall % | kept % | WER kept % | WER rejected % | bad among kept % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cells = [r["precision"], r["recall"], r["kept"], r["wer_kept"], r["wer_rejected"], r["bad_kept"]]
        lines.append(f"| {r['filter']} | " + " | ".join(pct(c) for c in cells) + " |")
    return "\n".join(lines)


def only(field: str, value) -> FilterConfig:
    return dataclasses.replace(ALL_OFF, **{field: value})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, required=True, help="a labelled manifest (FOTAQ train)")
    parser.add_argument("--teacher", default="bundled:tiny.en")
    parser.add_argument("--limit", type=int, default=400, help="utterances in the random subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--wer-threshold", type=float, default=10.0, help="a bad pseudo-label: WER >= this %%"
    )
    parser.add_argument("--output-dir", type=Path, default=speechkd_home() / "bench" / "filter_study")
    args = parser.parse_args()
    quiet_transformers()

    records = subset(args.manifest, args.limit, args.seed)
    config = PseudoLabelConfig(
        teacher=args.teacher,
        output_dir=str(args.output_dir / f"{args.teacher.replace(':', '_').replace('/', '_')}-{args.limit}"),
        manifest=str(args.manifest),
        decoding=DecodingOptions(batch_size=args.batch_size),
        chunk_batches=2,
    )
    summary_dir = Path(config.output_dir)
    if not (summary_dir / "summary.json").exists():
        pseudo_label(config, records)
    rows = [r for r in read_manifest(summary_dir / "pseudo_labels.jsonl") if r.get("wer") is not None]
    t = args.wer_threshold
    defaults = dataclasses.replace(FilterConfig(), label_free="always")
    good = [r for r in rows if r["wer"] * 100 < t]
    print(f"{len(rows)} utterances of {args.manifest} (seed {args.seed}), teacher {args.teacher}")
    print(f"bad = WER >= {t:g}%: {len(rows) - len(good)} ({1 - len(good) / len(rows):.1%}); WER of all "
          f"{100 * pooled_wer(rows):.1f}%; the reference WER filter keeps {len(good) / len(rows):.1%} "
          f"at WER {100 * pooled_wer(good):.1f}%\n")  # fmt: skip
    results = [score(rows, ALL_OFF, t, "empty_output only (always on)")]
    for check, field in CHECK_THRESHOLD.items():
        if getattr(defaults, field) is not None:
            results.append(
                score(
                    rows,
                    only(field, getattr(defaults, field)),
                    t,
                    f"{check} ({field}={getattr(defaults, field):g})",
                )
            )
    results.append(score(rows, defaults, t, "**all defaults combined**"))
    print(table(results))
    print("\nthreshold sweeps (one check alone):\n")
    print(table([score(rows, only(f, v), t, f"{f}={v:g}") for f, values in SWEEPS.items() for v in values]))
    print("\ncombined (defaults, varying the log-probability and no-speech thresholds):\n")
    combined = [
        score(
            rows,
            dataclasses.replace(defaults, min_avg_logprob=lp, max_no_speech_prob=ns),
            t,
            f"min_avg_logprob={lp}, max_no_speech_prob={ns}",
        )
        for lp in (None, -0.5, -0.6, -0.7, -0.8, -1.0)
        for ns in (None, 0.2)
    ]
    print(table(combined))


if __name__ == "__main__":
    main()
