"""``instasent-async whoami``: check a token and show what it reaches."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..errors import AuthenticationError, InstasentError, NotFoundError, PermissionDeniedError
from .access import Access, resolve_access
from .codes import EXIT_API, EXIT_OK
from .output import fail, missing_v1, say, warn

__all__ = ["register", "run"]


def register(commands: Any, access: argparse.ArgumentParser) -> None:
    """Add the ``whoami`` command to the ``commands`` sub-parsers."""
    parser = commands.add_parser(
        "whoami",
        parents=[access],
        help="check a token and show what it reaches",
        description="Check a token against the API: with a product token print the "
        "organization and its projects (and --project); with a datasource token (or "
        "--datasource) print the datasource stream details.",
    )
    parser.add_argument("--datasource", metavar="ID", help="check access to this datasource")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``whoami``; return the exit code.

    Raises:
        UsageError: no token, or ``--datasource`` without a project.
    """
    access = resolve_access(args, project_required_for="--datasource" if args.datasource else None)
    return asyncio.run(_whoami(access, args.datasource))


def _named(name: Any, ident: Any) -> str:
    if name and ident:
        return f"{name} ({ident})"
    return str(name or ident or "?")


def _print_stream_info(info: Any) -> None:
    org = info.organization or {}
    project = info.project or {}
    ds = info.datasource or {}
    stream = info.stream or {}
    say(f"organization: {_named(org.get('name'), org.get('uid') or org.get('id'))}")
    say(f"project:      {_named(project.get('name'), project.get('uid') or project.get('id'))}")
    kind = f", {ds['type']}" if ds.get("type") else ""
    say(f"datasource:   {_named(ds.get('name'), str(ds.get('id') or '?') + kind)}")
    if stream:
        say(f"stream:       {_named(stream.get('id'), stream.get('status'))}")
    if info.usage:
        usage = info.usage
        text = (
            ", ".join(f"{k}={v}" for k, v in usage.items())
            if isinstance(usage, dict)
            else str(usage)
        )
        say(f"usage:        {text}")


async def _whoami(access: Access, datasource: str | None) -> int:
    project = access.project
    try:
        async with access.client() as client:
            if datasource:
                info = await client.datasource(datasource).info()
                say("token: valid (datasource access)")
                _print_stream_info(info)
                return EXIT_OK
            try:
                org = await client.organization.get()
            except AuthenticationError:
                raise
            except (NotFoundError, PermissionDeniedError) as exc:
                if isinstance(exc, NotFoundError) and missing_v1(access.base_url):
                    return fail(exc, access.base_url)  # the message names the missing /v1
                # A datasource token cannot read the organization: try its datasource.
                if project is None:
                    warn(
                        "error: this token cannot read the organization (a datasource "
                        "token?): pass --project and --datasource to check it"
                    )
                    return EXIT_API
                info = await client.datasource("dsapi").info()
                say("token: valid (datasource token)")
                _print_stream_info(info)
                return EXIT_OK
            say("token: valid (product token)")
            say(f"organization: {_named(org.name, org.uid or org.id)}")
            projects = list(getattr(org, "projects", None) or [])
            say(f"projects ({len(projects)}):")
            for item in projects:
                say(f"  {item.uid or item.id}  {item.name or ''}".rstrip())
            if project is not None:
                found = await client.project.get()
                say(f"project: {_named(found.name, found.uid or project)}")
            return EXIT_OK
    except InstasentError as exc:
        return fail(exc, access.base_url)
