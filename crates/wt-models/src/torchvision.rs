//! torchvision ResNet checkpoints: a torchvision state dict (PyTorch `.pth`, read by
//! burn-store's PyTorch reader, or safetensors) loaded into the zoo's [`ResNet`]s under
//! torchvision's key names, and a wt ResNet written back as safetensors that
//! `torchvision.models.resnet18().load_state_dict` accepts.
//!
//! Key names (torchvision → wt): `conv1`, `bn1`, `fc` keep theirs; `layer{s}.{b}.…` is the
//! zoo's `blocks.{i}.…` (blocks numbered across the four stages); a block's `downsample.0` /
//! `downsample.1` is its `projection.conv` / `projection.bn`; batch norm's `weight` / `bias` are
//! `gamma` / `beta`; `fc.weight` is `[classes, d]` in PyTorch and `[d, classes]` in Burn, so it
//! is transposed both ways. `num_batches_tracked` has no counterpart (wt's batch norm uses a
//! fixed momentum) and is ignored on reading, written as 0. What the rules store (`B`, frSF's
//! magnitudes, DFA's `D`) has no torchvision key: [`PretrainedFeedback`] says what it becomes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use wt_nn::feedback::replace_value;
use wt_nn::{FeedbackLayer, LayerMapper, Rule, map_layers};

use crate::resnet::{ResNet, ResNetBlock, ResNetDepth};

/// One tensor of a state dict, as `f32` values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    /// Extents, outermost first.
    pub shape: Vec<usize>,
    /// The values.
    pub values: Vec<f32>,
}

/// A state dict: tensor name → tensor, and the file it came from (for messages).
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// The tensors by torchvision name.
    pub tensors: BTreeMap<String, StateTensor>,
    /// Where it was read from (`None` when built in memory).
    pub source: Option<PathBuf>,
}

/// Why a checkpoint could not be read or loaded. Each names the file and, where there is one,
/// the key and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointError {
    /// The file could not be read or parsed.
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A tensor the model needs is not in the state dict.
    Missing {
        /// The file.
        source: String,
        /// torchvision's name of the missing tensor.
        key: String,
        /// The shape the model expects.
        expected: Vec<usize>,
    },
    /// A tensor has another shape than the model's.
    Shape {
        /// The file.
        source: String,
        /// torchvision's name.
        key: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The shape the model expects (torchvision's layout).
        expected: Vec<usize>,
    },
    /// The state dict holds a tensor the model has no place for (another depth or
    /// architecture).
    Unexpected {
        /// The file.
        source: String,
        /// torchvision's name of the first such tensor.
        key: String,
    },
    /// The model is not one of torchvision's ResNet layouts.
    Layout(String),
}

