"""The ``shipline`` command: parse arguments, load plugins, dispatch to a subcommand.

Each subcommand lives in its own module with ``add_parser(subparsers, parents)`` and
``main(config) -> ExitCode``. Expected problems print one message and exit with their
documented code; anything else is an internal error (exit 70) that writes a crash
report, unless ``--debug`` asks for the traceback on the terminal.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from pipeline import __version__
from pipeline.config import Config
from pipeline.diagnostics import closest_match
from pipeline.errors import PipelineError, ShiplineError, UsageError
from pipeline.exitcodes import ExitCode
from pipeline.masking import Masker, MaskingFilter
from pipeline.plugins import PluginRegistry
from pipeline.secretsources import register_environment

logger = logging.getLogger("shipline")

#: Subcommand name -> its module, in the order ``--help`` lists them. A start imports
#: only the module of the subcommand it runs (see :func:`build_parser`).
COMMANDS: dict[str, str] = {
    "validate": "pipeline.cli.validate_command",
    "plan": "pipeline.cli.plan_command",
    "run": "pipeline.cli.run_command",
    "schema": "pipeline.cli.schema_command",
    "plugins": "pipeline.cli.plugins_command",
    "analyze": "pipeline.cli.analyze_command",
    "history": "pipeline.cli.history_command",
    "status": "pipeline.cli.status_command",
    "lock": "pipeline.cli.lock_command",
    "rollback": "pipeline.cli.rollback_command",
    "keygen": "pipeline.cli.keygen_command",
    "sign": "pipeline.cli.sign_command",
    "verify": "pipeline.cli.verify_command",
    "encrypt": "pipeline.cli.encrypt_command",
    "decrypt": "pipeline.cli.decrypt_command",
    "approve": "pipeline.cli.approve_command",
}


def command_module(name: str) -> ModuleType:
    """Import and return the module of subcommand ``name``."""
    return importlib.import_module(COMMANDS[name])


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (exit 2), not SystemExit.

    ``known_options`` contains the long options of every subcommand the parser was
    built with, so that an unrecognized option gets a suggestion.
    """

    known_options: tuple[str, ...] = ()
    #: The subcommand named on the command line, whose help an unknown option points to.
    subcommand: str | None = None

    def error(self, message: str) -> None:  # type: ignore[override]
        prog = self.prog
        if self.subcommand and message.startswith("unrecognized arguments: "):
            prog = f"{prog} {self.subcommand}"
        raise UsageError(f"{message}{self._suggestion(message)} (see '{prog} --help')")

    def _suggestion(self, message: str) -> str:
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return ""
        for word in message[len(prefix):].split():
            option = word.partition("=")[0]
            if not option.startswith("--") or option in self.known_options:
                continue
            # Compared without the dashes, which every option shares.
            match = closest_match(option[2:], [known[2:] for known in self.known_options])
            if match is not None:
                return f" (did you mean --{match}?)"
        return ""


def common_options() -> argparse.ArgumentParser:
    """Return the parent parser with the options every subcommand accepts."""
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("common options")
    group.add_argument(
        "-p", dest="plugins", action="append", default=[], metavar="NAME",
        help="load the plugin module NAME; 'no:NAME' blocks the plugin registered as NAME",
    )
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="print more: -v adds each step's details, -vv also the log at "
                       "INFO level")
    group.add_argument("-q", "--quiet", action="count", default=0,
                       help="print less: only failures and the summary")
    group.add_argument("--debug", action="store_true",
                       help="show tracebacks and trace every hook call on stderr")
    group.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="format of the log on stderr: 'text' (default) or 'json', one "
                       "JSON object per line with time, level, message and logger")
    return parent


