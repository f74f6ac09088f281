"""The command line: options built from the same declared parameters as the sliders.

``main.py list`` names the experiments; ``main.py run EXPERIMENT --PARAM VALUE … --out DIR``
trains without a window and writes the configuration, the metric history, a summary and one
picture per view. A bad value exits with status 2 and a message naming the valid range or
choices, exactly as argparse does for its own options.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from core import io
from core.experiment import Experiment
from core.params import BoolParam, Param, ParamError
from core.runner import Runner
from core.views import View

log = logging.getLogger(__name__)

#: Writes pictures of views into a folder and returns the paths; supplied by the app.
ImageWriter = Callable[[Sequence[View], Path], list[Path]]


def build_parser(experiments: Mapping[str, type[Experiment]]) -> argparse.ArgumentParser:
    """Return the parser for ``main.py``; each experiment is a sub-command of ``run``."""
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Benchtop: train the models of deep-learning papers live. "
        "Without a command, opens the window.",
        epilog="Experiments: " + ", ".join(experiments) + ". "
        "See 'main.py run EXPERIMENT --help' for an experiment's parameters.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser("list", help="list the experiments and their parameters")
    window = commands.add_parser("window", help="open the window (the default)")
    window.add_argument("experiment", nargs="?", choices=list(experiments), help="shown first")

    run = commands.add_parser("run", help="train one experiment without a window")
    runs = run.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, cls in experiments.items():
        sub = runs.add_parser(name, help=cls.summary, description=f"{cls.title}: {cls.summary}")
        _add_run_options(sub, cls.params())
    return parser


def _add_run_options(parser: argparse.ArgumentParser, params: Sequence[Param]) -> None:
    group = parser.add_argument_group("parameters (the same as the window's controls)")
    for p in params:
        flags = [f"--{p.name.replace('_', '-')}"]
        if "_" in p.name:
            flags.append(f"--{p.name}")
        text = (
            f"{p.help} {p.describe()[0].upper()}{p.describe()[1:]}; default {p.format(p.default)}."
        )
        if isinstance(p, BoolParam):
            group.add_argument(
                *flags, dest=p.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            group.add_argument(
                *flags, dest=p.name, type=_parser_for(p), default=None, metavar="V", help=text
            )

    parser.add_argument(
        "--steps", type=_positive_int, default=2000, help="training steps (default 2000)"
    )
    parser.add_argument(
        "--eval-every",
        type=_positive_int,
        default=100,
        help="steps between evaluations of the slower metrics (default 100; the last step is "
        "always one)",
    )
    parser.add_argument("--out", type=_folder, required=True, help="folder for the run's files")
    parser.add_argument("--no-images", action="store_true", help="skip the pictures")


def _parser_for(param: Param) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return param.parse(text)
        except ParamError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = param.name
    return parse


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names no folder")
    return Path(text).expanduser()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def describe_experiments(experiments: Mapping[str, type[Experiment]]) -> str:
    """Return the text printed by ``main.py list``."""
    lines = []
    for name, cls in experiments.items():
        lines.append(f"{name}: {cls.title}. {cls.summary}")
        for p in cls.params():
            lines.append(
                f"  --{p.name.replace('_', '-'):<16} {p.describe()} "
                f"(default {p.format(p.default)})"
            )
    return "\n".join(lines)


def run_headless(
    experiment_cls: type[Experiment],
    config: Mapping[str, Any],
    *,
    steps: int,
    out: Path,
    eval_every: int = 100,
    write_images: ImageWriter | None = None,
    progress: TextIO | None = None,
) -> int:
    """Train without a window and write the run's files into ``out``.

    Writes ``config.json``, ``metrics.csv`` (a row per logged step: step, seconds, every
    metric), ``summary.json`` (final metrics) and, when ``write_images`` is given, one picture
    per view. Progress lines go to ``progress`` when given. Returns the process exit status:
    0 when training completed, 1 when it diverged or was interrupted (the files still describe
    the steps that were taken).
    """
    # The run first, so that a refused setting leaves no folder behind; then the folder.
    runner = Runner(experiment_cls, config, eval_every=eval_every)
    if out.exists() and not out.is_dir():
        raise ParamError(f"--out: {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ParamError(f"--out: cannot create the folder {out}: {e.strerror or e}") from None
    io.write_json(out / "config.json", {"experiment": experiment_cls.name, **runner.config})

    # Train, reporting progress twenty times; Ctrl+C still leaves whole files behind.
    interrupted = False
    every = max(1, steps // 20)
    try:
        while runner.step_count < steps:
            if runner.step(evaluate=runner.step_count + 1 == steps) is None:
                break
            if runner.step_count % every == 0:
                _report(progress, runner, steps)
    except KeyboardInterrupt:
        interrupted = True

    # The files: history, summary (with the final state evaluated), pictures.
    if runner.diverged or interrupted:
        runner.evaluate()
    header, rows = runner.history.table().rows()
    io.write_csv(out / "metrics.csv", header, rows)
    summary = runner.summary() | {"interrupted": interrupted}
    io.write_json(out / "summary.json", summary)
    if write_images is not None:
        write_images(runner.snapshot(refresh_views=True).views, out)

    if runner.diverged and progress is not None:
        print(runner.diverged, file=progress)
    return 1 if runner.diverged or interrupted else 0


def _report(stream: TextIO | None, runner: Runner, steps: int) -> None:
    if stream is None:
        return
    shown = [
        f"{k} {runner.latest[k]:.4g}"
        for k in runner.experiment.headline_metrics()
        if k in runner.latest and math.isfinite(runner.latest[k])
    ]
    print(
        f"step {runner.step_count}/{steps}  {runner.steps_per_second:.0f} steps/s  "
        + "  ".join(shown),
        file=stream,
        flush=True,
    )
