"""`edgeclf camera` (placeholder until its stage lands)."""

import click


@click.command("camera")
def command() -> None:
    """Not implemented yet."""
    raise click.ClickException("edgeclf camera is not implemented yet")
