"""The report-interpretation vocabularies, defined once."""

from __future__ import annotations

from typing import Literal, get_args

Flag = Literal["normal", "high", "low", "critical-high", "critical-low", "unknown"]
FLAGS: tuple[str, ...] = get_args(Flag)
#: The state of a critical-value alert.
AlertStatus = Literal["open", "acknowledged", "escalated"]
