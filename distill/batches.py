"""The batch order of a distillation run: which windows each process reads at each micro-step.

The order is a function of (seed, epoch) alone, so a resumed run needs no state to continue it.
"""

from __future__ import annotations

import numpy as np

from sensekit.errors import InputError

__all__ = ["BatchOrder"]


class BatchOrder:
    """A fresh permutation of the windows per epoch, drawn from (seed, epoch).

    A global micro-step reads B * processes consecutive rows of its epoch's permutation; this process takes its
    own B of them. An optimizer step is `grad_accum` consecutive micro-steps (it may straddle two epochs).
    """

    def __init__(
        self, seed: int, n_windows: int, batch_size: int, grad_accum: int, processes: int = 1, process_index: int = 0
    ) -> None:
        self.seed, self.n_windows, self.batch_size, self.grad_accum = seed, n_windows, batch_size, grad_accum
        self.processes, self.process_index = processes, process_index
        self.micro_per_epoch = n_windows // (batch_size * processes)
        self.steps_per_epoch = self.micro_per_epoch // grad_accum
        if self.steps_per_epoch == 0:
            raise InputError(
                f"{n_windows} training windows are fewer than one optimizer step needs "
                f"({batch_size * processes * grad_accum} = batch size x processes x grad accumulation); "
                "give more data or lower them"
            )
        self._epoch, self._perm = -1, np.empty(0, np.int64)  # the current epoch's permutation, drawn once

    @classmethod
    def for_run(cls, cfg, n_windows: int, acc) -> "BatchOrder":
        """The order of a run: the config's seed, batch size and accumulation, the accelerator's processes."""
        return cls(cfg.seed, n_windows, cfg.batch_size, cfg.grad_accum, acc.num_processes, acc.process_index)

    def epoch_at(self, step: int) -> float:
        """Epochs done when optimizer step `step` (0-based) begins."""
        return round(step * self.grad_accum / self.micro_per_epoch, 4)

    def batches(self, step: int) -> list[np.ndarray]:
        """This process's window rows [B] for each micro-step of optimizer step `step` (0-based)."""
        return [self._rows(step * self.grad_accum + micro) for micro in range(self.grad_accum)]

    def micro_batch(self, micro_step: int) -> np.ndarray:
        """This process's window rows [B] of global micro-step `micro_step` (0-based)."""
        return self._rows(micro_step)

    def _rows(self, micro_step: int) -> np.ndarray:
        epoch, within = divmod(micro_step, self.micro_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
        span = self.batch_size * self.processes
        rows = self._perm[within * span : (within + 1) * span]
        return rows[self.process_index * self.batch_size : (self.process_index + 1) * self.batch_size]
