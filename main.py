"""Benchtop's entry point: the window by default, or a headless run.

python main.py                      open the window
python main.py list                 list experiments and their parameters
python main.py run flows --target U3 --steps 3000 --out runs/u3
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and do what it asks; return the exit status."""
    from core import catalog
    from core.cli import build_parser, describe_experiments, run_headless
    from core.params import ParamError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    experiments = catalog.experiments()
    parser = build_parser(experiments)
    args = parser.parse_args(argv)

    if args.command == "list":
        print(describe_experiments(experiments))
        return 0

    if args.command in (None, "window"):
        from app.launch import run_window

        return run_window(getattr(args, "experiment", None))

    cls = experiments[args.experiment]
    config = {p.name: getattr(args, p.name) for p in cls.params()}
    config = {k: v for k, v in config.items() if v is not None}
    try:
        return run_headless(
            cls,
            config,
            steps=args.steps,
            out=args.out,
            eval_every=args.eval_every,
            write_images=None if args.no_images else _image_writer(),
            progress=sys.stderr,
        )
    except ParamError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        parser.exit(1, f"{parser.prog}: error: cannot write{where}: {e.strerror or e}\n")


def _image_writer():
    """Return the app's view renderer, on an offscreen Qt platform unless one is chosen."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.export import write_view_images

    return lambda views, folder: write_view_images(views, Path(folder), formats=("png",))


if __name__ == "__main__":
    sys.exit(main())
