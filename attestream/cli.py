"""The `attestream` command: one small module per command group under `attestream.commands`.

`main` is where every error becomes an exit code (`attestcore.errors.ExitCode`, README "Exit
codes"): errors raised on purpose print their diagnostics, anything else is reported as a bug
with its traceback in a crash log (`attestream.crash`). Nothing printed carries a secret.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from typer.exceptions import TyperException

from attestcore.errors import AttestreamError, ExitCode
from attestream.commands import (
    anchor,
    bundle,
    demo,
    detect,
    evaluate,
    explain,
    forensic,
    ledger,
    models,
    proofs,
    search,
    serve,
    simulate,
    stack,
    train,
    watch,
)
from attestream.crash import report_error, report_internal_error, report_json, wants_json

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
forensic.app.command("bundle")(bundle.bundle)
forensic.app.command("verify-bundle")(bundle.verify_bundle)
forensic.app.command("search")(search.search_command)
forensic.app.command("timeline")(search.timeline_command)
forensic.app.command("explain")(explain.explain)
forensic.app.command("replay")(explain.replay)
forensic.app.command("watch")(watch.watch)
app.add_typer(forensic.app, name="forensic")
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.add_typer(serve.access_app, name="access")


def run(argv: Sequence[str]) -> int:
    """Run one command line and return its exit code; never raises."""
    as_json = wants_json(argv)
    try:
        result = app(args=list(argv), prog_name="attestream", standalone_mode=False)
    except AttestreamError as exc:
        return report_error(exc.kind, exc.diagnostics(), exc.exit_code, as_json)
    except TyperException as exc:  # a bad flag or argument (or none): usage and the reason
        show = getattr(exc, "show", None)
        if callable(show):
            show()  # to stderr, as the parser would in standalone mode
        if as_json:
            report_json("usage", exc.format_message(), ExitCode.USAGE)
        return int(ExitCode.USAGE)
    except (typer.Abort, KeyboardInterrupt):
        return report_error("interrupted", "interrupted", ExitCode.USAGE, as_json)
    except Exception as exc:  # everything else is a bug: say so, keep the traceback
        return report_internal_error(exc, as_json)
    # standalone_mode=False: click returns the code of `typer.Exit`, or the command's None.
    return result if isinstance(result, int) else int(ExitCode.OK)


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
