//! The three convolutions of a training step, layer by layer, for every conv shape of
//! ResNet-20 (batch 128), ResNet-18 with the CIFAR stem (batch 32) and the Imagenette step's
//! ResNet-18 (ImageNet stem, 64 × 64 pixels, batch 128): wt's kernels (forward
//! `y = conv(x, W)`, input gradient `dx = conv_transpose(g, B)`, weight gradient
//! `dW = corr(x, g)`) against Burn's own Flex ops on the same buffers, beside the kernels wt
//! chooses between (`unfold_ms`: the unfolded products; `direct_ms`: the direct stride-1
//! kernels; `winograd_ms`: the Winograd 3×3 kernels; each where it takes the layer); `path`
//! says which one wt runs. Rounds of one call per
//! case, medians. `benches/reference/pytorch_conv.py` times PyTorch's
//! `conv2d` / `conv2d_input` / `conv2d_weight` on the same shapes.
//!
//! ```text
//! cargo run --release --example bench_conv                 # about 2 minutes on 2 cores
//! ```
//! `--help` lists the options (rounds, warm-up, which models' layers). Prints a table and one JSON line per layer and op: `{"model":"resnet20","layer":"s1",
//! "op":"forward","path":"direct","wt_ms":..,"burn_ms":..,"unfolded_ms":..,"direct_ms":..,
//! "winograd_ms":..,"gflops":..}` (null where a kernel does not take the layer) (`gflops`: wt's, 2·MACs per second).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use burn::tensor::ops::ConvOptions;
use clap::Parser;
use wt::wt_core::Kernels;
use wt::wt_core::kernels::conv2d::{self, KernelChoice};
use wt::wt_core::kernels::{ConvGeometry, FlexKernels};
use wt::wt_core::kernels::{direct, winograd};

#[path = "../benches/common/interleaved.rs"]
mod interleaved;
use interleaved::interleaved;

/// (model, layer, batch, c_in, c_out, side, kernel, stride) of one convolution.
type Layer = (
    &'static str,
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

/// One timed operation: its name and a call.
type Op<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// Every conv shape of the three ResNets.
const LAYERS: &[Layer] = &[
    ("resnet20", "stem 3-16 32²", 128, 3, 16, 32, 3, 1),
    ("resnet20", "s1 16-16 32²", 128, 16, 16, 32, 3, 1),
    ("resnet20", "s2 16-32 /2", 128, 16, 32, 32, 3, 2),
    ("resnet20", "s2 32-32 16²", 128, 32, 32, 16, 3, 1),
    ("resnet20", "s3 32-64 /2", 128, 32, 64, 16, 3, 2),
    ("resnet20", "s3 64-64 8²", 128, 64, 64, 8, 3, 1),
    ("resnet18", "stem 3-64 32²", 32, 3, 64, 32, 3, 1),
    ("resnet18", "l1 64-64 32²", 32, 64, 64, 32, 3, 1),
    ("resnet18", "l2 64-128 /2", 32, 64, 128, 32, 3, 2),
    ("resnet18", "l2 128-128 16²", 32, 128, 128, 16, 3, 1),
    ("resnet18", "l2 1x1 64-128 /2", 32, 64, 128, 32, 1, 2),
    ("resnet18", "l3 128-256 /2", 32, 128, 256, 16, 3, 2),
    ("resnet18", "l3 256-256 8²", 32, 256, 256, 8, 3, 1),
    ("resnet18", "l3 1x1 128-256 /2", 32, 128, 256, 16, 1, 2),
    ("resnet18", "l4 256-512 /2", 32, 256, 512, 8, 3, 2),
    ("resnet18", "l4 512-512 4²", 32, 512, 512, 4, 3, 1),
    ("resnet18", "l4 1x1 256-512 /2", 32, 256, 512, 8, 1, 2),
    ("imagenette", "stem 7x7 3-64 /2", 128, 3, 64, 64, 7, 2),
    ("imagenette", "l1 64-64 16²", 128, 64, 64, 16, 3, 1),
    ("imagenette", "l2 64-128 /2", 128, 64, 128, 16, 3, 2),
    ("imagenette", "l2 128-128 8²", 128, 128, 128, 8, 3, 1),
    ("imagenette", "l2 1x1 64-128 /2", 128, 64, 128, 16, 1, 2),
    ("imagenette", "l3 128-256 /2", 128, 128, 256, 8, 3, 2),
    ("imagenette", "l3 256-256 4²", 128, 256, 256, 4, 3, 1),
    ("imagenette", "l3 1x1 128-256 /2", 128, 128, 256, 8, 1, 2),
    ("imagenette", "l4 256-512 /2", 128, 256, 512, 4, 3, 2),
    ("imagenette", "l4 512-512 2²", 128, 512, 512, 2, 3, 1),
    ("imagenette", "l4 1x1 256-512 /2", 128, 256, 512, 4, 1, 2),
];

fn random(shape: [usize; 4], seed: u64) -> FlexTensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// wt's convolution kernels against Burn's Flex ops, per layer.
#[derive(Parser)]
struct Cli {
    /// Measured rounds
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// Unmeasured rounds first
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Models whose conv layers are timed
    #[arg(long, value_delimiter = ',', default_value = "resnet20,resnet18,imagenette",
          value_parser = ["resnet20", "resnet18", "imagenette"])]
    layers: Vec<String>,
}

