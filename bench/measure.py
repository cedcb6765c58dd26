"""Measuring commands for the benchmarks: wall time and peak memory of a child process."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time


def run_measured(cmd: list[str], env: dict | None = None, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Run ``cmd`` in a new process; return (wall seconds, peak resident memory in MB).

    An exit code outside ``ok`` raises ``RuntimeError``.

    Peak memory is the child's own maximum RSS (``wait4``), so each step is measured alone.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in ok:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss / 1024


def median_of(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall time and median peak memory over several runs."""
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def machine() -> str:
    """One line describing the machine the numbers were measured on."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GB RAM, Python {platform.python_version()}, {platform.system()}"
