//! Images a job makes from its input: today the annotated image, with each detection's box and
//! `label score` drawn in a colour of its class, encoded as JPEG (PNG when the image has alpha).
//!
//! Pure functions over pixels: no I/O, no model. The pipeline calls them on the EXIF-oriented
//! image the detector saw, so the boxes (in that image's pixels) land where the objects are.

mod annotate;
mod encode;

pub use annotate::{BoxToDraw, annotate, class_colour};
pub use encode::{Encoded, RenderError, encode};
