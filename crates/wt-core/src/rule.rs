//! The learning rules: what the feedback weights `B` are at each step and how they learn.
//!
//! Every rule is its own type, independent of the layer that uses it; [`Rule`] selects one per
//! layer. Kolen-Pollack's `B` learns from a *gradient of B* (W's), so Burn's optimizers,
//! gradient accumulation and data-parallel all-reduce apply it unchanged; the weight mirror
//! updates `B` itself after the optimizer's step by default ([`MirrorUpdate`]), or through a
//! pseudo-gradient. See `docs/rules.md` for the math.

use burn::tensor::{Distribution, Tensor};

use crate::direct::DirectSignal;
use crate::ops::Feedback;
use serde::{Deserialize, Serialize};

use crate::local_alignment::{
    ActivationAlignment, AlignmentTerms, Coefficient, InformationAlignment, SymmetricAlignment,
};
use crate::named::Named;

/// Backpropagation, the control: `B` is `W`. Gradients equal Burn's own layers exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Backprop;

/// Feedback alignment (Lillicrap et al. 2016): `B` is drawn once from W's initialiser (same
/// distribution, same fan-in scaling, from the device's seeded RNG) and never changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackAlignment;

/// Uniform sign-symmetry, uSF (Liao et al. 2016; Xiao et al. 2018; BioTorch `usf`):
/// `B = s·sign(W)` with `s` the standard deviation of W's initialiser. Nothing is stored: `B`
/// follows `W`'s signs at every step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UniformSignSymmetry;

/// Batchwise random-magnitude sign-symmetry, brSF (Moskovitz et al. 2018; BioTorch `brsf`):
/// `B = |R|·sign(W)`, `R ~ U(−√3·s, √3·s)` (std `s`) redrawn each time the backward pass
/// sends an error through the layer (once a step; not in evaluation, not for a first layer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchRandomSignSymmetry;

/// Fixed random-magnitude sign-symmetry, frSF (Moskovitz et al. 2018; BioTorch `frsf`):
/// `B = |R0|·sign(W)`, `R0 ~ U(−√3·s, √3·s)` (std `s`) drawn once and stored with the layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FixedRandomSignSymmetry;

/// Kolen-Pollack (Kolen & Pollack 1994; Akrout et al. 2019, eq. 6): `B` receives exactly W's
/// gradient. With weight decay λ on both and learning rate η, plain SGD gives
/// `W − B ← (1 − ηλ)(W − B)` each step, so `B` converges to `W` without ever reading it.
///
/// `feedback_decay` (λ_K, default 0: the paper's KP) is a decay on `B` alone, added to B's
/// gradient as `λ_K·B` on top of the optimizer's weight decay, so `W` keeps the recipe's λ.
/// `B` then forgets its initial draw by `1 − η(λ + λ_K)` a step instead of `1 − ηλ`, and
/// keeps the shared gradients of the last `1/(η(λ + λ_K))` steps only; when `W` settles, `B`
/// tends to `λ/(λ + λ_K)·W` (aligned, but smaller). `docs/rules.md` has the derivation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct KolenPollack {
    /// Decay on `B` alone, `λ_K ≥ 0`, added to B's gradient as `λ_K·B`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub feedback_decay: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl KolenPollack {
    /// Checks that `feedback_decay` is a finite `λ_K ≥ 0`.
    pub fn validate(&self) -> Result<(), String> {
        let d = self.feedback_decay;
        if d.is_finite() && d >= 0.0 {
            Ok(())
        } else {
            Err(format!(
                "Kolen-Pollack: feedback_decay (λ_K) is {d}: it must be a finite number ≥ 0"
            ))
        }
    }
}

/// The settings of the two direct rules, direct feedback alignment and direct Kolen-Pollack:
/// every layer's input receives the network's output error `e = ∂L/∂ŷ` through the layer's
/// own matrix `D` instead of the error from the layer above; `W` and `b` learn from the
/// gradient reaching the layer's output, as usual. The model marks its output with
/// [`direct_error`](crate::direct_error); [`crate::direct`] has the two ops. `D` is drawn as
/// BioTorch draws DFA's: Xavier-uniform, `[d_input, outputs]` for a dense layer (fans
/// `d_input`, `outputs`) and `[outputs, c_in, kh, kw]` for a convolution (fans `c_in·kh·kw`,
/// `outputs·kh·kw`), stored with the layer as its `feedback` parameter.
///
/// A convolution's direct signal repeats `e` at each of its `P = h_out·w_out` output positions
/// (BioTorch's), so its weight gradient sums `P` coherent terms; with
/// [`conv_position_mean`](Self::conv_position_mean) each position gets `e / P` instead, the
/// mean over positions (wt's option, not BioTorch's), which keeps a convolution's step the
/// size of a dense layer's.
///
/// - DFA (Nøkland 2016; BioTorch `dfa`): `D` is fixed.
/// - Direct Kolen-Pollack (Webster, Choi, Ahn 2020): `D` learns the Kolen-Pollack way, with the
///   transpose of the update a direct connection from the layer's input to the output would
///   get from `e` — `∇D = xᵀ·e` (dense; conv: the weight gradient of a `classes`-channel
///   convolution of `x` fed `e` at every position) — and the optimizer's weight decay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectFeedback {
    /// The network's number of outputs (classes), the length of `e`; `0` until a model
    /// constructor fills it in ([`Rule::with_outputs`]).
    #[serde(default)]
    pub outputs: usize,
    /// Convolutions: send `e / P` to each of the `P` output positions instead of `e` (off:
    /// BioTorch's convolutional DFA).
    #[serde(default)]
    pub conv_position_mean: bool,
}

