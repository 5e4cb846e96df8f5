"""Options that several commands share, spelled and explained once."""

from __future__ import annotations

import typer

RESTART = typer.Option(False, "--restart",
                       help="Discard what an earlier run with other inputs or settings left (its .partial or "
                            "output) and start over; without it such a run is refused, never mixed in.")
OVERWRITE = typer.Option(False, "--overwrite",
                         help="Replace an existing output that this stage did not make (implies --restart).")


def _sandbox_level(value: str) -> str:
    if value not in ("strict", "weak"):
        raise typer.BadParameter(f"{value!r}: use strict or weak")
    return value


SANDBOX = typer.Option("strict", "--sandbox", callback=_sandbox_level,
                       help="strict: refuse to run model-written code unless the sandbox isolates it fully (root "
                            "with bubblewrap: own uid, no network, no data or home folders); weak: run it with what "
                            "this machine allows (recorded in every code verdict).")
