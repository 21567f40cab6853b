//! TensorBoard event files of a run's scalars, written by hand in the documented format.
//!
//! An event file is a sequence of records, each
//! `u64 length (LE) · u32 masked CRC-32C of the length bytes · data · u32 masked CRC-32C of
//! data`, with the mask `((crc >> 15) | (crc << 17)) + 0xa282ead8`; each record's data is an
//! `Event` protobuf (`wall_time` = 1, double; `step` = 2, int64; `file_version` = 3, string;
//! `summary` = 5, a `Summary` of `Value`s with `tag` = 1, string and `simple_value` = 2,
//! float). The first event carries `file_version = "brain.Event:2"`.
//!
//! The file is rewritten whole from the run's history after every epoch (atomically, like
//! every run file), so after `--resume` it holds exactly one event per scalar and epoch.

use std::path::{Path, PathBuf};

use crate::error::TrainError;
use crate::metrics::EpochMetrics;
use crate::run_dir::RunDir;

/// The masked CRC-32C TensorBoard puts after a record's length and data.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One `Event`: wall time, step and either the file version or scalars.
fn event(wall_time: f64, step: i64, body: EventBody<'_>) -> Vec<u8> {
    let mut e = Vec::new();
    key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    key(&mut e, 2, 0);
    varint(&mut e, step as u64);
    match body {
        EventBody::Version => bytes_field(&mut e, 3, b"brain.Event:2"),
        EventBody::Scalars(scalars) => {
            let mut summary = Vec::new();
            for (tag, value) in scalars {
                let mut v = Vec::new();
                bytes_field(&mut v, 1, tag.as_bytes());
                key(&mut v, 2, 5);
                v.extend_from_slice(&(*value as f32).to_le_bytes());
                bytes_field(&mut summary, 1, &v);
            }
            bytes_field(&mut e, 5, &summary);
        }
    }
    e
}

enum EventBody<'a> {
    Version,
    Scalars(&'a [(String, f64)]),
}

/// Appends one record (length, its CRC, data, its CRC).
fn record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// Every scalar of one epoch, as `(tag, value)`: loss and top-1/top-5 per split, the learning
/// rate, images/s, and per layer the B–W angle, ‖B‖/‖W‖, error and update angles, per block
/// the error angle. Values that are not finite (a direct rule's conv angle) are left out.
pub fn scalars(m: &EpochMetrics) -> Vec<(String, f64)> {
    let mut s = vec![
        ("train/loss".to_string(), m.train_loss),
        ("train/top1".to_string(), m.train_accuracy),
        ("test/loss".to_string(), m.test.loss),
        ("test/top1".to_string(), m.test.top1),
        ("test/top5".to_string(), m.test.top5),
        ("lr".to_string(), m.lr),
        ("images_per_s".to_string(), m.images_per_s),
    ];
    if let Some(v) = m.validation {
        s.push(("validation/loss".into(), v.loss));
        s.push(("validation/top1".into(), v.top1));
        s.push(("validation/top5".into(), v.top5));
    }
    for l in &m.layers {
        s.push((format!("bw_angle/{}", l.path), l.angle_deg));
        s.push((format!("norm_ratio/{}", l.path), l.norm_ratio));
        if let Some(e) = l.error_angle_deg {
            s.push((format!("error_angle/{}", l.path), e));
        }
        if let Some(u) = l.update_angle_deg {
            s.push((format!("update_angle/{}", l.path), u));
        }
    }
    for b in &m.blocks {
        s.push((format!("block_error_angle/{}", b.path), b.error_angle_deg));
    }
    s.retain(|(_, v)| v.is_finite());
    s
}

/// The bytes of an event file holding `history`: the version event, then one event per epoch
/// (step = epoch) with all its scalars. `wall_time` stamps every event (seconds since 1970).
pub fn event_file(history: &[EpochMetrics], wall_time: f64) -> Vec<u8> {
    let mut out = Vec::new();
    record(&mut out, &event(wall_time, 0, EventBody::Version));
    for m in history {
        let scalars = scalars(m);
        record(
            &mut out,
            &event(wall_time, m.epoch as i64, EventBody::Scalars(&scalars)),
        );
    }
    out
}

/// [`event_file`] with the wall time read from an existing file's first record, so that a
/// file written earlier can be compared byte for byte with what `history` gives now.
pub fn event_file_at(history: &[EpochMetrics], existing: &[u8]) -> Vec<u8> {
    // Record header (12 bytes), then field 1 (key byte 0x09) and the double.
    let wall_time = existing
        .get(13..21)
        .map_or(0.0, |b| f64::from_le_bytes(b.try_into().expect("8 bytes")));
    event_file(history, wall_time)
}

/// The event file's path in `dir`: `events.out.tfevents.<run name>.wt` (TensorBoard reads
/// every file whose name contains `tfevents`).
pub fn event_path(dir: &Path, run_name: &str) -> PathBuf {
    dir.join(format!("events.out.tfevents.{run_name}.wt"))
}

