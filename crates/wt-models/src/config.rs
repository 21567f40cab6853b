//! [`ModelConfig`]: pick a zoo model by name, with the rule and the data's shape; [`Model`]
//! holds any of them.

use burn::module::Module;
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use wt_nn::layer_rules::{layer_paths, pattern_matches};
use wt_nn::wt_core::{Named, named_str};
use wt_nn::{LayerRules, Rule, UnmatchedPattern, set_layer_rules};

use crate::{
    CifarResNet, CifarResNetConfig, ImageClassifier, LeNet, LeNetConfig, Mlp, MlpConfig, ResNet,
    ResNetConfig, ResNetDepth, Shortcut, Stem, TransformerShape, Vit, VitConfig,
};

/// The architectures of the zoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// [`Mlp`] with [`ModelConfig::hidden`] widths.
    Mlp,
    /// [`LeNet`], MNIST shape for 1-channel data, CIFAR shape for 3-channel data.
    Lenet,
    /// [`CifarResNet`] with n = 3.
    Resnet20,
    /// [`CifarResNet`] with n = 9.
    Resnet56,
    /// [`ResNet`] 18, ImageNet stem for images larger than 64 pixels, CIFAR stem otherwise.
    Resnet18,
    /// [`ResNet`] 34 (basic blocks), stem chosen as for ResNet-18.
    Resnet34,
    /// [`ResNet`] 50 (bottlenecks), stem chosen as for ResNet-18.
    Resnet50,
    /// [`ResNet`] 101, stem chosen as for ResNet-18.
    Resnet101,
    /// [`ResNet`] 152, stem chosen as for ResNet-18.
    Resnet152,
    /// [`Vit`] with [`ModelConfig::transformer`]'s shape.
    Vit,
}

impl Named for Architecture {
    const WHAT: &'static str = "model";

    fn all() -> Vec<Self> {
        vec![
            Self::Mlp,
            Self::Lenet,
            Self::Resnet20,
            Self::Resnet56,
            Self::Resnet18,
            Self::Resnet34,
            Self::Resnet50,
            Self::Resnet101,
            Self::Resnet152,
            Self::Vit,
        ]
    }

    fn name(&self) -> &'static str {
        Architecture::name(*self)
    }
}

impl Architecture {
    /// Command-line and serde name: `mlp`, `lenet`, `resnet20`, `resnet56`, `resnet18`,
    /// `resnet34`, `resnet50`, `resnet101`, `resnet152`, `vit`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Lenet => "lenet",
            Self::Resnet20 => "resnet20",
            Self::Resnet56 => "resnet56",
            Self::Resnet18 => "resnet18",
            Self::Resnet34 => "resnet34",
            Self::Resnet50 => "resnet50",
            Self::Resnet101 => "resnet101",
            Self::Resnet152 => "resnet152",
            Self::Vit => "vit",
        }
    }
}

named_str!(Architecture, InitScheme);

/// Weight initialisation of the feedback layers (and of B for the rules that draw it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitScheme {
    /// Each architecture's reference: for ResNet-18 to -152 torchvision's (and
    /// willwx/sign-symmetry's) fan-out Kaiming-normal convolutions
    /// ([`ResNetConfig::TORCHVISION_CONV_INIT`]) with PyTorch's default classifier; for the
    /// others [`Pytorch`](Self::Pytorch).
    #[default]
    Default,
    /// Burn's (and PyTorch's) layer default everywhere: Kaiming-uniform with gain 1/√3.
    Pytorch,
    /// Xavier (Glorot) uniform, gain 1: BioTorch's CIFAR recipe.
    Xavier,
    /// Kaiming (He) normal, gain √2, fan-in.
    KaimingNormal,
    /// Kaiming (He) normal, gain √2, fan-out, on every layer.
    KaimingNormalFanOut,
}

impl InitScheme {
    /// The Burn initialiser of every layer, or `None` for the layers' default
    /// ([`Default`](Self::Default) resolves per architecture in [`ModelConfig::init`]).
    pub fn initializer(self) -> Option<Initializer> {
        match self {
            Self::Default | Self::Pytorch => None,
            Self::Xavier => Some(Initializer::XavierUniform { gain: 1.0 }),
            Self::KaimingNormal => Some(Initializer::KaimingNormal {
                gain: std::f64::consts::SQRT_2,
                fan_out_only: false,
            }),
            Self::KaimingNormalFanOut => Some(ResNetConfig::TORCHVISION_CONV_INIT),
        }
    }
}

impl Named for InitScheme {
    const WHAT: &'static str = "initialisation";

