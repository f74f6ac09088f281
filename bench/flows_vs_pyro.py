r"""Speed and true KL of Benchtop's deep sigmoidal flow beside Pyro's ``NeuralAutoregressive``.

Both flows have the same size: 2 autoregressive layers, MADE conditioners with hidden layers
[64, 64] and ELU units, 16 sigmoid units per transformer, and the order reversed between the
layers. Each is fitted to the energies U1–U4 by reverse KL, minimising :math:`E[\log q(x) +
U(x)]` with :math:`x = f(z)`, :math:`z \sim N(0, I)`, in batches of 256 with torch's fused Adam
and the gradient norm clipped at 5, over the parameters gathered into one flat tensor (as the
app trains: :class:`core.training.FlatParameters` and the same guarded step,
:func:`core.training.apply_gradients`, for both), optionally with the energy annealed as the app
can. After training, the true :math:`\mathrm{KL}(q \| p)` is estimated on the same fixed 20,000
base samples for both. Each seed (three by default) is a run of its own, since a single run of
reverse KL can land in a different local optimum from the next.

Where reverse KL lands depends most on the start. Ours starts near y = x, as the paper's
authors start; Pyro's own initialisation (``nn.Linear``'s) starts as a contraction, q about
N(0, 0.5² I). A narrow start tends to keep one lobe of U1 and to find U4's lower branch; a wide
one the reverse. So Pyro trains twice by default, from its own start and from ours, and the
second comparison is the one between implementations of the same model.

The contenders train in interleaved chunks of steps, each drawing its own copy of the same
noise stream, so that the load of a shared machine falls on both alike. Steps per second count
the whole training step: drawing the noise, the forward pass, the energy, backward, clipping
and Adam.

Pyro is not a dependency of Benchtop; install it in a separate environment for this benchmark
(``torch==2.13.0`` exactly, so pip keeps the CPU build already on disk)::

    python3 -m venv /tmp/pyro-venv
    /tmp/pyro-venv/bin/pip install torch==2.13.0 numpy pyro-ppl
    PYTHONPATH=. /tmp/pyro-venv/bin/python bench/flows_vs_pyro.py

References:
    | Neural Autoregressive Flows (Huang et al., 2018)
    | https://arxiv.org/abs/1804.00779
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from core.flows.autoregressive import AutoregressiveFlow, standard_normal_log_prob
from core.flows.energies import (
    ENERGY_NAMES,
    annealing_weight,
    effective_sample_size,
    energy,
    log_partition,
    reverse_kl,
)
from core.training import DivergenceError, FlatParameters, apply_gradients

INSTALL_HINT = (
    "install pyro-ppl in a separate venv: python3 -m venv /tmp/pyro-venv && "
    "/tmp/pyro-venv/bin/pip install torch==2.13.0 numpy pyro-ppl, then run "
    "PYTHONPATH=. /tmp/pyro-venv/bin/python bench/flows_vs_pyro.py"
)

BATCH = 256
MAX_GRAD_NORM = 5.0
EVAL_SAMPLES = 20_000
#: Steps each contender trains before the next takes its turn.
CHUNK = 50
#: Offset of the evaluation noise's seed from the training seed.
EVAL_SEED_OFFSET = 10_007
#: Largest difference of an identity flow's KL from that of N(0, I) the check accepts.
IDENTITY_TOLERANCE = 1e-3

#: A sampler maps base noise z to samples x and their log-density log q(x).
Sampler = Callable[[Tensor], tuple[Tensor, Tensor]]


def import_pyro():
    """Return Pyro's ``NeuralAutoregressive`` and ``AutoRegressiveNN``, or exit with a hint."""
    try:
        import pyro
        from pyro.distributions.transforms import NeuralAutoregressive
        from pyro.nn import AutoRegressiveNN
    except ImportError as error:
        sys.exit(f"flows_vs_pyro: cannot import pyro ({error}); {INSTALL_HINT}")
    return pyro.__version__, NeuralAutoregressive, AutoRegressiveNN


# ---- the flows -------------------------------------------------------------------------------


def ours(kind: str = "dsf", layers: int = 2) -> tuple[nn.Module, Sampler]:
    """Return Benchtop's flow and its sampler; ``forward(z)`` gives ``(x, log |dx/dz|)``."""
    flow = AutoregressiveFlow(
        features=2, kind=kind, layers=layers, hidden=64, hidden_layers=2, sigmoids=16
    )

    def sample(z: Tensor) -> tuple[Tensor, Tensor]:
        x, ladj = flow(z)
        return x, standard_normal_log_prob(z) - ladj

    return flow, sample


