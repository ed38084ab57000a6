"""Every operation of the Instasent Product and Ingest APIs, in one table.

Each ``Operation`` knows its method, path template, rate-limit class, the scope it
needs (where the reference names one) and whether repeating it is safe. Resources
call operations from this table; nothing else builds request paths.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import attrs

__all__ = ["OPERATIONS", "Operation", "encode_segment", "is_plain_segment"]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_\-~]+")

is_plain_segment = _SAFE_SEGMENT.fullmatch
"""Whether a string is a path segment as it is (nothing to encode): a match or None."""


def encode_segment(value: object, what: str) -> str:
    """Percent-encode one path segment so no character can change the path.

    ``/``, ``?``, ``#``, ``+``, ``%`` and spaces are encoded, and the dot segments
    ``.`` and ``..`` are encoded as ``%2E`` so they can never walk up the path.

    Raises:
        TypeError: ``value`` is not a string or an int.
        ValueError: ``value`` is empty or blank.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    text = str(value)
    if _SAFE_SEGMENT.fullmatch(text):
        return text
    if not text.strip():
        raise ValueError(f"{what} must not be empty")
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="@:")


@attrs.frozen(slots=True)
class Operation:
    """One API operation: how to call it and how to treat it.

    ``path`` is relative to the base URL (``/v1``) and holds ``{name}``
    placeholders; ``rate_class`` is the governor's endpoint class (``default``,
    ``search``, ``scroll``) or, for datasource paths, ``"<METHOD> <endpoint>"``;
    ``idempotent`` says whether a retry after the request may have reached the
    server is safe.
    """

    name: str
    method: str
    path: str
    rate_class: str = "default"
    scope: str | None = None
    idempotent: bool = True
    params: tuple[str, ...] = attrs.field(init=False)
    template: str = attrs.field(init=False)
    datasource: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(_PLACEHOLDER.findall(self.path)))
        object.__setattr__(self, "template", _PLACEHOLDER.sub("%s", self.path.replace("%", "%%")))
        object.__setattr__(self, "datasource", "{datasource}" in self.path)

    def render(self, *encoded: str) -> str:
        """The request path for already-encoded segments, in placeholder order."""
        return self.template % encoded


_P = "/project/{project}"
_DS = _P + "/datasource/{datasource}"


def _ds(name: str, method: str, tail: str, *, idempotent: bool = True) -> Operation:
    return Operation(name, method, _DS + tail, f"{method} {tail.lstrip('/')}", None, idempotent)


_READ = "PROJECT_AUDIENCE_READ"
_LIST = "PROJECT_AUDIENCE_LIST"
_WRITE = "PROJECT_AUDIENCE_WRITE"
_EVENTS = "PROJECT_AUDIENCE_DATA_EVENTS"
_SMS_READ = "PROJECT_DIRECT_READ"

