"""The metrics endpoint of ``bastion serve``: every worker's values, as one.

prometheus-client's multiprocess mode: each worker writes its values to memory-mapped
files in ``PROMETHEUS_MULTIPROC_DIR`` (one per kind of metric and process id), and the
process serving a scrape merges the files (counters and histograms summed, gauges as
each declares). ``bastion serve`` makes a fresh private directory (mode 0700) before any
worker starts, serves the scrapes from its own process on ``BASTION_METRICS_ADDRESS``
(a thread, never the API's port), and deletes the directory when it exits.

A worker that died (a crash; uvicorn starts another) leaves its files behind. Its
counters keep counting in the totals, as they should; its live gauges are dropped at
the next scrape (``mark_process_dead``), so that a dead worker's last sample is not
reported as current.

Nothing here may import prometheus-client before :func:`prepare_directory` has set
the variable: the library chooses its storage when first imported.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["ENV", "exporting", "prepare_directory"]

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def prepare_directory() -> Path:
    """A new empty directory for the workers' files, named in ``PROMETHEUS_MULTIPROC_DIR``
    for this process and the workers it starts (any earlier value is replaced: files
    left by another run must never be merged into this one's)."""
    path = Path(tempfile.mkdtemp(prefix="bastion-metrics-"))
    os.environ[ENV] = str(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process now holds the id: not ours, but alive
    return True


class _LiveWorkers:
    """The multiprocess collector, after dropping the live gauges of dead processes."""

    def __init__(self, path: Path) -> None:
        from prometheus_client.multiprocess import MultiProcessCollector

        self.path = path
        self._merged = MultiProcessCollector(None, str(path))  # type: ignore[no-untyped-call]

    def _pids(self) -> set[int]:
        names = (os.path.basename(f) for f in glob.glob(os.path.join(self.path, "gauge_live*.db")))
        return {int(m.group(1)) for m in map(_LIVE_FILE.match, names) if m is not None}

    def collect(self) -> Iterable[Any]:
        from prometheus_client.multiprocess import mark_process_dead

        for pid in self._pids():
            if not _alive(pid):
                mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]
        merged: Iterable[Any] = self._merged.collect()  # type: ignore[no-untyped-call]
        return merged


@contextlib.contextmanager
def exporting(host: str, port: int) -> Iterator[Path]:
    """Serve the merged metrics on ``host:port`` while the block runs, from a fresh
    multiprocess directory (yielded) that is deleted afterwards. Raises ``OSError``
    when the address cannot be bound."""
    path = prepare_directory()
    try:
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_LiveWorkers(path))
        server, thread = start_http_server(port, addr=host, registry=registry)
        try:
            yield path
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(path, ignore_errors=True)
