"""The one status -> exception mapping, and what errors carry."""

from __future__ import annotations

import datetime as dt

import pytest

from instasent_async import errors
from instasent_async._errors import RateLimitInfo, error_from_response, extract_message


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (422, errors.UnprocessableEntityError),
        (429, errors.RateLimitError),
        (500, errors.ServerError),
        (502, errors.ServerError),
        (503, errors.ServerError),
        (504, errors.ServerError),
        (409, errors.APIStatusError),
    ],
)
def test_every_status_of_the_reference_maps_to_its_class(status: int, cls: type) -> None:
    err = error_from_response(status, {"message": "boom"}, method="GET", path="/project/p")
    assert type(err) is cls
    assert isinstance(err, errors.APIStatusError)
    assert isinstance(err, errors.InstasentError)
    assert err.status == status
    assert err.message == "boom"
    assert err.method == "GET"
    assert err.path == "/project/p"
    assert "boom" in str(err) and str(status) in str(err)


def test_message_is_read_from_message_then_error_then_errors_then_text() -> None:
    assert extract_message({"message": "m", "error": "e"}, "d") == "m"
    assert extract_message({"error": "e", "errors": ["x"]}, "d") == "e"
    assert extract_message({"errors": ["a", "b"]}, "d") == "a; b"
    assert extract_message("plain text body", "d") == "plain text body"
    assert extract_message(None, "default") == "default"
    assert extract_message({"unrelated": 1}, "default") == "default"


def test_forbidden_names_the_required_scope() -> None:
    err = error_from_response(403, {"message": "Forbidden"}, required_scope="PROJECT_DIRECT_WRITE")
    assert isinstance(err, errors.PermissionDeniedError)
    assert err.required_scope == "PROJECT_DIRECT_WRITE"
    assert "PROJECT_DIRECT_WRITE" in str(err)


def test_unprocessable_carries_per_item_errors() -> None:
    body = {
        "entity": {
            "successful": 0,
            "failed": 1,
            "items": [{"status": "error", "_user_id": "u", "errors": {"_email": ["Invalid"]}}],
        }
    }
    err = error_from_response(422, body)
    assert isinstance(err, errors.UnprocessableEntityError)
    assert err.items == [{"status": "error", "_user_id": "u", "errors": {"_email": ["Invalid"]}}]


def test_rate_limit_error_exposes_reset_at() -> None:
    reset = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    info = RateLimitInfo(limit=600, remaining=0, reset_at=reset)
    err = error_from_response(429, None, rate_limit=info)
    assert isinstance(err, errors.RateLimitError)
    assert err.reset_at == reset
    assert err.rate_limit is info
    assert err.message == "Too Many Requests"


def test_every_error_class_is_exported_at_top_level() -> None:
    import instasent_async

    for name in errors.__all__:
        assert getattr(instasent_async, name) is getattr(errors, name)
