"""The health card's vocabularies, defined once: the API models and the service both use these."""

from __future__ import annotations

from typing import Literal, get_args

CardStatus = Literal["active", "frozen", "revoked"]
Terminal = Literal["counter", "kiosk", "doctor-workstation", "mobile-app"]
Purpose = Literal["registration", "consultation", "examination", "pharmacy", "payment"]
Relationship = Literal["child", "parent", "spouse", "grandparent", "grandchild", "sibling", "other"]
ReplayPolicy = Literal["one-visit", "single-use", "none"]

STATUSES: tuple[str, ...] = get_args(CardStatus)
TERMINALS: tuple[str, ...] = get_args(Terminal)
PURPOSES: tuple[str, ...] = get_args(Purpose)
RELATIONSHIPS: tuple[str, ...] = get_args(Relationship)
REPLAY_POLICIES: tuple[str, ...] = get_args(ReplayPolicy)
