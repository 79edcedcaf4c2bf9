"""Settings: a missing or malformed variable stops start-up with a message naming it."""

import pytest

from mailer import create_app
from mailer.settings import Settings, SettingsError

REQUIRED = {
    "MAILER_SECRET_KEY": "settings-test-key-5b7d9f1a3c5e7092-4f6a8c0e2b4d",
    "MAILER_BASE_URL": "https://news.example.com/",
    "MAILER_FROM": "Health Notices <notices@example.com>",
}


def test_reads_required_and_defaults():
    settings = Settings.from_env(REQUIRED)
    assert settings.base_url == "https://news.example.com"
    assert settings.sender_domain == "example.com"
    assert settings.check_deliverability is True  # on by default in production
    assert settings.trusted_proxies == 0
    # Optional now: the console's Site settings page sets it, and nothing is sent without it.
    assert settings.postal_address == ""


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_missing_required_setting_is_named(missing):
    environ = {key: value for key, value in REQUIRED.items() if key != missing}
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(environ)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAILER_SEND_RATE", "fast"),
        ("MAILER_CHECK_DELIVERABILITY", "maybe"),
        ("MAILER_TRUSTED_PROXIES", "-1"),
        ("MAILER_BASE_URL", "news.example.com"),
        ("MAILER_FROM", "not an address"),
        ("MAILER_BRAND_COLOUR", "blue"),
        ("MAILER_DEFAULT_TOPICS", "article,podcast"),
        ("MAILER_HOME_URL", "www.example.com"),
        ("MAILER_DATABASE_URL", "mysql://x"),
        ("MAILER_SMTP_URL", "http://relay"),
        ("MAILER_SIGNUP_LIMIT", "lots"),
        ("MAILER_CAPTCHA_PROVIDER", "recaptcha"),
    ],
)
def test_malformed_setting_is_named(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**REQUIRED, name: value})


def test_create_app_refuses_to_start_without_settings(monkeypatch):
    for key in REQUIRED:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SettingsError, match="MAILER_SECRET_KEY"):
        create_app()
