"""Audience contacts: ``client.audience``."""

from __future__ import annotations

from typing import Any

from .._convert import structurer
from .._http.transport import Response
from .._pagination import ScrollIterator
from ..models import AudienceEvent, Contact
from ._base import Resource, delete_once, entity_reader, items_of, op, read_json, structure_or_raise

__all__ = ["AudienceResource"]

_GET = op("audience.get")
_GET_BY_USER = op("audience.get_by_user_id")
_BY_PHONE = op("audience.search_by_phone")
_BY_EMAIL = op("audience.search_by_email")
_EVENTS = op("audience.events")
_SEARCH = op("audience.search")
_SCROLL = op("audience.scroll")
_SMS_SUB = op("audience.sms_subscribe")
_SMS_UNSUB = op("audience.sms_unsubscribe")
_EMAIL_SUB = op("audience.email_subscribe")
_EMAIL_UNSUB = op("audience.email_unsubscribe")
_DELETE = op("audience.delete")

_SYNC = "_sync"  # a bare flag, as Instasent's own clients send it
_read_contact = entity_reader(Contact)


class AudienceResource(Resource):
    """The project's unified audience."""

    __slots__ = ()

    async def get(self, audience_id: str) -> Contact:
        """The contact with this audience id.

        Raises:
            NotFoundError: no such contact, or not visible to this token.
            ValueError: ``audience_id`` is empty.
        """
        return await self._get(_read_contact, _GET, audience_id)

    async def get_by_user_id(self, user_id: str) -> Contact:
        """The contact by ``_user_id`` (or any other unique attribute: email, phone).

        Raises:
            NotFoundError: no such contact, or not visible to this token.
            ValueError: ``user_id`` is empty.
        """
        return await self._get(_read_contact, _GET_BY_USER, user_id)

    async def search_by_phone(self, phone: str) -> list[Contact]:
        """Contacts with this phone number (normalised by the server; ``+`` is encoded).

        Returns an empty list when nothing matches (a 404 counts as no match),
        whichever envelope (``entity`` or ``entities``) the server uses. The API
        also answers 404 for a project id that does not exist or that the token
        cannot see, so a wrong project reads as "no match" too: check it once at
        start-up with ``await client.project.get()`` (which raises ``NotFoundError``).
        """
        return await self._collection(Contact, _BY_PHONE, phone, missing_is_empty=True)

    async def search_by_email(self, email: str) -> list[Contact]:
        """Contacts with this email address; an empty list when nothing matches.

        A 404 counts as no match, as for ``search_by_phone`` (see there about a wrong
        project id).
        """
        return await self._collection(Contact, _BY_EMAIL, email, missing_is_empty=True)

    async def search(
        self, query: Any = None, *, limit: int | None = None, offset: int | None = None
    ) -> list[Contact]:
        """Contacts matching an audience query filter: at most 50, no paging.

        ``query`` is the wire-format dict (the audience query filter), an
        ``AudienceQuery``/condition from ``instasent_async.query``, or ``None``
        (every contact). ``limit``/``offset`` default to the query's own, the
        limit then to 50. Use ``scroll`` to read more than 50.

        Raises:
            ValueError: ``limit`` outside 1..50 or a negative ``offset`` (before sending).
            BadRequestError: the server rejected the filter.
            PermissionDeniedError: the token lacks PROJECT_AUDIENCE_READ.
        """
        return await self._search(Contact, _SEARCH, query, limit, offset)

    def scroll(
        self,
        query: Any = None,
        page_size: int | None = None,
        cursor: str | None = None,
    ) -> ScrollIterator[Contact]:
        """Every contact matching the filter, one page (<= 100) in memory at a time.

        ``page_size`` defaults to the query's ``limit``, else 100. Pass ``cursor=``
        (a previous iterator's ``.cursor``, saved after a whole page) to resume.
        Requests are sent only while you iterate: breaking out early leaves none
        in flight.

        Raises:
            ValueError: ``page_size`` outside 1..100 or an empty cursor (raised
                immediately, before any request).
            PermissionDeniedError: (while iterating) the token lacks PROJECT_AUDIENCE_LIST.
        """
        return self._scroll(Contact, _SCROLL, query=query, page_size=page_size, cursor=cursor)

    async def events(self, audience_id: str) -> list[AudienceEvent]:
        """The contact's latest events (every event type flattened into one list).

        Accepts a flat list (``entities``) or events classified by type
        (``{"entity": {"<type>": [...]}}``); in the latter an event without its
        own type gets the type it was classified under.

        Raises:
            ValueError: ``audience_id`` is empty.
            NotFoundError: no such contact.
            PermissionDeniedError: the token lacks PROJECT_AUDIENCE_DATA_EVENTS.
        """
        return await self._get(_read_events, _EVENTS, audience_id)

    async def sms_subscribe(self, audience_id: str, *, sync: bool = False) -> None:
        """Subscribe the contact to SMS (queued unless ``sync=True``)."""
        await self._write(_SMS_SUB, json=_subject(audience_id), params=_sync(sync))

    async def sms_unsubscribe(
        self,
        audience_id: str,
        *,
        reason: str | None = None,
        utm_source: str | None = None,
        utm_medium: str | None = None,
        utm_campaign: str | None = None,
        sync: bool = False,
    ) -> None:
        """Unsubscribe the contact from SMS, with an optional reason and UTM fields."""
        body = _unsubscribe_body(audience_id, reason, utm_source, utm_medium, utm_campaign)
        await self._write(_SMS_UNSUB, json=body, params=_sync(sync))

    async def email_subscribe(self, audience_id: str, *, sync: bool = False) -> None:
        """Subscribe the contact to email (queued unless ``sync=True``)."""
        await self._write(_EMAIL_SUB, json=_subject(audience_id), params=_sync(sync))

    async def email_unsubscribe(
        self,
        audience_id: str,
        *,
        reason: str | None = None,
        utm_source: str | None = None,
        utm_medium: str | None = None,
        utm_campaign: str | None = None,
        sync: bool = False,
    ) -> None:
        """Unsubscribe the contact from email, with an optional reason and UTM fields."""
        body = _unsubscribe_body(audience_id, reason, utm_source, utm_medium, utm_campaign)
        await self._write(_EMAIL_UNSUB, json=body, params=_sync(sync))

    async def delete(self, audience_id: str, *, sync: bool = False) -> None:
        """Permanently delete the contact from the audience.

        A delete is retried like any idempotent call. If an attempt may have
        been carried out (no answer, or a 5xx) and its retry answers 404, the
        contact is gone and this returns normally instead of raising.

        Raises:
            NotFoundError: no such contact (answered to the first attempt, or
                after retries of attempts that were surely not carried out).
        """
        body, params = _subject(audience_id), _sync(sync)
        await delete_once(lambda stats: self._write(_DELETE, json=body, params=params, stats=stats))