    fn all() -> Vec<Self> {
        vec![
            Self::Default,
            Self::Pytorch,
            Self::Xavier,
            Self::KaimingNormal,
            Self::KaimingNormalFanOut,
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Pytorch => "pytorch",
            Self::Xavier => "xavier",
            Self::KaimingNormal => "kaiming_normal",
            Self::KaimingNormalFanOut => "kaiming_normal_fan_out",
        }
    }
}

/// Everything needed to build a zoo model: serialisable, so a run's config can rebuild it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Which network.
    pub architecture: Architecture,
    /// Number of classes.
    pub num_classes: usize,
    /// Input channels (1 for MNIST, 3 for CIFAR and ImageNet).
    pub in_channels: usize,
    /// Side of the (square) input images.
    pub image_side: usize,
    /// Rule of every convolution and linear layer.
    pub rule: Rule,
    /// Keep the last feedback layer (the classifier) on backprop whatever `rule` is: an
    /// override of [`rule_for`](Self::rule_for)'s kind for the model's last layer.
    #[serde(default)]
    pub last_layer_backprop: bool,
    /// Rules of their own for the layers a path pattern names (`conv1`, `blocks.0`, `fc*`;
    /// see [`wt_nn::layer_rules`]); every other layer runs `rule`.
    #[serde(default, skip_serializing_if = "LayerRules::is_empty")]
    pub rule_for: LayerRules,
    /// Weight initialisation.
    #[serde(default)]
    pub init: InitScheme,
    /// Hidden widths of the MLP (ignored by the other models).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Shortcut of the CIFAR ResNets' shape-changing blocks.
    #[serde(default)]
    pub shortcut: Shortcut,
    /// Stem of ResNet-18 to -152; `None`: the ImageNet stem above 64 pixels, the CIFAR stem at 64
    /// and below.
    #[serde(default)]
    pub stem: Option<Stem>,
    /// Shape of the [`Vit`] (ignored by the other models).
    #[serde(default)]
    pub transformer: TransformerShape,
}

fn default_hidden() -> Vec<usize> {
    vec![1000, 1000]
}

impl ModelConfig {
    /// A config with the defaults: MLP hidden widths 1000-1000, option-A shortcuts, default
    /// init, every layer on `rule`.
    pub fn new(
        architecture: Architecture,
        num_classes: usize,
        in_channels: usize,
        image_side: usize,
        rule: Rule,
    ) -> Self {
        Self {
            architecture,
            num_classes,
            in_channels,
            image_side,
            rule,
            last_layer_backprop: false,
            rule_for: LayerRules::new(),
            init: InitScheme::Default,
            hidden: default_hidden(),
            shortcut: Shortcut::A,
            stem: None,
            transformer: TransformerShape::default(),
        }
    }