def pyro_dsf(start: str = "pyro") -> tuple[nn.Module, Sampler]:
    """Return two Pyro ``NeuralAutoregressive`` layers of our size and their sampler.

    Pyro's transform maps its input (here the base noise) forward, and its
    ``log_abs_det_jacobian(x, y)`` is ``log |dy/dx|`` of the *last* call, read from a cache
    whatever its arguments, so it is taken right after each call.

    ``start`` is ``"pyro"`` for Pyro's own initialisation (``nn.Linear``'s default),
    ``"identity"`` for conditioners whose last layers make every layer exactly ``y = x``, or
    ``"near-identity"`` for ours: that plus the small random part our conditioners start with
    (without it the 16 sigmoid units stay identical throughout training).
    """
    _, neural_autoregressive, autoregressive_nn = import_pyro()
    sigmoids = 16
    transforms = nn.ModuleList()
    for order in ([0, 1], [1, 0]):
        arn = autoregressive_nn(
            2,
            [64, 64],
            param_dims=[sigmoids] * 3,
            permutation=torch.tensor(order),
            nonlinearity=nn.ELU(),
        )
        if start != "pyro":
            # Output row p * 2 + d is parameter p of dimension d: softplus(A) = 1, b = 0,
            # W uniform, so y = logit(σ(x)) = x.
            last = arn.layers[-1]
            with torch.no_grad():
                last.weight.zero_()
                last.bias.zero_()
                last.bias[: 2 * sigmoids] = math.log(math.expm1(1.0))
                if start == "near-identity":
                    # As core.flows.made.MADE.reset_output does
                    bound = 1e-2 / math.sqrt(last.in_features)
                    last.weight.uniform_(-bound, bound)
                    last.bias.add_(1e-2 * torch.randn_like(last.bias))
        transforms.append(neural_autoregressive(arn, hidden_units=sigmoids))

    def sample(z: Tensor) -> tuple[Tensor, Tensor]:
        x, ladj = z, 0.0
        for transform in transforms:
            y = transform(x)
            ladj = ladj + transform.log_abs_det_jacobian(x, y)
            x = y
        return x, standard_normal_log_prob(z) - ladj

    return transforms, sample


# ---- training and evaluation -----------------------------------------------------------------


@dataclass
class Contender:
    """One flow under test with its optimiser, noise stream and the time it has trained."""

    name: str
    module: nn.Module
    sample: Sampler
    optimizer: torch.optim.Optimizer
    parameters: FlatParameters | list[nn.Parameter]
    generator: torch.Generator
    seconds: float = 0.0
    steps: int = 0
    skipped: int = 0
    chunk_seconds: list[float] = field(default_factory=list)

    def train(self, u: Callable[[Tensor], Tensor], steps: int, anneal_steps: int = 0) -> None:
        """Take ``steps`` reverse-KL steps on the energy ``u``, timing them.

        With ``anneal_steps`` the energy is weighted as the app's *Anneal energy* setting
        weights it (:func:`core.flows.energies.annealing_weight`).
        """
        start = time.perf_counter()
        for i in range(self.steps, self.steps + steps):
            beta = annealing_weight(i, anneal_steps) if anneal_steps else 1.0
            z = torch.randn(BATCH, 2, generator=self.generator)
            x, log_q = self.sample(z)
            loss = (log_q + beta * u(x)).mean()
            try:
                apply_gradients(loss, self.optimizer, self.parameters, max_grad_norm=MAX_GRAD_NORM)
            except DivergenceError:
                self.skipped += 1
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        self.steps += steps
        self.chunk_seconds.append(elapsed)


#: Contenders by name: their label and a constructor of ``(module, sampler)``.
CONTENDERS: dict[str, tuple[str, Callable[[], tuple[nn.Module, Sampler]]]] = {
    "ours": ("ours DSF×2", lambda: ours("dsf", 2)),
    "pyro": ("pyro DSF×2", lambda: pyro_dsf("pyro")),
    "pyro-our-start": ("pyro, our start", lambda: pyro_dsf("near-identity")),
    "affine": ("ours affine×6", lambda: ours("affine", 6)),
}


