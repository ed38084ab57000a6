"""Campaigns and automations: ``client.campaigns``, ``client.automations``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._pagination import OffsetPager
from ..models import Automation, Campaign
from ._base import MAX_LIST_PAGE, Resource, entity_reader, op

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

    def list(
        self,
        *,
        start: int = 0,
        limit: int = MAX_LIST_PAGE,
        sort: str | Sequence[str] | None = None,
        q: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> OffsetPager[Campaign]:
        """Campaigns: ``await`` for one page, ``async for`` for all.

        ``filters={"status": "sent"}`` is sent as ``status_eq=sent``; a list as
        ``status_in``; keys with an operator suffix as given (instasent-api.md 5.2).

        Raises:
            ValueError: ``limit`` outside 1..100, negative ``start``, bad filters
                (immediately, before any request).
            PermissionDeniedError: (when awaited or iterated) the token lacks
                PROJECT_CAMPAIGN_READ.
        """
        return self._pager(
            Campaign, _CAMPAIGNS, start=start, limit=limit, sort=sort, q=q, filters=filters
        )

    async def get(self, campaign_id: str | int) -> Campaign:
        """One campaign.

        Raises:
            ValueError: ``campaign_id`` is empty.
            NotFoundError: no such campaign.
        """
        path = self._one(_CAMPAIGN, campaign_id)
        return _read_campaign(await self._transport.request(_CAMPAIGN, path))


class AutomationsResource(Resource):
    """Automations (needs PROJECT_AUTOMATION_READ)."""

    __slots__ = ()

    def list(
        self,
        *,
        start: int = 0,
        limit: int = MAX_LIST_PAGE,
        sort: str | Sequence[str] | None = None,
        q: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> OffsetPager[Automation]:
        """Automations: ``await`` for one page, ``async for`` for all.

        Raises:
            ValueError: ``limit`` outside 1..100, negative ``start``, bad filters
                (immediately, before any request).
            PermissionDeniedError: (when awaited or iterated) the token lacks
                PROJECT_AUTOMATION_READ.
        """
        return self._pager(
            Automation, _AUTOMATIONS, start=start, limit=limit, sort=sort, q=q, filters=filters
        )

    async def get(self, automation_id: str | int) -> Automation:
        """One automation.

        Raises:
            ValueError: ``automation_id`` is empty.
            NotFoundError: no such automation.
        """
        path = self._one(_AUTOMATION, automation_id)
        return _read_automation(await self._transport.request(_AUTOMATION, path))
