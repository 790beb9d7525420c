"""`speechkd data pack`: one speaker's FOTAQ lines concatenated into clips of up to N seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speechkd.audio import SAMPLE_RATE, load_audio
from speechkd.cli import main
from speechkd.manifest import read_manifest, write_manifest
from speechkd.packing import pack_manifest


@pytest.fixture()
def dev_lines(fotaq_dev_records, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    return [*fotaq_dev_records[:14], {"id": "broken", "audio": str(broken), "speaker": "JOE", "text": "x"}]


def test_clips_hold_one_speakers_lines_in_order_up_to_the_limit(dev_lines, tmp_path):
    summary = pack_manifest(dev_lines, tmp_path / "packed", max_seconds=10.0, progress=False)
    clips = read_manifest(tmp_path / "packed" / "packed.jsonl")
    by_id = {r["id"]: r for r in dev_lines}
    assert summary["skipped"] == 1 and summary["skipped_utterances"][0]["id"] == "broken"
    assert sorted(p for c in clips for p in c["parts"]) == sorted(r["id"] for r in dev_lines[:14])
    assert len(clips) < 14 and summary["clips"] == len(clips)
    for clip in clips:
        parts = [by_id[p] for p in clip["parts"]]
        assert {p["speaker"] for p in parts} == {clip["speaker"]}
        assert clip["duration"] <= 10.0
        assert clip["text"] == " ".join(p["text"] for p in parts)
        assert [dev_lines.index(p) for p in parts] == sorted(dev_lines.index(p) for p in parts)
    longest = max(clips, key=lambda c: len(c["parts"]))
    audio = load_audio(longest["audio"])
    expected = np.concatenate([load_audio(by_id[p]["audio"]) for p in longest["parts"]])
    assert len(audio) == len(expected)
    assert np.abs(audio - np.clip(expected, -1, 1)).max() < 1e-3  # 16-bit FLAC: decoded MP3 peaks over 1 clip
    seen = {}
    for clip in clips:  # each clip names its speaker's clip before it
        assert clip.get("previous") == seen.get(clip["speaker"])
        seen[clip["speaker"]] = clip["id"]


def test_rerun_reuses_written_clips_and_gap_is_silence(dev_lines, tmp_path):
    pack_manifest(dev_lines[:6], tmp_path / "a", max_seconds=30.0, group_field=None, progress=False)
    clip = read_manifest(tmp_path / "a" / "packed.jsonl")[0]
    stamp = (tmp_path / "a" / "audio" / f"{clip['id']}.flac").stat().st_mtime_ns
    pack_manifest(dev_lines[:6], tmp_path / "a", max_seconds=30.0, group_field=None, progress=False)
    assert (tmp_path / "a" / "audio" / f"{clip['id']}.flac").stat().st_mtime_ns == stamp
    assert clip["parts"] == [r["id"] for r in dev_lines[:6]]  # no grouping: manifest order
    pack_manifest(dev_lines[:2], tmp_path / "b", group_field=None, gap_seconds=0.5, progress=False)
    gapped = read_manifest(tmp_path / "b" / "packed.jsonl")[0]
    first = len(load_audio(dev_lines[0]["audio"]))
    audio = load_audio(gapped["audio"])
    assert np.abs(audio[first : first + SAMPLE_RATE // 2]).max() == 0.0
    assert gapped["duration"] == pytest.approx(sum(r["duration"] for r in dev_lines[:2]) + 0.5, abs=0.01)


def test_cli_packs_manifests_and_reports(dev_lines, tmp_path, capsys):
    manifest = tmp_path / "in.jsonl"
    write_manifest(manifest, dev_lines)
    assert (
        main(["data", "pack", str(manifest), "--output-dir", str(tmp_path / "out"), "--max-seconds", "20"])
        == 0
    )
    out = capsys.readouterr().out
    assert "packed 14 utterances into" in out and "skipped broken: cannot load audio" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["utterances"] == 14 and summary["max_seconds"] == 20.0
    assert (
        main(["data", "pack", str(manifest), "--output-dir", str(tmp_path / "x"), "--max-seconds", "45"]) != 0
    )
    assert "--max-seconds must be in (0, 30], got 45.0" in capsys.readouterr().err