/// Writes the event file of `history` into `dir` (created if missing), atomically.
pub fn write(dir: &Path, run_name: &str, history: &[EpochMetrics]) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let wall_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    RunDir::write_atomic(&event_path(dir, run_name), &event_file(history, wall_time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{BlockMetrics, Evaluation, LayerMetrics};

    /// A reader written from the format's rules, independent of the writer: records with
    /// both CRCs checked, protobuf fields decoded by wire type. The mask is spelled as the
    /// format documents it, not as the writer computes it.
    #[allow(clippy::manual_rotate)]
    fn read_records(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            let crc = crc32c::crc32c(len_bytes);
            assert_eq!(
                len_crc,
                ((crc >> 15) | (crc << 17)).wrapping_add(0xa282ead8)
            );
            let data = &bytes[at + 12..at + 12 + len];
            let data_crc =
                u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            let crc = crc32c::crc32c(data);
            assert_eq!(
                data_crc,
                ((crc >> 15) | (crc << 17)).wrapping_add(0xa282ead8)
            );
            out.push(data.to_vec());
            at += 16 + len;
        }
        assert_eq!(at, bytes.len());
        out
    }

    /// Protobuf fields of a message: (field number, varint value or bytes).
    fn fields(mut b: &[u8]) -> Vec<(u64, Result<u64, Vec<u8>>)> {
        fn take_varint(b: &mut &[u8]) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= ((byte & 0x7f) as u64) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let k = take_varint(&mut b);
            let value = match k & 7 {
                0 => Ok(take_varint(&mut b)),
                1 => {
                    let v = b[..8].to_vec();
                    b = &b[8..];
                    Err(v)
                }
                5 => {
                    let v = b[..4].to_vec();
                    b = &b[4..];
                    Err(v)
                }
                2 => {
                    let n = take_varint(&mut b) as usize;
                    let v = b[..n].to_vec();
                    b = &b[n..];
                    Err(v)
                }
                w => panic!("wire type {w}"),
            };
            out.push((k >> 3, value));
        }
        out
    }

    fn epoch(e: usize) -> EpochMetrics {
        EpochMetrics {
            epoch: e,
            lr: 0.1 / e as f64,
            train_loss: 2.0 / e as f64,
            train_accuracy: 0.3,
            validation: Some(Evaluation {
                loss: 1.7,
                top1: 0.35,
                top5: 0.8,
            }),
            test: Evaluation {
                loss: 1.5,
                top1: 0.4,
                top5: 0.9,
            },
            train_seconds: 12.0,
            images_per_s: 100.0,
            layers: vec![
                LayerMetrics {
                    path: "fc".into(),
                    rule: "fa".into(),
                    angle_deg: 80.0,
                    norm_ratio: 1.25,
                    error_angle_deg: Some(45.0),
                    update_angle_deg: Some(30.0),
                },
                LayerMetrics {
                    path: "conv1".into(),
                    rule: "dfa".into(),
                    angle_deg: f64::NAN,
                    norm_ratio: 0.5,
                    error_angle_deg: None,
                    update_angle_deg: None,
                },
            ],
            blocks: vec![BlockMetrics {
                path: "blocks.0".into(),
                error_angle_deg: 20.0,
            }],
        }
    }

    #[test]
    fn event_files_follow_the_record_format_and_hold_every_scalar() {
        let history = [epoch(1), epoch(2)];
        let bytes = event_file(&history, 1.5e9);
        let records = read_records(&bytes);
        assert_eq!(records.len(), 3);
        let first = fields(&records[0]);
        assert_eq!(first[0], (1, Err(1.5e9f64.to_le_bytes().to_vec())));
        assert_eq!(first[2], (3, Err(b"brain.Event:2".to_vec())));
        for (i, r) in records[1..].iter().enumerate() {
            let f = fields(r);
            assert_eq!(f[1], (2, Ok(i as u64 + 1)), "step is the epoch");
            let Err(summary) = &f[2].1 else {
                panic!("summary")
            };
            assert_eq!(f[2].0, 5);
            let values: Vec<(String, f32)> = fields(summary)
                .into_iter()
                .map(|(n, v)| {
                    assert_eq!(n, 1);
                    let v = fields(&v.unwrap_err());
                    let tag = String::from_utf8(v[0].1.clone().unwrap_err()).unwrap();
                    assert_eq!(v[1].0, 2);
                    let x = f32::from_le_bytes(v[1].1.clone().unwrap_err().try_into().unwrap());
                    (tag, x)
                })
                .collect();
            let get = |t: &str| values.iter().find(|(k, _)| k == t).map(|(_, v)| *v);
            assert_eq!(get("train/loss"), Some(2.0 / (i + 1) as f32));
            assert_eq!(get("lr"), Some((0.1 / (i + 1) as f64) as f32));
            assert_eq!(get("validation/top1"), Some(0.35));
            assert_eq!(get("test/top5"), Some(0.9));
            assert_eq!(get("bw_angle/fc"), Some(80.0));
            assert_eq!(get("norm_ratio/fc"), Some(1.25));
            assert_eq!(get("error_angle/fc"), Some(45.0));
            assert_eq!(get("update_angle/fc"), Some(30.0));
            assert_eq!(get("block_error_angle/blocks.0"), Some(20.0));
            assert_eq!(get("norm_ratio/conv1"), Some(0.5));
            assert_eq!(get("bw_angle/conv1"), None, "a NaN angle is left out");
            assert_eq!(values.len(), 16);
        }
        // A flipped bit fails the data checksum.
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(std::panic::catch_unwind(|| read_records(&bad)).is_err());
    }
}
