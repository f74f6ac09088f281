"""Neural autoregressive flows: MADE conditioners, sigmoidal and affine transformers, targets.

References:
    | Neural Autoregressive Flows (Huang et al., 2018)
    | https://arxiv.org/abs/1804.00779
"""

from core.flows.autoregressive import FLOW_KINDS, AutoregressiveFlow, AutoregressiveLayer
from core.flows.energies import ENERGY_NAMES
from core.flows.toy_data import DATASET_NAMES

__all__ = [
    "DATASET_NAMES",
    "ENERGY_NAMES",
    "FLOW_KINDS",
    "AutoregressiveFlow",
    "AutoregressiveLayer",
]
