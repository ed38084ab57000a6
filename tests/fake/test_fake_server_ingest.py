"""Ingest through the datasource stream: upsert, dedup, per-item outcomes, validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from instasent_async.testing import FakeInstasent

if TYPE_CHECKING:
    from tests.fake.conftest import Client

P = "/project/proj_demo"
DS = P + "/datasource/ds_demo"
OTHER_DS = P + "/datasource/ds_other"


async def test_contacts_upsert_by_user_id_and_keep_their_audience_id(
    fake: FakeInstasent, api: Client
) -> None:
    first = await api.upsert({"_user_id": "u1", "_email": "a@b.co", "plan": "free"})
    assert first.status == 202
    assert first.entity == {
        "successful": 1,
        "failed": 0,
        "items": [{"status": "success", "_user_id": "u1"}],
    }
    [created] = fake.contacts()
    assert created["id"].startswith("aud_")
    await api.upsert({"_user_id": "u1", "plan": "pro", "_first_name": "Ana"})
    [updated] = fake.contacts()
    assert updated["id"] == created["id"]
    assert updated["plan"] == "pro"
    assert updated["_email"] == "a@b.co"
    assert updated["_first_name"] == "Ana"
    assert (await api.get(P + "/audience/" + created["id"])).entity["plan"] == "pro"


async def test_events_dedup_by_event_id_per_datasource(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    reply = await api.add_events(event("e1"), event("e2"), event("e1"))
    assert reply.status == 202
    assert [item["status"] for item in reply.entity["items"]] == ["success"] * 3
    assert [item["_event_id"] for item in reply.entity["items"]] == ["e1", "e2", "e1"]
    again = await api.add_events(event("e2"), event("e3"))
    assert again.entity["successful"] == 2
    assert [e["_event_id"] for e in fake.events()] == ["e1", "e2", "e3"]
    await api.add_events(event("e1"), datasource=OTHER_DS)
    assert [e["datasourceId"] for e in fake.events()] == ["ds_demo"] * 3 + ["ds_other"]


async def test_stored_events_have_read_side_keys(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    await api.upsert({"_user_id": "u1"})
    params = {"order-euro-amount": 12.5}
    item = event("o1", event_type="ecommerce_order_create", _event_parameters=params)
    item["_event_date"] = "2024-10-28T00:10:02.471Z"
    await api.add_events(item, event("o2"))
    dated, undated = fake.events()
    assert dated["event-type"] == dated["_event_type"] == "ecommerce_order_create"
    assert dated["created-at"] == "2024-10-28T00:10:02.471Z"
    assert dated["parameters"] == params
    assert dated["audienceId"] == fake.contacts()[0]["id"]
    assert dated["id"].startswith("evt_")
    assert undated["created-at"].endswith("Z")  # defaults to now
    assert undated["parameters"] == {}


async def test_partial_success_is_202_and_all_failed_is_422(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    partial = await api.upsert(
        {"_user_id": "ok"}, {"_user_id": ""}, {"_user_id": "x", "_email": "bad"}
    )
    assert partial.status == 202
    assert partial.entity["successful"] == 1
    assert partial.entity["failed"] == 2
    assert partial.entity["items"][1] == {
        "status": "error",
        "_user_id": "",
        "errors": {"_user_id": ["This value should not be blank."]},
    }
    assert partial.entity["items"][2]["errors"] == {"_email": ["Invalid format"]}
    failed = await api.add_events({"_user_id": "u1"}, event("e1", _event_date="yesterday"))
    assert failed.status == 422
    errors = [item["errors"] for item in failed.entity["items"]]
    assert set(errors[0]) == {"_event_id", "_event_type"}
    assert set(errors[1]) == {"_event_date"}
    assert [c["_user_id"] for c in fake.contacts()] == ["ok"]
    assert fake.events() == []


async def test_activepieces_batch_shape(fake: FakeInstasent, api: Client) -> None:
    fake.batch_shape = "activepieces"
    reply = await api.upsert({"_user_id": "ok"}, {"_email": "x@y.z"})
    assert reply.status == 202
    body = reply.json
    assert body["success"] is False
    assert body["entitiesSuccess"] == 1
    assert body["accepted"] == [{"position": 0, "item": {"_user_id": "ok"}}]
    assert body["errors"] == [
        {
            "position": 1,
            "item": {"_email": "x@y.z"},
            "errors": {"_user_id": ["This value should not be blank."]},
        }
    ]
    assert (body["projectId"], body["datasourceId"]) == ("proj_demo", "ds_demo")
    assert body["streamId"]
    failed = await api.add_events({"_user_id": "u1"})
    assert failed.status == 422
    assert failed.json["entitiesSuccess"] == 0
    assert failed.json["accepted"] == []


async def test_constructor_selects_the_batch_shape() -> None:
    with pytest.raises(ValueError, match="batch_shape"):
        FakeInstasent(batch_shape="other")  # type: ignore[arg-type]
    assert FakeInstasent(batch_shape="activepieces").batch_shape == "activepieces"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"_user_id": "u1"}, "Body should be an array"),
        ("u1", "Body should be an array"),
        ([], "Body should contain at least one item"),
        ([{"_user_id": f"u{i}"} for i in range(101)], "Body should contain at most 100 items"),
        ([{"_user_id": "u1"}, "u2"], "Every item of the body should be an object"),
    ],
)
async def test_malformed_batches_are_400(
    fake: FakeInstasent, api: Client, body: Any, message: str
) -> None:
    reply = await api.post(DS + "/stream/contacts", body)
    assert reply.status == 400
    assert reply.json["message"].startswith(message)
    assert fake.contacts() == []


async def test_a_body_that_is_not_json_is_400(api: Client) -> None:
    reply = await api.call("POST", DS + "/stream/events", data=b"[{", json=None)
    assert reply.status == 400
    assert reply.json == {"message": "Body should be an array"}


async def test_exactly_100_items_are_accepted(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    reply = await api.add_events(*(event(f"e{i}") for i in range(100)))
    assert reply.status == 202
    assert len(fake.events()) == 100


async def test_dry_run_validates_and_stores_nothing(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    reply = await api.post(DS + "/stream/contacts", [{"_user_id": "u1"}, {}], params="_dryRun")
    assert reply.status == 202
    assert reply.entity["failed"] == 1
    assert fake.contacts() == []
    dry = await api.post(DS + "/stream/events", [event("e1")], params="_dryRun")
    assert dry.status == 202
    synced = await api.post(DS + "/stream/events", [event("e1")], params="_sync&_dryRun")
    assert synced.status == 202 and fake.events() == []
    await api.post(DS + "/stream/events", [event("e1")], params="_sync")
    assert len(fake.events()) == 1  # the dry run did not mark e1 as seen


@pytest.mark.parametrize("query", ["_dryRun=1", "_dryRun=true", "_sync=", "_sync=true"])
async def test_stream_flags_with_a_value_are_refused(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]], query: str
) -> None:
    reply = await api.post(DS + "/stream/events", [event("e1")], params=query)
    assert reply.status == 400
    assert "bare flag" in reply.json["message"]
    assert fake.events() == []


async def test_event_dates_with_more_than_three_fraction_digits_are_rejected(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    reply = await api.add_events(
        event("e1", _event_date="2024-05-01T10:20:30.123Z"),
        event("e2", _event_date="2024-05-01T10:20:30.123456Z"),
        event("e3", _event_date="2024-05-01T10:20:30Z"),
    )
    assert reply.status == 202
    errors = [item.get("errors") for item in reply.entity["items"]]
    assert errors[0] is None and errors[2] is None
    assert "3 fraction digits" in errors[1]["_event_date"][0]
    assert [e["_event_id"] for e in fake.events()] == ["e1", "e3"]


async def test_reject_items_hook_adds_per_field_errors(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    def no_odd_ids(item: dict[str, Any]) -> dict[str, list[str]] | None:
        if item.get("_user_id", "").endswith(("1", "3")):
            return {"_user_id": ["Rejected by the test"]}
        return None

    fake.reject_items(no_odd_ids)
    reply = await api.upsert({"_user_id": "u1"}, {"_user_id": "u2"}, {"_user_id": "u3"})
    assert [item["status"] for item in reply.entity["items"]] == ["error", "success", "error"]
    assert reply.entity["items"][0]["errors"] == {"_user_id": ["Rejected by the test"]}
    events_reply = await api.add_events(event("e1", user_id="u3"), event("e2", user_id="u4"))
    assert events_reply.entity["successful"] == 1
    fake.reject_items(None)
    assert (await api.upsert({"_user_id": "u1"})).entity["successful"] == 1


async def test_datasource_contact_get_and_delete(fake: FakeInstasent, api: Client) -> None:
    await api.upsert({"_user_id": "user/1", "plan": "pro"})
    await api.upsert({"_user_id": "u2"}, datasource=OTHER_DS)
    path = DS + "/stream/contacts/user%2F1"
    reply = await api.get(path, token=fake.datasource_token)
    assert reply.entity["plan"] == "pro"
    assert (await api.get(DS + "/stream/contacts/u2")).status == 404  # other datasource
    deleted = await api.call("DELETE", path, token=fake.datasource_token)
    assert (deleted.status, deleted.body) == (204, b"")
    assert [c["_user_id"] for c in fake.contacts()] == ["u2"]
    assert (await api.call("DELETE", path)).status == 404


async def test_stream_info_stats_and_specs(
    fake: FakeInstasent, api: Client, event: Callable[..., dict[str, Any]]
) -> None:
    await api.upsert({"_user_id": "u1"}, {"_user_id": "u2"})
    await api.add_events(event("e1"))
    info = (await api.get(P + "/datasource/dsapi/stream", token=fake.datasource_token)).json
    assert set(info) >= {"organization", "project", "datasource", "stream", "usage"}
    assert info["datasource"]["id"] == "ds_demo"
    assert info["usage"] == {"contacts": 2, "events": 1}
    stats = (await api.get(DS + "/stats")).entity
    assert (stats["contacts"], stats["events"]) == (2, 1)
    attributes = (await api.get(DS + "/stream/specs/attributes")).json["specs"]
    assert {"_user_id", "_email", "_phone_mobile", "_client_tags", "plan"} <= {
        spec["uid"] for spec in attributes
    }
    plan = next(spec for spec in attributes if spec["uid"] == "plan")
    assert plan["custom"] is True
    types = (await api.get(DS + "/stream/specs/events")).json["specs"]
    assert {"ecommerce_order_create", "page_view", "update"} <= {spec["uid"] for spec in types}
    params = await api.get(DS + "/stream/specs/event-parameters/ecommerce_order_create")
    assert "order-euro-amount" in {spec["parameter"] for spec in params.json["specs"]}
    assert (await api.get(DS + "/stream/specs/event-parameters/nope")).status == 404
    assert (await api.get(DS + "/stream/specs/event-parameters")).status == 400
    project_specs = await api.get(P + "/specs/events/page_view")
    assert [spec["parameter"] for spec in project_specs.entities] == ["url"]