impl DirectFeedback {
    /// The factor of `e` at each output position of a convolution with `positions` of them.
    pub fn conv_error_scale(&self, positions: usize) -> f64 {
        if self.conv_position_mean {
            1.0 / positions.max(1) as f64
        } else {
            1.0
        }
    }
}

/// Weight mirror (Akrout et al. 2019, section 4): in mirror mode each layer is driven by
/// zero-mean noise `ξ` (std `sigma`) and `B` learns `ΔB = η_B·ξᵀ(ξ·W)/n − λ_B·B`; since
/// `E[ξᵀξW/n] = σ²W`, `B` tends to `(η_B σ²/λ_B)·W`. Conv layers correlate over batch and
/// positions (the weight-gradient correlation with the response in place of the error).
///
/// `B` is an average of past estimates of `W` over about `1/λ_B` steps, so it lags `W`. On
/// networks without normalisation a lag of tens of steps destabilises training (measured on
/// LeNet, `docs/rules.md`), hence the fast default `η_B = λ_B = 0.5`: each step's `B` is half
/// the fresh estimate. How the update reaches `B` is [`MirrorUpdate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightMirror {
    /// Standard deviation of the mirror noise `ξ`.
    pub sigma: f64,
    /// Mirror learning rate `η_B`.
    pub mirror_lr: f64,
    /// Mirror weight decay `λ_B`; `None` means `η_B·σ²`, which makes `B → W` in scale.
    pub mirror_decay: Option<f64>,
    /// Noise samples per mirror step (`n`).
    pub mirror_batch: usize,
    /// Mirror steps per training step.
    pub mirror_steps: usize,
    /// How the mirror update reaches `B` in training.
    #[serde(default)]
    pub update: MirrorUpdate,
    /// How many noise samples one mirror step draws for each layer.
    #[serde(default)]
    pub samples: MirrorSamples,
}

/// How many noise samples one weight-mirror step draws for a layer.
///
/// The estimate `C = ξᵀ(ξW)/n` of `σ²W` has a relative error of about `√(fan_in / n)` for a
/// layer of `fan_in` inputs (`c_in/groups·kh·kw` for a convolution) and `n` samples, so with
/// the same `n` everywhere a wide layer's `B` is noisier than a narrow one's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorSamples {
    /// The same for every layer: `mirror_batch` noise rows for a dense layer; for a conv
    /// layer `mirror_batch` noise images whose response maps are `side × side`
    /// (`mirror_batch·side²` samples).
    Patch {
        /// Side of a conv layer's response map.
        side: usize,
    },
    /// Scaled to the layer: at least `ratio·fan_in` samples (and at least `mirror_batch`),
    /// a dense layer by drawing more noise rows, a conv layer by the smallest square
    /// response map that reaches it, so every layer's estimate has a relative error of about
    /// `√(1/ratio)`. A layer's mirror cost grows as `fan_in²·fan_out`.
    PerFanIn {
        /// Samples per input of the layer.
        ratio: f64,
    },
}

impl Default for MirrorSamples {
    /// The fixed 4 × 4 response patch.
    fn default() -> Self {
        MirrorSamples::Patch { side: 4 }
    }
}

impl std::fmt::Display for MirrorSamples {
    /// The command-line form: `patch:SIDE` or `fan-in:RATIO`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MirrorSamples::Patch { side } => write!(f, "patch:{side}"),
            MirrorSamples::PerFanIn { ratio } => write!(f, "fan-in:{ratio}"),
        }
    }
}

impl std::str::FromStr for MirrorSamples {
    type Err = String;
    /// Parses `patch:SIDE` (a positive integer) or `fan-in:RATIO` (a positive number).
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected patch:SIDE (e.g. patch:4) or fan-in:RATIO (e.g. fan-in:2)";
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}': {expected}"))?;
        match kind {
            "patch" => match value.parse::<usize>() {
                Ok(side) if side > 0 => Ok(MirrorSamples::Patch { side }),
                _ => Err(format!(
                    "'{s}': SIDE must be a positive integer; {expected}"
                )),
            },
            "fan-in" => match value.parse::<f64>() {
                Ok(ratio) if ratio.is_finite() && ratio > 0.0 => {
                    Ok(MirrorSamples::PerFanIn { ratio })
                }
                _ => Err(format!(
                    "'{s}': RATIO must be a positive number; {expected}"
                )),
            },
            _ => Err(format!("'{s}': unknown kind '{kind}'; {expected}")),
        }
    }
}

