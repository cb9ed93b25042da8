"""Who may do what in admin: every action and every custom admin URL, for each staff role.

The table is checked against what admin has registered when the test runs: a new action (in any app, ours
or a third party's) or a new custom admin URL that is not in the table fails the suite, and so does an
action without a permission. "Allowed" and "refused" are what the user gets over HTTP: the changelist
offers the action and runs it, or refuses it; the custom URL answers its page, or refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory
from provision.testing import admin_client

pytestmark = pytest.mark.django_db

ROLES = ("superuser", "no_group", "viewer", "operator", "payer", "settings")
EVERYONE = frozenset(ROLES)
SUPERUSER = frozenset({"superuser"})
OPERATOR = frozenset({"superuser", "operator"})
PAYER = frozenset({"superuser", "payer"})
SETTINGS = frozenset({"superuser", "settings"})
NOBODY: frozenset[str] = frozenset()

# "<app label>.<model>.<action>": the roles that may run it.
ACTIONS = {
    "orders.order.accept_orders": OPERATOR,
    "orders.order.decline_orders": OPERATOR,
    "orders.order.cancel_orders": OPERATOR,
    "orders.order.record_approval": OPERATOR,
    "orders.order.approve_payouts": PAYER,
    "orders.order.mark_paid": PAYER,
    "orders.order.resolve_review": PAYER,
    "orders.order.export_bank_file": PAYER,
    "orders.order.close_reversals": PAYER,
    "orders.outboxmessage.replay": OPERATOR,
    "orders.outboxmessage.abandon": OPERATOR,
    "orders.reviewlistentry.delete_selected": SUPERUSER,
    "balances.balance.book_drift": PAYER,
    "psp.pspcircuit.close_circuits": OPERATOR,
    "psp.institutionmapping.delete_selected": SUPERUSER,
    "psp.psproute.delete_selected": SETTINGS,
    "auth.user.delete_selected": SUPERUSER,
    "auth.group.delete_selected": SUPERUSER,
    "axes.accessattempt.cleanup_expired_attempts": SUPERUSER,
    "axes.accessattempt.delete_selected": SUPERUSER,
    "axes.accesslog.delete_selected": SUPERUSER,
    "axes.accessfailurelog.delete_selected": SUPERUSER,
    "django_q.success.resubmit_tasks": SUPERUSER,
    "django_q.success.delete_selected": SUPERUSER,
    "django_q.failure.resubmit_tasks": SUPERUSER,
    "django_q.failure.delete_selected": SUPERUSER,
    "django_q.schedule.delete_selected": SUPERUSER,
    "django_q.ormq.delete_selected": SUPERUSER,
    "otp_totp.totpdevice.delete_selected": SUPERUSER,
    "otp_static.staticdevice.delete_selected": SUPERUSER,
}
# "<app label>.<model>": the roles the changelist's "Add" object tool works for.
ADD = {
    "orders.reviewlistentry": SUPERUSER,
    "psp.institutionmapping": SUPERUSER,
    "psp.psproute": SETTINGS,
    "auth.user": SUPERUSER,
    "auth.group": SUPERUSER,
    "django_q.schedule": SUPERUSER,
    "otp_totp.totpdevice": SUPERUSER,
    "otp_static.staticdevice": SUPERUSER,
}
# The state an order must be in for each order action to be on offer (the per-order action URL).
ORDER_ACTION_STATE = {
    "accept_orders": OrderStatus.RECEIVED,
    "decline_orders": OrderStatus.RECEIVED,
    "record_approval": OrderStatus.HELD,
    "cancel_orders": OrderStatus.HELD,
    "approve_payouts": OrderStatus.HELD,
    "mark_paid": OrderStatus.HELD,
    "export_bank_file": OrderStatus.HELD,
    "resolve_review": OrderStatus.NEEDS_REVIEW,
    "close_reversals": OrderStatus.REVERSED,
}


def standard_url_names(model: Any) -> set[str | None]:
    prefix = f"{model._meta.app_label}_{model._meta.model_name}"
    return {None} | {f"{prefix}_{view}" for view in ("changelist", "add", "history", "delete", "change")}


def registered() -> list[tuple[str, Any, admin.ModelAdmin]]:
    return [
        (model._meta.label_lower, model, admin.site.get_model_admin(model))
        for model in apps.get_models()
        if admin.site.is_registered(model)
    ]


def enumerated_actions(superuser: User) -> dict[str, Callable[..., Any]]:
    """Every action admin offers anyone (a superuser sees all that any permission can give)."""
    request = RequestFactory().get("/")
    request.user = superuser
    return {
        f"{label}.{name}": action[0]
        for label, _model, model_admin in registered()
        for name, action in model_admin.get_actions(request).items()
        if action is not None
    }


def enumerated_custom_urls() -> set[str]:
    names = {
        f"{label}:{pattern.name}"
        for label, model, model_admin in registered()
        for pattern in model_admin.get_urls()
        if isinstance(pattern, URLPattern) and pattern.name not in standard_url_names(model)
    }
    site_standard = {
        "index",
        "login",
        "logout",
        "password_change",
        "password_change_done",
        "autocomplete",
        "jsi18n",
        "view_on_site",
        "app_list",
        None,
    }
    names |= {
        f"site:{pattern.name}"
        for pattern in admin.site.get_urls()
        if isinstance(pattern, URLPattern) and pattern.name not in site_standard
    }
    return names


@pytest.fixture
def users() -> dict[str, User]:
    made = {
        "superuser": User.objects.create_superuser(username="root", password="pw"),
        "no_group": User.objects.create_user(username="nogroup", password="pw", is_staff=True),
    }
    for role in ("viewer", "operator", "payer", "settings"):
        made[role] = User.objects.create_user(username=role, password="pw", is_staff=True)
        made[role].groups.add(Group.objects.get(name=role))
    return made


@pytest.fixture
def clients(users: dict[str, User]) -> dict[str, Client]:
    return {role: admin_client(user) for role, user in users.items()}


def action_answer(client: Client, label: str, action: str) -> str:
    """Post ``action`` to the changelist on a selection of no existing row, and read the answer: an allowed
    action runs on nothing (a redirect back, or the action's own page); a refused one is turned away (403,
    "No action selected.", or the list itself when the user has no action at all and Django ignores it)."""
    app_label, model_name = label.split(".")
    url = reverse(f"admin:{app_label}_{model_name}_changelist")

    probe = client.post(url, {"action": action, "index": "0", "_selected_action": ["0"]})

    if probe.status_code == 403:
        return "refused"
    if probe.status_code == 302:
        assert probe["Location"] == url, (label, action, probe["Location"])
        back = client.get(url)
        return "refused" if b"No action selected." in back.content else "allowed"
    assert probe.status_code == 200, (label, action, probe.status_code)
    ignored = (probe.templates[0].name or "").endswith("change_list.html")
    return "refused" if ignored else "allowed"


def test_every_admin_action_needs_a_permission_and_is_in_the_table(users: dict[str, User]) -> None:
    actions = enumerated_actions(users["superuser"])

    without_permission = sorted(
        name for name, func in actions.items() if not getattr(func, "allowed_permissions", ())
    )

    assert without_permission == []
    assert sorted(actions) == sorted(ACTIONS), "an admin action is missing from (or stale in) the table"


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_each_role_may_run_exactly_the_admin_actions_of_its_job(
    action: str, clients: dict[str, Client]
) -> None:
    label, name = action.rsplit(".", 1)

    answers = {role: action_answer(clients[role], label, name) for role in ROLES}

    assert answers == {role: "allowed" if role in ACTIONS[action] else "refused" for role in ROLES}


def test_each_role_may_add_only_what_its_job_needs(clients: dict[str, Client]) -> None:
    labels = [label for label, _model, _model_admin in registered()]

    answers = {
        label: {
            role: clients[role].get(reverse("admin:{}_{}_add".format(*label.split(".")))).status_code
            for role in ROLES
        }
        for label in labels
    }

    assert answers == {
        label: {role: 200 if role in ADD.get(label, NOBODY) else 403 for role in ROLES} for label in labels
    }


def order_in(status: str) -> Order:
    order = OrderFactory.create()
    Order.objects.filter(pk=order.pk).update(status=status)
    return order


def test_custom_admin_urls_are_all_in_the_table() -> None:
    assert sorted(enumerated_custom_urls()) == sorted(CUSTOM_URLS)


def import_status(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
    return {
        role: clients[role].get(reverse("admin:orders_order_import_status")).status_code for role in ROLES
    }


def password_change(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
    url = reverse("admin:auth_user_password_change", args=[users["no_group"].pk])
    return {role: clients[role].get(url).status_code for role in ROLES}


def totp_device_page(view: str) -> Callable[[dict[str, Client], dict[str, User]], dict[str, int]]:
    """django-otp's pages of a device's key (its QR code): refused to all, the key stays with its owner."""

    def call(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
        device = TOTPDevice.objects.create(user=users["payer"], name="phone", confirmed=True)
        url = reverse(f"admin:otp_totp_totpdevice_{view}", args=[device.pk])
        return {role: clients[role].get(url).status_code for role in ROLES}

    return call


def two_factor_page(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
    return {role: clients[role].get(reverse("admin:two_factor")).status_code for role in ROLES}


def two_factor_verify_page(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
    """Nobody here has a second factor pending: the code page sends them on."""
    return {role: clients[role].get(reverse("admin:two_factor_verify")).status_code for role in ROLES}


def two_factor_logout(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
    url = reverse("admin:two_factor_logout")
    return {role: admin_client(users[role]).post(url).status_code for role in ROLES}


def staff_page(name: str, **query: str) -> Callable[[dict[str, Client], dict[str, User]], dict[str, int]]:
    """A read-only admin page (issue 19: the exports, the financial report, the balances page)."""

    def call(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
        return {role: clients[role].get(reverse(f"admin:{name}"), query).status_code for role in ROLES}

    return call


# Who sees the records (every staff role) sees their exports, the report and the balances page.
VIEWERS = frozenset({"superuser", "viewer", "operator", "payer"})


def node_pause_toggle(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
    """The Pause/Resume button: operators (and superusers) only; the node ends as it began."""
    url = reverse("admin:provision_nodecontrol_toggle")
    answers = {}
    for role in ROLES:
        answers[role] = clients[role].post(url, {"paused": "1", "reason": "drill"}).status_code
        clients[role].post(url, {"paused": "0"})
    return answers


def order_transition(clients: dict[str, Client], users: dict[str, User]) -> dict[str, int]:
    raise AssertionError("checked per action by test_each_role_may_use_the_per_order_action_urls_of_its_job")


# "<app label>.<model>:<url name>" or "site:<url name>": how to call it and what each role gets.
CUSTOM_URLS: dict[
    str, tuple[Callable[[dict[str, Client], dict[str, User]], dict[str, int]], dict[str, int]]
] = {
    "orders.order:orders_order_import_status": (
        import_status,
        {role: 200 if role in PAYER else 403 for role in ROLES},
    ),
    "orders.order:orders_order_transition": (order_transition, {}),
    "orders.order:orders_order_export": (
        staff_page("orders_order_export", start="2026-01-01", end="2026-12-31"),
        {role: 200 if role in VIEWERS else 403 for role in ROLES},
    ),
    "orders.order:orders_order_report": (
        staff_page("orders_order_report"),
        {role: 200 if role in VIEWERS else 403 for role in ROLES},
    ),
    "psp.transfer:psp_transfer_export": (
        staff_page("psp_transfer_export"),
        {role: 200 if role in VIEWERS else 403 for role in ROLES},
    ),
    "balances.ledgerentry:balances_ledgerentry_export": (
        staff_page("balances_ledgerentry_export", start="2026-01-01", end="2026-01-31"),
        {role: 200 if role in VIEWERS else 403 for role in ROLES},
    ),
    "balances.balance:balances_balance_reconciliation": (
        staff_page("balances_balance_reconciliation"),
        {role: 200 if role in VIEWERS else 403 for role in ROLES},
    ),
    "auth.user:auth_user_password_change": (
        password_change,
        {role: 200 if role in SUPERUSER else 403 for role in ROLES},
    ),
    "otp_totp.totpdevice:otp_totp_totpdevice_config": (
        totp_device_page("config"),
        {role: 403 for role in ROLES},
    ),
    "otp_totp.totpdevice:otp_totp_totpdevice_qrcode": (
        totp_device_page("qrcode"),
        {role: 403 for role in ROLES},
    ),
    "provision.nodecontrol:provision_nodecontrol_toggle": (
        node_pause_toggle,
        {role: 302 if role in OPERATOR else 403 for role in ROLES},
    ),
    "site:two_factor": (two_factor_page, {role: 200 for role in ROLES}),
    "site:two_factor_verify": (two_factor_verify_page, {role: 302 for role in ROLES}),
    "site:two_factor_logout": (two_factor_logout, {role: 302 for role in ROLES}),
}


@pytest.mark.parametrize(
    "name", sorted(name for name in CUSTOM_URLS if name != "orders.order:orders_order_transition")
)
def test_each_role_may_use_the_custom_admin_urls_of_its_job(
    name: str, clients: dict[str, Client], users: dict[str, User]
) -> None:
    call, expected = CUSTOM_URLS[name]

    assert call(clients, users) == expected


@pytest.mark.parametrize("action", sorted(ORDER_ACTION_STATE))
def test_each_role_may_use_the_per_order_action_urls_of_its_job(
    action: str, clients: dict[str, Client], settings: Any
) -> None:
    settings.PROVISION_MODE = "manual"
    settings.MANUAL_POLICY = "staff"
    order = order_in(ORDER_ACTION_STATE[action])
    existing = reverse("admin:orders_order_transition", args=[order.pk, action])
    missing = reverse("admin:orders_order_transition", args=[order.pk + 1000, action])
    changelist = reverse("admin:orders_order_changelist")

    answers = {role: (clients[role].get(existing), clients[role].get(missing)) for role in ROLES}

    for role, (on_existing, on_missing) in answers.items():
        if role in ACTIONS[f"orders.order.{action}"]:
            assert (on_existing.status_code, on_missing.status_code) == (200, 404), (role, action)
        else:
            refused = [(a.status_code, a["Location"]) for a in (on_existing, on_missing)]
            assert refused == [(302, changelist)] * 2, (role, action)
    order.refresh_from_db()
    assert order.status == ORDER_ACTION_STATE[action]


def test_the_per_order_action_urls_cover_every_order_action(users: dict[str, User]) -> None:
    order_actions = {
        name.split(".")[-1]
        for name in enumerated_actions(users["superuser"])
        if name.startswith("orders.order.")
    }

    assert sorted(order_actions) == sorted(ORDER_ACTION_STATE)
