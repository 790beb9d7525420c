"""Turn timed passes into per-utterance predictions and the metrics.json of `speechkd evaluate`."""

from __future__ import annotations

import dataclasses
import os
import platform
from collections import defaultdict

import torch

from speechkd.config import config_to_dict
from speechkd.evaluate.scoring import accuracy_report, paired_bootstrap, score_utterance
from speechkd.evaluate.speculative import round_speedup
from speechkd.evaluate.speed import CostProfile, duration_bucket, percentiles, rtfx
from speechkd.evaluate.timing import Passes
from speechkd.files import package_versions

HEADLINE_KEYS = (
    "wer", "wer_ortho", "cer", "sub_rate", "del_rate", "ins_rate", "rtfx", "n_utterances", "n_failed",
    "audio_seconds", "compute_seconds", "tokens_per_second", "latency_p50", "latency_p90", "parameters",
)  # fmt: skip


def prediction_rows(name: str, utterances: list[dict], passes: Passes) -> list[dict]:
    """One row per utterance the system decoded: input fields, hypothesis, normalised forms, errors, timing."""
    run = passes.of(name)
    at_one = passes.latency()
    latencies = at_one.systems.get(name, {}) if at_one else {}
    target = run.targets.get(name)
    plain = run.systems.get(target, {}) if target else {}
    rows = []
    for index in run.utterances:
        utterance, measured = utterances[index], run.systems[name][index]
        row = {key: utterance[key] for key in ("id", "manifest", "audio", "speaker", "duration", "reference")}
        row = {key: value for key, value in row.items() if value is not None}  # rows stay valid manifests
        row |= {"hypothesis": measured.get("hypothesis", ""), "error": measured["error"]}
        if measured["error"] is None:
            row |= score_utterance(utterance["reference"], row["hypothesis"], utterance["language"])
            row |= {"n_tokens": len(measured["tokens"]), "long_form": measured["long_form"]}
            row |= {"compute_s": measured["seconds"], "latency_s": latencies.get(index, {}).get("seconds")}
        if "draft_proposed" in measured:
            row |= {k: measured[k] for k in ("draft_proposed", "draft_accepted", "rounds")}
            greedy = plain.get(index, {})
            row["matches_greedy"] = measured.get("tokens") == greedy.get("tokens")
            row["greedy_hypothesis"] = greedy.get("hypothesis")
        rows.append(row)
    return rows


def speed_report(name: str, utterances: list[dict], passes: Passes) -> dict:
    """RTFx (pooled audio over compute seconds), tokens/s, and latency percentiles at batch size 1."""
    run = passes.of(name)
    decoded = [i for i, m in run.systems[name].items() if m["error"] is None]
    audio = sum(utterances[i]["duration"] for i in decoded)
    tokens = sum(len(run.systems[name][i]["tokens"]) for i in decoded)
    seconds = run.seconds[name]
    report = {
        "rtfx": rtfx(audio, seconds),
        "compute_seconds": seconds,
        "timed_audio_seconds": audio,
        "tokens_per_second": tokens / seconds if seconds else None,
        "batch_size": run.batch_size,
        "rtfx_by_duration": rtfx_by_duration(run.systems[name], utterances, decoded),
    }
    at_one = passes.latency()
    if at_one and name in at_one.systems:
        latencies = [m["seconds"] for m in at_one.systems[name].values() if m["error"] is None]
        points = percentiles(latencies)
        report |= {
            "latency_p50": points["p50"],
            "latency_p90": points["p90"],
            "latency_utterances": len(latencies),
        }
    return report


def rtfx_by_duration(measured: dict[int, dict], utterances: list[dict], decoded: list[int]) -> dict:
    """RTFx per duration bucket; an utterance's compute time is its share of its batch's (batches hold one window)."""
    audio, seconds = defaultdict(float), defaultdict(float)
    for i in decoded:
        bucket = duration_bucket(utterances[i]["duration"])
        audio[bucket] += utterances[i]["duration"]
        seconds[bucket] += measured[i]["seconds"]
    return {bucket: rtfx(audio[bucket], seconds[bucket]) for bucket in audio}


def system_report(name: str, system, utterances: list[dict], passes: Passes) -> tuple[dict, list[dict]]:
    rows = prediction_rows(name, utterances, passes)
    report = accuracy_report(rows) | speed_report(name, utterances, passes) | system.info()
    report["failed"] = [
        {"id": r["id"], "manifest": r["manifest"], "error": r["error"]} for r in rows if r["error"]
    ]
    return report, rows


def comparison_report(
    model: dict, baseline: dict, model_rows, baseline_rows, config, profiles: dict | None = None
) -> dict:
    """Speed-up of the model over the baseline, and the WER difference with a paired bootstrap 95% CI."""
    comparison = {"speedup": _ratio(model.get("rtfx"), baseline.get("rtfx"))}
    profiles = profiles or {}
    if "model" in profiles and "baseline" in profiles:
        decoded = [r["n_tokens"] + 1 for r in baseline_rows if r["error"] is None]  # + end of text
        tokens = sum(decoded) / len(decoded) if decoded else 1.0
        comparison |= component_speedups(profiles["model"], profiles["baseline"], tokens)
    if model.get("latency_p50") and baseline.get("latency_p50"):
        comparison["latency_p50_speedup"] = baseline["latency_p50"] / model["latency_p50"]
    comparison["speedup_by_duration"] = {
        bucket: _ratio(value, baseline.get("rtfx_by_duration", {}).get(bucket))
        for bucket, value in model.get("rtfx_by_duration", {}).items()
    }
    comparison["parameter_ratio"] = _ratio(baseline.get("parameters"), model.get("parameters"))
    bootstrap = paired_bootstrap(model_rows, baseline_rows, config.bootstrap_samples, config.seed)
    if bootstrap:
        comparison |= bootstrap
    return comparison


