"""Model artifacts: versions, manifest, and refusal of anything tampered or mismatched."""

from __future__ import annotations

import json

import pytest

from models.registry import ModelError, load_model, save_model, versions
from tests.helpers import fitted_pipeline
from udfs.features import FEATURE_NAMES
from udfs.scoring import OfflineModel


def save(tmp_path, **kw):
    return save_model(tmp_path, "propensity", fitted_pipeline(), FEATURE_NAMES,
                      {"from": "a", "to": "b"}, {"holdout": {"roc_auc": 0.8}}, **kw)


def test_save_writes_versioned_artifact_and_manifest(tmp_path):
    m1, m2 = save(tmp_path), save(tmp_path)
    assert (m1["version"], m2["version"]) == (1, 2) and versions(tmp_path, "propensity") == [1, 2]
    for key in ("name", "version", "created_at", "features", "training_window", "metrics", "sha256"):
        assert key in m2
    on_disk = json.loads((tmp_path / "propensity" / "v2" / "manifest.json").read_text())
    assert on_disk == m2
    model = OfflineModel.load(tmp_path, "propensity")
    assert model.version == 2 and OfflineModel.load(tmp_path, "propensity", 1).version == 1


def test_tampered_artifact_is_refused(tmp_path):
    save(tmp_path)
    artifact = tmp_path / "propensity" / "v1" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="sha256"):
        load_model(tmp_path, "propensity")


def test_wrong_feature_list_is_refused(tmp_path):
    save_model(tmp_path, "propensity", fitted_pipeline(), ["a", "b"], {}, {})
    with pytest.raises(ModelError, match="retrain"):
        OfflineModel.load(tmp_path, "propensity")


def test_serving_skips_a_bad_newer_version_unless_pinned(tmp_path):
    save(tmp_path)
    save(tmp_path)
    artifact = tmp_path / "propensity" / "v2" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"x")
    warnings = []
    assert OfflineModel.load_for_serving(tmp_path, "propensity", warn=warnings.append).version == 1
    assert "v2" in warnings[0] and "sha256" in warnings[0]
    with pytest.raises(ModelError, match="sha256"):
        OfflineModel.load_for_serving(tmp_path, "propensity", pinned=2)


def test_missing_model_says_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="livefit train"):
        load_model(tmp_path, "propensity")


def test_artifact_path_cannot_escape_the_version_dir(tmp_path):
    save(tmp_path)
    man = tmp_path / "propensity" / "v1" / "manifest.json"
    data = json.loads(man.read_text())
    data["artifact"] = "../../../../etc/passwd"
    man.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="missing"):
        load_model(tmp_path, "propensity")
