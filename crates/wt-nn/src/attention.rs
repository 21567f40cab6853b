//! [`FeedbackMultiHeadAttention`]: multi-head self-attention whose four projections are
//! [`FeedbackLinear`] layers.
//!
//! Only the projections carry weights, so only they have feedback weights: under any rule the
//! error reaching the block's input goes back through `B_q`, `B_k`, `B_v` and `B_o` where
//! backprop would use `W_qᵀ`, `W_kᵀ`, `W_vᵀ` and `W_oᵀ`. The scaled scores `QKᵀ/√d_k`, the
//! softmax and the product with `V` have no weights to transport: their backward is exact
//! (Burn's autodiff), as a transposed activation is in any rule's backward.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};

use crate::{FeedbackLinear, FeedbackLinearConfig, Rule};

/// Configuration of a [`FeedbackMultiHeadAttention`]: Burn's `MultiHeadAttentionConfig`
/// without dropout, plus the learning rule of the projections.
#[derive(Config, Debug)]
pub struct FeedbackMultiHeadAttentionConfig {
    /// Width of the tokens.
    pub d_model: usize,
    /// Heads; `d_model` must be a multiple of it.
    pub n_heads: usize,
    /// Whether the projections have biases.
    #[config(default = true)]
    pub bias: bool,
    /// Initialiser of the projections' `W` (and of `B` where the rule draws it).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258, fan_out_only:false}")]
    pub initializer: Initializer,
    /// Learning rule of the four projections.
    #[config(default = "Rule::default()")]
    pub rule: Rule,
}

/// Multi-head self-attention, `softmax(QKᵀ/√d_k + mask)·V` per head, then the output
/// projection; `Q`, `K`, `V` and the output are [`FeedbackLinear`] projections.
///
/// # Shapes
/// - input: `[batch, tokens, d_model]`, output: `[batch, tokens, d_model]`
/// - mask: `[batch, tokens, tokens]`, `true` where a query may not look
#[derive(Module, Debug)]
pub struct FeedbackMultiHeadAttention {
    /// `Q = x·W_q + b_q`.
    pub query: FeedbackLinear,
    /// `K = x·W_k + b_k`.
    pub key: FeedbackLinear,
    /// `V = x·W_v + b_v`.
    pub value: FeedbackLinear,
    /// The heads' concatenated context, projected back to `d_model`.
    pub output: FeedbackLinear,
    /// Heads.
    pub n_heads: usize,
    /// Width of a head, `d_model / n_heads`.
    pub d_k: usize,
}

impl FeedbackMultiHeadAttentionConfig {
    /// Initializes the attention on `device`.
    ///
    /// # Panics
    /// If `d_model` is not a multiple of `n_heads`.
    pub fn init(&self, device: &Device) -> FeedbackMultiHeadAttention {
        assert!(
            self.n_heads > 0 && self.d_model.is_multiple_of(self.n_heads),
            "FeedbackMultiHeadAttentionConfig: d_model {} is not a multiple of n_heads {}",
            self.d_model,
            self.n_heads
        );
        let projection = || {
            FeedbackLinearConfig::new(self.d_model, self.d_model)
                .with_bias(self.bias)
                .with_initializer(self.initializer.clone())
                .with_rule(self.rule)
                .init(device)
        };
        FeedbackMultiHeadAttention {
            query: projection(),
            key: projection(),
            value: projection(),
            output: projection(),
            n_heads: self.n_heads,
            d_k: self.d_model / self.n_heads,
        }
    }
}

impl FeedbackMultiHeadAttention {
    /// Self-attention over `x`, `[batch, tokens, d_model]` → `[batch, tokens, d_model]`;
    /// `mask` (`[batch, tokens, tokens]`, `true` = hidden, e.g. [`causal_mask`]) hides keys
    /// from queries.
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<3, Bool>>) -> Tensor<3> {
        let [batch, tokens, d_model] = x.dims();
        let heads = |t: Tensor<3>| {
            t.reshape([batch, tokens, self.n_heads, self.d_k])
                .swap_dims(1, 2)
        };
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let mut scores = q.matmul(k.transpose()).div_scalar((self.d_k as f64).sqrt());
        if let Some(mask) = mask {
            // A large negative score rather than −∞: a fully masked row stays finite.
            scores = scores.mask_fill(mask.reshape([batch, 1, tokens, tokens]), -1.0e9);
        }
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, tokens, d_model]);
        self.output.forward(context)
    }
}

