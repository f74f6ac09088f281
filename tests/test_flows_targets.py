"""The flows' targets: the energies U1–U4, their normaliser and KL, and the toy data sets."""

import math

import numpy as np
import pytest
import torch

from core.flows import energies, toy_data
from core.flows.energies import (
    ENERGY_NAMES,
    density_grid,
    effective_sample_size,
    energy,
    log_partition,
    reverse_kl,
)
from core.flows.toy_data import DATASET_NAMES, dataset, split, true_test_nll


def numpy_energy(name, z1, z2, with_wall=True):
    """U1–U4 written from Rezende & Mohamed's Table 1, with Benchtop's wall on U2–U4."""
    w1 = np.sin(2 * np.pi * z1 / 4)
    w2 = 3 * np.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + np.exp(-(z1 - 1) / 0.3))
    wall = 0.5 * (np.maximum(np.abs(z1) - 4, 0) / 0.2) ** 2 if with_wall else 0.0
    if name == "U1":
        ring = 0.5 * ((np.sqrt(z1**2 + z2**2) - 2) / 0.4) ** 2
        lobes = np.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + np.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
        return ring - np.log(lobes)
    if name == "U2":
        return 0.5 * ((z2 - w1) / 0.4) ** 2 + wall
    if name == "U3":
        a = np.exp(-0.5 * ((z2 - w1) / 0.35) ** 2)
        b = np.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2)
        return -np.log(a + b) + wall
    a = np.exp(-0.5 * ((z2 - w1) / 0.4) ** 2)
    b = np.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2)
    return -np.log(a + b) + wall


#: Points inside the box, and beyond |z1| = 4 where the wall of U2–U4 acts.
POINTS = [(0.0, 0.0), (1.0, -0.5), (2.5, 1.0), (-1.3, 2.2), (5.0, 0.3), (-4.6, -1.0)]


