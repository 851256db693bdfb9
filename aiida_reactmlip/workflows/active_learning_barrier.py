"""The barrier loop's steps of ``reactmlip.active_learning`` (``target_barrier_error``): which band images pw.x
must label to check the model's barrier, the check itself from the new DFT labels, and the stop.

The check of round i judges the model that made round i's band (the model of round i - 1): its barrier along
its own band (saddle - initial state, eV) against DFT single points at the same two geometries. The pure
numbers are :func:`aiida_reactmlip.metrics.loop.saddle_image` and :func:`~aiida_reactmlip.metrics.loop.saddle_check`.
"""

from __future__ import annotations

import time

import numpy as np

from aiida_reactmlip.metrics.loop import BARRIER_CHECK_KEYS, saddle_check, saddle_image, stop_reason

from aiida_reactmlip.workflows.active_learning_functions import round_key

__all__ = ["BARRIER_CHECK_KEYS", "BarrierCheckSteps"]


class BarrierCheckSteps:
    """Mixin of ActiveLearningWorkChain: the barrier loop's part of ``select``, ``inspect_labelling`` and the stop."""

    def _barrier_loop(self) -> bool:
        return "target_barrier_error" in self.inputs

    def _band_indices(self) -> list[int]:
        """Pool indices of this round's NEB band, end states included, in image order: the frames the runner
        marks ``role = mlip_neb_image`` (wherever MD frames or rattles put them in the pool)."""
        images = {int(info["image"]): index for index, info in enumerate(self.ctx.pool.frame_info)
                  if info.get("role") == "mlip_neb_image"}
        return [images[k] for k in sorted(images)]

    def _check_frames(self) -> list[int]:
        """Barrier loop: the pool indices pw.x must label to check this round's band: its highest interior
        image, and its initial state unless an identical one already has a DFT energy."""
        band = self._band_indices()
        frames = self.ctx.pool.frames
        saddle = band[saddle_image(frames.energies[band])]
        self.ctx.barrier_frames = {"initial": band[0], "saddle": saddle}
        known = self.ctx.dft_initial
        if known is not None and np.allclose(known["positions"], frames.subset([band[0]]).positions, atol=1e-6):
            return [saddle]
        return [band[0], saddle]

    def _barrier_check(self, new_labels) -> dict | str:
        """The round's saddle check from the new DFT labels (eV), or a message naming the missing label."""
        energies = new_labels.frames.energies
        dft = {int(info["pool_index"]): float(energies[i])
               for i, info in enumerate(new_labels.frame_info) if "pool_index" in info}
        pool = self.ctx.pool.frames
        initial, saddle = self.ctx.barrier_frames["initial"], self.ctx.barrier_frames["saddle"]
        if initial in dft:
            self.ctx.dft_initial = {"energy": dft[initial], "positions": pool.subset([initial]).positions.tolist()}
        if self.ctx.dft_initial is None:
            return f"the band's initial state (pool frame {initial}) has no DFT label"
        if saddle not in dft:
            return f"the band's highest image (pool frame {saddle}) has no DFT label"
        check = saddle_check(pool.energies[initial], pool.energies[saddle], self.ctx.dft_initial["energy"], dft[saddle])
        return {"mlip_barrier": check["model_barrier_eV"], "dft_saddle_barrier": check["dft_barrier_eV"],
                "barrier_check_error": check["barrier_abs_error_eV"], "saddle_frame": saddle}

    def _record_barrier_check(self, new_labels) -> str | None:
        """Set ``ctx.barrier`` to this round's saddle check and report it; a message when a label is missing."""
        check = self._barrier_check(new_labels)
        if isinstance(check, str):
            return check
        self.ctx.barrier = check
        self.report(f"round {self.ctx.round}: saddle check: model barrier {check['mlip_barrier']:.3f} eV, "
                    f"DFT {check['dft_saddle_barrier']:.3f} eV, |error| {check['barrier_check_error']:.3f} eV")
        return None

    def _stop_if_barrier_converged(self) -> None:
        if stop_reason(n_rounds=self.ctx.round, n_labels=self._n_labels(),
                       barrier_error=self.ctx.barrier["barrier_check_error"],
                       target_barrier_error=self.inputs.target_barrier_error.value) == "barrier":
            self._barrier_converged()

    def _barrier_converged(self) -> None:
        """The model that made this round's band passed the saddle check: stop without fine-tuning again.
        The round's row repeats the last validation (the model did not change) with the check and the labels."""
        self.ctx.stop_reason = "barrier"
        previous = self.ctx.round_nodes[round_key(self.ctx.round - 1)]
        self._out_round("metrics", previous["metrics"])
        if "test_metrics" in previous:
            self._out_round("test_metrics", previous["test_metrics"])
        row = {key: value for key, value in self.ctx.rows[-1].items()
               if key not in ("round", "n_labels", "n_new", "strategy", "seconds", "finished_at", "selected")}
        row.update(round=self.ctx.round, n_labels=self._n_labels(), n_new=self.ctx.n_new,
                   strategy=self.ctx.strategy_used, seconds=round(time.time() - self.ctx.round_start, 2),
                   finished_at=time.strftime("%Y-%m-%d %H:%M:%S"), selected=self.ctx.selected.get_list(),
                   **self.ctx.barrier)
        self._progress(row)
        self.report(f"round {self.ctx.round}: barrier converged within {self.inputs.target_barrier_error.value} eV "
                    f"with {row['n_labels']} DFT labels; stopping: barrier")
