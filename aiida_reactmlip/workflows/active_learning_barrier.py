"""The barrier loop's steps of ``reactmlip.active_learning`` (``target_barrier_error``): which band images pw.x
must label to check the model's barrier, the check itself from the new DFT labels, and the stop.

With ``check_first`` a round labels the check alone first (its selection, labels and call links carry the prefix
``check_``) and the strategy's k picks only when the check fails: a passing round then costs no picks.

The check of round i judges the model that made round i's band (the model of round i - 1): its barrier along
its own band (saddle - initial state, eV) against DFT single points at the same two geometries. The pure
numbers are :func:`aiida_reactmlip.metrics.loop.saddle_image` and :func:`~aiida_reactmlip.metrics.loop.saddle_check`.
"""

from __future__ import annotations

import time

import numpy as np
from aiida import orm

from aiida_reactmlip.metrics.loop import BARRIER_CHECK_KEYS, labels_this_round, saddle_check, saddle_image, stop_reason

from aiida_reactmlip.workflows.active_learning_functions import round_key

__all__ = ["BARRIER_CHECK_KEYS", "BarrierCheckSteps"]


class BarrierCheckSteps:
    """Mixin of ActiveLearningWorkChain: the barrier loop's part of ``select``, ``inspect_labelling`` and the stop."""

    @staticmethod
    def define_barrier_inputs(spec) -> None:
        """The barrier loop's inputs of ``ActiveLearningWorkChain.define``."""
        spec.input("target_barrier_error", valid_type=orm.Float, required=False,
                   help="Barrier loop (needs `neb`): every round pw.x also labels the band's initial state (once) "
                   "and its highest image; the loop stops when the model's barrier and the DFT single points at "
                   "those two geometries agree within this many eV. k may then be 0 (the saddle alone).")
        spec.input("check_first", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Barrier loop with k >= 1: pw.x labels the saddle check alone first and the k picks only "
                   "when the check fails (a second pw.x batch in such rounds; no picks in the round that passes).")

    def _barrier_loop(self) -> bool:
        return "target_barrier_error" in self.inputs

    # ------------------------------------------------------------------ check_first: outline steps
    def checks_first(self) -> bool:
        return self._barrier_loop() and self.inputs.check_first.value

    def start_check(self):
        self.ctx.step_prefix = "check_"

    def end_check(self):
        """After the check alone: the picks follow unless the check passed or no budget / band is left for them
        (then the check's selection and labels are the round's, and the fine-tune comes next)."""
        self.ctx.step_prefix = ""
        self.ctx.round_checked = self.ctx.selected.get_list()
        if self.ctx.stop_reason is None and self._picks_this_round([], self._pool_left(),
                                                                   self._optional("max_dft_labels")) < 1:
            self.ctx.picks_skipped = True
            self._out_round_once("selected", self.ctx.selected)
            self._out_round_once("labels", self.ctx.labels)

    def picks_left(self) -> bool:
        return not self.ctx.picks_skipped

    def _out_round_once(self, name: str, node) -> None:
        if name not in self.ctx.round_nodes.get(round_key(self.ctx.round), {}):
            self._out_round(name, node)

    def _pool_left(self) -> int:
        """Pool frames that may still be picked: oracle mode, those not labelled yet; exploration, the round's pool."""
        pool = self._pool()
        return pool.n_frames - len(self.ctx.pool_selected) if self.ctx.oracle else pool.n_frames

    def _check_include(self) -> list[int]:
        """The saddle check's frames for ``select``: none outside a barrier loop and after a check_first pass."""
        return self._check_frames() if self._barrier_loop() and not self.ctx.round_checked else []

    def _picks_this_round(self, include: list[int], pool_left: int, max_labels: int | None) -> int:
        """How many frames the strategy picks beside ``include``: none in the check_first pass or with k = 0."""
        if self.ctx.get("step_prefix") or not self.inputs.k.value:
            return 0
        return labels_this_round(self.inputs.k.value, self._n_labels() + len(include), max_labels,
                                 pool_left - len(include) - len(self.ctx.round_checked))

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
        self.ctx.stop_reason, self.ctx.step_prefix = "barrier", ""
        self._out_round_once("selected", self.ctx.selected)  # check_first: the check's own, the round's
        self._out_round_once("labels", self.ctx.labels)
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
