//! The lines a run reports: one per epoch ([`epoch_line`]: each layer's angles, or for a
//! deep net their spread) and the JSON line an example ends with ([`final_json`]).

use super::Trained;
use crate::config::TrainConfig;
use crate::metrics::{self, EpochMetrics};

/// One line summarising an epoch.
pub fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let val = m
        .validation
        .map(|v| format!(", validation {:.2}%", 100.0 * v.top1))
        .unwrap_or_default();
    let angles = if m.layers.len() <= EPOCH_LINE_LAYERS {
        let each: Vec<String> = (m.layers.iter())
            .map(|l| match l.error_angle_deg {
                Some(e) => format!("{} {}/{}", l.path, degrees(l.angle_deg), degrees(e)),
                None => format!("{} {}", l.path, degrees(l.angle_deg)),
            })
            .collect();
        each.join(", ")
    } else {
        // A deep net's layers do not fit a line: their spread, the list is in metrics.csv.
        let bw = spread(m.layers.iter().map(|l| l.angle_deg));
        let error = spread(m.layers.iter().filter_map(|l| l.error_angle_deg));
        format!(
            "{} layers, B-W {bw}, error {error} (per layer: metrics.csv)",
            m.layers.len()
        )
    };
    format!(
        "epoch {}/{epochs}: train loss {:.4}, train {:.2}%{val}, test {:.2}% (top-5 {:.2}%), {:.1}s, {:.0} img/s; B-W / error angles: {}",
        m.epoch,
        m.train_loss,
        100.0 * m.train_accuracy,
        100.0 * m.test.top1,
        100.0 * m.test.top5,
        m.train_seconds,
        m.images_per_s,
        angles
    )
}

/// `12.3°`, or `–` for an angle the rule does not define (NaN: a conv layer's direct matrix,
/// which no product of the layers above is formed for).
fn degrees(angle: f64) -> String {
    if angle.is_finite() {
        format!("{angle:.1}°")
    } else {
        "–".to_string()
    }
}

/// Layers the epoch line lists one by one; deeper nets get [`spread`]s.
const EPOCH_LINE_LAYERS: usize = 8;

/// `median m° (a–b°)` of the finite values, or `–` when there are none.
fn spread(values: impl Iterator<Item = f64>) -> String {
    metrics::spread(values).map_or_else(
        || "–".to_string(),
        |s| format!("median {:.1}° ({:.1}–{:.1}°)", s.median, s.min, s.max),
    )
}

/// The JSON line examples end with: rule, model, epochs, test accuracy, per-layer angles.
pub fn final_json<M>(config: &TrainConfig, trained: &Trained<M>) -> String {
    let last = trained.history.last();
    // Rounded as the line is read by people and scripts alike: accuracies to 1e-4, angles to
    // 1e-2 degrees.
    let round = |x: f64, digits: i32| (x * 10f64.powi(digits)).round() / 10f64.powi(digits);
    let layers = last.map_or(&[][..], |m| &m.layers[..]);
    serde_json::json!({
        "rule": config.model.rule.name(),
        "model": trained.model_name,
        "epochs": trained.history.len(),
        "test_accuracy": round(last.map_or(0.0, |m| m.test.top1), 4),
        "test_top5": round(last.map_or(0.0, |m| m.test.top5), 4),
        "layers": layers.iter().map(|l| l.path.as_str()).collect::<Vec<_>>(),
        "angles_deg": layers.iter().map(|l| round(l.angle_deg, 2)).collect::<Vec<_>>(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Evaluation, LayerMetrics};

    /// The epoch line lists a shallow net's layers and summarises a deep one's (ResNet-18's 21
    /// layers do not fit a line): median and range of the B–W and error angles; an undefined
    /// angle reads `–`.
    #[test]
    fn the_epoch_line_summarises_deep_nets() {
        let layer = |i: usize| LayerMetrics {
            path: format!("blocks.{i}.conv1"),
            rule: "fa".into(),
            angle_deg: 80.0 + i as f64,
            norm_ratio: 1.0,
            error_angle_deg: Some(40.0 + 2.0 * i as f64),
            update_angle_deg: None,
        };
        let epoch = |n: usize| EpochMetrics {
            epoch: 1,
            lr: 0.1,
            train_loss: 1.0,
            train_accuracy: 0.5,
            validation: None,
            test: Evaluation {
                loss: 1.0,
                top1: 0.5,
                top5: 0.9,
            },
            train_seconds: 1.0,
            images_per_s: 10.0,
            layers: (0..n).map(layer).collect(),
            blocks: Vec::new(),
        };
        let shallow = epoch_line(&epoch(3), 5);
        assert!(shallow.contains("blocks.2.conv1 82.0°/44.0°"), "{shallow}");
        // An angle the rule does not define (a conv layer's direct matrix) reads –, not NaN.
        let mut direct = epoch(2);
        direct.layers[0].angle_deg = f64::NAN;
        let direct = epoch_line(&direct, 5);
        assert!(direct.contains("blocks.0.conv1 –/40.0°"), "{direct}");
        assert!(!direct.contains("NaN"), "{direct}");
        let deep = epoch_line(&epoch(21), 5);
        assert!(!deep.contains("blocks.2.conv1"), "{deep}");
        assert!(
            deep.contains(
                "21 layers, B-W median 90.0° (80.0–100.0°), error median 60.0° (40.0–80.0°)"
            ),
            "{deep}"
        );
    }
}
