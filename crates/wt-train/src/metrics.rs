//! [`EpochMetrics`]: what a run records after every epoch, as JSON lines and CSV.

use serde::{Deserialize, Serialize};

/// Reads a number, or `null` (how serde_json writes NaN) as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Median and range of the finite values of a per-layer quantity (NaN, such as DFA's
/// convolutions' B–W angle, is left out).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The [`Spread`] of the finite values, `None` when there are none.
pub(crate) fn spread(values: impl Iterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// Alignment of one feedback layer at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMetrics {
    /// Dotted path of the layer.
    pub path: String,
    /// Rule name.
    pub rule: String,
    /// Angle between B and W, degrees; NaN where there is none (DFA's direct matrix has
    /// another shape), written `null` in JSON.
    #[serde(deserialize_with = "null_as_nan")]
    pub angle_deg: f64,
    /// ‖B‖ / ‖W‖.
    pub norm_ratio: f64,
    /// Angle between the error reaching the layer's input under the rule and under backprop,
    /// degrees (mean over the probe batches), if measured.
    pub error_angle_deg: Option<f64>,
    /// Angle between the layer's weight gradient under the rule and backprop's, degrees (mean
    /// over the probe batches), if measured.
    #[serde(default)]
    pub update_angle_deg: Option<f64>,
}

/// The error angle at the input of one residual block (marked with
/// `wt_nn::probe_block_input`), where it includes the shortcut's share of the error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMetrics {
    /// Dotted path of the block.
    pub path: String,
    /// Angle between the error reaching the block's input under the rules and under
    /// backprop, degrees (mean over the probe batches).
    pub error_angle_deg: f64,
}

/// Loss and accuracy on one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    pub top1: f64,
    /// Top-5 accuracy in [0, 1].
    pub top5: f64,
}

/// Everything measured in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Training top-1 accuracy (on augmented batches, as the model was updating).
    pub train_accuracy: f64,
    /// Held-out validation split, if any.
    pub validation: Option<Evaluation>,
    /// Test split.
    pub test: Evaluation,
    /// Wall time of the epoch's training steps, seconds.
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Per feedback layer, in forward order.
    pub layers: Vec<LayerMetrics>,
    /// Per residual block that marks its input (the zoo's ResNets), in forward order; empty
    /// when the probe did not run or the model has none.
    #[serde(default)]
    pub blocks: Vec<BlockMetrics>,
}

/// CSV of a run's history: one row per epoch, one column per value (per-layer columns named
/// `angle:<path>`, `ratio:<path>`, `error_angle:<path>`, `update_angle:<path>`, and per block
/// `block_error_angle:<path>`).
pub fn to_csv(history: &[EpochMetrics]) -> String {
    let mut out = String::from(
        "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,test_top5,train_seconds,images_per_s",
    );
    if let Some(first) = history.first() {
        for prefix in ["angle", "ratio", "error_angle", "update_angle"] {
            for l in &first.layers {
                out.push_str(&format!(",{prefix}:{}", l.path));
            }
        }
        for b in &first.blocks {
            out.push_str(&format!(",block_error_angle:{}", b.path));
        }
    }
    out.push('\n');
    let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for m in history {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{:.3},{:.1}",
            m.epoch,
            m.lr,
            m.train_loss,
            m.train_accuracy,
            opt(m.validation.map(|v| v.loss)),
            opt(m.validation.map(|v| v.top1)),
            m.test.loss,
            m.test.top1,
            m.test.top5,
            m.train_seconds,
            m.images_per_s
        ));
        for l in &m.layers {
            out.push_str(&format!(",{}", l.angle_deg));
        }
        for l in &m.layers {
            out.push_str(&format!(",{}", l.norm_ratio));
        }
        for l in &m.layers {
            out.push_str(&format!(",{}", opt(l.error_angle_deg)));
        }
        for l in &m.layers {
            out.push_str(&format!(",{}", opt(l.update_angle_deg)));
        }
        for b in &m.blocks {
            out.push_str(&format!(",{}", b.error_angle_deg));
        }
        out.push('\n');
    }
    out
}

/// JSON lines of a run's history: one object per epoch.
pub fn to_json_lines(history: &[EpochMetrics]) -> String {
    history
        .iter()
        .map(|m| serde_json::to_string(m).expect("metrics serialise") + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn spread_skips_non_finite_values() {
        let median = |v: &[f64]| super::spread(v.iter().copied()).map(|s| s.median);
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        let s = super::spread([5.0, f64::NAN, -1.0, 2.0].into_iter()).unwrap();
        assert_eq!((s.min, s.max), (-1.0, 5.0));
    }

    use super::*;

    #[test]
    fn csv_has_a_column_per_value_and_per_layer() {
        let m = EpochMetrics {
            epoch: 1,
            lr: 0.1,
            train_loss: 2.0,
            train_accuracy: 0.3,
            validation: None,
            test: Evaluation {
                loss: 1.5,
                top1: 0.4,
                top5: 0.9,
            },
            train_seconds: 12.0,
            images_per_s: 100.0,
            layers: vec![LayerMetrics {
                path: "fc".into(),
                rule: "fa".into(),
                angle_deg: 80.0,
                norm_ratio: 1.0,
                error_angle_deg: Some(45.0),
                update_angle_deg: Some(30.0),
            }],
            blocks: vec![BlockMetrics {
                path: "blocks.0".into(),
                error_angle_deg: 20.0,
            }],
        };
        let csv = to_csv(&[
            m.clone(),
            EpochMetrics {
                epoch: 2,
                ..m.clone()
            },
        ]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(header.len(), 16);
        assert_eq!(
            header[11..],
            [
                "angle:fc",
                "ratio:fc",
                "error_angle:fc",
                "update_angle:fc",
                "block_error_angle:blocks.0"
            ]
        );
        assert!(lines.iter().all(|l| l.split(',').count() == 16));
        assert!(lines[1].ends_with(",45,30,20"), "{}", lines[1]);
        let back: EpochMetrics =
            serde_json::from_str(to_json_lines(std::slice::from_ref(&m)).trim_end()).unwrap();
        assert_eq!(back, m);
        // A DFA layer's angle (none: NaN) is written null and read back as NaN.
        let mut dfa = m.clone();
        dfa.layers[0].angle_deg = f64::NAN;
        let json = to_json_lines(std::slice::from_ref(&dfa));
        assert!(json.contains(r#""angle_deg":null"#), "{json}");
        let back: EpochMetrics = serde_json::from_str(json.trim_end()).unwrap();
        assert!(back.layers[0].angle_deg.is_nan());
    }
}
