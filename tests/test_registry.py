"""The step table is complete and exact, and a build imports only the steps it names."""
from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

from instruct.config import ConfigError
from instruct.pipeline.registry import STEPS, available_steps, make_step
from instruct.pipeline.step import Step

STEP_PACKAGES = ("instruct.filters", "instruct.dedup", "instruct.pii", "instruct.templates", "instruct.quality")


def named_step_classes() -> dict[str, type[Step]]:
    """Every Step subclass with a `name` defined in the step packages (imports them all)."""
    for package_name in STEP_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, package_name + "."):
            importlib.import_module(module.name)
    found, pending = {}, list(Step.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__dict__.get("name") and cls.__module__.startswith(STEP_PACKAGES):
            found[cls.name] = cls
    return found


def test_every_step_class_is_in_the_table_under_its_own_name() -> None:
    assert available_steps() == named_step_classes()


def test_unknown_steps_are_errors_that_list_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown step 'gopher_qualty'; available: c4, code_quality"):
        make_step("gopher_qualty", {})
    with pytest.raises(ConfigError, match="cannot import"):
        make_step("instruct.filters.nope:Nope", {})
    assert type(make_step("instruct.filters.c4:C4", {})) is available_steps()["c4"]


def test_looking_up_a_step_imports_only_its_module() -> None:
    code = ("import sys; from instruct.pipeline.registry import make_step; make_step('c4', {}); "
            "print(sorted(m for m in sys.modules if m.startswith(('instruct.synth', 'instruct.dedup', "
            "'instruct.quality', 'instruct.pii', 'click'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded
    assert len(STEPS) == len(set(STEPS.values()))
