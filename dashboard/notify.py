"""Alert notifiers: small classes chosen by configuration, each a no-op when unconfigured.

`notify_all` is the one place where delivery failures are handled: each notifier is tried a few times, a failure
is logged, and nothing ever propagates into alert evaluation.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

import requests
from django.core.mail import send_mail

from dashboard.conf import dashboard_setting

if TYPE_CHECKING:
    from dashboard.models import Alert

log = logging.getLogger(__name__)


class Notifier(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver `alert`; raise on failure (the caller retries)."""


def _text(alert: Alert) -> str:
    actions = "\n".join(f"- {a}" for a in alert.actions)
    return f"[{alert.level.upper()}] {alert.rule} ({alert.scope})\n{alert.message}\nSuggested actions:\n{actions}"


class EmailNotifier:
    name = "email"

    def __init__(self, recipients: list[str]) -> None:
        self.recipients = recipients

    def send(self, alert: Alert) -> None:
        """Mail `alert` through Django's mail backend."""
        subject = f"[JobNimbus MCP cache] {alert.level}: {alert.rule} ({alert.scope})"
        send_mail(subject, _text(alert), None, self.recipients, fail_silently=False)


class SlackNotifier:
    name = "slack"

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def send(self, alert: Alert) -> None:
        """Post `alert` to the Slack incoming webhook."""
        response = requests.post(self.url, json={"text": _text(alert)}, timeout=self.timeout_s)
        response.raise_for_status()


def configured_notifiers() -> list[Notifier]:
    """Return the notifiers the settings configure (none when neither ALERT_EMAILS nor SLACK_WEBHOOK_URL is set)."""
    notifiers: list[Notifier] = []
    emails = list(dashboard_setting("ALERT_EMAILS"))
    if emails:
        notifiers.append(EmailNotifier(emails))
    url = str(dashboard_setting("SLACK_WEBHOOK_URL") or "")
    if url:
        notifiers.append(SlackNotifier(url, float(dashboard_setting("NOTIFY_TIMEOUT_S"))))
    return notifiers


def _deliver(notifier: Notifier, alert: Alert) -> bool:
    attempts = max(1, int(dashboard_setting("NOTIFY_ATTEMPTS")))
    backoff = float(dashboard_setting("NOTIFY_BACKOFF_S"))
    for attempt in range(1, attempts + 1):
        try:
            notifier.send(alert)
            return True
        except Exception as exc:  # noqa: BLE001 - any delivery failure is retried, then logged; never raised
            log.warning("alert %s: %s notification attempt %d failed: %s", alert.pk, notifier.name, attempt, exc)
            if attempt < attempts:
                time.sleep(backoff * attempt)
    return False


def notify_all(alert: Alert) -> dict[str, bool]:
    """Send `alert` through every configured notifier; return {notifier: delivered}."""
    return {notifier.name: _deliver(notifier, alert) for notifier in configured_notifiers()}
