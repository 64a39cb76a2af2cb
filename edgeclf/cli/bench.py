"""`edgeclf bench` (placeholder until its stage lands)."""

import click


@click.command("bench")
def command() -> None:
    """Not implemented yet."""
    raise click.ClickException("edgeclf bench is not implemented yet")
