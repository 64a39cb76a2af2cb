"""`edgeclf data check DIR`: the data checks `edgeclf train` runs, without training."""

from __future__ import annotations

import click

from edgeclf.console import emit_json, format_table, note

from . import options

SHOWN_GROUPS = 20


@click.group("data")
def command() -> None:
    """Look at a dataset before training on it."""


@command.command("check")
@click.argument("data_dir", metavar="DIR", type=click.Path(path_type=str))
@options.image_size("Decode at this size, as training would (the perceptual hash barely depends on it)",
                     default=224, show_default=True)
@click.option("--strict", is_flag=True, help="Exit 1 when duplicates leak across splits or carry two labels.")
@options.as_json("Print every finding as JSON on stdout.")
@options.quiet("No progress bar or notes.")
def check_command(data_dir, image_size, strict, as_json, quiet) -> None:
    """Find duplicates, leakage across train/validation/test, label conflicts and class imbalance in DIR.

    Exact duplicates have the same bytes; near-duplicates the same picture re-encoded, resized or lightly edited
    (a 256-bit perceptual hash of the decoded pixels). A duplicate in two split folders inflates the test score
    (leakage); one filed under two classes has a wrong label (conflict). `edgeclf train` runs the same checks,
    moves duplicates that its own carving split apart into one split, and records everything in
    RUN_DIR/data_check.json (`--strict-data` refuses to train on leakage or conflicts).

    \b
    Examples:
      edgeclf data check photos/
      edgeclf data check ../shared/data/clothing-dataset-small --json > findings.json
      edgeclf data check photos/ --strict && edgeclf train --data photos/ --out runs/photos
    """
    from edgeclf.train import datacheck

    found, labels = datacheck.check_folder(data_dir, image_size, quiet=quiet or as_json)
    report = found.to_dict(labels)
    if as_json:
        emit_json({"data": data_dir, **report})
    elif not quiet:
        note(render(report))
    if strict and (report["leakage"]["groups"] or report["label_conflicts"]["groups"]):
        raise click.exceptions.Exit(1)


def render(report: dict) -> str:
    """Findings first, then the groups (at most SHOWN_GROUPS: leaks and conflicts before plain duplicates), then
    images per class."""
    from edgeclf.train.datacheck import summary_lines

    lines = [f"{report['images']} readable images"] + summary_lines(report)
    groups = sorted(report["groups"], key=lambda g: (not g["conflict"], not g["leak"], g["kind"] != "exact"))
    rows = [[g["kind"], ("leak " if g["leak"] else "") + ("conflict" if g["conflict"] else ""),
             "  ".join(f"{f['path']}" for f in g["files"])] for g in groups[:SHOWN_GROUPS]]
    if rows:
        lines += ["", format_table(rows, ["duplicate", "problem", "files"], align="lll")]
    if len(groups) > SHOWN_GROUPS:
        lines.append(f"... and {len(groups) - SHOWN_GROUPS} more group(s) (--json lists them all)")
    counts = report["balance"]["counts"]
    labels = list(next(iter(counts.values()), {}))
    weights = report["balance"]["class_weight"] or {}
    table = [[label] + [counts[s][label] for s in counts] + [weights.get(label, "-")] for label in labels]
    lines += ["", format_table(table, ["class"] + list(counts) + ["class weight"])]
    return "\n".join(lines)
