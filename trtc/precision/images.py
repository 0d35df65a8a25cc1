"""Images as model inputs, with the preprocessing the spec declares under
`precision.calibration.preprocess`:

    resize: 256            # shorter side (or [height, width])
    crop: [224, 224]       # centre crop
    scale: 255             # pixel values are divided by this first
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
    layout: NCHW           # or NHWC
    channels: RGB          # or BGR

Without `resize`/`crop` the image is resized to the model's spatial size when it is static."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trtc.errors import SpecError
from trtc.inputs import IMAGE_PIXEL_LIMIT


def load_image(path: Path, preprocess: dict, item, key: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise SpecError(f"{key}: reading images needs Pillow: `pip install pillow`") from None
    layout = str(preprocess.get("layout", "NCHW")).upper()
    if layout not in ("NCHW", "NHWC"):
        raise SpecError(f"{key}: preprocess.layout must be NCHW or NHWC, got {preprocess.get('layout')!r}")
    try:
        opened = Image.open(path)
    except (Image.DecompressionBombError, OSError, ValueError) as exc:
        raise SpecError(f"{key}: cannot read {path} as an image ({exc})") from None
    with opened as image:
        width, height = image.size  # from the header: nothing decoded yet
        if width * height > IMAGE_PIXEL_LIMIT:
            raise SpecError(
                f"{key}: {path} is {width}x{height} pixels, more than trtc decodes ({IMAGE_PIXEL_LIMIT // 10**6} megapixels); "
                "resize it before calibrating"
            )
        image = image.convert("RGB")
        height_axis = 2 if layout == "NCHW" else 1
        target = item.dims[height_axis : height_axis + 2]
        if "resize" in preprocess:
            image = _resize(image, preprocess["resize"])
        elif "crop" not in preprocess and all(isinstance(d, int) for d in target):
            image = image.resize((target[1], target[0]))
        if "crop" in preprocess:
            image = _centre_crop(image, preprocess["crop"])
        pixels = np.asarray(image, dtype=np.float32)
    if str(preprocess.get("channels", "RGB")).upper() == "BGR":
        pixels = pixels[..., ::-1]
    pixels = pixels / float(preprocess.get("scale", 255))
    pixels = (pixels - np.asarray(preprocess.get("mean", [0, 0, 0]), np.float32)) / np.asarray(
        preprocess.get("std", [1, 1, 1]), np.float32
    )
    if layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return pixels[None].astype(np.float32)


def _resize(image, size):
    if isinstance(size, int):
        width, height = image.size
        ratio = size / min(width, height)
        return image.resize((round(width * ratio), round(height * ratio)))
    return image.resize((int(size[1]), int(size[0])))


def _centre_crop(image, size):
    height, width = (size, size) if isinstance(size, int) else size
    left, top = (image.size[0] - width) // 2, (image.size[1] - height) // 2
    if left < 0 or top < 0:
        raise SpecError(
            f"precision.calibration.preprocess.crop: {height}x{width} is larger than the resized image {image.size[1]}x{image.size[0]}"
        )
    return image.crop((left, top, left + width, top + height))
