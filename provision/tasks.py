"""django-q2 jobs of the project shell: notifications (``provision.notify``)."""

from __future__ import annotations

from provision import notify


def notifications_scan() -> int:
    """Every minute: open notifications for what needs a person, then send what is due."""
    return notify.notifications_watch()


def notifications_send() -> int:
    return notify.notifications_send()
