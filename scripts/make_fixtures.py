#!/usr/bin/env python3
"""Make the small test images under fixtures/images/ and their exiftool cross-check files.

Every fixture is drawn here from code, so the set can be rebuilt exactly. For each image a
`<name>.expected.json` records what exiftool reads from it (dimensions, orientation, camera
fields, GPS, ICC description, frame count, stored colour layout), mapped to the key names of
`result.image`; the Rust tests of `imgmeta-metadata` compare their own reading against these
files, so the tests need neither Python nor exiftool.

Where exiftool reports nothing, or only a header's claim, the value comes from a small walk of
the file written here, independent of the Rust one: frames of an APNG (its fcTL chunks, not
acTL's count), of a WebP (ANMF chunks) and pages of a TIFF (its IFD chain); the alpha hint of
a lossless WebP without a VP8X header. `warnings` lists the codes we must give: GPS off the
globe and a PNG trailer as exiftool reads them, and the damage a fixture is built with.

The encoders' output depends on their versions: with another libwebp, exif_icc.webp comes out
different; restore the committed one (`git checkout fixtures/images/exif_icc.webp*`) rather
than commit a changed picture that no test asked for.

HEIC is written by pillow-heif (which bundles its own libheif), AVIF by Pillow's own AVIF plugin
(Pillow >= 11.2; neither writes a 10-bit AVIF, so 10 bits are a HEIC), JPEG XL by cjxl
(libjxl-tools) with EXIF and XMP added by exiftool. Both HEIF writers turn EXIF orientations
2-8 into `irot`/`imir` transforms; pillow-heif keeps the EXIF tag, Pillow's AVIF drops it. The
image is shown turned by the transforms alone; exiftool reports `irot` as QuickTime:Rotation, which gives the expected
oriented size. A JPEG XL's orientation lives in its codestream (1 in every fixture here, as
cjxl writes from PNG), never in its EXIF.

Needs: Pillow, piexif and pillow-heif (pip install pillow piexif pillow-heif), exiftool
(libimage-exiftool-perl) and cjxl (libjxl-tools).
Run from the repository root:  .venv-dev/bin/python scripts/make_fixtures.py
With --expected-only, only the .expected.json files are written, from the images as they are.
With --heif-jxl-only, only the HEIC, AVIF and JPEG XL images are (re)written, then every
.expected.json: another Pillow would change the older images' bytes.
"""

import datetime
import hashlib
import io
import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

try:
    import piexif
    from PIL import Image, ImageCms, ImageDraw
except ImportError:  # check_against_exiftool.py imports only the exiftool mapping below.
    piexif = Image = ImageCms = ImageDraw = None
try:
    import pillow_heif
except ImportError:
    pillow_heif = None

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "images"
VISION_FIXTURES = Path(__file__).resolve().parent.parent / "crates" / "imgmeta-vision" / "tests" / "fixtures"


def scene(width=160, height=120):
    """A deterministic photo-like picture: gradients, shapes and some texture."""
    img = Image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        for x in range(width):
            px[x, y] = (
                int(255 * x / (width - 1)),
                int(255 * y / (height - 1)),
                int(128 + 100 * math.sin(x / 9.0) * math.cos(y / 7.0)),
            )
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.15, height * 0.2, width * 0.5, height * 0.75), fill=(240, 200, 30))
    draw.rectangle((width * 0.6, height * 0.1, width * 0.9, height * 0.5), fill=(20, 40, 160))
    draw.polygon(
        [(width * 0.55, height * 0.9), (width * 0.95, height * 0.95), (width * 0.75, height * 0.6)],
        fill=(200, 30, 60),
    )
    return img


def rational(value, denominator=10000):
    return (int(round(value * denominator)), denominator)


def dms(value):
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return ((degrees, 1), (minutes, 1), rational(seconds, 100))


def camera_exif(orientation, lat, lon, altitude, make, model, lens, when, offset):
    zeroth = {
        piexif.ImageIFD.Make: make.encode(),
        piexif.ImageIFD.Model: model.encode(),
        piexif.ImageIFD.Orientation: orientation,
    }
    exif = {
        piexif.ExifIFD.DateTimeOriginal: when.encode(),
        piexif.ExifIFD.ExposureTime: (1, 250),
        piexif.ExifIFD.FNumber: (28, 10),
        piexif.ExifIFD.ISOSpeedRatings: 400,
        piexif.ExifIFD.FocalLength: (35, 1),
        piexif.ExifIFD.LensModel: lens.encode(),
    }
    if offset:
        exif[0x9011] = offset.encode()  # OffsetTimeOriginal; piexif predates EXIF 2.31.
    gps = {
        piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
        piexif.GPSIFD.GPSLatitude: dms(lat),
        piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
        piexif.GPSIFD.GPSLongitude: dms(lon),
        piexif.GPSIFD.GPSAltitudeRef: 0 if altitude >= 0 else 1,
        piexif.GPSIFD.GPSAltitude: rational(abs(altitude), 100),
    }
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps})


