"""What ``GET /v1/info`` reports: versions, installed models with their weights' SHA256, devices."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, Dict, List, Tuple

_hash_cache: Dict[Tuple[str, int, int], str] = {}
_lock = threading.Lock()


def weights_sha256(folder: Path) -> str:
    """SHA256 over the model's checkpoints' own SHA256s in path order (hashed once per file version)."""
    from ..models.integrity import sha256_file

    digest = hashlib.sha256()
    for p in sorted(folder.rglob("checkpoint_*.pth")):
        st = p.stat()
        key = (str(p), st.st_size, st.st_mtime_ns)
        with _lock:
            value = _hash_cache.get(key)
        if value is None:
            value = sha256_file(p)
            with _lock:
                _hash_cache[key] = value
        digest.update(value.encode())
    return digest.hexdigest()


def installed_models() -> List[Dict[str, Any]]:
    from ..models import list_models

    out = []
    for status in list_models():
        if status.available:
            out.append({"id": status.model_id, "where": status.where, "weights_sha256": weights_sha256(status.location)})
    return out


def devices() -> List[Dict[str, Any]]:
    from ..system_memory import available_ram_bytes

    out = [{"device": "cpu", "free_memory_bytes": available_ram_bytes()}]
    try:
        import torch

        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            out.append({"device": f"cuda:{i}", "name": torch.cuda.get_device_name(i), "free_memory_bytes": free,
                        "total_memory_bytes": total})
    except Exception:  # noqa: BLE001 - a broken CUDA setup must not take /v1/info down
        pass
    return out
