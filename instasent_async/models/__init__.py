"""attrs models of the Instasent API, one module per domain.

Reserved wire fields drop their leading underscore (``_user_id`` -> ``user_id``),
camelCase keys become snake_case, and datetimes are timezone-aware (naive input
is taken as UTC; they are written as ``YYYY-MM-DDTHH:MM:SS.sssZ``). Models take
keyword arguments only; every field is optional and defaults to ``None``.

Nothing the server sends is lost: unknown keys, values that do not fit their
field, and explicit ``null``s of known fields are kept in ``extra``, so
``unstructure(structure(d)) == d`` for any dict ``d``. A ``None`` field is not
written; to send an explicit ``null`` put it in ``extra``
(``Contact(user_id="u", extra={"_email": None})``). Convert with
``instasent_async.to_dict(model)`` / ``from_dict(data, cls)``.
"""

from __future__ import annotations

from .audience import Contact
from .campaigns import Automation, Campaign
from .events import AudienceEvent, Event
from .ingest import FailedItem, IngestReport, RejectedItem
from .project import DatasourceStats, Organization, Project, StreamInfo
from .segments import Segment
from .sms import SmsMessage, SmsSender
from .specs import AttributeSpec, EventParameterSpec, EventTypeSpec

__all__ = [
    "WIRE_MODELS",
    "AttributeSpec",
    "AudienceEvent",
    "Automation",
    "Campaign",
    "Contact",
    "DatasourceStats",
    "Event",
    "EventParameterSpec",
    "EventTypeSpec",
    "FailedItem",
    "IngestReport",
    "Organization",
    "Project",
    "RejectedItem",
    "Segment",
    "SmsMessage",
    "SmsSender",
    "StreamInfo",
]

WIRE_MODELS: tuple[type, ...] = (
    Contact,
    Event,
    AudienceEvent,
    AttributeSpec,
    EventTypeSpec,
    EventParameterSpec,
    Project,
    Organization,
    StreamInfo,
    Segment,
    Campaign,
    Automation,
    SmsSender,
    SmsMessage,
)
"""Every model declared with wire fields (``DatasourceStats`` is handled on its own)."""
