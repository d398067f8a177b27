"""Every subcommand takes `--config` after its name; those that talk to a running
`warroom up` take `--data-dir`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from warroom.cli import build_parser

# Commands that talk to a running stack (SPEC §9), by their words.
TALK_TO_A_STACK = {("token",), ("alert", "send"), ("doctor",), ("replay",), ("audit",), ("postmortem",)}


def leaves(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield words, parser
    for action in subs:
        for name, command in action.choices.items():
            yield from leaves(command, (*words, name))


def test_every_subcommand_takes_config_after_its_name() -> None:
    found = list(leaves(build_parser()))
    assert len(found) >= 11
    for words, command in found:
        assert "--config" in command._option_string_actions, words


def test_config_after_the_command_is_the_one_read_and_before_it_still_works() -> None:
    parser = build_parser()
    assert parser.parse_args(["up", "--config", "a.toml"]).config == Path("a.toml")
    assert parser.parse_args(["--config", "b.toml", "up"]).config == Path("b.toml")
    assert parser.parse_args(["--config", "b.toml", "doctor", "--config", "c.toml"]).config == Path("c.toml")
    assert parser.parse_args(["worker"]).config is None


@pytest.mark.parametrize("words", sorted(TALK_TO_A_STACK))
def test_commands_that_talk_to_a_running_stack_take_data_dir(words: tuple[str, ...]) -> None:
    command = dict(leaves(build_parser()))[words]
    assert "--data-dir" in command._option_string_actions, words