/// How a training step's mirror update reaches `B`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorUpdate {
    /// Applied as it is, `B ← (1 − λ_B)·B + η_B·ξᵀ(ξW)/n`, after the optimizer's step
    /// (`wt_nn::mirror_update`), untouched by the optimizer's momentum, Adam scaling or weight
    /// decay. Data-parallel replicas keep identical `B` when they draw the same noise (wt's
    /// trainer seeds every step).
    #[default]
    Direct,
    /// Delivered as the pseudo-gradient `G_B = −(η_B/η)·ξᵀ(ξW)/n + (λ_B/η)·B` for the
    /// optimizer's learning rate `η` (`wt_nn::add_feedback_gradients`), so all-reduced
    /// gradients keep replicas identical whatever noise each draws. Plain SGD applies exactly
    /// `ΔB`; momentum `β` filters it, so `B` cannot follow `W` faster than `√β` a step and
    /// lags it by tens of steps; Adam rescales it. Use with plain SGD or on normalised nets.
    Gradient,
}

impl Default for WeightMirror {
    fn default() -> Self {
        Self {
            sigma: 1.0,
            mirror_lr: 0.5,
            mirror_decay: None,
            mirror_batch: 128,
            mirror_steps: 1,
            update: MirrorUpdate::Direct,
            samples: MirrorSamples::default(),
        }
    }
}

/// Why a [`WeightMirror`] setting cannot train: its message names the field and the bound.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidMirror(pub String);

impl std::fmt::Display for InvalidMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "weight mirror: {}", self.0)
    }
}

impl std::error::Error for InvalidMirror {}

