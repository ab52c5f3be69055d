import csv
from pathlib import Path

import orjson
import pytest

from hutong.sim import SimConfig, simulate
from hutong.sim.writer import RESOURCE_ORDER


class Out:
    """A generated province read back for assertions."""

    def __init__(self, path: Path, manifest: dict) -> None:
        self.path = path
        self.manifest = manifest
        self._cache: dict[str, list[dict]] = {}

    def res(self, rtype: str) -> list[dict]:
        if rtype not in self._cache:
            with open(self.path / f"{rtype}.ndjson", "rb") as fh:
                self._cache[rtype] = [orjson.loads(line) for line in fh]
        return self._cache[rtype]

    def all(self):
        for t in RESOURCE_ORDER:
            yield from self.res(t)

    def truth(self, name: str) -> list[dict]:
        with open(self.path / "truth" / f"{name}.csv", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def province(tmp_path_factory) -> Out:
    """1,500 residents over 2 years, every institution and the full doctor roster (default scale)."""
    out = tmp_path_factory.mktemp("province")
    cfg = SimConfig(residents=1500, years=2, seed=3)
    return Out(out, simulate(cfg, out))


@pytest.fixture(scope="session")
def noisy(tmp_path_factory) -> Out:
    """High variation rates, few doctors: to measure the injected variation against its configuration."""
    out = tmp_path_factory.mktemp("noisy")
    cfg = SimConfig(residents=3000, years=1, seed=11, practitioner_scale=0.05).with_variation(
        name_homophone=0.3, name_traditional=0.2, id_missing=0.2, id_digit_typo=0.1, id_transposition=0.1,
        id_old15=0.2, phone_new=0.25, phone_missing=0.1, address_rewrite=0.4, birthdate_swap=0.3)
    return Out(out, simulate(cfg, out))
