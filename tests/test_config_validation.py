"""Every stage option is checked where it is defined: wrong kinds, ranges and choices are refused by name."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from speechkd.cli import build_parser, main
from speechkd.config import ConfigError, build_config, check_section, nested_fields, option_paths
from speechkd.distill.config import RUN_DEFINING, DistillConfig
from speechkd.evaluate.config import DraftOptions, EvaluateConfig
from speechkd.filters import FilterConfig
from speechkd.options import DecodingOptions
from speechkd.pseudo_label import PseudoLabelConfig
from speechkd.streaming.config import StreamingConfig
from speechkd.streaming.serve import ServerConfig
from speechkd.streaming.stream import StreamConfig
from speechkd.student import CreateStudentConfig
from speechkd.transcribe import TranscribeConfig

REPO = Path(__file__).resolve().parents[1]

# Each config with the least it needs to be valid.
VALID = {
    PseudoLabelConfig: {"teacher": "bundled:tiny.en", "output_dir": "out", "manifest": "in.jsonl"},
    FilterConfig: {},
    CreateStudentConfig: {"teacher": "bundled:tiny.en", "output_dir": "student"},
    DistillConfig: {"teacher": "t", "student": "s", "train_manifest": "train.jsonl", "output_dir": "out"},
    EvaluateConfig: {"model": "m", "manifests": ("dev.jsonl",), "output_dir": "out"},
    DraftOptions: {},
    DecodingOptions: {},
    StreamingConfig: {},
    StreamConfig: {"model": "m", "audio": "a.wav"},
    ServerConfig: {},
    TranscribeConfig: {"model": "m"},
}

# An out-of-range value or a bad choice for every option that has a rule besides its kind.
OUT_OF_RANGE = {
    PseudoLabelConfig: {"teacher": "", "output_dir": "", "dtype": "float64", "chunk_batches": 0},
    FilterConfig: {
        "wer_threshold": -1, "max_compression_ratio": -2.4, "min_avg_logprob": 0.5, "max_no_speech_prob": 1.5,
        "ngram_size": 0, "max_repeated_ngrams": -1, "min_chars_per_second": -1, "max_chars_per_second": -25,
        "label_free": "sometimes",
    },
    CreateStudentConfig: {
        "teacher": "", "output_dir": "", "decoder_layers": 0, "layer_ids": (), "encoder_layers": -1,
        "encoder_window": "wide",
    },
    DistillConfig: {
        "teacher": "", "student": "", "train_manifest": "", "output_dir": "", "label_field": "",
        "task": "summarise", "ce_weight": -0.8, "kl_weight": -1, "temperature": 0, "mse_weight": -1,
        "learning_rate": 0, "weight_decay": -0.1, "warmup_steps": -1, "lr_schedule": "cosine",
        "max_grad_norm": -1, "batch_size": -3, "gradient_accumulation_steps": 0, "max_steps": 0, "epochs": 0,
        "mixed_precision": "fp8", "timestamp_probability": 1.2, "prompt_probability": -0.1,
        "prompt_max_tokens": 1, "encoder_cache": "cloud", "teacher_topk": -1, "eval_steps": 0,
        "eval_max_utterances": 0, "log_steps": 0, "save_steps": 0, "keep_checkpoints": 0, "seed": -1,
        "num_workers": -1, "stop_after": 0,
    },
    EvaluateConfig: {
        "model": "", "manifests": (), "output_dir": "", "engine": "onnx", "dtype": "int4", "threads": 0,
        "max_utterances": 0, "warmup": -1, "latency_utterances": -1, "profile_utterances": -1,
        "bootstrap_samples": 0, "seed": -1,
    },
    DraftOptions: {"tokens": 0, "schedule": "greedy", "confidence": 2.0},
    DecodingOptions: {"batch_size": 0, "num_beams": -1, "task": "transcribe-and-translate", "max_new_tokens": 0},
    StreamingConfig: {"chunk_seconds": 0, "trim_seconds": 26.0, "max_buffer_seconds": 31.0, "prompt_chars": -1},
    StreamConfig: {"model": "", "mic_seconds": 0, "dtype": "half"},
    ServerConfig: {
        "dtype": "half", "port": 70000, "max_message_bytes": 0, "max_session_seconds": -1, "max_clients": 0,
        "idle_seconds": 0,
    },
    TranscribeConfig: {"model": "", "dtype": "float64"},
}  # fmt: skip

# Options whose every value of the right kind is valid, and why.
ANY_VALUE_OF_ITS_KIND = {
    "manifest", "dataset", "split", "audio_column", "text_column", "id_column", "encoder_cache_dir",  # paths, names
    "eval_manifest", "baseline", "assistant", "audio", "reference",  # paths / model references
    "device",  # any torch device string; torch judges it when the model loads
    "language",  # a Whisper language code or name; the tokenizer judges it
    "compute_type",  # CTranslate2's own list, which depends on the build and the device
    "host",  # an interface name or address
    "model",  # required where a stage needs it (ServerConfig: run_server), else any reference
    "mic", "offline", "as_fast_as_possible", "overwrite", "progress", "resume", "no_reference",  # booleans
    "return_timestamps", "long_form", "token_timestamps", "keep_encoder_states", "gradient_checkpointing",
    "freeze_encoder", "freeze_embed_positions", "freeze_embed_tokens", "eval_at_start",
    "decoding", "filters", "eval_decoding", "draft", "streaming",  # nested configs: their own options
}  # fmt: skip


def wrong_kind(annotation: str):
    """A value of the wrong kind for a field declared as ANNOTATION."""
    base = annotation.split("|")[0].strip().split("[")[0]
    return {"bool": "yes", "int": "many", "float": "fast", "str": 3, "tuple": 3}.get(base, "not a config")


FIELDS = [(cls, f) for cls in VALID for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(("cls", "field"), FIELDS, ids=[f"{c.__name__}.{f.name}" for c, f in FIELDS])
def test_a_value_of_the_wrong_kind_is_refused_by_name(cls, field):
    with pytest.raises(ConfigError, match=rf"\b{field.name}\b"):
        cls(**(VALID[cls] | {field.name: wrong_kind(str(field.type))}))


RULES = [(cls, name, value) for cls, rules in OUT_OF_RANGE.items() for name, value in rules.items()]


@pytest.mark.parametrize(("cls", "name", "value"), RULES, ids=[f"{c.__name__}.{n}" for c, n, _ in RULES])
def test_an_out_of_range_value_or_a_bad_choice_is_refused_by_name(cls, name, value):
    with pytest.raises(ConfigError, match=rf"\b{name}\b"):
        cls(**(VALID[cls] | {name: value}))


def test_every_option_has_a_rule_or_is_listed_as_free():
    for cls in VALID:
        for f in dataclasses.fields(cls):
            assert f.name in OUT_OF_RANGE[cls] or f.name in ANY_VALUE_OF_ITS_KIND, f"{cls.__name__}.{f.name}"
        assert cls(**VALID[cls]) == cls(**VALID[cls])  # the valid values really are valid


def test_values_are_converted_to_their_declared_kinds():
    config = DistillConfig(
        **VALID[DistillConfig] | {"learning_rate": "1e-4", "batch_size": 8.0, "student": Path("s")}
    )
    assert (config.learning_rate, config.batch_size, config.student) == (1e-4, 8, "s")
    assert EvaluateConfig(
        **VALID[EvaluateConfig] | {"manifests": ["a.jsonl", Path("b.jsonl")]}
    ).manifests == (
        "a.jsonl",
        "b.jsonl",
    )
    assert FilterConfig(max_repeated_ngrams=2.0, min_avg_logprob="off").max_repeated_ngrams == 2


# ------------------------------------------------------------------ flat and nested sections


@pytest.mark.parametrize(
    ("cls", "flat", "nested"),
    [
        (
            PseudoLabelConfig,
            {"language": "en", "batch_size": 16, "wer_threshold": 10},
            {"decoding": {"language": "en", "batch_size": 16}, "filters": {"wer_threshold": 10}},
        ),
        (EvaluateConfig, {"language": "en", "batch_size": 16}, {"decoding": {"language": "en", "batch_size": 16}}),
        (DistillConfig, {"language": "en", "eval_batch_size": 16}, {"language": "en", "eval_decoding": {"batch_size": 16}}),
        (StreamConfig, {"language": "en", "chunk_seconds": 2}, {"streaming": {"decoding": {"language": "en"}, "chunk_seconds": 2}}),
    ],
    ids=["pseudo_label", "evaluate", "distill", "stream"],
)  # fmt: skip
def test_an_old_flat_section_and_the_nested_form_build_equal_configs(cls, flat, nested):
    from_flat = build_config(cls, VALID[cls] | flat, {})
    assert from_flat == build_config(cls, VALID[cls] | nested, {})
    assert from_flat != cls(**VALID[cls])


def test_flags_land_in_the_nested_config_and_win_over_the_file():
    config = build_config(PseudoLabelConfig, VALID[PseudoLabelConfig] | {"decoding": {"batch_size": 8}}, {
        "batch_size": 2, "language": None, "wer_threshold": 50.0, "handler": print,
    })  # fmt: skip
    assert (config.decoding.batch_size, config.decoding.language, config.filters.wer_threshold) == (
        2,
        None,
        50,
    )


@pytest.mark.parametrize("recipe", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_recipe_section_builds_the_same_config_nested(recipe):
    from speechkd.commands.config import SCRIPT_FLAGS, STAGE_SECTIONS

    for section, values in yaml.safe_load(recipe.read_text()).items():
        if section not in STAGE_SECTIONS:
            continue
        module, name = STAGE_SECTIONS[section]
        cls = getattr(__import__(module, fromlist=[name]), name)
        nested: dict = {}
        for key, value in values.items():
            *groups, leaf = option_paths(cls)[key]
            target = nested
            for group in groups:
                target = target.setdefault(group, {})
            target[leaf] = value
        stand_ins = SCRIPT_FLAGS[section]
        assert check_section(cls, values, section, stand_ins) == check_section(
            cls, nested, section, stand_ins
        )


def test_run_defining_options_are_a_tuple_of_distill_options():
    assert isinstance(RUN_DEFINING, tuple) and set(RUN_DEFINING) <= set(option_paths(DistillConfig))
    assert "eval_decoding" in nested_fields(DistillConfig) and "eval_batch_size" in option_paths(
        DistillConfig
    )


# ------------------------------------------------------------------ `speechkd config check`


def check(tmp_path, text: str) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    args = build_parser().parse_args(["config", "check", str(path)])
    args.handler(args)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pseudo_lable:\n  batch_size: 4\n", "did you mean pseudo_label"),
        ("run:\n  teacher: bundled:base\n  run_dri: runs/x\n", "run_dri.*did you mean run_dir"),
        ("run:\n  data:\n    pack_second: 16\n", "run.data.*pack_second.*did you mean pack_seconds"),
        ("evaluate:\n  latency_utterance: 3\n", "did you mean latency_utterances"),
        ("evaluate:\n  decoding:\n    beams: 3\n", "evaluate.decoding.*beams"),
        ("distill:\n  lr_schedule: cosine\n", "lr_schedule must be one of linear, constant, not 'cosine'"),
        ("distill:\n  batch_size: -3\n", "distill: batch_size must be a positive integer, not -3"),
        ("evaluate:\n  num_beams: 4\n", "--assistant verifies greedy decoding"),
        (
            "pseudo_label:\n  decoding:\n    batch_size: 0\n",
            "pseudo_label: batch_size must be a positive integer",
        ),
        ("stream:\n  trim_seconds: 28\n", "trim_seconds"),
        ("", "no stage sections"),
    ],
    ids=[
        "section",
        "run",
        "run.data",
        "key",
        "nested key",
        "choice",
        "batch size",
        "beams",
        "nested",
        "stream",
        "empty",
    ],
)
def test_config_check_refuses_what_a_stage_would_refuse(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        check(tmp_path, text)


def test_the_run_keys_config_check_knows_are_the_ones_the_scripts_read():
    from speechkd.commands.config import RUN_DATA_KEYS, RUN_KEYS

    scripts = "".join(path.read_text() for path in (REPO / "scripts").glob("*.sh"))
    read = set(re.findall(r"cfg run\.([a-z_.]+)", scripts))
    assert {key.split(".")[0] for key in read} <= RUN_KEYS
    assert {key.split(".", 1)[1] for key in read if key.startswith("data.")} == RUN_DATA_KEYS


def test_config_check_accepts_the_nested_form(tmp_path, capsys):
    check(
        tmp_path, "pseudo_label:\n  decoding: {batch_size: 8, language: en}\n  filters: {wer_threshold: 20}\n"
    )
    assert "pseudo_label: 3 options set, all valid" in capsys.readouterr().out


# ------------------------------------------------------------------ the commands refuse before loading anything


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["distill", "--teacher", "t", "--student", "s", "--train-manifest", "m", "--output-dir", "o",
          "--batch-size", "-3"], "distill: batch_size must be a positive integer, not -3"),
        (["distill", "--teacher", "t", "--student", "s", "--train-manifest", "m", "--output-dir", "o",
          "--batch-size", "0"], "distill: batch_size must be a positive integer, not 0"),
        (["transcribe", "--model", "bundled:tiny.en", "--batch-size", "-1", "a.wav"], "batch_size must be a positive"),
        (["transcribe", "--model", "bundled:tiny.en", "--batch-size", "0", "a.wav"], "batch_size must be a positive"),
        (["pseudo-label", "--manifest", "m.jsonl", "--output-dir", "o"], "teacher is required"),
        (["evaluate", "--model", "m", "--output-dir", "o"], "at least one manifest"),
        (["stream", "--model", "m"], "--audio FILE.*--mic"),
    ],
    ids=["distill -3", "distill 0", "transcribe -1", "transcribe 0", "pseudo-label", "evaluate", "stream"],
)  # fmt: skip
def test_a_bad_flag_is_a_clear_error(capsys, argv, message):
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_transcribe_refuses_an_empty_manifest(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    assert (
        main(["transcribe", "--model", "bundled:tiny.en", "--manifest", str(tmp_path / "empty.jsonl")]) == 2
    )
    assert "no utterances to transcribe" in capsys.readouterr().err


def test_transcribe_stream_and_serve_read_their_config_sections_and_flags_win(tmp_path, capsys):
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(
        "transcribe:\n  model: bundled:tiny.en\n  decoding: {batch_size: 0}\n"
        "stream:\n  model: bundled:tiny.en\n  audio: missing.wav\n  chunk_seconds: -1\n"
        "serve:\n  model: bundled:tiny.en\n  port: 99999\n  max_clients: 0\n"
    )
    manifest = str(tmp_path / "none.jsonl")
    assert main(["transcribe", "--config", str(recipe), "--manifest", manifest]) == 2
    assert "transcribe: batch_size must be a positive integer, not 0" in capsys.readouterr().err
    assert main(["transcribe", "--config", str(recipe), "--manifest", manifest, "--batch-size", "2"]) == 2
    assert "manifest not found" in capsys.readouterr().err
    assert main(["stream", "--config", str(recipe)]) == 2
    assert "stream: chunk_seconds must be positive, not -1.0" in capsys.readouterr().err
    assert main(["serve", "--config", str(recipe), "--port", "0"]) == 2
    assert "serve: max_clients must be a positive integer, not 0" in capsys.readouterr().err


def test_a_missing_manifest_is_refused_before_torch_is_imported():
    code = (
        "import sys; from speechkd.cli import main; "
        "rc = main(['transcribe', '--model', 'bundled:tiny.en', '--manifest', '/nonexistent.jsonl']); "
        "print(rc, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert "manifest not found" in result.stderr


def test_the_old_encoder_cache_spelling_still_loads_with_a_warning(capsys):
    from speechkd.distill.config import DistillConfig

    base = {"teacher": "t", "student": "s", "train_manifest": "m.jsonl", "output_dir": "o"}
    from_file = build_config(DistillConfig, base | {"cache_dir": "runs/cache"}, {})
    from_flag = build_config(DistillConfig, base, {"cache_dir": "runs/cache"})
    assert from_file.encoder_cache_dir == from_flag.encoder_cache_dir == "runs/cache"
    err = capsys.readouterr().err
    assert "cache_dir is deprecated, use encoder_cache_dir" in err and "--cache-dir is deprecated" in err
