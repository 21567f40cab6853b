//! Kunin et al.'s local alignment rules (Kunin, Nayebi, Sagastuy-Brena, Ganguli, Bloom,
//! Yamins 2020, "Two Routes to Scalable Credit Assignment without Weight Symmetry"): `B` learns
//! by gradient descent on a weighted sum of local terms of the layer's own input `x` (no
//! gradient flows into `x`) and its weights, each weight a [`Coefficient`] with a schedule.
//!
//! With `W`, `B` in wt's layout (`[d_input, d_output]`; a convolution's `[c_out, c_in, kh,
//! kw]`), the forward projection of `x` is `xW` and its backward projection `xB` (Kunin et
//! al.'s `xBᵀ` for their `[d_output, d_input]` backward kernel), `E` a mean over the batch's
//! rows (a convolution's: over batch and output positions):
//!
//! | term | loss | its gradient in `B` |
//! |---|---|---|
//! | decay | `‖W‖² + ‖B‖²` | `2B` |
//! | self | `−tr(WᵀB)` | `−W` |
//! | amp | `−E[(xB)·(xW)]` | `−E[xᵀ(xW)]` |
//! | sparse | `E‖xW‖² + E‖xB‖²` | `2E[xᵀ(xB)]` |
//! | null | `E‖(xW)Bᵀ‖²` | `2E[rᵀ(xW)]`, `r = (xW)Bᵀ` |
//!
//! - [`SymmetricAlignment`]: `α·decay + β·self`, whose `B` tends to `(β/2α)·W`;
//! - [`ActivationAlignment`]: `α·sparse + β·amp`, `B → (β/2α)·W` where the inputs span;
//! - [`InformationAlignment`]: `α·amp + β·null + γ·decay`.
//!
//! The feedback op computes the gradient in its backward pass from the `x` it already keeps
//! for `W`'s gradient (no second forward pass), and gives it to `B` in place of
//! Kolen-Pollack's `dW`; the optimizer applies it with its learning rate and momentum.
//! `docs/rules.md` has the comparison with wt's other rules.

use burn::backend::TensorMetadata;
use burn::tensor::Shape;
use burn::tensor::ops::ConvOptions;
use serde::{Deserialize, Serialize};

use crate::kernels::Kernels;

/// How a [`Coefficient`] changes while it is on, `t` epochs after its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Growth {
    /// `value`.
    #[default]
    Constant,
    /// `value + rate·t`.
    Linear {
        /// Change per epoch.
        rate: f64,
    },
    /// `value·exp(rate·t)`.
    Exponential {
        /// Growth (or, negative, decay) rate per epoch.
        rate: f64,
    },
}

/// One weight of a local alignment loss (Kunin et al.'s α, β or γ) and its schedule: 0 before
/// epoch `start` and after epoch `stop`, `value` changed by `growth` in between. Epochs are
/// counted in steps / steps per epoch ([`set_alignment_epoch`]), so the value moves every
/// step. (Kunin et al. give
/// `start` and `stop` as fractions of the run; wt takes epochs.) A plain number in a config
/// file is a constant coefficient.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "CoefficientRepr")]
pub struct Coefficient {
    /// The value at `start`.
    pub value: f64,
    /// The epoch it turns on.
    #[serde(default)]
    pub start: f64,
    /// The epoch after which it is 0; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<f64>,
    /// How it changes while on.
    #[serde(default)]
    pub growth: Growth,
}

/// A coefficient as a config file may write it: a number, or the full table.
#[derive(Deserialize)]
#[serde(untagged)]
enum CoefficientRepr {
    Constant(f64),
    Full {
        value: f64,
        #[serde(default)]
        start: f64,
        #[serde(default)]
        stop: Option<f64>,
        #[serde(default)]
        growth: Growth,
    },
}

impl From<CoefficientRepr> for Coefficient {
    fn from(r: CoefficientRepr) -> Self {
        match r {
            CoefficientRepr::Constant(value) => Coefficient::constant(value),
            CoefficientRepr::Full {
                value,
                start,
                stop,
                growth,
            } => Coefficient {
                value,
                start,
                stop,
                growth,
            },
        }
    }
}

impl Coefficient {
    /// `value` at every epoch.
    pub const fn constant(value: f64) -> Self {
        Coefficient {
            value,
            start: 0.0,
            stop: None,
            growth: Growth::Constant,
        }
    }

