"""The simulated province as a capability: the ``hutong simulate`` command."""

from hutong.capability import Capability
from hutong.sim import cli

CAPABILITY = Capability(
    name="sim",
    summary="模拟省份 simulated province: institutions, doctors, residents and their records",
    cli=cli.register,
)
