"""`edgeclf predict` (placeholder until its stage lands)."""

import click


@click.command("predict")
def command() -> None:
    """Not implemented yet."""
    raise click.ClickException("edgeclf predict is not implemented yet")