def component_speedups(model: dict, baseline: dict, tokens: float) -> dict:
    """Per-component speed-ups from the cost profiles: where the end-to-end speed-up comes from (or not).

    `equal_tokens_speedup` predicts the end-to-end speed-up at the baseline's TOKENS per utterance: the fair
    number for a student whose transcripts (untrained, looping) are longer or shorter than the teacher's.
    """
    return {
        "encoder_speedup": _ratio(baseline["encoder_ms"], model["encoder_ms"]),
        "decoder_step_speedup": _ratio(baseline["decoder_step_ms"], model["decoder_step_ms"]),
        "decoder_speedup": _ratio(baseline["generate_ms_per_token"], model["generate_ms_per_token"]),
        "equal_tokens_speedup": _ratio(_utterance_ms(baseline, tokens), _utterance_ms(model, tokens)),
        "baseline_tokens_per_utterance": tokens,
    }


def _utterance_ms(profile: dict, tokens: float) -> float:
    fields = {f.name for f in dataclasses.fields(CostProfile)}
    return CostProfile(**{k: v for k, v in profile.items() if k in fields}).utterance_ms(tokens)


def _ratio(a, b) -> float | None:
    return a / b if a and b else None


def speculative_report(spec: dict, spec_rows: list[dict], passes: Passes, system, profiles: dict) -> dict:
    """Speed-up of the model with its draft over the model alone (same pass), acceptance and mismatches."""
    run = passes.of("speculative")
    target = system.target
    plain_seconds, spec_seconds = run.seconds[target], run.seconds["speculative"]
    stats = system.stats
    decoded = [r for r in spec_rows if r["error"] is None]
    mismatches = [r for r in decoded if not r["matches_greedy"]]
    report = {
        "target": target,
        "draft": system.draft_kind,
        "draft_tokens": system.draft_options.tokens,
        "draft_schedule": system.draft_options.schedule,
        "n_utterances": len(decoded),
        "plain_seconds": plain_seconds,
        "speculative_seconds": spec_seconds,
        "speedup": _ratio(plain_seconds, spec_seconds),
        "rtfx": spec.get("rtfx"),
        "acceptance": stats.acceptance,
        "proposed": stats.proposed,
        "accepted": stats.accepted,
        "rounds": stats.rounds,
        "proposed_per_round": stats.proposed / stats.rounds if stats.rounds else None,
        "accepted_per_round": stats.accepted / stats.rounds if stats.rounds else None,
        "speculative_mismatches": len(mismatches),
        "mismatches": [
            {"id": r["id"], "greedy": r["greedy_hypothesis"], "speculative": r["hypothesis"]}
            for r in mismatches
        ],
    }
    report |= speculative_bounds(report, profiles.get(target), profiles.get("speculative"), spec_rows)
    return report


def speculative_bounds(report: dict, teacher: dict | None, assisted: dict | None, rows: list[dict]) -> dict:
    """What the measured costs allow: the decoder-loop speed-up at this acceptance and with a perfect draft,
    and the end-to-end speed-up of a perfect draft once the (shared, unchanged) encoder is counted."""
    if not (teacher and assisted and assisted.get("draft_step_ms") and assisted.get("verify_ms")):
        return {}
    step, draft, verify = teacher["decoder_step_ms"], assisted["draft_step_ms"], assisted["verify_ms"]
    k = assisted["verify_tokens"] - 1
    bounds = {"draft_cost_ratio": draft / step, "verify_cost_ratio": verify / step}
    if report["rounds"]:
        bounds["expected_decoder_speedup"] = round_speedup(
            report["proposed_per_round"], report["accepted_per_round"], step, draft, verify
        )
    perfect = round_speedup(k, k, step, draft, verify)
    decoded = [r["n_tokens"] + 1 for r in rows if r["error"] is None]
    tokens = sum(decoded) / len(decoded) if decoded else 1.0
    fixed = teacher["encoder_ms"] + teacher["generate_call_ms"]
    per_token = tokens * teacher["generate_ms_per_token"]
    return bounds | {
        "perfect_draft_decoder_speedup": perfect,
        "perfect_draft_speedup": (fixed + per_token) / (fixed + per_token / perfect),
    }


def assemble_metrics(config, systems: dict, utterances: list[dict], passes: Passes, profiles: dict) -> dict:
    """metrics.json: the model's headline numbers at the top, then every system, comparison and context."""
    reports, rows = {}, {}
    for name, system in systems.items():
        reports[name], rows[name] = system_report(name, system, utterances, passes)
    model = reports["model"]
    metrics = {key: model.get(key) for key in HEADLINE_KEYS}
    metrics |= {
        key: model[key] for key in ("failed", "manifests", "macro", "speakers", "long_form") if key in model
    }
    metrics["systems"] = reports
    if "baseline" in reports:
        metrics["comparison"] = comparison_report(
            model, reports["baseline"], rows["model"], rows["baseline"], config, profiles
        )
    if "speculative" in reports:
        metrics["speculative"] = speculative_report(
            reports["speculative"], rows["speculative"], passes, systems["speculative"], profiles
        )
    if profiles:
        metrics["cost_profile"] = profiles
    metrics["device"] = describe_device(next(iter(systems.values())).device)
    metrics["versions"] = library_versions()
    metrics["config"] = config_to_dict(config)
    return metrics


def describe_device(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def library_versions() -> dict:
    """Versions of what produced the numbers."""
    versions = package_versions(
        ("speechkd", "torch", "transformers", "ctranslate2", "faster-whisper", "jiwer")
    )
    versions["cpu_count"] = os.cpu_count()
    versions["torch_threads"] = torch.get_num_threads()
    return versions
