"""The experiments Benchtop offers, by name."""

from __future__ import annotations

from core.experiment import Experiment


def experiments() -> dict[str, type[Experiment]]:
    """Return every available experiment class, keyed by its command-line name."""
    from core.flows.experiment import FlowExperiment

    return {cls.name: cls for cls in (FlowExperiment,)}


def get(name: str) -> type[Experiment]:
    """Return the experiment called ``name``, or raise ``KeyError`` listing the valid names."""
    found = experiments()
    if name not in found:
        raise KeyError(f"no experiment {name!r}; available: {', '.join(found)}")
    return found[name]
