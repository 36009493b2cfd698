#!/usr/bin/env python3
"""Writes the golden files the YOLOv12n parity tests compare the candle model against.

For each fixture image it runs onnxruntime (the reference runtime) on the original ONNX file
with exactly the preprocessing imgmeta-vision implements, and records a summary of the raw
`output0` tensor and the final detections after the same post-processing.

Development-time only: needs `pip install onnxruntime numpy pillow` (e.g. in .venv-dev) and
the ONNX file that `imgmeta models fetch yolov12n` keeps next to the safetensors weights.

    .venv-dev/bin/python scripts/yolo_golden.py [--onnx models/yolov12n.onnx]

The preprocessing here mirrors crates/imgmeta-vision/src/preprocess.rs operation for
operation, in float32, so both sides feed the network bit-identical input tensors.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates" / "imgmeta-vision" / "tests" / "fixtures"
SIZE = 640
PAD = np.float32(114.0) / np.float32(255.0)
MIN_SCORE = 0.25
IOU_THRESHOLD = 0.45
MAX_DETECTIONS = 300
# Anchors whose 84 raw values are stored: an even spread, plus the strongest ones.
SPREAD_STEP = 211
STRONGEST = 16


def letterbox_geometry(width, height):
    scale = min(SIZE / width, SIZE / height)
    new_w = max(1, min(SIZE, math.floor(width * scale + 0.5)))
    new_h = max(1, min(SIZE, math.floor(height * scale + 0.5)))
    left = (SIZE - new_w) // 2
    top = (SIZE - new_h) // 2
    return new_w, new_h, left, top


def axis_taps(src_len, dst_len):
    """Source indices and weights of a half-pixel-centred bilinear resize along one axis."""
    scale = src_len / dst_len
    pos = (np.arange(dst_len, dtype=np.float64) + 0.5) * scale - 0.5
    pos = np.maximum(pos, 0.0)
    i0 = np.minimum(np.floor(pos).astype(np.int64), src_len - 1)
    i1 = np.minimum(i0 + 1, src_len - 1)
    frac = (pos - i0).astype(np.float32)
    return i0, i1, frac


def preprocess(rgb):
    height, width = rgb.shape[:2]
    new_w, new_h, left, top = letterbox_geometry(width, height)
    x0, x1, fx = axis_taps(width, new_w)
    y0, y1, fy = axis_taps(height, new_h)
    img = rgb.astype(np.float32)
    one = np.float32(1.0)
    wx1 = fx[None, :, None]
    wx0 = one - wx1
    wy1 = fy[:, None, None]
    wy0 = one - wy1
    top_row = img[y0][:, x0] * wx0 + img[y0][:, x1] * wx1
    bottom_row = img[y1][:, x0] * wx0 + img[y1][:, x1] * wx1
    resized = (top_row * wy0 + bottom_row * wy1) / np.float32(255.0)
    canvas = np.full((SIZE, SIZE, 3), PAD, dtype=np.float32)
    canvas[top : top + new_h, left : left + new_w] = resized
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])
    return tensor, (new_w / width, new_h / height, left, top)


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def postprocess(output, geometry, width, height, names):
    sx, sy, left, top = geometry
    preds = output[0]  # 84 x 8400
    scores = preds[4:]
    class_ids = scores.argmax(axis=0)
    best = scores.max(axis=0)
    candidates = []
    for anchor in np.nonzero(best >= MIN_SCORE)[0]:
        cx, cy, w, h = (float(v) for v in preds[:4, anchor])
        box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        candidates.append((float(best[anchor]), int(class_ids[anchor]), box))
    candidates.sort(key=lambda c: -c[0])
    kept = []
    for score, cls, box in candidates:
        if all(k[1] != cls or iou(k[2], box) <= IOU_THRESHOLD for k in kept):
            kept.append((score, cls, box))
        if len(kept) == MAX_DETECTIONS:
            break
    detections = []
    for score, cls, (x0, y0, x1, y1) in kept:
        box = [
            min(max((x0 - left) / sx, 0.0), width),
            min(max((y0 - top) / sy, 0.0), height),
            min(max((x1 - left) / sx, 0.0), width),
            min(max((y1 - top) / sy, 0.0), height),
        ]
        detections.append(
            {"label": names[cls], "class_id": cls, "score": score,
             "box": dict(zip(["x_min", "y_min", "x_max", "y_max"], box))}
        )
    return detections


def f32(values):
    """float32 values at their own precision (7 significant digits), to keep files small."""
    return [float(f"{v:.7g}") for v in values]


def summarise(output):
    preds = output[0]
    anchors = set(range(0, preds.shape[1], SPREAD_STEP))
    anchors.update(np.argsort(-preds[4:].max(axis=0))[:STRONGEST].tolist())
    anchors = sorted(int(a) for a in anchors)
    return {
        "shape": list(output.shape),
        "channel_max": f32(preds.max(axis=1)),
        "channel_mean": f32(preds.astype(np.float64).mean(axis=1)),
        "anchors": anchors,
        "values": [f32(row) for row in preds[:, anchors].T],
    }


def open_model(onnx_path):
    """The reference session (CPU, 2 threads) and the model's class names from the manifest."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = json.loads((ROOT / "models" / "manifest.json").read_text())["models"][0]["class_names"]
    return session, names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", default=str(ROOT / "models" / "yolov12n.onnx"))
    args = parser.parse_args()
    session, names = open_model(args.onnx)
    for path in sorted(FIXTURES.glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        tensor, geometry = preprocess(rgb)
        (output,) = session.run(["output0"], {"images": tensor})
        golden = {
            "image": path.name,
            "width": rgb.shape[1],
            "height": rgb.shape[0],
            "min_score": MIN_SCORE,
            "iou_threshold": IOU_THRESHOLD,
            "output0": summarise(output),
            "detections": postprocess(output, geometry, rgb.shape[1], rgb.shape[0], names),
        }
        out = path.with_suffix(".golden.json")
        out.write_text(json.dumps(golden, separators=(",", ":")) + "\n")
        labels = [f"{d['label']} {d['score']:.2f}" for d in golden["detections"]]
        print(f"{out.name}: {labels}")


if __name__ == "__main__":
    main()
