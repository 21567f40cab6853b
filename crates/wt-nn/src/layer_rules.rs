//! Mixed rules: a default rule for a model plus overrides by layer path.
//!
//! A pattern names layers by their dotted path in the model (`conv1`, `blocks.3.conv2`, `fc`):
//! it matches a path equal to it, a path it is a dotted prefix of (`blocks.0` matches
//! `blocks.0.conv1`), or, with `*` standing for any run of characters, a glob (`fc*`,
//! `blocks.*.conv1`). Where several patterns match a layer the longest wins; between patterns of
//! the same length, the one that sorts last (the rules are a `BTreeMap`, visited in key order).

use std::collections::BTreeMap;

use burn::module::Module;

use crate::hook::{FeedbackLayer, LayerMapper, map_layers};
use wt_core::Rule;

/// Rule overrides by layer-path pattern.
pub type LayerRules = BTreeMap<String, Rule>;

/// Whether `pattern` names the layer at `path` (see the module docs).
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    glob(pattern.as_bytes(), path.as_bytes())
        || path
            .strip_prefix(pattern)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The override for the layer at `path`: the longest matching pattern's rule.
pub fn rule_for(rules: &LayerRules, path: &str) -> Option<Rule> {
    rules
        .iter()
        .filter(|(pattern, _)| pattern_matches(pattern, path))
        .max_by_key(|(pattern, _)| pattern.len())
        .map(|(_, rule)| *rule)
}

pub use crate::alignment::layer_paths;

/// A pattern that names no layer: the message lists the layers there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedPattern {
    /// The pattern.
    pub pattern: String,
    /// The model's layer paths.
    pub layers: Vec<String>,
}

impl std::fmt::Display for UnmatchedPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "layer pattern `{}` names no layer of the model; its layers are {}",
            self.pattern,
            self.layers.join(", ")
        )
    }
}

impl std::error::Error for UnmatchedPattern {}

/// Puts every feedback layer for which `rule_at(path)` gives a rule on that rule
/// ([`FeedbackLinear::with_rule`](crate::FeedbackLinear::with_rule): `W` and `b` kept, what
/// the rule stores drawn afresh). Layers already on that rule are left exactly as they are,
/// so applying the same overrides twice changes nothing.
pub fn map_layer_rules<M: Module>(model: M, rule_at: impl Fn(&str) -> Option<Rule>) -> M {
    let paths = layer_paths(&model);
    map_rules_at(model, paths, rule_at)
}

/// [`map_layer_rules`] for the model's `paths`, already read.
pub(crate) fn map_rules_at<M: Module>(
    model: M,
    paths: Vec<String>,
    rule_at: impl Fn(&str) -> Option<Rule>,
) -> M {
    let rules: Vec<(String, Rule)> = paths
        .into_iter()
        .filter_map(|p| rule_at(&p).map(|r| (p, r)))
        .collect();
    if rules.is_empty() {
        return model;
    }
    map_layers(model, SetRules { rules }).0
}

/// Rule overrides as an operation: each layer named in `rules` moves to its rule.
struct SetRules {
    /// Layer path and its rule.
    rules: Vec<(String, Rule)>,
}

impl LayerMapper for SetRules {
    fn map<const D: usize>(&mut self, path: &str, layer: &mut dyn FeedbackLayer<D>) {
        match self.rules.iter().find(|(p, _)| p == path) {
            Some((_, rule)) if rule != layer.rule() => layer.set_rule(*rule),
            _ => {}
        }
    }
}

/// [`map_layer_rules`] with pattern overrides; every pattern must name a layer.
pub fn set_layer_rules<M: Module>(model: M, rules: &LayerRules) -> Result<M, UnmatchedPattern> {
    let layers = layer_paths(&model);
    if let Some(pattern) = rules
        .keys()
        .find(|pattern| !layers.iter().any(|path| pattern_matches(pattern, path)))
    {
        return Err(UnmatchedPattern {
            pattern: pattern.clone(),
            layers,
        });
    }
    Ok(map_rules_at(model, layers, |path| rule_for(rules, path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_paths_prefixes_and_globs() {
        assert!(pattern_matches("fc", "fc"));
        assert!(!pattern_matches("fc", "fc1"));
        assert!(pattern_matches("fc*", "fc1"));
        assert!(pattern_matches("blocks.0", "blocks.0.conv1"));
        assert!(!pattern_matches("blocks.1", "blocks.10.conv1"));
        assert!(pattern_matches("blocks.*.conv1", "blocks.10.conv1"));
        assert!(!pattern_matches("blocks.*.conv1", "blocks.10.conv2"));
        assert!(pattern_matches("*", "layers.2"));
        let rules: LayerRules = [
            ("blocks".to_string(), "fa".parse().unwrap()),
            ("blocks.0".to_string(), "bp".parse().unwrap()),
        ]
        .into();
        assert_eq!(rule_for(&rules, "blocks.0.conv1").unwrap().name(), "bp");
        assert_eq!(rule_for(&rules, "blocks.1.conv1").unwrap().name(), "fa");
        assert!(rule_for(&rules, "fc").is_none());
    }
}
