"""report.md and PNG plots (WER vs RTFx, per-speaker WER, latency histogram) from evaluate's metrics."""

from __future__ import annotations

from pathlib import Path

from speechkd.evaluate.speed import DURATION_BUCKETS
from speechkd.evaluate.timing import Passes
from speechkd.files import atomic_write_text

SYSTEM_LABELS = {"model": "model", "baseline": "baseline", "speculative": "teacher + draft (speculative)"}


def label(name: str, metrics: dict) -> str:
    """A system's name in tables: the speculative one names the system its draft helps."""
    target = metrics.get("speculative", {}).get("target")
    return f"{target} + draft (speculative)" if name == "speculative" and target else SYSTEM_LABELS[name]


def write_report(output_dir: Path, metrics: dict, passes: Passes, utterances: list[dict]) -> list[str]:
    """Write report.md and the plots into OUTPUT_DIR; return the plot file names."""
    plots = write_plots(output_dir, metrics, passes)
    atomic_write_text(output_dir / "report.md", render_report(metrics, plots))
    return plots


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _num(value, digits: int = 2, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def _ms(value) -> str:
    return "–" if value is None else f"{1000 * value:.0f}"


def _millions(value) -> str:
    return "–" if not value else f"{value / 1e6:.1f} M"


def render_report(metrics: dict, plots: list[str]) -> str:
    config, systems = metrics["config"], metrics["systems"]
    lines = [
        f"# Evaluation of `{config['model']}`",
        "",
        f"Device: {metrics['device']}; engine {config['engine']}, dtype {config['dtype']}, "
        f"batch size {config['batch_size']}; transformers {metrics['versions'].get('transformers')}, "
        f"torch {metrics['versions'].get('torch')}.",
        f"Manifests: {', '.join(f'`{m}`' for m in config['manifests'])}. WER is normalised (Whisper English "
        "normaliser; basic for other languages), RTFx = audio seconds / compute seconds (feature extraction + "
        "generate + detokenise, after warm-up), latency at batch size 1.",
        "",
    ]
    lines += systems_table(metrics)
    lines += _comparison_section(metrics.get("comparison", {})) + _speculative_section(
        metrics.get("speculative", {})
    )
    lines += (
        _manifest_section(systems)
        + _long_form_section(systems)
        + _profile_section(metrics.get("cost_profile"))
    )
    lines += _failed_section(systems)
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def summary_lines(metrics: dict) -> list[str]:
    """The systems table and the comparisons, for the terminal."""
    lines = systems_table(metrics)
    return (
        lines
        + _comparison_section(metrics.get("comparison", {}))
        + _speculative_section(metrics.get("speculative", {}))
    )


def systems_table(metrics: dict) -> list[str]:
    """One markdown row per system: size, accuracy, speed."""
    systems = metrics["systems"]
    lines = [
        "| system | model | parameters | WER % | ortho WER % | CER % | RTFx | speed-up | latency p50 / p90 (ms) | tokens/s | loops | repeated 3-grams | utterances (failed) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    comparison = metrics.get("comparison", {})
    speculative = metrics.get("speculative", {})
    for name, report in systems.items():
        speedup = {"model": comparison.get("speedup"), "speculative": speculative.get("speedup")}.get(name)
        speedup = 1.0 if name == "baseline" else speedup
        lines.append(
            f"| {label(name, metrics)} | `{report['ref']}` | {_millions(report.get('parameters'))} | "
            f"{_pct(report.get('wer'))} | {_pct(report.get('wer_ortho'))} | {_pct(report.get('cer'))} | "
            f"{_num(report.get('rtfx'), 1)} | {_num(speedup, 2, '×')} | "
            f"{_ms(report.get('latency_p50'))} / {_ms(report.get('latency_p90'))} | "
            f"{_num(report.get('tokens_per_second'), 1)} | {report.get('loops', '–')} | "
            f"{report.get('repeated_3grams', '–')} | {report['n_utterances']} ({report['n_failed']}) |"
        )
    lines += [
        "",
        "Speed-ups: model vs baseline at the evaluated batch size; speculative vs the same teacher alone, "
        "both at batch size 1. Loops: hypotheses over 3× their reference's words; repeated 3-grams: word "
        "3-grams that repeat an earlier one, summed over hypotheses.",
    ]
    return lines


def _comparison_section(comparison: dict) -> list[str]:
    if not comparison:
        return []
    lines = ["", "## Model against the baseline", ""]
    lines.append(f"- speed-up (RTFx ratio): {_num(comparison.get('speedup'), 2, '×')}")
    buckets = comparison.get("speedup_by_duration") or {}
    if buckets:
        ordered = [name for _, _, name in DURATION_BUCKETS if name in buckets]
        lines.append("- by clip duration: " + ", ".join(f"{b} {_num(buckets[b], 2, '×')}" for b in ordered))
    if comparison.get("decoder_speedup"):
        lines.append(
            f"- per component (batch size 1): encoder {_num(comparison['encoder_speedup'], 2, '×')}, decoder "
            f"per generated token {_num(comparison['decoder_speedup'], 2, '×')} (bare cached decoder step "
            f"{_num(comparison['decoder_step_speedup'], 2, '×')})"
        )
    if comparison.get("equal_tokens_speedup"):
        lines.append(
            "- predicted from those costs if the model wrote as many tokens per utterance as the baseline: "
            f"{_num(comparison['equal_tokens_speedup'], 2, '×')}"
        )
    if comparison.get("latency_p50_speedup"):
        lines.append(
            f"- latency p50 speed-up at batch size 1: {_num(comparison['latency_p50_speedup'], 2, '×')}"
        )
    if "wer_difference" in comparison:
        low, high = comparison["ci95"]
        lines.append(
            f"- WER difference (model − baseline): {100 * comparison['wer_difference']:+.2f} points, "
            f"95% CI [{100 * low:+.2f}, {100 * high:+.2f}] (paired bootstrap over "
            f"{comparison['n_utterances']} utterances, {comparison['bootstrap_samples']} resamples)"
        )
    return lines


def _speculative_section(spec: dict) -> list[str]:
    if not spec:
        return []
    lines = [
        "",
        "## Speculative decoding (batch size 1)",
        "",
        f"The {spec['target']} decodes greedily with the assistant as a {spec['draft']} draft: "
        f"{spec['draft_tokens']} tokens per round, schedule {spec['draft_schedule']}.",
        "",
        "| speed-up | acceptance | proposed / accepted per round | mismatches vs greedy | utterances |",
        "|---|---|---|---|---|",
        f"| {_num(spec.get('speedup'), 2, '×')} | {_pct(spec.get('acceptance'))} % | "
        f"{_num(spec.get('proposed_per_round'))} / {_num(spec.get('accepted_per_round'))} | "
        f"{spec['speculative_mismatches']} | {spec['n_utterances']} |",
    ]
    if spec.get("perfect_draft_speedup") is not None:
        encoder = (
            "shared and unchanged"
            if spec["draft"] == "decoder-only"
            else "the teacher's, plus the draft's own"
        )
        lines.append(
            f"\nMeasured costs: a draft step is {spec['draft_cost_ratio']:.2f} teacher steps, verifying "
            f"{spec['draft_tokens']} drafted tokens {spec['verify_cost_ratio']:.2f} teacher steps. At this "
            f"acceptance the decoder loop can be {_num(spec.get('expected_decoder_speedup'), 2, '×')} as fast; "
            f"with every drafted token accepted {_num(spec['perfect_draft_decoder_speedup'], 2, '×')}, which is "
            f"{_num(spec['perfect_draft_speedup'], 2, '×')} end to end with the encoder ({encoder}) counted."
        )
    for mismatch in spec.get("mismatches", [])[:10]:
        lines.append(
            f"- `{mismatch['id']}`: greedy {mismatch['greedy']!r} vs speculative {mismatch['speculative']!r}"
        )
    return lines


def _manifest_section(systems: dict) -> list[str]:
    names = list(next(iter(systems.values())).get("manifests", {}))
    if not names:
        return []
    lines = ["", "## Per manifest (WER %)", "", "| system | " + " | ".join(names) + " | macro |"]
    lines.append("|---|" + "---|" * (len(names) + 1))
    for name, report in systems.items():
        cells = [_pct(report["manifests"].get(m, {}).get("wer")) for m in names]
        lines.append(
            f"| {SYSTEM_LABELS[name]} | " + " | ".join(cells) + f" | {_pct(report['macro'].get('wer'))} |"
        )
    return lines


def _long_form_section(systems: dict) -> list[str]:
    rows = [(name, r["long_form"]) for name, r in systems.items() if "long_form" in r]
    if not rows:
        return []
    lines = ["", "## Long-form audio (> 30 s, sequential decoding)", ""]
    lines += [
        "| system | utterances | WER % | insertion rate % | repeated 5-grams (reference) |",
        "|---|---|---|---|---|",
    ]
    for name, lf in rows:
        lines.append(
            f"| {SYSTEM_LABELS[name]} | {lf['n_decoded']} | {_pct(lf.get('wer'))} | {_pct(lf.get('ins_rate'))} | "
            f"{lf['repeated_5grams']} ({lf.get('ref_repeated_5grams', '–')}) |"
        )
    return lines


def _profile_section(profiles: dict | None) -> list[str]:
    if not profiles:
        return []
    lines = ["", "## Where the time goes (batch size 1, ms)", ""]
    lines += [
        "| system | encoder (30 s window) | first decoder step (cross-attention K/V) | decoder step | "
        "vocabulary projection | generate: per call | generate: per token | framework overhead per token "
        "| draft step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in profiles.items():
        cells = [p["encoder_ms"], p["first_step_ms"], p["decoder_step_ms"], p["projection_ms"]]
        cells += [
            p["generate_call_ms"],
            p["generate_ms_per_token"],
            p["overhead_ms_per_token"],
            p["draft_step_ms"],
        ]
        lines.append(f"| {SYSTEM_LABELS[name]} | " + " | ".join(_num(c, 1) for c in cells) + " |")
    lines.append(
        "\nA decoder step runs every decoder layer and the vocabulary projection for one token; generate() is "
        "timed at forced lengths of 4 and 24 tokens (per token = the difference / 20); the overhead is what it "
        "spends per token beyond the bare step (logits processing, cache bookkeeping, Python)."
    )
    return lines


def _failed_section(systems: dict) -> list[str]:
    failed = next(iter(systems.values())).get("failed", [])
    if not failed:
        return []
    return ["", f"## Failed utterances ({len(failed)})", ""] + [
        f"- `{f['id']}` ({f['manifest']}): {f['error']}" for f in failed
    ]


def write_plots(output_dir: Path, metrics: dict, passes: Passes) -> list[str]:
    """The PNG plots that the data supports; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    for name, draw in (
        ("wer_vs_rtfx.png", _plot_wer_vs_rtfx),
        ("speaker_wer.png", _plot_speaker_wer),
        ("latency_hist.png", _plot_latency),
    ):
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        if draw(axes, metrics, passes):
            figure.tight_layout()
            figure.savefig(output_dir / name, dpi=110)
            plots.append(name)
        plt.close(figure)
    return plots


def _plot_wer_vs_rtfx(axes, metrics: dict, passes: Passes) -> bool:
    points = [
        (n, r["rtfx"], r["wer"])
        for n, r in metrics["systems"].items()
        if r.get("wer") is not None and r.get("rtfx")
    ]
    if not points:
        return False
    for name, x, y in points:
        axes.scatter(x, 100 * y, s=60)
        axes.annotate(SYSTEM_LABELS[name], (x, 100 * y), textcoords="offset points", xytext=(6, 6))
    axes.set(
        xlabel="RTFx (higher is faster)", ylabel="WER % (lower is better)", title="Accuracy against speed"
    )
    axes.grid(alpha=0.3)
    return True


def _plot_speaker_wer(axes, metrics: dict, passes: Passes) -> bool:
    systems = {n: r["speakers"] for n, r in metrics["systems"].items() if r.get("speakers")}
    speakers = sorted({s for per in systems.values() for s, v in per.items() if v.get("wer") is not None})
    if not speakers:
        return False
    width = 0.8 / len(systems)
    for k, (name, per) in enumerate(systems.items()):
        values = [100 * (per.get(s, {}).get("wer") or 0.0) for s in speakers]
        axes.bar([i + k * width for i in range(len(speakers))], values, width, label=SYSTEM_LABELS[name])
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(speakers))], speakers, rotation=45, ha="right")
    axes.set(ylabel="WER %", title="WER per speaker")
    axes.legend()
    return True


def _plot_latency(axes, metrics: dict, passes: Passes) -> bool:
    at_one = passes.latency()
    if at_one is None:
        return False
    drawn = False
    for name, measured in at_one.systems.items():
        latencies = [1000 * m["seconds"] for m in measured.values() if m["error"] is None]
        if latencies:
            axes.hist(latencies, bins=30, alpha=0.5, label=SYSTEM_LABELS.get(name, name))
            drawn = True
    if drawn:
        axes.set(xlabel="latency per utterance at batch size 1 (ms)", ylabel="utterances", title="Latency")
        axes.legend()
    return drawn
