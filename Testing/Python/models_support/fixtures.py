"""pytest fixtures shared by the test_models_* files (import them by name into each test module)."""
from __future__ import annotations

import pytest

from medsegai.models.download import DownloadOptions

from .http_server import LocalServer

# A closed port on 127.0.0.1: any request that does not go to the local test server would be sent
# to this "proxy" and fail at once, so no test can ever reach the internet.
DEAD_PROXY = "http://127.0.0.1:9"


@pytest.fixture
def model_env(tmp_path, monkeypatch):
    """An isolated MedSegAI cache, config and TotalSegmentator home under tmp_path."""
    home = tmp_path / "medsegai_home"
    monkeypatch.setenv("MEDSEGAI_HOME", str(home))
    monkeypatch.setenv("MEDSEGAI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "totalseg_home"))
    for var in ("TOTALSEG_WEIGHTS_PATH", "MEDSEGAI_RESOURCES", "MEDSEGAI_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
                "CURL_CA_BUNDLE", "ALL_PROXY", "all_proxy", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.setenv("HTTPS_PROXY", DEAD_PROXY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def fast_options():
    """Short time-outs and back-off so failure paths finish in well under a second."""
    return DownloadOptions(connect_timeout_s=2.0, read_timeout_s=1.0, retries=2, backoff_s=0.01, max_backoff_s=0.05,
                           chunk_size=64 * 1024, progress_interval_s=0.0)