impl WeightMirror {
    /// Checks that the mirror is a stable filter. One step is `B ← (1 − λ_B)·B + η_B·C` with
    /// `E[C] = σ²·W`: it contracts towards `(η_B σ²/λ_B)·W` only for `0 < λ_B ≤ 1`. With
    /// `λ_B > 1` the factor `1 − λ_B` is negative, so `B` flips sign every step (and grows
    /// without bound past `λ_B = 2`); with `λ_B ≤ 0` nothing pulls it back. With the default
    /// decay `λ_B = η_B·σ²` the bound reads `η_B·σ² ≤ 1`.
    pub fn validate(&self) -> Result<(), InvalidMirror> {
        let bad = |m: String| Err(InvalidMirror(m));
        let finite_positive = |v: f64| v.is_finite() && v > 0.0;
        if !finite_positive(self.sigma) {
            return bad(format!(
                "sigma must be a positive number, got {}",
                self.sigma
            ));
        }
        if !finite_positive(self.mirror_lr) {
            return bad(format!(
                "mirror_lr (η_B) must be a positive number, got {}",
                self.mirror_lr
            ));
        }
        let decay = self.decay();
        let source = match self.mirror_decay {
            Some(_) => "mirror_decay (λ_B)".to_string(),
            None => format!(
                "the default mirror_decay λ_B = η_B·σ² = {} × {}²",
                self.mirror_lr, self.sigma
            ),
        };
        if !(decay.is_finite() && decay > 0.0 && decay <= 1.0) {
            return bad(format!(
                "{source} is {decay}: it must lie in (0, 1], or B ← (1 − λ_B)·B + η_B·C does \
                 not settle (1 − λ_B < 0 flips B's sign every step; λ_B ≤ 0 lets it grow)"
            ));
        }
        if self.mirror_batch == 0 {
            return bad("mirror_batch must be at least 1".into());
        }
        if self.mirror_steps == 0 {
            return bad("mirror_steps must be at least 1".into());
        }
        match self.samples {
            MirrorSamples::Patch { side: 0 } => {
                return bad("samples: the patch side must be at least 1".into());
            }
            MirrorSamples::PerFanIn { ratio } if !finite_positive(ratio) => {
                return bad(format!(
                    "samples: the fan-in ratio must be a positive number, got {ratio}"
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Noise rows one mirror step draws for a dense layer of `fan_in` inputs.
    pub fn dense_samples(&self, fan_in: usize) -> usize {
        match self.samples {
            MirrorSamples::Patch { .. } => self.mirror_batch,
            MirrorSamples::PerFanIn { ratio } => self
                .mirror_batch
                .max((ratio * fan_in as f64).ceil() as usize),
        }
    }

    /// Side of the response map one mirror step drives a conv layer of `fan_in`
    /// (`c_in/groups·kh·kw`) inputs over, with `mirror_batch` noise images.
    pub fn conv_output_side(&self, fan_in: usize) -> usize {
        match self.samples {
            MirrorSamples::Patch { side } => side,
            MirrorSamples::PerFanIn { ratio } => {
                let needed = ratio * fan_in as f64;
                let per_image = needed / self.mirror_batch.max(1) as f64;
                let mut side = (per_image.sqrt().ceil() as usize).max(1);
                // Float rounding of the square root: the smallest side that reaches `needed`.
                while side > 1 && (self.mirror_batch * (side - 1) * (side - 1)) as f64 >= needed {
                    side -= 1;
                }
                while ((self.mirror_batch * side * side) as f64) < needed {
                    side += 1;
                }
                side
            }
        }
    }

    /// `λ_B`, resolved.
    pub fn decay(&self) -> f64 {
        self.mirror_decay
            .unwrap_or(self.mirror_lr * self.sigma * self.sigma)
    }

    /// New `B` after `k` plain mirror steps whose correlations `ξᵀ(ξW)/n` are `corrs`:
    /// `B ← (1 − λ_B)·B + η_B·C_i` for each `i`.
    pub fn apply<const D: usize>(&self, feedback: Tensor<D>, corrs: Vec<Tensor<D>>) -> Tensor<D> {
        let keep = 1.0 - self.decay();
        corrs.into_iter().fold(feedback, |b, c| {
            b.mul_scalar(keep) + c.mul_scalar(self.mirror_lr)
        })
    }

    /// The pseudo-gradient that makes an SGD step of learning rate `lr` land exactly on
    /// [`apply`](Self::apply)'s result: `(B − B_new)/lr`, computed in closed form,
    /// `((1 − (1−λ_B)^k)·B − η_B·Σ_i (1−λ_B)^(k−1−i)·C_i) / lr`.
    pub fn pseudo_gradient<const D: usize>(
        &self,
        feedback: Tensor<D>,
        corrs: Vec<Tensor<D>>,
        lr: f64,
    ) -> Tensor<D> {
        assert!(
            lr > 0.0,
            "weight mirror: the optimizer learning rate must be > 0"
        );
        let keep = 1.0 - self.decay();
        let k = corrs.len() as i32;
        let decayed = feedback.mul_scalar((1.0 - keep.powi(k)) / lr);
        corrs.into_iter().enumerate().fold(decayed, |g, (i, c)| {
            g - c.mul_scalar(self.mirror_lr * keep.powi(k - 1 - i as i32) / lr)
        })
    }
}

/// Distribution of frSF's random magnitudes `R0`: uniform with standard deviation `s`,
/// `U(−√3·s, √3·s)` — the shape of Burn's (and PyTorch's) default Kaiming-uniform
/// initialiser, as BioTorch draws them from W's initialiser (brSF draws `|R|` directly).
fn magnitude_distribution(scale: f64) -> Distribution {
    let bound = 3f64.sqrt() * scale;
    Distribution::Uniform(-bound, bound)
}

/// Declares [`Rule`] from one table: each variant with its short name (its serde name, its
/// command-line name, [`Rule::name`]) and the long names older configs were written with, so
/// every name is spelled once.
macro_rules! rule_table {
    ($(
        $(#[$doc:meta])*
        $variant:ident($settings:ty) = $name:tt $(| $alias:tt)?;
    )*) => {
        /// The learning rule of one feedback layer. Every variant is listed by `Rule::all()`
        /// (derived: `strum::EnumIter`, each rule with its default settings) and has one short
        /// name, given once in the table that declares the enum: serde writes it
        /// (`rule = "kp"`), the command line takes it, [`Rule::name`] returns it.
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, strum::EnumIter)]
        #[serde(tag = "rule")]
        pub enum Rule {
            $(
                $(#[$doc])*
                #[serde(rename = $name $(, alias = $alias)?)]
                $variant($settings),
            )*
        }

        impl Rule {
            /// The short name of this rule: its serde name and its command-line name (the one
            /// [`Named`] table of rules).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Rule::$variant(_) => $name,)*
                }
            }
        }
    };
}

// Short names; after `|` the long snake-case name earlier configs were written with (still
// loaded).
rule_table! {
    /// [`Backprop`]
    Backprop(Backprop) = "bp" | "backprop";
    /// [`FeedbackAlignment`]
    FeedbackAlignment(FeedbackAlignment) = "fa" | "feedback_alignment";
    /// [`UniformSignSymmetry`]
    UniformSignSymmetry(UniformSignSymmetry) = "usf" | "uniform_sign_symmetry";
    /// [`BatchRandomSignSymmetry`]
    BatchRandomSignSymmetry(BatchRandomSignSymmetry) = "brsf" | "batch_random_sign_symmetry";
    /// [`FixedRandomSignSymmetry`]
    FixedRandomSignSymmetry(FixedRandomSignSymmetry) = "frsf" | "fixed_random_sign_symmetry";
    /// [`KolenPollack`]
    KolenPollack(KolenPollack) = "kp" | "kolen_pollack";
    /// [`WeightMirror`]
    WeightMirror(WeightMirror) = "wm" | "weight_mirror";
    /// Direct feedback alignment: [`DirectFeedback`] with a fixed `D`.
    DirectFeedbackAlignment(DirectFeedback) = "dfa";
    /// Direct Kolen-Pollack: [`DirectFeedback`] whose `D` learns.
    DirectKolenPollack(DirectFeedback) = "dkp";
    /// Direct random target projection: [`DirectFeedback`] whose fixed `D` carries the
    /// one-hot target instead of the output error.
    DirectRandomTargetProjection(DirectFeedback) = "drtp";
    /// [`SymmetricAlignment`] (Kunin et al. 2020)
    SymmetricAlignment(SymmetricAlignment) = "sa";
    /// [`ActivationAlignment`] (Kunin et al. 2020)
    ActivationAlignment(ActivationAlignment) = "aa";
    /// [`InformationAlignment`] (Kunin et al. 2020)
    InformationAlignment(InformationAlignment) = "ia";
}

impl Default for Rule {
    fn default() -> Self {
        Rule::Backprop(Backprop)
    }
}

/// What a layer stores for its rule besides `W` and `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackStorage {
    /// Nothing: `B` is derived from `W` (BP, uSF) or drawn each step (brSF).
    None,
    /// `B` itself, drawn from W's initialiser (FA, KP, WM).
    Matrix,
    /// The magnitudes `|R0|` of frSF.
    Magnitudes,
    /// DFA's direct matrix `D`, from the outputs to the layer's input (its own shape).
    Direct,
}

impl Named for Rule {
    const WHAT: &'static str = "learning rule";

    /// Every variant in declaration order, with its default settings (derived, so none is
    /// missing).
    fn all() -> Vec<Self> {
        <Rule as strum::IntoEnumIterator>::iter().collect()
    }

    fn name(&self) -> &'static str {
        Rule::name(self)
    }
}

crate::named_str!(Rule, MirrorUpdate);

impl Named for MirrorUpdate {
    const WHAT: &'static str = "mirror update";