_TABLE: tuple[Operation, ...] = (
    # 6.1 organization
    Operation("organization.get", "GET", "/"),
    # 6.2 project and project specs
    Operation("project.get", "GET", _P),
    Operation("specs.attributes", "GET", _P + "/specs/attributes"),
    Operation("specs.events", "GET", _P + "/specs/events"),
    Operation("specs.event_parameters", "GET", _P + "/specs/events/{event_type}"),
    # 6.3 audience
    Operation("audience.get_by_user_id", "GET", _P + "/audience/user/{user_id}", scope=_READ),
    Operation("audience.get", "GET", _P + "/audience/{audience_id}", scope=_READ),
    Operation(
        "audience.search_by_phone", "GET", _P + "/audience/search/phone/{phone}", "search", _READ
    ),
    Operation(
        "audience.search_by_email", "GET", _P + "/audience/search/email/{email}", "search", _READ
    ),
    Operation("audience.events", "GET", _P + "/audience/{audience_id}/events", scope=_EVENTS),
    Operation("audience.search", "POST", _P + "/audience/search", "search", _READ),
    Operation("audience.scroll", "POST", _P + "/audience/scroll", "scroll", _LIST),
    Operation(
        "audience.segment_scroll",
        "POST",
        _P + "/audience/segment/{segment_uid}/scroll",
        "scroll",
        _LIST,
    ),
    Operation(
        "audience.sms_subscribe", "POST", _P + "/audience/stream/sms-subscribe", scope=_WRITE
    ),
    Operation(
        "audience.sms_unsubscribe", "POST", _P + "/audience/stream/sms-unsubscribe", scope=_WRITE
    ),
    Operation(
        "audience.email_subscribe", "POST", _P + "/audience/stream/email-subscribe", scope=_WRITE
    ),
    Operation(
        "audience.email_unsubscribe",
        "POST",
        _P + "/audience/stream/email-unsubscribe",
        scope=_WRITE,
    ),
    Operation("audience.delete", "POST", _P + "/audience/stream/delete-contact", scope=_WRITE),
    # 6.4 events
    Operation("events.search", "POST", _P + "/event/search", "search", _EVENTS),
    Operation("events.scroll", "POST", _P + "/event/scroll", "scroll", _EVENTS),
    # 6.5 / 6.11 datasource stream (Product token or datasource token)
    _ds("datasource.info", "GET", "/stream"),
    _ds("datasource.specs.attributes", "GET", "/stream/specs/attributes"),
    _ds("datasource.specs.events", "GET", "/stream/specs/events"),
    _ds(
        "datasource.specs.event_parameters",
        "GET",
        "/stream/specs/event-parameters/{event_type}",
    ),
    _ds("datasource.stats", "GET", "/stats"),
    _ds("datasource.contacts.get", "GET", "/stream/contacts/{user_id}"),
    # Upserts are keyed by _user_id, so repeating one is safe.
    _ds("datasource.contacts.upsert", "POST", "/stream/contacts"),
    # Safe only when every event carries an _event_id: the resource decides per call.
    _ds("datasource.events.add", "POST", "/stream/events", idempotent=False),
    _ds("datasource.contacts.delete", "DELETE", "/stream/contacts/{user_id}"),
    # 6.6 segments
    Operation("segments.list", "GET", _P + "/segment"),
    Operation("segments.dynamic", "GET", _P + "/segment/dynamic"),
    Operation("segments.get", "GET", _P + "/segment/{segment_uid}"),
    # 6.7 campaigns, 6.8 automations
    Operation("campaigns.list", "GET", _P + "/campaign", scope="PROJECT_CAMPAIGN_READ"),
    Operation(
        "campaigns.get", "GET", _P + "/campaign/{campaign_id}", scope="PROJECT_CAMPAIGN_READ"
    ),
    Operation("automations.list", "GET", _P + "/automation", scope="PROJECT_AUTOMATION_READ"),
    Operation(
        "automations.get",
        "GET",
        _P + "/automation/{automation_id}",
        scope="PROJECT_AUTOMATION_READ",
    ),
    # 6.9 senders, 6.10 SMS messages
    Operation("sms.senders", "GET", _P + "/channel/sms/sender"),
    Operation("sms.get", "GET", _P + "/channel/sms/sms/{sms_id}", scope=_SMS_READ),
    Operation(
        "sms.list_by_audience",
        "GET",
        _P + "/channel/sms/sms/audience/{audience_id_or_phone}",
        scope=_SMS_READ,
    ),
    Operation("sms.list_by_send", "GET", _P + "/channel/sms/sms/send/{send_id}", scope=_SMS_READ),
    Operation(
        "sms.list_by_campaign",
        "GET",
        _P + "/channel/sms/sms/campaign/{campaign_id}/{option_idx}",
        scope=_SMS_READ,
    ),
    Operation(
        "sms.list_by_automation",
        "GET",
        _P + "/channel/sms/sms/automation/{automation_id}/{message_idx}",
        scope=_SMS_READ,
    ),
    Operation("sms.list_direct", "GET", _P + "/channel/sms/sms/direct", scope=_SMS_READ),
    Operation(
        "sms.list_direct_by_utm",
        "GET",
        _P + "/channel/sms/sms/direct/{utm_term}",
        scope=_SMS_READ,
    ),
    # A direct SMS must never be sent twice: never retried once it may have arrived.
    Operation(
        "sms.send_direct",
        "POST",
        _P + "/channel/sms/sms/direct/{sender_id}/{to}",
        scope="PROJECT_DIRECT_WRITE",
        idempotent=False,
    ),
    Operation(
        "sms.send_direct_utm",
        "POST",
        _P + "/channel/sms/sms/direct/{sender_id}/{to}/{utm_term}",
        scope="PROJECT_DIRECT_WRITE",
        idempotent=False,
    ),
)

OPERATIONS: dict[str, Operation] = {op.name: op for op in _TABLE}
"""Every operation by name (``"audience.get_by_user_id"``, ...)."""