impl std::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointError::Read { path, message } => {
                write!(
                    f,
                    "{}: cannot read the checkpoint: {message}",
                    path.display()
                )
            }
            CheckpointError::Missing {
                source,
                key,
                expected,
            } => write!(
                f,
                "{source}: no tensor `{key}` (expected shape {expected:?}, torchvision's name); \
                 is it a torchvision ResNet of this depth?"
            ),
            CheckpointError::Shape {
                source,
                key,
                found,
                expected,
            } => write!(
                f,
                "{source}: `{key}` has shape {found:?}, the model expects {expected:?} \
                 (torchvision's layout){}",
                if key.starts_with("fc.") {
                    "; a checkpoint for another number of classes loads with the classifier \
                     left out"
                } else {
                    ""
                }
            ),
            CheckpointError::Unexpected { source, key } => write!(
                f,
                "{source}: the model has no place for `{key}`: is the checkpoint another \
                 ResNet depth?"
            ),
            CheckpointError::Layout(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

fn read_error(path: &Path, message: impl ToString) -> CheckpointError {
    CheckpointError::Read {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

impl StateDict {
    /// Reads a state dict: safetensors when the name ends in `.safetensors`, else a PyTorch
    /// file (`torch.save(model.state_dict(), path)`; a `{"state_dict": ...}` or
    /// `{"model": ...}` wrapper is looked into, and DataParallel's `module.` prefix dropped).
    /// Floating-point tensors of any width become `f32`; integer tensors
    /// (`num_batches_tracked`) are skipped.
    pub fn read(path: &Path) -> Result<StateDict, CheckpointError> {
        let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
        let mut tensors = if is_safetensors {
            read_safetensors(path)?
        } else {
            read_pytorch(path)?
        };
        if !tensors.is_empty() && tensors.keys().all(|k| k.starts_with("module.")) {
            tensors = tensors
                .into_iter()
                .map(|(k, v)| (k["module.".len()..].to_string(), v))
                .collect();
        }
        Ok(StateDict {
            tensors,
            source: Some(path.to_path_buf()),
        })
    }

    fn source(&self) -> String {
        self.source
            .as_ref()
            .map_or_else(|| "the state dict".into(), |p| p.display().to_string())
    }
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, StateTensor>, CheckpointError> {
    use burn_store::pytorch_reader::{DType, PytorchReader};
    let mut reader = PytorchReader::new(path).map_err(|e| read_error(path, e))?;
    for wrapper in ["state_dict", "model"] {
        let wrapped = reader
            .keys()
            .iter()
            .any(|k| k.starts_with(&format!("{wrapper}.")));
        if wrapped && !reader.keys().iter().any(|k| k == "conv1.weight") {
            reader = PytorchReader::with_top_level_key(path, wrapper)
                .map_err(|e| read_error(path, e))?;
            break;
        }
    }
    let mut out = BTreeMap::new();
    for (name, tensor) in reader.into_tensors() {
        let kind = match tensor.dtype() {
            DType::F32 => Float::F32,
            DType::F64 => Float::F64,
            DType::F16 => Float::F16,
            DType::BF16 => Float::BF16,
            _ => continue,
        };
        // The reader gives native-endian bytes.
        let bytes = tensor.read().map_err(|e| read_error(path, e))?;
        let values = kind.decode(&bytes, cfg!(target_endian = "little"));
        let shape = tensor.shape().to_vec();
        out.insert(name, StateTensor { shape, values });
    }
    Ok(out)
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, StateTensor>, CheckpointError> {
    use safetensors::{Dtype, SafeTensors};
    let bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| read_error(path, e))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Float::F32,
            Dtype::F64 => Float::F64,
            Dtype::F16 => Float::F16,
            Dtype::BF16 => Float::BF16,
            _ => continue,
        };
        // safetensors is little-endian.
        let values = kind.decode(view.data(), true);
        let shape = view.shape().to_vec();
        out.insert(name, StateTensor { shape, values });
    }
    Ok(out)
}

/// The floating-point element types a checkpoint may hold.
#[derive(Clone, Copy)]
enum Float {
    F32,
    F64,
    F16,
    BF16,
}

impl Float {
    /// `bytes` as `f32` values; `little`: the bytes are little-endian (else big-endian).
    fn decode(self, bytes: &[u8], little: bool) -> Vec<f32> {
        let width = match self {
            Float::F64 => 8,
            Float::F32 => 4,
            Float::F16 | Float::BF16 => 2,
        };
        (bytes.chunks_exact(width))
            .map(|chunk| {
                let mut b = [0u8; 8];
                b[..width].copy_from_slice(chunk);
                if !little {
                    b[..width].reverse();
                }
                let half = u16::from_le_bytes([b[0], b[1]]);
                match self {
                    Float::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    Float::F64 => f64::from_le_bytes(b) as f32,
                    Float::F16 => half_to_f32(half),
                    Float::BF16 => f32::from_bits((half as u32) << 16),
                }
            })
            .collect()
    }
}

/// IEEE half to single precision.
fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exponent = ((h >> 10) & 0x1f) as u32;
    let mantissa = (h & 0x3ff) as u32;
    let bits = match exponent {
        0 if mantissa == 0 => sign,
        0 => {
            // Subnormal: normalise.
            let shift = mantissa.leading_zeros() - 21;
            let mantissa = (mantissa << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (mantissa << 13)
        }
        0x1f => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

/// The depth of a zoo ResNet, from its blocks (torchvision's layouts only).
pub fn resnet_depth(model: &ResNet) -> Result<ResNetDepth, CheckpointError> {
    let bottleneck = matches!(model.blocks.first(), Some(ResNetBlock::Bottleneck(_)));
    let depths = [
        ResNetDepth::R18,
        ResNetDepth::R34,
        ResNetDepth::R50,
        ResNetDepth::R101,
        ResNetDepth::R152,
    ];
    depths
        .into_iter()
        .find(|d| {
            d.bottleneck() == bottleneck && d.blocks().iter().sum::<usize>() == model.blocks.len()
        })
        .ok_or_else(|| {
            CheckpointError::Layout(format!(
                "a ResNet of {} {} blocks is none of torchvision's ResNet-18/34/50/101/152",
                model.blocks.len(),
                if bottleneck { "bottleneck" } else { "basic" }
            ))
        })
}

/// torchvision's name of the zoo ResNet parameter at `path` (wt's dotted module path, e.g.
/// `blocks.3.projection.bn.gamma`), or `None` for what the rules store (`feedback`), which
/// torchvision has no counterpart of.
pub fn torchvision_key(depth: ResNetDepth, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('.').collect();
    let (param, modules) = parts.split_last()?;
    let param = match *param {
        "feedback" => return None,
        "gamma" => "weight",
        "beta" => "bias",
        p => p,
    };
    let mut key: Vec<String> = Vec::new();
    let mut rest = modules;
    if let ["blocks", index, tail @ ..] = modules {
        let index: usize = index.parse().ok()?;
        let (mut stage, mut first) = (0, 0);
        for (s, n) in depth.blocks().into_iter().enumerate() {
            if index < first + n {
                stage = s;
                break;
            }
            first += n;
        }
        key.push(format!("layer{}", stage + 1));
        key.push((index - first).to_string());
        rest = tail;
    }
    match rest {
        ["projection", "conv"] => key.push("downsample.0".into()),
        ["projection", "bn"] => key.push("downsample.1".into()),
        other => key.extend(other.iter().map(|s| s.to_string())),
    }
    key.push(param.into());
    Some(key.join("."))
}

/// What the rules' stored tensors become when a ResNet starts from pretrained weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PretrainedFeedback {
    /// As each rule prescribes for a trained `W`: the rules whose `B` learns toward `W` (KP,
    /// WM, SA, AA, IA) start at `B = W`, where each of them settles (as if it had trained
    /// alongside `W` from the start); FA, frSF's magnitudes and the direct rules' `D` keep
    /// their random draw at the layer's initialiser scale (they never follow `W`); uSF and
    /// brSF form `B` from `W` at every step anyway.
    #[default]
    Rule,
    /// Every stored tensor keeps its random draw (e.g. to measure how fast KP or the mirror
    /// align from scratch on a trained network).
    Random,
}

/// Loads `state` (torchvision's names and layouts) into `model`: every convolution, batch norm
/// (scale, shift, running mean and variance) and, when `classifier`, the final `fc`; the rules'
/// stored tensors as `feedback` says. Fails on the first tensor the model needs that is
/// missing or misshapen, naming it (every key and shape is checked before any value is
/// written, so no model is half loaded), and, as torchvision's strict loading, on a tensor
/// the model has no place for (another depth); `num_batches_tracked`, and `fc` when
/// `classifier` is false, are ignored.
pub fn load_torchvision(
    model: ResNet,
    state: &StateDict,
    classifier: bool,
    feedback: PretrainedFeedback,
) -> Result<ResNet, CheckpointError> {
    let depth = resnet_depth(&model)?;
    // First a check of every key and shape, so a bad file changes nothing.
    let mut check = Loader {
        depth,
        state,
        classifier,
        path: PathStack::default(),
        error: None,
        apply: false,
        used: std::collections::HashSet::new(),
    };
    let model = model.map(&mut check);
    if let Some(e) = check.error.take() {
        return Err(e);
    }
    // Like torchvision's strict loading, a tensor nothing reads is an error (but batch
    // norm's counter, and the classifier when it is left out).
    let ignored =
        |k: &str| k.ends_with(".num_batches_tracked") || (k.starts_with("fc.") && !classifier);
    let unexpected = (state.tensors.keys()).find(|k| !check.used.contains(*k) && !ignored(k));
    if let Some(key) = unexpected {
        return Err(CheckpointError::Unexpected {
            source: state.source(),
            key: key.clone(),
        });
    }
    let mut load = Loader {
        apply: true,
        ..check
    };
    let model = model.map(&mut load);
    Ok(match feedback {
        PretrainedFeedback::Rule => map_layers(model, FeedbackFromWeight).0,
        PretrainedFeedback::Random => model,
    })
}

/// The dotted module path a mapper is at (enum variants, a block's `Basic` / `Bottleneck`,
/// are not part of it), as wt-nn's layer paths.
#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str, container_type: &str) {
        let part = if container_type.starts_with("Enum:") {
            String::new()
        } else {
            name.to_string()
        };
        self.0.push(part);
    }

    fn exit(&mut self) {
        self.0.pop();
    }

    fn current(&self) -> String {
        let parts: Vec<&str> = (self.0.iter())
            .filter(|p| !p.is_empty())
            .map(String::as_str)
            .collect();
        parts.join(".")
    }
}

/// Walks a ResNet's parameters with their paths, checking (and, when `apply`, replacing) each
/// against the state dict.
struct Loader<'a> {
    depth: ResNetDepth,
    state: &'a StateDict,
    classifier: bool,
    path: PathStack,
    error: Option<CheckpointError>,
    apply: bool,
    /// The state dict's keys the model reads.
    used: std::collections::HashSet<String>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let Some(key) = torchvision_key(self.depth, &self.path.current()) else {
            return param;
        };
        if key.starts_with("fc.") && !self.classifier {
            return param;
        }
        // Burn's Linear weight is `[d, classes]`; PyTorch's `[classes, d]`.
        let transposed = key == "fc.weight";
        let shape: Vec<usize> = param.val().dims().to_vec();
        let expected: Vec<usize> = if transposed {
            shape.iter().rev().copied().collect()
        } else {
            shape.clone()
        };
        let Some(found) = self.state.tensors.get(&key) else {
            self.error = Some(CheckpointError::Missing {
                source: self.state.source(),
                key,
                expected,
            });
            return param;
        };
        if found.shape != expected {
            self.error = Some(CheckpointError::Shape {
                source: self.state.source(),
                key,
                found: found.shape.clone(),
                expected,
            });
            return param;
        }
        if !self.apply {
            self.used.insert(key);
            return param;
        }
        // The classifier's values laid out as Burn's `[d, classes]` here, so the tensor is a
        // plain row-major one, as a model built in wt holds.
        let values = if transposed {
            let [classes, d] = [expected[0], expected[1]];
            (0..d * classes)
                .map(|i| found.values[(i % classes) * d + i / classes])
                .collect()
        } else {
            found.values.clone()
        };
        param.map(|old| {
            let device = old.device();
            let data = TensorData::new(values, shape.clone());
            replace_value(old, Tensor::<D>::from_data(data, &device).inner())
        })
    }
}

