"""Stage 4: how much faster is the student, how much worse, and can it make the teacher faster?"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechkd.decoding import (
    language_kwargs,
    length_grouped_batches,
    load_batch,
    utterance_duration,
)
from speechkd.encoder_window import window_of
from speechkd.evaluate.config import EvaluateConfig, check_inputs
from speechkd.evaluate.engines import SpeculativeEngine, load_engine, load_speculative_engine
from speechkd.evaluate.results import assemble_metrics, prediction_rows
from speechkd.evaluate.speculative import DraftStats
from speechkd.evaluate.speed import rotated, timed
from speechkd.evaluate.timing import Pass, Passes
from speechkd.files import atomic_write_json
from speechkd.manifest import ManifestError, read_manifest, write_manifest


def evaluate(config: EvaluateConfig) -> dict:
    """Run the evaluation and write predictions*.jsonl, report.md, plots and metrics.json; return the metrics."""
    from speechkd.evaluate.report import write_report

    check_inputs(config)
    output_dir = Path(config.output_dir)
    utterances = load_utterances(config)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        systems, passes = measure(config, utterances)
        profiles = _profiles(systems, utterances, passes.main, config)
        metrics = assemble_metrics(config, systems, utterances, passes, profiles)
    finally:
        torch.set_num_threads(threads)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in systems:
        write_manifest(output_dir / _predictions_file(name), prediction_rows(name, utterances, passes))
    write_report(output_dir, metrics, passes, utterances)
    atomic_write_json(output_dir / "metrics.json", metrics)  # last: its presence marks a finished evaluation
    return metrics


def measure(config: EvaluateConfig, utterances: list[dict]) -> tuple[dict, Passes]:
    """Load the systems and run the timed passes: at the batch size, then at batch size 1 where needed."""
    systems = _load_systems(config)
    speculative = systems.pop("speculative", None)
    main_systems = list(systems.values())
    if speculative is not None and config.decoding.batch_size == 1:
        main_systems.append(speculative)
    passes = Passes(run_pass(main_systems, utterances, config, "evaluate"))
    passes.at_one = _batch_size_one_pass(config, systems, speculative, utterances)
    if speculative is not None:
        systems["speculative"] = speculative
    return systems, passes


def _predictions_file(system: str) -> str:
    return "predictions.jsonl" if system == "model" else f"predictions-{system}.jsonl"


def load_utterances(config: EvaluateConfig) -> list[dict]:
    """Every manifest's records, tagged with the manifest's name; checks references unless --no-reference."""
    names = _manifest_names(config.manifests)
    utterances = []
    for path, name in zip(config.manifests, names):
        records = read_manifest(path)[: config.max_utterances]
        if not config.no_reference:
            _require_references(path, records)
        for record in records:
            reference = record.get("text") if not config.no_reference else None
            utterances.append(
                {
                    "id": record["id"],
                    "manifest": name,
                    "audio": record["audio"],
                    "reference": reference,
                    "speaker": record.get("speaker"),
                    "language": record.get("language") or config.decoding.language,
                    "duration": utterance_duration(record),
                }
            )
    if not utterances:
        raise ManifestError(config.manifests[0], "no utterances to evaluate")
    return utterances


def _manifest_names(paths: tuple[str, ...]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    return [
        stem if stems.count(stem) == 1 else f"{Path(p).parent.name}/{stem}" for p, stem in zip(paths, stems)
    ]


def _require_references(path: str, records: list[dict]) -> None:
    missing = [r["id"] for r in records if not isinstance(r.get("text"), str)]
    if missing:
        raise ManifestError(
            path,
            f"{len(missing)} of {len(records)} utterances have no `text` reference (first: {missing[0]!r}), "
            "so there is nothing to score; pass --no-reference to measure speed and keep transcripts only",
        )


def _load_systems(config: EvaluateConfig) -> dict:
    threads = config.threads or torch.get_num_threads()  # CTranslate2 gets as many threads as torch
    common = {"engine": config.engine, "device": config.device, "dtype": config.dtype}
    common |= {"compute_type": config.compute_type, "threads": threads}
    systems = {"model": load_engine("model", config.model, options=config.decoding, **common)}
    if config.baseline:
        systems["baseline"] = load_engine("baseline", config.baseline, options=config.decoding, **common)
    if config.assistant:  # the draft helps the teacher: the baseline when there is one
        teacher = systems.get("baseline", systems["model"])
        systems["speculative"] = load_speculative_engine(
            "speculative", teacher, config.assistant, config.draft
        )
    return systems


def _batch_size_one_pass(config: EvaluateConfig, systems: dict, speculative, utterances: list[dict]):
    """Latency (and speculative decoding) at batch size 1, when the main pass ran at another batch size."""
    if config.decoding.batch_size == 1 or (config.latency_utterances == 0 and speculative is None):
        return None
    subset = utterances[: config.latency_utterances]  # speculative decoding too: it is timed here
    at_one = [s.at_batch_size(1) for s in systems.values()]
    if speculative is not None:
        at_one.append(speculative)
    return run_pass(
        at_one,
        subset,
        dataclasses.replace(config, decoding=dataclasses.replace(config.decoding, batch_size=1)),
        "batch size 1",
    )


def _window_model(systems: list):
    """The first system whose encoder reads an audio window: batches then hold one window each, for all."""
    for system in systems:
        model = getattr(system, "model", None)
        if model is not None and window_of(model) == "audio":
            return model
    return None


def run_pass(systems: list, utterances: list[dict], config: EvaluateConfig, label: str) -> Pass:
    """Decode UTTERANCES with every system, batch by batch, rotating the order so noise hits all alike."""
    durations = [u["duration"] for u in utterances]
    batches = length_grouped_batches(durations, config.decoding.batch_size, _window_model(systems))
    measured = {s.name: {} for s in systems}
    seconds = dict.fromkeys(measured, 0.0)
    warm = False
    for step, batch in enumerate(tqdm(batches, desc=label, unit="batch", disable=not config.progress)):
        audios, errors = load_batch([utterances[i]["audio"] for i in batch])
        good = [k for k, audio in enumerate(audios) if audio is not None]
        for k, error in enumerate(errors):
            if error is not None:
                for system in systems:
                    measured[system.name][batch[k]] = {"error": f"audio_error: {error}"}
        if not good:
            continue
        clips = [audios[k] for k in good]
        if not warm:
            _warm_up(systems, clips, config.warmup)
            warm = True
        for system in rotated(systems, step):
            results, elapsed = timed(system.device, system.transcribe, clips)
            seconds[system.name] += elapsed
            stats = getattr(system, "last_stats", None)
            for k, result in zip(good, results):
                measured[system.name][batch[k]] = _measurement(result, elapsed / len(good), stats)
    return Pass(
        config.decoding.batch_size,
        [i for batch in batches for i in batch],
        measured,
        seconds,
        {s.name: getattr(s, "target", None) for s in systems},
    )


def _warm_up(systems: list, clips: list, calls: int) -> None:
    for system in systems:
        for _ in range(calls):
            system.transcribe(clips)
        if isinstance(system, SpeculativeEngine):
            system.stats = DraftStats()  # warm-up rounds are not part of the measured acceptance


def _measurement(result, seconds: float, stats) -> dict:
    measurement = {
        "hypothesis": result.text,
        "tokens": result.tokens,
        "error": result.error,
        "long_form": result.long_form,
        "seconds": seconds,
    }
    if stats is not None:
        measurement |= {
            "draft_proposed": stats.proposed,
            "draft_accepted": stats.accepted,
            "rounds": stats.rounds,
        }
    return measurement


def _profiles(systems: dict, utterances: list[dict], main: Pass, config: EvaluateConfig) -> dict:
    """Per-component costs of the transformers systems on a few decoded clips, after all the timed passes;
    clip by clip, the systems in rotating order, so machine noise hits all alike."""
    from speechkd.audio import load_audio
    from speechkd.evaluate.speed import measure_costs, summarize_costs

    if config.profile_utterances <= 0 or config.engine != "transformers":
        return {}
    model_results = main.systems["model"]
    chosen = [i for i in main.utterances if model_results.get(i, {}).get("error") is None]
    chosen = [i for i in chosen if utterances[i]["duration"] <= 30][: config.profile_utterances]
    measured = {name: [] for name in systems}
    for step, index in enumerate(chosen):
        audio = load_audio(utterances[index]["audio"])
        for name in rotated(list(systems), step):
            system = systems[name]
            kwargs = language_kwargs(system.model, system.options) | system.generate_kwargs
            draft = getattr(system, "draft", None)
            measured[name].append(
                measure_costs(system.model, system.processor, audio, kwargs, draft, _verify_tokens(system))
            )
    if not chosen:
        return {}
    return {
        name: summarize_costs(systems[name].model, runs, _verify_tokens(systems[name])).as_dict()
        for name, runs in measured.items()
    }


def _verify_tokens(system) -> int:
    """The width of one verification: the draft's tokens per round plus the teacher's own."""
    options = getattr(system, "draft_options", None)
    return options.tokens + 1 if options is not None else 6
