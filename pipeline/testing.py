"""A pytest plugin for people who write shipline plugins (and for shipline's own tests).

Installed with shipline through the ``pytest11`` entry point, so its fixtures are there
in any project that has shipline installed::

    def test_my_gate(shipline_cli, tmp_path):
        (tmp_path / "shipline.yml").write_text(PIPELINE)
        result = shipline_cli("run", "-p", "my_gate", cwd=tmp_path)
        assert result.exit_code == 0

    def test_my_gate_blocks(shipline_pipeline):
        run = shipline_pipeline(PIPELINE, plugins=["my_gate"])
        assert run.exit_code == 3
        assert run.report("checks/1").message == "2 open incidents (limit 0)"

``shipline_pipeline`` (:func:`run_pipeline`) runs the pipeline in this process with a
fake clock, so pauses take no time, and offers the ``fake`` target type of
:mod:`pipeline.testtarget` besides the built-in ones.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.clock import Clock, FakeClock
from pipeline.testtarget import FakeTarget, FakeTargetPlugin

if TYPE_CHECKING:
    from pipeline.report import StepReport
    from pipeline.runner import RunResult


@dataclass(frozen=True)
class CliResult:
    """The exit code and output of one in-process ``shipline`` invocation."""

    exit_code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> CliResult:
    """Run ``shipline ARGS`` in this process and capture its output.

    ``env`` entries are set for the duration of the call; the working directory is
    changed to ``cwd`` and restored afterwards.
    """
    from pipeline.cli import main

    stdout = io.StringIO()
    stderr = io.StringIO()
    saved_env = {key: os.environ.get(key) for key in (env or {})}
    saved_cwd = Path.cwd()
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(list(args))
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def shipline_cli() -> Callable[..., CliResult]:
    """Return :func:`run_cli`: ``shipline_cli("validate", "shipline.yml", cwd=tmp_path)``."""
    return run_cli


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock whose sleeps return at once; pass it to code that accepts a clock."""
    return FakeClock()


@dataclass
class PipelineRun:
    """The result of one :func:`run_pipeline` call.

    ``errors`` is the validation message when the pipeline is invalid (exit code 2,
    ``result`` is ``None``). ``output`` is what the terminal reporter printed.
    ``targets`` maps environment names to the ``fake`` targets the run used.
    """

    exit_code: int
    result: RunResult | None
    errors: str = ""
    output: str = ""
    targets: dict[str, FakeTarget] = field(default_factory=dict)
    #: The run's CI output values, such as ``deployed-version``.
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def reports(self) -> list[StepReport]:
        """Every step and rollback report, in the order they finished."""
        return self.result.reports if self.result is not None else []

    def report(self, step_id: str) -> StepReport:
        """Return the report of step ``step_id``: ``stage/number``, or
        ``stage/number/rollback`` for the rollback of that step.

        Raises KeyError, listing the ids there are, when no such report exists.
        """
        for report in self.reports:
            if report.step_id == step_id:
                return report
        known = ", ".join(r.step_id for r in self.reports) or "none"
        raise KeyError(f"no report of step {step_id!r}; the reports are of: {known}")


def run_pipeline(
    pipeline: str | Mapping[str, Any],
    *,
    directory: Path,
    plugins: Sequence[object | str] = (),
    targets: Mapping[str, FakeTarget] | None = None,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    args: Sequence[str] = (),
) -> PipelineRun:
    """Validate and run a pipeline in this process, as ``shipline run`` would.

    ``pipeline`` is YAML text or a mapping, written to ``directory/shipline.yml``.
    ``plugins`` are module names (loaded as ``-p`` would) or plugin objects. Entry
    points are not loaded, so only the built-ins, ``plugins`` and the pipeline's own
    ``plugins:`` take part. ``targets`` are :class:`FakeTarget` objects to use for the
    environments they are keyed by. ``env`` is added to ``os.environ`` for ``${VAR}``
    values. ``clock`` defaults to a fresh :class:`FakeClock`. ``args`` are further
    ``shipline run`` options, such as ``["--junitxml", "report.xml"]``.
    """
    import yaml

    from pipeline.cli import build_parser
    from pipeline.config import Config
    from pipeline.errors import PipelineError
    from pipeline.planning import load_plan
    from pipeline.plugins import PluginRegistry
    from pipeline.runner import Runner

    path = directory / "shipline.yml"
    text = pipeline if isinstance(pipeline, str) else yaml.safe_dump(dict(pipeline))
    path.write_text(text, encoding="utf-8")

    fake_targets = FakeTargetPlugin(targets)
    registry = PluginRegistry()
    registry.load_builtins()
    registry.register(fake_targets, name="fake-target", origin="pipeline.testing")
    for index, plugin in enumerate(plugins):
        if isinstance(plugin, str):
            registry.load_modules([plugin], origin="run_pipeline(plugins=...)")
        else:
            registry.register(plugin, name=f"test-plugin-{index}", origin="run_pipeline")
    registry.check_pending()

    argv = ["run", str(path), *args]
    options = build_parser(registry, argv).parse_args(argv)
    stdout = io.StringIO()
    config = Config(options=options, registry=registry, invocation_dir=directory,
                    clock=clock or FakeClock(), stdout=stdout, stderr=stdout)
    config.hook.shipline_configure.call_historic(kwargs={"config": config})
    try:
        loaded = load_plan(path, config, environ={**os.environ, **(env or {})})
        runner = Runner(loaded.plan, config)
        result = runner.run()
    except PipelineError as exc:
        return PipelineRun(int(exc.exit_code), None, errors=str(exc), output=stdout.getvalue())
    finally:
        config.hook.shipline_unconfigure(config=config)
    return PipelineRun(int(result.exit_code), result, output=stdout.getvalue(),
                       targets=dict(fake_targets.targets),
                       outputs=dict(runner.context.outputs))


@pytest.fixture
def shipline_pipeline(tmp_path: Path) -> Callable[..., PipelineRun]:
    """Return :func:`run_pipeline` with ``directory`` set to the test's ``tmp_path``."""

    def run(pipeline: str | Mapping[str, Any], **kwargs: Any) -> PipelineRun:
        return run_pipeline(pipeline, directory=tmp_path, **kwargs)

    return run
