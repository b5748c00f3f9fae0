//! Renders a few sample charts into a folder, to look at the drawing by eye:
//! `cargo run -p tracemark-plot --example gallery -- /tmp/gallery`.

use std::path::PathBuf;

use tracemark_plot::{Chart, ReferenceLine, Series};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "gallery".into()));
    std::fs::create_dir_all(&dir)?;

    let lengths = [25.0, 50.0, 100.0, 200.0];
    let mut power = Chart::new(
        "TPR at FPR 1e-3 vs length",
        "tokens T",
        "true-positive rate",
    )
    .y_range(0.0, 1.05);
    for (i, name) in ["γ=0.25 δ=1", "γ=0.25 δ=2", "γ=0.5 δ=2", "γ=0.5 δ=4"]
        .iter()
        .enumerate()
    {
        let pts = lengths
            .iter()
            .map(|t| (*t, 1.0 - (-(t / 60.0) * (i as f64 + 0.5)).exp()))
            .collect();
        power = power.with_series(Series::line_points(*name, pts));
    }
    power.save_png(&dir.join("power.png"), 900, 540)?;

    let curve: Vec<(f64, f64)> = (0..=200).map(|n| (n as f64, -0.13 * n as f64)).collect();
    Chart::new(
        "Cumulative log10 p vs scored tokens",
        "scored tokens",
        "log10 p",
    )
    .with_series(Series::line("suspect", curve))
    .with_reference(ReferenceLine::horizontal(-6.0, "FPR 1e-6"))
    .save_png(&dir.join("curve.png"), 900, 540)?;

    let nominal = [1e-1, 1e-2, 1e-3, 1e-4];
    Chart::new("Empirical vs nominal FPR", "nominal FPR", "empirical FPR")
        .x_log10()
        .y_log10()
        .with_series(Series::points(
            "fiction",
            nominal.iter().map(|a| (*a, a * 0.8)).collect(),
        ))
        .with_reference(ReferenceLine::identity("y = x"))
        .save_png(&dir.join("fpr.png"), 700, 500)?;
    println!("{}", dir.display());
    Ok(())
}