    /// Its value at `epoch` (fractional: steps done / steps per epoch).
    pub fn at(&self, epoch: f64) -> f64 {
        if epoch < self.start || self.stop.is_some_and(|stop| epoch > stop) {
            return 0.0;
        }
        let t = epoch - self.start;
        match self.growth {
            Growth::Constant => self.value,
            Growth::Linear { rate } => self.value + rate * t,
            Growth::Exponential { rate } => self.value * (rate * t).exp(),
        }
    }

    /// Checks that every number is finite, `start ≥ 0` and `stop ≥ start`; `name` (α, β, γ)
    /// goes in the message.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let rate = match self.growth {
            Growth::Constant => 0.0,
            Growth::Linear { rate } | Growth::Exponential { rate } => rate,
        };
        if !(self.value.is_finite() && rate.is_finite()) {
            return Err(format!(
                "{name}: the value ({}) and rate ({rate}) must be finite numbers",
                self.value
            ));
        }
        if !(self.start.is_finite() && self.start >= 0.0) {
            return Err(format!(
                "{name}: start is epoch {}: it must be ≥ 0",
                self.start
            ));
        }
        if let Some(stop) = self.stop
            && !(stop.is_finite() && stop >= self.start)
        {
            return Err(format!(
                "{name}: stop is epoch {stop}: it must be ≥ start ({})",
                self.start
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Coefficient {
    /// The command-line form, `VALUE[:from=E][:to=E][:linear=R|:exp=R]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.value)?;
        if self.start != 0.0 {
            write!(f, ":from={}", self.start)?;
        }
        if let Some(stop) = self.stop {
            write!(f, ":to={stop}")?;
        }
        match self.growth {
            Growth::Constant => Ok(()),
            Growth::Linear { rate } => write!(f, ":linear={rate}"),
            Growth::Exponential { rate } => write!(f, ":exp={rate}"),
        }
    }
}

impl std::str::FromStr for Coefficient {
    type Err = String;

    /// Parses `VALUE[:from=EPOCH][:to=EPOCH][:linear=RATE|:exp=RATE]`, e.g. `0.01`,
    /// `0.01:from=2:to=20`, `0.1:exp=-0.05`.
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected VALUE[:from=EPOCH][:to=EPOCH][:linear=RATE|:exp=RATE], \
                        e.g. 0.01 or 0.01:from=2:exp=-0.05";
        let number = |what: &str, v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("'{s}': {what} '{v}' is not a number; {expected}"))
        };
        let mut parts = s.split(':');
        let value = number("the value", parts.next().unwrap_or_default())?;
        let mut c = Coefficient::constant(value);
        for part in parts {
            let (key, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{s}': '{part}' is not KEY=VALUE; {expected}"))?;
            match key {
                "from" => c.start = number("from", v)?,
                "to" => c.stop = Some(number("to", v)?),
                "linear" => {
                    c.growth = Growth::Linear {
                        rate: number("linear", v)?,
                    }
                }
                "exp" => {
                    c.growth = Growth::Exponential {
                        rate: number("exp", v)?,
                    }
                }
                _ => return Err(format!("'{s}': unknown key '{key}'; {expected}")),
            }
        }
        c.validate("coefficient")
            .map_err(|e| format!("'{s}': {e}"))?;
        Ok(c)
    }
}

/// The weights of the five terms at one step: the gradient of `B` is
/// `2·decay·B − self_term·W + E[xᵀ(2·sparse·xB − amp·xW)] + 2·null·E[rᵀ(xW)]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AlignmentTerms {
    /// Weight of `‖W‖² + ‖B‖²`.
    pub decay: f64,
    /// Weight of `−tr(WᵀB)`.
    pub self_term: f64,
    /// Weight of `−E[(xB)·(xW)]`.
    pub amp: f64,
    /// Weight of `E‖xW‖² + E‖xB‖²`.
    pub sparse: f64,
    /// Weight of `E‖(xW)Bᵀ‖²`.
    pub null: f64,
}

/// Symmetric alignment: `α·decay + β·self`, so `∇B = 2αB − βW` (no input needed) and `B`
/// tends to `(β/2α)·W`. Defaults: `α = 0.01`, `β = 0.02` (`B → W`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SymmetricAlignment {
    /// Weight of the decay term.
    pub alpha: Coefficient,
    /// Weight of the self term.
    pub beta: Coefficient,
}

impl Default for SymmetricAlignment {
    fn default() -> Self {
        SymmetricAlignment {
            alpha: Coefficient::constant(0.01),
            beta: Coefficient::constant(0.02),
        }
    }
}

