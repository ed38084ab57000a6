"""SMS senders, SMS messages and direct SMS: ``client.sms``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._errors import APIResponseValidationError
from .._http.transport import Response
from .._pagination import OffsetPager
from ..models import SmsMessage, SmsSender
from ._base import Resource, entity_reader, op
from ._params import ListOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SmsResource"]

MAX_UTM_TERM = 40

log = logging.getLogger("instasent_async.resources")

_SENDERS = op("sms.senders")
_GET = op("sms.get")
_BY_AUDIENCE = op("sms.list_by_audience")
_BY_SEND = op("sms.list_by_send")
_BY_CAMPAIGN = op("sms.list_by_campaign")
_BY_AUTOMATION = op("sms.list_by_automation")
_DIRECT = op("sms.list_direct")
_DIRECT_UTM = op("sms.list_direct_by_utm")
_SEND = op("sms.send_direct")
_SEND_UTM = op("sms.send_direct_utm")
_read_sms = entity_reader(SmsMessage)


def _check_utm_term(utm_term: str | None) -> None:
    if utm_term is None:
        return
    if not isinstance(utm_term, str) or not utm_term.strip():
        raise ValueError("utm_term must be a non-empty string or None")
    if len(utm_term) > MAX_UTM_TERM:
        raise ValueError(f"utm_term must be at most {MAX_UTM_TERM} characters, got {len(utm_term)}")


def _check_index(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer (0-based), got {value!r}")


class SmsResource(Resource):
    """SMS senders, sent SMS messages, and sending direct SMS."""

    __slots__ = ()

    def senders(self, **options: Unpack[ListOptions]) -> OffsetPager[SmsSender]:
        """The project's SMS senders (``await`` one page or ``async for`` all).

        The pseudo-sender id ``"default"`` (for ``send_direct``) is the project's
        default sender.

        Raises:
            ValueError: ``limit`` outside 1..100, negative ``start``, bad filters
                (immediately, before any request).
        """
        return self._list(SmsSender, _SENDERS, options=options)

    async def get(self, sms_id: str | int) -> SmsMessage:
        """One SMS message.

        Raises:
            ValueError: ``sms_id`` is empty.
            NotFoundError: no such SMS.
        """
        return await self._get(_read_sms, _GET, sms_id)

    def list_by_audience(
        self,
        audience_id_or_phone: str,
        **options: Unpack[ListOptions],
    ) -> OffsetPager[SmsMessage]:
        """SMS sent to a contact (audience id, or phone with its international code).

        Raises:
            ValueError: empty id, ``limit`` outside 1..100, negative ``start``, bad
                filters (immediately, before any request).
            PermissionDeniedError: (when awaited or iterated) the token lacks
                PROJECT_DIRECT_READ.
        """
        return self._list(SmsMessage, _BY_AUDIENCE, audience_id_or_phone, options=options)

    def list_by_send(
        self,
        send_id: str | int,
        **options: Unpack[ListOptions],
    ) -> OffsetPager[SmsMessage]:
        """SMS of one send.

        Raises:
            ValueError: empty ``send_id`` or bad paging/filters (immediately).
            NotFoundError: (when awaited or iterated) no such send.
        """
        return self._list(SmsMessage, _BY_SEND, send_id, options=options)

    def list_by_campaign(
        self,
        campaign_id: str | int,
        option_idx: int = 0,
        **options: Unpack[ListOptions],
    ) -> OffsetPager[SmsMessage]:
        """SMS of one campaign option (``option_idx`` is 0-based).

        Raises:
            ValueError: empty ``campaign_id``, negative ``option_idx`` or bad
                paging/filters (immediately).
            NotFoundError: (when awaited or iterated) no such campaign.
        """
        _check_index(option_idx, "option_idx")
        return self._list(SmsMessage, _BY_CAMPAIGN, campaign_id, option_idx, options=options)

    def list_by_automation(
        self,
        automation_id: str | int,
        message_idx: int = 0,
        **options: Unpack[ListOptions],
    ) -> OffsetPager[SmsMessage]:
        """SMS of one automation message (``message_idx`` is 0-based).

        Raises:
            ValueError: empty ``automation_id``, negative ``message_idx`` or bad
                paging/filters (immediately).
            NotFoundError: (when awaited or iterated) no such automation.
        """
        _check_index(message_idx, "message_idx")
        return self._list(SmsMessage, _BY_AUTOMATION, automation_id, message_idx, options=options)

    def list_direct(
        self,
        utm_term: str | None = None,
        **options: Unpack[ListOptions],
    ) -> OffsetPager[SmsMessage]:
        """Direct SMS (not from a campaign or automation), optionally by tracking term.

        Raises:
            ValueError: ``utm_term`` longer than 40 characters or empty, or bad
                paging/filters (immediately, before any request).
        """
        _check_utm_term(utm_term)
        if utm_term is None:
            return self._list(SmsMessage, _DIRECT, options=options)
        return self._list(SmsMessage, _DIRECT_UTM, utm_term, options=options)

    async def send_direct(
        self,
        to: str,
        text: str,
        sender: str = "default",
        utm_term: str | None = None,
        allow_unicode: bool = False,
    ) -> SmsMessage | None:
        """Send one SMS to an audience id or a phone number (international format).

        Never retried once the request may have reached the server: if the
        outcome is unknown (connection dropped, timeout, 5xx) you get
        ``AmbiguousOutcomeError`` instead of a possible second SMS. Returns the
        created message, or ``None`` if the server answered without a body. A
        success status means the SMS was sent even when the body cannot be read:
        the message then has no fields and ``extra["raw_body"]`` holds the body.

        Raises:
            ValueError: empty ``to``/``text``/``sender``, or ``utm_term`` over 40
                characters (before anything is sent).
            AmbiguousOutcomeError: the SMS may or may not have been sent.
            PermissionDeniedError: the token lacks PROJECT_DIRECT_WRITE.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text must be a non-empty string")
        if not isinstance(sender, str) or not sender.strip():
            raise ValueError("sender must be a sender id or 'default'")
        _check_utm_term(utm_term)
        body = {"text": text, "allowUnicode": bool(allow_unicode)}
        if utm_term is None:
            return _read_sent(await self._write(_SEND, sender, to, json=body))
        return _read_sent(await self._write(_SEND_UTM, sender, to, utm_term, json=body))


def _read_sent(response: Response) -> SmsMessage | None:
    """The message of a send answered with success: it was sent, whatever the body says.

    An empty body is ``None``; a body that is not a message is kept as text in
    ``extra["raw_body"]`` of an otherwise empty ``SmsMessage`` (never an error that
    would invite sending it again).
    """
    if not response.body:
        return None
    try:
        return _read_sms(response)
    except APIResponseValidationError as exc:
        log.warning("direct SMS sent (%d), but its answer is unreadable: %s", response.status, exc)
        return SmsMessage(extra={"raw_body": response.body.decode("utf-8", "replace")})
