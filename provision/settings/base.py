"""Settings for every environment, read from the process environment (see ``.env.example``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from provision.env import (
    BASE_DIR,
    ConfigurationError,
    check_secret,
    parse_amount_map,
    parse_bool,
    parse_cache_url,
    parse_choice,
    parse_currencies,
    parse_database_url,
    parse_decimal,
    parse_email_url,
    parse_int_non_negative,
    parse_list,
    parse_port,
    parse_positive_int,
    parse_rate,
    parse_url,
    parse_url_token,
    setting,
)
from provision.metrics_files import use_container_unique_files
from provision.throttle_rates import parse_rates

# --- Process --------------------------------------------------------------------------------------------
DEBUG = setting("DEBUG", parse_bool, default=False, expected="true or false")
SERVER_HOST = setting("SERVER_HOST", str, default="0.0.0.0", expected="an interface address")  # noqa: S104
SERVER_PORT = setting("SERVER_PORT", parse_port, default=8000, expected="a TCP port number")
LOG_LEVEL = setting(
    "LOG_LEVEL",
    lambda raw: parse_choice("debug", "info", "warning", "error", "critical")(raw).upper(),
    default="INFO",
    expected="debug, info, warning, error or critical",
)

_DEV_SECRET = "dev-only-secret-key-never-use-in-production-0123456789abcdefghijklmnop"  # noqa: S105
SECRET_KEY = setting(
    "SECRET",
    str,
    default=_DEV_SECRET if DEBUG else "",
    expected="a long random string (Django's secret key; required unless DEBUG=true)",
)
if not SECRET_KEY:
    raise ConfigurationError("SECRET is required: expected a long random string (Django's secret key)")

ALLOWED_HOSTS = setting(
    "ALLOWED_HOSTS",
    parse_list,
    default=["*"] if DEBUG else ["localhost", "127.0.0.1"],
    expected="a comma-separated list of host names",
)
# The container's health check and a local metrics scraper call the node by its loopback address, whatever
# public name it serves; a Host header naming loopback gains a caller nothing.
if "*" not in ALLOWED_HOSTS:
    ALLOWED_HOSTS += [host for host in ("localhost", "127.0.0.1", "[::1]") if host not in ALLOWED_HOSTS]
CSRF_TRUSTED_ORIGINS: list[str] = setting(
    "CSRF_TRUSTED_ORIGINS", parse_list, default=[], expected="a comma-separated list of origins"
)

# --- Django ---------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    # Django's admin with the node's admin site (provision.admin_site: the second factor at login).
    "provision.admin_config.ProvisionAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_prometheus",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_fsm_log",
    "provision",  # before django_q: its qcluster command wraps django-q2's (memory shared by the forks)
    "django_q",
    "provision.hooks.HooksConfig",
    "balances",
    "psp",
    "orders",
]

MIDDLEWARE = [
    # Counts and times every request, including the ones refused by the middleware below it.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Binds the correlation id first, so every later log line carries it; writes the access log line.
    "provision.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy from SECURE_CSP (Django 5.2 has no CSP of its own).
    "provision.security_headers.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Marks request.user verified when this session passed the second factor (django-otp).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes requires: turns a locked-out admin login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Admin logins go through django-axes first: it refuses locked-out clients before the password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "provision.urls"
WSGI_APPLICATION = "provision.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "provision" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# SQLite (embedded default) runs in WAL mode with IMMEDIATE transactions: a transaction takes SQLite's
# write lock at BEGIN, so writers queue (SQLite's busy timeout, 20 s) instead of failing with "database is
# locked" halfway through a transaction, and readers never wait for a writer.
_SQLITE_DEFAULT = f"sqlite:///{BASE_DIR / 'var' / 'provision.sqlite3'}"
_database = setting(
    "DATABASE_URL",
    parse_database_url,
    default=parse_database_url(_SQLITE_DEFAULT),
    expected="a database URL such as postgres://user:pass@host:5432/db or sqlite:////abs/path.sqlite3",
)
if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            # Prepared statements kept per connection (Python's default, 128, is ~10 MB over the lane's
            # threads; a statement not kept is prepared again in microseconds).
            "cached_statements": 16,
            "transaction_mode": "IMMEDIATE",
            # cache_size: at most 512 KB of pages per connection (SQLite's default is 2 MB; the operating
            # system caches the file anyway, and every thread of every process has its own connection).
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                "PRAGMA cache_size=-512;"
            ),
        }
    )
    # Connections are kept between requests and tasks, as on PostgreSQL: opening one on SQLite (the schema
    # parsed again, Django's functions registered, the pragmas run) cost more than the rest of a /new_order.
    _database.setdefault("CONN_MAX_AGE", 60)
elif _database["ENGINE"] in {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}:
    _database["ENGINE"] = "django.db.backends.postgresql"
    _database.setdefault("CONN_MAX_AGE", 60)
    _database.setdefault("CONN_HEALTH_CHECKS", True)
else:
    raise ConfigurationError(f"DATABASE_URL uses {_database['ENGINE']}: expected PostgreSQL or SQLite")
DATABASES: dict[str, dict[str, Any]] = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": setting(
        "CACHE_URL",
        parse_cache_url,
        default={"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "provision"},
        expected="a cache URL such as redis://127.0.0.1:6379/0 or locmem://",
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times to the second with the zone named, in every admin list and field (provision/formats/en/formats.py).
FORMAT_MODULE_PATH = ["provision.formats"]

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

DATA_UPLOAD_MAX_MEMORY_SIZE = setting(
    "MAX_BODY_BYTES", parse_positive_int, default=65536, expected="a size in bytes for request bodies"
)
NUM_PROXIES = setting(
    "NUM_PROXIES",
    parse_int_non_negative,
    default=0,
    expected="how many trusted reverse proxies append to X-Forwarded-For in front of the node (0: none)",
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    # One throttle for every API view; the scope comes from THROTTLE_SCOPES (provision.throttling).
    "DEFAULT_THROTTLE_CLASSES": ["provision.throttling.ScopedCacheThrottle"],
    # Client IP for throttling: X-Forwarded-For only counts when NUM_PROXIES trusted proxies add to it.
    "NUM_PROXIES": NUM_PROXIES,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    # The Go aggregator sends no Content-Type: parse JSON whatever the header says (a 415 loses the order).
    "DEFAULT_PARSER_CLASSES": ["provision.parsers.AnyContentJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "provision.parsers.IgnoreClientContentNegotiation",
    "EXCEPTION_HANDLER": "provision.exception_handler.envelope_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}

# --- Aggregator -----------------------------------------------------------------------------------------
_DEV_CLIENT_ID = "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b"
_DEV_AGGREGATOR_SECRET = "dev-aggregator-secret-only-for-debug-and-sandbox="  # noqa: S105
AGGREGATOR_BASE_URL = setting(
    "AGGREGATOR_BASE_URL",
    parse_url,
    default="http://127.0.0.1:8105",
    expected="the aggregator's base URL without /v1/provider, e.g. https://api.example.com",
)
AGGREGATOR_PROVIDER_PATH = setting(
    "AGGREGATOR_PROVIDER_PATH",
    lambda raw: "/" + raw.strip("/"),
    default="/v1/provider",
    expected="the provider API path prefix (the code serves /v1/provider)",
)
AGGREGATOR_CLIENT_ID: str = setting(
    "AGGREGATOR_CLIENT_ID",
    str,
    default=_DEV_CLIENT_ID if DEBUG else "",
    expected="the provider API key id (a UUID) issued by the aggregator",
)
AGGREGATOR_SECRET_KEY: str = setting(
    "AGGREGATOR_SECRET_KEY",
    str,
    default=_DEV_AGGREGATOR_SECRET if DEBUG else "",
    expected="the provider API secret issued by the aggregator",
)
for _name, _value in (
    ("AGGREGATOR_CLIENT_ID", AGGREGATOR_CLIENT_ID),
    ("AGGREGATOR_SECRET_KEY", AGGREGATOR_SECRET_KEY),
):
    if not _value:
        raise ConfigurationError(f"{_name} is required: expected the value issued by the aggregator")
AGGREGATOR_PREVIOUS_SECRET_KEY = setting(
    "AGGREGATOR_PREVIOUS_SECRET_KEY",
    str,
    default="",
    expected="the previous secret, accepted on inbound calls while rotating",
)
AGGREGATOR_CONNECT_TIMEOUT = setting(
    "AGGREGATOR_CONNECT_TIMEOUT", parse_decimal, default=Decimal("3"), expected="seconds"
)
AGGREGATOR_READ_TIMEOUT = setting(
    "AGGREGATOR_READ_TIMEOUT", parse_decimal, default=Decimal("10"), expected="seconds"
)
HMAC_TIMESTAMP_AGE = setting(
    "HMAC_TIMESTAMP_AGE", parse_positive_int, default=300, expected="seconds a signed timestamp stays valid"
)
HMAC_FUTURE_SKEW = setting(
    "HMAC_FUTURE_SKEW", parse_positive_int, default=60, expected="seconds a timestamp may be in the future"
)
OUTBOX_BACKOFF_CAP = setting(
    "OUTBOX_BACKOFF_CAP",
    parse_positive_int,
    default=30,
    expected="the longest wait between outbox retries, seconds",
)
# 1: the balance changes of each second go out as one report. At 0 a busy node sent one on nearly every
# pass of the lane, each an aggregator round trip (steady bench at 21 orders/s: accept p95 1.5 -> 0.45 s).
# The aggregator's own reference node reports every 5 minutes.
BALANCE_REPORT_DELAY = setting(
    "BALANCE_REPORT_DELAY",
    parse_int_non_negative,
    default=1,
    expected="seconds a balance report waits so the changes of that second go out as one report (0: at once)",
)
ORDER_REQUEST_VALIDITY = setting(
    "ORDER_REQUEST_VALIDITY",
    parse_positive_int,
    default=30,
    expected="seconds the aggregator keeps an order request open (30 by default)",
)

# --- Node behaviour -------------------------------------------------------------------------------------
CURRENCIES = setting(
    "CURRENCIES", parse_currencies, default=["NGN"], expected="a comma-separated list of currency codes"
)
PROVISION_MODE = setting(
    "PROVISION_MODE", parse_choice("auto", "manual"), default="auto", expected="auto or manual"
)
MANUAL_POLICY = setting(
    "MANUAL_POLICY", parse_choice("hold", "staff"), default="hold", expected="hold or staff"
)
MANUAL_APPROVAL_TIMEOUT = setting(
    "MANUAL_APPROVAL_TIMEOUT",
    parse_positive_int,
    default=240,
    expected="seconds a held payout waits for staff",
)
MANUAL_REVIEW_ABOVE: dict[str, Decimal] = setting(
    "MANUAL_REVIEW_ABOVE", parse_amount_map, default={}, expected="an amount or CUR:amount list"
)
MIN_ORDER_AMOUNT: dict[str, Decimal] = setting(
    "MIN_ORDER_AMOUNT", parse_amount_map, default={}, expected="an amount or CUR:amount list"
)
MAX_ORDER_AMOUNT: dict[str, Decimal] = setting(
    "MAX_ORDER_AMOUNT", parse_amount_map, default={}, expected="an amount or CUR:amount list"
)
CRITICAL_BALANCE_THRESHOLD: dict[str, Decimal] = setting(
    "CRITICAL_BALANCE_THRESHOLD", parse_amount_map, default={}, expected="an amount or CUR:amount list"
)
ORDER_POLL_INTERVAL = setting("ORDER_POLL_INTERVAL", parse_positive_int, default=30, expected="seconds")
PSP_STATUS_CHECK_INTERVAL = setting(
    "PSP_STATUS_CHECK_INTERVAL", parse_positive_int, default=10, expected="seconds"
)
BALANCE_SYNC_INTERVAL = setting("BALANCE_SYNC_INTERVAL", parse_positive_int, default=300, expected="seconds")
NODE_VERSION = "0.1.0"

# --- PSPs -----------------------------------------------------------------------------------------------
# Every PSP adapter the node has: its name -> the function that builds it from settings. A new PSP adds
# its line here, its settings block below, and its adapter module in psp/.
PSP_ADAPTERS = {
    "sandbox": "psp.sandbox.build_adapter",
    "lenco": "psp.clients.lenco.build_adapter",
    "mtn_momo": "psp.clients.mtn_momo.build_adapter",
    "paystack": "psp.clients.paystack.build_adapter",
    "airtel": "psp.clients.airtel.build_adapter",
    "mpesa": "psp.clients.mpesa.build_adapter",
}
PSP = setting(
    "PSP",
    lambda raw: [parse_choice(*PSP_ADAPTERS)(name) for name in parse_list(raw)],
    default=["sandbox"],
    expected=f"a comma-separated list of {', '.join(PSP_ADAPTERS)}, tried in this order when unrouted",
)
if not PSP:
    raise ConfigurationError(f"PSP is required: expected at least one of {', '.join(PSP_ADAPTERS)}")
SANDBOX_BALANCES = setting(
    "SANDBOX_BALANCES",
    parse_amount_map,
    default={"NGN": Decimal("50000000"), "KES": Decimal("2000000"), "GHS": Decimal("1000000")},
    expected="CUR:amount list, e.g. NGN:50000000,KES:2000000",
)
SANDBOX_LATENCY_SECONDS = setting(
    "SANDBOX_LATENCY_SECONDS",
    parse_int_non_negative,
    default=0,
    expected="seconds before a sandbox payout completes",
)
SANDBOX_FAILURE_RATE = setting(
    "SANDBOX_FAILURE_RATE", parse_rate, default=Decimal("0"), expected="a share of payouts to fail, 0 to 1"
)
SANDBOX_WEBHOOK_URL = setting(
    "SANDBOX_WEBHOOK_URL",
    parse_url,
    default="",
    expected="where the sandbox posts its webhooks (empty: none)",
)
SANDBOX_WEBHOOK_SECRET = setting(
    "SANDBOX_WEBHOOK_SECRET",
    str,
    default="sandbox-webhook-secret",
    expected="the sandbox webhook signing key",
)
WEBHOOK_RETENTION_DAYS = setting(
    "WEBHOOK_RETENTION_DAYS",
    parse_positive_int,
    default=90,
    expected="days a stored PSP webhook is kept before the hourly purge deletes it",
)
WEBHOOK_REFUSED_RETENTION_DAYS = setting(
    "WEBHOOK_REFUSED_RETENTION_DAYS",
    parse_positive_int,
    default=7,
    expected="days a stored sample of a refused (badly signed) webhook is kept",
)
WEBHOOK_REFUSED_SAMPLE_PER_HOUR = setting(
    "WEBHOOK_REFUSED_SAMPLE_PER_HOUR",
    parse_int_non_negative,
    default=20,
    expected="refused webhooks stored per PSP and clock hour as a sample (all are counted; 0: none stored)",
)
PAYOUT_NAME_CHECK = setting(
    "PAYOUT_NAME_CHECK",
    parse_choice("off", "warn", "hold"),
    default="off",
    expected="off, warn or hold: resolve the account name before paying and compare it",
)
PAYOUT_PENDING_REVIEW_AFTER = setting(
    "PAYOUT_PENDING_REVIEW_AFTER",
    parse_positive_int,
    default=7200,
    expected="seconds a payout may stay pending at its PSP before its order goes to staff review",
)
PSP_BREAKER_FAILURES = setting(
    "PSP_BREAKER_FAILURES",
    parse_positive_int,
    default=5,
    expected="consecutive retryable failures that open a circuit",
)
PSP_BREAKER_COOLDOWN = setting(
    "PSP_BREAKER_COOLDOWN",
    parse_positive_int,
    default=60,
    expected="seconds an open circuit waits before a probe",
)
MAKER_CHECKER_ABOVE: dict[str, Decimal] = setting(
    "MAKER_CHECKER_ABOVE",
    parse_amount_map,
    default={},
    expected="an amount or CUR:amount list above which a payout needs a second staff user",
)
LENCO_BASE_URL = setting(
    "LENCO_BASE_URL", parse_url, default="https://api.lenco.co/access/v1", expected="a URL"
)
LENCO_V2_BASE_URL = setting(
    "LENCO_V2_BASE_URL", parse_url, default="https://api.lenco.co/access/v2", expected="a URL"
)
LENCO_API_KEY = setting("LENCO_API_KEY", str, default="", expected="the Lenco API token")
LENCO_ACCOUNT_ID = setting("LENCO_ACCOUNT_ID", str, default="", expected="the Lenco account id to debit")
LENCO_TIMEOUT_SECONDS = setting(
    "LENCO_TIMEOUT_SECONDS", parse_decimal, default=Decimal("15"), expected="seconds"
)
MTN_MOMO_BASE_URL = setting(
    "MTN_MOMO_BASE_URL", parse_url, default="https://sandbox.momodeveloper.mtn.com", expected="a URL"
)
MTN_MOMO_SUBSCRIPTION_KEY = setting(
    "MTN_MOMO_SUBSCRIPTION_KEY", str, default="", expected="the subscription key"
)
MTN_MOMO_API_USER = setting("MTN_MOMO_API_USER", str, default="", expected="the API user (a UUID)")
MTN_MOMO_API_KEY = setting("MTN_MOMO_API_KEY", str, default="", expected="the API key")
MTN_MOMO_TARGET_ENVIRONMENT = setting(
    "MTN_MOMO_TARGET_ENVIRONMENT", str, default="sandbox", expected="sandbox or the country environment"
)
MTN_MOMO_CURRENCY = setting(
    "MTN_MOMO_CURRENCY", str, default="", expected="the wire currency (EUR in the sandbox)"
)
MTN_MOMO_CALLBACK_HOST = setting(
    "MTN_MOMO_CALLBACK_HOST", str, default="", expected="the public callback host"
)
MTN_MOMO_TIMEOUT_SECONDS = setting(
    "MTN_MOMO_TIMEOUT_SECONDS", parse_decimal, default=Decimal("15"), expected="seconds"
)
PAYSTACK_BASE_URL = setting(
    "PAYSTACK_BASE_URL", parse_url, default="https://api.paystack.co", expected="a URL"
)
PAYSTACK_SECRET_KEY = setting(
    "PAYSTACK_SECRET_KEY", str, default="", expected="the Paystack secret key (sk_live_… or sk_test_…)"
)
PAYSTACK_TIMEOUT_SECONDS = setting(
    "PAYSTACK_TIMEOUT_SECONDS", parse_decimal, default=Decimal("15"), expected="seconds"
)


def _country_map(parse_value: Any) -> Any:
    """``"value"`` (every country) or ``"UG=value,KE=value"``; ``*`` is the fallback key (Airtel's
    per-country settings). A value may contain ``=`` (base64): only a two-letter or ``*`` key is a key."""

    def parse(raw: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for item in parse_list(raw):
            key, separator, value = item.partition("=")
            key = key.strip().upper()
            if not separator or not (key == "*" or (len(key) == 2 and key.isascii() and key.isalpha())):
                key, value = "*", item
            result[key] = parse_value(value.strip())
        return result

    return parse


def _countries(raw: str) -> list[str]:
    codes = [code.upper() for code in parse_list(raw)]
    for code in codes:
        if not (len(code) == 2 and code.isascii() and code.isalpha()):
            raise ValueError(f"{code!r} is not a two-letter country code")
    return codes


def _bounded_int(low: int, high: int) -> Any:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


_RSA_PADDINGS = ("pkcs1v15", "oaep-sha1", "oaep-sha256", "oaep-sha256-mgf1-sha1")
AIRTEL_BASE_URL: dict[str, str] = setting(
    "AIRTEL_BASE_URL",
    _country_map(parse_url),
    default={"*": "https://openapi.airtel.africa"},
    expected="a URL, or CC=URL list (e.g. https://openapi.airtel.africa,ZM=https://openapi.airtel.co.zm)",
)
AIRTEL_CLIENT_ID = setting("AIRTEL_CLIENT_ID", str, default="", expected="the Airtel application's client_id")
AIRTEL_CLIENT_SECRET = setting(
    "AIRTEL_CLIENT_SECRET", str, default="", expected="the Airtel application's client_secret"
)
AIRTEL_COUNTRIES = setting(
    "AIRTEL_COUNTRIES",
    _countries,
    default=["KE", "UG", "TZ", "MW"],
    expected="a comma-separated list of country codes (X-Country), e.g. UG,KE",
)
AIRTEL_PIN: dict[str, str] = setting(
    "AIRTEL_PIN",
    _country_map(str),
    default={},
    expected="the disbursement PIN, or a CC=PIN list",
)
AIRTEL_PIN_ENCRYPTION: dict[str, str] = setting(
    "AIRTEL_PIN_ENCRYPTION",
    _country_map(parse_choice(*_RSA_PADDINGS)),
    default={"*": "pkcs1v15"},
    expected=f"{', '.join(_RSA_PADDINGS)}, or a CC=padding list",
)
AIRTEL_PIN_PUBLIC_KEY: dict[str, str] = setting(
    "AIRTEL_PIN_PUBLIC_KEY",
    _country_map(str),
    default={},
    expected="Airtel's RSA public key (base64 DER), or a CC=key list; empty: fetched from Airtel",
)
AIRTEL_SIGNING: dict[str, str] = setting(
    "AIRTEL_SIGNING",
    _country_map(parse_choice("off", *_RSA_PADDINGS)),
    default={"*": "off"},
    expected=f"off or the x-key padding ({', '.join(_RSA_PADDINGS)}), or a CC=value list",
)
AIRTEL_SIGNING_PUBLIC_KEY: dict[str, str] = setting(
    "AIRTEL_SIGNING_PUBLIC_KEY",
    _country_map(str),
    default={},
    expected="Airtel's RSA public key for x-key (base64 DER), or a CC=key list; empty: fetched from Airtel",
)
AIRTEL_DISBURSEMENT_VERSION: dict[str, str] = setting(
    "AIRTEL_DISBURSEMENT_VERSION",
    _country_map(parse_choice("v1", "v2", "v3")),
    default={"*": "v2"},
    expected="v1, v2 or v3, or a CC=version list",
)
AIRTEL_MSISDN_LENGTH: dict[str, int] = setting(
    "AIRTEL_MSISDN_LENGTH",
    _country_map(_bounded_int(6, 15)),
    default={"*": 9},
    expected="digits of a national number without country code or leading 0, or a CC=digits list",
)
AIRTEL_MSISDN_LEADING_ZERO: list[str] = setting(
    "AIRTEL_MSISDN_LEADING_ZERO",
    _countries,
    default=[],
    expected="a comma-separated list of country codes whose MSISDN is sent as 0XXXXXXXXX",
)
AIRTEL_AMOUNT_DECIMALS: dict[str, int] = setting(
    "AIRTEL_AMOUNT_DECIMALS",
    _country_map(_bounded_int(0, 3)),
    default={"*": 0},
    expected="0 to 3, or a CC=decimals list",
)
AIRTEL_BALANCE: dict[str, str] = setting(
    "AIRTEL_BALANCE",
    _country_map(parse_choice("v1", "v2", "off")),
    default={"*": "v1"},
    expected="v1, v2 (type=DISB) or off, or a CC=value list",
)
AIRTEL_CALLBACK_SECRET = setting(
    "AIRTEL_CALLBACK_SECRET",
    str,
    default="",
    expected="the callback authentication key from Airtel's portal (empty: callbacks unauthenticated)",
)
AIRTEL_TIMEOUT_SECONDS = setting(
    "AIRTEL_TIMEOUT_SECONDS", parse_decimal, default=Decimal("20"), expected="seconds"
)
if "airtel" in PSP:
    for _country in AIRTEL_COUNTRIES:
        if not (AIRTEL_PIN.get(_country) or AIRTEL_PIN.get("*")):
            raise ConfigurationError(f"AIRTEL_PIN has no PIN for {_country} (AIRTEL_COUNTRIES)")
        if not (AIRTEL_BASE_URL.get(_country) or AIRTEL_BASE_URL.get("*")):
            raise ConfigurationError(f"AIRTEL_BASE_URL has no URL for {_country} (AIRTEL_COUNTRIES)")
MPESA_BASE_URL = setting(
    "MPESA_BASE_URL", parse_url, default="https://sandbox.safaricom.co.ke", expected="a URL"
)
MPESA_CONSUMER_KEY = setting("MPESA_CONSUMER_KEY", str, default="", expected="the Daraja app's consumer key")
MPESA_CONSUMER_SECRET = setting(
    "MPESA_CONSUMER_SECRET", str, default="", expected="the Daraja app's consumer secret"
)
MPESA_SHORTCODE = setting("MPESA_SHORTCODE", str, default="", expected="the B2C shortcode (PartyA)")
MPESA_INITIATOR_NAME = setting(
    "MPESA_INITIATOR_NAME", str, default="", expected="the API operator's user name"
)
MPESA_INITIATOR_PASSWORD = setting(
    "MPESA_INITIATOR_PASSWORD", str, default="", expected="the API operator's password"
)
MPESA_CERTIFICATE_PATH = setting(
    "MPESA_CERTIFICATE_PATH", str, default="", expected="the path of Safaricom's certificate (PEM or DER)"
)
MPESA_SECURITY_CREDENTIAL = setting(
    "MPESA_SECURITY_CREDENTIAL", str, default="", expected="the encrypted initiator password (base64)"
)
MPESA_CALLBACK_BASE_URL = setting(
    "MPESA_CALLBACK_BASE_URL", parse_url, default="", expected="the node's public base URL"
)
MPESA_CALLBACK_TOKEN = setting(
    "MPESA_CALLBACK_TOKEN",
    parse_url_token,
    default="",
    expected="at least 32 random characters of A-Z a-z 0-9 _ -",
)
MPESA_TIMEOUT_SECONDS = setting(
    "MPESA_TIMEOUT_SECONDS", parse_decimal, default=Decimal("15"), expected="seconds"
)
MPESA_MIN_AMOUNT = setting("MPESA_MIN_AMOUNT", parse_decimal, default=Decimal("10"), expected="KES")
MPESA_MAX_AMOUNT = setting("MPESA_MAX_AMOUNT", parse_decimal, default=Decimal("250000"), expected="KES")
MPESA_BALANCE_WAIT_SECONDS = setting(
    "MPESA_BALANCE_WAIT_SECONDS",
    parse_decimal,
    default=Decimal("10"),
    expected="seconds a balance read waits for its result callback",
)
for _psp, _required in (
    ("lenco", ("LENCO_API_KEY",)),
    ("paystack", ("PAYSTACK_SECRET_KEY",)),
    ("mtn_momo", ("MTN_MOMO_SUBSCRIPTION_KEY", "MTN_MOMO_API_USER", "MTN_MOMO_API_KEY")),
    ("airtel", ("AIRTEL_CLIENT_ID", "AIRTEL_CLIENT_SECRET")),
    (
        "mpesa",
        (
            "MPESA_CONSUMER_KEY",
            "MPESA_CONSUMER_SECRET",
            "MPESA_SHORTCODE",
            "MPESA_INITIATOR_NAME",
            "MPESA_CALLBACK_BASE_URL",
            "MPESA_CALLBACK_TOKEN",
        ),
    ),
):
    if _psp in PSP:
        for _name in _required:
            if not globals()[_name]:
                raise ConfigurationError(f"{_name} is required because PSP includes {_psp}")
if "mpesa" in PSP and not MPESA_SECURITY_CREDENTIAL:
    # The credential is the initiator password encrypted with Safaricom's certificate: give it ready-made,
    # or give the password and the certificate and the node encrypts it.
    if not MPESA_INITIATOR_PASSWORD or not MPESA_CERTIFICATE_PATH:
        raise ConfigurationError(
            "MPESA_SECURITY_CREDENTIAL is required because PSP includes mpesa "
            "(or MPESA_INITIATOR_PASSWORD and MPESA_CERTIFICATE_PATH)"
        )
    if not Path(MPESA_CERTIFICATE_PATH).is_file():
        raise ConfigurationError(f"MPESA_CERTIFICATE_PATH={MPESA_CERTIFICATE_PATH!r} is not a readable file")
if MPESA_MIN_AMOUNT > MPESA_MAX_AMOUNT:
    raise ConfigurationError("MPESA_MIN_AMOUNT is above MPESA_MAX_AMOUNT")

# --- Worker (django-q2, ORM broker: nothing else has to run) ----------------------------------------------
Q_CLUSTER = {
    "name": "provision",
    # The ORM broker: the queue is a table of the node's own database, so a task queued inside a
    # transaction is committed with it (provision.queue) and nothing else needs to run.
    "orm": "default",
    # 1: offers, payouts and deliveries run in the lane's threads (orders.payout_lane); tasks here are the
    # timers and the webhooks' bookkeeping, none of them waiting on the network for long.
    "workers": setting(
        "WORKER_PROCESSES", parse_positive_int, default=1, expected="a number of worker processes"
    ),
    "timeout": 60,
    "retry": 90,
    "max_attempts": 3,
    "poll": 0.2,
    "catch_up": False,
    "ack_failures": True,
    # Keep every result (0): django-q2's own pruning (a positive limit) reads and locks all stored results on
    # every save. Successful results older than TASK_RESULTS_MAX_AGE are purged hourly instead
    # (orders.tasks.purge_task_results); failures stay until staff delete them.
    "save_limit": 0,
    "label": "Worker tasks",
}
# 64: the product's 10 payouts/s through a PSP that takes 2.5 s per call needs ~30 calls in flight (a send
# and a read per payout), ~50 when reads are as slow as sends (docs/operations.md, "Sizing the payout
# lane"). Threads are started only when that many calls are in flight at once.
PAYOUT_LANE_THREADS = setting(
    "PAYOUT_LANE_THREADS",
    parse_positive_int,
    default=64,
    expected="how many PSP calls the payout lane makes at once",
)
# 8: accepts in flight at once. Accept capacity is about these threads ÷ (the aggregator's round trip +
# ~30 ms of the node's own work): 35 offers/s at a 0.2 s round trip (docs/operations.md, "Sizing the
# accept lane").
ACCEPT_LANE_THREADS = setting(
    "ACCEPT_LANE_THREADS",
    parse_positive_int,
    default=8,
    expected="how many offers the lane decides and accepts at once",
)
PAYOUT_LANE_POLL = setting(
    "PAYOUT_LANE_POLL",
    parse_decimal,
    default=Decimal("0.2"),
    expected="seconds the payout lane waits between looks for due work when idle",
)
PAYOUT_LANE_HEARTBEAT_MAX_AGE = setting(
    "PAYOUT_LANE_HEARTBEAT_MAX_AGE",
    parse_positive_int,
    default=60,
    expected="seconds since the payout lane's last heartbeat before readiness fails",
)

# --- Logging (provision.logging: structlog JSON lines with the correlation id, redacted) -----------------
LOG_FORMAT = setting(
    "LOG_FORMAT",
    parse_choice("json", "console"),
    default="console" if DEBUG else "json",
    expected="json (one JSON object per line) or console (readable, for development)",
)
_QUIET = "WARNING" if LOG_LEVEL == "INFO" else LOG_LEVEL
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"structured": {"()": "provision.logging.build_formatter", "fmt": LOG_FORMAT}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # django-q2 adds its own plain-text handler unless the logger already has one.
        "django-q": {"handlers": ["console"], "level": _QUIET, "propagate": False},
        # Axes logs every admin login attempt at INFO; lock-outs are warnings.
        "axes": {"level": _QUIET},
    },
}

# --- Metrics and health -----------------------------------------------------------------------------------
# Before any metric exists: multiprocess files named per container, so web and worker can share a
# PROMETHEUS_MULTIPROC_DIR volume (provision.metrics_files).
use_container_unique_files()
METRICS_TOKEN: str = setting(
    "METRICS_TOKEN",
    str,
    default="",
    expected="a bearer token GET /metrics requires (empty: see METRICS_ALLOW_UNAUTHENTICATED)",
)
# Without a token, loopback is trusted only by choice: behind a reverse proxy on the same host every client
# arrives from loopback. Development (DEBUG) trusts it by default so `make run` can be scraped as is.
METRICS_ALLOW_UNAUTHENTICATED = setting(
    "METRICS_ALLOW_UNAUTHENTICATED",
    parse_choice("off", "loopback"),
    default="loopback" if DEBUG else "off",
    expected="off (without METRICS_TOKEN /metrics refuses everyone) or loopback (serves loopback clients)",
)
# The sweep schedule runs every max(1, ORDER_POLL_INTERVAL // 60) minutes; three missed runs is a dead worker.
WORKER_HEARTBEAT_MAX_AGE = setting(
    "WORKER_HEARTBEAT_MAX_AGE",
    parse_positive_int,
    default=3 * 60 * max(1, ORDER_POLL_INTERVAL // 60),
    expected="seconds since the worker last finished a task before /health/ready fails",
)

# --- Notifications (provision.notify) ---------------------------------------------------------------------
# Events that need a person go to email and/or a Slack-compatible chat webhook, each once, from the worker.
ADMIN_BASE_URL = setting(
    "ADMIN_BASE_URL",
    parse_url,
    default="http://127.0.0.1:8000",
    expected="the URL staff reach this node at (links in notifications), e.g. https://node.example.com",
)
NOTIFY_EMAIL_TO: list[str] = setting(
    "NOTIFY_EMAIL_TO", parse_list, default=[], expected="comma-separated addresses (empty: no email)"
)
DEFAULT_FROM_EMAIL = setting(
    "NOTIFY_EMAIL_FROM", str, default="provision-node@localhost", expected="the From address of notifications"
)
_email = setting(
    "EMAIL_URL",
    parse_email_url,
    default=parse_email_url("smtp://127.0.0.1:25"),
    expected="an email URL such as smtp+tls://user:password@smtp.example.com:587 or consolemail://",
)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "127.0.0.1"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT = 10
NOTIFY_CHAT_WEBHOOK_URL = setting(
    "NOTIFY_CHAT_WEBHOOK_URL",
    parse_url,
    default="",
    expected='a Slack-compatible incoming webhook URL (JSON {"text": ...}; empty: no chat)',
)
NOTIFY_RATE_LIMIT = setting(
    "NOTIFY_RATE_LIMIT",
    parse_positive_int,
    default=30,
    expected="messages per hour; beyond it the rest of a batch goes out as one digest",
)
NOTIFY_OUTBOX_BACKLOG_AFTER = setting(
    "NOTIFY_OUTBOX_BACKLOG_AFTER",
    parse_positive_int,
    default=300,
    expected="seconds a call to the aggregator may wait before the outbox counts as backing up",
)

# --- Secrets: outside DEBUG, no placeholder and nothing short ------------------------------------------
# `manage.py check --deploy` does not look at the node's own secrets, and a node started from .env.example
# (AGGREGATOR_SECRET_KEY=change-me) or with the sandbox's published webhook key would run with secrets
# anyone can read. Development (DEBUG=true) keeps its defaults, so `make run` needs no credentials.
if not DEBUG:
    _RANDOM = "random characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    _KNOWN = frozenset({_DEV_SECRET, _DEV_AGGREGATOR_SECRET, "sandbox-webhook-secret"})
    _secrets: list[tuple[str, str, int, str]] = [
        ("SECRET", SECRET_KEY, 50, "50+ random characters (Django's secret key)"),
        (
            "AGGREGATOR_SECRET_KEY",
            AGGREGATOR_SECRET_KEY,
            32,
            "the secret the aggregator issued (44 characters)",
        ),
    ]
    if AGGREGATOR_PREVIOUS_SECRET_KEY:
        _secrets.append(
            (
                "AGGREGATOR_PREVIOUS_SECRET_KEY",
                AGGREGATOR_PREVIOUS_SECRET_KEY,
                32,
                "the previous aggregator secret",
            )
        )
    if "sandbox" in PSP:
        _secrets.append(("SANDBOX_WEBHOOK_SECRET", SANDBOX_WEBHOOK_SECRET, 32, _RANDOM))
    if METRICS_TOKEN:
        _secrets.append(("METRICS_TOKEN", METRICS_TOKEN, 32, _RANDOM))
    if "lenco" in PSP:
        _secrets.append(("LENCO_API_KEY", LENCO_API_KEY, 16, "the API token Lenco issued"))
    if "mtn_momo" in PSP:
        _secrets += [
            ("MTN_MOMO_SUBSCRIPTION_KEY", MTN_MOMO_SUBSCRIPTION_KEY, 16, "the subscription key MTN issued"),
            ("MTN_MOMO_API_KEY", MTN_MOMO_API_KEY, 16, "the API key MTN issued"),
        ]
    if "paystack" in PSP:
        _secrets.append(("PAYSTACK_SECRET_KEY", PAYSTACK_SECRET_KEY, 16, "the secret key Paystack issued"))
    if "airtel" in PSP:
        _secrets.append(("AIRTEL_CLIENT_SECRET", AIRTEL_CLIENT_SECRET, 16, "the client secret Airtel issued"))
    if "mpesa" in PSP:
        _secrets.append(
            ("MPESA_CONSUMER_SECRET", MPESA_CONSUMER_SECRET, 16, "the consumer secret Daraja issued")
        )
    for _name, _value, _min_length, _expected in _secrets:
        check_secret(_name, _value, min_length=_min_length, expected=_expected, placeholders=_KNOWN)

# --- Rate limits (provision.throttling) -------------------------------------------------------------------
# Per client: the aggregator's client id on signed endpoints, the client IP elsewhere; fixed windows.
# The aggregator-facing defaults sit at or above the aggregator's own ceiling (500 req/s per API key,
# i.e. 30000/min) so the node is never the tighter side: a /new_order burst of the whole minute's budget
# passes, and /tx_status (one call per processing order every 32 s) is refused only beyond ~16000
# orders in flight. See docs/configuration.md.
DEFAULT_THROTTLE_RATES = {
    "new_order": "30000/min",
    "orders": "30000/min",
    "tx_status": "30000/min",
    "verify_account": "6000/min",
    "webhooks": "6000/min",
    "public": "600/min",
    "health": "600/min",
    # A scrape reads the database (a dozen GROUP BYs); Prometheus asks every 15 s. An authenticated
    # scraper has its own budget, anonymous callers share their IP's.
    "metrics": "60/min",
    # People and tools read the API description now and then; the docs page renders the whole schema.
    "api_docs": "60/min",
    "default": "6000/min",
}
_NO_RATE_OVERRIDES: dict[str, str] = {}
THROTTLE_RATES = {
    **DEFAULT_THROTTLE_RATES,
    **setting(
        "THROTTLE_RATES",
        parse_rates,
        default=_NO_RATE_OVERRIDES,
        expected="scope=rate pairs, e.g. new_order=30000/min,webhooks=off (rate: <n>/<s|min|hour|day>)",
    ),
}
# The scope of each API view, by URL name, so views need no throttle_scope attribute.
THROTTLE_SCOPES = {
    "new-order": "new_order",
    "seed-orders": "orders",
    "tx-status": "tx_status",
    "verify-account": "verify_account",
    "psp-webhook": "webhooks",
    "psp-callback": "webhooks",
    "mpesa-callback": "webhooks",
    "info": "public",
    "api-schema": "api_docs",
    "api-docs": "api_docs",
    "metrics": "metrics",
    "health": "health",
    "health-live": "health",
    "health-ready": "health",
}

# --- HTTP security ----------------------------------------------------------------------------------------
# Sent on every answer (these are Django's defaults, stated so a change is a visible decision).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

HTTPS_ONLY = setting(
    "HTTPS_ONLY",
    parse_bool,
    default=False,
    expected="true when the node is reached over HTTPS only (redirect, HSTS, secure cookies)",
)
TRUST_X_FORWARDED_PROTO = setting(
    "TRUST_X_FORWARDED_PROTO",
    parse_bool,
    default=False,
    expected="true when a TLS-terminating proxy in front sets X-Forwarded-Proto (and strips the client's)",
)
if TRUST_X_FORWARDED_PROTO:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SESSION_COOKIE_SECURE = setting(
        "SESSION_COOKIE_SECURE", parse_bool, default=True, expected="true or false"
    )
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if HTTPS_ONLY:
    SECURE_SSL_REDIRECT = True
    # Probes and the metrics scraper talk plain HTTP on the local network (a redirect would fail them).
    SECURE_REDIRECT_EXEMPT = [r"^health(/|$)", r"^metrics$"]
    SECURE_HSTS_SECONDS = setting(
        "HSTS_SECONDS",
        parse_positive_int,
        default=31536000,
        expected="seconds browsers remember to use HTTPS only (Strict-Transport-Security max-age)",
    )
    SECURE_HSTS_INCLUDE_SUBDOMAINS = setting(
        "HSTS_INCLUDE_SUBDOMAINS", parse_bool, default=True, expected="true or false"
    )
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Content-Security-Policy: everything from the node itself, no inline script or style (the admin and the
# API docs page need neither), no plugins, never framed. On unless DEBUG (Django's debug error page is
# inline script and style); with HTTPS_ONLY, browsers also load any http:// reference over HTTPS.
SECURE_CSP: dict[str, list[str]] = (
    {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        **({"upgrade-insecure-requests": []} if HTTPS_ONLY else {}),
    }
    if HTTPS_ONLY or not DEBUG
    else {}
)

SILENCED_SYSTEM_CHECKS = [
    # HSTS preload is a one-way submission of the whole domain to the browsers' built-in lists: the
    # operator of the domain decides it, not a service running on one host name of it.
    "security.W021",
]

# --- Admin login throttling (django-axes) -----------------------------------------------------------------
AXES_FAILURE_LIMIT = setting(
    "ADMIN_LOGIN_FAILURE_LIMIT",
    parse_positive_int,
    default=5,
    expected="failed admin logins (per user name and client IP) before a lock-out",
)
AXES_COOLOFF_TIME = timedelta(
    minutes=setting(
        "ADMIN_LOGIN_COOLOFF_MINUTES",
        parse_positive_int,
        default=15,
        expected="minutes a locked-out user name and IP must wait",
    )
)
# Lock the (user name, IP) pair: an attacker elsewhere cannot lock staff out of their own account.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# And lock an IP that fails this often over any user names (password spraying): provision.login_lockout.
ADMIN_LOGIN_IP_FAILURE_LIMIT = setting(
    "ADMIN_LOGIN_IP_FAILURE_LIMIT",
    parse_positive_int,
    default=20,
    expected="failed admin logins from one client IP, over all user names, before that IP is locked out",
)
AXES_HANDLER = "provision.login_lockout.LoginLockoutHandler"

# --- Admin second factor (django-otp; provision.two_factor) -----------------------------------------------
# Staff who can change anything (any permission beyond view_*) and superusers, and anyone who enrolled a
# device, log in with a TOTP code or a recovery code after their password. On unless DEBUG.
ADMIN_TWO_FACTOR_REQUIRED = setting(
    "ADMIN_TWO_FACTOR_REQUIRED",
    parse_bool,
    default=not DEBUG,
    expected="true or false: staff who can change anything need a TOTP code at admin login",
)
OTP_TOTP_ISSUER = "Provision node"
# Nobody, not even a superuser, reads another user's TOTP key or recovery codes in admin.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "provision.throttling.client_ip"

# --- OpenAPI (drf-spectacular; the view descriptions live in provision.openapi) ---------------------------
SPECTACULAR_SETTINGS = {
    "TITLE": "Provision node API",
    "DESCRIPTION": (
        "What the aggregator calls on the node (the Paycrest provider-node contract: /new_order, "
        "/orders, /tx_status, /verify_account, /info, /health) and where PSPs post their webhooks. "
        "Every answer is the envelope {status, message, data}; amounts are decimal strings."
    ),
    "VERSION": NODE_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "POSTPROCESSING_HOOKS": ["provision.openapi.postprocess"],
    "TAGS": [
        {"name": "aggregator", "description": "Called by the aggregator."},
        {"name": "webhooks", "description": "Posted by payment service providers."},
        {"name": "health", "description": "Probes."},
    ],
}
