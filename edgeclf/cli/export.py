"""`edgeclf export` (placeholder until its stage lands)."""

import click


@click.command("export")
def command() -> None:
    """Not implemented yet."""
    raise click.ClickException("edgeclf export is not implemented yet")
