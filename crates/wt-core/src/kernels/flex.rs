//! wt-kernels' kernels on Flex's tensors: reads their f32 buffers in place, returns new
//! contiguous tensors, and answers `None` for anything the kernels do not take (another dtype,
//! a shape that is not a valid convolution), which then runs Burn's own op.

use std::borrow::Cow;

use burn::backend::TensorMetadata;
use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Bytes, DType, Shape};

use wt_kernels::batch_norm::{self, NormGeometry};
use wt_kernels::{ConvGeometry, conv2d, sign};

/// The tensor's elements in row-major order, borrowed when its buffer already is.
fn f32_elements(t: &FlexTensor) -> Option<Cow<'_, [f32]>> {
    if t.dtype() != DType::F32 {
        return None;
    }
    match t.as_slice::<f32>() {
        Some(s) => Some(Cow::Borrowed(s)),
        None => Some(Cow::Owned(t.to_contiguous().as_slice::<f32>()?.to_vec())),
    }
}

fn dims4(t: &FlexTensor) -> Option<[usize; 4]> {
    let shape = t.shape();
    (shape.num_dims() == 4).then(|| shape.dims::<4>())
}

fn tensor(data: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::new(shape)),
        DType::F32,
    )
}

/// The geometry of `conv2d(x, weight, options)` on shapes `x` and `weight`, or `None` when
/// they do not form a valid convolution: Burn's `ConvOptions` as wt-kernels'
/// [`ConvGeometry::new`] takes them.
pub fn conv_geometry(
    x: [usize; 4],
    weight: [usize; 4],
    options: &ConvOptions<2>,
) -> Option<ConvGeometry> {
    ConvGeometry::new(
        x,
        weight,
        options.stride,
        options.padding,
        options.dilation,
        options.groups,
    )
}

/// The geometry of `conv2d(x, w)` when `out` (if given) has the output's shape.
fn geometry(
    x: [usize; 4],
    w: [usize; 4],
    out: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<ConvGeometry> {
    let g = conv_geometry(x, w, options)?;
    if let Some(out) = out {
        let want = [g.batch, g.c_out, g.output[0], g.output[1]];
        if dims4(out)? != want {
            return None;
        }
    }
    Some(g)
}

/// `conv2d(x, weight) + bias`, or `None` to fall back to Burn's op.
pub fn conv2d_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let g = geometry(dims4(x)?, dims4(weight)?, None, options)?;
    let bias = match bias {
        Some(b) if b.shape().to_vec() != [g.c_out] => return None,
        Some(b) => Some(f32_elements(b)?),
        None => None,
    };
    let y = conv2d::conv2d_forward(
        &f32_elements(x)?,
        &f32_elements(weight)?,
        bias.as_deref(),
        &g,
    );
    Some(tensor(y, [g.batch, g.c_out, g.output[0], g.output[1]]))
}

/// The input gradient through `feedback` for an input shaped `x_shape`, or `None`.
pub fn conv2d_input_gradient(
    x_shape: [usize; 4],
    feedback: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let g = geometry(x_shape, dims4(feedback)?, Some(output_grad), options)?;
    let dx =
        conv2d::conv2d_input_gradient(&f32_elements(feedback)?, &f32_elements(output_grad)?, &g);
    Some(tensor(dx, x_shape))
}

/// The weight gradient (shaped `w_shape`) of `conv2d(x, ·)` for `output_grad`, or `None`.
pub fn conv2d_weight_gradient(
    x: &FlexTensor,
    w_shape: [usize; 4],
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let g = geometry(dims4(x)?, w_shape, Some(output_grad), options)?;
    let dw = conv2d::conv2d_weight_gradient(&f32_elements(x)?, &f32_elements(output_grad)?, &g);
    Some(tensor(dw, w_shape))
}

/// The `[batch, channels, positions]` view of a batch-norm input of rank ≥ 2.
fn norm_geometry(x: &FlexTensor) -> Option<NormGeometry> {
    let dims = x.shape().to_vec();
    if dims.len() < 2 || dims[1] == 0 {
        return None;
    }
    Some(NormGeometry {
        batch: dims[0],
        channels: dims[1],
        positions: dims[2..].iter().product(),
    })
}

fn vector(data: Vec<f32>) -> FlexTensor {
    let n = data.len();
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::new([n])),
        DType::F32,
    )
}

