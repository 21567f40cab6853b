//! PNG plots of a run, drawn with `plotters`: accuracy and loss curves, and heat maps of the
//! per-layer B–W angle and error angle over epochs; and plots comparing several runs (one
//! line per run: test accuracy, median B–W and error angle over the layers).
//!
//! Text needs a TrueType font: `WT_PLOT_FONT` if set, else DejaVu Sans or Liberation Sans from
//! the usual system folders (Debian: `fonts-dejavu-core`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::metrics::{EpochMetrics, LayerMetrics, spread};
use crate::run_dir::RunDir;

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

/// Registers a font for "sans-serif" once; the error says where it looked.
fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(p) = std::env::var("WT_PLOT_FONT") {
            candidates.push(p.into());
        }
        candidates.extend(FONT_CANDIDATES.iter().map(PathBuf::from));
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no TrueType font found for plot text (looked at {}); install fonts-dejavu-core or set WT_PLOT_FONT",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))
    })
    .clone()
}

fn err<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Draws `accuracy.png`, `loss.png`, `angles.png` and (when measured) `error_angles.png`,
/// `update_angles.png` and `block_error_angles.png` in
/// `dir`.
pub fn draw_all(history: &[EpochMetrics], dir: &Path) -> Result<(), String> {
    if history.is_empty() {
        return Ok(());
    }
    ensure_font()?;
    let pct = |v: f64| 100.0 * v;
    let mut acc = vec![
        (
            "train",
            history
                .iter()
                .map(|m| (m.epoch as f64, pct(m.train_accuracy)))
                .collect::<Vec<_>>(),
        ),
        (
            "test",
            history
                .iter()
                .map(|m| (m.epoch as f64, pct(m.test.top1)))
                .collect(),
        ),
    ];
    let mut loss = vec![
        (
            "train",
            history
                .iter()
                .map(|m| (m.epoch as f64, m.train_loss))
                .collect::<Vec<_>>(),
        ),
        (
            "test",
            history
                .iter()
                .map(|m| (m.epoch as f64, m.test.loss))
                .collect(),
        ),
    ];
    if history.iter().all(|m| m.validation.is_some()) {
        acc.push((
            "validation",
            history
                .iter()
                .map(|m| (m.epoch as f64, pct(m.validation.expect("checked").top1)))
                .collect(),
        ));
        loss.push((
            "validation",
            history
                .iter()
                .map(|m| (m.epoch as f64, m.validation.expect("checked").loss))
                .collect(),
        ));
    }
    curves(
        &dir.join("accuracy.png"),
        "Top-1 accuracy",
        "accuracy (%)",
        &acc,
    )?;
    curves(&dir.join("loss.png"), "Cross-entropy loss", "loss", &loss)?;
    let layers: Vec<String> = history[0].layers.iter().map(|l| l.path.clone()).collect();
    let angles: Vec<Vec<Option<f64>>> = history
        .iter()
        .map(|m| m.layers.iter().map(|l| Some(l.angle_deg)).collect())
        .collect();
    heat_map(
        &dir.join("angles.png"),
        "B-W angle (degrees) per layer",
        &layers,
        &angles,
    )?;
    type Angle = fn(&LayerMetrics) -> Option<f64>;
    let probed: [(&str, &str, Angle); 2] = [
        (
            "error_angles.png",
            "Error angle vs backprop (degrees) per layer",
            |l| l.error_angle_deg,
        ),
        (
            "update_angles.png",
            "Update angle vs backprop (degrees) per layer",
            |l| l.update_angle_deg,
        ),
    ];
    for (file, title, angle) in probed {
        let values: Vec<Vec<Option<f64>>> = history
            .iter()
            .map(|m| m.layers.iter().map(angle).collect())
            .collect();
        if values.iter().flatten().any(Option::is_some) {
            heat_map(&dir.join(file), title, &layers, &values)?;
        }
    }
    if !history[0].blocks.is_empty() {
        let blocks: Vec<String> = history[0].blocks.iter().map(|b| b.path.clone()).collect();
        let values: Vec<Vec<Option<f64>>> = history
            .iter()
            .map(|m| m.blocks.iter().map(|b| Some(b.error_angle_deg)).collect())
            .collect();
        heat_map(
            &dir.join("block_error_angles.png"),
            "Error angle vs backprop at each block's input (degrees)",
            &blocks,
            &values,
        )?;
    }
    Ok(())
}

