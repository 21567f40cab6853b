//! [`ConvGeometry`]: every size a 2-D convolution's three kernels need, checked once.

/// The sizes of one 2-D convolution in NCHW layout: input `[batch, c_in, h, w]`, weight
/// `[c_out, c_in / groups, kh, kw]`, output `[batch, c_out, h_out, w_out]`, with stride,
/// per-side padding, dilation and groups as Burn's `ConvOptions<2>` holds them (wt-core's
/// `kernels::conv_geometry` builds one from those options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels (all groups).
    pub c_in: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output channels (all groups).
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding before (top, left) the input.
    pub pad_begin: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// Output height and width.
    pub output: [usize; 2],
}

impl ConvGeometry {
    /// The geometry of the convolution of an input shaped `x` with a weight shaped `weight`:
    /// `stride`, `padding` (`(before, after)` along height, then width), `dilation` and
    /// `groups` as in Burn's `conv2d`. `None` when they do not form a valid convolution (wt-core
    /// then runs Burn's own op, which reports the error).
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Option<Self> {
        let [batch, c_in, h, w] = x;
        let [c_out, c_in_group, kh, kw] = weight;
        if groups == 0 || c_in_group * groups != c_in || c_out % groups != 0 || c_out == 0 {
            return None;
        }
        let mut output = [0; 2];
        for (d, (&size, &k)) in [h, w].iter().zip([kh, kw].iter()).enumerate() {
            let (begin, end) = padding[d];
            let span = dilation[d] * k.checked_sub(1)? + 1;
            let padded = size + begin + end;
            if padded < span || stride[d] == 0 {
                return None;
            }
            output[d] = (padded - span) / stride[d] + 1;
        }
        Some(Self {
            batch,
            c_in,
            input: [h, w],
            c_out,
            kernel: [kh, kw],
            stride,
            pad_begin: [padding[0].0, padding[1].0],
            dilation,
            groups,
            output,
        })
    }

    /// Input channels of one group.
    pub fn c_in_group(&self) -> usize {
        self.c_in / self.groups
    }

    /// Output channels of one group.
    pub fn c_out_group(&self) -> usize {
        self.c_out / self.groups
    }

    /// Rows of one group's unfolded input: `c_in / groups · kh · kw` (the weight's row length).
    pub fn patch_len(&self) -> usize {
        self.c_in_group() * self.kernel[0] * self.kernel[1]
    }

    /// Output positions of one image, `h_out · w_out`.
    pub fn positions(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Input elements of one image, `c_in · h · w`.
    pub fn image_len(&self) -> usize {
        self.c_in * self.input[0] * self.input[1]
    }

    /// Output elements of one image, `c_out · h_out · w_out`.
    pub fn output_len(&self) -> usize {
        self.c_out * self.positions()
    }

    /// Whether the unfolded input of one image is the image itself: a 1×1 kernel, stride 1,
    /// no padding (then no unfolding is needed).
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.pad_begin == [0, 0]
            && self.output == self.input
    }

    /// Images per task: enough that one product spans at least [`MIN_COLUMNS`] output
    /// positions, but at most a quarter of the batch so that the batch still splits into
    /// several tasks. A function of the shapes only, never of the thread count, so the order
    /// of every sum is fixed.
    pub fn images_per_task(&self) -> usize {
        let wanted = MIN_COLUMNS.div_ceil(self.positions().max(1));
        wanted.min(self.batch.div_ceil(4)).max(1)
    }
}

/// The fewest output positions one matrix product of a task should span (small feature maps
/// are batched together until they do).
pub const MIN_COLUMNS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_burns_formula() {
        let g = ConvGeometry::new(
            [2, 3, 9, 8],
            [4, 3, 3, 3],
            [2, 1],
            [(1, 2), (0, 0)],
            [1, 2],
            1,
        )
        .unwrap();
        // (9 + 3 - 3) / 2 + 1 = 5; (8 - 5) / 1 + 1 = 4
        assert_eq!(g.output, [5, 4]);
        assert_eq!(g.patch_len(), 27);
        assert!(!g.is_pointwise());
        let pointwise =
            ConvGeometry::new([1, 4, 5, 5], [2, 4, 1, 1], [1, 1], [(0, 0); 2], [1, 1], 1);
        assert!(pointwise.unwrap().is_pointwise());
    }

    #[test]
    fn invalid_shapes_are_left_to_burn() {
        let no_pad = [(0, 0); 2];
        assert!(ConvGeometry::new([1, 3, 5, 5], [4, 1, 3, 3], [1, 1], no_pad, [1, 1], 2).is_none());
        assert!(ConvGeometry::new([1, 3, 2, 2], [4, 3, 3, 3], [1, 1], no_pad, [1, 1], 1).is_none());
    }
}