/// `[channels]` parameters of an f32 batch norm, or `None`.
fn per_channel<'a>(t: &'a FlexTensor, g: &NormGeometry) -> Option<Cow<'a, [f32]>> {
    (t.shape().to_vec() == [g.channels]).then_some(())?;
    f32_elements(t)
}

/// Training-mode batch norm `(y, mean, var)`, or `None` to fall back to Burn's op.
pub fn batch_norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> Option<(FlexTensor, FlexTensor, FlexTensor)> {
    let g = norm_geometry(x)?;
    let (gamma, beta) = (per_channel(gamma, &g)?, per_channel(beta, &g)?);
    let (y, mean, var) =
        batch_norm::batch_norm_forward(&f32_elements(x)?, &gamma, &beta, epsilon, g);
    let y = FlexTensor::new(
        Bytes::from_elems(y),
        Layout::contiguous(x.shape()),
        DType::F32,
    );
    Some((y, vector(mean), vector(var)))
}

/// Batch-norm gradients `(dx, dgamma, dbeta)`, or `None` to fall back to Burn's op.
pub fn batch_norm_gradients(
    x: &FlexTensor,
    gamma: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
    output_grad: &FlexTensor,
) -> Option<(FlexTensor, FlexTensor, FlexTensor)> {
    let g = norm_geometry(x)?;
    if output_grad.shape() != x.shape() {
        return None;
    }
    let (gamma, mean, var) = (
        per_channel(gamma, &g)?,
        per_channel(mean, &g)?,
        per_channel(variance, &g)?,
    );
    let (dx, dgamma, dbeta) = batch_norm::batch_norm_backward(
        &f32_elements(x)?,
        &gamma,
        &mean,
        &var,
        epsilon,
        &f32_elements(output_grad)?,
        g,
    );
    let dx = FlexTensor::new(
        Bytes::from_elems(dx),
        Layout::contiguous(x.shape()),
        DType::F32,
    );
    Some((dx, vector(dgamma), vector(dbeta)))
}

/// A new tensor of `like`'s shape holding `data`.
fn shaped_like(data: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(like.shape()),
        DType::F32,
    )
}

/// uSF's `scale·sign(weight)`, or `None` for a dtype the kernel does not take.
pub fn scaled_sign(weight: &FlexTensor, scale: f64) -> Option<FlexTensor> {
    let b = sign::scaled_sign(&f32_elements(weight)?, scale as f32);
    Some(shaped_like(b, weight))
}

/// frSF's `magnitudes·sign(weight)`, or `None` (another dtype, or shapes that differ).
pub fn signed_magnitudes(weight: &FlexTensor, magnitudes: &FlexTensor) -> Option<FlexTensor> {
    (weight.shape() == magnitudes.shape()).then_some(())?;
    let b = sign::signed_magnitudes(&f32_elements(weight)?, &f32_elements(magnitudes)?);
    Some(shaped_like(b, weight))
}

/// brSF's `|R|·sign(weight)`, `|R| ~ U(0, bound)` from the counter-based stream of `seed`.
pub fn signed_uniform(weight: &FlexTensor, bound: f64, seed: u64) -> Option<FlexTensor> {
    let b = sign::signed_uniform(&f32_elements(weight)?, bound as f32, seed);
    Some(shaped_like(b, weight))
}

#[cfg(test)]
mod tests {
    use super::super::Kernels;
    use burn::backend::Flex;
    use burn::backend::TensorMetadata;
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::ModuleOps;
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::{DType, TensorData};

    fn random(shape: [usize; 4], seed: u64) -> FlexTensor {
        let n: usize = shape.iter().product();
        // Sums of four uniforms in [−0.5, 0.5): roughly normal, never all zeros.
        let data: Vec<f32> = wt_kernels::test_values(4 * n, seed)
            .chunks_exact(4)
            .map(|c| c.iter().fold(0.0, |acc, v| acc + v * 0.5))
            .collect();
        FlexTensor::from_data(TensorData::new(data, shape))
    }

    fn elements(t: FlexTensor) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn assert_close(what: &str, got: FlexTensor, want: FlexTensor) {
        assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
        let (got, want) = (elements(got), elements(want));
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        let err = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        assert!(err <= 1e-5, "{what}: relative error {err:e} > 1e-5");
    }

    struct Case {
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    }

