"""The guarded optimisation step, over separate parameters and over one flat parameter."""

import copy
import math

import pytest
import torch

from core.flows.autoregressive import AutoregressiveFlow, standard_normal_log_prob
from core.flows.energies import energy
from core.training import DivergenceError, FlatParameters, apply_gradients


def make_flow(seed=0):
    torch.manual_seed(seed)
    return AutoregressiveFlow(2, "dsf", 2, hidden=16, hidden_layers=2, sigmoids=4)


def reverse_kl_loss(flow, z):
    x, ladj = flow(z)
    return (standard_normal_log_prob(z) - ladj + energy("U3")(x)).mean()


def train(flow, parameters, stepped, steps, max_norm):
    optimizer = torch.optim.Adam(stepped, lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    norms = []
    for _ in range(steps):
        z = torch.randn(64, 2, generator=generator)
        norms.append(apply_gradients(reverse_kl_loss(flow, z), optimizer, parameters, max_norm))
    return norms


@pytest.mark.parametrize("max_norm", [None, 0.5])
def test_flat_parameters_train_as_the_separate_ones_do(max_norm):
    # Adam is elementwise and the clip scales all gradients alike, so one flat parameter
    # takes the same steps as the separate tensors, up to the rounding of the norm.
    separate, flat_flow = make_flow(), make_flow()
    flat = FlatParameters(flat_flow.parameters())

    norms = train(separate, list(separate.parameters()), list(separate.parameters()), 20, max_norm)
    flat_norms = train(flat_flow, flat, [flat.flat], 20, max_norm)

    assert flat_norms == pytest.approx(norms, rel=1e-4)
    if max_norm is not None:
        assert max(norms) > max_norm  # the clip acted
    for (name, p), q in zip(separate.named_parameters(), flat_flow.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)


def test_flat_parameters_are_views_of_one_tensor():
    flow = make_flow()
    before = copy.deepcopy(flow.state_dict())
    flat = FlatParameters(flow.parameters())

    # Same values, now living in the flat tensor: changing it changes the module.
    for key, value in flow.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    total = sum(p.numel() for p in flow.parameters())
    assert flat.flat.shape == (total,)
    with torch.no_grad():
        flat.flat.zero_()
    assert all(torch.count_nonzero(p) == 0 for p in flow.parameters())

    # load_state_dict copies into the views, so the flat tensor follows.
    flow.load_state_dict(before)
    assert torch.count_nonzero(flat.flat) > 0
    expected = torch.cat([before[name].reshape(-1) for name, _ in flow.named_parameters()])
    torch.testing.assert_close(flat.flat.detach(), expected, rtol=0, atol=0)


def test_a_parameter_without_gradient_counts_as_zero():
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    flat = FlatParameters([used, unused])
    optimizer = torch.optim.SGD([flat.flat], lr=0.5)

    norm = apply_gradients((2 * used).sum(), optimizer, flat)

    assert norm == pytest.approx(2 * math.sqrt(3))
    torch.testing.assert_close(used.detach(), torch.zeros(3))
    torch.testing.assert_close(unused.detach(), torch.ones(2))


@pytest.mark.parametrize("scale", [1.0, 0.0], ids=["inf", "nan"])
def test_a_non_finite_gradient_leaves_flat_parameters_and_adam_untouched(scale):
    flow = make_flow()
    flat = FlatParameters(flow.parameters())
    optimizer = torch.optim.Adam([flat.flat], lr=1e-2)
    z = torch.randn(32, 2)
    apply_gradients(reverse_kl_loss(flow, z), optimizer, flat, 5.0)
    values, state = flat.flat.detach().clone(), copy.deepcopy(optimizer.state_dict())

    # √(b − b) is 0, with an infinite derivative; times 0 that derivative is NaN.
    bias = flow.layers[0].conditioner.output_layer.bias[0]
    loss = reverse_kl_loss(flow, z) + scale * torch.sqrt(bias - bias.detach())
    assert math.isfinite(loss.item())
    with pytest.raises(DivergenceError, match="gradient norm"):
        apply_gradients(loss, optimizer, flat, 5.0)

    torch.testing.assert_close(flat.flat.detach(), values, rtol=0, atol=0)
    assert optimizer.state_dict()["state"][0]["step"] == state["state"][0]["step"]
    assert flat.flat.grad is None and all(p.grad is None for p in flow.parameters())


def test_a_non_finite_loss_raises_before_any_gradient():
    flow = make_flow()
    flat = FlatParameters(flow.parameters())
    optimizer = torch.optim.Adam([flat.flat], lr=1e-2)
    values = flat.flat.detach().clone()

    with pytest.raises(DivergenceError, match="loss is nan"):
        apply_gradients(reverse_kl_loss(flow, torch.randn(8, 2)) * math.nan, optimizer, flat)

    torch.testing.assert_close(flat.flat.detach(), values, rtol=0, atol=0)
    assert flat.flat.grad is None


def test_a_parameter_listed_twice_is_flattened_once():
    shared = torch.nn.Parameter(torch.arange(3.0))
    flat = FlatParameters([shared, shared])
    optimizer = torch.optim.SGD([flat.flat], lr=1.0)

    apply_gradients(shared.sum(), optimizer, flat)

    assert flat.flat.shape == (3,)
    torch.testing.assert_close(shared.detach(), torch.arange(3.0) - 1)


def test_flattening_refuses_mixed_dtypes_and_nothing_to_train():
    with pytest.raises(ValueError, match="one dtype and device"):
        mixed = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2).double())]
        FlatParameters(mixed)
    with pytest.raises(ValueError, match="no trainable parameters"):
        FlatParameters([torch.nn.Parameter(torch.ones(2), requires_grad=False)])