def build(name: str, args: argparse.Namespace, seed: int) -> Contender:
    """Return the contender ``name`` (a key of :data:`CONTENDERS`), seeded by ``seed``."""
    torch.manual_seed(seed)
    label, make = CONTENDERS[name]
    module, sample = make()

    if args.per_tensor:
        parameters = list(module.parameters())
        stepped = parameters
    else:
        parameters = FlatParameters(module.parameters())
        stepped = [parameters.flat]
    optimizer = torch.optim.Adam(stepped, lr=args.lr, fused=not args.plain_adam)
    generator = torch.Generator().manual_seed(seed)
    return Contender(label, module, sample, optimizer, parameters, generator)


def evaluate(sample: Sampler, target: str, z: Tensor) -> tuple[float, float]:
    """Return the true KL(q ‖ p) and the effective sample size fraction on base noise ``z``."""
    with torch.no_grad():
        x, log_q = sample(z)
        u = energy(target)(x)
    return reverse_kl(log_q, u, log_partition(target)), effective_sample_size(log_q, u)


def eval_noise(seed: int) -> Tensor:
    """Return the fixed base noise of the KL estimate, from its own generator."""
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
    return torch.randn(EVAL_SAMPLES, 2, generator=generator)


def identity_check(targets: list[str], seed: int) -> bool:
    """Print the KL of N(0, I) and of our and Pyro's DSF set to the identity; True if equal.

    Both flows are set to ``y = x`` (ours up to the squeeze δ), so on the same noise all three
    must agree to within :data:`IDENTITY_TOLERANCE`; a difference would mean a sign or
    direction mistake in a log-density.
    """
    z = eval_noise(seed)
    torch.manual_seed(seed)
    our_flow, our_sample = ours("dsf", 2)
    for layer in our_flow.layers:
        # Our start without its small random part: exactly the identity parameters
        layer.conditioner.reset_output(
            layer.transformer.identity_params(), weight_scale=0.0, noise=0.0
        )
    _, pyro_sample = pyro_dsf("identity")

    def base(z: Tensor) -> tuple[Tensor, Tensor]:
        return z, standard_normal_log_prob(z)

    print("Identity check: KL(q‖p) of flows set to y = x, on the evaluation noise")
    print(f"  {'target':<7}{'N(0,I)':>10}{'ours':>10}{'pyro':>10}")
    ok = True
    for target in targets:
        kls = [evaluate(s, target, z)[0] for s in (base, our_sample, pyro_sample)]
        ok &= max(abs(k - kls[0]) for k in kls) <= IDENTITY_TOLERANCE
        print(f"  {target:<7}" + "".join(f"{k:>10.4f}" for k in kls))
    print("  agree" if ok else "  DISAGREE: the log-density of a flow is wrong")
    print()
    return ok


def run_target(target: str, names: list[str], args: argparse.Namespace, seed: int):
    """Train every contender on ``target`` from ``seed`` in interleaved chunks; return them."""
    u = energy(target)
    log_partition(target)  # integrate log Z now, outside the timed steps
    contenders = [build(n, args, seed) for n in names]

    # Alternate who goes first in each round, so neither always follows the other
    for round_, start in enumerate(range(0, args.steps, CHUNK)):
        steps = min(CHUNK, args.steps - start)
        for c in contenders if round_ % 2 == 0 else contenders[::-1]:
            c.train(u, steps, args.anneal_steps)

    return contenders


@dataclass
class Result:
    """A contender's runs on one target, one per seed: speed and the true KL and ESS."""

    name: str
    steps: int = 0
    seconds: float = 0.0
    chunk_seconds: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    ess: list[float] = field(default_factory=list)
    skipped: int = 0

    def add(self, c: Contender, target: str, z: Tensor) -> None:
        """Add the trained contender ``c``, evaluated on the evaluation noise ``z``."""
        kl, ess = evaluate(c.sample, target, z)
        self.steps += c.steps
        self.seconds += c.seconds
        self.chunk_seconds += c.chunk_seconds
        self.kl.append(kl)
        self.ess.append(ess)
        self.skipped += c.skipped

    @property
    def rate(self) -> float:
        """Steps per second over every run."""
        return self.steps / self.seconds


# ---- report ----------------------------------------------------------------------------------


def median_chunk_ratio(a: Result, b: Result) -> float:
    """Median over rounds of b's chunk time over a's: a's speed relative to b, drift-free."""
    pairs = zip(a.chunk_seconds, b.chunk_seconds, strict=True)
    return statistics.median(tb / ta for ta, tb in pairs)


