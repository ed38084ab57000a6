"""Campaigns and automations: ``client.campaigns``, ``client.automations``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._pagination import OffsetPager
from ..models import Automation, Campaign
from ._base import Resource, entity_reader, op
from ._params import ListOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AutomationsResource", "CampaignsResource"]

_CAMPAIGNS = op("campaigns.list")
_CAMPAIGN = op("campaigns.get")
_AUTOMATIONS = op("automations.list")
_AUTOMATION = op("automations.get")
_read_campaign = entity_reader(Campaign)
_read_automation = entity_reader(Automation)


class CampaignsResource(Resource):
    """SMS campaigns (needs PROJECT_CAMPAIGN_READ)."""

    __slots__ = ()

    def list(self, **options: Unpack[ListOptions]) -> OffsetPager[Campaign]:
        """Campaigns: ``await`` for one page, ``async for`` for all.

        ``filters={"status": "sent"}`` is sent as ``status_eq=sent``; a list as
        ``status_in``; keys with an operator suffix as given (the API's generic query filter).

        Raises:
            ValueError: ``limit`` outside 1..100, negative ``start``, bad filters
                (immediately, before any request).
            PermissionDeniedError: (when awaited or iterated) the token lacks
                PROJECT_CAMPAIGN_READ.
        """
        return self._list(Campaign, _CAMPAIGNS, options=options)

    async def get(self, campaign_id: str | int) -> Campaign:
        """One campaign.

        Raises:
            ValueError: ``campaign_id`` is empty.
            NotFoundError: no such campaign.
        """
        return await self._get(_read_campaign, _CAMPAIGN, campaign_id)


class AutomationsResource(Resource):
    """Automations (needs PROJECT_AUTOMATION_READ)."""

    __slots__ = ()

    def list(self, **options: Unpack[ListOptions]) -> OffsetPager[Automation]:
        """Automations: ``await`` for one page, ``async for`` for all.

        Raises:
            ValueError: ``limit`` outside 1..100, negative ``start``, bad filters
                (immediately, before any request).
            PermissionDeniedError: (when awaited or iterated) the token lacks
                PROJECT_AUTOMATION_READ.
        """
        return self._list(Automation, _AUTOMATIONS, options=options)

    async def get(self, automation_id: str | int) -> Automation:
        """One automation.

        Raises:
            ValueError: ``automation_id`` is empty.
            NotFoundError: no such automation.
        """
        return await self._get(_read_automation, _AUTOMATION, automation_id)