    fn case(
        x: [usize; 4],
        w: [usize; 4],
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Case {
        Case {
            x,
            w,
            stride: [stride; 2],
            padding: [(padding, padding); 2],
            dilation: [dilation; 2],
            groups,
        }
    }

    /// The shapes of the zoo's layers, shrunk, and every option Burn accepts: stride 1/2,
    /// padding 0/1/same (and uneven), dilation 1/2, groups 1/2/depthwise, odd and non-square
    /// sizes, batch 1.
    fn cases() -> Vec<Case> {
        vec![
            case([3, 8, 9, 9], [8, 8, 3, 3], 1, 1, 1, 1),
            case([2, 8, 10, 10], [16, 8, 3, 3], 2, 1, 1, 1),
            case([2, 8, 9, 11], [16, 8, 1, 1], 2, 0, 1, 1),
            case([4, 16, 5, 5], [8, 16, 1, 1], 1, 0, 1, 1),
            case([1, 16, 5, 5], [8, 16, 1, 1], 1, 0, 1, 1),
            case([2, 3, 23, 21], [8, 3, 7, 7], 2, 3, 1, 1),
            case([2, 1, 14, 14], [6, 1, 5, 5], 1, 0, 1, 1),
            case([2, 6, 12, 12], [16, 6, 5, 5], 1, 2, 1, 1),
            case([2, 4, 9, 8], [6, 4, 3, 3], 1, 2, 2, 1),
            case([2, 4, 9, 9], [6, 2, 3, 3], 2, 1, 1, 2),
            case([2, 6, 8, 7], [6, 1, 3, 3], 1, 1, 1, 6),
            case([1, 5, 6, 13], [7, 5, 2, 4], 3, 0, 1, 1),
            case([2, 4, 40, 3], [4, 4, 3, 1], 1, 1, 1, 1),
            Case {
                x: [2, 3, 10, 9],
                w: [5, 3, 3, 3],
                stride: [2, 1],
                padding: [(0, 2), (1, 0)],
                dilation: [1, 2],
                groups: 1,
            },
            case([17, 8, 4, 4], [16, 8, 3, 3], 1, 1, 1, 1),
        ]
    }

    /// Each kernel against Burn's own conv2d, conv_transpose2d and weight gradient on Flex, on
    /// random inputs, to a relative error of 1e-5.
    #[test]
    fn kernels_match_burns_convolutions() {
        for (i, c) in cases().iter().enumerate() {
            let options = ConvOptions::new_with_padding(c.stride, c.padding, c.dilation, c.groups);
            let x = random(c.x, 1 + i as u64);
            let w = random(c.w, 100 + i as u64);
            let bias = FlexTensor::from_data(TensorData::new(
                elements(random([1, 1, 1, c.w[0]], 7)),
                [c.w[0]],
            ));
            let want = <Flex as ModuleOps<Flex>>::conv2d(
                x.clone(),
                w.clone(),
                Some(bias.clone()),
                options.clone(),
            );
            let got = super::conv2d_forward(&x, &w, Some(&bias), &options)
                .expect("kernel takes f32 convolutions");
            assert_close(&format!("case {i} forward"), got, want.clone());
            let out_grad = random(want.shape().dims::<4>(), 200 + i as u64);

            let want_dx = <Flex as ModuleOps<Flex>>::conv2d_x_backward(
                x.clone(),
                w.clone(),
                out_grad.clone(),
                options.clone(),
            );
            let got_dx = <Flex as Kernels>::conv2d_input_gradient(
                x.clone(),
                w.clone(),
                out_grad.clone(),
                options.clone(),
            );
            assert_close(&format!("case {i} input gradient"), got_dx, want_dx);

            let want_dw = <Flex as ModuleOps<Flex>>::conv2d_weight_backward(
                x.clone(),
                w.clone(),
                out_grad.clone(),
                options.clone(),
            );
            let got_dw = <Flex as Kernels>::conv2d_weight_gradient(
                x.clone(),
                w.clone(),
                out_grad.clone(),
                options.clone(),
            );
            assert_close(&format!("case {i} weight gradient"), got_dw, want_dw);
        }
    }

    /// Batch norm's forward and gradients against Burn's `batch_norm_train` and
    /// `batch_norm_train_backward` on Flex, on an input with a non-zero mean.
    #[test]
    fn batch_norm_matches_burns() {
        for shape in [[4usize, 3, 5, 7], [1, 6, 2, 2], [9, 2, 1, 1]] {
            let shifted: Vec<f32> = elements(random(shape, 11))
                .iter()
                .map(|v| v * 3.0 + 0.8)
                .collect();
            let x = FlexTensor::from_data(TensorData::new(shifted, shape));
            let per_channel = |seed: u64| {
                let v = elements(random([1, 1, 1, shape[1]], seed));
                FlexTensor::from_data(TensorData::new(v, [shape[1]]))
            };
            let (gamma, beta) = (per_channel(12), per_channel(13));
            let want = <Flex as ModuleOps<Flex>>::batch_norm_train(
                x.clone(),
                gamma.clone(),
                beta.clone(),
                1e-5,
            );
            let (y, mean, var) = super::batch_norm_forward(&x, &gamma, &beta, 1e-5).unwrap();
            assert_close("batch norm output", y, want.output);
            assert_close("batch norm mean", mean.clone(), want.mean);
            assert_close("batch norm variance", var.clone(), want.variance);
            let dy = random(shape, 14);
            let want = <Flex as ModuleOps<Flex>>::batch_norm_train_backward(
                x.clone(),
                gamma.clone(),
                mean.clone(),
                var.clone(),
                1e-5,
                dy.clone(),
            );
            let (dx, dgamma, dbeta) =
                super::batch_norm_gradients(&x, &gamma, &mean, &var, 1e-5, &dy).unwrap();
            assert_close("batch norm dx", dx, want.x_grad);
            assert_close("batch norm dgamma", dgamma, want.gamma_grad);
            assert_close("batch norm dbeta", dbeta, want.beta_grad);
        }
    }

    /// The input gradient is conv_transpose2d(g, B) with the output padding that restores the
    /// input's size (the explicit form of what the rules send back).
    #[test]
    fn input_gradient_is_the_transposed_convolution() {
        let x = random([2, 4, 10, 10], 3);
        let b = random([6, 4, 3, 3], 4);
        let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        let g = random([2, 6, 5, 5], 5);
        // (5 − 1)·2 + 3 − 2 = 9 rows covered: one row of output padding restores 10.
        let t = ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1);
        let want = <Flex as ModuleOps<Flex>>::conv_transpose2d(g.clone(), b.clone(), None, t);
        let got = <Flex as Kernels>::conv2d_input_gradient(x, b, g, options);
        assert_close("dx = conv_transpose2d(g, B)", got, want);
    }