    fn all() -> Vec<Self> {
        vec![MirrorUpdate::Direct, MirrorUpdate::Gradient]
    }

    fn name(&self) -> &'static str {
        match self {
            MirrorUpdate::Direct => "direct",
            MirrorUpdate::Gradient => "gradient",
        }
    }
}

impl Rule {
    /// What the layer keeps for this rule.
    pub fn storage(&self) -> FeedbackStorage {
        match self {
            Rule::Backprop(_) | Rule::UniformSignSymmetry(_) | Rule::BatchRandomSignSymmetry(_) => {
                FeedbackStorage::None
            }
            Rule::FeedbackAlignment(_)
            | Rule::KolenPollack(_)
            | Rule::WeightMirror(_)
            | Rule::SymmetricAlignment(_)
            | Rule::ActivationAlignment(_)
            | Rule::InformationAlignment(_) => FeedbackStorage::Matrix,
            Rule::FixedRandomSignSymmetry(_) => FeedbackStorage::Magnitudes,
            Rule::DirectFeedbackAlignment(_)
            | Rule::DirectKolenPollack(_)
            | Rule::DirectRandomTargetProjection(_) => FeedbackStorage::Direct,
        }
    }

    /// The direct-feedback settings, when this rule is DFA, DKP or DRTP.
    pub fn direct(&self) -> Option<&DirectFeedback> {
        match self {
            Rule::DirectFeedbackAlignment(d)
            | Rule::DirectKolenPollack(d)
            | Rule::DirectRandomTargetProjection(d) => Some(d),
            _ => None,
        }
    }

    /// What a direct rule sends to its layers' inputs: the output error (DFA, DKP) or the
    /// target (DRTP); `None` for the other rules.
    pub fn direct_signal(&self) -> Option<DirectSignal> {
        match self {
            Rule::DirectFeedbackAlignment(_) | Rule::DirectKolenPollack(_) => {
                Some(DirectSignal::OutputError)
            }
            Rule::DirectRandomTargetProjection(_) => Some(DirectSignal::Targets),
            _ => None,
        }
    }

    /// The weights of Kunin et al.'s local terms at `epoch`, for `sa`, `aa` and `ia`.
    pub fn alignment_terms(&self, epoch: f64) -> Option<AlignmentTerms> {
        match self {
            Rule::SymmetricAlignment(r) => Some(r.terms(epoch)),
            Rule::ActivationAlignment(r) => Some(r.terms(epoch)),
            Rule::InformationAlignment(r) => Some(r.terms(epoch)),
            _ => None,
        }
    }

    /// The coefficients of a local alignment rule, named (`α`, `β`, `γ`); empty for others.
    pub fn alignment_coefficients(&self) -> Vec<(&'static str, Coefficient)> {
        match self {
            Rule::SymmetricAlignment(r) => vec![("alpha", r.alpha), ("beta", r.beta)],
            Rule::ActivationAlignment(r) => vec![("alpha", r.alpha), ("beta", r.beta)],
            Rule::InformationAlignment(r) => {
                vec![("alpha", r.alpha), ("beta", r.beta), ("gamma", r.gamma)]
            }
            _ => Vec::new(),
        }
    }

