"""``python -m benchmarks [--list] [NAME ...] [--frames N]``: run benchmarks, print tables, write JSON."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback

from . import BENCHMARKS, load


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="aiida-reactmlip performance benchmarks (measurements, not pass/fail tests). "
        "Without NAME, every benchmark runs with its default size.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmark(s) to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--frames", "-n", type=int, default=None, help="number of frames (default: per benchmark)")
    parser.add_argument("--models", default=None,
                        help="evaluate only: comma-separated registry models (default chgnet-0.3.0,sevennet-0)")
    parser.add_argument("--poll-interval", type=float, default=None, metavar="SECONDS",
                        help="evaluate only: set localhost's minimum job poll interval in the throw-away profile "
                        "(default: what provision sets, 0.5 s)")
    parser.add_argument("--mode", choices=["auto", "batched", "ase"], default=None,
                        help="evaluate only: the runner's mode setting (default: auto)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="evaluate only: the runner's batch_size setting (default 16)")
    parser.add_argument("--batch-sizes", default=None,
                        help="evaluate_modes only: comma-separated batch sizes to compare with the loop (default 4,8)")
    parser.add_argument("--device", default=None,
                        help="evaluate_modes only: torch device of the models (default cpu; cuda on a GPU)")
    parser.add_argument("--login-shell", action="store_true",
                        help="evaluate only: poll localhost through a login shell (aiida's default; an experiment)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="frames_io: runs per step (default 3); evaluate_modes: interleaved rounds (default 3)")
    parser.add_argument("--wait-idle", type=float, default=None, metavar="SECONDS",
                        help="before each measurement, wait up to SECONDS for the CPUs to be idle "
                        "(default 60; 0: do not wait)")
    parser.add_argument("--results-dir", default=None, help="where to write <name>.json (default benchmarks/results)")
    return parser


def _exit_on_sigterm(signum, frame):  # noqa: ARG001
    raise SystemExit(128 + signum)  # so that temporary profiles and folders are removed on `kill`


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    from rich.console import Console

    from ._common import write_result

    console = Console()
    if not console.is_terminal:  # piped or logged: rich would squeeze the tables into 80 columns
        console = Console(width=150)
    if args.list:
        for name in BENCHMARKS:
            try:
                module = load(name)
            except Exception as exc:  # noqa: BLE001 - a broken module should not hide the others
                console.print(f"[bold]{name}[/]  [red]cannot be loaded: {exc}[/]")
                continue
            console.print(f"[bold]{name}[/]  (default {module.DEFAULT_FRAMES} frames): {module.DESCRIPTION}")
        return 0
    names = args.names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        console.print(f"[red]unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}[/]")
        return 2
    if args.frames is not None and args.frames < 1:
        console.print("[red]--frames must be >= 1[/]")
        return 2

    # only what was asked for: each benchmark keeps its own defaults for the rest
    options = {"frames": args.frames, "repeat": args.repeat, "wait_idle": args.wait_idle,
               "poll_interval": args.poll_interval, "mode": args.mode, "batch_size": args.batch_size,
               "login_shell": args.login_shell or None,
               "device": args.device,
               "batch_sizes": tuple(int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes else None,
               "models": [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None}
    options = {key: value for key, value in options.items() if value is not None}
    status = 0
    for name in names:
        try:
            module = load(name)
        except Exception as exc:  # noqa: BLE001
            console.print(f"[bold red]benchmark {name} cannot be loaded: {exc}[/]")
            status = 1
            continue
        console.rule(f"[bold]{name}[/]: {module.DESCRIPTION}")
        start = time.perf_counter()
        try:
            result = module.run(console=console, **options)
        except Exception:  # noqa: BLE001 - report and go on with the next benchmark
            console.print(f"[bold red]benchmark {name} failed:[/]\n{traceback.format_exc()}")
            status = 1
            continue
        result["benchmark_wall_seconds"] = time.perf_counter() - start
        module.render(result, console)
        path = write_result(name, result, args.results_dir)
        console.print(f"{name}: {result['benchmark_wall_seconds']:.0f} s; results written to {path}")
        if not result.get("ok", True):
            console.print(f"[bold red]{name}: the measured paths disagree or a round trip failed: see above[/]")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