def build_parser(
    registry: PluginRegistry, argv: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """Return the argument parser for ``argv``.

    When ``argv`` names a subcommand, only that subcommand's module is imported and
    added, because importing all of them costs a noticeable part of start-up. Anything
    else (``--help``, no subcommand, an unknown one) gets every subcommand, so that the
    help and the error list them all.
    """
    selected = next((arg for arg in argv if not arg.startswith("-")), None)
    names = [selected] if selected in COMMANDS else list(COMMANDS)
    parser = _Parser(
        prog="shipline",
        description="Run progressive deployments (canary, blue-green, rolling) from CI.",
        epilog="Exit codes: 0 ok, 1 failed and rolled back, 2 invalid, 3 blocked, "
        "4 rollback failed, 5 locked, 70 internal error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"shipline {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parents = [common_options()]
    for name in names:
        subparser = command_module(name).add_parser(subparsers, parents)
        subparser.set_defaults(command=name)
        if name == "run":
            registry.pluginmanager.hook.shipline_addoption.call_historic(
                kwargs={"parser": subparser}
            )
    parser.subcommand = selected if selected in COMMANDS else None
    # argparse has no public list of a parser's options, hence ``_actions``.
    parser.known_options = tuple(sorted({
        option for subparser in subparsers.choices.values()
        for action in subparser._actions
        for option in action.option_strings if option.startswith("--")
    }))
    return parser


def _prescan_plugins(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Find ``-p`` values before parsing, so that plugins can add options."""
    load: list[str] = []
    block: list[str] = []
    for index, arg in enumerate(argv):
        value = None
        if arg == "-p" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("-p") and len(arg) > 2:
            value = arg[2:]
        if value is None:
            continue
        if value.startswith("no:"):
            block.append(value[3:])
        else:
            load.append(value)
    return load, block


def _configure_logging(options: argparse.Namespace, config: Config) -> None:
    from pipeline.logformat import JsonFormatter

    handler = logging.StreamHandler(config.stderr)
    if options.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("shipline: %(levelname)s: %(message)s"))
    handler.addFilter(MaskingFilter(config.masker))
    logger.handlers[:] = [handler]
    logger.propagate = False
    if options.debug:
        logger.setLevel(logging.DEBUG)
        pm = config.pluginmanager
        pm.trace.root.setwriter(lambda text: logger.debug("hook: %s", text.rstrip()))
        pm.enable_tracing()
    elif options.verbose >= 2:
        logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.WARNING)


def _run(argv: Sequence[str], masker: Masker) -> ExitCode:
    load, block = _prescan_plugins(argv)
    registry = PluginRegistry()
    registry.block(block)
    registry.load_builtins()
    if not os.environ.get("SHIPLINE_DISABLE_PLUGIN_AUTOLOAD"):
        registry.load_entry_points()
    registry.load_modules(load, origin="-p on the command line")
    registry.check_pending()

    parser = build_parser(registry, argv)
    try:
        options = parser.parse_args(argv)
    except SystemExit as exc:
        # --help and --version print and exit 0 through argparse.
        return ExitCode.OK if exc.code in (None, 0) else ExitCode.INVALID
    if options.command is None:
        parser.print_help()
        return ExitCode.INVALID

    config = Config(options=options, registry=registry, invocation_dir=Path.cwd(),
                    masker=masker)
    _configure_logging(options, config)
    config.hook.shipline_configure.call_historic(kwargs={"config": config})
    try:
        return ExitCode(command_module(options.command).main(config))
    except PipelineError as exc:
        config.hook.shipline_invalid_pipeline(diagnostics=exc.diagnostics, config=config)
        raise
    finally:
        config.hook.shipline_unconfigure(config=config)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code.

    With ``--debug``, every error is printed with its traceback first. Every message
    and traceback is masked with the run's secrets, including the values of
    environment variables with secret names, registered before anything else runs.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    json_logs = _wants_json_logs(args)
    masker = Masker()
    register_environment(masker, os.environ)
    _register_url_passwords(masker, args)
    mask = masker.mask
    try:
        return int(_run(args, masker))
    except PipelineError as exc:
        _print_traceback(debug, mask)
        _print_error(mask(str(exc)), json_logs)
        return int(exc.exit_code)
    except ShiplineError as exc:
        _print_traceback(debug, mask)
        _print_error(mask(f"shipline: error: {exc}"), json_logs)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("shipline: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`shipline plan | head`): nothing is wrong with the
        # command, so stop quietly. Python would report the pipe again when it flushes
        # stdout at exit, so point stdout at /dev/null first.
        _silence_stdout()
        return int(ExitCode.OK)
    except Exception as exc:
        if debug:
            _print_traceback(debug, mask)
            print(mask(f"shipline: internal error: {type(exc).__name__}: {exc}"),
                  file=sys.stderr)
            return int(ExitCode.INTERNAL_ERROR)
        # Imported here: the report needs tempfile and platform, which only a crash uses.
        from pipeline.cli.crash import write_crash_report

        path = write_crash_report(exc, args, mask=mask)
        print(
            mask(f"shipline: internal error: {type(exc).__name__}: {exc}\n")
            + f"shipline: a crash report with the traceback was written to {path}; "
            "please attach it to a bug report",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL_ERROR)


def _register_url_passwords(masker: Masker, args: Sequence[str]) -> None:
    """Add the database passwords in the arguments and in SHIPLINE_STATE to the masker,
    so that a ``--state`` URL's password never reaches a message or a log."""
    from pipeline.state import STATE_VARIABLE
    from pipeline.state.urlsecrets import find_passwords

    for text in [*args, os.environ.get(STATE_VARIABLE, "")]:
        masker.update(find_passwords(text))


def _wants_json_logs(args: Sequence[str]) -> bool:
    """Return whether the arguments select ``--log-format json``.

    Read from the raw arguments, because an error can end the command before, or
    while, argparse reads them.
    """
    for index, arg in enumerate(args):
        if arg == "--log-format=json":
            return True
        if arg == "--log-format" and args[index + 1:index + 2] == ["json"]:
            return True
    return False


def _print_error(text: str, json_logs: bool) -> None:
    """Print the error that ends the command: as text, or with ``--log-format json`` as
    one JSON log record at level ERROR, which a log collector can parse."""
    if not json_logs:
        print(text, file=sys.stderr)
        return
    from pipeline.logformat import JsonFormatter

    record = logging.LogRecord("shipline", logging.ERROR, __file__, 0, text, None, None)
    print(JsonFormatter().format(record), file=sys.stderr)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _print_traceback(debug: bool, mask: Callable[[str], str]) -> None:
    if debug:
        print(mask(traceback.format_exc()), end="", file=sys.stderr)
