"""How much RAM is free right now: shared by the training and uncertainty memory checks."""
from __future__ import annotations

import os
from typing import Optional


def available_ram_bytes() -> Optional[int]:
    """MemAvailable from /proc/meminfo (Linux), else sysconf; None where neither can be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
