"""Model references: bundled aliases converted once and atomically, local dirs, hub ids, clear failures."""

from __future__ import annotations

import pytest

import speechkd.models as models
from speechkd.models import ModelError, ensure_bundled, list_bundled, load_model, resolve_model


def test_bundled_alias_resolves_to_a_cached_transformers_checkpoint(tiny_en_dir):
    assert resolve_model("bundled:tiny.en") == str(tiny_en_dir)
    for name in (
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "speechkd.json",
    ):
        assert (tiny_en_dir / name).exists(), name


def test_list_reports_installed_and_converted(tiny_en_dir):
    rows = {row["alias"]: row for row in list_bundled()}
    assert rows["bundled:tiny.en"]["installed"] and rows["bundled:tiny.en"]["cached"]
    assert set(rows) == {"bundled:tiny.en", "bundled:base"}


def test_an_interrupted_conversion_leaves_nothing_that_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHKD_HOME", str(tmp_path))

    def crash(parts, asset_dir, output_dir):
        (output_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr("speechkd.convert.checkpoint.convert_ct2_whisper", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_bundled("bundled:tiny.en")
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_weight_package_names_the_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHKD_HOME", str(tmp_path))
    monkeypatch.setattr(models, "package_file", lambda spec: None)
    with pytest.raises(ModelError, match=r"speechkd\[bundled\]"):
        ensure_bundled("bundled:base")


def test_unknown_alias_lists_the_known_ones():
    with pytest.raises(ModelError, match="bundled:tiny.en"):
        resolve_model("bundled:large-v9")


def test_a_directory_that_is_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelError, match="no such checkpoint"):
        resolve_model(str(tmp_path / "missing"))


def test_hub_ids_pass_through_and_fail_clearly_offline(monkeypatch):
    assert resolve_model("openai/whisper-large-v3") == "openai/whisper-large-v3"
    with pytest.raises(ModelError, match="offline"):
        load_model("speechkd-test/no-such-model")


def test_export_writes_a_standalone_checkpoint(tmp_path, tiny_en_dir):
    from transformers import WhisperForConditionalGeneration

    out = models.export_model("bundled:tiny.en", tmp_path / "export")
    model = WhisperForConditionalGeneration.from_pretrained(out)
    assert model.config.decoder_layers == 4
    with pytest.raises(ModelError, match="not empty"):
        models.export_model("bundled:tiny.en", out)
