"""Resolving ids and paths: TotalSegmentator's own weights, user folders, bundled models, offline
import of TotalSegmentator zips and folders, and the CLI."""
from __future__ import annotations

import json

import pytest

import medsegai.models as models
from medsegai.errors import InvalidModelError
from medsegai import cli
from medsegai.models.errors import ChecksumError, ModelNotFoundError, ModelNotInstalledError
from models_support.fixtures import model_env, server  # noqa: F401 (pytest fixtures)
from models_support.http_server import Route
from models_support.model_files import (
    TRAINER_FOLDER, catalog_entry, make_model_folder, model_zip_bytes, write_user_catalog,
)

pytestmark = pytest.mark.timeout(30)

TS297 = "Dataset297_TotalSegmentator_total_3mm_1559subj"
TS298 = "Dataset298_TotalSegmentator_total_6mm_1559subj"


def test_totalsegmentator_weights_are_used_without_download(model_env, tmp_path):
    folder = make_model_folder(tmp_path / "totalseg_home" / "nnunet" / "results", TS297, n_labels=117)
    status = models.locate(TS297)
    assert status.where == "totalsegmentator" and status.location == folder
    # allow_download is on, but the model is found first: nothing is fetched (any request would
    # fail on the dead proxy that model_env sets).
    assert models.resolve_model(TS297, allow_download=True) == folder / TRAINER_FOLDER
    assert models.pull(TS297) == folder / TRAINER_FOLDER
    trust = json.loads((model_env / "trust.json").read_text())
    assert str(folder.resolve()) in trust["folders"]  # hashes recorded at first use


def test_totalseg_weights_path_env_and_tampering(model_env, tmp_path, monkeypatch):
    weights = tmp_path / "ts_weights"
    folder = make_model_folder(weights, TS298, n_labels=117)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(weights))
    assert models.resolve_model(TS298) == folder / TRAINER_FOLDER
    (folder / TRAINER_FOLDER / "plans.json").write_text('{"changed": true}')
    with pytest.raises(ChecksumError, match="changed since they were first used.*plans.json"):
        models.resolve_model(TS298)
    assert models.remove(TS298, forget_hash=True)  # a deliberate change: forget, then re-record
    assert models.resolve_model(TS298) == folder / TRAINER_FOLDER
    assert folder.exists()  # remove never deletes TotalSegmentator's files


def test_user_catalogue_folder_entry(model_env, tmp_path):
    folder = make_model_folder(tmp_path / "mine", "Dataset500_Mine")
    write_user_catalog(model_env, [catalog_entry("mine", path=str(folder))])
    assert models.resolve_model("mine") == folder / TRAINER_FOLDER
    assert models.locate("mine").where == "path"


def test_plain_paths_are_accepted(model_env, tmp_path):
    folder = make_model_folder(tmp_path, "Dataset501_Path")
    assert models.resolve_model(folder) == folder / TRAINER_FOLDER
    assert models.resolve_model(str(folder / TRAINER_FOLDER)) == folder / TRAINER_FOLDER
    with pytest.raises(ModelNotFoundError):
        models.resolve_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidModelError, match="no nnU-Net result folder"):
        models.resolve_model(tmp_path / "empty")


def test_unknown_id_and_missing_bundled_model(model_env):
    with pytest.raises(ModelNotFoundError, match="No model 'nonexistent'"):
        models.resolve_model("nonexistent")
    if models.locate("medsegai_ct_demo").where == "missing":
        with pytest.raises(ModelNotInstalledError, match="bundled model"):
            models.resolve_model("medsegai_ct_demo")


