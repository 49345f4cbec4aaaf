"""The parser class of every `inference-tools` command: how help looks, and the global options.

`cli.build_parser` makes the top-level `CommandParser`; `add_subparsers` creates every command's
parser with the class of its parent, so each command in `commands/` gets both without naming
them. Command modules therefore pass no `formatter_class` and never write `%(default)s`:

- Help shows each option's default. `HelpFormatter` appends ` (default: VALUE)` to the help of
  every option whose default means something (not None, False, an empty list or SUPPRESS), with
  lists as the comma-separated text the option takes. A help that speaks of a computed default in
  words (`default: one above the highest stored`) leaves the value None.
- Descriptions and epilogs are shown as written (line breaks, indented examples); each command's
  epilog ends with `Example:` or `Examples:` and command lines that the tests parse.
- The global options (`-v/--verbose`) are accepted before and after any command. Every parser
  has them; only the top-level one has a default, the others default to SUPPRESS, so a command
  parser sets the value when the option follows the command and otherwise leaves the top-level
  value alone (argparse copies only the attributes a subparser set).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from types import ModuleType
from typing import Any

EXAMPLE_HEADINGS = ("Example:", "Examples:")


def shows_default(default: Any) -> bool:
    """Whether help should state this default: a value a user would otherwise have to guess."""
    if default is None or default is False or default is argparse.SUPPRESS:
        return False
    return not (isinstance(default, list | tuple) and not default)


def default_text(default: Any) -> str:
    """The default as a user would type it: `1,2,4` for a tuple the option parses from that."""
    if isinstance(default, list | tuple):
        return ",".join(str(item) for item in default)
    return str(default)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; every meaningful default stated in the option's help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if "%(default)" in help_text or not shows_default(action.default):
            return help_text
        # The rendered value goes in literally: escape it from argparse's %-expansion.
        suffix = f"(default: {default_text(action.default)})".replace("%", "%%")
        return f"{help_text} {suffix}" if help_text else suffix

    def _split_lines(self, text: str, width: int) -> list[str]:
        # Paths, URLs and hyphenated flags stay whole, so that they can be copied from the help.
        return textwrap.wrap(
            self._whitespace_matcher.sub(" ", text).strip(),
            width,
            break_long_words=False,
            break_on_hyphens=False,
        )


def add_global_options(parser: argparse.ArgumentParser, top_level: bool) -> None:
    """The options every command accepts, wherever they stand on the command line."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="log debug messages, and show the whole traceback of an error",
    )


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser with the project's help format and global options.

    `top_level=True` for the `inference-tools` parser only: it alone gives the global options
    their defaults (see the module's docstring).
    """

    def __init__(
        self,
        *args: Any,
        top_level: bool = False,
        formatter_class: type[argparse.HelpFormatter] = HelpFormatter,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
        add_global_options(self, top_level)


def command_tree(prog: str, description: str, modules: Sequence[ModuleType]) -> CommandParser:
    """A top-level parser with one command per module (`add_command`):
    `inference-tools`, and the lab's `python -m lab`."""
    parser = CommandParser(prog=prog, description=description, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules:
        add_command(subparsers, module)
    return parser


def command_name(module: ModuleType) -> str:
    """A command is named after its module: `commands/build_models.py` is `build-models`."""
    return module.__name__.rsplit(".", 1)[-1].replace("_", "-")


def add_command(subparsers: argparse._SubParsersAction, module: ModuleType) -> None:
    """The command `module` carries: `SUMMARY` (its line in the parent's help), `DESCRIPTION`,
    `EXAMPLES` (the epilog), `add_arguments(parser)` and `run(args)`, which returns the exit
    status. A group of commands is a package with `SUMMARY`, `DESCRIPTION` and `ACTIONS`, its
    commands' modules (`autoscaling calibrate`, ...). A module with `register(subparsers)` adds
    itself: a pod hook run as a command (`add_module_command`)."""
    if hasattr(module, "register"):
        module.register(subparsers)
        return
    if hasattr(module, "ACTIONS"):
        group = subparsers.add_parser(
            command_name(module), help=module.SUMMARY, description=module.DESCRIPTION
        )
        actions = group.add_subparsers(
            dest=f"{command_name(module)}_action", metavar="ACTION", required=True
        )
        for action in module.ACTIONS:
            add_command(actions, action)
        return
    parser = subparsers.add_parser(
        command_name(module),
        help=module.SUMMARY,
        description=module.DESCRIPTION,
        epilog=module.EXAMPLES,
    )
    module.add_arguments(parser)
    parser.set_defaults(func=module.run)


def add_module_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    module: ModuleType,
    help: str,
    epilog: str,
) -> None:
    """A command that a module carries whole: its docstring, `add_arguments(parser)` and
    `run(args)` (the pod hooks, which run the same outside the tooling)."""
    parser = subparsers.add_parser(name, help=help, description=module.__doc__, epilog=epilog)
    module.add_arguments(parser)
    parser.set_defaults(func=module.run)
