"""The endpoint table and path-segment encoding."""

from __future__ import annotations

import pytest

from instasent_async._core.endpoints import OPERATIONS, encode_segment


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("USER-1", "USER-1"),
        ("+34600000000", "%2B34600000000"),
        ("a/b", "a%2Fb"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("x?y=1", "x%3Fy%3D1"),
        ("x#frag", "x%23frag"),
        ("a b", "a%20b"),
        ("100%", "100%25"),
        ("me@example.com", "me@example.com"),
        ("a:b", "a:b"),
        (42, "42"),
    ],
)
def test_segments_are_encoded_so_they_cannot_change_the_path(raw: object, encoded: str) -> None:
    assert encode_segment(raw, "id") == encoded


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_ids_are_refused_with_the_argument_name(bad: str) -> None:
    with pytest.raises(ValueError, match="user_id must not be empty"):
        encode_segment(bad, "user_id")


@pytest.mark.parametrize("bad", [None, 1.5, True, b"x"])
def test_non_string_ids_are_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="audience_id must be a string"):
        encode_segment(bad, "audience_id")


def test_table_covers_every_operation_of_the_reference() -> None:
    # 44 Product operations, with the optional-utmTerm variants (#43, #44) as
    # separate rows; #21-#29 double as the Ingest API operations I1-I7.
    assert len(OPERATIONS) == 46
    paths = {(op.method, op.path) for op in OPERATIONS.values()}
    assert len(paths) == 46


def test_rate_classes_follow_the_design_decisions() -> None:
    search = {n for n, op in OPERATIONS.items() if op.rate_class == "search"}
    assert search == {
        "audience.search",
        "events.search",
        "audience.search_by_phone",
        "audience.search_by_email",
    }
    scroll = {n for n, op in OPERATIONS.items() if op.rate_class == "scroll"}
    assert scroll == {"audience.scroll", "audience.segment_scroll", "events.scroll"}
    assert OPERATIONS["datasource.events.add"].rate_class == "POST stream/events"
    assert OPERATIONS["datasource.contacts.delete"].rate_class == "DELETE stream/contacts/{user_id}"
    assert all(op.datasource for n, op in OPERATIONS.items() if n.startswith("datasource."))


def test_only_unsafe_operations_are_marked_non_idempotent() -> None:
    unsafe = {n for n, op in OPERATIONS.items() if not op.idempotent}
    assert unsafe == {"sms.send_direct", "sms.send_direct_utm", "datasource.events.add"}


def test_render_fills_placeholders_in_order() -> None:
    op = OPERATIONS["sms.list_by_campaign"]
    assert op.params == ("project", "campaign_id", "option_idx")
    assert op.render("p", "c%2F1", "0") == "/project/p/channel/sms/sms/campaign/c%2F1/0"
