"""Finding, loading and listing plugins.

Plugins come from, in this order: the built-in list below, the ``shipline``
entry-point group of installed distributions, ``-p MODULE`` on the command line, the
``plugins:`` list of the pipeline file, and a ``shipline_plugins.py`` beside the
pipeline file. ``-p no:NAME`` blocks a plugin by name, built-ins included.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

import pluggy

from pipeline import hookspecs
from pipeline.diagnostics import closest_match
from pipeline.entrypoints import EntryPoint, read_entry_points
from pipeline.errors import PluginError

logger = logging.getLogger("shipline")

#: Built-in plugins, registered first, under these names (blockable with ``-p no:NAME``).
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("deploy", "pipeline.builtin.deploy"),
    ("command", "pipeline.builtin.command_target"),
    ("gates", "pipeline.builtin.gates"),
    ("scan", "pipeline.builtin.scan"),
    ("verify", "pipeline.builtin.verify_gate"),
    ("package", "pipeline.builtin.package_gate"),
    ("analysis", "pipeline.analysis"),
    ("rolling", "pipeline.builtin.rolling"),
    ("blue-green", "pipeline.builtin.bluegreen"),
    ("canary", "pipeline.builtin.canary"),
    ("probe", "pipeline.builtin.probe"),
    ("notifications", "pipeline.notifications"),
    ("webhook", "pipeline.builtin.webhook"),
    ("slack", "pipeline.builtin.slack"),
    ("teams", "pipeline.builtin.teams"),
    ("github", "pipeline.builtin.github"),
    ("email", "pipeline.builtin.smtp_email"),
    ("local", "pipeline.builtin.local_target"),
    ("terminal", "pipeline.builtin.terminal"),
    ("junitxml", "pipeline.builtin.junitxml"),
    ("sarif", "pipeline.builtin.sarifreport"),
    ("eventlog", "pipeline.builtin.eventlog"),
    ("metrics", "pipeline.builtin.metrics"),
    ("github-actions", "pipeline.builtin.github_actions"),
    ("gitlab-ci", "pipeline.builtin.gitlab_ci"),
    ("protect", "pipeline.builtin.protect"),
    ("state", "pipeline.builtin.statehistory"),
    ("series", "pipeline.builtin.series"),
    ("approval-gate", "pipeline.builtin.approval_gate"),
    ("freeze", "pipeline.builtin.freeze_guard"),
    ("strategy-timings", "pipeline.builtin.strategy_timings"),
    ("analysis-gate", "pipeline.builtin.analysis_gate"),
    ("prometheus", "pipeline.builtin.prometheus"),
    ("http-provider", "pipeline.builtin.http_provider"),
    ("command-provider", "pipeline.builtin.command_provider"),
)

#: The ``PluginInfo.origin`` of the plugins in :data:`BUILTIN_PLUGINS`.
BUILTIN_ORIGIN = "built-in"

ENTRY_POINT_GROUP = "shipline"
LOCAL_PLUGIN_FILE = "shipline_plugins.py"


@dataclass(frozen=True)
class PluginInfo:
    """The origin and location of a registered plugin, for ``shipline plugins``."""

    name: str
    origin: str
    location: str


class PluginRegistry:
    """Loads plugins into one plugin manager and remembers where each came from."""

    def __init__(self) -> None:
        self.pluginmanager = pluggy.PluginManager("shipline")
        self.pluginmanager.add_hookspecs(hookspecs)
        self._info: dict[str, PluginInfo] = {}

    @property
    def loaded(self) -> list[PluginInfo]:
        return [info for name, info in self._info.items() if self.pluginmanager.has_plugin(name)]

    def block(self, names: Iterable[str]) -> None:
        for name in names:
            self.pluginmanager.set_blocked(name)

    def builtin_names(self) -> frozenset[str]:
        """Return the names of the loaded plugins registered with the built-in origin."""
        return frozenset(info.name for info in self.loaded if info.origin == BUILTIN_ORIGIN)

    def load_builtins(self) -> None:
        for name, module in BUILTIN_PLUGINS:
            self.import_and_register(module, name=name, origin=BUILTIN_ORIGIN)

    def load_entry_points(self) -> None:
        """Register every entry point of the ``shipline`` group that is not blocked.

        :func:`pipeline.entrypoints.read_entry_points` reads them without importing
        importlib.metadata; where it cannot, importlib.metadata reads them instead.
        """
        found = read_entry_points(ENTRY_POINT_GROUP, sys.path, sys.meta_path)
        if found is None:
            logger.debug("reading %s entry points with importlib.metadata", ENTRY_POINT_GROUP)
            found = _entry_points_from_metadata(ENTRY_POINT_GROUP)

        for entry_point in found:
            if self.pluginmanager.is_blocked(entry_point.name):
                continue
            if self.pluginmanager.has_plugin(entry_point.name):
                continue
            origin = entry_point.origin
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin '{entry_point.name}' ({origin}) could not be loaded: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self.register(plugin, name=entry_point.name, origin=origin)

    def load_modules(self, modules: Sequence[str], origin: str) -> None:
        for module in modules:
            if self.pluginmanager.is_blocked(module) or self.pluginmanager.has_plugin(module):
                continue
            self.import_and_register(module, name=module, origin=origin)

    def load_local_file(self, directory: Path) -> None:
        """Register ``shipline_plugins.py`` from ``directory`` if it exists."""
        path = directory / LOCAL_PLUGIN_FILE
        if not path.is_file():
            return
        name = str(path.resolve())
        if self.pluginmanager.is_blocked(LOCAL_PLUGIN_FILE) or self.pluginmanager.has_plugin(name):
            return
        module = _import_file(path)
        self.register(module, name=name, origin="local file")

    def import_and_register(self, module_name: str, *, name: str, origin: str) -> None:
        if self.pluginmanager.is_blocked(name):
            return
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(
                f"plugin '{name}' ({origin}) could not be imported: {type(exc).__name__}: {exc}"
            ) from exc
        if self.pluginmanager.is_registered(module):
            # Already loaded under another name, e.g. a built-in also given with -p.
            return
        self.register(module, name=name, origin=origin)

    def register(self, plugin: object, *, name: str, origin: str) -> None:
        try:
            self.pluginmanager.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin '{name}' ({origin}) is invalid: {exc}") from exc
        self._info[name] = PluginInfo(name, origin, _location(plugin))
        logger.debug("registered plugin %s from %s", name, origin)

    def check_pending(self) -> None:
        """Fail if a plugin implements a hook that does not exist (a typo, usually).

        Hook implementations marked ``optionalhook=True`` are allowed to have no
        specification, as in pluggy.
        """
        known = [name for name in dir(hookspecs) if name.startswith("shipline_")]
        for name in sorted(vars(self.pluginmanager.hook)):
            caller = getattr(self.pluginmanager.hook, name)
            if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
                continue
            for impl in caller.get_hookimpls():
                if impl.opts.get("optionalhook"):
                    continue
                match = closest_match(name, known)
                hint = f" (did you mean '{match}'?)" if match else ""
                raise PluginError(
                    f"plugin '{impl.plugin_name}' implements '{name}', which is not a "
                    f"shipline hook{hint}"
                )

    def plugin_of_traceback(self, tb: TracebackType | None) -> str | None:
        """Name the registered plugin whose code raised, from the outermost plugin frame.

        Frames of pluggy and of ``pipeline`` modules that are not plugins are skipped,
        so a hook implementation that calls into shipline's helpers is still blamed.
        """
        files = self._plugin_files()
        while tb is not None:
            name = files.get(tb.tb_frame.f_code.co_filename)
            if name is not None:
                return name
            tb = tb.tb_next
        return None

    def _plugin_files(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for name, plugin in self.pluginmanager.list_name_plugin():
            location = _location(plugin)
            if location and plugin is not None:
                files[location] = name
        return files


def _entry_points_from_metadata(group: str) -> list[EntryPoint]:
    """Return the entry points in ``group`` as importlib.metadata finds them."""
    from importlib.metadata import entry_points

    found: list[EntryPoint] = []
    for entry_point in entry_points(group=group):
        dist = entry_point.dist
        name, version = (dist.name, dist.version) if dist else ("", "")
        found.append(_MetadataEntryPoint(entry_point.name, entry_point.value,
                                         name, version, entry_point.load))
    return found


@dataclass(frozen=True)
class _MetadataEntryPoint(EntryPoint):
    """An entry point read by importlib.metadata, loaded by it too."""

    loader: Callable[[], object]

    def load(self) -> object:
        return self.loader()


def _import_file(path: Path) -> ModuleType:
    module_name = f"shipline_plugins_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginError(f"{path}: could not be imported: {type(exc).__name__}: {exc}") from exc
    return module


def _location(plugin: object) -> str:
    module = plugin if isinstance(plugin, ModuleType) else sys.modules.get(type(plugin).__module__)
    return str(getattr(module, "__file__", "") or "")
