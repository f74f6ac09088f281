"""Where the time of a reverse-KL training step of our deep sigmoidal flow goes.

Times, per call, the parts of one step of Benchtop's DSF × 2 (MADE [64, 64], 16 sigmoids,
batch 256): the conditioner and the transformer of one layer, forward and forward + backward,
then the whole flow, the gradient clipping, Adam and the whole step; and the same parts of
Pyro's ``NeuralAutoregressive`` when Pyro can be imported. The parts are timed in interleaved
rounds and the median per call is printed, so the load of a shared machine falls on all alike.
``--profile`` adds the operators that take the most time in the whole step, from
:mod:`torch.profiler`.

Run from the repository root (Pyro optional, see ``bench/README.md``)::

    PYTHONPATH=. .venv/bin/python bench/speed_profile.py --profile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from flows_vs_pyro import pyro_dsf  # beside this script
from torch import Tensor, nn

from core.flows.autoregressive import AutoregressiveFlow, standard_normal_log_prob
from core.flows.energies import energy
from core.training import FlatParameters, apply_gradients

BATCH = 256
SIGMOIDS = 16

#: A part of the step under test: a name and a call that runs it once.
Part = tuple[str, Callable[[], object]]


class FixedOutput(nn.Module):
    """Stands in for a conditioner and returns the same outputs whatever its input."""

    def __init__(self, outputs: tuple[Tensor, ...]) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.outputs


def backward_of(f: Callable[[], Tensor | tuple[Tensor, ...]]) -> Callable[[], None]:
    """Return a call that runs ``f`` and back-propagates the sum of its outputs."""

    def run() -> None:
        out = f()
        out = out if isinstance(out, tuple) else (out,)
        sum(o.sum() for o in out).backward()

    return run


def training_step(sample: Callable[[Tensor], tuple[Tensor, Tensor]], module: nn.Module):
    """Return a call that takes one full reverse-KL step on U1, and the step's pieces."""
    u = energy("U1")
    params = FlatParameters(module.parameters())  # as the app trains
    optimizer = torch.optim.Adam([params.flat], lr=1e-3, fused=True)

    def loss() -> Tensor:
        z = torch.randn(BATCH, 2)
        x, log_q = sample(z)
        return (log_q + u(x)).mean()

    def step() -> None:
        apply_gradients(loss(), optimizer, params, max_grad_norm=5.0)

    def clip() -> None:
        torch.nn.utils.clip_grad_norm_([params.flat], 5.0)  # its gradient, gathered by step()

    step()  # gradients and Adam's state exist from here on
    return step, loss, clip, optimizer.step


def our_parts() -> list[Part]:
    """Return the timed parts of our DSF × 2."""
    torch.manual_seed(0)
    flow = AutoregressiveFlow(2, "dsf", 2, hidden=64, hidden_layers=2, sigmoids=SIGMOIDS)
    layer = flow.layers[0]
    z = torch.randn(BATCH, 2)
    params = layer.conditioner(z).detach().requires_grad_()

    def sample(z: Tensor) -> tuple[Tensor, Tensor]:
        x, ladj = flow(z)
        return x, standard_normal_log_prob(z) - ladj

    step, loss, clip, adam = training_step(sample, flow)
    return [
        ("MADE forward", lambda: layer.conditioner(z)),
        ("MADE forward+backward", backward_of(lambda: layer.conditioner(z))),
        ("DSF transformer forward", lambda: layer.transformer(z, params)),
        ("DSF transformer forward+backward", backward_of(lambda: layer.transformer(z, params))),
        ("flow (2 layers) forward", lambda: flow(z)),
        ("loss forward+backward", backward_of(loss)),
        ("gradient clipping", clip),
        ("Adam step", adam),
        ("whole training step", step),
    ]


def pyro_parts() -> list[Part]:
    """Return the same parts of two Pyro ``NeuralAutoregressive`` layers, or none."""
    try:
        from pyro.distributions.transforms import NeuralAutoregressive
    except ImportError:
        return []

    torch.manual_seed(0)
    transforms, sample = pyro_dsf()
    arn = transforms[0].arn
    z = torch.randn(BATCH, 2)

    # The transformer alone: a copy of layer 0 whose conditioner returns fixed outputs
    fixed = tuple(p.detach().requires_grad_() for p in arn(z))
    alone = NeuralAutoregressive(FixedOutput(fixed), hidden_units=SIGMOIDS)

    def transform(x: Tensor) -> tuple[Tensor, Tensor]:
        # A fresh tensor each call, so the transform's one-entry cache never answers
        x = x.clone()
        y = alone(x)
        return y, alone.log_abs_det_jacobian(x, y)

    step, loss, clip, adam = training_step(sample, transforms)
    return [
        ("MADE forward", lambda: arn(z)),
        ("MADE forward+backward", backward_of(lambda: arn(z))),
        ("DSF transformer forward", lambda: transform(z)),
        ("DSF transformer forward+backward", backward_of(lambda: transform(z))),
        ("flow (2 layers) forward", lambda: sample(z.clone())),
        ("loss forward+backward", backward_of(loss)),
        ("gradient clipping", clip),
        ("Adam step", adam),
        ("whole training step", step),
    ]


def time_parts(parts: list[Part], rounds: int, calls: int) -> dict[str, float]:
    """Return the median seconds per call of every part, timed in interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name, _ in parts}
    for round_ in range(rounds + 1):
        for name, run in parts:
            start = time.perf_counter()
            for _ in range(calls):
                run()
            if round_ > 0:  # the first round warms up
                samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(s) for name, s in samples.items()}


def print_profile(run: Callable[[], object], steps: int, rows: int) -> None:
    """Print the operators that take the most self time over ``steps`` calls of ``run``."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(20):
        run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            run()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    print(f"Operators of our whole training step, {steps} steps (times include the profiler's)")
    print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (20)")
    parser.add_argument("--calls", type=int, default=20, help="calls per part per round (20)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    parser.add_argument("--profile", action="store_true", help="add torch.profiler's table")
    parser.add_argument("--rows", type=int, default=30, help="rows of the profiler table (30)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)

    ours = our_parts()
    pyro = pyro_parts()
    both = [(f"ours {n}", f) for n, f in ours] + [(f"pyro {n}", f) for n, f in pyro]
    medians = time_parts(both, args.rounds, args.calls)

    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}; µs per call")
    print(f"  {'part':<34}{'ours':>9}{'pyro':>9}{'ours/pyro':>11}")
    for name, _ in ours:
        mine = 1e6 * medians[f"ours {name}"]
        theirs = 1e6 * medians.get(f"pyro {name}", float("nan"))
        print(f"  {name:<34}{mine:>9.1f}{theirs:>9.1f}{mine / theirs:>11.2f}")
    if not pyro:
        print("  (pyro is not importable here; see bench/README.md)")

    if args.profile:
        print()
        print_profile(ours[-1][1], steps=200, rows=args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
