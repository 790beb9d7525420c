"""The `speechkd` entry point: one subcommand per stage; each lives in `speechkd/commands/`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = (
    "data",
    "models",
    "config",
    "transcribe",
    "pseudo_label",
    "create_student",
    "distill",
    "evaluate",
    "export",
    "stream",
    "serve",
)

DESCRIPTION = """\
Distil a Whisper teacher into a small, fast student.

Stages (each reads and writes plain files):
  data prepare      materialise a bundled corpus (real speech) and its manifests
  transcribe        quick check of any model on files or a manifest
  pseudo-label      stage 1: the teacher transcribes a manifest; filtered pseudo-labels
  create-student    stage 2: a student keeping maximally spaced teacher decoder layers
  distill           stage 3: train the student on pseudo-labels (CE + KL to the teacher)
  evaluate          stage 4: WER, RTFx and speed-up vs a baseline; speculative decoding
  export            convert a model to CTranslate2 for faster-whisper
  stream            live transcription demo in the terminal (latency, RTF, WER)
  serve             live transcription demo in the browser (microphone over a WebSocket)
Models are named by a local directory, a hub id (openai/whisper-large-v3) or a bundled alias
(bundled:tiny.en, bundled:base). Run `speechkd COMMAND --help` for each command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechkd", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"speechkd.commands.{name}").register(subparsers)
    return parser


def _version() -> str:
    from speechkd import __version__

    return __version__


# The errors a user can fix, by module; a module that was never imported raised none of its errors, so it
# is not imported here either (speechkd.models imports torch: a rejected flag must not wait for it).
USER_ERRORS = {
    "speechkd.audio": "AudioError",
    "speechkd.config": "ConfigError",
    "speechkd.manifest": "ManifestError",
    "speechkd.models": "ModelError",
}


def _is_user_error(error: BaseException) -> bool:
    kinds = [FileExistsError, FileNotFoundError, ValueError]
    kinds += [getattr(sys.modules[m], name) for m, name in USER_ERRORS.items() if m in sys.modules]
    return isinstance(error, tuple(kinds))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("speechkd: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("SPEECHKD_DEBUG") or not _is_user_error(error):
            raise
        print(f"speechkd {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
