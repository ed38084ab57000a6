"""The API access options shared by the commands: token, project, base URL.

Each comes from its flag or, when the flag is absent, from ``INSTASENT_TOKEN``,
``INSTASENT_PROJECT`` or ``INSTASENT_BASE_URL``. Without a base URL the client's own
default (the production API) applies: the CLI keeps no copy of it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import attrs

from .. import Instasent
from .codes import UsageError

__all__ = ["Access", "add_access_options", "resolve_access"]


def add_access_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--token``, ``--project``, ``--base-url`` and ``--allow-insecure`` to ``parser``."""
    group = parser.add_argument_group("API access")
    group.add_argument(
        "--token",
        help="API token (default: $INSTASENT_TOKEN; prefer the variable, the command line "
        "is visible to other users)",
    )
    group.add_argument("--project", help="project UID (default: $INSTASENT_PROJECT)")
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="API root, ending in /v1 (default: $INSTASENT_BASE_URL, else the production API)",
    )
    group.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow a plain http:// base URL on a host that is not loopback",
    )


@attrs.frozen(slots=True)
class Access:
    """Where and as whom to call the API (the token is never shown by ``repr``)."""

    token: str = attrs.field(repr=False)
    project: str | None
    base_url: str | None
    allow_insecure: bool = False

    @property
    def where(self) -> str:
        """The base URL for messages (``the Instasent API`` when the default applies)."""
        return self.base_url or "the Instasent API"

    def client(self, **options: Any) -> Instasent:
        """A client for this access; ``options`` go to :class:`~instasent_async.Instasent`.

        Raises:
            ConfigurationError: an invalid option (an insecure base URL...).
        """
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return Instasent(
            self.token, project=self.project, allow_insecure=self.allow_insecure, **options
        )


def _flag_or_env(value: str | None, variable: str) -> str | None:
    text = value if value is not None else os.environ.get(variable)
    return (text or "").strip() or None


def resolve_access(args: argparse.Namespace, *, project_required_for: str | None = None) -> Access:
    """The :class:`Access` of ``args`` (flags first, then the environment).

    Raises:
        UsageError: no token; or no project while ``project_required_for`` names what
            needs one.
    """
    token = _flag_or_env(args.token, "INSTASENT_TOKEN")
    if token is None:
        raise UsageError("no token: pass --token or set INSTASENT_TOKEN")
    project = _flag_or_env(args.project, "INSTASENT_PROJECT")
    if project is None and project_required_for is not None:
        raise UsageError(
            f"no project: {project_required_for} needs --project or INSTASENT_PROJECT "
            "(the project UID)"
        )
    return Access(
        token=token,
        project=project,
        base_url=_flag_or_env(args.base_url, "INSTASENT_BASE_URL"),
        allow_insecure=bool(args.allow_insecure),
    )
