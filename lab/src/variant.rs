//! Kernel variants: a configuration of a base, built for an architecture
//! (see [`crate::config`] for what makes each).

use std::fmt;

use crate::arch::Arch;
use crate::base::Base;

/// A kernel variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Variant {
    pub base: Base,
    pub arch: Arch,
    /// The configuration: a `<name>.config` of `config/<base>/`.
    pub config: String,
}

impl Variant {
    pub fn new(base: Base, arch: Arch, config: &str) -> Self {
        Self { base, arch, config: config.to_string() }
    }

    /// The variant of `base` named `name` within it: `<arch>-<config>` for
    /// another architecture than the host's (`arm64-rust`), else the x86_64
    /// variant of that configuration.
    pub fn parse(base: Base, name: &str) -> Self {
        for a in Arch::ALL.into_iter().filter(|a| !a.is_host()) {
            if let Some(config) = name.strip_prefix(a.kernel_arch()).and_then(|r| r.strip_prefix('-')) {
                if !config.is_empty() {
                    return Self::new(base, a, config);
                }
            }
        }
        Self::new(base, Arch::X86_64, name)
    }

    /// The name within its base: `rust`, `arm64-rust`.
    pub fn name(&self) -> String {
        if self.arch.is_host() {
            self.config.clone()
        } else {
            format!("{}-{}", self.arch, self.config)
        }
    }

    /// Whether a plan's `only=` word selects this variant: its base
    /// (`6.12`), its configuration (`rust`, which also selects `arm64-rust`),
    /// its name (`arm64-rust`), or its name within its base (`6.12/rust`).
    pub fn matches(&self, word: &str) -> bool {
        word == self.base.name() || word == self.config || word == self.name() || word == self.to_string()
    }
}

impl fmt::Display for Variant {
    /// `<base>/<name>`: `mainline/c`, `6.12/arm64-rust`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_carry_their_architecture_and_base() {
        let v = Variant::parse(Base::Lts612, "arm64-rust");
        assert_eq!((v.arch, v.config.as_str(), v.name()), (Arch::Arm64, "rust", "arm64-rust".to_string()));
        assert_eq!(v.to_string(), "6.12/arm64-rust");
        let c = Variant::parse(Base::Mainline, "c");
        assert_eq!((c.arch, c.to_string()), (Arch::X86_64, "mainline/c".to_string()));
        // Not an architecture prefix: an x86_64 variant of that name.
        for odd in ["arm64", "arm64-", "arm64x-rust", "x86_64-rust"] {
            assert_eq!(Variant::parse(Base::Mainline, odd).arch, Arch::X86_64, "{odd}");
        }
    }

    #[test]
    fn plan_words_select_by_base_configuration_or_name() {
        let v = Variant::parse(Base::Lts612, "arm64-rust");
        for yes in ["6.12", "rust", "arm64-rust", "6.12/arm64-rust"] {
            assert!(v.matches(yes), "{yes}");
        }
        for no in ["mainline", "c", "arm64", "6.12/rust", "mainline/arm64-rust"] {
            assert!(!v.matches(no), "{no}");
        }
    }
}
