#!/usr/bin/env python3
"""Compare imgmeta-metadata's reading of any images with exiftool's, field by field.

For photos that are not in the repository: prints one line per disagreement and exits
non-zero if there was any. Uses the same exiftool mapping as make_fixtures.py.

Needs exiftool (libimage-exiftool-perl). Run from the repository root:
    python3 scripts/check_against_exiftool.py photo1.jpg photo2.png ...
"""

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import expected  # noqa: E402  (importing it needs no Pillow)

# We print EXIF numbers as exiftool -n does (15 significant digits), so they agree exactly on
# the fixtures; for other photos this forgives a last-digit difference in rounding.
NUMBER_TOLERANCE = 1e-9


def ours(paths):
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "imgmeta-metadata", "--example", "describe", "--", *paths],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def close(a, b, tolerance):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tolerance
    return a == b


def compare(path, got, want):
    problems = []
    if "error" in got:
        return [f"{path}: we refused it: {got['error']}"]
    for key in ["width", "height", "oriented_width", "oriented_height", "frames", "sha256"]:
        if got[key] != want[key]:
            problems.append(f"{path}: {key}: ours {got[key]!r}, exiftool {want[key]!r}")
    # The stored layout, where exiftool interprets the header (not 16- or 32-bit BMP).
    for key in ["color_type", "bit_depth", "has_alpha"]:
        if want[key] is not None and got[key] != want[key]:
            problems.append(f"{path}: {key}: ours {got[key]!r}, exiftool {want[key]!r}")
    # Warnings exiftool's reading shows; ours may hold more (an ICC profile moxcms rejects).
    codes = {w["code"] for w in got["warnings"]}
    for code in want["warnings"]:
        if code not in codes:
            problems.append(f"{path}: warnings: ours {sorted(codes)}, exiftool implies {code}")
    g, w = got["exif"], want["exif"]
    if (g is None) != (w is None):
        problems.append(f"{path}: exif presence: ours {g is not None}, exiftool {w is not None}")
    elif g is not None:
        for key in ["make", "model", "lens", "orientation", "datetime_original", "iso"]:
            if g[key] != w[key]:
                problems.append(f"{path}: exif.{key}: ours {g[key]!r}, exiftool {w[key]!r}")
        for key in ["exposure_time_s", "f_number", "focal_length_mm"]:
            if not close(g[key], w[key], NUMBER_TOLERANCE):
                problems.append(f"{path}: exif.{key}: ours {g[key]!r}, exiftool {w[key]!r}")
        gg, wg = g["gps"] or {}, w["gps"] or {}
        for key in ["latitude", "longitude", "altitude_m"]:
            if not close(gg.get(key), wg.get(key), NUMBER_TOLERANCE):
                problems.append(
                    f"{path}: gps.{key}: ours {gg.get(key)!r}, exiftool {wg.get(key)!r}"
                )
    # Descriptive metadata: XMP, else IPTC-IIM, else EXIF, each as exiftool decodes it.
    gd, wd = got.get("descriptive"), want["descriptive"]
    if (gd is None) != (wd is None):
        problems.append(
            f"{path}: descriptive presence: ours {gd is not None}, exiftool {wd is not None}"
        )
    elif gd is not None:
        for key in [*wd.keys(), "truncated"]:
            if gd.get(key) != wd.get(key):
                problems.append(
                    f"{path}: descriptive.{key}: ours {gd.get(key)!r}, exiftool {wd.get(key)!r}"
                )
    if got["icc"] != want["icc"]:
        problems.append(f"{path}: icc: ours {got['icc']!r}, exiftool {want['icc']!r}")
    return problems


def main(paths):
    problems = []
    for path, got in zip(paths, ours(paths)):
        problems += compare(path, got, expected(Path(path)))
    for line in problems:
        print(line)
    print(f"{len(paths)} files, {len(problems)} disagreements", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