/// `B = W` for the rules whose `B` learns toward `W`.
struct FeedbackFromWeight;

impl LayerMapper for FeedbackFromWeight {
    fn map<const D: usize>(&mut self, _path: &str, layer: &mut dyn FeedbackLayer<D>) {
        let follows_w = matches!(
            layer.rule(),
            Rule::KolenPollack(_)
                | Rule::WeightMirror(_)
                | Rule::SymmetricAlignment(_)
                | Rule::ActivationAlignment(_)
                | Rule::InformationAlignment(_)
        );
        if !follows_w {
            return;
        }
        let w = layer.weight().val().inner();
        if let Some(stored) = layer.stored_mut() {
            *stored = stored.clone().map(|b| replace_value(b, w.clone()));
        }
    }
}

/// `model` as a safetensors file in torchvision's names and layouts (`f32`, and an `i64`
/// `num_batches_tracked` of 0 for each batch norm), which
/// `torchvision.models.resnetN(num_classes=...).load_state_dict(safetensors.torch.load_file(f))`
/// accepts as it is (strict). The rules' stored tensors are not written.
pub fn torchvision_safetensors(model: &ResNet) -> Result<Vec<u8>, CheckpointError> {
    let state = torchvision_state_dict(model)?;
    let mut bytes: BTreeMap<String, (Vec<usize>, Vec<u8>, bool)> = BTreeMap::new();
    for (key, t) in &state.tensors {
        let raw = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.insert(key.clone(), (t.shape.clone(), raw, false));
        if let Some(bn) = key.strip_suffix(".running_var") {
            let zero = 0i64.to_le_bytes().to_vec();
            bytes.insert(
                format!("{bn}.num_batches_tracked"),
                (Vec::new(), zero, true),
            );
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, (shape, raw, int))| {
            let dtype = if *int {
                safetensors::Dtype::I64
            } else {
                safetensors::Dtype::F32
            };
            let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), raw)
                .expect("a tensor's bytes match its shape");
            (k.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None)
        .map_err(|e| CheckpointError::Layout(format!("safetensors: {e}")))
}

