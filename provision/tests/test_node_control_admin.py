"""Pausing the node from admin is a permission, like every other change ops make there."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from provision.models import NodeControl

pytestmark = pytest.mark.django_db


def test_staff_without_the_node_control_permissions_cannot_pause_the_node() -> None:
    user = User.objects.create_user(username="nobody", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)

    form = client.get("/admin/provision/nodecontrol/add/")
    posted = client.post(
        "/admin/provision/nodecontrol/add/", {"paused": "on", "paused_reason": "gone fishing"}
    )

    assert (form.status_code, posted.status_code) == (403, 403)
    assert not NodeControl.objects.exists()