@pytest.mark.parametrize("name", ENERGY_NAMES)
def test_energies_match_the_formulas(name):
    z = torch.tensor(POINTS, dtype=torch.float64)
    z1, z2 = np.array(POINTS).T

    torch.testing.assert_close(
        energy(name)(z), torch.from_numpy(numpy_energy(name, z1, z2)), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", ENERGY_NAMES)
def test_energy_gradients_match_finite_differences(name):
    # The gradients are written by hand; gradcheck holds them to central differences in
    # float64 at random points, beyond the wall (|z1| > 4) and at U1's centre, where the ring
    # has no direction and the gradient is taken as zero.
    torch.manual_seed(0)
    z = torch.cat([3 * torch.randn(100, 2, dtype=torch.float64), torch.tensor(POINTS).double()])
    z.requires_grad_()

    assert torch.autograd.gradcheck(energy(name), (z,))


@pytest.mark.parametrize("name", ENERGY_NAMES)
def test_energy_values_do_not_depend_on_gradient_tracking(name):
    z = 3 * torch.randn(50, 2)
    with torch.no_grad():
        plain = energy(name)(z)

    tracked = energy(name)(z.clone().requires_grad_())

    assert tracked.requires_grad
    torch.testing.assert_close(tracked.detach(), plain, rtol=0, atol=0)


def test_energies_at_hand_computed_points():
    def at(z1, z2):
        return torch.tensor([z1, z2], dtype=torch.float64)

    u1, u2 = energy("U1"), energy("U2")

    # U1(0, 0) = ½ (2/0.4)² − ln(2 e^{−½ (2/0.6)²}) = 12.5 − ln 2 + 50/9
    assert u1(at(0, 0)).item() == pytest.approx(12.5 - math.log(2) + 50 / 9, rel=1e-14)
    # U2 on the sine: 0; at (1, −0.5), w1 = 1: ½ (1.5/0.4)² = 7.03125
    assert u2(at(0, 0)).item() == 0
    assert u2(at(1, -0.5)).item() == pytest.approx(7.03125, rel=1e-14)
    # At (5, 0.3), w1 = sin(2.5π) = 1: ½ (0.7/0.4)² = 1.53125 plus the wall ½ (1/0.2)² = 12.5
    assert u2(at(5, 0.3)).item() == pytest.approx(1.53125 + 12.5, rel=1e-14)


@pytest.mark.parametrize("name", ["U2", "U3", "U4"])
def test_wall_is_added_beyond_four_only(name):
    # ½ (max(|z1| − 4, 0) / 0.2)² at z1 = −6, −4.5, −4, 0, 3.9, 4, 5
    z1 = np.array([-6.0, -4.5, -4.0, 0.0, 3.9, 4.0, 5.0])
    z2 = np.array([0.3, -1.0, 2.0, 0.0, -0.5, 1.0, 0.7])
    wall = torch.tensor([50.0, 3.125, 0.0, 0.0, 0.0, 0.0, 12.5], dtype=torch.float64)
    z = torch.from_numpy(np.stack([z1, z2], axis=-1))

    torch.testing.assert_close(energies.wall(z), wall, rtol=1e-14, atol=0)
    without_wall = torch.from_numpy(numpy_energy(name, z1, z2, with_wall=False))
    torch.testing.assert_close(energy(name)(z) - without_wall, wall, rtol=1e-12, atol=1e-12)


def test_log_partition_of_u2_has_a_closed_form():
    # ∫ exp(−½((z2 − w1(z1))/0.4)²) dz2 = 0.4 √(2π) for every z1, and
    # ∫ exp(−wall(z1)) dz1 = 8 (the flat part |z1| ≤ 4) + 2 ∫_0^∞ exp(−½ (t/0.2)²) dt
    #                      = 8 + 0.2 √(2π).
    # Outside the grid's [−7, 7]² the integrand is below e^−100. The grid rule is exact for the
    # smooth Gaussian in z2 and O(h³) at the wall's kinks at |z1| = 4 (h = 0.014).
    root = math.sqrt(2 * math.pi)
    exact = math.log(0.4 * root * (8 + 0.2 * root))
    assert log_partition("U2") == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize("name", ENERGY_NAMES)
def test_log_partition_matches_an_independent_integral(name):
    # Trapezoid rule in numpy on another grid (1201² points on [−7.5, 7.5]²)
    g = np.linspace(-7.5, 7.5, 1201)
    z1, z2 = np.meshgrid(g, g, indexing="ij")
    inner = np.trapezoid(np.exp(-numpy_energy(name, z1, z2)), g, axis=1)
    expected = math.log(np.trapezoid(inner, g))

    assert log_partition(name) == pytest.approx(expected, abs=1e-6)


def test_density_grid_is_normalised_and_laid_out_rows_by_y():
    xs = torch.linspace(-7, 7, 561, dtype=torch.float64)
    ys = torch.linspace(-7, 7, 701, dtype=torch.float64)

    values = density_grid("U3", xs, ys)

    assert values.shape == (701, 561)
    mass = torch.trapezoid(torch.trapezoid(values, xs, dim=1), ys).item()
    assert mass == pytest.approx(1.0, abs=1e-5)
    i, j = 100, 400
    expected = math.exp(-numpy_energy("U3", xs[j].item(), ys[i].item()) - log_partition("U3"))
    assert values[i, j].item() == pytest.approx(expected, rel=1e-12)


def gaussian_energy(mean, std):
    """Return U(z) = ½ ‖z − mean‖² / std² on R² and its exact log Z = log(2π std²)."""
    mean = torch.tensor(mean, dtype=torch.float64)
    return (lambda z: 0.5 * (z - mean).square().sum(-1) / std**2), math.log(2 * math.pi * std**2)


def gaussian_samples(mean, std, n, seed):
    """Draw from N(mean, std² I) on R² and return the samples and their exact log q."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.tensor(mean, dtype=torch.float64)
    z = mean + std * torch.randn(n, 2, generator=g, dtype=torch.float64)
    log_q = -0.5 * (z - mean).square().sum(-1) / std**2 - math.log(2 * math.pi * std**2)
    return z, log_q


def test_reverse_kl_between_gaussians():
    # KL(N(μ, σ² I) ‖ N(m, s² I)) on R² = 2 ln(s/σ) + (2σ² + ‖μ − m‖²) / (2 s²) − 1
    mu, sigma, m, s = (0.0, 0.0), 0.8, (0.5, -1.0), 1.3
    exact = 2 * math.log(s / sigma) + (2 * sigma**2 + 0.25 + 1.0) / (2 * s**2) - 1
    u, log_z = gaussian_energy(m, s)
    z, log_q = gaussian_samples(mu, sigma, 200_000, seed=0)

    estimate = reverse_kl(log_q, u(z), log_z)

    standard_error = (log_q + u(z)).std().item() / math.sqrt(len(z))
    assert abs(estimate - exact) < 5 * standard_error
    assert standard_error < 0.01 * exact  # the check is sharp


def test_reverse_kl_of_the_target_itself_is_zero():
    u, log_z = gaussian_energy((1.0, 2.0), 0.7)
    z, log_q = gaussian_samples((1.0, 2.0), 0.7, 1000, seed=1)
    assert reverse_kl(log_q.float(), u(z).float(), log_z) == pytest.approx(0.0, abs=1e-6)
    assert reverse_kl(log_q, u(z), log_z) == pytest.approx(0.0, abs=1e-12)


def test_effective_sample_size():
    # q = p: every weight is equal
    u, _ = gaussian_energy((0.0, 0.0), 1.0)
    z, log_q = gaussian_samples((0.0, 0.0), 1.0, 1000, seed=2)
    assert effective_sample_size(log_q, u(z)) == pytest.approx(1.0, abs=1e-12)

    # q = N(0, σ² I), p = N(0, I): E_q[w²] / E_q[w]² = (σ² / √(2σ² − 1))² on R²
    sigma = 1.5
    z, log_q = gaussian_samples((0.0, 0.0), sigma, 200_000, seed=3)
    exact = (math.sqrt(2 * sigma**2 - 1) / sigma**2) ** 2
    assert effective_sample_size(log_q, u(z)) == pytest.approx(exact, abs=0.01)


def test_unknown_names_list_the_choices():
    with pytest.raises(KeyError, match="U1, U2, U3, U4"):
        energy("U5")
    with pytest.raises(KeyError, match="eight_gaussians"):
        dataset("swiss_roll")


#: Midpoint-rule cell per data set: at most 1.25 noise standard deviations, where the rule's
#: error on a Gaussian is about 2 exp(−2π² (σ/h)²) < 1e−5, and dividing the box so that the
#: cells align with the checkerboard's squares.
CELL = {
    "eight_gaussians": 0.25,
    "two_moons": 0.25,
    "checkerboard": 0.25,
    "two_spirals": 0.125,
    "rings": 0.1,
}


def box_grid(name):
    """Return the cell centres covering the data set's box, as ``(points, cell area)``."""
    x0, x1, y0, y1 = dataset(name).box
    h = CELL[name]
    xs = torch.arange(x0 + h / 2, x1, h, dtype=torch.float64)
    ys = torch.arange(y0 + h / 2, y1, h, dtype=torch.float64)
    assert xs[-1] < x1 < xs[-1] + h and ys[-1] < y1 < ys[-1] + h
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2), h * h