def icc_v2(description, damaged=False):
    """A minimal ICC v2 RGB display profile with a `desc` tag (Display P3 primaries, D50)."""

    def s15(x):
        return struct.pack(">i", int(round(x * 65536)))

    def xyz(x, y, z):
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    ascii_desc = description.encode("ascii") + b"\0"
    desc = (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_desc))
        + ascii_desc
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67
    )
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0233) + b"\0\0"
    tags = [
        (b"desc", desc),
        (b"cprt", b"text\0\0\0\0No copyright, test fixture\0"),
        (b"wtpt", xyz(0.964203, 1.0, 0.824905)),
        # A damaged profile: the red colorant is cut short (16 of its 20 bytes).
        (b"rXYZ", xyz(0.515121, 0.241196, -0.001053)[: 16 if damaged else None]),
        (b"gXYZ", xyz(0.291977, 0.692245, 0.041885)),
        (b"bXYZ", xyz(0.157104, 0.066574, 0.784073)),
        (b"rTRC", gamma),
        (b"gTRC", gamma),
        (b"bTRC", gamma),
    ]
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    table = struct.pack(">I", len(tags))
    data = b""
    for sig, body in tags:
        while (offset + len(data)) % 4:
            data += b"\0"
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = 128 + table_len + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 5, 1, 12, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)[0:4]
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 4
    )
    header += b"\0" * (128 - len(header))
    return header + table + data


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width, height):
    """A valid-looking PNG header claiming huge dimensions, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def raw_png(width, height, bit_depth, color_type, rows, chunks=()):
    """A PNG written byte by byte, for layouts Pillow does not write (2-bit grey, 4-bit palette,
    16-bit RGB): `rows` are the packed scanlines, `chunks` (kind, data) go before IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = b"".join(b"\0" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + b"".join(png_chunk(kind, data) for kind, data in chunks)
        + png_chunk(b"IDAT", zlib.compress(body, 9))
        + png_chunk(b"IEND", b"")
    )


def packed_rows(width, height, bits, value):
    """Scanlines of `bits`-bit samples, `value(x, y)` each, packed most significant first."""
    rows = []
    for y in range(height):
        acc, n, row = 0, 0, bytearray()
        for x in range(width):
            acc = (acc << bits) | value(x, y)
            n += bits
            if n == 8:
                row.append(acc)
                acc, n = 0, 0
        if n:
            row.append(acc << (8 - n))
        rows.append(bytes(row))
    return rows


def with_actl_frames(png, num_frames):
    """The APNG with its acTL chunk's declared frame count replaced (the real frames stay)."""
    at = png.index(b"acTL") - 4
    length = struct.unpack(">I", png[at : at + 4])[0]
    plays = png[at + 12 : at + 16]
    chunk = png_chunk(b"acTL", struct.pack(">I", num_frames) + plays)
    return png[:at] + chunk + png[at + 12 + length :]


def frames(count, size=(48, 32)):
    out = []
    for i in range(count):
        img = Image.new("RGB", size, (30 * i % 256, 200 - 30 * i, 80))
        ImageDraw.Draw(img).rectangle((i * 6, 4, i * 6 + 10, 20), fill=(255, 255, 255))
        out.append(img)
    return out