fn main() {
    wt::wt_train::allocator::keep_freed_memory();
    let Cli {
        reps,
        warmup,
        layers: models,
    } = Cli::parse();
    let reps = reps.max(1);
    println!(
        "model      layer                op      path         wt_ms   burn_ms  burn/wt  unfold_ms  direct_ms  winograd_ms  wt_GFLOP/s"
    );
    let mut json_lines = Vec::new();
    for &(model, layer, batch, c_in, c_out, side, k, stride) in LAYERS {
        if !models.iter().any(|m| m == model) {
            continue;
        }
        let pad = k / 2;
        let options = ConvOptions::new([stride; 2], [pad; 2], [1, 1], 1);
        let x = random([batch, c_in, side, side], 1);
        let w = random([c_out, c_in, k, k], 2);
        let g = ConvGeometry::new(
            x.layout().shape().dims::<4>(),
            [c_out, c_in, k, k],
            [stride; 2],
            [(pad, pad); 2],
            [1, 1],
            1,
        )
        .expect("a valid convolution");
        let out = random([batch, c_out, g.output[0], g.output[1]], 3);
        let macs = (g.batch * g.output_len() * g.patch_len()) as f64;
        let ops: [Op; 3] = [
            (
                "forward",
                Box::new(|| {
                    drop(<Flex as Kernels>::conv2d_forward(
                        x.clone(),
                        w.clone(),
                        None,
                        options.clone(),
                    ))
                }),
            ),
            (
                "input",
                Box::new(|| {
                    drop(<Flex as Kernels>::conv2d_input_gradient(
                        x.clone(),
                        w.clone(),
                        out.clone(),
                        options.clone(),
                    ))
                }),
            ),
            (
                "weight",
                Box::new(|| {
                    drop(<Flex as Kernels>::conv2d_weight_gradient(
                        x.clone(),
                        w.clone(),
                        out.clone(),
                        options.clone(),
                    ))
                }),
            ),
        ];
        let slice = |t: &FlexTensor| t.as_slice::<f32>().expect("contiguous f32").to_vec();
        let (xs, ws, outs) = (slice(&x), slice(&w), slice(&out));
        let unfolded: [Box<dyn Fn() + '_>; 3] = [
            Box::new(|| drop(conv2d::unfolded_forward(&xs, &ws, None, &g))),
            Box::new(|| drop(conv2d::unfolded_input_gradient(&ws, &outs, &g))),
            Box::new(|| drop(conv2d::unfolded_weight_gradient(&xs, &outs, &g))),
        ];
        let direct_kernels: [Box<dyn Fn() + '_>; 3] = [
            Box::new(|| drop(direct::forward(&xs, &ws, None, &g))),
            Box::new(|| drop(direct::input_gradient(&ws, &outs, &g))),
            Box::new(|| drop(direct::weight_gradient(&xs, &outs, &g))),
        ];
        let winograd_kernels: [Box<dyn Fn() + '_>; 3] = [
            Box::new(|| drop(winograd::forward(&xs, &ws, None, &g))),
            Box::new(|| drop(winograd::input_gradient(&ws, &outs, &g))),
            Box::new(|| drop(winograd::weight_gradient(&xs, &outs, &g))),
        ];
        let choice = KernelChoice::of(&g);
        let chosen = [
            choice.forward,
            choice.input_gradient,
            choice.weight_gradient,
        ];
        for (k, (op, run)) in ops.iter().enumerate() {
            // Case 0: wt's kernels; case 1: Burn's op (the same call with the kernels off);
            // then the kernels wt chooses between, where they take the layer: the unfolded
            // products, the direct kernels, the Winograd kernels.
            let mut cases: Vec<Box<dyn FnMut() -> Result<(), std::convert::Infallible> + '_>> = vec![
                Box::new(|| {
                    FlexKernels::Wt.run(run);
                    Ok(())
                }),
                Box::new(|| {
                    FlexKernels::Burn.run(run);
                    Ok(())
                }),
                Box::new(|| {
                    unfolded[k]();
                    Ok(())
                }),
            ];
            let (takes_direct, takes_winograd) = (direct::takes(&g), winograd::takes(&g));
            if takes_direct {
                cases.push(Box::new(|| {
                    direct_kernels[k]();
                    Ok(())
                }));
            }
            if takes_winograd {
                cases.push(Box::new(|| {
                    winograd_kernels[k]();
                    Ok(())
                }));
            }
            let Ok(t) = interleaved(&mut cases, warmup, reps);
            let ms = |i: usize| t[i].as_secs_f64() * 1e3;
            let (wt_ms, burn_ms, unfold_ms) = (ms(0), ms(1), ms(2));
            let direct_ms = takes_direct.then(|| ms(3));
            let winograd_ms = takes_winograd.then(|| ms(3 + usize::from(takes_direct)));
            let gflops = 2.0 * macs / wt_ms / 1e6;
            let path = chosen[k].name();
            let cell = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2}"));
            println!(
                "{model:<11}{layer:<21}{op:<8}{path:<10}{wt_ms:>8.2}{burn_ms:>10.2}{:>9.2}{unfold_ms:>11.2}{:>11}{:>11}{gflops:>12.1}",
                burn_ms / wt_ms,
                cell(direct_ms),
                cell(winograd_ms),
            );
            let json = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
            json_lines.push(format!(
                "{{\"model\":\"{model}\",\"layer\":\"{layer}\",\"op\":\"{op}\",\"path\":\"{path}\",\"wt_ms\":{wt_ms:.3},\"burn_ms\":{burn_ms:.3},\"unfolded_ms\":{unfold_ms:.3},\"direct_ms\":{},\"winograd_ms\":{},\"gflops\":{gflops:.1}}}",
                json(direct_ms),
                json(winograd_ms),
            ));
        }
    }
    for line in json_lines {
        println!("{line}");
    }
}
