//! [`feedback_module!`](crate::feedback_module): the `Module` implementation of a feedback
//! layer, wt's own and yours.

/// Implements Burn's `Module`, `ModuleDisplay` and `Display` for a feedback layer: a struct
/// whose weight has rank `rank` and that implements [`FeedbackLayer`](crate::FeedbackLayer)
/// for that rank. `params` are its module fields (parameters, optional parameters, modules),
/// `consts` its plain fields (cloned as they are; they must be `Clone + Debug`), together every
/// field of the struct.
///
/// Written by hand rather than derived for one reason: before walking its parameters, the layer
/// hands itself to the model-wide operation installed by [`crate::hook`], if any (the rule and
/// the sign scale are plain fields, which no `ModuleVisitor` sees). Parameters are walked
/// exactly as `#[derive(Module)]` would, so records, paths and optimizers see them as usual; a
/// test checks the record keys against a derived twin's.
///
/// ```ignore
/// wt_nn::feedback_module!(FeedbackConv1d, rank: 3, params: [weight, bias, feedback], consts: [rule, sign_scale, stride, padding]);
/// ```
#[macro_export]
macro_rules! feedback_module {
    ($ty:ident, rank: $rank:literal, params: [$($p:ident),*], consts: [$($c:ident),*]) => {
        impl $crate::__burn::module::Module for $ty {
            fn num_params(&self) -> usize {
                0 $(+ $crate::__burn::module::Module::num_params(&self.$p))*
            }

            fn visit<V: $crate::__burn::module::ModuleVisitor>(&self, visitor: &mut V) {
                $crate::hook::on_visit::<$rank, Self>(self);
                $(
                    visitor.enter_module(stringify!($p), concat!("Struct:", stringify!($ty)));
                    $crate::__burn::module::Module::visit(&self.$p, visitor);
                    visitor.exit_module(stringify!($p), concat!("Struct:", stringify!($ty)));
                )*
            }

            fn map<M: $crate::__burn::module::ModuleMapper>(self, mapper: &mut M) -> Self {
                let Self { $($p,)* $($c,)* } = $crate::hook::on_map::<$rank, Self>(self);
                $(
                    mapper.enter_module(stringify!($p), concat!("Struct:", stringify!($ty)));
                    let $p = $crate::__burn::module::Module::map($p, mapper);
                    mapper.exit_module(stringify!($p), concat!("Struct:", stringify!($ty)));
                )*
                Self { $($p,)* $($c,)* }
            }

            fn collect_devices(&self, devices: $crate::__burn::module::Devices) -> $crate::__burn::module::Devices {
                $(let devices = $crate::__burn::module::Module::collect_devices(&self.$p, devices);)*
                devices
            }

            fn to_device(self, device: &$crate::__burn::tensor::Device) -> Self {
                let Self { $($p,)* $($c,)* } = self;
                $(let $p = $crate::__burn::module::Module::to_device($p, device);)*
                Self { $($p,)* $($c,)* }
            }

            fn fork(self, device: &$crate::__burn::tensor::Device) -> Self {
                let Self { $($p,)* $($c,)* } = self;
                $(let $p = $crate::__burn::module::Module::fork($p, device);)*
                Self { $($p,)* $($c,)* }
            }

            fn valid(&self) -> Self {
                Self {
                    $($p: $crate::__burn::module::Module::valid(&self.$p),)*
                    $($c: self.$c.clone(),)*
                }
            }

            fn train(self) -> Self {
                let Self { $($p,)* $($c,)* } = self;
                $(let $p = $crate::__burn::module::Module::train($p);)*
                Self { $($p,)* $($c,)* }
            }

            fn materialize(self) -> Self {
                let Self { $($p,)* $($c,)* } = self;
                $(let $p = $crate::__burn::module::Module::materialize($p);)*
                Self { $($p,)* $($c,)* }
            }
        }

        impl $crate::__burn::module::ModuleDisplayDefault for $ty {
            fn content(&self, content: $crate::__burn::module::Content) -> Option<$crate::__burn::module::Content> {
                content
                    .set_top_level_type(stringify!($ty))
                    $(.add(stringify!($p), &self.$p))*
                    $(.add_debug_attribute(stringify!($c), &self.$c))*
                    .optional()
            }

            fn num_params(&self) -> usize {
                $crate::__burn::module::Module::num_params(self)
            }
        }

        impl $crate::__burn::module::ModuleDisplay for $ty {}

        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let formatted = $crate::__burn::module::ModuleDisplay::format(self, Default::default());
                write!(f, "{}", formatted)
            }
        }
    };
}
