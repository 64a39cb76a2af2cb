"""Options more than one command takes, declared once (in the style of sqlite-utils' shared decorators).

Each is a decorator: ``@options.top_k`` on a command adds ``-k/--top-k`` with the same type, default and help
everywhere. A command that means something else by a flag (``bench --threads 1,2,4`` is a list) declares its own.
"""

from __future__ import annotations

import click

from edgeclf.contracts import IMAGE_SIZE_RANGE

UNKNOWN_HELP = 'below it the label is "unknown"'

top_k = click.option("-k", "--top-k", type=click.IntRange(min=1), default=1, show_default=True,
                     help="How many labels to report per image or frame, best first.")
threshold = click.option("-t", "--threshold", type=click.FloatRange(0.0, 1.0), default=None,
                         help=f"Minimum top-1 score; {UNKNOWN_HELP} (the top-k scores are still shown).")
threads = click.option("--threads", type=click.IntRange(min=1), default=None,
                       help="Interpreter threads (default: every usable core).")
labels = click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False, path_type=str),
                      metavar="FILE", help="labels.txt for a model without embedded labels (overrides embedded ones).")


def as_json(text: str):
    """``--json``: what stdout carries differs per command, so each says it."""
    return click.option("--json", "as_json", is_flag=True, help=text)


def quiet(text: str = "No progress bars or notes; errors only."):
    """``-q/--quiet``: what is left out differs a little per command."""
    return click.option("-q", "--quiet", is_flag=True, help=text)


def image_size(text: str, **kwargs):
    """``--image-size N`` (square, pixels); the range is checked where the size is used, with one message."""
    low, high = IMAGE_SIZE_RANGE
    return click.option("--image-size", type=int, metavar="N", help=f"{text} ({low}..{high}; 96..224 typical).",
                        **kwargs)
