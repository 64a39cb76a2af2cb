"""The one preprocessing path (ARCHITECTURE.md, "One preprocessing path").

decode with Pillow → apply EXIF orientation → convert any mode to 8-bit RGB → resize (squash, bilinear) to the
model's input size → ``uint8`` array of shape (H, W, 3).

Training-data loading, int8 calibration, export validation, prediction and the camera loop all call this module, so
the pixels a model sees on the Pi are the pixels it was trained on. Normalisation to [-1, 1] is *not* here: it lives
inside the model graph.

JPEGs are decoded with Pillow's draft mode: the decoder's DCT scaling (1/2, 1/4, 1/8) produces an image at least as
large as the target before the bilinear resize, which makes decoding a 12-megapixel photo several times faster. It is
part of the path for every caller, so training and device always agree.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgeclf.errors import ImageError, os_error_reason

ImageSource = Union[str, os.PathLike, bytes, io.IOBase, Image.Image, np.ndarray]

RESAMPLE = Image.Resampling.BILINEAR
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
# Pillow refuses images over 2x this as decompression bombs; 16k x 16k photos are still fine.
MAX_PIXELS = 16384 * 16384


def is_image_file(path: str | os.PathLike) -> bool:
    """True for file names edgeclf treats as images (by extension; hidden files never)."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def load_image(source: ImageSource, size: tuple[int, int], *, draft: bool = True) -> np.ndarray:
    """Decode ``source`` (path, bytes, file, PIL image or RGB array) to uint8 RGB of ``size`` = (width, height).

    Raises :class:`edgeclf.errors.ImageError` naming the file for anything unreadable.
    """
    if isinstance(source, np.ndarray):
        return prepare_frame(source, size)
    if isinstance(source, Image.Image):
        return _finish(source, size)
    with _decoding(source) as img:
        if draft and img.format == "JPEG":
            # Ask for at least the target size on each side; EXIF rotation may swap width and height later.
            side = max(size)
            img.draft("RGB", (side, side))
        return _finish(img, size)


def load_picture(source: ImageSource, max_side: int) -> np.ndarray:
    """Decode ``source`` for people to look at: EXIF-oriented RGB with its own aspect ratio, shrunk (never enlarged)
    to fit ``max_side``. The model never sees this; it gets :func:`load_image`."""
    with _decoding(source) as img:
        if img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img = to_rgb(ImageOps.exif_transpose(img))
        img.thumbnail((max_side, max_side), RESAMPLE)
        return np.asarray(img)


@contextlib.contextmanager
def _decoding(source):
    """Open ``source`` with Pillow; anything unreadable becomes one ImageError naming the file."""
    name = _name_of(source)
    try:
        with _open(source) as img:
            yield img
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, "not an image Pillow can read", "remove it or convert it to JPEG/PNG") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"image too large to decode safely ({exc})", "downscale it first") from None
    except OSError as exc:
        if exc.errno is not None:  # the file system said no (permissions, missing, a symlink to nowhere)
            raise ImageError(name, *os_error_reason(exc, name)) from None
        raise ImageError(name, f"corrupt or truncated image ({exc})", "re-export or remove the file") from None
    except (SyntaxError, ValueError, EOFError) as exc:  # truncated / corrupt data
        raise ImageError(name, f"corrupt or truncated image ({exc})", "re-export or remove the file") from None


def _open(source) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise ImageError("<bytes>", "empty data")
        return Image.open(io.BytesIO(source))
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source) and os.path.getsize(source) == 0:
        raise ImageError(source, "empty file (0 bytes)", "remove it or replace it with a real image")
    return Image.open(source)


def _name_of(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name", None) or "<image>"


def _finish(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    img = to_rgb(img)
    if img.size != tuple(size):
        img = img.resize(tuple(size), RESAMPLE)
    return np.asarray(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB. 16-bit and float greyscale are rescaled (not clipped) to 0..255; alpha is dropped
    (transparent pixels keep their stored colour, as ``tf.io.decode_png(channels=3)`` does)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def prepare_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A camera/video frame (H, W, 3 uint8 RGB) → model input. Frames already at ``size`` pass through with no copy."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.stack([frame] * 3, axis=-1)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ImageError("<frame>", f"expected an RGB frame of shape (H, W, 3), got {frame.shape}")
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    if frame.dtype != np.uint8:
        raise ImageError("<frame>", f"expected a uint8 frame, got {frame.dtype}", "convert it with frame.astype('uint8')")
    width, height = size
    if frame.shape[0] == height and frame.shape[1] == width:
        return frame
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((width, height), RESAMPLE))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every image file under ``folder`` (recursive, sorted, hidden files skipped). Image-named symlinks that dangle
    or loop are listed too, so the caller reports them as skipped (with the reason) instead of never seeing them."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if (p.is_file() or (p.is_symlink() and not p.exists()))
                  and is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts))