    /// The default rule and every override's.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        std::iter::once(&self.rule).chain(self.rule_for.values())
    }

    /// Puts the layers of `model` (a zoo model or a user's) that [`rule_for`](Self::rule_for)
    /// names, and the last one when [`last_layer_backprop`](Self::last_layer_backprop) is set,
    /// on their own rules (the direct rules with this config's `num_classes` outputs). Layers
    /// already on their rule are left as they are, so it can follow [`init`](Self::init),
    /// which applies it already. Errors on a pattern that names no layer.
    pub fn apply_layer_rules<M: Module>(&self, model: M) -> Result<M, UnmatchedPattern> {
        let mut rules = self.rule_for.clone();
        if self.last_layer_backprop
            && let Some(last) = layer_paths(&model).pop()
        {
            rules
                .entry(last)
                .or_insert(Rule::Backprop(Default::default()));
        }
        for rule in rules.values_mut() {
            *rule = rule.with_outputs(self.num_classes);
        }
        set_layer_rules(model, &rules)
    }

    /// Builds the model on `device`, with [`rule_for`](Self::rule_for)'s layers on their own
    /// rules (a pattern that names no layer is reported by
    /// [`apply_layer_rules`](Self::apply_layer_rules), which the trainer calls; here it is
    /// skipped).
    pub fn init(&self, device: &Device) -> Model {
        let model = self.init_uniform(device);
        let paths = layer_paths(&model);
        let config = Self {
            rule_for: (self.rule_for.iter())
                .filter(|(pattern, _)| paths.iter().any(|path| pattern_matches(pattern, path)))
                .map(|(pattern, rule)| (pattern.clone(), *rule))
                .collect(),
            ..self.clone()
        };
        config
            .apply_layer_rules(model)
            .expect("unmatched patterns were dropped")
    }

    /// The model with every layer on `rule`.
    fn init_uniform(&self, device: &Device) -> Model {
        let init = self.init.initializer();
        let (classes, rule) = (self.num_classes, self.rule);
        match self.architecture {
            Architecture::Mlp => {
                let mut widths = vec![self.in_channels * self.image_side * self.image_side];
                widths.extend(&self.hidden);
                widths.push(classes);
                Model::Mlp(
                    MlpConfig::new(widths)
                        .with_rule(rule)
                        .with_initializer(init)
                        .init(device),
                )
            }
            Architecture::Lenet => {
                let base = if self.in_channels == 1 {
                    LeNetConfig::mnist(classes)
                } else {
                    LeNetConfig {
                        in_channels: self.in_channels,
                        ..LeNetConfig::cifar(classes)
                    }
                };
                Model::LeNet(base.with_rule(rule).with_initializer(init).init(device))
            }
            Architecture::Resnet20 | Architecture::Resnet56 => {
                let n = if self.architecture == Architecture::Resnet20 {
                    3
                } else {
                    9
                };
                Model::CifarResNet(
                    CifarResNetConfig::new(n, classes)
                        .with_in_channels(self.in_channels)
                        .with_shortcut(self.shortcut)
                        .with_rule(rule)
                        .with_initializer(init)
                        .init(device),
                )
            }
            Architecture::Resnet18
            | Architecture::Resnet34
            | Architecture::Resnet50
            | Architecture::Resnet101
            | Architecture::Resnet152 => {
                let depth = match self.architecture {
                    Architecture::Resnet18 => ResNetDepth::R18,
                    Architecture::Resnet34 => ResNetDepth::R34,
                    Architecture::Resnet50 => ResNetDepth::R50,
                    Architecture::Resnet101 => ResNetDepth::R101,
                    Architecture::Resnet152 => ResNetDepth::R152,
                    _ => unreachable!("a ResNet architecture"),
                };
                let stem = self.stem.unwrap_or(if self.image_side > 64 {
                    Stem::ImageNet
                } else {
                    Stem::Cifar
                });
                let conv_init = (self.init == InitScheme::Default)
                    .then_some(ResNetConfig::TORCHVISION_CONV_INIT);
                Model::ResNet(
                    ResNetConfig::new(depth, classes)
                        .with_stem(stem)
                        .with_in_channels(self.in_channels)
                        .with_rule(rule)
                        .with_initializer(init)
                        .with_conv_initializer(conv_init)
                        .init(device),
                )
            }
            Architecture::Vit => Model::Vit(
                VitConfig::new(self.in_channels, self.image_side, classes)
                    .with_shape(self.transformer)
                    .with_rule(rule)
                    .with_initializer(init)
                    .init(device),
            ),
        }
    }
}

/// Any model of the zoo.
// One value per run, moved rarely: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model {
    /// An [`Mlp`].
    Mlp(Mlp),
    /// A [`LeNet`].
    LeNet(LeNet),
    /// A [`CifarResNet`] (ResNet-20, ResNet-56).
    CifarResNet(CifarResNet),
    /// A [`ResNet`] (ResNet-18, ResNet-50).
    ResNet(ResNet),
    /// A [`Vit`].
    Vit(Vit),
}

impl ImageClassifier for Model {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Mlp(m) => m.forward(images),
            Self::LeNet(m) => m.forward(images),
            Self::CifarResNet(m) => m.forward(images),
            Self::ResNet(m) => m.forward(images),
            Self::Vit(m) => m.forward(images),
        }
    }
}

impl Model {
    /// Loads a torchvision ResNet state dict into this model
    /// ([`load_torchvision`](crate::torchvision::load_torchvision)): a ResNet-18/34/50/101/152
    /// only; other architectures are an error naming them.
    pub fn load_torchvision(
        self,
        state: &crate::torchvision::StateDict,
        classifier: bool,
        feedback: crate::torchvision::PretrainedFeedback,
    ) -> Result<Model, crate::torchvision::CheckpointError> {
        let kind = match &self {
            Model::ResNet(_) => None,
            Model::Mlp(_) => Some("mlp"),
            Model::LeNet(_) => Some("lenet"),
            Model::CifarResNet(_) => Some("a CIFAR ResNet (resnet20 / resnet56)"),
            Model::Vit(_) => Some("vit"),
        };
        match (self, kind) {
            (Model::ResNet(r), _) => {
                crate::torchvision::load_torchvision(r, state, classifier, feedback)
                    .map(Model::ResNet)
            }
            (_, kind) => Err(crate::torchvision::CheckpointError::Layout(format!(
                "torchvision weights fit ResNet-18/34/50/101/152 only, not {}",
                kind.unwrap_or("this model")
            ))),
        }
    }
}
