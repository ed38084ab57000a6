"""Organization and project: ``client.organization``, ``client.project``, ``client.specs``."""

from __future__ import annotations

from .._convert import structure
from ..models import AttributeSpec, EventParameterSpec, EventTypeSpec, Organization, Project
from ._base import Resource, entities_of, entity_of, entity_reader, op

__all__ = ["OrganizationResource", "ProjectResource", "SpecsResource"]

_ORG = op("organization.get")
_PROJECT = op("project.get")
_SPEC_ATTRS = op("specs.attributes")
_SPEC_EVENTS = op("specs.events")
_SPEC_PARAMS = op("specs.event_parameters")
_read_project = entity_reader(Project)


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
        entity = entity_of((await self._call(_ORG)).json())
        if isinstance(entity, dict) and isinstance(entity.get("organization"), dict):
            nested = entity["organization"]
            lifted = {
                k: nested[k] for k in ("id", "uid", "name") if k in nested and k not in entity
            }
            entity = {**entity, **lifted}
        result: Organization = structure(entity, Organization)
        return result


class ProjectResource(Resource):
    """``GET /v1/project/{project}``: the client's project."""

    __slots__ = ()

    async def get(self) -> Project:
        """The project's metadata (also the cheapest credential check).

        Raises:
            NotFoundError: the project does not exist or this token cannot see it.
            ConfigurationError: the client has no project.
        """
        return _read_project(await self._transport.request(_PROJECT, self._path(_PROJECT)))


class SpecsResource(Resource):
    """The project's specs: attributes, event types and event parameters."""

    __slots__ = ()

    async def attributes(self) -> list[AttributeSpec]:
        """Every attribute spec of the project (reserved ``_`` and custom)."""
        payload = (await self._call(_SPEC_ATTRS)).json()
        return [structure(item, AttributeSpec) for item in entities_of(payload, "specs")]

    async def events(self) -> list[EventTypeSpec]:
        """Every event type of the project."""
        payload = (await self._call(_SPEC_EVENTS)).json()
        return [structure(item, EventTypeSpec) for item in entities_of(payload, "specs")]

    async def event_parameters(self, event_type: str) -> list[EventParameterSpec]:
        """The parameter specs of one event type.

        Raises:
            ValueError: ``event_type`` is empty.
            NotFoundError: the event type is unknown.
        """
        payload = (await self._call(_SPEC_PARAMS, event_type)).json()
        return [structure(item, EventParameterSpec) for item in entities_of(payload, "specs")]