/// Draws plots comparing named runs in `dir`, one line per run over epochs:
/// `compare_accuracy.png` (test top-1), `compare_top5.png` (test top-5), `compare_angles.png`
/// (the median over layers of the B–W angle; layers without one, DFA's convolutions, are left
/// out) and, where any run measured it, `compare_error_angles.png` (the median error angle).
/// A run whose epochs have no value for a plot is left out of it.
pub fn draw_comparison(runs: &[(String, Vec<EpochMetrics>)], dir: &Path) -> Result<(), String> {
    if runs.iter().all(|(_, h)| h.is_empty()) {
        return Err("no epochs to compare in any of the runs".into());
    }
    ensure_font()?;
    type Value = fn(&EpochMetrics) -> Option<f64>;
    let plots: [(&str, &str, &str, Value); 4] = [
        (
            "compare_accuracy.png",
            "Test top-1 accuracy",
            "accuracy (%)",
            |m| Some(100.0 * m.test.top1),
        ),
        (
            "compare_top5.png",
            "Test top-5 accuracy",
            "accuracy (%)",
            |m| Some(100.0 * m.test.top5),
        ),
        (
            "compare_angles.png",
            "B-W angle, median over layers",
            "angle (degrees)",
            |m| spread(m.layers.iter().map(|l| l.angle_deg)).map(|s| s.median),
        ),
        (
            "compare_error_angles.png",
            "Error angle vs backprop, median over layers",
            "angle (degrees)",
            |m| spread(m.layers.iter().filter_map(|l| l.error_angle_deg)).map(|s| s.median),
        ),
    ];
    for (file, title, y_desc, value) in plots {
        let series: Vec<(&str, Vec<(f64, f64)>)> = runs
            .iter()
            .map(|(name, history)| {
                let points = history
                    .iter()
                    .filter_map(|m| value(m).map(|v| (m.epoch as f64, v)))
                    .collect::<Vec<_>>();
                (name.as_str(), points)
            })
            .filter(|(_, points)| !points.is_empty())
            .collect();
        if !series.is_empty() {
            curves(&dir.join(file), title, y_desc, &series)?;
        }
    }
    Ok(())
}

/// Ten distinct colours (matplotlib's tab10), so that a table's rules get one each.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Line plot of named series over epochs.
fn curves(
    target: &Path,
    title: &str,
    y_desc: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let tmp = RunDir::temporary(target);
    let path = tmp.as_path();
    let e = err(path);
    let x_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ys = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .filter(|y| y.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(format!("{}: no finite value to plot", target.display()));
    }
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(1.0..x_max.max(2.0), (lo - pad)..(hi + pad))
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(err(path))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err(path))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err(path))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(err(path))?;
    root.present().map_err(e)?;
    drop(root);
    RunDir::publish(path, target).map_err(|e| e.to_string())
}

