"""``SAMPLERS``: the one dispatch of a sampler by name (benchmarks, ``tools/release.py``, the GPU run,
the tests). Each entry is the sampler and its default step options; every sampler follows the
contract of :mod:`ddpm_lib.sample`, so ``entry.sampler(model, d, n=16, **{**entry.options,
**overrides})`` runs any of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from .continuous import probability_flow, reverse_sde
from .discrete import ancestral, ddim


class SamplerEntry(NamedTuple):
    """A registered sampler: the function and its step options' defaults (``steps``, ``eta``,
    ``rtol``, ...: the options beyond the shared contract)."""

    sampler: Callable
    options: Mapping[str, object]


#: name -> :class:`SamplerEntry` (read-only).
SAMPLERS: Mapping[str, SamplerEntry] = MappingProxyType({
    "ancestral": SamplerEntry(ancestral, MappingProxyType({"variance": "beta"})),
    "ddim": SamplerEntry(ddim, MappingProxyType({"steps": 50, "eta": 0.0})),
    "reverse_sde": SamplerEntry(reverse_sde, MappingProxyType({"steps": 1000})),
    "probability_flow": SamplerEntry(
        probability_flow, MappingProxyType({"rtol": 1e-5, "atol": 1e-5, "method": "RK45"})
    ),
})  # fmt: skip
