//! One name table per enum: the name serde writes is the name the command line takes.
//!
//! Each enum implements [`Named`] with the list of its values and one `match` from value to
//! name; parsing (`FromStr`, the examples' `clap` value parsers) and error messages are
//! derived from those two, so a name is spelled in one place.

use std::fmt;

/// An enum whose values have one short name each, used by serde and on the command line.
pub trait Named: Sized {
    /// What the values are, for error messages (`"learning rule"`, `"model"`).
    const WHAT: &'static str;

    /// Every value, in the order `--help` lists them (rules with their default settings).
    fn all() -> Vec<Self>;

    /// The value's name (its serde name).
    fn name(&self) -> &'static str;

    /// Every name, in the order of [`all`](Self::all).
    fn names() -> Vec<&'static str> {
        Self::all().iter().map(Self::name).collect()
    }

    /// The value called `given`; case is ignored and `-` stands for `_` (`bm-sgd`,
    /// `fashion-mnist`).
    fn from_name(given: &str) -> Result<Self, UnknownName> {
        let wanted = given.trim().to_ascii_lowercase().replace('-', "_");
        Self::all()
            .into_iter()
            .find(|v| v.name() == wanted)
            .ok_or_else(|| UnknownName {
                what: Self::WHAT,
                given: given.to_string(),
                expected: Self::names(),
            })
    }
}

/// A name that is not in an enum's [`Named`] table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was being named (`"learning rule"`).
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The names that exist.
    pub expected: Vec<&'static str>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} `{}`: expected one of {}",
            self.what,
            self.given,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownName {}

/// Implements `FromStr` (through [`Named::from_name`]) and `Display` (the name) for
/// [`Named`] enums.
#[macro_export]
macro_rules! named_str {
    ($($t:ty),+ $(,)?) => {$(
        impl ::std::str::FromStr for $t {
            type Err = $crate::named::UnknownName;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                <$t as $crate::named::Named>::from_name(s)
            }
        }
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(<$t as $crate::named::Named>::name(self))
            }
        }
    )+};
}

/// Checks a [`Named`] table against serde: every value's serde name (`serde_name`, e.g. the
/// JSON string or tag serde writes) is its name, and every name (also upper-case, with `-`)
/// parses back to the value.
#[cfg(any(test, feature = "test-util"))]
pub fn assert_table<T>(serde_name: impl Fn(&T) -> String)
where
    T: Named + PartialEq + fmt::Debug,
{
    for v in T::all() {
        assert_eq!(serde_name(&v), v.name(), "{v:?}");
        assert_eq!(T::from_name(v.name()).unwrap(), v);
        let shouted = v.name().to_uppercase().replace('_', "-");
        assert_eq!(T::from_name(&shouted).unwrap(), v);
    }
    let err = T::from_name("no-such-name").unwrap_err().to_string();
    assert!(
        err.contains(T::WHAT) && err.contains(T::names()[0]),
        "{err}"
    );
}
