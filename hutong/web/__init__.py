"""The web layer every capability's pages use (see ``docs/web.md``).

- ``render(request, "cap/page.html", {...}, audience="console", title=...)``: a page in an audience's layout
- ``add_templates("cap", folder)``, ``add_assets("cap", folder)``: a capability's own templates and assets
- ``redirect(url, message, request=request)``: Post/Redirect/Get with a flash message
- ``charts``: ECharts options built in Python (``chart``, ``line_chart``, ``bar_chart``, ``pie_chart``, ``jilin_map``)
- ``i18n``: ``gettext`` / ``_`` (zh-CN source strings, English catalog), ``N_`` for tables of strings
- templates: ``{% extends layout %}`` and ``{% import "web/macros.html" as ui with context %}``
"""

from hutong.web.assets import add_assets, asset_url
from hutong.web.i18n import N_, gettext
from hutong.web.render import add_templates, allowed, redirect, render

__all__ = ["render", "add_templates", "add_assets", "asset_url", "redirect", "allowed", "gettext", "N_"]
