"""Progress output of :meth:`Model.fit`: a tqdm bar per epoch on a terminal, one plain line
per epoch otherwise (logs, CI), nothing with ``verbose=0``."""

from __future__ import annotations

import sys
import time


def _fmt(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())


class EpochProgress:
    """Shows one epoch's progress. ``verbose``: 0 silent, 1 bar on a terminal (plain lines
    when stdout is not a terminal), 2 one line per epoch."""

    def __init__(self, epoch: int, epochs: int, total_batches: int | None, verbose: int, stream=None):
        self.stream = stream or sys.stdout
        self.epoch = epoch
        self.epochs = epochs
        self.verbose = verbose
        self.samples = 0
        self.start = time.perf_counter()
        self.bar = None
        if verbose == 1 and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total_batches, desc=f"epoch {epoch + 1}/{epochs}",
                                unit="batch", file=self.stream, leave=True, dynamic_ncols=True)

    def update(self, batch_size: int, running: dict) -> None:
        self.samples += batch_size
        if self.bar is not None:
            rate = self.samples / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate:.0f} samples/s, {_fmt(running)}", refresh=False)
            self.bar.update(1)

    def close(self, logs: dict) -> None:
        elapsed = time.perf_counter() - self.start
        rate = self.samples / max(elapsed, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{rate:.0f} samples/s, {_fmt(logs)}", refresh=True)
            self.bar.close()
        elif self.verbose:
            print(f"epoch {self.epoch + 1}/{self.epochs} - {elapsed:.1f}s - {rate:.0f} samples/s - {_fmt(logs)}",
                  file=self.stream, flush=True)
