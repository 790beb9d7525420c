"""`speechkd data prepare NAME --output-dir DIR`: materialise a bundled corpus and its manifests."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="bundled demo corpora (real speech from Debian packages)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    prepare = actions.add_parser(
        "prepare",
        help="unpack a corpus and write its manifests",
        description=(
            "Materialise a bundled corpus: fotaq (Flight of the Amazon Queen: acted US-English dialogue; "
            "train/dev/unlabelled splits) or pocketsphinx (5 LibriVox sentences). Downloads the Debian "
            "package with apt-get unless --deb names an already downloaded .deb. Rerunning is cheap."
        ),
    )
    prepare.add_argument("name", choices=["fotaq", "pocketsphinx"], help="corpus to prepare")
    prepare.add_argument("--output-dir", required=True, type=Path, help="where audio/ and *.jsonl go")
    prepare.add_argument("--deb", type=Path, default=None, help="use this .deb instead of apt-get download")
    prepare.add_argument("--overwrite", action="store_true", help="rebuild even if the output is complete")
    prepare.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from speechkd.corpora import prepare_corpus

    summary = prepare_corpus(args.name, args.output_dir, deb=args.deb, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2, default=str))
    return 0
