"""One component's options: a dict setting (CACHEOPS_ENGINE, CACHEOPS_FRESHNESS, DASHBOARD, MCP) read over defaults.

The settings convention (the top of jobnimbus_site/settings.py) in code, once for every component: a partial dict
is merged over the component's DEFAULTS (a dict-valued default is merged one level down too), each option is
resolved once per process (requests consult several) and forgotten whenever Django reports a change to the setting,
so `override_settings` and pytest-django's `settings` fixture work. A leaf module, public to every app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed


class Options:
    """Read options of the dict setting `setting`; `options(name)` returns one, `DEFAULTS[name]` when unset."""

    def __init__(self, setting: str, defaults: Mapping[str, Any]) -> None:
        self.setting = setting
        self.defaults = defaults
        self._resolved: dict[str, Any] = {}
        setting_changed.connect(self._forget, weak=False, dispatch_uid=f"cacheops.options:{setting}")

    def __call__(self, name: str) -> Any:
        try:
            return self._resolved[name]
        except KeyError:
            pass
        default = self.defaults[name]
        value = getattr(settings, self.setting, {}).get(name, default)
        if isinstance(default, dict) and isinstance(value, dict):
            value = {**default, **value}
        self._resolved[name] = value
        return value

    def _forget(self, *, setting: str, **_: Any) -> None:
        if setting == self.setting:
            self._resolved.clear()