/// Collects a ResNet's tensors under torchvision's names.
struct Collect {
    depth: ResNetDepth,
    path: PathStack,
    tensors: BTreeMap<String, StateTensor>,
}

impl ModuleMapper for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if let Some(key) = torchvision_key(self.depth, &self.path.current()) {
            let value = param.val().inner();
            let value = if key == "fc.weight" {
                value.transpose()
            } else {
                value
            };
            let shape = value.dims().to_vec();
            let values = value.into_data().iter::<f32>().collect();
            self.tensors.insert(key, StateTensor { shape, values });
        }
        param
    }
}

/// The state dict of `model` under torchvision's names (no `num_batches_tracked`), as
/// [`torchvision_safetensors`] writes it.
pub fn torchvision_state_dict(model: &ResNet) -> Result<StateDict, CheckpointError> {
    let depth = resnet_depth(model)?;
    let mut collect = Collect {
        depth,
        path: PathStack::default(),
        tensors: BTreeMap::new(),
    };
    model.clone().map(&mut collect);
    Ok(StateDict {
        tensors: collect.tensors,
        source: None,
    })
}

impl wt_nn::wt_core::Named for PretrainedFeedback {
    const WHAT: &'static str = "pretrained feedback";

    fn all() -> Vec<Self> {
        vec![PretrainedFeedback::Rule, PretrainedFeedback::Random]
    }