def make_images():
    OUT.mkdir(parents=True, exist_ok=True)
    base = scene()

    # A camera JPEG stored 160x120 and shown rotated 90° clockwise (orientation 6), taken in
    # the southern and western hemispheres below sea level, with a capture-time offset.
    base.save(
        OUT / "camera_orientation6.jpg",
        quality=90,
        exif=camera_exif(
            6, -33.857203, -70.648611, -12.5, "Imgmeta Optics", "IM-100 Mark II  ",
            "IM 35mm F1.8", "2024:05:01 12:34:56", "-04:00",
        ),
    )
    # Northern/eastern hemispheres above sea level, upright, no offset recorded.
    base.save(
        OUT / "camera_north_east.jpg",
        quality=90,
        exif=camera_exif(
            1, 48.858370, 2.294481, 330.25, "Imgmeta Optics", "IM-200",
            "IM 50mm F1.4", "2023:12:24 18:05:00", None,
        ),
    )

    # Writer quirks: NUL-padded fixed-width Make, blank-padded Model, a never-set clock,
    # a long exposure, two ISO values, GPS as decimal degrees with zero minutes and seconds,
    # an altitude without its reference (which exiftool, and so we, do not report).
    quirks = {
        "0th": {
            piexif.ImageIFD.Make: b"Quirk Cam\0\0\0\0\0\0",
            piexif.ImageIFD.Model: b"Q-1      ",
            piexif.ImageIFD.Orientation: 8,
        },
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"    :  :     :  :  ",
            piexif.ExifIFD.ExposureTime: (10, 1),
            piexif.ExifIFD.FNumber: (56, 10),
            piexif.ExifIFD.ISOSpeedRatings: (100, 200),
            piexif.ExifIFD.FocalLength: (2350, 100),
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"S",
            piexif.GPSIFD.GPSLatitude: ((338572, 10000), (0, 1), (0, 1)),
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: ((151, 1), (12, 1), (4020, 100)),
            piexif.GPSIFD.GPSAltitude: (5, 1),
        },
    }
    base.save(OUT / "camera_quirks.jpg", quality=85, exif=piexif.dump(quirks))

    # Re-encodings of one picture, for the perceptual hash.
    big = scene(320, 240)
    big.save(OUT / "scene_q95.jpg", quality=95)
    big.save(OUT / "scene_q40.jpg", quality=40)
    big.resize((160, 120), Image.LANCZOS).save(OUT / "scene_half.png")

    # PNG with an alpha channel, and a PNG carrying EXIF in an eXIf chunk.
    alpha = Image.new("RGBA", (40, 30))
    apx = alpha.load()
    for y in range(30):
        for x in range(40):
            apx[x, y] = (200, 40, 40, int(255 * x / 39))
    alpha.save(OUT / "alpha.png")
    base.save(
        OUT / "exif.png",
        exif=camera_exif(
            3, 35.658581, 139.745433, 40.0, "Imgmeta Optics", "IM-300",
            "IM 24mm F2.8", "2022:07:15 09:00:01", "+09:00",
        ),
    )

    # Animations: GIF, APNG and WebP.
    gif = frames(6)
    gif[0].save(OUT / "animated.gif", save_all=True, append_images=gif[1:], duration=80, loop=0)
    apng = frames(3)
    apng[0].save(OUT / "animated.png", save_all=True, append_images=apng[1:], duration=100)
    webp = frames(4)
    webp[0].save(
        OUT / "animated.webp", save_all=True, append_images=webp[1:], duration=100, lossless=True
    )

    # A still WebP with EXIF and a v4 (mluc) sRGB profile.
    srgb_v4 = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    base.save(
        OUT / "exif_icc.webp",
        quality=80,
        icc_profile=srgb_v4,
        exif=camera_exif(
            8, 51.500729, -0.124625, 0.0, "Imgmeta Optics", "IM-400",
            "IM 85mm F2", "2021:01:02 03:04:05", "+00:00",
        ),
    )

    # A JPEG with a v2 (desc) Display P3 profile.
    base.save(OUT / "icc_display_p3.jpg", quality=90, icc_profile=icc_v2("Display P3 (imgmeta v2)"))

    # A PNG whose v2 profile has a damaged colorant tag but an intact description.
    base.save(OUT / "icc_damaged.png", icc_profile=icc_v2("Damaged but described", damaged=True))

    # BMP and TIFF (the TIFF carries Make/Model in its own IFD).
    base.save(OUT / "plain.bmp")
    base.save(OUT / "plain.tiff", compression="tiff_deflate",
              tiffinfo={271: "Imgmeta Optics", 272: "IM-TIFF"})

    # A TIFF turned by its own Orientation tag (TIFF keeps it in IFD0, not in an EXIF block).
    base.resize((40, 30)).save(OUT / "orientation6.tiff", compression="tiff_deflate",
                               tiffinfo={274: 6, 271: "Imgmeta Optics"})

    # Stored layouts the decoder widens: an opaque GIF87a and a GIF89a with a transparent
    # index, 1- and 2-bit grey, 4-bit palette, 8-bit palette with tRNS, 16-bit RGB PNGs, a
    # 16-bit grey TIFF, a CMYK JPEG.
    small = base.resize((48, 36))
    small.quantize(colors=16).save(OUT / "opaque87a.gif")
    assert (OUT / "opaque87a.gif").read_bytes()[:6] == b"GIF87a"
    small.quantize(colors=16).save(OUT / "transparent89a.gif", transparency=0)
    assert (OUT / "transparent89a.gif").read_bytes()[:6] == b"GIF89a"
    small.convert("L").point(lambda v: 255 if v > 110 else 0).convert("1").save(OUT / "grey1.png")
    (OUT / "grey2.png").write_bytes(
        raw_png(24, 16, 2, 0, packed_rows(24, 16, 2, lambda x, y: (x // 6 + y // 8) % 4))
    )
    palette16 = bytes(c for i in range(16) for c in (i * 16, 255 - i * 16, (i * 40) % 256))
    (OUT / "palette4.png").write_bytes(
        raw_png(24, 16, 4, 3, packed_rows(24, 16, 4, lambda x, y: (x + y) % 16),
                chunks=[(b"PLTE", palette16)])
    )
    small.quantize(colors=64).save(OUT / "palette8_trns.png", transparency=0)
    rgb16 = [
        b"".join(struct.pack(">HHH", x * 2700, y * 4000, 65535 - x * 1000) for x in range(24))
        for y in range(16)
    ]
    (OUT / "rgb16.png").write_bytes(raw_png(24, 16, 16, 2, rgb16))
    grey16 = Image.new("I;16", (24, 16))
    grey16.putdata([(x * 2800 + y * 200) for y in range(16) for x in range(24)])
    grey16.save(OUT / "grey16.tiff")
    small.convert("CMYK").save(OUT / "cmyk.jpg", quality=90)

    # Frames and pages counted by walking the file: a 3-page TIFF, and APNGs whose acTL
    # header says 1 frame over 4 real ones, and 100,000 over 2.
    pages = frames(3)
    pages[0].save(OUT / "pages3.tiff", save_all=True, append_images=pages[1:],
                  compression="tiff_deflate")
    for declared, real in [(1, 4), (100_000, 2)]:
        apng = io.BytesIO()
        shown = frames(real)
        shown[0].save(apng, "PNG", save_all=True, append_images=shown[1:], duration=100)
        name = f"apng_declares{declared}_has{real}.png"
        (OUT / name).write_bytes(with_actl_frames(apng.getvalue(), declared))

    # GPS off the globe (latitude -91, longitude 200): exiftool passes it through, we do not.
    base.resize((48, 36)).save(
        OUT / "gps_off_globe.jpg",
        quality=90,
        exif=camera_exif(
            1, -91.0, 200.0, 10.0, "Imgmeta Optics", "IM-500",
            "IM 28mm F2", "2020:02:29 23:59:59", None,
        ),
    )

    # A PNG with bytes after its IEND chunk.
    trailer = io.BytesIO()
    small.save(trailer, "PNG")
    (OUT / "trailer.png").write_bytes(trailer.getvalue() + b"appended by a broken uploader")

    # Things that must not decode.
    (OUT / "page.html").write_bytes(
        b"<!DOCTYPE html>\n<html><head><title>Not an image</title></head>"
        b"<body><img src=\"cat.jpg\"></body></html>\n"
    )
    whole = io.BytesIO()
    base.save(whole, "JPEG", quality=90)
    (OUT / "truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (OUT / "bomb_100000x100000.png").write_bytes(bomb_png(100_000, 100_000))
    make_descriptive_images(base)


def make_heif_jxl_images():
    """HEIC and AVIF (pillow-heif) with EXIF orientations, GPS, an ICC profile, alpha and
    10 bits; JPEG XL (cjxl) lossless, lossy, with alpha, and with EXIF and XMP."""
    pillow_heif.register_heif_opener()
    base = scene()
    # Every EXIF orientation, which the writer turns into irot/imir: upright (1), mirrored (2),
    # 180° (3), flipped (4), transposed (5), 90° clockwise (6), transversed (7), 90°
    # anticlockwise (8).
    for orientation in range(1, 9):
        base.save(
            OUT / f"heic_orientation{orientation}.heic",
            quality=70,
            exif=camera_exif(
                orientation, 40.689247, -74.044502, 93.0, "Imgmeta Phones", "IM-P1",
                "IM-P1 back camera 26mm f/1.6", "2024:08:15 07:30:00", "-04:00",
            ),
        )
    for orientation in range(1, 9):
        base.save(
            OUT / f"avif_orientation{orientation}.avif",
            quality=70,
            exif=camera_exif(
                orientation, -22.951916, -43.210487, 700.0, "Imgmeta Phones", "IM-P2",
                "IM-P2 wide 24mm f/1.8", "2023:03:10 16:20:00", "-03:00",
            ),
        )
    base.save(OUT / "icc_display_p3.heic", quality=70, icc_profile=icc_v2("Display P3 (imgmeta v2)"))
    base.save(OUT / "icc_display_p3.avif", quality=70, icc_profile=icc_v2("Display P3 (imgmeta v2)"))
    # Sides that are multiples of 16: the HEVC encoder pads others and adds a `clap` crop,
    # whose shown size exiftool does not report.
    alpha = Image.new("RGBA", (64, 64))
    apx = alpha.load()
    for y in range(64):
        for x in range(64):
            apx[x, y] = (40, 120, 200, int(255 * x / 63))
    alpha.save(OUT / "alpha.heic", quality=80)
    alpha.save(OUT / "alpha.avif", quality=80)
    # 10 bits per sample: 16-bit RGB handed to pillow-heif, which keeps 10 of them.
    deep = bytearray()
    for y in range(64):
        for x in range(64):
            deep += struct.pack("<HHH", x * 1000, y * 1000, 65535 - x * 900)
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(64, 64), data=bytes(deep))
    heif.save(OUT / "deep10.heic", quality=80)
    # A grey HEIC (one channel, pixi says so).
    base.convert("L").save(OUT / "grey.heic", quality=70)
    # The detector's motorcycle photo as a phone stores it: turned anticlockwise, shown upright
    # by orientation 6 (written as irot), for the detection parity test
    # (crates/imgmeta-vision/tests/vision/heic.rs). Cropped to sides that are multiples of 16.
    photo = Image.open(VISION_FIXTURES / "motorcycle.png").convert("RGB").crop((4, 4, 436, 292))
    photo.rotate(90, expand=True).save(
        OUT / "motorcycle_orientation6.heic",
        quality=80,
        exif=piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6}}),
    )

    # JPEG XL: cjxl from PNGs (codestream orientation 1), exiftool adds EXIF and XMP boxes.
    tmp = OUT / "_jxl_source.png"
    try:
        base.save(tmp)
        subprocess.run(["cjxl", str(tmp), str(OUT / "lossless.jxl"), "-d", "0"], check=True,
                       capture_output=True)
        subprocess.run(["cjxl", str(tmp), str(OUT / "exif_xmp.jxl"), "-d", "1.5"], check=True,
                       capture_output=True)
        exiftool_write(
            OUT / "exif_xmp.jxl", "-m", "-EXIF:Make=Imgmeta Optics", "-EXIF:Model=IM-JXL",
            "-EXIF:Orientation#=6", "-XMP-dc:Title=A JPEG XL harbour",
        )
        alpha.save(tmp)
        subprocess.run(["cjxl", str(tmp), str(OUT / "alpha.jxl"), "-d", "0"], check=True,
                       capture_output=True)
        # An animation: cjxl keeps every frame of animated.gif (see jxl_frames).
        subprocess.run(["cjxl", str(OUT / "animated.gif"), str(OUT / "animated.jxl"), "-d", "0"],
                       check=True, capture_output=True)
    finally:
        tmp.unlink(missing_ok=True)


