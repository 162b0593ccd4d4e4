"""The built-in catalogue: schema, content checked against TotalSegmentator's class map, the
runtime validator agreeing with jsonschema, user catalogues, resource lookup and the cache folder."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

import medsegai.models as models
from medsegai.models import resources
from medsegai.models.cache import cache_dir, set_cache_dir_setting
from medsegai.models.catalog import read_catalog_file, validate_catalog_document
from medsegai.models.errors import CatalogError, ModelNotFoundError
from medsegai.resources import resource_dir, resource_dirs, resource_path
from models_support.fixtures import model_env  # noqa: F401 (pytest fixture)
from models_support.model_files import catalog_entry, write_user_catalog

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "Resources" / "Models" / "catalog.json"
SCHEMA = REPO / "Resources" / "Models" / "catalog.schema.json"
CLASS_MAPS = REPO / "MedSegAIInference" / "medsegai" / "totalseg" / "class_maps.json"
TS_IDS = {
    "Dataset297_TotalSegmentator_total_3mm_1559subj": ("fast", None, 3.0),
    "Dataset298_TotalSegmentator_total_6mm_1559subj": ("fastest", None, 6.0),
    "Dataset291_TotalSegmentator_part1_organs_1559subj": ("normal", "organs", 1.5),
    "Dataset292_TotalSegmentator_part2_vertebrae_1532subj": ("normal", "vertebrae", 1.5),
    "Dataset293_TotalSegmentator_part3_cardiac_1559subj": ("normal", "cardiac", 1.5),
    "Dataset294_TotalSegmentator_part4_muscles_1559subj": ("normal", "muscles", 1.5),
    "Dataset295_TotalSegmentator_part5_ribs_1559subj": ("normal", "ribs", 1.5),
}
PART_RANGES = {"organs": (1, 24), "vertebrae": (25, 50), "cardiac": (51, 68), "muscles": (69, 91), "ribs": (92, 117)}


def _doc():
    return json.loads(CATALOG.read_text())


def test_builtin_catalogue_matches_its_schema():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(_doc(), schema, cls=jsonschema.Draft202012Validator)
    assert validate_catalog_document(_doc()) == []


def test_builtin_catalogue_lists_the_bundled_and_totalsegmentator_models(model_env):
    catalog = models.load_catalog()
    assert set(catalog.entries) == set(TS_IDS) | {"medsegai_ct_demo", "medsegai_clicks", "medsegai_head_neck_oar"}
    demo = catalog.get("medsegai_ct_demo")
    assert demo.bundled and demo.path == REPO / "Resources" / "Models" / "medsegai_ct_demo" and not demo.urls
    assert demo.task == "demo" and demo.modality == "CT" and demo.license.name == "Apache-2.0"
    assert not demo.license.requires_acceptance
    total = {int(k): v for k, v in json.loads(CLASS_MAPS.read_text())["tasks"]["total"].items()}
    for mid, (quality, part, mm) in TS_IDS.items():
        e = catalog.get(mid)
        assert e.urls == (f"https://github.com/wasserth/TotalSegmentator/releases/download/v2.0.0-weights/{mid}.zip",)
        assert (e.task, e.quality, e.part, e.modality, e.spacing_mm) == ("total", quality, part, "CT", (mm, mm, mm))
        assert e.license.name == "Apache-2.0" and e.license.url and not e.license.requires_acceptance
        assert e.sha256 is None  # none published: trust on first use
        if part is None:
            assert [(s.value, s.name) for s in e.structures] == sorted(total.items())
        else:
            lo, hi = PART_RANGES[part]
            assert [s.value for s in e.structures] == list(range(1, hi - lo + 2))
            assert [(s.total_value, s.name) for s in e.structures] == [(v, total[v]) for v in range(lo, hi + 1)]
    parts = [catalog.get(m) for m, (q, p, _) in TS_IDS.items() if p]
    assert sorted(s.total_value for e in parts for s in e.structures) == list(range(1, 118))


BROKEN = [
    ("missing id", lambda d: d["models"][1].pop("id")),
    ("bad id", lambda d: d["models"][1].__setitem__("id", "../escape")),
    ("bad modality", lambda d: d["models"][1].__setitem__("modality", "PET")),
    ("both urls and path", lambda d: d["models"][1].__setitem__("path", "x")),
    ("neither urls nor path", lambda d: d["models"][1].pop("urls")),
    ("non-http url", lambda d: d["models"][1].__setitem__("urls", ["ftp://x/y.zip"])),
    ("short sha256", lambda d: d["models"][1].__setitem__("sha256", "abc")),
    ("licence without url or text", lambda d: d["models"][1]["license"].pop("url")),
    ("licence acceptance not boolean", lambda d: d["models"][1]["license"].__setitem__("requires_acceptance", "no")),
    ("structure value 0", lambda d: d["models"][1]["structures"][0].__setitem__("value", 0)),
    ("unknown field", lambda d: d["models"][1].__setitem__("colour", "red")),
    ("bad spacing", lambda d: d["models"][1].__setitem__("spacing_mm", [3, 3])),
    ("negative size", lambda d: d["models"][1].__setitem__("size_bytes", -1)),
    ("bundled without path", lambda d: (d["models"][1].__setitem__("bundled", True))),
    ("wrong schema version", lambda d: d.__setitem__("schema_version", 2)),
]


@pytest.mark.parametrize("label, breakit", BROKEN, ids=[b[0] for b in BROKEN])
def test_runtime_validator_and_json_schema_reject_the_same_documents(label, breakit):
    doc = copy.deepcopy(_doc())
    breakit(doc)
    schema = json.loads(SCHEMA.read_text())
    assert not jsonschema.Draft202012Validator(schema).is_valid(doc), label
    assert validate_catalog_document(doc), label


def test_duplicate_ids_are_rejected():
    doc = _doc()
    doc["models"].append(copy.deepcopy(doc["models"][1]))
    assert any("duplicate id" in e for e in validate_catalog_document(doc))


def test_user_catalogue_adds_and_overrides_entries(model_env):
    write_user_catalog(model_env, [
        catalog_entry("my_liver_model", urls=["https://example.org/liver.zip"]),
        catalog_entry("my_local_model", path="relative/folder"),
    ])
    catalog = models.load_catalog()
    assert catalog.get("my_liver_model").origin == "user"
    assert catalog.get("my_local_model").path == model_env / "relative" / "folder"
    assert "Dataset297_TotalSegmentator_total_3mm_1559subj" in catalog
    with pytest.raises(ModelNotFoundError, match="Did you mean: my_liver_model"):
        catalog.get("liver")


def test_bad_user_entry_is_skipped_and_named(model_env, capsys):
    bad = catalog_entry("x", urls=["https://example.org/x.zip"])
    bad["modality"] = "US"
    user = write_user_catalog(model_env, [
        catalog_entry("good_one", urls=["https://example.org/1.zip"]), bad, {"title": "no id"},
        catalog_entry("good_two", path="folder"), catalog_entry("good_one", urls=["https://example.org/dup.zip"]),
    ])
    catalog = models.load_catalog()
    assert {"good_one", "good_two", "medsegai_ct_demo", "medsegai_clicks", "medsegai_head_neck_oar"} | set(TS_IDS) == set(catalog.entries)
    assert catalog.get("good_one").urls == ("https://example.org/1.zip",)  # the later duplicate is the one skipped
    assert len(catalog.problems) == 3
    assert catalog.problems[0] == (f"Skipped the entry models[1] ('x') of the model catalogue {user}: "
                                   "'modality' must be one of CT, MR.")
    assert catalog.problems[1].startswith(f"Skipped the entry models[2] of the model catalogue {user}: missing")
    assert "models[4] ('good_one')" in catalog.problems[2] and "duplicate id" in catalog.problems[2]
    with pytest.raises(ModelNotFoundError, match=r"models\[1\] \('x'\).*'modality'"):
        catalog.get("x")  # why the model asked for is not there

    from medsegai.cli import main

    assert main(["models", "list"]) == 0
    out, err = capsys.readouterr()
    assert "good_one" in out and "good_two" in out and "medsegai_ct_demo" in out and " x " not in out
    assert err.count("warning: Skipped the entry") == 3 and "models[1] ('x')" in err and str(user) in err
    assert main(["models", "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert {"good_one", "good_two"} <= {m["id"] for m in json.loads(out)} and "models[1] ('x')" in err


@pytest.mark.parametrize("text", ["{not json", '{"schema_version": 2, "models": []}', '["a list"]'])
def test_unreadable_user_catalogue_keeps_the_builtins(model_env, text):
    model_env.mkdir(parents=True, exist_ok=True)
    (model_env / "catalog.user.json").write_text(text)
    catalog = models.load_catalog()
    assert set(catalog.entries) == set(TS_IDS) | {"medsegai_ct_demo", "medsegai_clicks", "medsegai_head_neck_oar"}
    assert len(catalog.problems) == 1 and str(model_env / "catalog.user.json") in catalog.problems[0]
    assert "none of its models are listed" in catalog.problems[0].lower()


def test_bad_site_entry_is_skipped_but_a_broken_builtin_catalogue_is_an_error(model_env, tmp_path, monkeypatch):
    res = tmp_path / "res" / "Models"
    res.mkdir(parents=True)
    (res / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [
        catalog_entry("builtin_one", urls=["https://example.org/b.zip"])]}))
    bad = catalog_entry("site_bad", urls=["not a url"])
    (res / "catalog.user.json").write_text(json.dumps({"schema_version": 1, "models": [
        bad, catalog_entry("site_good", urls=["https://example.org/s.zip"])]}))
    monkeypatch.setenv("MEDSEGAI_RESOURCES", str(tmp_path / "res"))
    catalog = models.load_catalog()
    assert set(catalog.entries) == {"builtin_one", "site_good"} and catalog.get("site_good").origin == "site"
    assert catalog.problems == [f"Skipped the entry models[0] ('site_bad') of the model catalogue "
                                f"{res / 'catalog.user.json'}: 'urls' must be a non-empty list of http(s) URLs."]
    (res / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [bad]}))
    with pytest.raises(CatalogError, match=r"catalog.json is invalid: models\[0\] \('site_bad'\): 'urls'"):
        models.load_catalog()


def test_panel_choices_list_the_good_entries_and_say_what_was_skipped(model_env, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "MedSegAI"))
    from MedSegAILib.model_choices import load_choices

    bad = catalog_entry("broken", urls=["https://example.org/b.zip"])
    del bad["license"]
    user = write_user_catalog(model_env, [bad, catalog_entry("my_model", urls=["https://example.org/m.zip"])])
    choices, problem = load_choices()
    keys = [c.key for c in choices]
    assert "task:total" in keys and "model:medsegai_ct_demo" in keys and "model:my_model" in keys
    assert "model:broken" not in keys
    assert "model:medsegai_clicks" not in keys  # interactive only: not a whole-scan segmentation choice
    assert "models[0] ('broken')" in problem and str(user) in problem and "license" in problem
    (model_env / "catalog.user.json").write_text("{not json")
    choices, problem = load_choices()
    assert "task:total" in [c.key for c in choices] and "model:medsegai_ct_demo" in [c.key for c in choices]
    assert "not valid JSON" in problem and str(user) in problem


def test_resources_env_override(model_env, tmp_path, monkeypatch):
    (tmp_path / "res" / "Models").mkdir(parents=True)
    doc = {"schema_version": 1, "models": [catalog_entry("only_this", urls=["https://example.org/a.zip"])]}
    (tmp_path / "res" / "Models" / "catalog.json").write_text(json.dumps(doc))
    monkeypatch.setenv("MEDSEGAI_RESOURCES", str(tmp_path / "res"))
    assert resources.builtin_catalog_path() == tmp_path / "res" / "Models" / "catalog.json"
    assert set(models.load_catalog().entries) == {"only_this"}


def test_source_checkout_resources_are_found(model_env):
    assert resources.builtin_catalog_path() == CATALOG
    assert resources.schema_path() == SCHEMA
    assert read_catalog_file(CATALOG, "builtin")[0].id == "medsegai_ct_demo"
    assert resource_dir() == REPO / "Resources"
    assert resource_path("Models", "medsegai_ct_demo") == REPO / "Resources" / "Models" / "medsegai_ct_demo"


def test_resource_path_looks_item_by_item(model_env, tmp_path, monkeypatch):
    (tmp_path / "res" / "Models").mkdir(parents=True)
    (tmp_path / "res" / "Models" / "catalog.json").write_text("{}")
    monkeypatch.setenv("MEDSEGAI_RESOURCES", str(tmp_path / "res"))
    assert resource_dirs()[0] == tmp_path / "res" and resource_dir() == tmp_path / "res"
    assert resource_path("Models", "catalog.json") == tmp_path / "res" / "Models" / "catalog.json"
    # Not in the override: the next candidate's copy, and for what no candidate has, the first one's path.
    assert resource_path("Models", "medsegai_ct_demo") == REPO / "Resources" / "Models" / "medsegai_ct_demo"
    assert resource_path("nowhere.txt") == tmp_path / "res" / "nowhere.txt"


def test_cache_dir_env_then_setting_then_default(model_env, tmp_path, monkeypatch):
    assert cache_dir() == model_env  # MEDSEGAI_HOME
    monkeypatch.delenv("MEDSEGAI_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cache_dir() == tmp_path / "user" / ".medsegai"
    set_cache_dir_setting(tmp_path / "elsewhere")
    assert cache_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv("MEDSEGAI_HOME", str(tmp_path / "env_wins"))
    assert cache_dir() == tmp_path / "env_wins"
    set_cache_dir_setting(None)
    monkeypatch.delenv("MEDSEGAI_HOME")
    assert cache_dir() == tmp_path / "user" / ".medsegai"
    # never inside the installed package
    assert Path(models.__file__).resolve().parent not in cache_dir().resolve().parents
