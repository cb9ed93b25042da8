"""Admin login with a second factor: staff who can change anything pass a TOTP code (or a recovery code)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.models import Order, OrderStatus
from orders.tests.test_admin import held_order
from provision.testing import totp_code

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password"
VERIFY = "/admin/two-factor/verify/"
SETUP = "/admin/two-factor/"


def staff_user(username: str, *roles: str, superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(username=username, password=PASSWORD)
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.groups.add(*Group.objects.filter(name__in=roles))
    return user


def password_login(username: str, next_url: str = "/admin/") -> Client:
    client = Client()
    response = client.post(f"/admin/login/?next={next_url}", {"username": username, "password": PASSWORD})
    assert (response.status_code, response["Location"]) == (302, next_url)
    return client


def enrolled(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def next_step_code(device: TOTPDevice) -> str:
    """A code the device has not accepted yet (a device takes each 30 s step once)."""
    device.refresh_from_db()
    now = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).t()
    return totp_code(device, step=max(now, device.last_t + 1))


@pytest.mark.parametrize(("username", "roles", "superuser"), [("pat", ("payer",), False), ("root", (), True)])
def test_a_password_alone_reaches_only_the_code_page(
    username: str, roles: tuple[str], superuser: bool
) -> None:
    user = staff_user(username, *roles, superuser=superuser)
    enrolled(user)
    order = held_order()
    client = password_login(username)

    index = client.get("/admin/", follow=True)
    orders = client.get("/admin/orders/order/")
    pay = client.post(
        "/admin/orders/order/", {"action": "approve_payouts", "index": "0", "_selected_action": [order.pk]}
    )
    transition = client.get(f"/admin/orders/order/{order.pk}/do/approve_payouts/")

    assert index.redirect_chain[-1][0] == f"{VERIFY}?next=%2Fadmin%2F"
    assert b"Enter the code your authenticator app shows" in index.content
    assert [r.status_code for r in (orders, pay, transition)] == [302, 302, 302]
    assert all(r["Location"].startswith("/admin/login/") for r in (orders, pay, transition))
    order.refresh_from_db()
    assert order.status == OrderStatus.HELD


def test_the_code_from_the_authenticator_lets_the_payer_in_and_pay(
    django_capture_on_commit_callbacks: Any,
) -> None:
    user = staff_user("pat", "payer")
    device = enrolled(user)
    order = held_order()
    client = password_login("pat", "/admin/orders/order/")

    verified = client.post(f"{VERIFY}?next=/admin/orders/order/", {"code": totp_code(device)})
    with django_capture_on_commit_callbacks(execute=True):
        paid = client.post(
            "/admin/orders/order/",
            {"action": "approve_payouts", "index": "0", "_selected_action": [order.pk], "apply": "Confirm"},
            follow=True,
        )

    assert (verified.status_code, verified["Location"]) == (302, "/admin/orders/order/")
    assert b"Started payout of 1 order(s)." in paid.content
    assert Order.objects.get(pk=order.pk).status != OrderStatus.HELD


def test_a_wrong_or_replayed_code_is_refused() -> None:
    user = staff_user("pat", "payer")
    device = enrolled(user)
    code = totp_code(device)
    first = password_login("pat")
    first.post(VERIFY, {"code": code})
    second = password_login("pat")

    wrong = second.post(VERIFY, {"code": "000000" if code != "000000" else "111111"})
    replayed = second.post(VERIFY, {"code": code})

    assert wrong.status_code == 200
    assert b"That code is not right" in wrong.content
    assert replayed.status_code == 200
    assert second.get("/admin/orders/order/").status_code == 302


def test_a_viewer_logs_in_with_a_password_alone() -> None:
    staff_user("vera", "viewer")
    client = password_login("vera")

    assert client.get("/admin/orders/order/").status_code == 200


def test_with_the_setting_off_a_password_alone_lets_a_payer_in(settings: Any) -> None:
    settings.ADMIN_TWO_FACTOR_REQUIRED = False
    staff_user("pat", "payer")
    client = password_login("pat")

    assert client.get("/admin/orders/order/").status_code == 200


def test_first_login_enrols_an_authenticator_and_shows_recovery_codes_once() -> None:
    user = staff_user("otto", "operator")
    client = password_login("otto")

    page = client.get("/admin/", follow=True)
    key = re.search(r'<code id="two-factor-key">([A-Z2-7 ]+)</code>', page.content.decode())
    device = TOTPDevice.objects.get(user=user)
    confirmed = client.post(SETUP, {"action": "confirm", "code": totp_code(device), "next": "/admin/"})
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", confirmed.content.decode())
    later = client.get(SETUP)

    assert page.redirect_chain[-1][0] == f"{SETUP}?next=%2Fadmin%2F"
    assert b"<svg" in page.content
    assert f"otpauth://totp/Provision%20node%3Aotto?secret={device.config_url.split('secret=')[1]}" in (
        page.content.decode().replace("&amp;", "&")
    )
    assert key is not None
    assert key.group(1).replace(" ", "").encode() == base64.b32encode(device.bin_key)
    assert len(codes) == 10
    assert client.get("/admin/orders/order/").status_code == 200
    assert b"Recovery codes left: <b>10</b>" in later.content
    assert not any(code.encode() in later.content for code in codes)


def test_a_wrong_code_does_not_confirm_an_enrolment() -> None:
    user = staff_user("otto", "operator")
    client = password_login("otto")
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=user)
    wrong = "000000" if totp_code(device) != "000000" else "111111"

    response = client.post(SETUP, {"action": "confirm", "code": wrong})

    assert b"That code is not right" in response.content
    assert TOTPDevice.objects.get(user=user).confirmed is False
    assert client.get("/admin/orders/order/").status_code == 302


def test_a_recovery_code_lets_in_once_and_says_how_many_are_left() -> None:
    user = staff_user("pat", "payer")
    enrolled(user)
    verified = password_login("pat")
    verified.post(VERIFY, {"code": next_step_code(TOTPDevice.objects.get(user=user))})
    codes = re.findall(
        r"<li><code>([a-z2-7]+)</code></li>",
        verified.post(SETUP, {"action": "recovery_codes"}).content.decode(),
    )

    first = password_login("pat")
    used = first.post(VERIFY, {"code": codes[0].upper()}, follow=True)
    second = password_login("pat")
    again = second.post(VERIFY, {"code": codes[0]})

    assert b"You logged in with a recovery code; 9 left." in used.content
    assert first.get("/admin/orders/order/").status_code == 200
    assert b"That code is not right" in again.content
    assert StaticToken.objects.filter(device__user=user).count() == 9


def test_new_recovery_codes_replace_the_old_ones() -> None:
    user = staff_user("pat", "payer")
    device = enrolled(user)
    client = password_login("pat")
    client.post(VERIFY, {"code": totp_code(device)})
    old = re.findall(
        r"<li><code>([a-z2-7]+)</code></li>",
        client.post(SETUP, {"action": "recovery_codes"}).content.decode(),
    )

    new = re.findall(
        r"<li><code>([a-z2-7]+)</code></li>",
        client.post(SETUP, {"action": "recovery_codes"}).content.decode(),
    )

    assert sorted(StaticToken.objects.filter(device__user=user).values_list("token", flat=True)) == sorted(
        new
    )
    assert not set(old) & set(new)


def test_a_password_alone_cannot_replace_an_enrolled_authenticator() -> None:
    user = staff_user("pat", "payer")
    device = enrolled(user)
    client = password_login("pat")

    replace = client.post(SETUP, {"action": "replace"})
    codes = client.post(SETUP, {"action": "recovery_codes"})

    assert (replace.status_code, replace["Location"]) == (302, f"{VERIFY}?next=%2Fadmin%2F")
    assert (codes.status_code, codes["Location"]) == (302, f"{VERIFY}?next=%2Fadmin%2F")
    assert list(TOTPDevice.objects.filter(user=user)) == [device]
    assert not StaticToken.objects.filter(device__user=user).exists()


def test_replacing_the_authenticator_keeps_the_old_one_until_the_new_one_is_confirmed() -> None:
    user = staff_user("pat", "payer")
    old = enrolled(user)
    client = password_login("pat")
    client.post(VERIFY, {"code": totp_code(old)})

    client.post(SETUP, {"action": "replace"})
    new = TOTPDevice.objects.get(user=user, confirmed=False)
    kept = list(TOTPDevice.objects.filter(user=user, confirmed=True))
    client.post(SETUP, {"action": "confirm", "code": totp_code(new)})

    assert kept == [old]
    assert list(TOTPDevice.objects.filter(user=user)) == [TOTPDevice.objects.get(pk=new.pk)]
    assert TOTPDevice.objects.get(pk=new.pk).confirmed is True


def test_the_code_page_sends_on_only_to_this_site() -> None:
    user = staff_user("pat", "payer")
    device = enrolled(user)
    client = password_login("pat")

    response = client.post(f"{VERIFY}?next=https://evil.example/", {"code": totp_code(device)})

    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_a_pending_user_can_log_out() -> None:
    user = staff_user("pat", "payer")
    enrolled(user)
    client = password_login("pat")

    response = client.post("/admin/two-factor/logout/")

    assert (response.status_code, response["Location"]) == (302, "/admin/login/")
    assert "_auth_user_id" not in client.session


def test_a_recovery_code_does_not_slow_down_the_next_code_from_the_phone() -> None:
    user = staff_user("pat", "payer")
    device = enrolled(user)
    first = password_login("pat")
    first.post(VERIFY, {"code": next_step_code(device)})
    codes = re.findall(
        r"<li><code>([a-z2-7]+)</code></li>",
        first.post(SETUP, {"action": "recovery_codes"}).content.decode(),
    )

    with_recovery_code = password_login("pat").post(VERIFY, {"code": codes[0]})
    with_phone = password_login("pat").post(VERIFY, {"code": next_step_code(device)})

    assert with_recovery_code.status_code == 302
    assert with_phone.status_code == 302
    assert TOTPDevice.objects.get(pk=device.pk).throttling_failure_count == 0


def test_the_session_key_changes_when_the_second_factor_is_passed() -> None:
    user = staff_user("pat", "payer")
    device = enrolled(user)
    client = password_login("pat")
    before = client.session.session_key

    client.post(VERIFY, {"code": totp_code(device)})

    assert client.session.session_key != before
    assert client.get("/admin/orders/order/").status_code == 200