def print_table(title: str, target: str, results: list[Result], seeds: list[int]) -> float:
    """Print steps/s, KL per seed, mean and median KL and ESS of ``results``.

    Returns the speed of the first result relative to the second.
    """
    a, b = results[:2]
    ratio = a.rate / b.rate
    seed_list = ", ".join(str(s) for s in seeds)
    print(f"{title} — {target} (seed{'s' if len(seeds) > 1 else ''} {seed_list})")
    per_seed = "KL(q‖p) per seed"
    width = max(len(per_seed), 8 * len(seeds))
    print(
        f"  {'':<16}{'steps/s':>9}  {per_seed:<{width}}{'mean':>8}{'median':>8}{'ESS':>7}"
        f"{'skipped':>9}"
    )
    for r in results:
        kls = "".join(f"{k:>8.4f}" for k in r.kl)
        print(
            f"  {r.name:<16}{r.rate:>9.1f}  {kls:<{width}}{statistics.fmean(r.kl):>8.4f}"
            f"{statistics.median(r.kl):>8.4f}{statistics.fmean(r.ess):>7.1%}{r.skipped:>9d}"
        )
    print(
        f"  speed {a.name} / {b.name}: {ratio:.2f} "
        f"(median of {len(a.chunk_seconds)} interleaved chunks: {median_chunk_ratio(a, b):.2f})"
    )
    print()
    return ratio


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


#: The --pyro-start choices in words.
START_NAMES = {"both": "its own and ours", "pyro": "its own", "near-identity": "ours"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps (2000)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    parser.add_argument(
        "--targets", nargs="+", default=list(ENERGY_NAMES), choices=ENERGY_NAMES, metavar="U"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        metavar="S",
        help="a run per seed, KL reported per seed and averaged (0 1 2)",
    )
    parser.add_argument(
        "--anneal-steps",
        type=int,
        default=0,
        metavar="N",
        help="anneal the energy over N steps for every contender, as the app's setting does "
        "(0: off)",
    )
    parser.add_argument(
        "--with-affine",
        action="store_true",
        help="also train our affine×6 and compare it with our DSF×2",
    )
    parser.add_argument(
        "--pyro-start",
        choices=("both", "pyro", "near-identity"),
        default="both",
        help="Pyro's initialisation: its own, near y = x with a small random part as ours "
        "starts, or both, as two contenders (default)",
    )
    parser.add_argument(
        "--plain-adam",
        action="store_true",
        help="use torch's plain Adam for every contender (default: the fused one Benchtop uses)",
    )
    parser.add_argument(
        "--per-tensor",
        action="store_true",
        help="clip and step every parameter tensor on its own (default: all as one flat "
        "parameter, as Benchtop trains)",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be at least 1")
    if args.anneal_steps < 0:
        parser.error("--anneal-steps must be at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pyro_version, _, _ = import_pyro()
    torch.set_num_threads(args.threads)
    anneal = f"annealed over {args.anneal_steps} steps" if args.anneal_steps else "no annealing"
    print(
        f"torch {torch.__version__}, pyro {pyro_version}, {args.threads} thread(s); "
        f"{args.steps} steps of batch {BATCH}, {'plain' if args.plain_adam else 'fused'} "
        f"Adam {args.lr:g} on {'each tensor' if args.per_tensor else 'one flat parameter'}, "
        f"clip {MAX_GRAD_NORM:g}, {anneal}; "
        f"KL on {EVAL_SAMPLES:,} samples; Pyro's start: {START_NAMES[args.pyro_start]}"
    )
    print()
    if not identity_check(args.targets, args.seeds[0]):
        return 1

    pyros = {
        "both": ["pyro", "pyro-our-start"],
        "pyro": ["pyro"],
        "near-identity": ["pyro-our-start"],
    }[args.pyro_start]
    names = ["ours", *pyros] + (["affine"] if args.with_affine else [])
    ratios = []
    for target in args.targets:
        results: list[Result] = []
        for seed in args.seeds:
            trained = run_target(target, names, args, seed)
            results = results or [Result(c.name) for c in trained]
            for result, contender in zip(results, trained, strict=True):
                result.add(contender, target, eval_noise(seed))
        dsf = results[: 1 + len(pyros)]
        ratios.append(print_table("DSF×2: ours vs Pyro", target, dsf, args.seeds))
        if args.with_affine:
            print_table("Ours: DSF×2 vs affine×6", target, [results[0], results[-1]], args.seeds)

    print(
        f"Geometric-mean speed ratio ours/pyro over {', '.join(args.targets)}: "
        f"{geometric_mean(ratios):.2f} (goal 1.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
