"""Requests a real ``medsegai serve`` on 127.0.0.1 must refuse with one typed line and survive:
wrong or missing tokens, malformed requests and uploads, oversized uploads, crafted image packages."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import requests

from medsegai.remote.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION

from .corpus import Inputs, case

PROTOCOL = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
MAX_UPLOAD_MB = 4  # the corpus server's --max-upload-mb


def _package(array=None, meta=None, extra_members=(), raw_npy: bytes = None) -> bytes:
    """An upload as the client makes it (image.npy + meta.json), or deliberately not."""
    buf = io.BytesIO()
    arr = np.zeros((8, 16, 16), np.int16) if array is None else array
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", json.dumps({"spacing": [1, 1, 1], "origin": [0, 0, 0],
                                             "direction": np.eye(3).ravel().tolist(),
                                             "request": {"model": "medsegai_ct_demo", "device": "cpu"}}
                                            if meta is None else meta) if not isinstance(meta, bytes) else meta)
        if raw_npy is not None:
            zf.writestr("image.npy", raw_npy)
        else:
            with zf.open("image.npy", "w") as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=True)
        for name, data in extra_members:
            zf.writestr(name, data)
    return buf.getvalue()


def _post(body: bytes, auth=True, headers=None):
    def call(url, token):
        h = {"Content-Type": "application/zip", **PROTOCOL, **(headers or {})}
        if auth:
            h["Authorization"] = f"Bearer {token}"
        return requests.post(url + "/v1/jobs", data=body, headers=h, timeout=60)
    return call


def _http(fn, status):
    return lambda d: Inputs(http=fn, reference=status)


def _reg(name, fn, status, fast=False, match=""):
    case(name, "HTTP", ("server",), kind="http", fast=fast, match=match)(_http(fn, status))


_reg("http_no_token", lambda u, t: requests.get(u + "/v1/info", timeout=10), 401, fast=True, match=r"token")
_reg("http_wrong_token", lambda u, t: requests.get(u + "/v1/info", headers={"Authorization": "Bearer " + "x" * 27},
                                                   timeout=10), 401, fast=True, match=r"token")
_reg("http_token_wrong_scheme", lambda u, t: requests.get(u + "/v1/info", headers={"Authorization": f"Basic {t}"},
                                                          timeout=10), 401, match=r"token")
_reg("http_job_without_token", _post(_package(), auth=False), 401, match=r"token")
_reg("http_no_protocol_header", lambda u, t: requests.post(u + "/v1/jobs", data=_package(), timeout=30,
                                                           headers={"Authorization": f"Bearer {t}"}),
     409, match=r"protocol")
_reg("http_empty_body", _post(b""), 400, fast=True, match=r"no image")
_reg("http_not_a_zip", _post(b"GET / HTTP/1.1\r\n" * 100), 400, match=r"not a MedSegAI image package")
_reg("http_zip_extra_member", _post(_package(extra_members=[("../../etc/cron.d/x", b"* * * * * root id")])), 400,
     match=r"holds")
_reg("http_meta_not_json", _post(_package(meta=b"{not json")), 400, match=r"not valid JSON")
_reg("http_npy_pickled_objects", _post(_package(array=np.array([[[{"a": 1}]]], dtype=object))), 400, fast=True,
     match=r"(type|numeric|cannot be read)")
_reg("http_4d_upload", _post(_package(array=np.zeros((2, 4, 4, 4), np.int16))), 400, match=r"4D")
_reg("http_voxel_bomb_header",
     _post(_package(raw_npy=b"\x93NUMPY\x01\x00v\x00{'descr': '<i2', 'fortran_order': False, 'shape': "
                            b"(100000, 100000, 100000), }" + b" " * 53 + b"\n")), 400, fast=True,
     match=r"(voxels|too large|limit)")
_reg("http_nan_voxels", _post(_package(array=np.full((8, 16, 16), np.nan, np.float32))), 400,
     fast=True, match=r"NaN or infinite")
_reg("http_zero_spacing", _post(_package(meta={"spacing": [0, 1, 1], "origin": [0, 0, 0],
                                               "direction": np.eye(3).ravel().tolist()})), 400, fast=True,
     match=r"spacing")
_reg("http_model_path_on_server",
     _post(_package(meta={"spacing": [1, 1, 1], "origin": [0, 0, 0], "direction": np.eye(3).ravel().tolist(),
                          "request": {"model": "/etc/passwd"}})), 400, fast=True, match=r"(path|id)")
_reg("http_unknown_request_field",
     _post(_package(meta={"spacing": [1, 1, 1], "origin": [0, 0, 0], "direction": np.eye(3).ravel().tolist(),
                          "request": {"model": "medsegai_ct_demo", "rm_rf": True}})), 400, match=r"rm_rf")
_reg("http_oversized_upload", _post(b"\0" * ((MAX_UPLOAD_MB + 1) << 20)), 413, fast=True, match=r"larger")
_reg("http_unknown_job", lambda u, t: requests.get(u + "/v1/jobs/not-a-job", timeout=10,
                                                   headers={"Authorization": f"Bearer {t}", **PROTOCOL}), 404,
     match=r"No job")
_reg("http_job_id_traversal", lambda u, t: requests.get(u + "/v1/jobs/..%2F..%2Fetc%2Fpasswd/result", timeout=10,
                                                        headers={"Authorization": f"Bearer {t}", **PROTOCOL}), 404)
_reg("http_session_bad_json", lambda u, t: requests.post(u + "/v1/sessions", data=b"[1, 2", timeout=10,
                                                         headers={"Authorization": f"Bearer {t}", **PROTOCOL}),
     400, match=r"JSON")
_reg("http_method_not_allowed", lambda u, t: requests.put(u + "/v1/info", timeout=10,
                                                          headers={"Authorization": f"Bearer {t}"}), 405)
