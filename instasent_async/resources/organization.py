"""Organization and project: ``client.organization``, ``client.project``, ``client.specs``."""

from __future__ import annotations

from typing import Any

from .._convert import structurer
from .._http.transport import Response
from ..models import AttributeSpec, EventParameterSpec, EventTypeSpec, Organization, Project
from ._base import Resource, entity_reader, op, read_json, structure_or_raise

__all__ = ["OrganizationResource", "ProjectResource", "SpecsResource"]

_ORG = op("organization.get")
_PROJECT = op("project.get")
_SPEC_ATTRS = op("specs.attributes")
_SPEC_EVENTS = op("specs.events")
_SPEC_PARAMS = op("specs.event_parameters")
_SPECS = ("specs",)
_read_project = entity_reader(Project)
_organization_hook = structurer(Organization)


def _read_organization(response: Response) -> Organization:
    """The organization: its own id and name at the top, else in a nested ``organization``."""
    entity: Any = read_json(response)
    if type(entity) is dict and "entity" in entity:
        entity = entity["entity"]
    if type(entity) is dict and type(entity.get("organization")) is dict:
        nested = entity["organization"]
        lifted = {k: nested[k] for k in ("id", "uid", "name") if k in nested and k not in entity}
        entity = {**entity, **lifted}
    return structure_or_raise(_organization_hook, entity, Organization, response)


class OrganizationResource(Resource):
    """``GET /v1/``: the organization the token belongs to."""

    __slots__ = ()

    async def get(self) -> Organization:
        """The organization, with its projects (and funds when the token has ACCOUNT_READ).

        The reference does not say where the organization's own id and name sit:
        top-level keys are used, else those of a nested ``organization`` object.

        Raises:
            AuthenticationError: the token is missing, malformed or revoked.
        """
        return await self._get(_read_organization, _ORG)


class ProjectResource(Resource):
    """``GET /v1/project/{project}``: the client's project."""

    __slots__ = ()

    async def get(self) -> Project:
        """The project's metadata (also the cheapest credential check).

        Raises:
            NotFoundError: the project does not exist or this token cannot see it.
            ConfigurationError: the client has no project.
        """
        return await self._get(_read_project, _PROJECT)


class SpecsResource(Resource):
    """The project's specs: attributes, event types and event parameters."""

    __slots__ = ()

    async def attributes(self) -> list[AttributeSpec]:
        """Every attribute spec of the project (reserved ``_`` and custom)."""
        return await self._collection(AttributeSpec, _SPEC_ATTRS, keys=_SPECS)

    async def events(self) -> list[EventTypeSpec]:
        """Every event type of the project."""
        return await self._collection(EventTypeSpec, _SPEC_EVENTS, keys=_SPECS)

    async def event_parameters(self, event_type: str) -> list[EventParameterSpec]:
        """The parameter specs of one event type.

        Raises:
            ValueError: ``event_type`` is empty.
            NotFoundError: the event type is unknown.
        """
        return await self._collection(EventParameterSpec, _SPEC_PARAMS, event_type, keys=_SPECS)
