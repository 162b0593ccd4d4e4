"""Predictor: built once, run many times; a second predict loads, hashes and builds nothing."""
from __future__ import annotations

import numpy as np
import pytest

import medsegai
from medsegai import Predictor, RunRequest, RunRequestError
from medsegai.io.read import read_image
from models_support.fixtures import fast_options, model_env, server  # noqa: F401 - fixtures
from models_support.served_model import served_model  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def small_ct(ts_ref):
    return read_image(ts_ref / "example_ct_sm.nii.gz")


class Counter:
    def __init__(self, monkeypatch, module, name):
        self.calls = 0
        original = getattr(module, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


def test_second_predict_loads_nothing(monkeypatch, small_ct):
    import medsegai.models as models_pkg
    import medsegai.models.api as models_api
    import medsegai.nnunet.model_folder as model_folder

    loads = Counter(monkeypatch, model_folder, "load_checkpoint")
    builds = Counter(monkeypatch, model_folder, "build_network")
    hashes = Counter(monkeypatch, models_api, "verify")
    resolves = Counter(monkeypatch, models_pkg, "resolve_model")

    predictor = Predictor(model="medsegai_ct_demo", device="cpu", threads=1)
    after_init = (loads.calls, builds.calls, resolves.calls)
    assert loads.calls == 1 and builds.calls == 1 and resolves.calls == 1

    first = predictor.predict(small_ct)
    second = predictor.predict(small_ct, uncertainty="entropy")
    third = predictor.predict(small_ct, roi_subset=["liver"])
    assert (loads.calls, builds.calls, resolves.calls) == after_init
    assert hashes.calls == 0  # the bundled model is not re-hashed; an installed one is hashed once, at init

    assert "load" in first.timings  # the construction's load, reported once
    assert "load" not in second.timings and "load" not in third.timings
    np.testing.assert_array_equal(first.labels.array, second.labels.array)  # uncertainty never changes labels
    assert second.uncertainty is not None and first.uncertainty is None
    liver = next(s.value for s in first.segments if s.name == "liver")
    np.testing.assert_array_equal(third.labels.array, np.where(first.labels.array == liver, liver, 0))
    assert [s.name for s in third.segments] == ["liver"]


def test_predictor_equals_segment(small_ct):
    predictor = Predictor(model="medsegai_ct_demo", device="cpu")
    a = predictor.predict(small_ct)
    b = medsegai.segment(small_ct, model="medsegai_ct_demo", device="cpu")
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    assert [s.name for s in a.segments] == [s.name for s in b.segments]


def test_installed_model_is_hashed_once(monkeypatch, small_ct, served_model, fast_options):
    import medsegai.models.api as models_api

    models_api.pull(served_model, options=fast_options)
    hashes = Counter(monkeypatch, models_api, "verify")
    predictor = Predictor(model=served_model, device="cpu")
    assert hashes.calls == 1
    predictor.predict(small_ct)
    predictor.predict(small_ct)
    assert hashes.calls == 1


def test_per_call_options_cannot_change_the_model(small_ct):
    predictor = Predictor(model="medsegai_ct_demo", device="cpu")
    with pytest.raises(RunRequestError, match="cannot change per call"):
        predictor.predict(small_ct, device="cuda")
    with pytest.raises(RunRequestError, match="Unknown run option.*roi_subest"):
        predictor.predict(small_ct, roi_subest=["liver"])
    other = RunRequest(model="somewhere_else", device="cpu")
    with pytest.raises(RunRequestError, match="other model"):
        predictor.predict(small_ct, request=other)


@pytest.mark.parametrize("options, message", [
    ({"quality": "best"}, "Unknown quality 'best'"),
    ({"mode": "fastest"}, "Unknown mode"),
    ({"precision": "int4"}, "Unknown precision"),
    ({"device": "tpu"}, "Unknown device 'tpu'"),
    ({"threads": 0}, "threads must be"),
    ({"folds": ["x"]}, "folds must be"),
    ({"roi_subset": []}, "subset is empty"),
    ({"roi_subset": "liver"}, "list of structure names"),
    ({"tile_step": 0}, "tile step"),
    ({"uncertainty": "bayes"}, "Unknown uncertainty method 'bayes'"),
    ({"uncertainty": "tta", "uncertainty_passes": 1}, "at least 2 passes and takes at most 64"),
    ({"confidence_threshold": 1.5}, "between 0 and 1"),
])
def test_run_request_validation(options, message):
    with pytest.raises(RunRequestError, match=message):
        RunRequest(**options).validate()
    with pytest.raises(RunRequestError, match=message):  # the API checks before reading the image
        medsegai.segment("/does/not/exist.nii.gz", **options)


def test_run_request_round_trips_json():
    r = RunRequest(task="total", quality="fast", roi_subset=["liver", "liver", "spleen"], folds=[0], precision="fp32",
                   uncertainty="tta", uncertainty_passes=4).validate()
    assert r.roi_subset == ["liver", "spleen"] and r.folds == ["0"]
    assert RunRequest.from_dict(r.to_dict()) == r
    with pytest.raises(RunRequestError, match="Unknown run option"):
        RunRequest.from_dict({**r.to_dict(), "qualty": "fast"})
