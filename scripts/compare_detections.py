#!/usr/bin/env python3
"""Checks `imgmeta analyze` against onnxruntime on any photos: every object onnxruntime finds
at score >= 0.3 must be found by imgmeta with the same label and IoU >= 0.9, and imgmeta must
find nothing above 0.5 that onnxruntime does not. Prints one line per image and exits non-zero
on any miss.

Development-time only (onnxruntime, numpy and pillow in .venv-dev, see yolo_golden.py):

    .venv-dev/bin/python scripts/compare_detections.py PHOTO [PHOTO ...] \
        [--imgmeta target/release/imgmeta]

EXIF orientation is applied on both sides (imgmeta does it itself), so boxes are compared in
the upright frame.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from yolo_golden import ROOT, iou, open_model, postprocess, preprocess  # noqa: E402

FOUND_AT = 0.3
INVENTED_ABOVE = 0.5
MIN_IOU = 0.9


def reference(session, names, path):
    rgb = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    tensor, geometry = preprocess(rgb)
    (output,) = session.run(["output0"], {"images": tensor})
    return postprocess(output, geometry, rgb.shape[1], rgb.shape[0], names)


def ours(binary, path):
    out = subprocess.run(
        [binary, "analyze", str(path), "--tasks", "objects", "--min-score", "0.25"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["objects"]["detections"]


def corners(d):
    b = d["box"]
    return [b["x_min"], b["y_min"], b["x_max"], b["y_max"]]


def matched(d, others):
    return any(
        o["label"] == d["label"] and iou(corners(d), corners(o)) >= MIN_IOU for o in others
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--imgmeta", default=str(ROOT / "target" / "release" / "imgmeta"))
    parser.add_argument("--onnx", default=str(ROOT / "models" / "yolov12n.onnx"))
    args = parser.parse_args()
    session, names = open_model(args.onnx)
    failures = 0
    for photo in args.photos:
        ref = reference(session, names, photo)
        got = ours(args.imgmeta, photo)
        missed = [d for d in ref if d["score"] >= FOUND_AT and not matched(d, got)]
        invented = [d for d in got if d["score"] > INVENTED_ABOVE and not matched(d, ref)]
        failures += len(missed) + len(invented)
        print(json.dumps({
            "photo": Path(photo).name,
            "onnxruntime_at_0.3": sum(d["score"] >= FOUND_AT for d in ref),
            "imgmeta_at_0.3": sum(d["score"] >= FOUND_AT for d in got),
            "missed": [f"{d['label']} {d['score']:.2f}" for d in missed],
            "invented": [f"{d['label']} {d['score']:.2f}" for d in invented],
        }))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
