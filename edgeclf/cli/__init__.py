"""The ``edgeclf`` command line. Each subcommand lives in its own module and imports its stage only when it runs,
so ``edgeclf predict`` on a Pi never touches TensorFlow."""

from __future__ import annotations

import os
import sys
import traceback

import click

from edgeclf import __version__
from edgeclf.errors import EdgeclfError


NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2
BROKEN_PIPE_EXIT = 128 + 13  # what a shell reports for a tool stopped by SIGPIPE, e.g. under `| head -1`


class EdgeclfGroup(click.Group):
    """Turns EdgeclfError into a one-line message and an exit code; tracebacks only with --debug."""

    def main(self, args=None, prog_name=None, **extra):
        """click's own usage errors (unknown option, bad value) as one line like every other error, still exit 2."""
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except NO_ARGS_IS_HELP as exc:  # bare `edgeclf`: the help itself, as click prints it
            click.echo(exc.ctx.get_help(), err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            echo_error(one_line_usage(exc))
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C at a prompt, or EOF
            echo_error("interrupted")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        debug = ctx.params.get("debug") or os.environ.get("EDGECLF_DEBUG") == "1"
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # here, where a closed pipe is handled, not at interpreter exit
            return result
        except EdgeclfError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
            quiet_stdout()
            ctx.exit(BROKEN_PIPE_EXIT)
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


def one_line_usage(exc: click.ClickException) -> str:
    """``error: <what> (see: edgeclf CMD --help)`` from a click exception (which would print Usage/Try/Error)."""
    message = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    ctx = getattr(exc, "ctx", None)
    where = f" (see: {ctx.command_path} --help)" if ctx is not None and isinstance(exc, click.UsageError) else ""
    return f"error: {message}{where}"


def echo_error(line: str) -> None:
    try:
        click.echo(line, err=True)
    except BrokenPipeError:  # pragma: no cover - stderr closed as well
        pass


def quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not report the broken pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests, notebooks)
        pass


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
    if debug:  # native libraries' logs too (see edgeclf.native)
        os.environ["EDGECLF_DEBUG"] = "1"


def _register() -> None:
    from . import bench, camera, data, export, predict, train

    for module in (data, train, export, predict, camera, bench):
        cli.add_command(module.command)


_register()


def main() -> None:
    cli(prog_name="edgeclf")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
