"""Simulation parameters: one dataclass, loadable from TOML or JSON, every variation rate configurable."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class VariationRates:
    """Probability that a source Patient record (as a registration desk sends it) carries each variation.

    Each rate applies to the records *eligible* for it (see docs/simulation.md): e.g. ``id_old15`` only to
    people born before 1985 whose record has an ID, ``birthdate_swap`` only where day ≤ 12 ≠ month.
    """

    name_homophone: float = 0.04  # one character replaced by a homophone / look-alike (张→章, 伟→玮)
    name_traditional: float = 0.01  # traditional forms (陈→陳)
    id_missing: float = 0.06  # no resident ID recorded
    id_digit_typo: float = 0.01  # one digit mistyped (breaks the check digit)
    id_transposition: float = 0.005  # two adjacent digits swapped (breaks the check digit)
    id_old15: float = 0.05  # old 15-digit ID (born before 1985)
    phone_new: float = 0.08  # a newer mobile number than the one on file
    phone_missing: float = 0.03
    address_rewrite: float = 0.15  # abbreviated / reordered address text, codes kept only sometimes
    birthdate_swap: float = 0.005  # day and month swapped
    newborn_placeholder: float = 0.9  # a baby's first record within 60 days of birth: 王丽之子, no ID
    # The household-rich error model (issue 14). All 0 by default, so the default province is unchanged;
    # ``VariationRates.household()`` gives the rates of the second error model (docs/simulation.md).
    twins: float = 0.0  # a household's child (or newborn) is one of twins: same birth date, parents, phone, address
    guardian_id: float = 0.0  # a child's (< 16) record carries a parent's resident ID instead of its own / none
    relative_phone: float = 0.0  # the record carries another household member's phone (son's phone for a parent)
    newborn_generic_name: float = 0.0  # the placeholder is generic (新生儿, 宝宝, 男婴, 张宝宝) rather than 王丽之子
    birth_year_typo: float = 0.0  # one digit of the birth year mistyped (1985 → 1986, 1975, 1958)
    birth_from_age: float = 0.0  # date derived from a stated age: YYYY-01-01, YYYY-07-01 or the year only
    birth_lunar: float = 0.0  # the lunar-calendar birthday written as if solar (20–50 days off)
    address_hospital_default: float = 0.0  # the hospital's own address (the desk's default) instead of the home
    address_missing: float = 0.0  # no address recorded

    @classmethod
    def household(cls) -> VariationRates:
        """The second, household-rich error model (families, twins, guardians' IDs and phones, placeholder
        newborn names, year typos, age-derived dates, hospital-default addresses) on top of the defaults."""
        return cls(twins=0.04, guardian_id=0.12, relative_phone=0.10, newborn_generic_name=0.4,
                   birth_year_typo=0.02, birth_from_age=0.04, birth_lunar=0.02, address_hospital_default=0.06,
                   address_missing=0.05, id_missing=0.12, phone_new=0.10)


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the generated province. Same config ⇒ byte-identical output."""

    residents: int = 10_000
    years: int = 1
    seed: int = 1
    start_year: int = 2024
    # Institutions (defaults: the province's real proportions).
    tertiary: int = 59
    secondary: int = 138
    community_centres: int = 246  # 社区卫生服务中心; with every 乡/镇 卫生院 (611) gives 857 primary
    village_clinic_fraction: float = 0.03  # share of 村委会 villages with a 村卫生室 in the output
    practitioner_scale: float = 1.0  # multiplies doctors per institution (and online doctors)
    online_doctors: int = 1682
    online_hospitals: int = 155
    # Clinical activity.
    visit_scale: float = 1.0  # multiplies every encounter rate
    lab_scale: float = 1.0  # multiplies the probability of lab panels
    repeat_test_rate: float = 0.12  # after a lab panel: chance of the same panel elsewhere within 30 days
    variation: VariationRates = field(default_factory=VariationRates)
    # Output.
    per_institution: bool = False

    def to_dict(self) -> dict:
        """Plain dict (for the manifest and JSON config files)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SimConfig:
        """Build from a dict; unknown keys raise ``ValueError`` (typos in config files must not pass silently)."""
        data = dict(data)
        var = data.pop("variation", {}) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        vknown = {f.name for f in fields(VariationRates)}
        unknown |= {f"variation.{k}" for k in set(var) - vknown}
        if unknown:
            raise ValueError(f"unknown simulation settings: {', '.join(sorted(unknown))}")
        return cls(**data, variation=VariationRates(**var))

    @classmethod
    def from_file(cls, path: Path) -> SimConfig:
        """Load a ``.toml`` or ``.json`` file (a ``[variation]`` table holds the rates)."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return cls.from_dict(data)

    def with_variation(self, **rates: float) -> SimConfig:
        """A copy with some variation rates replaced."""
        return replace(self, variation=replace(self.variation, **rates))