def exiftool_write(path, *assignments):
    """Writes tags into `path` with exiftool itself, so the fixtures hold what it writes."""
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", *assignments, str(path)], check=True
    )


def make_descriptive_images(base):
    """Images carrying XMP, IPTC-IIM and EXIF descriptive metadata (`descriptive`)."""
    small = base.resize((48, 36))
    # XMP and IIM disagree on everything they share: XMP wins. EXIF adds an artist that
    # both override, and a description that only EXIF carries.
    path = OUT / "descriptive_xmp_over_iim.jpg"
    small.save(path, quality=85)
    exiftool_write(
        path,
        "-XMP-dc:Title=Harbour at dawn", "-XMP-dc:Subject=harbour", "-XMP-dc:Subject=boats",
        "-XMP-dc:Subject=morning", "-XMP-dc:Creator=Ann Example", "-XMP-dc:Creator=Bob Example",
        "-XMP-dc:Rights=© 2024 Ann Example", "-XMP-photoshop:Credit=Example Agency",
        "-IPTC:ObjectName=IIM title", "-IPTC:Keywords=iim-only", "-IPTC:By-line=IIM Person",
        "-IPTC:CopyrightNotice=IIM copyright", "-IPTC:Credit=IIM credit",
        "-EXIF:ImageDescription=EXIF description", "-EXIF:Artist=EXIF artist",
    )
    # IIM only, without a coded character set: Latin-1 on disk.
    path = OUT / "descriptive_iim_latin1.jpg"
    small.save(path, quality=85)
    exiftool_write(
        path,
        "-IPTC:ObjectName=Café au lait", "-IPTC:Caption-Abstract=Crème brûlée, Zürich",
        "-IPTC:Keywords=café", "-IPTC:Keywords=crème", "-IPTC:By-line=Jérôme",
        "-IPTC:By-line=Zoë", "-IPTC:CopyrightNotice=© Jérôme", "-IPTC:Credit=Agence Française",
        "-EXIF:Copyright=EXIF copyright",
    )
    # IIM only, marked UTF-8 (1:90 ESC % G), with characters Latin-1 cannot hold.
    path = OUT / "descriptive_iim_utf8.jpg"
    small.save(path, quality=85)
    exiftool_write(
        path,
        "-IPTC:CodedCharacterSet=UTF8", "-IPTC:ObjectName=Zürich ☕ 東京",
        "-IPTC:Keywords=東京", "-IPTC:Keywords=Łódź", "-IPTC:By-line=Ω photographer",
    )
    # A PNG whose XMP is an iTXt chunk, with a description in two languages.
    path = OUT / "descriptive_xmp.png"
    small.save(path)
    exiftool_write(
        path,
        "-XMP-dc:Title=Lighthouse", "-XMP-dc:Description-fr=Un phare",
        "-XMP-dc:Description=A lighthouse", "-XMP-dc:Subject=coast",
        "-XMP-dc:Creator=Cleo Example",
    )
    # A 300-character title and 100 keywords: cut to 256 characters and 64 keywords.
    path = OUT / "descriptive_long.jpg"
    small.save(path, quality=85)
    exiftool_write(
        path,
        "-XMP-dc:Title=" + "Long title " * 27 + "end",
        *[f"-XMP-dc:Subject=keyword {i:03}" for i in range(100)],
    )
    # A WebP marked as made by generative AI (XMP chunk).
    path = OUT / "descriptive_ai.webp"
    small.save(path, "WEBP", quality=80)
    exiftool_write(
        path,
        "-XMP-iptcExt:DigitalSourceType="
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "-XMP-dc:Title=Generated harbour",
    )
    # A TIFF with XMP (tag 700) and IIM (tag 33723).
    path = OUT / "descriptive.tiff"
    small.save(path)
    exiftool_write(
        path,
        "-XMP-dc:Creator=Tia Example", "-IPTC:Keywords=scan", "-IPTC:Keywords=archive",
        "-IPTC:ObjectName=Archive scan",
    )