/// Activation alignment: `α·sparse + β·amp`, so `∇B = E[xᵀ(2α·xB − β·xW)]`: `B` tends to
/// `(β/2α)·W` on the span of the inputs. Defaults: `α = 0.01`, `β = 0.02`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivationAlignment {
    /// Weight of the sparse term.
    pub alpha: Coefficient,
    /// Weight of the amp term.
    pub beta: Coefficient,
}

impl Default for ActivationAlignment {
    fn default() -> Self {
        ActivationAlignment {
            alpha: Coefficient::constant(0.01),
            beta: Coefficient::constant(0.02),
        }
    }
}

/// Information alignment: `α·amp + β·null + γ·decay`. Defaults: `α = 0.02`, `β = 0.01`,
/// `γ = 0.01`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InformationAlignment {
    /// Weight of the amp term.
    pub alpha: Coefficient,
    /// Weight of the null term.
    pub beta: Coefficient,
    /// Weight of the decay term.
    pub gamma: Coefficient,
}

impl Default for InformationAlignment {
    fn default() -> Self {
        InformationAlignment {
            alpha: Coefficient::constant(0.02),
            beta: Coefficient::constant(0.01),
            gamma: Coefficient::constant(0.01),
        }
    }
}

impl SymmetricAlignment {
    /// The terms' weights at `epoch`.
    pub fn terms(&self, epoch: f64) -> AlignmentTerms {
        AlignmentTerms {
            decay: self.alpha.at(epoch),
            self_term: self.beta.at(epoch),
            ..AlignmentTerms::default()
        }
    }
}

impl ActivationAlignment {
    /// The terms' weights at `epoch`.
    pub fn terms(&self, epoch: f64) -> AlignmentTerms {
        AlignmentTerms {
            sparse: self.alpha.at(epoch),
            amp: self.beta.at(epoch),
            ..AlignmentTerms::default()
        }
    }
}

impl InformationAlignment {
    /// The terms' weights at `epoch`.
    pub fn terms(&self, epoch: f64) -> AlignmentTerms {
        AlignmentTerms {
            amp: self.alpha.at(epoch),
            null: self.beta.at(epoch),
            decay: self.gamma.at(epoch),
            ..AlignmentTerms::default()
        }
    }
}

