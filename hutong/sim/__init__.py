"""Deterministic generator of a synthetic Jilin-like province (``hutong simulate``).

Public API: :func:`simulate`, :func:`generate_demo`, :class:`SimConfig`, :class:`VariationRates`.
"""

from hutong.sim.config import SimConfig, VariationRates

__all__ = ["SimConfig", "VariationRates", "generate_demo", "simulate"]


def __getattr__(name: str):
    # Lazy so that importing the config (e.g. from the CLI) stays cheap.
    if name in ("simulate", "generate_demo"):
        from hutong.sim import generate

        return getattr(generate, name)
    raise AttributeError(name)
