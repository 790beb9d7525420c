"""The bundled corpora, built from the real Debian packages.

The package files are found via $SPEECHKD_FOTAQ_DEB / $SPEECHKD_POCKETSPHINX_DEB or in the speechkd deb
cache ($SPEECHKD_HOME/debs, default ~/.cache/speechkd/debs); tests that need one skip without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import soundfile as sf

from speechkd.corpora import CORPORA, CorpusError, debian, format_summary, prepare_corpus, read_jsonl
from speechkd.corpora.fotaq import (
    COMMITTED_DIR,
    DEV_CHARACTERS,
    TRAIN_CHARACTERS,
    check_committed,
    clean_text,
    split_segments,
)

RESERVED = {"BUD", "DEATH", "DOG", "LARIS", "LOLA", "MAN", "ORACLE", "SHOWERAM", "SPARKY", "WITCH"}
RESERVED_TALK_KEYS = {8, 9, 12, 13, 14, 29, 31, 35, 36, 39, 40, 41, 50, 51, 52, 53, 54, 55, 59, 60, 66}
RESERVED_TALK_KEYS |= {73, 74, 78, 79, 83}
DEB_CACHE = debian.deb_cache_dir()  # resolved before any test points $SPEECHKD_HOME elsewhere


def _deb(env_var: str, package: str) -> Path:
    if os.environ.get(env_var):
        return Path(os.environ[env_var])
    found = debian.find_deb(package, [DEB_CACHE])
    if found is None:
        pytest.skip(f"no {package}_*.deb: set {env_var} or put it in {DEB_CACHE}")
    return found


@pytest.fixture(scope="module")
def fotaq_deb() -> Path:
    return _deb("SPEECHKD_FOTAQ_DEB", "flight-of-the-amazon-queen")


@pytest.fixture(scope="module")
def pocketsphinx_deb() -> Path:
    return _deb("SPEECHKD_POCKETSPHINX_DEB", "pocketsphinx-testdata")


@pytest.fixture(scope="module")
def speechkd_home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("speechkd_home")
        patch.setenv("SPEECHKD_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def fotaq(tmp_path_factory, fotaq_deb, speechkd_home) -> tuple[Path, dict]:
    output_dir = tmp_path_factory.mktemp("fotaq")
    return output_dir, prepare_corpus("fotaq", output_dir, deb=fotaq_deb)


def _manifest(output_dir: Path, split: str) -> list[dict]:
    return read_jsonl(output_dir / f"{split}.jsonl")


def test_fotaq_split_sizes(fotaq):
    _, summary = fotaq
    splits = summary["splits"]
    assert 2000 <= splits["train"]["utterances"] <= 2200 and 1.4 <= splits["train"]["hours"] <= 1.7
    assert 480 <= splits["dev"]["utterances"] <= 580 and 0.3 <= splits["dev"]["hours"] <= 0.45
    assert 2600 <= splits["unlabelled"]["utterances"] <= 2900
    assert "train" in format_summary(summary)


def test_fotaq_labels_follow_the_split_rules(fotaq):
    output_dir, _ = fotaq
    allowed = {"train": TRAIN_CHARACTERS | {"JOE"}, "dev": DEV_CHARACTERS | {"JOE"}}
    for split, speakers in allowed.items():
        for record in _manifest(output_dir, split):
            assert record["text"] == record["text"].strip() != "", record
            assert "*" not in record["text"] and "  " not in record["text"], record
            assert record["speaker"] in speakers, record
    for record in _manifest(output_dir, "unlabelled"):
        assert "text" not in record and record.get("speaker") not in RESERVED, record


def test_fotaq_splits_are_disjoint_and_hold_no_reserved_dialogue(fotaq):
    output_dir, _ = fotaq
    ids = {split: [r["id"] for r in _manifest(output_dir, split)] for split in ("train", "dev", "unlabelled")}
    all_ids = [i for split_ids in ids.values() for i in split_ids]
    assert len(all_ids) == len(set(all_ids))
    assert all(split_ids == sorted(split_ids) for split_ids in ids.values())
    dialogue_id = re.compile(r"^(\d\d)([0-9A-F]{4}|SSSS|XXXX)[PJ][0-9A-F]$")
    keys = {int(m.group(1)) for m in map(dialogue_id.match, all_ids) if m}
    assert keys and not keys & RESERVED_TALK_KEYS
    assert "080001P1" not in all_ids and "290006J1" not in all_ids  # BUD, LARIS lines exist in the game


def test_fotaq_known_lines(fotaq):
    output_dir, _ = fotaq
    by_id = {r["id"]: r for split in ("train", "dev") for r in _manifest(output_dir, split)}
    assert by_id["020001P2"]["text"] == "You couldn't pilot your way out of a paper bag."
    assert by_id["020001P2"]["speaker"] == "AND"
    assert by_id["100001P3"]["text"] == "What are you doing in my kitchen?"  # after a *XY00(128,112) command
    assert by_id["06SSSSJ1"] == {**by_id["06SSSSJ1"], "text": "Excuse me Bob.", "speaker": "JOE"}
    assert by_id["06XXXXP1"]["text"] == "Hello again Joe." and by_id["06XXXXP1"]["speaker"] == "BOB"
    assert by_id["11SSSSJ5"]["text"] == "I'm Joe King, pilot for hire."
    assert (
        by_id["800008P2"]["text"]
        == "I've had Doc Ironstein's Super Soldier Treatment, and I'm as tough as they come."
    )


def test_fotaq_audio_is_readable(fotaq):
    output_dir, _ = fotaq
    records = [r for split in ("train", "dev", "unlabelled") for r in _manifest(output_dir, split)]
    assert all((output_dir / r["audio"]).is_file() for r in records)
    for record in records[:: len(records) // 10]:
        audio, sample_rate = sf.read(output_dir / record["audio"])
        assert sample_rate == 11025 and len(audio) > 0
        assert record["duration"] == pytest.approx(len(audio) / sample_rate, abs=1e-3)


def test_fotaq_manifests_match_the_committed_ones(fotaq):
    output_dir, _ = fotaq
    if not COMMITTED_DIR.is_dir():
        pytest.skip(f"no committed manifests in {COMMITTED_DIR}")
    for split in ("train", "dev", "unlabelled"):
        assert (output_dir / f"{split}.jsonl").read_bytes() == (COMMITTED_DIR / f"{split}.jsonl").read_bytes()


def test_fotaq_prepare_reuses_a_finished_folder(fotaq):
    output_dir, summary = fotaq
    start = time.perf_counter()
    again = prepare_corpus("fotaq", output_dir)
    assert again["reused"] and time.perf_counter() - start < 5
    assert again["splits"] == summary["splits"]


def test_fotaq_limit_builds_a_small_corpus_that_a_full_prepare_does_not_reuse(
    tmp_path, fotaq_deb, speechkd_home
):
    summary = prepare_corpus("fotaq", tmp_path, deb=fotaq_deb, limit=3)
    assert {stats["utterances"] for stats in summary["splits"].values()} == {3}
    assert len(list((tmp_path / "audio").glob("*.mp3"))) == 9
    assert not prepare_corpus("fotaq", tmp_path, deb=fotaq_deb, limit=4)["reused"]


def test_committed_manifests_guard_against_another_package_version(tmp_path):
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"id": "020001P2", "audio": "a.mp3", "text": "x"}) + "\n"
    )
    (tmp_path / "dev.jsonl").write_text("")
    (tmp_path / "unlabelled.jsonl").write_text("")
    with pytest.raises(CorpusError, match="package version"):
        check_committed({"train": [], "dev": [], "unlabelled": []}, committed_dir=tmp_path)


def test_speech_segments_split_at_commands():
    assert split_segments("*XY00(237,112)*FLWhat are you doing?") == ["", "", "What are you doing?"]
    assert split_segments("Hello...*17I'm Joe King.*17") == ["Hello...", "I'm Joe King."]
    assert split_segments("What are you doing?*01*03") == ["What are you doing?", ""]
    assert clean_text("  Treatment^_, <koff>  and ") == "Treatment, and"


def test_pocketsphinx_corpus(tmp_path, pocketsphinx_deb, speechkd_home):
    summary = prepare_corpus("pocketsphinx", tmp_path, deb=pocketsphinx_deb)
    records = read_jsonl(tmp_path / "test.jsonl")
    assert summary["splits"]["test"]["utterances"] == len(records) == 5
    assert records[1]["text"] == "he was not an ill disposed young man"
    for record in records:
        info = sf.info(tmp_path / record["audio"])
        assert info.samplerate == 16000 and info.frames > 0
        assert record["duration"] == pytest.approx(info.frames / 16000, abs=1e-3)


def test_python_unpacker_matches_dpkg_deb(tmp_path, pocketsphinx_deb, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    debian.extract_deb(pocketsphinx_deb, tmp_path)
    assert (tmp_path / "usr/share/pocketsphinx/test/data/librivox/transcription").is_file()


@pytest.mark.parametrize("dpkg_deb", [True, False], ids=["dpkg-deb", "python"])
def test_corrupt_package_is_reported_with_its_path(tmp_path, monkeypatch, dpkg_deb):
    if not dpkg_deb:
        monkeypatch.setattr(shutil, "which", lambda name: None)
    corrupt = tmp_path / "flight-of-the-amazon-queen_9.9_all.deb"
    corrupt.write_bytes(b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n")
    with pytest.raises(CorpusError, match=re.escape(str(corrupt))):
        prepare_corpus("fotaq", tmp_path / "out", deb=corrupt)


def test_missing_package_file_is_reported_with_its_path(tmp_path):
    missing = tmp_path / "nowhere.deb"
    with pytest.raises(CorpusError, match=re.escape(str(missing))):
        prepare_corpus("pocketsphinx", tmp_path / "out", deb=missing)


def test_without_apt_get_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CorpusError, match="--deb PATH"):
        debian.download_deb("pocketsphinx-testdata", tmp_path)


def test_unknown_corpus_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=", ".join(sorted(CORPORA))):
        prepare_corpus("librispeech", tmp_path)
