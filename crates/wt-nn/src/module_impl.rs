//! `Module` implementation shared by the feedback layers.
//!
//! Written by hand (not derived) for one reason: before walking its parameters, a layer hands
//! itself to the model-wide operation installed by [`crate::hook`], if any (the rule and the
//! sign scale are plain fields, which no `ModuleVisitor` sees). Parameters are walked exactly
//! as `#[derive(Module)]` would, so records, paths and optimizers see `weight`, `bias` and
//! `feedback` as usual; a test checks the record keys against a derived twin's.

/// Implements `Module`, `ModuleDisplay` and `Display` for a feedback layer.
/// `params` are module fields, `consts` are plain fields copied as they are.
macro_rules! feedback_module {
    ($ty:ident, params: [$($p:ident),*], consts: [$($c:ident),*]) => {
        impl burn::module::Module for $ty {
            fn num_params(&self) -> usize {
                0 $(+ burn::module::Module::num_params(&self.$p))*
            }

            fn visit<V: burn::module::ModuleVisitor>(&self, visitor: &mut V) {
                crate::hook::on_visit(self);
                $(
                    visitor.enter_module(stringify!($p), concat!("Struct:", stringify!($ty)));
                    burn::module::Module::visit(&self.$p, visitor);
                    visitor.exit_module(stringify!($p), concat!("Struct:", stringify!($ty)));
                )*
            }

            fn map<M: burn::module::ModuleMapper>(self, mapper: &mut M) -> Self {
                let Self { $($p,)* $($c,)* } = crate::hook::on_map(self);
                $(
                    mapper.enter_module(stringify!($p), concat!("Struct:", stringify!($ty)));
                    let $p = burn::module::Module::map($p, mapper);
                    mapper.exit_module(stringify!($p), concat!("Struct:", stringify!($ty)));
                )*
                Self { $($p,)* $($c,)* }
            }

            fn collect_devices(&self, devices: burn::module::Devices) -> burn::module::Devices {
                $(let devices = burn::module::Module::collect_devices(&self.$p, devices);)*
                devices
            }

            fn to_device(self, device: &burn::tensor::Device) -> Self {
                let Self { $($p,)* $($c,)* } = self;
                $(let $p = burn::module::Module::to_device($p, device);)*
                Self { $($p,)* $($c,)* }
            }

            fn fork(self, device: &burn::tensor::Device) -> Self {
                let Self { $($p,)* $($c,)* } = self;
                $(let $p = burn::module::Module::fork($p, device);)*
                Self { $($p,)* $($c,)* }
            }

            fn valid(&self) -> Self {
                Self {
                    $($p: burn::module::Module::valid(&self.$p),)*
                    $($c: self.$c.clone(),)*
                }
            }

            fn train(self) -> Self {
                let Self { $($p,)* $($c,)* } = self;
                $(let $p = burn::module::Module::train($p);)*
                Self { $($p,)* $($c,)* }
            }

            fn materialize(self) -> Self {
                let Self { $($p,)* $($c,)* } = self;
                $(let $p = burn::module::Module::materialize($p);)*
                Self { $($p,)* $($c,)* }
            }
        }

        impl burn::module::ModuleDisplayDefault for $ty {
            fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
                content
                    .set_top_level_type(stringify!($ty))
                    $(.add(stringify!($p), &self.$p))*
                    $(.add_debug_attribute(stringify!($c), &self.$c))*
                    .optional()
            }

            fn num_params(&self) -> usize {
                burn::module::Module::num_params(self)
            }
        }

        impl burn::module::ModuleDisplay for $ty {}

        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let formatted = burn::module::ModuleDisplay::format(self, Default::default());
                write!(f, "{}", formatted)
            }
        }
    };
}

pub(crate) use feedback_module;
