"""The one preprocessing path: every mode becomes uint8 RGB of the requested size; bad files fail with the file named."""

import numpy as np
import pytest
from PIL import Image

from edgeclf.errors import ImageError
from edgeclf.runtime.preprocess import list_images, load_image, prepare_frame, to_rgb

GOOD = ["ok", "cmyk", "grey", "rgba", "palette", "grey16", "exif_rotated"]
BAD = ["zero", "notimage", "truncated", "corrupt"]


@pytest.mark.parametrize("case", GOOD)
def test_every_mode_becomes_uint8_rgb_of_the_requested_size(bad_images, case):
    arr = load_image(bad_images[case], (32, 24))
    assert arr.shape == (24, 32, 3) and arr.dtype == np.uint8


@pytest.mark.parametrize("case", BAD)
def test_unreadable_files_raise_an_error_naming_the_file(bad_images, case):
    with pytest.raises(ImageError) as info:
        load_image(bad_images[case], (32, 24))
    assert str(bad_images[case]) in str(info.value)
    assert "\n" not in str(info.value)


def test_sixteen_bit_greyscale_is_rescaled_not_clipped(bad_images):
    grey8 = load_image(bad_images["grey"], (40, 30))
    grey16 = load_image(bad_images["grey16"], (40, 30))
    assert np.abs(grey8.astype(int) - grey16.astype(int)).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # white on the left half as stored
    exif = img.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: white ends up on top
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    arr = load_image(tmp_path / "r.jpg", (20, 40), draft=False)
    assert arr[:20].mean() > 200 and arr[20:].mean() < 60


def test_alpha_is_dropped_keeping_stored_colour():
    rgba = Image.new("RGBA", (4, 4), (10, 200, 30, 0))
    assert to_rgb(rgba).getpixel((0, 0)) == (10, 200, 30)


def test_frame_at_input_size_is_not_copied():
    frame = np.zeros((24, 32, 3), np.uint8)
    assert prepare_frame(frame, (32, 24)) is frame
    assert prepare_frame(np.zeros((48, 64, 3), np.uint8), (32, 24)).shape == (24, 32, 3)
    with pytest.raises(ImageError):
        prepare_frame(np.zeros((24, 32, 3), np.float32), (32, 24))


def test_list_images_is_recursive_sorted_and_skips_hidden(tmp_path):
    for rel in ["b/2.jpg", "a/1.png", ".hidden/3.jpg", "a/.4.jpg", "a/notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a/1.png", "b/2.jpg"]