thread_local! {
    static EPOCH: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

/// Sets the epoch (fractional: steps done / steps per epoch) at which this thread's forward
/// passes read the local alignment rules' coefficients. A training loop calls it before each
/// step (`wt_train::fit` does); without it they are read at epoch 0, which is all a constant
/// coefficient needs.
pub fn set_alignment_epoch(epoch: f64) {
    EPOCH.with(|e| e.set(epoch));
}

/// The epoch [`set_alignment_epoch`] last set on this thread (0 before any call).
pub fn alignment_epoch() -> f64 {
    EPOCH.with(std::cell::Cell::get)
}

type Primitive<K> = <K as burn::backend::BackendTypes>::FloatTensorPrimitive;

fn scaled<K: Kernels>(t: Primitive<K>, factor: f64) -> Primitive<K> {
    K::float_mul_scalar(t, factor.into())
}

/// `2·decay·B − self_term·W`, the part of the gradient that reads no input; `None` when both
/// weights are 0.
fn weight_terms<K: Kernels>(
    weight: &Primitive<K>,
    feedback: &Primitive<K>,
    t: &AlignmentTerms,
) -> Option<Primitive<K>> {
    let decay = (t.decay != 0.0).then(|| scaled::<K>(feedback.clone(), 2.0 * t.decay));
    let self_term = (t.self_term != 0.0).then(|| scaled::<K>(weight.clone(), -t.self_term));
    match (decay, self_term) {
        (Some(a), Some(b)) => Some(K::float_add(a, b)),
        (a, b) => a.or(b),
    }
}

fn sum<K: Kernels>(parts: impl IntoIterator<Item = Option<Primitive<K>>>) -> Option<Primitive<K>> {
    parts.into_iter().flatten().reduce(K::float_add)
}

/// `∇B` of the local loss for a dense layer.
///
/// # Shapes
/// - `x`: `[..., d_input]` (its leading dimensions are the rows `E` averages over)
/// - `weight`, `feedback`: `[d_input, d_output]`; result: the same
pub fn linear_feedback_gradient<K: Kernels>(
    x: Primitive<K>,
    weight: Primitive<K>,
    feedback: Primitive<K>,
    t: AlignmentTerms,
) -> Primitive<K> {
    let fixed = weight_terms::<K>(&weight, &feedback, &t);
    let input_terms = if t.amp != 0.0 || t.sparse != 0.0 || t.null != 0.0 {
        let shape = x.shape();
        let d_input = shape[shape.num_dims() - 1];
        let rows = shape.num_elements() / d_input.max(1);
        let x = K::float_reshape(x, Shape::new([rows, d_input]));
        let n = rows.max(1) as f64;
        // xᵀ(2·sparse·xB − amp·xW)/n as one product: x·(2·sparse·B − amp·W).
        let mixed = sum::<K>([
            (t.sparse != 0.0).then(|| scaled::<K>(feedback.clone(), 2.0 * t.sparse / n)),
            (t.amp != 0.0).then(|| scaled::<K>(weight.clone(), -t.amp / n)),
        ])
        .map(|m| K::linear_weight_backward(x.clone(), K::linear(x.clone(), m, None)));
        let null = (t.null != 0.0).then(|| {
            let y = K::linear(x.clone(), weight.clone(), None);
            let r = K::linear_x_backward(feedback.clone(), y.clone());
            scaled::<K>(K::linear_weight_backward(r, y), 2.0 * t.null / n)
        });
        sum::<K>([mixed, null])
    } else {
        None
    };
    sum::<K>([fixed, input_terms]).unwrap_or_else(|| scaled::<K>(feedback, 0.0))
}

/// `∇B` of the local loss for a convolution, `E` over batch and output positions; the
/// projections are the layer's convolution (stride, padding, dilation, groups) without bias.
///
/// # Shapes
/// - `x`: `[batch, c_in, h, w]`
/// - `weight`, `feedback`: `[c_out, c_in/groups, kh, kw]`; result: the same
pub fn conv2d_feedback_gradient<K: Kernels>(
    x: Primitive<K>,
    weight: Primitive<K>,
    feedback: Primitive<K>,
    t: AlignmentTerms,
    options: ConvOptions<2>,
) -> Primitive<K> {
    let fixed = weight_terms::<K>(&weight, &feedback, &t);
    let input_terms = if t.amp != 0.0 || t.sparse != 0.0 || t.null != 0.0 {
        let project =
            |w: &Primitive<K>| K::conv2d_forward(x.clone(), w.clone(), None, options.clone());
        let y = (t.amp != 0.0 || t.null != 0.0).then(|| project(&weight));
        let xb = (t.sparse != 0.0).then(|| project(&feedback));
        let n = {
            let s = y.as_ref().or(xb.as_ref()).expect("one projection").shape();
            (s[0] * s[2] * s[3]).max(1) as f64
        };
        // 2·sparse·xB − amp·xW at every output position, correlated with x.
        let response = sum::<K>([
            xb.map(|xb| scaled::<K>(xb, 2.0 * t.sparse / n)),
            y.clone()
                .filter(|_| t.amp != 0.0)
                .map(|y| scaled::<K>(y, -t.amp / n)),
        ]);
        let mixed = response
            .map(|g| K::conv2d_weight_gradient(x.clone(), feedback.clone(), g, options.clone()));
        let null = y.filter(|_| t.null != 0.0).map(|y| {
            let r =
                K::conv2d_input_gradient(x.clone(), feedback.clone(), y.clone(), options.clone());
            let g = K::conv2d_weight_gradient(r, feedback.clone(), y, options.clone());
            scaled::<K>(g, 2.0 * t.null / n)
        });
        sum::<K>([mixed, null])
    } else {
        None
    };
    sum::<K>([fixed, input_terms]).unwrap_or_else(|| scaled::<K>(feedback, 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::test_devices;
    use crate::ops::tests::{close, rand};
    use crate::ops::{Feedback, feedback_conv2d_with, feedback_linear_with};
    use burn::tensor::module::{conv_transpose2d, conv2d, linear};
    use burn::tensor::ops::ConvTransposeOptions;
    use burn::tensor::{Device, Tensor};

    /// Every term on at once, with unlike weights, and each rule's own terms.
    fn term_sets() -> Vec<(&'static str, AlignmentTerms)> {
        let all = AlignmentTerms {
            decay: 0.3,
            self_term: 0.7,
            amp: 0.5,
            sparse: 0.2,
            null: 0.4,
        };
        let rule = |name, r: &crate::Rule| (name, r.alignment_terms(1.5).unwrap());
        vec![
            ("all five", all),
            rule("sa", &"sa".parse().unwrap()),
            rule("aa", &"aa".parse().unwrap()),
            rule("ia", &"ia".parse().unwrap()),
        ]
    }

    /// The local loss written out with Burn's ops, as a function of a tracked `B`;
    /// `project(M)` is the layer's map `x ↦ xM`, `reconstruct(y, M)` its transpose, `n` the
    /// rows `E` averages over.
    fn written_out_loss<const D: usize, const R: usize>(
        t: &AlignmentTerms,
        w: Tensor<D>,
        b: Tensor<D>,
        project: impl Fn(Tensor<D>) -> Tensor<R>,
        reconstruct: impl Fn(Tensor<R>, Tensor<D>) -> Tensor<R>,
        n: f64,
    ) -> Tensor<1> {
        let (xw, xb) = (project(w.clone()), project(b.clone()));
        let decay =
            (w.clone().powi_scalar(2).sum() + b.clone().powi_scalar(2).sum()).mul_scalar(t.decay);
        let self_term = (w * b.clone()).sum().mul_scalar(-t.self_term);
        let amp = (xb.clone() * xw.clone()).sum().mul_scalar(-t.amp / n);
        let sparse =
            (xw.clone().powi_scalar(2).sum() + xb.powi_scalar(2).sum()).mul_scalar(t.sparse / n);
        let null = reconstruct(xw, b)
            .powi_scalar(2)
            .sum()
            .mul_scalar(t.null / n);
        decay + self_term + amp + sparse + null
    }

    fn check_linear<const D: usize>(device: &Device, x_shape: [usize; D]) {
        let d_in = x_shape[D - 1];
        let rows: usize = x_shape[..D - 1].iter().product();
        let ad = device.clone().autodiff();
        let x = rand(x_shape, &ad);
        let w = rand([d_in, 5], &ad);
        let b = rand([d_in, 5], &ad);
        let mut out_shape = x_shape;
        out_shape[D - 1] = 5;
        let up = rand(out_shape, &ad);
        for (what, terms) in term_sets() {
            // The op: B receives the local terms' gradient, W its usual one, x g·Bᵀ.
            let (xt, wt, bt) = (
                x.clone().require_grad(),
                w.clone().require_grad(),
                b.clone().require_grad(),
            );
            let fb = Feedback::Aligned {
                feedback: bt.clone(),
                terms,
            };
            let y = feedback_linear_with(xt.clone(), wt.clone(), fb, None);
            let g = (y * up.clone()).sum().backward();
            // The loss written out, differentiated by Burn's autodiff.
            let b2 = b.clone().require_grad();
            let x_rows = x.clone().reshape([rows, d_in]);
            let loss = written_out_loss(
                &terms,
                w.clone(),
                b2.clone(),
                |m| linear(x_rows.clone(), m, None),
                |y, m| y.matmul(m.transpose()),
                rows as f64,
            );
            let want = b2.grad(&loss.backward()).unwrap();
            close(&format!("{what}: dB"), bt.grad(&g).unwrap(), want);
            let w2 = w.clone().require_grad();
            let g2 = (linear(x.clone(), w2.clone(), None) * up.clone())
                .sum()
                .backward();
            close(
                &format!("{what}: dW"),
                wt.grad(&g).unwrap(),
                w2.grad(&g2).unwrap(),
            );
            let dx = up.clone().matmul(b.clone().transpose().unsqueeze::<D>());
            close(&format!("{what}: dx"), xt.grad(&g).unwrap(), dx.inner());
        }
    }

    fn check_conv(device: &Device, side: usize, options: ConvOptions<2>) {
        let ad = device.clone().autodiff();
        let groups = options.groups;
        let x = rand([2, 4, side, side], &ad);
        let w = rand([6, 4 / groups, 3, 3], &ad);
        let b = rand([6, 4 / groups, 3, 3], &ad);
        let y_probe = conv2d(x.clone(), w.clone(), None, options.clone());
        let [batch, _, h_out, w_out] = y_probe.dims();
        let up = rand([batch, 6, h_out, w_out], &ad);
        let transpose = ConvTransposeOptions::new(
            options.stride,
            options.padding.map(|(before, _)| before),
            [0, 0],
            options.dilation,
            groups,
        );
        for (what, terms) in term_sets() {
            let (wt, bt) = (w.clone().require_grad(), b.clone().require_grad());
            let fb = Feedback::Aligned {
                feedback: bt.clone(),
                terms,
            };
            let y = feedback_conv2d_with(x.clone(), wt.clone(), fb, None, options.clone());
            let g = (y * up.clone()).sum().backward();
            let b2 = b.clone().require_grad();
            let loss = written_out_loss(
                &terms,
                w.clone(),
                b2.clone(),
                |m| conv2d(x.clone(), m, None, options.clone()),
                |y, m| conv_transpose2d(y, m, None, transpose.clone()),
                (batch * h_out * w_out) as f64,
            );
            let want = b2.grad(&loss.backward()).unwrap();
            close(&format!("{what}: conv dB"), bt.grad(&g).unwrap(), want);
            let w2 = w.clone().require_grad();
            let g2 = (conv2d(x.clone(), w2.clone(), None, options.clone()) * up.clone())
                .sum()
                .backward();
            close(
                &format!("{what}: conv dW"),
                wt.grad(&g).unwrap(),
                w2.grad(&g2).unwrap(),
            );
        }
    }

    /// `B`'s gradient from the op is the gradient of the terms written out (Burn's autodiff
    /// of the loss), for a dense layer on 2-D and 3-D inputs and for convolutions (stride 1
    /// and 2, grouped); `W` keeps its own gradient and `x` receives `g·Bᵀ`.
    #[test]
    fn the_feedback_gradient_is_the_gradient_of_the_written_out_terms() {
        let _serial = crate::device::device_test_lock();
        for (name, device) in test_devices() {
            eprintln!("local alignment on {name}");
            check_linear(&device, [6, 7]);
            check_linear(&device, [2, 3, 7]);
            check_conv(&device, 6, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
            check_conv(&device, 7, ConvOptions::new([2, 2], [1, 1], [1, 1], 1));
            check_conv(&device, 6, ConvOptions::new([1, 1], [1, 1], [1, 1], 2));
        }
    }

    /// SA's gradient is `2αB − βW` exactly (no input read), so `B` settles at `(β/2α)·W`.
    #[test]
    fn symmetric_alignment_is_decay_and_self() {
        let _serial = crate::device::device_test_lock();
        let device = test_devices()[0].1.clone().autodiff();
        let rule: crate::Rule = "sa".parse().unwrap();
        let terms = rule.alignment_terms(0.0).unwrap();
        let (x, w) = (rand([5, 4], &device), rand([4, 3], &device));
        let b = rand([4, 3], &device).require_grad();
        let fb = Feedback::Aligned {
            feedback: b.clone(),
            terms,
        };
        let g = feedback_linear_with(x, w.clone(), fb, None)
            .sum()
            .backward();
        let want = b.clone().inner().mul_scalar(2.0 * 0.01) - w.inner().mul_scalar(0.02);
        close("sa dB", b.grad(&g).unwrap(), want);
    }

    #[test]
    fn coefficients_follow_their_schedules() {
        let c = |s: &str| s.parse::<Coefficient>().unwrap();
        assert_eq!(c("0.5").at(7.0), 0.5);
        let windowed = c("0.5:from=2:to=4");
        assert_eq!(
            [1.9, 2.0, 3.0, 4.0, 4.1].map(|e| windowed.at(e)),
            [0.0, 0.5, 0.5, 0.5, 0.0]
        );
        let linear = c("0.5:from=1:linear=0.25");
        assert_eq!(linear.at(3.0), 1.0);
        let exp = c("2:exp=-0.5");
        assert!((exp.at(2.0) - 2.0 * (-1.0f64).exp()).abs() < 1e-12);
        // The command-line form round-trips; a config file may give a plain number.
        for s in [
            "0.5",
            "0.5:from=2:to=4",
            "0.5:from=1:linear=0.25",
            "2:exp=-0.5",
        ] {
            assert_eq!(c(s).to_string(), s);
            let json = serde_json::to_string(&c(s)).unwrap();
            assert_eq!(serde_json::from_str::<Coefficient>(&json).unwrap(), c(s));
        }
        assert_eq!(
            serde_json::from_str::<Coefficient>("0.25").unwrap(),
            Coefficient::constant(0.25)
        );
        for (bad, says) in [
            ("x", "the value 'x' is not a number"),
            ("0.1:from", "'from' is not KEY=VALUE"),
            ("0.1:at=3", "unknown key 'at'"),
            ("0.1:from=3:to=2", "stop is epoch 2: it must be ≥ start (3)"),
            ("0.1:from=-1", "start is epoch -1"),
        ] {
            let err = bad.parse::<Coefficient>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
