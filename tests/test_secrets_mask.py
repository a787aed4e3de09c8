from __future__ import annotations

import pytest

from meshdoctor.secrets_mask import keep_last, mask_secrets

API_KEY = "0123456789abcdef0123456789abcdef"  # canary: 32 hex
APP_KEY = "fedcba9876543210fedcba9876543210fedcba98"  # canary: 40 hex
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImNhbmFyeSJ9"
    ".eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoiY2FuYXJ5In0"
    ".c2lnbmF0dXJlLWNhbmFyeS1jYW5hcnktY2FuYXJ5"
)


def test_api_key_keeps_last_five_like_the_agent() -> None:
    assert mask_secrets(f"key {API_KEY} used") == "key ***************************bcdef used"


def test_app_key_keeps_last_five() -> None:
    assert mask_secrets(f"app {APP_KEY}") == "app " + "*" * 35 + "dcba98"[-5:]


def test_api_key_in_query_string() -> None:
    line = f'Post "https://app.datadoghq.com/api/v1/series?api_key={API_KEY}": EOF'
    assert mask_secrets(line) == (
        'Post "https://app.datadoghq.com/api/v1/series?api_key=***************************bcdef": EOF'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "DD-API-KEY: abcdefghijklmnopqrstuvwxyz123456",
            "DD-API-KEY: ***************************23456",
        ),
        ("dd-api-key=NotHexButSecret99", "dd-api-key=" + "*" * 12 + "ret99"),
        ("dd_api_key: shortkey", "dd_api_key: ********"),
        (
            "url?apikey=ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ&x=1",
            "url?apikey=***************************ZZZZZ&x=1",
        ),
        (
            '"app_key": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"',
            '"app_key": "' + "*" * 35 + 'JKLMN"',
        ),
        (
            "application_key=0000000000000000000000000000000000000001",
            "application_key=" + "*" * 35 + "00001",
        ),
    ],
)
def test_hinted_values_are_masked_whatever_their_form(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


def test_bearer_token_of_64_hex_keeps_last_five() -> None:
    token = "a" * 59 + "12345"
    assert mask_secrets(f"Authorization: Bearer {token}") == ("Authorization: Bearer " + "*" * 59 + "12345")


@pytest.mark.parametrize("prefix", ["Authorization: Bearer ", "bearer ", "Bearer  "])
def test_other_bearer_tokens_are_masked_whole(prefix: str) -> None:
    assert mask_secrets(f"{prefix}{JWT} rest") == f"{prefix}******** rest"


def test_service_account_jwt_anywhere_is_masked() -> None:
    assert mask_secrets(f"token={JWT}") == "token=********"
    assert mask_secrets(f'{{"token": "{JWT}"}}') == '{"token": "********"}'


def test_canaries_never_survive() -> None:
    text = f"api_key={API_KEY} {APP_KEY} Authorization: Bearer {JWT} DD-API-KEY: {API_KEY} {JWT}"
    masked = mask_secrets(text)
    for canary in (API_KEY, APP_KEY, JWT, JWT.split(".")[2]):
        assert canary not in masked


def test_masking_is_idempotent() -> None:
    text = f"api_key={API_KEY} {APP_KEY} Bearer {JWT} {API_KEY}"
    once = mask_secrets(text)
    assert mask_secrets(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2019-02-18 10:11:12 UTC | CORE | INFO | (pkg/collector/runner/runner.go:327 in work) | Done",
        "Container " + "ab" * 32 + " started tailing",  # 64-hex container id: not a key
        "request 1b2c3d4e-aaaa-bbbb-cccc-0123456789ab",  # uuid
        "api_key=***************************abcde",  # already masked by the agent
        "the intake uses bearer",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert mask_secrets(text) == text


def test_keep_last_masks_short_values_whole() -> None:
    assert keep_last("0123456789") == "********"
    assert keep_last("0123456789a") == "******6789a"


def test_mask_yaml_quotes_a_masked_plain_value_so_the_document_still_parses() -> None:
    import yaml

    from meshdoctor.secrets_mask import mask_yaml

    text = "metadata:\n  annotations:\n    checksum/api_key: " + "a" * 64 + "\n    other: 1\n"
    masked = mask_yaml(text)
    assert "a" * 64 not in masked
    assert yaml.safe_load(masked)["metadata"]["annotations"]["checksum/api_key"].startswith("*")
