"""`speechkd config get|check`: read values from a recipe config for the shell scripts, and validate it."""

from __future__ import annotations

import argparse
import dataclasses
import importlib

# Config section -> (module, dataclass) of the stage that reads it.
STAGE_SECTIONS = {
    "pseudo_label": ("speechkd.pseudo_label", "PseudoLabelConfig"),
    "create_student": ("speechkd.student", "CreateStudentConfig"),
    "distill": ("speechkd.distill.config", "DistillConfig"),
    "evaluate": ("speechkd.evaluate.config", "EvaluateConfig"),
}


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
    from speechkd.config import check_section, load_config_file

    for section, (module, name) in STAGE_SECTIONS.items():
        values = load_config_file(args.file, section)
        if values:
            cls = getattr(importlib.import_module(module), name)
            check_section(cls, values, f"{args.file} [{section}]")
            fields = len(dataclasses.fields(cls))
            print(f"{section}: {len(values)} of {fields} options set, all valid")
    return 0