def _subject(audience_id: str) -> dict[str, Any]:
    """The body naming the contact of a stream write.

    Raises:
        ValueError: ``audience_id`` is not a non-empty string.
    """
    if not isinstance(audience_id, str) or not audience_id.strip():
        raise ValueError("audience_id must be a non-empty string")
    return {"audienceId": audience_id}


def _sync(sync: bool) -> str | None:
    return _SYNC if sync else None


_event_hook = structurer(AudienceEvent)


def _read_events(response: Response) -> list[AudienceEvent]:
    """A flat list of events, or events classified by type (flattened)."""
    payload = read_json(response)
    grouped = _grouped_events(payload)
    items = items_of(response, payload) if grouped is None else grouped
    return [structure_or_raise(_event_hook, item, AudienceEvent, response) for item in items]


def _grouped_events(payload: Any) -> list[Any] | None:
    """The events of a by-type answer (``{"entity"|"entities": {type: [...]}}``), else None."""
    if not isinstance(payload, dict):
        return None
    for key in ("entity", "entities"):
        grouped = payload.get(key)
        if isinstance(grouped, dict) and all(isinstance(v, list) for v in grouped.values()):
            return [
                event
                if not isinstance(event, dict) or "event-type" in event or "_event_type" in event
                else {"event-type": event_type, **event}
                for event_type, events in grouped.items()
                for event in events
            ]
    return None


def _unsubscribe_body(
    audience_id: str,
    reason: str | None,
    utm_source: str | None,
    utm_medium: str | None,
    utm_campaign: str | None,
) -> dict[str, Any]:
    body = _subject(audience_id)
    for key, value in (
        ("reason", reason),
        ("utm-source", utm_source),
        ("utm-medium", utm_medium),
        ("utm-campaign", utm_campaign),
    ):
        if value is not None:
            body[key] = value
    return body
