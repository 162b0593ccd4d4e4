"""Pull, import, verify and remove against a real local HTTP server: hashes, trust on first use,
unsafe and truncated archives, atomic installation, concurrent pulls, licences."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

import medsegai.models as models
from medsegai.errors import InvalidModelError
from medsegai.models.extract import ExtractLimits, safe_extract_zip
from medsegai.models.errors import (
    ChecksumError, DownloadError, LicenseNotAcceptedError, ModelNotInstalledError, UnsafeArchiveError,
)
from medsegai.models.integrity import MANIFEST_NAME
from models_support.fixtures import fast_options, model_env, server  # noqa: F401 (pytest fixtures)
from models_support.http_server import Route
from models_support.model_files import (
    TRAINER_FOLDER, catalog_entry, make_model_folder, model_zip_bytes, write_user_catalog, zip_with_symlink,
)

pytestmark = pytest.mark.timeout(30)

MID = "Dataset990_Test"


def _serve_model(server, home, *, sha256=None, requires_acceptance=False, route=None, n_labels=3):
    data = model_zip_bytes(MID, n_labels=n_labels)
    server.routes[f"/{MID}.zip"] = route or Route(data)
    if route is not None:
        route.body = data
    write_user_catalog(home, [catalog_entry(MID, urls=[server.url(f"/{MID}.zip")], sha256=sha256,
                                            requires_acceptance=requires_acceptance)])
    return data


def _no_staging_left(home: Path) -> bool:
    tmp = home / "tmp"
    return not tmp.exists() or not any(tmp.iterdir())


# ----------------------------------------------------------------------------- pull

def test_pull_installs_atomically_and_later_uses_do_not_download(model_env, server, fast_options):
    data = _serve_model(server, model_env)
    events = []
    path = models.pull(MID, options=fast_options, progress=events.append)
    assert path == model_env / "models" / MID / TRAINER_FOLDER
    assert (path / "fold_0" / "checkpoint_final.pth").is_file()
    manifest = json.loads((model_env / "models" / MID / MANIFEST_NAME).read_text())
    assert manifest["archive_sha256"] == hashlib.sha256(data).hexdigest()
    assert set(manifest["files"]) == {f"{TRAINER_FOLDER}/{n}" for n in ("plans.json", "dataset.json", "fold_0/checkpoint_final.pth")}
    assert {e.stage for e in events} >= {"download", "verify", "extract"}
    assert _no_staging_left(model_env)
    assert not list((model_env / "downloads").iterdir())  # the zip is not kept after install
    trust = json.loads((model_env / "trust.json").read_text())
    assert trust["archives"][f"{MID}@1.0"]["sha256"] == hashlib.sha256(data).hexdigest()
    # Later calls resolve from the cache.
    assert models.resolve_model(MID) == path
    assert models.pull(MID, options=fast_options) == path
    assert len(server.gets(f"/{MID}.zip")) == 1


def test_resolve_without_download_permission_says_how_to_get_the_model(model_env, server):
    _serve_model(server, model_env)
    with pytest.raises(ModelNotInstalledError, match="models pull .*models import"):
        models.resolve_model(MID)
    assert server.gets(f"/{MID}.zip") == []


def test_resolve_with_download_permission_pulls(model_env, server):
    _serve_model(server, model_env)
    path = models.resolve_model(MID, allow_download=True)
    assert path.name == TRAINER_FOLDER


def test_pull_with_catalogue_sha256(model_env, server, fast_options):
    data = model_zip_bytes(MID)
    _serve_model(server, model_env, sha256=hashlib.sha256(data).hexdigest())
    assert models.pull(MID, options=fast_options).is_dir()


def test_wrong_hash_is_refused_and_nothing_installed(model_env, server, fast_options):
    _serve_model(server, model_env, sha256="0" * 64)
    with pytest.raises(ChecksumError, match="catalogue lists 0000"):
        models.pull(MID, options=fast_options)
    assert not (model_env / "models" / MID).exists()
    assert not list((model_env / "downloads").iterdir())  # a wrong file is not kept for resume


def test_changed_release_file_is_refused_after_first_download(model_env, server, fast_options):
    _serve_model(server, model_env)
    models.pull(MID, options=fast_options)
    models.remove(MID)
    server.routes[f"/{MID}.zip"] = Route(model_zip_bytes(MID, seed=1))  # same name, other bytes
    with pytest.raises(ChecksumError, match="changed since first use"):
        models.pull(MID, options=fast_options)
    assert not (model_env / "models" / MID).exists()
    # A deliberate update: forget the recorded hash, then the new file is accepted and recorded.
    assert models.remove(MID, forget_hash=True)
    assert models.pull(MID, options=fast_options).is_dir()


def test_installed_file_changed_after_first_use_is_refused(model_env, server, fast_options):
    _serve_model(server, model_env)
    path = models.pull(MID, options=fast_options)
    ckpt = path / "fold_0" / "checkpoint_final.pth"
    blob = bytearray(ckpt.read_bytes())
    blob[1000] ^= 0xFF
    ckpt.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="changed since they were first used.*checkpoint_final.pth"):
        models.resolve_model(MID)
    report = models.verify(MID)
    assert not report.ok and report.problems[0].startswith("changed: ")
    # pull --force repairs it
    models.pull(MID, options=fast_options, force=True)
    assert models.verify(MID).ok
    assert models.resolve_model(MID) == path


def test_download_failure_leaves_no_model(model_env, server, fast_options):
    write_user_catalog(model_env, [catalog_entry(MID, urls=[server.url("/gone.zip")])])
    with pytest.raises(DownloadError, match="404"):
        models.pull(MID, options=fast_options)
    assert not (model_env / "models" / MID).exists()


def test_second_url_is_tried_when_the_first_fails(model_env, server, fast_options):
    data = model_zip_bytes(MID)
    server.routes["/mirror.zip"] = Route(data)
    write_user_catalog(model_env, [catalog_entry(MID, urls=[server.url("/gone.zip"), server.url("/mirror.zip")])])
    assert models.pull(MID, options=fast_options).is_dir()


def test_truncated_download_is_not_installed(model_env, server, fast_options):
    data = model_zip_bytes(MID)
    server.routes[f"/{MID}.zip"] = Route(data[: len(data) // 2])  # the server itself has a cut file
    write_user_catalog(model_env, [catalog_entry(MID, urls=[server.url(f"/{MID}.zip")])])
    with pytest.raises(UnsafeArchiveError, match="truncated"):
        models.pull(MID, options=fast_options)
    assert not (model_env / "models" / MID).exists()
    assert _no_staging_left(model_env)
    trust = model_env / "trust.json"
    assert not trust.exists() or not json.loads(trust.read_text())["archives"]  # a bad file is never trusted


def test_wrong_model_in_the_zip_is_refused(model_env, server, fast_options):
    _serve_model(server, model_env)
    server.routes[f"/{MID}.zip"] = Route(model_zip_bytes(MID, n_labels=5))  # catalogue says 3
    with pytest.raises(InvalidModelError, match="5 structures but catalogue entry"):
        models.pull(MID, options=fast_options)
    assert not (model_env / "models" / MID).exists()


def test_two_concurrent_pulls_download_once(model_env, server, fast_options):
    _serve_model(server, model_env, route=Route(trickle=(16 * 1024, 0.01)))  # about 0.2 s per download
    results, errors = [], []

    def worker():
        try:
            results.append(models.pull(MID, options=fast_options))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert len(results) == 2 and results[0] == results[1]
    assert len(server.gets(f"/{MID}.zip")) == 1
    assert models.verify(MID).ok


def test_pull_in_another_process_killed_mid_download(model_env, server):
    """Two processes pull the same model; the one downloading is killed. The lock keeps the other
    waiting (no second download in parallel), the crash leaves no model, and the survivor resumes
    the partial file with Range and installs it."""
    data = _serve_model(server, model_env, route=Route(trickle=(2048, 0.02)))  # about 2 s in all
    code = (
        "import sys; from medsegai.models import pull, DownloadOptions;"
        "pull(sys.argv[1], options=DownloadOptions(read_timeout_s=5, retries=0))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, MID], env=dict(os.environ))
    part = model_env / "downloads" / f"{MID}+1.0.zip.part"
    deadline = time.monotonic() + 90  # the child imports torch first: slow on a loaded 2-core machine
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 20_000):
        time.sleep(0.02)
    assert part.exists(), "the child process never started downloading"
    results, errors = [], []

    def in_process_pull():
        try:
            results.append(models.pull(MID, options=models.DownloadOptions(read_timeout_s=2, retries=1, backoff_s=0.01)))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    waiter = threading.Thread(target=in_process_pull)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and len(server.gets(f"/{MID}.zip")) == 1, (errors, results)  # blocked on the lock
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    kept = part.stat().st_size
    assert 0 < kept < len(data)
    assert not (model_env / "models" / MID).exists()
    server.routes[f"/{MID}.zip"] = Route(data)
    waiter.join(20)
    assert not errors, errors
    assert results and results[0].is_dir() and models.verify(MID).ok
    resumed = server.gets(f"/{MID}.zip")[-1]
    assert resumed.headers["Range"].startswith("bytes=") and int(resumed.headers["Range"][6:-1]) >= kept - 1


def test_crash_remnants_in_staging_are_ignored_and_cleaned(model_env, server, fast_options):
    _serve_model(server, model_env)
    # What a crash during extraction leaves behind: a half-filled staging folder and no model.
    stale = model_env / "tmp" / f"{MID}+crashed" / "content" / MID / TRAINER_FOLDER
    stale.mkdir(parents=True)
    (stale / "plans.json").write_text("{")
    with pytest.raises(ModelNotInstalledError):
        models.resolve_model(MID)
    models.pull(MID, options=fast_options)
    assert not (model_env / "tmp" / f"{MID}+crashed").exists()
    # A model folder without a manifest (copied by hand, or an interrupted old version) is not trusted.
    assert models.remove(MID)
    make_model_folder(model_env / "models", MID)
    assert models.locate(MID).where == "missing"


def test_failed_reinstall_keeps_the_working_model(model_env, server, fast_options):
    _serve_model(server, model_env)
    path = models.pull(MID, options=fast_options)
    server.routes[f"/{MID}.zip"] = Route(b"this is not a zip")
    with pytest.raises(ChecksumError):  # trust on first use catches it before extraction
        models.pull(MID, options=fast_options, force=True)
    assert models.resolve_model(MID) == path and models.verify(MID).ok


# ----------------------------------------------------------------------------- licences

def test_licence_acceptance_is_required_once_and_remembered(model_env, server, fast_options):
    _serve_model(server, model_env, requires_acceptance=True)
    shown = []
    with pytest.raises(LicenseNotAcceptedError, match="--accept-license"):
        models.pull(MID, options=fast_options, on_license=lambda e, text: shown.append(text))
    assert shown and "Test-Licence" in shown[0] and "must be accepted" in shown[0]
    assert server.gets(f"/{MID}.zip") == []  # the licence comes before any download
    models.pull(MID, options=fast_options, accept_license=True)
    accepted = json.loads((model_env / "licenses.json").read_text())
    assert MID in accepted and accepted[MID]["license"] == "Test-Licence"
    models.remove(MID)
    assert models.pull(MID, options=fast_options).is_dir()  # remembered
    assert models.resolve_model(MID).is_dir()


def test_changed_licence_needs_new_acceptance(model_env, server, fast_options):
    _serve_model(server, model_env, requires_acceptance=True)
    models.pull(MID, options=fast_options, accept_license=True)
    entry = catalog_entry(MID, urls=[server.url(f"/{MID}.zip")], requires_acceptance=True)
    entry["license"]["text"] = "New terms."
    write_user_catalog(model_env, [entry])
    with pytest.raises(LicenseNotAcceptedError):
        models.resolve_model(MID)


# ----------------------------------------------------------------------------- unsafe archives

@pytest.mark.parametrize("name, pattern", [
    ("../evil.txt", r"'\.\.'"),
    (f"{MID}/../../evil.txt", r"'\.\.'"),
    ("/tmp/medsegai_evil_abs.txt", "absolute path"),
    ("C:/evil.txt", "absolute path"),
    (f"{MID}\\..\\evil.txt", "backslash"),
])
def test_traversal_and_absolute_paths_are_refused(model_env, tmp_path, name, pattern):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(model_zip_bytes(MID, extra=[(name, b"owned")]))
    with pytest.raises(UnsafeArchiveError, match=pattern):
        models.import_model(archive, MID)
    assert not (tmp_path / "evil.txt").exists() and not (model_env / "evil.txt").exists()
    assert not Path("/tmp/medsegai_evil_abs.txt").exists()
    assert not (model_env / "models" / MID).exists() and _no_staging_left(model_env)


def test_symlink_member_is_refused(model_env, tmp_path):
    archive = zip_with_symlink(tmp_path / "link.zip", MID, f"{MID}/{TRAINER_FOLDER}/fold_0/link", "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        models.import_model(archive, MID)
    assert not (model_env / "models" / MID).exists()


def test_oversized_member_is_refused_before_extraction(model_env, tmp_path):
    archive = tmp_path / "big.zip"
    archive.write_bytes(model_zip_bytes(MID, extra=[(f"{MID}/big.bin", b"\0" * 3_000_000)]))
    with pytest.raises(UnsafeArchiveError, match="more than"):
        models.import_model(archive, MID, limits=ExtractLimits(max_total_bytes=2_000_000))
    assert not (model_env / "models" / MID).exists() and _no_staging_left(model_env)


def test_zip_bomb_ratio_is_refused_with_default_limits(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.bin", b"\0" * (40 * 1024 * 1024))  # compresses about 1000x
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_member_larger_than_declared_is_stopped(tmp_path):
    archive = tmp_path / "lying.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", b"x" * 1000)
    blob = bytearray(archive.read_bytes())
    # Shrink the declared size in the central directory only: zipfile reads exactly the declared
    # size, so the check that matters is the CRC, which now fails.
    cd = blob.rfind(b"PK\x01\x02")
    blob[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(blob))
    with pytest.raises(UnsafeArchiveError):
        safe_extract_zip(archive, tmp_path / "out")


def test_truncated_zip_import_is_refused(model_env, tmp_path):
    data = model_zip_bytes(MID)
    archive = tmp_path / f"{MID}.zip"
    archive.write_bytes(data[: len(data) - 200])  # central directory cut off
    with pytest.raises(InvalidModelError, match="zip archive|truncated"):
        models.import_model(archive)
    assert not (model_env / "models" / MID).exists()


def test_corrupt_member_data_is_refused(model_env, tmp_path):
    data = bytearray(model_zip_bytes(MID))
    data[len(data) // 3] ^= 0xFF  # inside the checkpoint's compressed data
    archive = tmp_path / f"{MID}.zip"
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match="corrupt or truncated"):
        models.import_model(archive)
    assert not (model_env / "models" / MID).exists() and _no_staging_left(model_env)