@pytest.fixture(scope="module", params=DATASET_NAMES)
def evaluated(request):
    """One data set's log-density on the cell centres of its box and at 1000 fresh samples."""
    name = request.param
    data = dataset(name)
    points, area = box_grid(name)
    fresh = data.sample(1000, torch.Generator().manual_seed(99))
    return name, data.log_prob(points), area, data.log_prob(fresh)


def test_density_integrates_to_one_over_its_box(evaluated):
    # The box holds nearly all the mass: at most 1e−3 lies outside (eight Gaussians 2.3e−4,
    # two moons 4.5e−4, the rest far less)
    name, log_p, area, _ = evaluated
    mass = (log_p.exp().sum() * area).item()
    assert 1 - 1e-3 < mass < 1 + 1e-5


def test_true_test_nll_is_the_entropy(evaluated):
    # The mean NLL of the test split estimates the entropy −∫ p log p, here by the grid: the
    # sampler and the density must agree for this to hold. Its spread is that of log p at
    # fresh samples; the grid misses at most ~1e−3 nats (the mass outside the box)
    name, log_p, area, fresh_log_p = evaluated
    p = log_p.exp()
    entropy = -(torch.where(p > 0, p * log_p, 0.0).sum() * area).item()
    standard_error = fresh_log_p.std().item() / math.sqrt(toy_data.TEST_SIZE)

    assert abs(true_test_nll(name) - entropy) <= 4 * standard_error + 2e-3


def test_fresh_samples_score_the_true_test_nll(evaluated):
    # Every fresh sample lies where the density is positive and scores like the test split
    name, _, _, fresh_log_p = evaluated
    spread = fresh_log_p.std().item()
    standard_error = spread * math.sqrt(1 / len(fresh_log_p) + 1 / toy_data.TEST_SIZE)

    assert torch.isfinite(fresh_log_p).all()
    assert abs(fresh_log_p.mean().item() + true_test_nll(name)) <= 4 * standard_error + 1e-12


def test_eight_gaussians_nll_is_the_closed_form_mixture():
    sigma = 0.5 / math.sqrt(2)
    k = np.arange(8)
    centres = 2 * math.sqrt(2) * np.stack([np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)], axis=-1)
    x = split("eight_gaussians", "test").numpy()

    sq = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    log_p = np.logaddexp.reduce(-0.5 * sq / sigma**2, axis=1) - np.log(8 * 2 * np.pi * sigma**2)

    assert true_test_nll("eight_gaussians") == pytest.approx(-log_p.mean(), rel=1e-12)


def test_checkerboard_is_uniform_on_the_dark_squares():
    board = dataset("checkerboard")
    # A square is dark when its column and row indices floor(x / 2) have the same parity
    dark = torch.tensor([[-3.0, -3.0], [-1.0, -1.0], [1.5, 0.5], [3.0, -1.0]], dtype=torch.float64)
    light = torch.tensor([[-3.0, -1.0], [1.0, 3.0], [3.0, 1.0]], dtype=torch.float64)
    off = torch.tensor([[4.5, 0.5], [0.5, -4.2]], dtype=torch.float64)

    torch.testing.assert_close(board.log_prob(dark), torch.full((4,), -math.log(32.0)).double())
    assert (board.log_prob(torch.cat([light, off])) == -math.inf).all()


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_splits_are_fixed(name):
    train, test = split(name, "train"), split(name, "test")
    assert train.shape == (toy_data.TRAIN_SIZE, 2) and test.shape == (toy_data.TEST_SIZE, 2)
    assert train.dtype == test.dtype == torch.float64
    assert not torch.equal(train[: len(test)], test)

    # Drawn again, from scratch and after the global generator moved, the splits are the same
    split.cache_clear()
    torch.manual_seed(12345)
    torch.rand(10)
    assert torch.equal(split(name, "train"), train)
    assert torch.equal(split(name, "test"), test)
