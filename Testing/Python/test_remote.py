"""Remote runs where things go wrong: an exposed bind without a token, TLS verification, a server that dies."""
from __future__ import annotations

import subprocess
import time

import pytest
import requests

from server_support import CLI, TOKEN, Server, env, make_cert, run_cli

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'medsegai[server]'")


def test_a_non_loopback_bind_without_a_token_is_refused(tmp_path):
    p = run_cli("serve", "--host", "0.0.0.0", "--port", "1", timeout=120)
    assert p.returncode == 1 and "without authentication" in p.stderr and "--token" in p.stderr, p.stderr
    p = run_cli("serve", "--host", "0.0.0.0", "--port", "1", "--token", "short", timeout=120)
    assert p.returncode == 1 and "shorter than" in p.stderr, p.stderr
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# users\nalice:\n")
    p = run_cli("serve", "--host", "0.0.0.0", "--port", "1", "--token-file", tokens, timeout=120)
    assert p.returncode == 1 and "line 2" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_tokens_from_a_file_name_the_user(tmp_path):
    from medsegai.server.auth import load_tokens

    f = tmp_path / "tokens.txt"
    f.write_text("alice:aaaaaaaaaaaaaaaaaaaaaaaa\n# bob left\nbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n")
    tokens = load_tokens(token_file=str(f), env={})
    assert tokens.user_for("aaaaaaaaaaaaaaaaaaaaaaaa") == "alice"
    assert tokens.user_for("bbbbbbbbbbbbbbbbbbbbbbbbbbbb") == "user3"
    assert tokens.user_for("aaaaaaaaaaaaaaaaaaaaaaab") is None and tokens.user_for("") is None


def test_tls_is_verified_against_the_ca_bundle_and_never_skipped(tmp_path, ts_ref):
    from medsegai.remote.client import RemoteClient
    from medsegai.remote.protocol import RemoteError

    cert, key = make_cert(tmp_path)
    server = Server(tmp_path, certfile=cert, keyfile=key).wait_ready(verify=str(cert))
    try:
        with pytest.raises(RemoteError) as e:  # the system CAs do not know a private certificate
            RemoteClient(server.url, TOKEN).check()
        assert "certificate" in str(e.value) and "--ca-bundle" in str(e.value)
        assert RemoteClient(server.url, TOKEN, ca_bundle=str(cert)).check()["protocol"] >= 1
        out = tmp_path / "out"
        p = run_cli("segment", "-i", ts_ref / "example_ct_sm.nii.gz", "-o", out, "--ml", "--server", server.url,
                    "--token", TOKEN, "--ca-bundle", cert, "-q")
        assert p.returncode == 0, p.stderr
        assert sorted(f.name for f in out.iterdir()) == ["segmentation.nii.gz", "segmentation.seg.nrrd",
                                                          "segmentation_labels.csv"]
        with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP to a TLS port does not work either
            requests.get(server.url.replace("https", "http") + "/v1/info", timeout=5)
    finally:
        server.stop()


def test_a_server_killed_mid_job_gives_the_client_a_clear_error(tmp_path, ts_ref):
    server = Server(tmp_path).wait_ready()
    out = tmp_path / "out"
    try:
        proc = subprocess.Popen(CLI + ["segment", "-i", str(ts_ref / "example_ct_sm.nii.gz"), "-o", str(out),
                                       "--server", server.url, "--token", TOKEN, "--uncertainty", "tta",
                                       "--uncertainty-passes", "64"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        deadline = time.monotonic() + 60
        while '"job started"' not in server.log_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        time.sleep(1.0)
        server.kill()
        t = time.monotonic()
        _out, err = proc.communicate(timeout=120)
        assert time.monotonic() - t < 60
    finally:
        server.stop()
    assert proc.returncode == 1, err
    assert "server may have stopped" in err and "No output was written" in err and "Traceback" not in err, err
    assert not out.exists()


def test_jobs_belong_to_their_user_and_results_expire(tmp_path, ts_ref):
    from medsegai import RunRequest
    from medsegai.io.read import read_image
    from medsegai.remote.client import RemoteClient
    from medsegai.remote.protocol import RemoteError

    tokens = tmp_path / "tokens.txt"
    alice, bob = "alice-token-0123456789abcdef", "bob-token-0123456789abcdefgh"
    tokens.write_text(f"alice:{alice}\nbob:{bob}\n")
    server = Server(tmp_path, "--token-file", str(tokens), "--result-ttl", "2", token=None).wait_ready()
    try:
        a = RemoteClient(server.url, alice)
        written, final = a.run(read_image(ts_ref / "example_ct_sm.nii.gz"), RunRequest(model="medsegai_ct_demo"),
                               tmp_path / "out", None)
        job = final["job_id"]
        assert "segmentation.nii.gz" in written
        with pytest.raises(RemoteError) as e:  # bob cannot see, stream or fetch alice's job
            RemoteClient(server.url, bob).download(job, tmp_path / "bob")
        assert f"No job {job}" in str(e.value) and not (tmp_path / "bob").exists()
        r = requests.delete(f"{server.url}/v1/jobs/{job}", headers={"Authorization": f"Bearer {bob}"}, timeout=10)
        assert r.status_code == 404
        time.sleep(2 + 2)  # the time to live, plus the reaper's round
        r = requests.get(f"{server.url}/v1/jobs/{job}/result", headers={"Authorization": f"Bearer {alice}"}, timeout=10)
        assert r.status_code == 410 and "expired" in r.json()["error"]
        assert not (server.work / "jobs" / job).exists()
        assert '"user": "alice"' in server.log_text()
    finally:
        server.stop()
