//! `decimal`: an f32 as the f64 a JSON document should print, its shortest decimal.

/// The f64 whose shortest decimal is the f32's: `0.45f32` becomes `0.45`, where widening
/// (`f64::from`) would give `0.44999998807907104`. JSON stores f64s, and a result document
/// should print the number the model or the client gave, not its binary widening.
pub fn decimal(x: f32) -> f64 {
    // Rust prints an f32 as the shortest decimal that reads back as the same f32.
    x.to_string().parse().unwrap_or(f64::from(x))
}