    /// Burn's options reach the geometry field for field (uneven padding's end only sets the
    /// output size), and invalid shapes give `None`.
    #[test]
    fn conv_options_become_the_geometry() {
        let options = ConvOptions::new_with_padding([2, 1], [(1, 2), (0, 3)], [1, 2], 2);
        let g = super::conv_geometry([2, 4, 9, 8], [6, 2, 3, 3], &options).unwrap();
        assert_eq!(
            (g.stride, g.pad_begin, g.dilation, g.groups),
            ([2, 1], [1, 0], [1, 2], 2)
        );
        // (9 + 3 − 3) / 2 + 1 = 5; (8 + 3 − 5) / 1 + 1 = 7
        assert_eq!(g.output, [5, 7]);
        assert!(super::conv_geometry([2, 4, 9, 8], [6, 4, 3, 3], &options).is_none());
    }

    /// Non-contiguous views are read correctly; other dtypes go to Burn's op.
    #[test]
    fn strided_views_and_other_dtypes() {
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let x = random([3, 2, 6, 5], 9);
        let x_t = x.permute(&[0, 1, 3, 2]);
        assert!(
            x_t.as_slice::<f32>().is_none(),
            "the permuted view is strided"
        );
        let w = random([4, 2, 3, 3], 10);
        let want = <Flex as ModuleOps<Flex>>::conv2d(
            x_t.to_contiguous(),
            w.clone(),
            None,
            options.clone(),
        );
        let got = super::conv2d_forward(&x_t, &w, None, &options).unwrap();
        assert_close("strided input", got, want);

        let x64 = FlexTensor::from_data(TensorData::new(vec![0.5f64; 2 * 6 * 5 * 3], [3, 2, 6, 5]));
        assert!(super::conv2d_forward(&x64, &w, None, &options).is_none());
        let y = <Flex as Kernels>::conv2d_forward(
            x64.clone(),
            FlexTensor::from_data(TensorData::new(vec![0.25f64; 72], [4, 2, 3, 3])),
            None,
            options,
        );
        assert_eq!(y.dtype(), DType::F64);
    }
}
