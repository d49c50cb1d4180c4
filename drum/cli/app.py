"""``drum``: the command-line entry point (``drum --help`` lists the subcommands)."""

from __future__ import annotations

import os

import typer

from drum.cli import (
    data,
    demo,
    demon,
    demon_builtin,
    embed,
    index,
    lvlm,
    mining,
    report,
    retrieve,
    serve,
    vpgc,
    vpgc_blip2,
)
from drum.cli import eval as eval_cli

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# drum demon: scoring and evaluation (drum.cli.demon), then the built-in benchmark's commands.
demon.app.command("make-builtin")(demon_builtin.make_builtin_command)
demon.app.command("train-base")(demon_builtin.train_base_command)
demon.app.command("freeze-base")(demon_builtin.freeze_base_command)
demon.app.command("benchmark")(demon_builtin.benchmark_command)

# drum vpgc: the adapter's commands (drum.cli.vpgc), then the built-in BLIP-2's.
vpgc.app.command("train-blip2")(vpgc_blip2.train_blip2_command)
vpgc.app.command("freeze-blip2")(vpgc_blip2.freeze_blip2_command)
vpgc.app.command("bottleneck")(vpgc_blip2.bottleneck_command)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(data.app, name="data")
app.add_typer(embed.app, name="embed")
app.add_typer(index.app, name="index")
app.add_typer(lvlm.app, name="lvlm")
app.add_typer(demon.app, name="demon")
app.add_typer(vpgc.app, name="vpgc")
app.command("retrieve")(retrieve.retrieve_command)
app.command("strategies")(retrieve.strategies_command)
app.command("eval")(eval_cli.eval_command)
app.command("mine")(mining.mine_command)
app.command("train")(mining.train_command)
app.command("experiments")(mining.experiments_command)
app.command("demo")(demo.demo_command)
app.command("report")(report.report_command)
app.command("serve")(serve.serve_command)
