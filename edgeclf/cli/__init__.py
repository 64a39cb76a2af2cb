"""The ``edgeclf`` command line. Each subcommand lives in its own module and imports its stage only when it runs,
so ``edgeclf predict`` on a Pi never touches TensorFlow."""

from __future__ import annotations

import os
import sys
import traceback

import click

from edgeclf import __version__
from edgeclf.errors import EdgeclfError


class EdgeclfGroup(click.Group):
    """Turns EdgeclfError into a one-line message and an exit code; tracebacks only with --debug."""

    def invoke(self, ctx):
        debug = ctx.params.get("debug") or os.environ.get("EDGECLF_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except EdgeclfError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except MemoryError:
            click.echo("error: out of memory (try a smaller --batch-size or --image-size)", err=True)
            ctx.exit(1)
        except Exception as exc:  # a bug or an unexpected library failure: still one line unless --debug
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc.__class__.__name__}: {exc} (re-run with --debug for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=EdgeclfGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgeclf")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """edgeclf: photos in a class-per-folder layout → fine-tuned MobileNetV2 → quantized TFLite on a Raspberry Pi.

    \b
    Typical session:
      edgeclf data check photos/                        # duplicates, leakage, label conflicts, balance
      edgeclf train --out runs/catsdogs                 # fine-tune on cats-vs-dogs (default data)
      edgeclf export runs/catsdogs --int8               # int8 .tflite, accuracy-gated on the test split
      edgeclf predict runs/catsdogs/export/model_int8.tflite photos/
      edgeclf camera runs/catsdogs/export/model_int8.tflite --source picamera --serve 0.0.0.0:8080
      edgeclf bench runs/catsdogs/export/*.tflite --threads 1,2,4
    """


def _register() -> None:
    from . import bench, camera, data, export, predict, train

    for module in (data, train, export, predict, camera, bench):
        cli.add_command(module.command)


_register()


def main() -> None:
    cli(prog_name="edgeclf")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
