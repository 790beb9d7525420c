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
    subset = actions.add_parser(
        "subset",
        help="combine manifests and/or draw a random subset",
        description=(
            "Write the utterances of one or more manifests into OUTPUT (audio paths rewritten relative to it), "
            "optionally only N of them drawn at random with SEED (input order kept). Ids must be unique."
        ),
    )
    subset.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST", help="input JSONL manifests")
    subset.add_argument("--output", required=True, type=Path, help="output JSONL manifest")
    subset.add_argument("--n", type=int, default=None, help="how many utterances to keep (default: all)")
    subset.add_argument("--seed", type=int, default=0, help="random seed of the draw (0)")
    subset.set_defaults(handler=run_subset)
    imported = actions.add_parser(
        "import",
        help="turn a Hugging Face dataset into a manifest",
        description=(
            "Write a manifest for a Hugging Face dataset: a local save_to_disk, parquet or audiofolder "
            "directory, or a hub name (needs network). Audio stored as bytes is written once into a cache."
        ),
    )
    imported.add_argument("source", help="dataset directory or hub name, e.g. distil-whisper/librispeech_asr")
    imported.add_argument("--output", required=True, type=Path, help="output JSONL manifest")
    imported.add_argument("--split", default=None, help="split to read (e.g. train, validation.clean)")
    imported.add_argument("--audio-column", default="audio", help="audio column (audio)")
    imported.add_argument(
        "--text-column", default="text", help="reference text column; 'none' for unlabelled"
    )
    imported.add_argument("--id-column", default=None, help="id column (default: file name or row index)")
    imported.add_argument("--speaker-column", default=None, help="speaker column, if any")
    imported.set_defaults(handler=run_import)
    pack = actions.add_parser(
        "pack",
        help="pack consecutive short utterances into clips of up to 30 s",
        description=(
            "Concatenate utterances of the same speaker (grouped, manifest order within a speaker) into clips of at most "
            "--max-seconds, as Distil-Whisper trains: one encoder pass then carries ~30 s of speech instead of "
            "one short line, and the student learns long, multi-sentence labels. Writes OUTPUT_DIR/audio/*.flac, "
            "OUTPUT_DIR/packed.jsonl (text / teacher_text joined when every part has one; `previous` names the "
            "speaker's previous clip, for distill --prompt-probability; `parts` lists the utterance ids) and "
            "summary.json. Unreadable utterances are skipped and listed. Rerunning reuses clips already written."
        ),
    )
    pack.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST", help="input JSONL manifests")
    pack.add_argument("--output-dir", required=True, type=Path, help="where packed.jsonl and audio/ go")
    pack.add_argument("--max-seconds", type=float, default=30.0, help="longest clip (30: Whisper's window)")
    pack.add_argument(
        "--group-by",
        default="speaker",
        help="field whose value must match within a clip (speaker); 'none' packs across speakers",
    )
    pack.add_argument("--gap-seconds", type=float, default=0.0, help="silence between utterances (0)")
    pack.set_defaults(handler=run_pack)


def run_prepare(args: argparse.Namespace) -> int:
    from speechkd.corpora import prepare_corpus

    summary = prepare_corpus(args.name, args.output_dir, deb=args.deb, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def run_subset(args: argparse.Namespace) -> int:
    from speechkd.manifest import combine_manifests, write_manifest

    records = combine_manifests(args.manifests, n=args.n, seed=args.seed)
    write_manifest(args.output, records)
    hours = sum(r.get("duration") or 0.0 for r in records) / 3600
    print(f"wrote {len(records)} utterances ({hours:.2f} h) to {args.output}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from speechkd.manifest import records_from_dataset, write_manifest

    text_column = None if args.text_column.lower() == "none" else args.text_column
    records = records_from_dataset(
        args.source,
        split=args.split,
        audio_column=args.audio_column,
        text_column=text_column,
        id_column=args.id_column,
        speaker_column=args.speaker_column,
    )
    write_manifest(args.output, records)
    print(f"wrote {len(records)} utterances from {args.source} to {args.output}")
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from speechkd.manifest import combine_manifests
    from speechkd.packing import pack_manifest

    if not 0 < args.max_seconds <= 30:
        raise ValueError(f"--max-seconds must be in (0, 30], got {args.max_seconds}")
    group = None if args.group_by.lower() == "none" else args.group_by
    records = combine_manifests(args.manifests)
    summary = pack_manifest(records, args.output_dir, args.max_seconds, group, args.gap_seconds)
    for skipped in summary["skipped_utterances"][:10]:
        print(f"skipped {skipped['id']}: {skipped['error']}")
    print(
        f"packed {summary['utterances']} utterances into {summary['clips']} clips "
        f"({summary['hours']:.2f} h, mean {summary['mean_clip_seconds']:.1f} s) in {args.output_dir / 'packed.jsonl'}; "
        f"{summary['skipped']} skipped"
    )
    return 0
