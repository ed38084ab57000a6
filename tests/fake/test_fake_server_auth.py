"""Tokens, kinds and scopes: the fake answers 401/403/404 as the API reference says."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from instasent_async.testing import ALL_SCOPES, FakeInstasent

if TYPE_CHECKING:
    from tests.fake.conftest import Client

P = "/project/proj_demo"
DS = P + "/datasource/ds_demo"
OTHER_DS = P + "/datasource/ds_other"


async def test_missing_unknown_and_revoked_tokens_get_401(fake: FakeInstasent, api: Client) -> None:
    assert (await api.get(P, token=None)).status == 401
    reply = await api.get(P, token="not-a-token")
    assert reply.status == 401
    assert "message" in reply.json
    token = fake.add_token(kind="product")
    assert (await api.get(P, token=token)).status == 200
    fake.revoke_token(token)
    reply = await api.get(P, token=token)
    assert (reply.status, reply.json) == (401, {"message": "Token revoked"})
    assert (await api.post(DS + "/stream/contacts", [], token="nope")).status == 401


async def test_a_token_without_the_operation_scope_gets_403_naming_it(
    fake: FakeInstasent, api: Client
) -> None:
    reader = fake.add_token(kind="product", scopes=["PROJECT_AUDIENCE_READ"])
    reply = await api.post(P + "/audience/scroll", {}, token=reader)
    assert reply.status == 403
    assert reply.json["requiredScope"] == "PROJECT_AUDIENCE_LIST"
    assert "PROJECT_AUDIENCE_LIST" in reply.json["message"]
    assert (await api.post(P + "/audience/search", {}, token=reader)).status == 200
    for path in ("/campaign", "/automation", "/channel/sms/sms/direct"):
        assert (await api.get(P + path, token=reader)).status == 403, path
    send = P + "/channel/sms/sms/direct/default/%2B34600000001"
    assert (await api.post(send, {"text": "hi"}, token=reader)).status == 403
    assert fake.sent_sms() == []
    # Operations without a known scope need none.
    for path in ("", "/specs/attributes", "/segment", "/channel/sms/sender"):
        assert (await api.get(P + path, token=reader)).status == 200, path
    assert (await api.get(DS + "/stream", token=reader)).status == 200


async def test_scope_checks_come_after_visibility(fake: FakeInstasent, api: Client) -> None:
    no_scopes = fake.add_token(kind="product", scopes=[])
    assert (await api.get("/project/proj_nope/campaign", token=no_scopes)).status == 404
    assert (await api.get(P + "/campaign", token=no_scopes)).status == 403


async def test_projects_outside_the_token_reach_are_404(fake: FakeInstasent, api: Client) -> None:
    fake.add_project("proj_b", name="B")
    fake.add_project("proj_foreign", organization="org_foreign")
    scoped = fake.add_token(kind="product", project="proj_b")
    assert (await api.get("/project/proj_b")).status == 200  # org-level token
    assert (await api.get("/project/proj_foreign")).status == 404
    assert (await api.get("/project/proj_b", token=scoped)).status == 200
    assert (await api.get(P, token=scoped)).status == 404
    assert (await api.get("/project/proj_unknown")).status == 404
    organization = (await api.get("/", token=scoped)).entity
    assert [p["uid"] for p in organization["projects"]] == ["proj_b"]
    assert organization["token"]["project"] == "proj_b"


async def test_unknown_resources_and_routes_are_404(api: Client) -> None:
    for path in (
        P + "/audience/aud_missing",
        P + "/audience/user/nobody",
        P + "/segment/seg_missing",
        P + "/campaign/999",
        P + "/automation/999",
        P + "/channel/sms/sms/sms_missing",
        P + "/specs/events/no_such_type",
        P + "/datasource/ds_missing/stream",
        P + "/no/such/route",
    ):
        reply = await api.get(path)
        assert reply.status == 404, path
        assert "message" in reply.json
    reply = await api.call("DELETE", P)
    assert reply.status == 405


async def test_a_datasource_token_reaches_only_its_own_stream(
    fake: FakeInstasent, api: Client
) -> None:
    token = fake.datasource_token
    assert (await api.get(DS + "/stream", token=token)).status == 200
    assert (await api.get(DS + "/stats", token=token)).status == 200
    assert (await api.get(DS + "/stream/specs/attributes", token=token)).status == 200
    assert (await api.get(P + "/datasource/dsapi/stream", token=token)).status == 200
    reply = await api.upsert({"_user_id": "u1"}, datasource=OTHER_DS)
    assert reply.status == 202  # the product token reaches every datasource
    for path in (OTHER_DS + "/stream", OTHER_DS + "/stream/contacts/u1", P, P + "/segment", "/"):
        assert (await api.get(path, token=token)).status == 404, path
    reply = await api.post(OTHER_DS + "/stream/contacts", [{"_user_id": "u2"}], token=token)
    assert reply.status == 404
    assert [c["_user_id"] for c in fake.contacts()] == ["u1"]


async def test_organization_lists_projects_and_funds_only_with_account_read(
    fake: FakeInstasent, api: Client
) -> None:
    entity = (await api.get("/")).entity
    assert entity["organization"]["uid"] == "org_demo"
    assert entity["projects"] == [{"uid": "proj_demo", "id": 1, "name": "Demo project"}]
    assert entity["token"] == {"kind": "product", "scopes": sorted(ALL_SCOPES), "project": None}
    assert "funds" in entity["account"]
    basic = fake.add_token(kind="product", scopes=["PROJECT_AUDIENCE_READ"])
    assert "account" not in (await api.get("", token=basic)).entity


async def test_phone_and_email_need_a_privacy_scope(fake: FakeInstasent, api: Client) -> None:
    await api.upsert({"_user_id": "u1", "_email": "a@b.co", "_phone_mobile": "+34600000001"})
    reader = fake.add_token(kind="product", scopes=["PROJECT_AUDIENCE_READ"])
    contact = (await api.get(P + "/audience/user/u1", token=reader)).entity
    assert "_email" not in contact
    assert "_phone_mobile" not in contact
    full = (await api.get(P + "/audience/user/u1")).entity
    assert full["_email"] == "a@b.co"


def test_token_values_never_appear_in_reprs(fake: FakeInstasent) -> None:
    token = fake.add_token(kind="product", token="secret-value-123")
    record = fake._state.tokens[token]
    assert "secret-value-123" not in repr(record)
    with pytest.raises(KeyError) as caught:
        fake.revoke_token("another-secret-456")
    assert "another-secret-456" not in str(caught.value)


async def test_recorded_requests_carry_a_fingerprint_not_the_token(
    fake: FakeInstasent, api: Client
) -> None:
    await api.get(P)
    await api.get(P, token="wrong-token-xyz")
    ok, wrong = fake.requests[-2:]
    assert ok.token_fingerprint is not None
    assert wrong.token_fingerprint is not None
    assert ok.token_fingerprint != wrong.token_fingerprint
    assert fake.product_token not in repr(ok)
    assert "wrong-token-xyz" not in repr(wrong)
    assert (ok.status, wrong.status) == (200, 401)


def test_add_token_validates_its_arguments(fake: FakeInstasent) -> None:
    with pytest.raises(ValueError, match="datasource"):
        fake.add_token(kind="datasource", project="proj_demo")
    with pytest.raises(ValueError, match="datasource"):
        fake.add_token(kind="datasource", project="proj_demo", datasource="ds_missing")
    with pytest.raises(ValueError, match="not bound"):
        fake.add_token(kind="product", datasource="ds_demo")
    with pytest.raises(ValueError, match="registered"):
        fake.add_token(kind="product", token=fake.product_token)
    with pytest.raises(KeyError):
        fake.add_token(kind="product", project="proj_missing")
    assert fake.add_token(kind="product", token="fixed") == "fixed"
