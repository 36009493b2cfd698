//! Integration tests of the decode and metadata stages against the committed fixtures.

mod errors;
mod exiftool_agreement;
mod fixtures;
mod hashes_and_colours;
mod hostile;
mod result_shape;