    fn name(&self) -> &'static str {
        match self {
            PretrainedFeedback::Rule => "rule",
            PretrainedFeedback::Random => "random",
        }
    }
}

wt_nn::wt_core::named_str!(PretrainedFeedback);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImageClassifier, ResNetConfig, Stem};
    use burn::tensor::{Device, Distribution};
    use wt_nn::FeedbackLayer;
    use wt_nn::wt_core::device::device_test_lock;

    fn resnet(depth: ResNetDepth, classes: usize, rule: &str, seed: u64) -> ResNet {
        let device = Device::flex();
        device.seed(seed);
        ResNetConfig::new(depth, classes)
            .with_rule(rule.parse().unwrap())
            .with_stem(Stem::ImageNet)
            .init(&device)
    }

    /// torchvision's own state dict of a ResNet-18, written out from its architecture (not
    /// from wt's names): every key with its shape, random values.
    fn torchvision_resnet18(classes: usize) -> StateDict {
        let mut shapes: Vec<(String, Vec<usize>)> =
            vec![("conv1.weight".into(), vec![64, 3, 7, 7])];
        let bn = |name: &str, c: usize, out: &mut Vec<(String, Vec<usize>)>| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{name}.{p}"), vec![c]));
            }
        };
        bn("bn1", 64, &mut shapes);
        let mut c_in = 64;
        for (s, width) in [64, 128, 256, 512].into_iter().enumerate() {
            for b in 0..2 {
                let name = format!("layer{}.{b}", s + 1);
                let c = if b == 0 { c_in } else { width };
                shapes.push((format!("{name}.conv1.weight"), vec![width, c, 3, 3]));
                bn(&format!("{name}.bn1"), width, &mut shapes);
                shapes.push((format!("{name}.conv2.weight"), vec![width, width, 3, 3]));
                bn(&format!("{name}.bn2"), width, &mut shapes);
                if b == 0 && s > 0 {
                    shapes.push((
                        format!("{name}.downsample.0.weight"),
                        vec![width, c_in, 1, 1],
                    ));
                    bn(&format!("{name}.downsample.1"), width, &mut shapes);
                }
            }
            c_in = width;
        }
        shapes.push(("fc.weight".into(), vec![classes, 512]));
        shapes.push(("fc.bias".into(), vec![classes]));
        let mut seed = 17u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32
        };
        let tensors = shapes
            .into_iter()
            .map(|(k, shape)| {
                let n: usize = shape.iter().product();
                // Positive where it must be (a running variance).
                let values = (0..n).map(|_| 0.05 + 0.1 * next()).collect();
                (k, StateTensor { shape, values })
            })
            .collect();
        StateDict {
            tensors,
            source: None,
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.inner().into_data().iter::<f32>().collect()
    }

    /// A state dict written in torchvision's layout loads into the zoo's ResNet-18 where
    /// torchvision keeps each tensor: a block of stage 2, its downsample (projection), batch
    /// norm's four tensors and the transposed classifier; KP's `B` starts at `W`, FA's stays
    /// random.
    #[test]
    fn a_torchvision_state_dict_lands_where_torchvision_keeps_each_tensor() {
        let _serial = device_test_lock();
        let state = torchvision_resnet18(10);
        assert_eq!(
            state.tensors.len(),
            122 - 20,
            "122 keys less 20 num_batches_tracked"
        );
        let model = resnet(ResNetDepth::R18, 10, "kp", 1);
        let model = load_torchvision(model, &state, true, PretrainedFeedback::Rule).unwrap();
        let want = |k: &str| state.tensors[k].values.clone();
        let ResNetBlock::Basic(block) = &model.blocks[2] else {
            panic!("basic blocks")
        };
        assert_eq!(
            values(block.conv1.weight().val()),
            want("layer2.0.conv1.weight")
        );
        let proj = block.projection.as_ref().expect("layer2.0 downsamples");
        assert_eq!(
            values(proj.conv.weight().val()),
            want("layer2.0.downsample.0.weight")
        );
        assert_eq!(
            values(proj.bn.gamma.val()),
            want("layer2.0.downsample.1.weight")
        );
        assert_eq!(
            values(proj.bn.beta.val()),
            want("layer2.0.downsample.1.bias")
        );
        assert_eq!(
            values(proj.bn.running_mean.value()),
            want("layer2.0.downsample.1.running_mean")
        );
        assert_eq!(
            values(proj.bn.running_var.value()),
            want("layer2.0.downsample.1.running_var")
        );
        // fc: PyTorch's [classes, 512] is Burn's [512, classes].
        let fc = model.fc.weight().val();
        assert_eq!(fc.dims(), [512, 10]);
        assert_eq!(values(fc.clone().transpose()), want("fc.weight"));
        assert_eq!(
            values(model.fc.stored().unwrap().val()),
            values(fc),
            "KP: B = W"
        );

        let fa = resnet(ResNetDepth::R18, 10, "fa", 1);
        let b_before = values(fa.conv1.stored().unwrap().val());
        let fa = load_torchvision(fa, &state, true, PretrainedFeedback::Rule).unwrap();
        assert_eq!(
            values(fa.conv1.stored().unwrap().val()),
            b_before,
            "FA keeps its draw"
        );
        assert_ne!(values(fa.conv1.weight().val()), b_before);
        let kp = resnet(ResNetDepth::R18, 10, "kp", 1);
        let b_before = values(kp.conv1.stored().unwrap().val());
        let kp = load_torchvision(kp, &state, true, PretrainedFeedback::Random).unwrap();
        assert_eq!(
            values(kp.conv1.stored().unwrap().val()),
            b_before,
            "random: kept"
        );
    }

    /// The first missing or misshapen tensor is an error naming it (and the file); a
    /// classifier for another class count loads with the classifier left out.
    #[test]
    fn a_missing_or_misshapen_tensor_is_named() {
        let _serial = device_test_lock();
        let mut state = torchvision_resnet18(1000);
        state.source = Some(PathBuf::from("r18.pth"));
        let model = || resnet(ResNetDepth::R18, 10, "bp", 1);
        let err = load_torchvision(model(), &state, true, PretrainedFeedback::Rule).unwrap_err();
        assert_eq!(
            err,
            CheckpointError::Shape {
                source: "r18.pth".into(),
                key: "fc.weight".into(),
                found: vec![1000, 512],
                expected: vec![10, 512],
            }
        );
        assert!(err.to_string().contains("classifier left out"), "{err}");
        load_torchvision(model(), &state, false, PretrainedFeedback::Rule).unwrap();
        state.tensors.remove("layer3.1.bn2.running_var");
        let err = load_torchvision(model(), &state, false, PretrainedFeedback::Rule).unwrap_err();
        assert_eq!(
            err,
            CheckpointError::Missing {
                source: "r18.pth".into(),
                key: "layer3.1.bn2.running_var".into(),
                expected: vec![256],
            }
        );
        assert!(
            err.to_string()
                .starts_with("r18.pth: no tensor `layer3.1.bn2.running_var`")
        );
        // A ResNet-34's file holds every ResNet-18 key and more: refused, not half read.
        let mut state = torchvision_resnet18(10);
        state.tensors.insert(
            "layer1.2.conv1.weight".into(),
            StateTensor {
                shape: vec![64, 64, 3, 3],
                values: vec![0.0; 64 * 64 * 9],
            },
        );
        let err = load_torchvision(model(), &state, true, PretrainedFeedback::Rule).unwrap_err();
        assert_eq!(
            err,
            CheckpointError::Unexpected {
                source: "the state dict".into(),
                key: "layer1.2.conv1.weight".into(),
            }
        );
    }

    /// A wt ResNet written as torchvision safetensors has torchvision's keys (122 for
    /// ResNet-18, 320 for ResNet-50, `num_batches_tracked` included) and reads back into
    /// another wt ResNet with the same logits, bit for bit.
    #[test]
    fn a_wt_resnet_goes_to_torchvisions_keys_and_back() {
        let _serial = device_test_lock();
        for (depth, keys) in [(ResNetDepth::R18, 122), (ResNetDepth::R50, 320)] {
            let a = resnet(depth, 7, "bp", 3);
            let bytes = torchvision_safetensors(&a).unwrap();
            let path = std::env::temp_dir().join(format!(
                "wt-tv-{depth:?}-{}.safetensors",
                std::process::id()
            ));
            std::fs::write(&path, &bytes).unwrap();
            let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            assert_eq!(file.len(), keys, "{depth:?}");
            let bn = file.tensor("layer1.0.bn1.num_batches_tracked").unwrap();
            assert_eq!((bn.dtype(), bn.shape()), (safetensors::Dtype::I64, &[][..]));
            assert_eq!(
                file.tensor("fc.weight").unwrap().shape(),
                &[7, 2048 / if depth == ResNetDepth::R18 { 4 } else { 1 }]
            );
            assert!(file.names().iter().all(|k| !k.contains("feedback")));
            let state = StateDict::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            let b = resnet(depth, 7, "fa", 4);
            let b = load_torchvision(b, &state, true, PretrainedFeedback::Rule).unwrap();
            let device = Device::flex();
            let x = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
            let (ya, yb) = (a.valid().forward(x.clone()), b.valid().forward(x));
            assert_eq!(values(ya), values(yb), "{depth:?}");
        }
    }

    #[test]
    fn half_floats_convert_exactly() {
        for (h, f) in [
            (0x3C00u16, 1.0f32),
            (0xC000, -2.0),
            (0x7BFF, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x0400, 6.103_515_6e-5),
            (0x7C00, f32::INFINITY),
            (0x8000, -0.0),
        ] {
            assert_eq!(half_to_f32(h).to_bits(), f.to_bits(), "{h:#06x}");
        }
        assert!(half_to_f32(0x7E00).is_nan());
        // Every width in either byte order.
        let le: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let be: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(Float::F32.decode(&le, true), [1.5, -0.25]);
        assert_eq!(Float::F32.decode(&be, false), [1.5, -0.25]);
        assert_eq!(Float::F64.decode(&(-3.5f64).to_be_bytes(), false), [-3.5]);
        assert_eq!(Float::F16.decode(&[0x00, 0x3C], true), [1.0]);
        assert_eq!(Float::BF16.decode(&[0xC0, 0x3F], true), [1.5]);
    }
}
