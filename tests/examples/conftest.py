"""The examples are scripts, not a package: load one by path."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def examples_dir() -> Path:
    """The repository's ``examples/`` folder."""
    return EXAMPLES


@pytest.fixture
def load_example() -> Callable[[str], ModuleType]:
    """``load_example("fastapi_app")``: import ``examples/fastapi_app.py`` afresh."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
        spec.loader.exec_module(module)
        return module

    return load
