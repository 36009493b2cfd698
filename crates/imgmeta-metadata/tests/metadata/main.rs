//! Integration tests of the decode and metadata stages against the committed fixtures.

#[path = "../support/bombs.rs"]
mod bombs;
mod credentials;
mod descriptive;
mod errors;
mod exact_fields;
mod exiftool_agreement;
mod fixtures;
mod hashes_and_colours;
mod heif_jxl;
mod hostile;
mod metadata_bombs;
mod result_shape;
