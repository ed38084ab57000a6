"""List endpoints with the generic query filter; direct SMS and every SMS listing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import pytest

from instasent_async.testing import FakeInstasent

if TYPE_CHECKING:
    from tests.fake.conftest import Client

P = "/project/proj_demo"


SMS = P + "/channel/sms/sms"


def _add_campaigns(fake: FakeInstasent) -> None:
    fake.add_project("proj_c")
    for index, status in enumerate(["draft", "sent", "sent", "scheduled", "sent"], start=1):
        fake.add_campaign(
            "proj_c", index, f"Campaign {index}", status, campaign_at=f"2024-0{index}-01"
        )


async def test_campaign_list_filters_pages_and_sorts(fake: FakeInstasent, api: Client) -> None:
    _add_campaigns(fake)

    async def ids(params: dict[str, str]) -> list[object]:
        reply = await api.get("/project/proj_c/campaign", params=params)
        assert reply.status == 200, reply.json
        return [c["id"] for c in reply.entities]

    assert await ids({"status_eq": "sent", "_sort": "campaignAt:-"}) == [5, 3, 2]
    assert await ids({"status_in": "draft,scheduled"}) == [1, 4]
    assert await ids({"id_gte": "3", "_sort": "id"}) == [3, 4, 5]
    assert await ids({"_sort": "id:-", "_start": "1", "_limit": "2"}) == [4, 3]
    assert await ids({"_q": 'status in ["draft","sent"]', "id_lt": "3"}) == [1, 2]
    q = {"filter": [{"field": "status", "operator": "eq", "value": "scheduled"}]}
    assert await ids({"_q": orjson.dumps(q).decode()}) == [4]
    campaign = await api.get("/project/proj_c/campaign/3")
    assert campaign.entity == {
        "id": 3,
        "title": "Campaign 3",
        "campaignAt": "2024-03-01",
        "status": "sent",
    }


@pytest.mark.parametrize(
    "params",
    [{"_start": "0"}, {"_start": "0", "_limit": "500"}, {"_q": "{bad"}, {"_bogus": "1"}],
)
async def test_malformed_list_filters_are_400(api: Client, params: dict[str, str]) -> None:
    reply = await api.get(P + "/campaign", params=params)
    assert (reply.status, reply.json["message"]) == (400, "Invalid query filter")


async def test_automations_senders_and_segments(fake: FakeInstasent, api: Client) -> None:
    fake.add_automation("proj_demo", 7, "Cart reminder", "paused")
    active = await api.get(P + "/automation", params={"status_eq": "active"})
    assert [a["id"] for a in active.entities] == ["aut_demo"]
    assert (await api.get(P + "/automation/7")).entity["status"] == "paused"
    fake.add_sender("proj_demo", 2, "SHOP", "inactive")
    senders = await api.get(P + "/channel/sms/sender", params={"_sort": "from"})
    assert [(s["id"], s["from"]) for s in senders.entities] == [
        ("snd_demo", "Instasent"),
        (2, "SHOP"),
    ]
    fake.add_segment("proj_demo", "seg_s", "Static")
    fake.add_segment("proj_demo", "seg_d", "Dynamic", dynamic=True)
    fake.add_segment("proj_demo", "seg_p", "Param", dynamic=True, requires_parameter=True)
    listed = await api.get(P + "/segment", params={"type_eq": "dynamic", "_sort": "uid"})
    assert [s["uid"] for s in listed.entities] == ["seg_d", "seg_p"]
    dynamic = await api.get(P + "/segment/dynamic")
    assert [s["uid"] for s in dynamic.entities] == ["seg_d"]
    one = await api.get(P + "/segment/seg_p", params={"parameter": "val1|val2"})
    assert one.entity == {
        "uid": "seg_p",
        "name": "Param",
        "type": "dynamic",
        "requiresParameter": True,
        "parameter": "val1|val2",
    }
    with pytest.raises(ValueError, match="invalid segment query"):
        fake.add_segment("proj_demo", "seg_bad", "Bad", query={"root": {"type": "nope"}})


async def test_direct_sms_to_a_phone_and_to_an_audience_contact(
    fake: FakeInstasent, api: Client
) -> None:
    await api.upsert({"_user_id": "u1", "_phone_mobile": "+34600000002"})
    audience_id = fake.contacts()[0]["id"]
    to_phone = await api.post(SMS + "/direct/default/%2B34600000001", {"text": "Hello"})
    assert to_phone.status == 201
    sms = to_phone.entity
    assert (sms["to"], sms["from"], sms["text"], sms["status"]) == (
        "+34600000001",
        "Instasent",
        "Hello",
        "enqueued",
    )
    assert sms["utmTerm"] is None
    assert "audienceId" not in sms
    assert sms["createdAt"].endswith("Z")
    to_contact = await api.post(
        SMS + f"/direct/snd_demo/{audience_id}/spring-promo",
        {"text": "Hola 👋", "allowUnicode": True},
    )
    assert to_contact.status == 201
    assert to_contact.entity["to"] == "+34600000002"
    assert to_contact.entity["audienceId"] == audience_id
    assert to_contact.entity["utmTerm"] == "spring-promo"
    assert to_contact.entity["encoding"] == "UCS-2"
    # A phone that belongs to a contact is linked to it.
    linked = await api.post(SMS + "/direct/default/%2B34600000002", {"text": "x"})
    assert linked.entity["audienceId"] == audience_id
    assert [s["id"] for s in fake.sent_sms()] == [
        sms["id"],
        to_contact.entity["id"],
        linked.entity["id"],
    ]
    got = await api.get(SMS + "/" + sms["id"])
    assert got.entity == sms


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/direct/nope/%2B34600000001", {"text": "x"}, 404),
        ("/direct/default/%2B34600000001", {"text": "  "}, 400),
        ("/direct/default/%2B34600000001", {}, 400),
        ("/direct/default/%2B34600000001", {"text": "x", "allowUnicode": "yes"}, 400),
        ("/direct/default/34600000001", {"text": "x"}, 400),
        ("/direct/default/%2B346", {"text": "x"}, 400),
        ("/direct/default/aud_unknown", {"text": "x"}, 404),
        ("/direct/default/%2B34600000001/" + "u" * 41, {"text": "x"}, 400),
        ("/direct/snd_off/%2B34600000001", {"text": "x"}, 400),
    ],
)
async def test_direct_sms_validation(
    fake: FakeInstasent, api: Client, path: str, body: object, status: int
) -> None:
    fake.add_sender("proj_demo", "snd_off", "OFF", "inactive")
    reply = await api.post(SMS + path, body)
    assert reply.status == status
    assert "message" in reply.json
    assert fake.sent_sms() == []


async def test_a_contact_without_a_phone_cannot_get_an_sms(
    fake: FakeInstasent, api: Client
) -> None:
    await api.upsert({"_user_id": "u1"})
    audience_id = fake.contacts()[0]["id"]
    reply = await api.post(SMS + f"/direct/default/{audience_id}", {"text": "x"})
    assert reply.status == 400


async def test_every_sms_listing(fake: FakeInstasent, api: Client) -> None:
    await api.upsert({"_user_id": "u1", "_phone_mobile": "+34600000009"})
    audience_id = fake.contacts()[0]["id"]
    direct = (await api.post(SMS + f"/direct/default/{audience_id}/promo", {"text": "a"})).entity
    plain = (await api.post(SMS + "/direct/default/%2B34600000001", {"text": "b"})).entity
    campaign = fake.add_sms("proj_demo", to="+34600000009", text="c", campaign_id="cmp_demo")
    option = fake.add_sms(
        "proj_demo", to="+34600000003", text="d", campaign_id="cmp_demo", option_idx=1
    )
    automation = fake.add_sms(
        "proj_demo", to="+34600000003", text="e", automation_id="aut_demo", message_idx=2
    )

    async def ids(path: str, **params: str) -> list[str]:
        reply = await api.get(SMS + path, params=params or None)
        assert reply.status == 200, (path, reply.json)
        return [s["id"] for s in reply.entities]

    assert await ids("/direct") == [direct["id"], plain["id"]]
    assert await ids("/direct/promo") == [direct["id"]]
    assert await ids("/audience/" + audience_id) == [direct["id"], campaign["id"]]
    assert await ids("/audience/%2B34600000003") == [option["id"], automation["id"]]
    assert await ids("/send/" + plain["sendId"]) == [plain["id"]]
    assert await ids("/campaign/cmp_demo") == [campaign["id"]]
    assert await ids("/campaign/cmp_demo/1") == [option["id"]]
    assert await ids("/automation/aut_demo/2") == [automation["id"]]
    assert await ids("/automation/aut_demo") == []
    assert await ids("/direct", _sort="text:-", _start="0", _limit="1") == [plain["id"]]
    assert await ids("/audience/%2B34600000003", text_eq="e") == [automation["id"]]
    for path, status in (
        ("/audience/600000003", 400),
        ("/audience/aud_unknown", 404),
        ("/send/send_unknown", 404),
        ("/campaign/999/0", 404),
        ("/campaign/cmp_demo/x", 400),
        ("/automation/999/0", 404),
        ("/direct/" + "t" * 41, 400),
    ):
        assert (await api.get(SMS + path)).status == status, path
