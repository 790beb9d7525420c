"""`speechkd config get|check`: read values from a recipe config for the shell scripts, and validate it."""

from __future__ import annotations

import argparse
import importlib

# Config section -> (module, dataclass) of the stage that reads it.
STAGE_SECTIONS = {
    "pseudo_label": ("speechkd.pseudo_label", "PseudoLabelConfig"),
    "create_student": ("speechkd.student", "CreateStudentConfig"),
    "distill": ("speechkd.distill.config", "DistillConfig"),
    "evaluate": ("speechkd.evaluate.config", "EvaluateConfig"),
    "transcribe": ("speechkd.transcribe", "TranscribeConfig"),
    "stream": ("speechkd.streaming.stream", "StreamConfig"),
    "serve": ("speechkd.streaming.serve", "ServerConfig"),
}
# What the stage scripts (scripts/02..05) pass as flags: stand-ins where a section does not set them, so that
# `config check` builds each config as the stage will. An option is left out where the section sets the one
# that replaces it (a dataset instead of a manifest, the microphone instead of a file).
SCRIPT_FLAGS = {
    "pseudo_label": {"teacher": "TEACHER", "manifest": "RUN_DIR/input.jsonl", "output_dir": "RUN_DIR/out"},
    "create_student": {"teacher": "TEACHER", "output_dir": "RUN_DIR/student_init"},
    "distill": {
        "teacher": "TEACHER", "student": "RUN_DIR/student_init", "train_manifest": "RUN_DIR/train.jsonl",
        "eval_manifest": "RUN_DIR/eval.jsonl", "output_dir": "RUN_DIR/distill",
    },
    "evaluate": {
        "model": "STUDENT", "baseline": "TEACHER", "assistant": "STUDENT", "manifests": ["RUN_DIR/eval.jsonl"],
        "output_dir": "RUN_DIR/evaluate",
    },
    "transcribe": {"model": "MODEL"},
    "stream": {"model": "MODEL", "audio": "AUDIO"},
    "serve": {"model": "MODEL"},
}  # fmt: skip
REPLACED_BY = {"manifest": "dataset", "audio": "mic"}
# The `run` section: what scripts/*.sh read with `cfg run.KEY` (and run.data.KEY for 01_prepare_data.sh).
RUN_KEYS = {"run_dir", "teacher", "launcher", "share_encoder_cache", "data"}
RUN_DATA_KEYS = {
    "prepare", "data_dir", "hf_train", "hf_train_split", "hf_eval", "hf_eval_split", "hf_text_column",
    "hf_speaker_column", "pseudo_label_inputs", "pseudo_label_n", "eval_manifests", "eval_n", "seed",
    "pack_seconds", "pack_group_by", "unpacked_n",
}  # fmt: skip


def register(subparsers) -> None:
    parser = subparsers.add_parser("config", help="read or validate a recipe config (used by scripts/)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = actions.add_parser(
        "get",
        help="print one value",
        description="Print the value at KEY (dotted, e.g. run.teacher); lists print one item a line.",
    )
    get.add_argument("file", help="YAML/JSON config")
    get.add_argument("key", help="dotted key, e.g. run.run_dir")
    get.add_argument("--default", default=None, help="printed when the key is absent (else: error)")
    get.set_defaults(handler=run_get)
    check = actions.add_parser("check", help="validate every stage section against its stage's options")
    check.add_argument("file", help="YAML/JSON config")
    check.set_defaults(handler=run_check)


def run_get(args: argparse.Namespace) -> int:
    from speechkd.config import ConfigError, load_config_file

    value = load_config_file(args.file)
    for part in args.key.split("."):
        if not isinstance(value, dict) or part.replace("-", "_") not in value:
            if args.default is not None:
                print(args.default)
                return 0
            raise ConfigError(f"{args.file}: no key {args.key!r}")
        value = value[part.replace("-", "_")]
        if isinstance(value, dict):
            value = {k.replace("-", "_"): v for k, v in value.items()}
    for item in value if isinstance(value, list) else [value]:
        print("" if item is None else str(item).lower() if isinstance(item, bool) else item)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from speechkd.config import ConfigError, load_config_file

    sections = load_config_file(args.file)
    if not sections:
        raise ConfigError(
            f"{args.file}: no stage sections (expected run and some of {', '.join(STAGE_SECTIONS)})"
        )
    problems = []
    for section, values in sections.items():
        try:
            print(_check(section, values))
        except ConfigError as error:
            problems.append(f"{args.file}: {error}")
    if not set(sections) & set(STAGE_SECTIONS):
        print("no stage sections: every stage runs with its defaults")
    if problems:
        raise ConfigError("\n".join(problems))
    return 0


def _check(section: str, values) -> str:
    """One line about a valid section; a ConfigError naming what is wrong otherwise."""
    from speechkd.config import ConfigError, check_section, did_you_mean, option_values

    if section not in STAGE_SECTIONS and section != "run":
        raise ConfigError(f"unknown section {section!r}{did_you_mean(section, ['run', *STAGE_SECTIONS])}")
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r} must be a mapping")
    if section == "run":
        _check_keys("run", values, RUN_KEYS)
        _check_keys("run.data", values.get("data") or {}, RUN_DATA_KEYS)
        return f"run: {len(values)} keys, all read by scripts/"
    module, name = STAGE_SECTIONS[section]
    cls = getattr(importlib.import_module(module), name)
    stand_ins = {k: v for k, v in SCRIPT_FLAGS[section].items() if REPLACED_BY.get(k) not in values}
    check_section(cls, values, section, stand_ins)
    return f"{section}: {len(option_values(cls, values, section))} options set, all valid"


def _check_keys(where: str, values, known: set[str]) -> None:
    from speechkd.config import ConfigError, did_you_mean

    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping")
    for key in values:
        if key not in known:
            hint = did_you_mean(key, known) or f"; scripts/ read only {', '.join(sorted(known))}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
