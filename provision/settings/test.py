"""Test settings: only overrides. The database comes from TEST_DATABASE_URL when set (PostgreSQL run)."""

import os

os.environ.setdefault("DEBUG", "false")
# DEBUG=false refuses placeholder secrets (provision.env.check_secret): the tests run with random-looking
# ones, as production would.
os.environ.setdefault("SECRET", "q8Vh2LxT0mN5sR9bW3kJ7cF1yP6dG4zA-eU2iO8tY5rE3wQ7nM0lK9jH6gD1sA4fB")
os.environ.setdefault("AGGREGATOR_CLIENT_ID", "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b")
os.environ.setdefault("AGGREGATOR_SECRET_KEY", "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw=")
os.environ.setdefault("SANDBOX_WEBHOOK_SECRET", "HJEM8uYCSP1MPbmhrEY4wHubNbPL8OW4xO66RtRzyhE")
os.environ.setdefault("AGGREGATOR_BASE_URL", "http://127.0.0.1:9")
os.environ.setdefault("CURRENCIES", "NGN,KES")
os.environ.setdefault("BALANCE_REPORT_DELAY", "0")  # reports at once: tests read them right after a change
if os.environ.get("TEST_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]
else:
    os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/provision-test.sqlite3")
os.environ["PROVISION_READ_DOTENV"] = "0"

from provision.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
LOGGING["root"] = {**LOGGING["root"], "level": "WARNING"}  # type: ignore[dict-item]  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405  (whitenoise warns when it is missing)
