"""Shared fixtures: real bundled Whisper models and real speech, prepared once and cached."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _data_root() -> Path:
    from speechkd.paths import speechkd_home

    return Path(os.environ.get("SPEECHKD_TEST_DATA", speechkd_home() / "data"))


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    """The bundled tiny.en teacher as a transformers checkpoint (converted once into the cache)."""
    from speechkd.models import ensure_bundled

    return ensure_bundled("bundled:tiny.en")


@pytest.fixture(scope="session")
def base_dir() -> Path:
    """The bundled multilingual base teacher as a transformers checkpoint."""
    from speechkd.models import ensure_bundled

    return ensure_bundled("bundled:base")


@pytest.fixture(scope="session")
def fotaq_dir() -> Path:
    """The FOTAQ demo corpus (train/dev/unlabelled manifests + audio), prepared once."""
    from speechkd.corpora import prepare_corpus

    target = _data_root() / "fotaq"
    prepare_corpus("fotaq", target)
    return target


@pytest.fixture(scope="session")
def librivox_dir() -> Path:
    """Five LibriVox sentences with transcripts (pocketsphinx-testdata)."""
    from speechkd.corpora import prepare_corpus

    target = _data_root() / "pocketsphinx"
    prepare_corpus("pocketsphinx", target)
    return target


@pytest.fixture(scope="session")
def fotaq_dev_records(fotaq_dir: Path) -> list[dict]:
    """The FOTAQ dev split as manifest records (absolute audio paths)."""
    from speechkd.manifest import read_manifest

    return read_manifest(fotaq_dir / "dev.jsonl")
