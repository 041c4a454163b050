"""A command's parser loads only its own group (dagvault_cli.main.COMMAND_GROUPS): the table
must say exactly what the groups register, or a command would vanish from its own parser."""

from __future__ import annotations

import argparse
import importlib

import pytest

from dagvault.errors import ConfigError
from dagvault_cli.main import COMMAND_GROUPS, GROUPS, SERVICE_COMMANDS, build_parser


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


@pytest.mark.parametrize("group", GROUPS)
def test_the_table_names_every_command_of_each_group(group: str) -> None:
    parser = argparse.ArgumentParser()
    importlib.import_module(f"dagvault_cli.commands.{group}").register(parser.add_subparsers())
    registered = _commands(parser)
    assert registered and {COMMAND_GROUPS.get(name) for name in registered} == {group}
    assert sorted(registered) == sorted(c for c, g in COMMAND_GROUPS.items() if g == group)


def test_the_whole_parser_has_every_command_in_the_groups_order() -> None:
    commands = _commands(build_parser())
    assert sorted(commands) == sorted([*COMMAND_GROUPS, *SERVICE_COMMANDS])
    order = [COMMAND_GROUPS.get(c, "service") for c in commands]
    assert order == sorted(order, key=[*GROUPS, "service"].index)


@pytest.mark.parametrize("name", [*COMMAND_GROUPS, *SERVICE_COMMANDS])
def test_a_commands_own_parser_knows_it(name: str) -> None:
    assert name in _commands(build_parser(name))


def test_an_unknown_command_is_refused_by_the_whole_parser() -> None:
    with pytest.raises(ConfigError, match="invalid choice: 'lsit'"):
        build_parser("lsit").parse_args(["lsit"])
