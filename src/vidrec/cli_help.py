"""The help of the command line: each option's default, and the examples each ``--help`` ends with."""

from __future__ import annotations

import argparse
import shutil
import textwrap


class Help(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; each option's default appended when its help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.required or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if action.default is None or action.default is False:
            return f"{text} (default: off)" if action.nargs == 0 else text
        shown = ",".join(action.default) if isinstance(action.default, list) else action.default
        return f"{text} (default: {shown or 'none'})"


EXAMPLES = {
    "ingest": """\
  vidrec ingest movielens ../shared/data/ml-100k --out data/ml100k
  vidrec ingest table mapping.toml --out data/mylog     # any CSV/Parquet log, mapped by a TOML file
  vidrec ingest canonical data/raw --out data/clean --strict""",
    "simulate": """\
  vidrec simulate --out data/sim                            # 3,000 users, 2,000 videos, 28 days
  vidrec simulate --users 100000 --videos 100000 --days 28 --seed 1 --out data/sim-100k""",
    "split": """\
  vidrec split data/ml100k --out splits/ml100k                         # each user's last 20% of watches
  vidrec split data/sim --out splits/sim --mode global --fraction 0.2
  vidrec split data/sim --out splits/sim --cut 2025-06-22T00:00:00""",
    "stats": """\
  vidrec stats data/sim""",
    "train": """\
  vidrec train splits/ml100k/train --out models/ml100k
  vidrec train data/sim --out models/sim --config my.toml --strict""",
    "train-two-tower": """\
  vidrec train-two-tower data/sim --out tt/ --set embedding_dim=32 epochs=10
  torchrun --standalone --nproc_per_node=2 --no-python vidrec train-two-tower data/sim --out tt/""",
    "recommend": """\
  vidrec recommend models/ml100k --users users.txt --out recs.parquet
  vidrec recommend models/ml100k --users users.txt --k 50 --stage candidates --out candidates.parquet""",
    "evaluate": """\
  vidrec evaluate models/ml100k --split splits/ml100k
  vidrec evaluate models/sim --split splits/sim --no-baselines --out eval.json""",
    "report": """\
  vidrec report --model models/sim --data data/sim --split splits/sim --out report.html
  vidrec report --model models/ml100k --data splits/ml100k --out report.html   # --data may be the split""",
    "serve": """\
  vidrec serve models/ml100k --api-keys keys.json
  vidrec serve models/ml100k --port 8080 --api-keys keys.json --workers 2 --log-format json
  vidrec serve models/ml100k --no-auth --feature-store redis://10.0.0.5:6379/0 --watch 30""",
    "keys": """\
  vidrec keys create ingest --file keys.json --scopes events:write,catalogue:write   # prints the key once
  vidrec keys list --file keys.json
  vidrec keys revoke ingest --file keys.json""",
    "demo": """\
  vidrec demo
  vidrec demo --out /tmp/vidrec-demo""",
}
"""What each subcommand's ``--help`` ends with."""


def command(sub: argparse._SubParsersAction, name: str, help: str, description: str | None = None
             ) -> argparse.ArgumentParser:  # fmt: skip
    """A subcommand whose help ends with its examples."""
    text = wrapped(description or help[0].upper() + help[1:] + ".")
    return sub.add_parser(name, help=help, description=text, epilog="examples:\n" + EXAMPLES[name],
                          formatter_class=Help)  # fmt: skip


def wrapped(text: str) -> str:
    """``text`` wrapped to the terminal (at most 100 columns): the examples keep their lines, so the
    formatter does not wrap descriptions itself."""
    return textwrap.fill(text, min(shutil.get_terminal_size().columns - 2, 100))