/// Heat map: one row per layer, one column per epoch, colour from 0° (yellow) to 90° (blue).
fn heat_map(
    target: &Path,
    title: &str,
    layers: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<(), String> {
    let tmp = RunDir::temporary(target);
    let path = tmp.as_path();
    let rows = layers.len().max(1);
    let cols = values.len();
    let height = (120 + 22 * rows).clamp(300, 1600) as u32;
    let root = BitMapBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let label_width = layers.iter().map(|l| l.len()).max().unwrap_or(4) as u32 * 8 + 20;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title}: yellow 0°, blue 90°"), ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(label_width)
        .build_cartesian_2d(0.5..cols as f64 + 0.5, -0.5..rows as f64 - 0.5)
        .map_err(err(path))?;
    let names: Vec<String> = layers.to_vec();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("epoch")
        .x_labels(cols.min(20))
        .y_labels(rows + 1)
        .y_label_formatter(&move |y: &f64| {
            // Row i (from the top) is centred on y = rows - 1 - i.
            let r = y.round();
            if (y - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < rows {
                names
                    .get(rows - 1 - r as usize)
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err(path))?;
    let cells = values.iter().enumerate().flat_map(|(e, row)| {
        row.iter().enumerate().filter_map(move |(l, v)| {
            v.map(|deg| {
                let t = (deg / 90.0).clamp(0.0, 1.0);
                let color = HSLColor(0.17 + 0.5 * t, 0.85, 0.5 - 0.15 * t);
                let (x, y) = (e as f64 + 1.0, (rows - 1 - l) as f64);
                Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], color.filled())
            })
        })
    });
    chart.draw_series(cells).map_err(err(path))?;
    root.present().map_err(err(path))?;
    drop(root);
    RunDir::publish(path, target).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Evaluation, LayerMetrics};

    #[test]
    fn draws_the_comparison_plots() {
        let kp = history();
        // A DFA-like run: no B–W angle on its first layer, no error probes.
        let mut dfa = history();
        for m in &mut dfa {
            m.layers[0].angle_deg = f64::NAN;
            for l in &mut m.layers {
                l.error_angle_deg = None;
            }
        }
        let dir = std::env::temp_dir().join(format!("wt-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        draw_comparison(&[("dfa".into(), dfa.clone())], &dir).unwrap();
        assert_eq!(
            files(&dir),
            [
                "compare_accuracy.png",
                "compare_angles.png",
                "compare_top5.png"
            ],
            "no run measured error angles: no error-angle plot"
        );
        draw_comparison(&[("kp".into(), kp), ("dfa".into(), dfa)], &dir).unwrap();
        assert_eq!(files(&dir).len(), 4, "{:?}", files(&dir));
        let bytes = std::fs::read(dir.join("compare_error_angles.png")).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let empty = draw_comparison(&[("none".into(), Vec::new())], &dir).unwrap_err();
        assert!(empty.contains("no epochs"), "{empty}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn history() -> Vec<EpochMetrics> {
        (1..=4)
            .map(|e| EpochMetrics {
                epoch: e,
                lr: 0.1,
                train_loss: 2.0 / e as f64,
                train_accuracy: 0.2 * e as f64,
                validation: Some(Evaluation {
                    loss: 2.1 / e as f64,
                    top1: 0.19 * e as f64,
                    top5: 0.9,
                }),
                test: Evaluation {
                    loss: 2.2 / e as f64,
                    top1: 0.18 * e as f64,
                    top5: 0.9,
                },
                train_seconds: 1.0,
                images_per_s: 10.0,
                layers: ["conv1", "blocks.0.conv1", "fc"]
                    .iter()
                    .map(|p| LayerMetrics {
                        path: p.to_string(),
                        rule: "kp".into(),
                        angle_deg: 90.0 / e as f64,
                        norm_ratio: 1.0,
                        error_angle_deg: Some(45.0),
                        update_angle_deg: Some(30.0),
                    })
                    .collect(),
                blocks: vec![crate::metrics::BlockMetrics {
                    path: "blocks.0".into(),
                    error_angle_deg: 20.0 / e as f64,
                }],
            })
            .collect()
    }

    #[test]
    fn draws_the_six_plots() {
        let history = history();
        let dir = std::env::temp_dir().join(format!("wt-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        draw_all(&history, &dir).unwrap();
        for name in [
            "accuracy.png",
            "loss.png",
            "angles.png",
            "error_angles.png",
            "update_angles.png",
            "block_error_angles.png",
        ] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{name}");
            assert!(bytes.len() > 2000, "{name} is {} bytes", bytes.len());
        }
        // Each plot was drawn into a temporary file and renamed: none is left behind.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 6, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
