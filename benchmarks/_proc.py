"""What the benchmark scripts read from /proc: a process's peak resident memory."""

from __future__ import annotations


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """VmHWM (the kernel's high-water mark of resident memory, reset by exec) in MB, or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