/// The causal mask of a language model: `[batch, tokens, tokens]`, `true` above the diagonal
/// (a position sees itself and the positions before it).
pub fn causal_mask(batch: usize, tokens: usize, device: &Device) -> Tensor<3, Bool> {
    Tensor::<2, Bool>::tril_mask([tokens, tokens], 0, device).expand([batch, tokens, tokens])
}

#[cfg(test)]
mod tests {
    use burn::nn::Linear;
    use burn::nn::attention::{MhaInput, MultiHeadAttentionConfig};
    use burn::tensor::activation::softmax;
    use burn::tensor::{Bool, Distribution, Tensor, Tolerance};
    use wt_core::Named;
    use wt_core::device::test_devices;

    use super::*;

    fn close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>) {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
        a.into_data()
            .assert_approx_eq::<f32>(&b.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
    }

    /// A projection written out: forward `x·W + b`; backward `dx = g·Bᵀ`, `dW = xᵀ·g`, `db = Σg`
    /// (the `x·B` term adds nothing forward and carries `x`'s whole gradient).
    fn projection(x: Tensor<3>, layer: &FeedbackLinear) -> Tensor<3> {
        let w = layer.weight().val().unsqueeze::<3>();
        let b = layer.bias().unwrap().val().unsqueeze::<3>();
        let fb = layer.feedback_matrix().detach().unsqueeze::<3>();
        let through_b = x.clone().matmul(fb);
        x.detach().matmul(w) + b + through_b.clone() - through_b.detach()
    }

    /// Attention written out with Burn's ops (the softmax path differentiated by autodiff),
    /// its projections by [`projection`].
    fn reference(
        att: &FeedbackMultiHeadAttention,
        x: Tensor<3>,
        mask: Option<Tensor<3, Bool>>,
    ) -> Tensor<3> {
        let [batch, tokens, d] = x.dims();
        let (h, dk) = (att.n_heads, att.d_k);
        let split = |t: Tensor<3>| t.reshape([batch, tokens, h, dk]).swap_dims(1, 2);
        let q = split(projection(x.clone(), &att.query));
        let k = split(projection(x.clone(), &att.key));
        let v = split(projection(x, &att.value));
        let mut s = q.matmul(k.swap_dims(2, 3)) / (dk as f64).sqrt();
        if let Some(mask) = mask {
            s = s.mask_fill(mask.unsqueeze_dim::<4>(1), -1.0e9);
        }
        let context = softmax(s, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, tokens, d]);
        projection(context, &att.output)
    }

    fn from_burn(l: &Linear, rule: Rule) -> FeedbackLinear {
        FeedbackLinear::from_linear(l.clone(), rule)
    }

    /// Under every rule whose `B` is a matrix the attention's forward is Burn's
    /// `MultiHeadAttention`'s; its input gradient and its projections' `W`, `b` gradients are
    /// the written-out attention's, whose only change from backprop is each projection's `Bᵀ`
    /// in place of `Wᵀ` (softmax, scores and the product with `V` exact); under backprop they
    /// are Burn's own. Causal mask and none; on every test backend.
    #[test]
    fn attention_sends_the_error_through_each_projections_feedback() {
        let _serial = wt_core::device::device_test_lock();
        for (name, device) in test_devices() {
            let ad = device.autodiff();
            ad.seed(11);
            let burn_att = MultiHeadAttentionConfig::new(8, 2)
                .with_dropout(0.0)
                .init(&ad);
            for rule in Rule::all() {
                // brSF draws a new B at every forward: the reference could not see the draw.
                // The direct rules have no B here (their signal is tested in wt-core).
                if rule.direct().is_some() || rule.name() == "brsf" {
                    continue;
                }
                let att = FeedbackMultiHeadAttention {
                    query: from_burn(&burn_att.query, rule),
                    key: from_burn(&burn_att.key, rule),
                    value: from_burn(&burn_att.value, rule),
                    output: from_burn(&burn_att.output, rule),
                    n_heads: 2,
                    d_k: 4,
                };
                for causal in [false, true] {
                    let what = format!("{name} {} causal={causal}", rule.name());
                    let x = Tensor::<3>::random([3, 5, 8], Distribution::Normal(0.0, 1.0), &ad)
                        .require_grad();
                    let up = Tensor::<3>::random([3, 5, 8], Distribution::Normal(0.0, 1.0), &ad);
                    let mask = causal.then(|| causal_mask(3, 5, &ad));
                    let y = att.forward(x.clone(), mask.clone());
                    let mut input = MhaInput::self_attn(x.clone().detach());
                    if let Some(m) = mask.clone() {
                        input = input.mask_attn(m);
                    }
                    let y_burn = burn_att.forward(input).context;
                    close(&format!("{what}: forward"), y.clone(), y_burn);
                    let g = (y * up.clone()).sum().backward();
                    let x2 = x.clone().detach().require_grad();
                    let g_ref = (reference(&att, x2.clone(), mask.clone()) * up.clone())
                        .sum()
                        .backward();
                    close(
                        &format!("{what}: dx"),
                        x.grad(&g).unwrap(),
                        x2.grad(&g_ref).unwrap(),
                    );
                    for (p, layer) in [
                        ("query", &att.query),
                        ("key", &att.key),
                        ("value", &att.value),
                        ("output", &att.output),
                    ] {
                        close(
                            &format!("{what}: d{p}.W"),
                            layer.weight().grad(&g).unwrap(),
                            layer.weight().grad(&g_ref).unwrap(),
                        );
                        close(
                            &format!("{what}: d{p}.b"),
                            layer.bias().unwrap().grad(&g).unwrap(),
                            layer.bias().unwrap().grad(&g_ref).unwrap(),
                        );
                    }
                    if rule.name() == "bp" {
                        let x3 = x.clone().detach().require_grad();
                        let mut input = MhaInput::self_attn(x3.clone());
                        if let Some(m) = mask {
                            input = input.mask_attn(m);
                        }
                        let g_burn = (burn_att.forward(input).context * up).sum().backward();
                        close(
                            &format!("{what}: dx against Burn's attention"),
                            x.grad(&g).unwrap(),
                            x3.grad(&g_burn).unwrap(),
                        );
                    }
                }
            }
        }
    }

    /// The causal mask hides exactly the later positions: a change to the last token leaves
    /// every earlier position's output as it was.
    #[test]
    fn a_causal_position_sees_only_itself_and_the_past() {
        let _serial = wt_core::device::device_test_lock();
        let device = Device::flex();
        device.seed(2);
        let att = FeedbackMultiHeadAttentionConfig::new(8, 2).init(&device);
        let x = Tensor::<3>::random([1, 4, 8], Distribution::Normal(0.0, 1.0), &device);
        let bumped = x.clone().slice_assign(
            [0..1, 3..4, 0..8],
            Tensor::random([1, 1, 8], Distribution::Normal(0.0, 1.0), &device),
        );
        let mask = || Some(causal_mask(1, 4, &device));
        let (a, b) = (att.forward(x, mask()), att.forward(bumped, mask()));
        close(
            "positions 0-2",
            a.clone().slice([0..1, 0..3, 0..8]),
            b.clone().slice([0..1, 0..3, 0..8]),
        );
        let moved: f32 = (a.slice([0..1, 3..4, 0..8]) - b.slice([0..1, 3..4, 0..8]))
            .abs()
            .sum()
            .into_scalar();
        assert!(moved > 1e-3, "the last position did not see its own token");
    }
}
