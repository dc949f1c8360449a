"""The `attestream` command: one small module per command group under `attestream.commands`."""

from __future__ import annotations

import sys

import typer

from attestream.commands import (
    anchor,
    demo,
    detect,
    evaluate,
    explain,
    forensic,
    ledger,
    models,
    proofs,
    simulate,
    stack,
    train,
)
from attestream.errors import AttestreamError

app = typer.Typer(
    name="attestream",
    help="Provable real-time fraud and counterfeit detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(simulate.app, name="simulate")
app.add_typer(train.app, name="train")
app.add_typer(evaluate.app, name="evaluate")
app.add_typer(models.app, name="models")
app.command("detect")(detect.detect)
app.add_typer(ledger.app, name="ledger")
app.add_typer(anchor.app, name="anchor")
forensic.app.command("prove")(proofs.prove)
forensic.app.command("verify-proof")(proofs.verify_proof)
forensic.app.command("consistency")(proofs.consistency)
forensic.app.command("explain")(explain.explain)
forensic.app.command("replay")(explain.replay)
app.add_typer(forensic.app, name="forensic")
app.command("demo")(demo.demo)


def main() -> None:
    try:
        app()
    except AttestreamError as exc:
        typer.echo(f"error: {exc.diagnostics()}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
