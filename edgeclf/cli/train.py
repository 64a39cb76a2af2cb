"""`edgeclf train` (placeholder until its stage lands)."""

import click


@click.command("train")
def command() -> None:
    """Not implemented yet."""
    raise click.ClickException("edgeclf train is not implemented yet")