def exiftool(path):
    out = subprocess.run(
        ["exiftool", "-json", "-n", "-G", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)[0]


def pick(tags, *names):
    """The first tag found among `names` ("Group:Tag"; "*:Tag" matches any group)."""
    for name in names:
        group, _, tag = name.partition(":")
        for key, value in tags.items():
            g, _, t = key.partition(":")
            if t == tag and (group == "*" or g == group):
                return value
    return None


def first_number(value):
    if isinstance(value, str):
        return int(value.split()[0])
    return value


def iso(raw, offset):
    """exiftool's DateTimeOriginal (+ OffsetTimeOriginal) as ISO 8601; None when blank."""
    try:
        parsed = datetime.datetime.strptime(str(raw)[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    value = parsed.strftime("%Y-%m-%dT%H:%M:%S")
    return value + offset if offset else value


def webp_frames(path):
    """exiftool does not count WebP frames: walk the RIFF chunks and count ANMF chunks."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    count, pos = 0, 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        count += kind == b"ANMF"
        pos += 8 + size + (size & 1)
    return count or None


def png_frames(path):
    """An APNG's frames are its fcTL chunks (exiftool reports acTL's declared count)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    animated, controls, pos = False, 0, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I", data[pos : pos + 4])[0], data[pos + 4 : pos + 8]
        animated |= kind == b"acTL"
        controls += kind == b"fcTL"
        if kind == b"IEND":
            break
        pos += 12 + length
    return controls if animated and controls else None


def tiff_pages(path):
    """A TIFF's pages: the IFDs of the chain from the header (classic TIFF only)."""
    data = path.read_bytes()
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None:
        return None
    offset, seen = struct.unpack(order + "I", data[4:8])[0], set()
    while offset and offset not in seen and offset + 2 <= len(data):
        seen.add(offset)
        count = struct.unpack(order + "H", data[offset : offset + 2])[0]
        offset = struct.unpack(order + "I", data[offset + 2 + 12 * count : offset + 6 + 12 * count])[0]
    return len(seen) or None


def jxl_frames(path):
    """exiftool does not count JPEG XL frames, nor does this script parse codestreams: an
    animated JPEG XL here is cjxl's copy of a GIF, which keeps each of its frames."""
    if path.suffix != ".jxl" or not path.with_suffix(".gif").exists():
        return None
    return pick(exiftool(path.with_suffix(".gif")), "GIF:FrameCount")


def webp_lossless_alpha(path):
    """The "alpha is used" bit of a VP8L header, which exiftool does not report."""
    data = path.read_bytes()
    if data[12:16] != b"VP8L":
        return False
    return bool(struct.unpack("<I", data[21:25])[0] >> 28 & 1)


def numbers(value):
    """exiftool's list values ("8 8 8") or a single number, as a list of ints."""
    return [int(v) for v in str(value).split()] if value is not None else []


def layout(t, path):
    """(color_type, bit_depth, has_alpha) from exiftool's tags: PNG IHDR, GIF screen
    descriptor, JPEG frame header, TIFF tags, WebP VP8X flags, BMP header."""
    mime = pick(t, "File:MIMEType")
    if mime in ("image/png", "image/apng"):
        kind, bits = pick(t, "PNG:ColorType"), pick(t, "PNG:BitDepth")
        channels = {0: "l", 2: "rgb", 3: "indexed", 4: "la", 6: "rgba"}[kind]
        alpha = kind in (4, 6) or pick(t, "PNG:Transparency") is not None
    elif mime == "image/gif":
        # exiftool reads the transparent index from any frame's graphic control extension.
        channels, bits = "indexed", pick(t, "GIF:BitsPerPixel")
        alpha = pick(t, "GIF:TransparentColor") is not None
    elif mime == "image/jpeg":
        channels = {1: "l", 3: "rgb", 4: "cmyk"}[pick(t, "File:ColorComponents")]
        bits, alpha = pick(t, "File:BitsPerSample"), False
    elif mime == "image/tiff":
        photometric = pick(t, "EXIF:PhotometricInterpretation")
        samples = pick(t, "EXIF:SamplesPerPixel") or 1
        bits = numbers(pick(t, "EXIF:BitsPerSample"))[0]
        base, names = {0: (1, "l"), 1: (1, "l"), 2: (3, "rgb"), 3: (1, "indexed"),
                       5: (4, "cmyk"), 6: (3, "rgb")}[photometric]
        alpha = samples > base and names != "indexed"
        channels = names + ("a" if alpha else "")
        if (numbers(pick(t, "EXIF:SampleFormat")) or [1])[0] == 3:
            bits = f"{bits}f"
    elif mime == "image/webp":
        flags = pick(t, "RIFF:WebP_Flags")
        alpha = bool(flags & 0x10) if flags is not None else webp_lossless_alpha(path)
        channels, bits = "rgba" if alpha else "rgb", 8
    elif mime in ("image/heic", "image/heif", "image/avif"):
        # The primary image's pixi (these writers list it first; without -a exiftool keeps
        # the alpha plane's), and an alpha auxiliary image beside it.
        every = subprocess.run(
            ["exiftool", "-a", "-n", "-s3", "-QuickTime:ImagePixelDepth", str(path)],
            check=True, capture_output=True, text=True,
        ).stdout
        depths = numbers(every.splitlines()[0])
        channels, bits = ("l" if len(depths) == 1 else "rgb"), depths[0]
        aux = str(pick(t, "QuickTime:AuxiliaryImageType") or "")
        alpha = aux.endswith("auxid:1") or aux.endswith("auxiliary:alpha")
        channels += "a" if alpha else ""
    elif mime == "image/jxl":
        return None, None, None  # exiftool does not read the codestream's header
    elif mime == "image/bmp" and pick(t, "File:BitDepth") in (1, 2, 4, 8, 24):
        # 16- and 32-bit pixels depend on channel masks exiftool does not interpret.
        depth = pick(t, "File:BitDepth")
        channels, bits, alpha = ("indexed", depth, False) if depth <= 8 else ("rgb", 8, False)
    else:
        return None, None, None
    bit_depth = int(str(bits).rstrip("f"))
    name = "indexed" if channels == "indexed" else f"{channels}{bits}"
    return name, bit_depth, alpha


# What a fixture is built to set off, beyond what exiftool's reading shows.
BUILT_WITH = {"icc_damaged.png": ["icc_unparsed"]}


MAX_TEXT_CHARS = 256
MAX_KEYWORDS = 64


def as_list(value):
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def descriptive(t):
    """`descriptive` from exiftool's reading: each field from XMP, else IPTC-IIM, else EXIF;
    texts cut to 256 characters and keywords to 64, the cut keys listed in `truncated`."""

    def first(*names):
        for name in names:
            value = pick(t, name)
            if value not in (None, ""):
                return str(value)
        return None

    def joined(name):
        return "; ".join(as_list(pick(t, name))) or None

    found = {
        "title": first("XMP:Title", "IPTC:ObjectName"),
        "description": first("XMP:Description", "IPTC:Caption-Abstract", "EXIF:ImageDescription"),
        "keywords": as_list(pick(t, "XMP:Subject")) or as_list(pick(t, "IPTC:Keywords")),
        "creator": joined("XMP:Creator") or joined("IPTC:By-line") or first("EXIF:Artist"),
        "copyright": first("XMP:Rights", "IPTC:CopyrightNotice", "EXIF:Copyright"),
        "credit": first("XMP:Credit", "IPTC:Credit"),
        "digital_source_type": first("XMP:DigitalSourceType"),
    }
    if not any(found.values()):
        return None
    truncated = []
    for key, value in found.items():
        if key == "keywords":
            cut = len(value) > MAX_KEYWORDS or any(len(k) > MAX_TEXT_CHARS for k in value)
            found[key] = [k[:MAX_TEXT_CHARS] for k in value[:MAX_KEYWORDS]]
        else:
            cut = value is not None and len(value) > MAX_TEXT_CHARS
            found[key] = None if value is None else value[:MAX_TEXT_CHARS]
        if cut:
            truncated.append(key)
    if truncated:
        found["truncated"] = truncated
    return found


def expected(path):
    t = exiftool(path)
    size = pick(t, "Composite:ImageSize")
    width, height = (int(v) for v in str(size).replace("x", " ").split()) if size else (None, None)
    orientation = pick(t, "EXIF:Orientation")
    swapped = orientation in (5, 6, 7, 8)
    mime = pick(t, "File:MIMEType")
    if mime in ("image/heic", "image/heif", "image/avif"):
        # irot turns the image; the EXIF tag only repeats it (see the module doc).
        swapped = pick(t, "QuickTime:Rotation") in (90, 270)
    elif mime == "image/jxl":
        swapped = False  # the codestream's orientation, 1 for every fixture
    lat = pick(t, "Composite:GPSLatitude")
    lon = pick(t, "Composite:GPSLongitude")
    alt = pick(t, "Composite:GPSAltitude")
    warnings = list(BUILT_WITH.get(path.name, []))
    # A position off the globe is not reported (exiftool passes it through).
    if (lat is not None and abs(lat) > 90) or (lon is not None and abs(lon) > 180):
        warnings.append("gps_out_of_range")
        lat = lon = alt = None
        off_globe = True
    else:
        off_globe = False
    if "Trailer data" in str(pick(t, "ExifTool:Warning")):
        warnings.append("trailing_data")
    described = descriptive(t)
    if described and described.get("truncated"):
        warnings.append("text_truncated")
    exif_present = any(k.startswith("EXIF:") for k in t)
    exif = None
    if exif_present:
        exif = {
            "make": pick(t, "EXIF:Make"),
            "model": pick(t, "EXIF:Model"),
            "lens": pick(t, "EXIF:LensModel"),
            "orientation": orientation,
            "datetime_original": iso(
                pick(t, "EXIF:DateTimeOriginal"), pick(t, "EXIF:OffsetTimeOriginal")
            ),
            "exposure_time_s": pick(t, "EXIF:ExposureTime"),
            "f_number": pick(t, "EXIF:FNumber"),
            # Several ISO values print as "100 200"; the first is the one a camera used.
            "iso": first_number(pick(t, "EXIF:ISO")),
            "focal_length_mm": pick(t, "EXIF:FocalLength"),
            "gps": None
            if off_globe or (lat is None and lon is None and alt is None)
            else {"latitude": lat, "longitude": lon, "altitude_m": alt},
        }
    has_icc = any(k.startswith("ICC") for k in t)
    color_type, bit_depth, has_alpha = layout(t, path)
    out = {
        "source": "exiftool " + str(pick(t, "ExifTool:ExifToolVersion")) + ", Python hashlib",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "mime": pick(t, "File:MIMEType"),
        "width": width,
        "height": height,
        "oriented_width": height if swapped else width,
        "oriented_height": width if swapped else height,
        "frames": pick(t, "GIF:FrameCount")
        or png_frames(path)
        or webp_frames(path)
        or tiff_pages(path)
        or jxl_frames(path)
        or 1,
        "color_type": color_type,
        "bit_depth": bit_depth,
        "has_alpha": has_alpha,
        "exif": exif,
        "icc": {"description": pick(t, "ICC_Profile:ProfileDescription")} if has_icc else None,
        "descriptive": described,
        "warnings": sorted(warnings),
    }
    if pick(t, "PNG:AnimationFrames") is not None:
        # exiftool's reading of the acTL header, kept to show where it differs from `frames`.
        out["frames_declared"] = pick(t, "PNG:AnimationFrames")
    return out


def main():
    if "--heif-jxl-only" in sys.argv[1:]:
        make_heif_jxl_images()
    elif "--expected-only" not in sys.argv[1:]:
        make_images()
        make_heif_jxl_images()
    skip = {"page.html", "truncated.jpg", "bomb_100000x100000.png"}
    for path in sorted(OUT.iterdir()):
        if path.name.endswith(".json") or path.name in skip:
            continue
        target = path.with_name(path.name + ".expected.json")
        target.write_text(json.dumps(expected(path), indent=2, sort_keys=True) + "\n")
    for path in sorted(OUT.iterdir()):
        size = path.stat().st_size
        assert size < 200_000, f"{path.name} is {size} bytes"
        print(f"{size:>8}  {path.name}")


if __name__ == "__main__":
    main()
