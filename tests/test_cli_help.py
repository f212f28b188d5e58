"""The command line's help: every command and option explained with its default, examples that
parse, a README that names only commands that exist, and one closing summary line per command."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from vidrec.cli import build_parser, main
from vidrec.cli_help import EXAMPLES

README = Path(__file__).resolve().parents[1] / "README.md"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_top_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in subcommands():
        assert re.search(rf"^\s+{re.escape(name)}\s", text, re.MULTILINE), name
    assert "train-two-tower" in text and "report" in text


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_has_help_with_its_default_and_the_help_ends_with_examples(name, capsys) -> None:
    parser = subcommands()[name]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.dest}: no help"
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = capsys.readouterr().out
    options = text.split("options:")[1].split("examples:")[0]
    for action in parser._actions:
        if action.option_strings and not action.required and not isinstance(action, argparse._HelpAction):
            start = re.search(rf"^  {re.escape(action.option_strings[0])}\b", options, re.MULTILINE)
            assert start, f"{name} {action.option_strings[0]} is not in the help"
            entry = options[start.end():].split("\n  -", 1)[0]
            assert "default" in entry, f"{name} {action.option_strings[-1]}: the help does not give the default"
    examples = text.split("examples:\n")[1].strip().splitlines()
    assert 1 <= len(examples) <= 3 and all(f"vidrec {name}" in e for e in examples)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_parses(name) -> None:
    for line in EXAMPLES[name].splitlines():
        words = shlex.split(line.split("#")[0])
        words = words[words.index("vidrec") + 1 :]
        args = build_parser().parse_args(words)
        assert args.command == name


def test_the_readme_names_only_commands_that_exist() -> None:
    text = README.read_text()
    named = set(re.findall(r"(?:^|`|--no-python )vidrec (?:-[qv] )?([a-z][a-z-]*)", text, re.MULTILINE))
    assert named >= {"ingest", "simulate", "split", "train", "train-two-tower", "recommend", "evaluate", "report",
                     "serve", "keys"}  # fmt: skip
    assert named <= set(subcommands()), f"the README names commands that do not exist: {named - set(subcommands())}"


def test_each_command_closes_with_one_summary_line(tmp_path, capsys) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--users", "10", "--videos", "20", "--days", "2"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(rf"simulate: wrote [\d,]+ events, 20 videos, 10 users over 2 days to {out} .*\(\d+\.\d s\)",
                        last), last  # fmt: skip
    assert main(["ingest", "canonical", str(out), "--out", str(tmp_path / "clean")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("ingest: wrote ") and "0 rows quarantined" in last and str(tmp_path / "clean") in last
    assert main(["split", str(tmp_path / "clean"), "--out", str(tmp_path / "split"), "--mode", "global"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("split: global split: wrote ") and last.endswith(" s)")
    assert main(["stats", str(tmp_path / "clean")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("stats: described ")