    /// The coefficients of a local alignment rule, for changing them (`alpha`, `beta`,
    /// `gamma`); empty for other rules.
    pub fn alignment_coefficients_mut(&mut self) -> Vec<(&'static str, &mut Coefficient)> {
        match self {
            Rule::SymmetricAlignment(r) => vec![("alpha", &mut r.alpha), ("beta", &mut r.beta)],
            Rule::ActivationAlignment(r) => vec![("alpha", &mut r.alpha), ("beta", &mut r.beta)],
            Rule::InformationAlignment(r) => vec![
                ("alpha", &mut r.alpha),
                ("beta", &mut r.beta),
                ("gamma", &mut r.gamma),
            ],
            _ => Vec::new(),
        }
    }

    /// This rule for a network with `outputs` outputs: fills in the direct rules'
    /// [`outputs`](DirectFeedback::outputs) when it is still 0; other rules are returned as
    /// they are. Model constructors call it with their number of classes.
    pub fn with_outputs(self, outputs: usize) -> Rule {
        match self {
            Rule::DirectFeedbackAlignment(d) if d.outputs == 0 => {
                Rule::DirectFeedbackAlignment(DirectFeedback { outputs, ..d })
            }
            Rule::DirectKolenPollack(d) if d.outputs == 0 => {
                Rule::DirectKolenPollack(DirectFeedback { outputs, ..d })
            }
            Rule::DirectRandomTargetProjection(d) if d.outputs == 0 => {
                Rule::DirectRandomTargetProjection(DirectFeedback { outputs, ..d })
            }
            rule => rule,
        }
    }

    /// Whether the stored `B` takes part in autodiff and receives W's gradient (Kolen-Pollack).
    pub fn feedback_receives_weight_gradient(&self) -> bool {
        matches!(self, Rule::KolenPollack(_))
    }

    /// Whether the stored tensor is trained by the optimizer: KP's `B` (W's gradient), DKP's
    /// `D` (the direct signal's own gradient) and the local alignment rules' `B` (their
    /// terms' gradient).
    pub fn feedback_is_trained(&self) -> bool {
        matches!(
            self,
            Rule::KolenPollack(_)
                | Rule::DirectKolenPollack(_)
                | Rule::SymmetricAlignment(_)
                | Rule::ActivationAlignment(_)
                | Rule::InformationAlignment(_)
        )
    }

    /// The weight-mirror settings, when this rule is a weight mirror.
    pub fn weight_mirror(&self) -> Option<&WeightMirror> {
        match self {
            Rule::WeightMirror(wm) => Some(wm),
            _ => None,
        }
    }

    /// What the feedback op sends the error through. The sign-symmetry rules' `B` is formed
    /// from the op's own `W` in the backward pass, and only where an input gradient is needed
    /// ([`Feedback::ScaledSign`], [`Feedback::SignedUniform`], [`Feedback::SignedMagnitudes`]);
    /// the other rules give [`feedback_matrix`](Self::feedback_matrix). Arguments as there.
    pub fn feedback<const D: usize>(
        &self,
        weight: &Tensor<D>,
        stored: Option<Tensor<D>>,
        scale: f64,
    ) -> Feedback<D> {
        let stored = || stored.expect("this rule keeps its feedback tensor in the layer");
        match self {
            Rule::UniformSignSymmetry(_) => Feedback::ScaledSign { scale },
            // |R| ~ U(0, √3·s): the magnitude of R ~ U(−√3·s, √3·s), drawn directly.
            Rule::BatchRandomSignSymmetry(_) => Feedback::SignedUniform {
                bound: 3f64.sqrt() * scale,
            },
            Rule::FixedRandomSignSymmetry(_) => Feedback::SignedMagnitudes(stored().detach()),
            // The direct rules' layers compute their op from a detached input, so no `B` is ever used;
            // the direct signal joins after the op (`crate::direct`).
            Rule::Backprop(_)
            | Rule::DirectFeedbackAlignment(_)
            | Rule::DirectKolenPollack(_)
            | Rule::DirectRandomTargetProjection(_) => Feedback::Matrix(weight.clone().detach()),
            Rule::FeedbackAlignment(_) | Rule::WeightMirror(_) => {
                Feedback::Matrix(stored().detach())
            }
            Rule::KolenPollack(_) => Feedback::Matrix(stored()),
            Rule::SymmetricAlignment(_)
            | Rule::ActivationAlignment(_)
            | Rule::InformationAlignment(_) => Feedback::Aligned {
                feedback: stored(),
                terms: self
                    .alignment_terms(crate::local_alignment::alignment_epoch())
                    .expect("a local alignment rule"),
            },
        }
    }

    /// The feedback matrix `B` the backward pass uses.
    ///
    /// - `weight`: `W` (any rank; the result has its shape).
    /// - `stored`: what [`storage`](Self::storage) says the layer keeps.
    /// - `scale`: the std `s` of W's initialiser (sign-symmetry rules).
    ///
    /// For BP the result is `W` detached (the op must not give W two gradients); for KP the
    /// stored `B` is returned as is, tracked, so it receives W's gradient; brSF's is a fresh
    /// draw.
    pub fn feedback_matrix<const D: usize>(
        &self,
        weight: &Tensor<D>,
        stored: Option<Tensor<D>>,
        scale: f64,
    ) -> Tensor<D> {
        self.feedback(weight, stored, scale).matrix(weight)
    }