def test_bundled_model_is_read_in_place(model_env, tmp_path, monkeypatch):
    res = tmp_path / "res"
    (res / "Models").mkdir(parents=True)
    demo = make_model_folder(res / "Models", "medsegai_ct_demo")
    entry = catalog_entry("medsegai_ct_demo", path="medsegai_ct_demo")
    entry["bundled"] = True
    (res / "Models" / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    monkeypatch.setenv("MEDSEGAI_RESOURCES", str(res))
    assert models.resolve_model("medsegai_ct_demo") == demo / TRAINER_FOLDER
    with pytest.raises(InvalidModelError, match="bundled"):
        models.import_model(demo, "medsegai_ct_demo")


def test_import_totalsegmentator_zip_as_it_is(model_env, tmp_path):
    archive = tmp_path / f"{TS297}.zip"
    archive.write_bytes(model_zip_bytes(TS297, n_labels=117))
    path = models.import_model(archive)
    assert path == model_env / "models" / TS297 / TRAINER_FOLDER
    assert models.locate(TS297).where == "cache" and models.verify(TS297).ok
    # The same zip again is fine; a different file under the same id is refused (first use recorded).
    models.import_model(archive)
    other = tmp_path / "other" / f"{TS297}.zip"
    other.parent.mkdir()
    other.write_bytes(model_zip_bytes(TS297, n_labels=117, seed=3))
    with pytest.raises(ChecksumError, match="changed since first use"):
        models.import_model(other)


def test_import_refuses_the_wrong_totalsegmentator_zip(model_env, tmp_path):
    archive = tmp_path / "renamed.zip"
    archive.write_bytes(model_zip_bytes(TS298, n_labels=117))
    with pytest.raises(InvalidModelError, match=f"holds {TS298}, not {TS297}"):
        models.import_model(archive, TS297)
    archive.write_bytes(model_zip_bytes(TS297, n_labels=10))
    with pytest.raises(InvalidModelError, match="10 structures"):
        models.import_model(archive, TS297)
    assert models.locate(TS297).where == "missing"


def test_import_a_folder_and_an_unknown_model(model_env, tmp_path):
    wrong = make_model_folder(tmp_path / "wrong", TS298, n_labels=117)
    with pytest.raises(InvalidModelError, match=f"folder is {TS298}, not {TS297}"):
        models.import_model(wrong, TS297)
    ts_folder = make_model_folder(tmp_path / "copy", TS297, n_labels=117)
    assert models.import_model(ts_folder) == model_env / "models" / TS297 / TRAINER_FOLDER
    custom = make_model_folder(tmp_path, "Dataset777_Custom", n_labels=4)
    path = models.import_model(custom / TRAINER_FOLDER)  # a bare result folder: id from its parent
    assert path == model_env / "models" / "Dataset777_Custom" / TRAINER_FOLDER
    entry = models.load_catalog().get("Dataset777_Custom")
    assert entry.origin == "user" and [s.name for s in entry.structures][:2] == ["structure_1", "structure_2"]
    assert entry.modality == "CT"
    assert models.resolve_model("Dataset777_Custom") == path
    assert "Dataset777_Custom" in [s.model_id for s in models.list_models()]


def test_import_refuses_symlinked_folders(model_env, tmp_path):
    folder = make_model_folder(tmp_path, "Dataset778_Links")
    (folder / TRAINER_FOLDER / "evil").symlink_to("/etc/passwd")
    with pytest.raises(InvalidModelError, match="symbolic link"):
        models.import_model(folder)


# ----------------------------------------------------------------------------- CLI

def _cli(capsys, *argv):
    code = cli.main(["models", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_end_to_end(model_env, server, capsys, tmp_path):
    mid = "Dataset990_Test"
    server.routes[f"/{mid}.zip"] = Route(model_zip_bytes(mid))
    write_user_catalog(model_env, [catalog_entry(mid, urls=[server.url(f"/{mid}.zip")], requires_acceptance=True)])

    code, out, err = _cli(capsys, "list")
    assert code == 0 and mid in out and "acceptance needed" in out and str(model_env) in out

    code, out, err = _cli(capsys, "pull", mid, "--retries", "1")
    assert code == 1 and "Test-Licence" in err and "--accept-license" in err  # licence shown, then refused
    assert server.gets(f"/{mid}.zip") == []

    code, out, err = _cli(capsys, "pull", mid, "--accept-license", "--retries", "1", "--timeout", "2")
    assert code == 0 and str(model_env / "models" / mid) in out

    code, out, err = _cli(capsys, "verify", mid)
    assert code == 0 and out.startswith("OK")

    code, out, err = _cli(capsys, "info", mid, "--json")
    info = json.loads(out)
    assert code == 0 and info["status"]["where"] == "cache" and info["license"]["name"] == "Test-Licence"

    ckpt = model_env / "models" / mid / TRAINER_FOLDER / "fold_0" / "checkpoint_final.pth"
    ckpt.write_bytes(b"tampered")
    code, out, err = _cli(capsys, "verify", mid)
    assert code == 1 and "CHANGED" in out and "checkpoint_final.pth" in out

    code, out, err = _cli(capsys, "remove", mid)
    assert code == 0 and "removed" in out and not (model_env / "models" / mid).exists()

    archive = tmp_path / f"{mid}.zip"
    archive.write_bytes(model_zip_bytes(mid))
    code, out, err = _cli(capsys, "import", str(archive))
    assert code == 0 and "Imported" in out, err

    code, out, err = _cli(capsys, "info", "Dataset297_TotalSegmentator_total_3mm_1559subj")
    assert code == 0 and "117 structures" in out and "Apache-2.0" in out and "recorded at first download" in out

    code, out, err = _cli(capsys, "cache-dir")
    assert code == 0 and out.strip() == str(model_env)


def test_cli_cache_dir_setting(model_env, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSEGAI_HOME")
    code, out, err = _cli(capsys, "cache-dir", "--set", str(tmp_path / "big_disk"))
    assert code == 0 and out.strip() == str(tmp_path / "big_disk")
    assert models.cache_dir() == tmp_path / "big_disk"
    code, out, err = _cli(capsys, "cache-dir", "--unset")
    assert models.cache_dir() != tmp_path / "big_disk"
