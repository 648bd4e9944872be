"""The worker pool: spawned processes that each run whole chunks, die with their run, and
report every item to the parent's progress bar.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from speech2face.data.preprocess.chunk import process_chunk
from speech2face.data.preprocess.layout import Chunk, OutputLayout
from speech2face.data.segment import SegmentProcessor
from speech2face.errors import S2FError

__all__ = ["Progress", "run_parallel"]

WATCHDOG_SECONDS = 1.0  # how often a worker checks that its parent is still alive
POLL_SECONDS = 0.2  # how often the parent refreshes the progress bar

_WORKER: dict[str, Any] = {}


PR_SET_PDEATHSIG = 1  # prctl(2) option: a signal the kernel sends when the parent dies


def _die_with_parent(parent: int) -> None:
    """Make this worker die the moment its run does (SIGKILL included).

    On Linux the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``); a
    watchdog thread is the fallback elsewhere. A thread alone is not enough: it does not
    run while dlib or MTCNN hold the GIL, which let orphans commit a block seconds after
    their run was killed. :func:`_check_parent` before every commit closes the last gap,
    and the one here makes a worker still importing its modules when the run died exit
    before doing any work.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _check_parent(parent)  # the parent may have died before prctl took effect
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _check_parent(parent: int) -> None:
    if os.getppid() != parent:
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCHDOG_SECONDS)
        _check_parent(parent)


def _init_worker(
    processor: SegmentProcessor, layout: OutputLayout, queue: Any, threads: int, parent: int
) -> None:
    import torch

    _die_with_parent(parent)
    torch.set_num_threads(threads)
    _WORKER.update(processor=processor, layout=layout, queue=queue, parent=parent)


def _run_chunk(chunk: Chunk) -> dict[str, Any]:
    queue = _WORKER["queue"]
    parent = _WORKER["parent"]
    _check_parent(parent)
    part = process_chunk(
        chunk,
        _WORKER["processor"],
        _WORKER["layout"],
        lambda kept: queue.put(kept),
        before_commit=lambda: _check_parent(parent),
    )
    return {
        "chunk": part["chunk"],
        "samples": len(part["samples"]),
        "failures": len(part["failures"]),
    }


class Progress:
    """tqdm bar over segments: done, kept, failed and rate."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.kept = 0
        self.failed = 0
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="clip",
            disable=not enabled,
            dynamic_ncols=True,
            desc="preprocess",
        )

    def update(self, kept: bool) -> None:
        if kept:
            self.kept += 1
        else:
            self.failed += 1
        self.bar.update(1)
        self.bar.set_postfix(kept=self.kept, failed=self.failed, refresh=False)

    def close(self) -> None:
        self.bar.close()


def run_parallel(
    chunks: list[Chunk],
    processor: SegmentProcessor,
    layout: OutputLayout,
    workers: int,
    threads: int,
    progress: Progress,
) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    from queue import Empty

    context = mp.get_context("spawn")  # no forked copies of torch / dlib state
    queue = context.Queue()

    def drain() -> None:
        while True:
            try:
                progress.update(queue.get_nowait())
            except Empty:
                return

    with ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(processor, layout, queue, threads, os.getpid()),
    ) as pool:
        pending = {pool.submit(_run_chunk, chunk) for chunk in chunks}
        try:
            while pending:
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    future.result()
        except BrokenProcessPool:
            raise S2FError("a worker process died; run the same command again to resume") from None
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            drain()