    /// Draws what the layer stores for this rule, given a draw from W's initialiser.
    /// frSF keeps `|R0|`, `R0 ~ U(−√3·s, √3·s)`.
    pub fn init_storage<const D: usize>(
        &self,
        draw_like_weight: impl FnOnce() -> Tensor<D>,
        weight: &Tensor<D>,
        scale: f64,
    ) -> Option<Tensor<D>> {
        match self.storage() {
            // DFA's matrix has its own shape: the layers draw it (`wt-nn`).
            FeedbackStorage::None | FeedbackStorage::Direct => None,
            FeedbackStorage::Matrix => Some(draw_like_weight()),
            FeedbackStorage::Magnitudes => Some(
                weight
                    .clone()
                    .detach()
                    .random_like(magnitude_distribution(scale))
                    .abs(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::test_devices;
    use burn::tensor::Tolerance;

    #[test]
    fn mirror_pseudo_gradient_is_the_plain_update_over_the_learning_rate() {
        let _serial = crate::device::device_test_lock();
        let device = test_devices()[0].1.clone();
        let wm = WeightMirror {
            mirror_steps: 3,
            mirror_lr: 0.01,
            ..WeightMirror::default()
        };
        let b = Tensor::<2>::random([5, 4], Distribution::Normal(0.0, 1.0), &device);
        let corrs: Vec<_> = (0..3)
            .map(|_| Tensor::<2>::random([5, 4], Distribution::Normal(0.0, 1.0), &device))
            .collect();
        let lr = 0.07;
        let g = wm.pseudo_gradient(b.clone(), corrs.clone(), lr);
        let stepped = b.clone() - g.mul_scalar(lr);
        stepped.into_data().assert_approx_eq::<f32>(
            &wm.apply(b, corrs).into_data(),
            Tolerance::rel_abs(1e-5, 1e-6),
        );
    }

    /// brSF's `B`: W's signs, magnitudes `|R| ~ U(0, √3·s)` (mean `√3·s/2`, std `s/2`), redrawn
    /// at every call.
    #[test]
    fn batch_random_sign_symmetry_draws_fresh_uniform_magnitudes_with_ws_signs() {
        let _serial = crate::device::device_test_lock();
        let device = test_devices()[0].1.clone();
        let w = Tensor::<2>::random([200, 300], Distribution::Normal(0.0, 1.0), &device);
        let rule = Rule::BatchRandomSignSymmetry(BatchRandomSignSymmetry);
        let s = 0.2;
        let b = rule.feedback_matrix(&w, None, s);
        let same_sign = (b.clone() * w.clone()).greater_elem(0.0).int().sum();
        assert_eq!(same_sign.into_scalar::<i64>(), 200 * 300);
        let m = b.clone().abs();
        let max = m.clone().max().into_scalar::<f64>();
        let mean = m.clone().mean().into_scalar::<f64>();
        let std = (m - mean).powi_scalar(2).mean().into_scalar::<f64>().sqrt();
        let bound = 3f64.sqrt() * s;
        assert!(max <= bound * (1.0 + 1e-6), "max |B| {max} > {bound}");
        assert!((mean - bound / 2.0).abs() < 0.01 * bound, "mean |B| {mean}");
        assert!((std - s / 2.0).abs() < 0.02 * s, "std |B| {std}");
        let again = rule.feedback_matrix(&w, None, s);
        assert!(
            (again - b).abs().max().into_scalar::<f64>() > 0.1 * s,
            "brSF must redraw its magnitudes"
        );
    }

    #[test]
    fn unstable_mirrors_are_rejected_with_the_bound_they_break() {
        assert!(WeightMirror::default().validate().is_ok());
        let with = |f: fn(&mut WeightMirror)| {
            let mut wm = WeightMirror::default();
            f(&mut wm);
            wm.validate().map_err(|e| e.to_string())
        };
        // η_B·σ² = 1.5 > 1 with the default decay.
        let err = with(|wm| wm.mirror_lr = 1.5).unwrap_err();
        assert!(err.contains("η_B·σ²") && err.contains("1.5"), "{err}");
        assert!(
            !err.contains("  "),
            "the message reads as one sentence: {err}"
        );
        let err = with(|wm| wm.sigma = 2.0).unwrap_err();
        assert!(err.contains("(0, 1]"), "{err}");
        // An explicit decay above 1, at 0, negative.
        for decay in [1.2, 0.0, -0.1] {
            let err = with_decay(decay).unwrap_err();
            assert!(err.contains("mirror_decay (λ_B)"), "{decay}: {err}");
        }
        assert!(with_decay(1.0).is_ok() && with_decay(0.01).is_ok());
        assert!(
            with(|wm| wm.mirror_batch = 0)
                .unwrap_err()
                .contains("mirror_batch")
        );
        assert!(
            with(|wm| wm.mirror_steps = 0)
                .unwrap_err()
                .contains("mirror_steps")
        );
        assert!(
            with(|wm| wm.sigma = f64::NAN)
                .unwrap_err()
                .contains("sigma")
        );
        assert!(
            with(|wm| wm.mirror_lr = 0.0)
                .unwrap_err()
                .contains("mirror_lr")
        );
    }

    #[test]
    fn mirror_samples_per_layer_and_their_names() {
        let wm = |samples| WeightMirror {
            mirror_batch: 8,
            samples,
            ..WeightMirror::default()
        };
        let patch = wm(MirrorSamples::Patch { side: 3 });
        assert_eq!(
            (patch.dense_samples(1000), patch.conv_output_side(1000)),
            (8, 3)
        );
        let scaled = wm(MirrorSamples::PerFanIn { ratio: 2.0 });
        // 2·1000 rows; 2·3 = 6 ≤ 8 keeps the batch; conv: 8·s² ≥ 2·fan_in.
        assert_eq!(scaled.dense_samples(1000), 2000);
        assert_eq!(scaled.dense_samples(3), 8);
        assert_eq!(scaled.conv_output_side(4), 1);
        assert_eq!(scaled.conv_output_side(16), 2);
        assert_eq!(scaled.conv_output_side(17), 3);
        assert_eq!(scaled.conv_output_side(576), 12);
        for text in ["patch:4", "fan-in:2.5"] {
            let parsed: MirrorSamples = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
        for bad in [
            "patch:0",
            "patch:x",
            "fan-in:0",
            "fan-in:-1",
            "fan-in:inf",
            "cube:3",
            "4",
        ] {
            let err = bad.parse::<MirrorSamples>().unwrap_err();
            assert!(
                err.contains(bad) && err.contains("patch:SIDE"),
                "{bad}: {err}"
            );
        }
        let zero = wm(MirrorSamples::Patch { side: 0 }).validate().unwrap_err();
        assert!(zero.to_string().contains("patch side"), "{zero}");
        let nan = wm(MirrorSamples::PerFanIn { ratio: f64::NAN });
        assert!(
            nan.validate()
                .unwrap_err()
                .to_string()
                .contains("fan-in ratio")
        );
    }

    fn with_decay(decay: f64) -> Result<(), String> {
        let wm = WeightMirror {
            mirror_decay: Some(decay),
            ..WeightMirror::default()
        };
        wm.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn rule_names_round_trip_and_unknown_names_are_errors() {
        let _serial = crate::device::device_test_lock();
        let tag = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap().to_string();
        crate::named::assert_table::<Rule>(|r| tag(&serde_json::to_value(r).unwrap(), "rule"));
        crate::named::assert_table::<MirrorUpdate>(|u| {
            serde_json::to_value(u).unwrap().as_str().unwrap().into()
        });
        // Every rule, in declaration order (the order `--help` lists).
        let names = [
            "bp", "fa", "usf", "brsf", "frsf", "kp", "wm", "dfa", "dkp", "drtp", "sa", "aa", "ia",
        ];
        assert_eq!(Rule::names(), names);
        for rule in Rule::all() {
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
        }
        let err = "sgd".parse::<Rule>().unwrap_err().to_string();
        assert!(err.contains("unknown learning rule `sgd`"), "{err}");
        // Configs written before the short names still load.
        for (long, short) in [
            ("backprop", "bp"),
            ("feedback_alignment", "fa"),
            ("uniform_sign_symmetry", "usf"),
            ("batch_random_sign_symmetry", "brsf"),
            ("fixed_random_sign_symmetry", "frsf"),
            ("kolen_pollack", "kp"),
        ] {
            let old: Rule = serde_json::from_str(&format!("{{\"rule\":\"{long}\"}}")).unwrap();
            assert_eq!(old.name(), short);
        }
        let wm: Rule = serde_json::from_str(
            r#"{"rule":"weight_mirror","sigma":1.0,"mirror_lr":0.5,"mirror_decay":null,"mirror_batch":128,"mirror_steps":1}"#,
        )
        .unwrap();
        assert_eq!(wm, Rule::WeightMirror(WeightMirror::default()));
        // KP's decay on B is written only when set, and read back.
        let kp = Rule::KolenPollack(KolenPollack {
            feedback_decay: 3e-3,
        });
        let json = serde_json::to_string(&kp).unwrap();
        assert_eq!(json, r#"{"rule":"kp","feedback_decay":0.003}"#);
        assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), kp);
        assert_eq!(
            serde_json::to_string(&Rule::KolenPollack(KolenPollack::default())).unwrap(),
            r#"{"rule":"kp"}"#
        );
        assert!(
            KolenPollack {
                feedback_decay: -1e-3
            }
            .validate()
            .is_err()
        );
        assert!(
            KolenPollack {
                feedback_decay: f64::NAN
            }
            .validate()
            .is_err()
        );
        let err = "sgd".parse::<Rule>().unwrap_err().to_string();
        assert!(err.contains("sgd") && err.contains("kp"), "{err}");
    }
}
