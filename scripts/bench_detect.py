#!/usr/bin/env python3
"""Benchmarks YOLOv12n in candle (imgmeta) against onnxruntime on the same image, the same
ONNX weights and the same thread count, and prints both and the p50 ratio.

Development-time only (`pip install onnxruntime numpy pillow` into .venv-dev):

    .venv-dev/bin/python scripts/bench_detect.py IMAGE [--runs 20] [--threads 2] \
        [--rounds 1] [--candle "target/release/imgmeta bench detect"]

The candle side is any command that takes `IMAGE --runs N --threads T` and prints the JSON
line of `imgmeta bench detect`. Both runtimes get warm-up runs first; each forward pass is
timed on its own, preprocessing (the same letterbox, from yolo_golden.py) separately.

`--rounds K` alternates the two K times (onnxruntime, candle, onnxruntime, candle, ...) and
prints each round's ratio and their median: a 2-vCPU guest's speed drifts by tens of percent
from one minute to the next, and alternating puts both runtimes in the same minutes.
"""

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from yolo_golden import ROOT, preprocess  # noqa: E402

WARMUP = 3


def stats(samples):
    ms = sorted(s * 1e3 for s in samples)
    return {
        "p50_ms": round(ms[len(ms) // 2], 3),
        "min_ms": round(ms[0], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(ms[-1], 3),
    }


def onnxruntime_session(onnx_path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def bench_onnxruntime(session, image_path, runs, threads):
    rgb = np.asarray(ImageOps.exif_transpose(Image.open(image_path)).convert("RGB"))
    pre, fwd = [], []
    for i in range(WARMUP + runs):
        t0 = time.perf_counter()
        tensor, _ = preprocess(rgb)
        t1 = time.perf_counter()
        session.run(["output0"], {"images": tensor})
        t2 = time.perf_counter()
        if i >= WARMUP:
            pre.append(t1 - t0)
            fwd.append(t2 - t1)
    forward = stats(fwd)
    return {
        "runtime": f"onnxruntime {ort.__version__}",
        "runs": runs,
        "threads": threads,
        "p50_ms": forward["p50_ms"],
        "min_ms": forward["min_ms"],
        "forward": forward,
        "preprocess": stats(pre),
    }


def bench_candle(command, image_path, runs, threads):
    argv = shlex.split(command) + [str(image_path), "--runs", str(runs), "--threads", str(threads)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--onnx", default=str(ROOT / "models" / "yolov12n.onnx"))
    parser.add_argument("--candle", default=str(ROOT / "target" / "release" / "imgmeta") + " bench detect")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    image = Path(args.image).resolve()
    session = onnxruntime_session(args.onnx, args.threads)
    ratios = []
    for _ in range(max(1, args.rounds)):
        reference = bench_onnxruntime(session, image, args.runs, args.threads)
        candle = bench_candle(args.candle, image, args.runs, args.threads)
        print(json.dumps(reference))
        print(json.dumps(candle))
        ratio = candle["p50_ms"] / reference["p50_ms"]
        ratios.append(ratio)
        print(
            f"forward p50: candle {candle['p50_ms']:.1f} ms, onnxruntime {reference['p50_ms']:.1f} ms, "
            f"ratio {ratio:.2f} (target <= 1.5, goal <= 1.0); threads {args.threads}, runs {args.runs}"
        )
    if len(ratios) > 1:
        print(
            f"median ratio over {len(ratios)} alternating rounds: {statistics.median(ratios):.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
