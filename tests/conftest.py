import os

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Run the tests' small tensor operations on one thread, as the flow experiment does.

    With two intra-op threads on a two-core machine that is busy with anything else, the many
    tiny operations of inverses and Jacobians spin-wait: one three-layer DDSF inverse took 30 s
    instead of 0.2 s here.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
