"""The shared contracts (edgeclf.contracts) and helpers every stage uses: one answer wherever they are asked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.contracts import (FORMATS, IMAGE_SIZE_RANGE, check_image_size, model_filename, parse_labels,
                               read_labels_file)
from edgeclf.errors import UsageError, first_line


def test_image_size_range_has_one_message():
    low, high = IMAGE_SIZE_RANGE
    assert check_image_size(low) == low and check_image_size(str(high)) == high
    for bad in (low - 1, high + 1):
        with pytest.raises(UsageError) as err:
            check_image_size(bad)
        assert str(err.value) == f"--image-size {bad} is out of range (use {low}..{high} (96..224 typical))"


def test_every_command_that_takes_an_image_size_says_the_same_range():
    low, high = IMAGE_SIZE_RANGE
    for command in ("train", "export"):
        out = CliRunner().invoke(cli, [command, "--help"]).output
        assert f"{low}..{high}" in " ".join(out.split()), command


def test_export_has_one_flag_per_format():
    out = CliRunner().invoke(cli, ["export", "--help"]).output
    assert all(f"--{fmt}" in out for fmt in FORMATS)


def test_model_file_names():
    assert [model_filename(f) for f in FORMATS] == [f"model_{f}.tflite" for f in FORMATS]
    assert model_filename("int8", "float32") == "model_int8_io-float32.tflite"
    assert model_filename("float16", "float32") == "model_float16.tflite"  # io applies to int8 only


def test_labels_parser_reads_text_and_bytes_the_same_way(tmp_path):
    assert parse_labels(" cats \n\n dogs\r\n") == parse_labels(b"cats\ndogs\n") == ["cats", "dogs"]
    (tmp_path / "labels.txt").write_bytes("chats\nchiens\n\n".encode())
    assert read_labels_file(tmp_path / "labels.txt") == ["chats", "chiens"]
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(UsageError, match="labels file is empty"):
        read_labels_file(tmp_path / "blank.txt")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(UsageError, match="cannot read labels file"):
        read_labels_file(tmp_path / "latin1.txt")


def test_first_line_of_a_long_library_error():
    assert first_line(ValueError("\n  loc(fused): bad op\n  at line 3\n")) == "loc(fused): bad op"
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert len(first_line(ValueError("x" * 1000), limit=50)) == 50
