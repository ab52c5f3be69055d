"""The electronic health card (电子居民健康卡) as a capability of the node."""

from hutong.capability import Capability
from hutong.card import cli, routes, tables

CAPABILITY = Capability(
    name="card",
    summary="电子健康卡 health card: signed dynamic QR codes verified at every institution",
    routers=[routes.router],
    plain=[routes.VERIFY],
    startup=routes.startup,
    cli=cli.register,
    permissions={
        "card.issue": "issue and re-issue cards (after an in-person identity check)",
        "card.read": "read a card record and its dependants",
        "card.status": "freeze, unfreeze or revoke a card",
        "card.qr": "make a fresh QR code for a card",
        "card.verify": "verify a scanned code at an institution",
        "card.keys.rotate": "rotate the signing key",
        "card.stats": "scan statistics by institution and day",
    },
    tables=tables.TABLES,
)
