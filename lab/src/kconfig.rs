//! Kconfig fragments: merging them in order and checking that the kernel's
//! configuration took every value they ask for.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One symbol's value in a fragment or a `.config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `# CONFIG_FOO is not set`, or `CONFIG_FOO=n`.
    No,
    /// `CONFIG_FOO=<text>` (y, m, a number or a quoted string).
    Set(String),
}

impl Value {
    fn render(&self) -> &str {
        match self {
            Value::No => "n",
            Value::Set(s) => s,
        }
    }
}

/// Symbols in the order they were first set, with where each came from.
#[derive(Clone, Debug, Default)]
pub struct Fragment {
    /// Symbol name without the `CONFIG_` prefix, in first-seen order.
    order: Vec<String>,
    values: BTreeMap<String, (Value, String)>,
    /// `(symbol, old origin, new origin)` for every value a later fragment
    /// replaced.
    pub overrides: Vec<(String, String, String)>,
}

/// Parses one line of a fragment or `.config`.
pub fn parse_line(line: &str) -> Option<(String, Value)> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("# CONFIG_") {
        let name = rest.strip_suffix(" is not set")?;
        return Some((name.to_string(), Value::No));
    }
    let rest = line.strip_prefix("CONFIG_")?;
    let (name, value) = rest.split_once('=')?;
    let value = if value == "n" { Value::No } else { Value::Set(value.to_string()) };
    Some((name.to_string(), value))
}

impl Fragment {
    /// Adds the lines of `text`; `origin` names the file in messages.
    ///
    /// Lines that are neither blank, comments nor assignments are errors:
    /// a typo in a fragment must not be silently dropped.
    pub fn add(&mut self, text: &str, origin: &str) -> Result<()> {
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            let parsed = parse_line(t);
            if parsed.is_none() && !(t.is_empty() || t.starts_with('#')) {
                bail!(
                    "{origin}:{}: not a Kconfig assignment: {t:?} (expected CONFIG_FOO=y or # CONFIG_FOO is not set)",
                    n + 1
                );
            }
            let Some((name, value)) = parsed else { continue };
            let here = format!("{origin}:{}", n + 1);
            match self.values.get(&name) {
                None => self.order.push(name.clone()),
                Some((old, from)) if *old != value => {
                    self.overrides.push((name.clone(), from.clone(), here.clone()));
                }
                Some(_) => {}
            }
            self.values.insert(name, (value, here));
        }
        Ok(())
    }

    /// Merges files in order; later files override earlier ones.
    pub fn from_files(files: &[PathBuf]) -> Result<Self> {
        let mut f = Self::default();
        for path in files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config fragment {}", path.display()))?;
            f.add(&text, &path.display().to_string())?;
        }
        Ok(f)
    }

    /// The value asked for `name` (without `CONFIG_`).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).map(|(v, _)| v)
    }

    /// The merged fragment, one line per symbol, for `KCONFIG_ALLCONFIG`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for name in &self.order {
            let (v, _) = &self.values[name];
            match v {
                Value::No => writeln!(s, "# CONFIG_{name} is not set"),
                Value::Set(val) => writeln!(s, "CONFIG_{name}={val}"),
            }
            .expect("writing to a String cannot fail");
        }
        s
    }

    /// Symbols whose value in `dot_config` differs from what was asked.
    pub fn mismatches(&self, dot_config: &str) -> Vec<Mismatch> {
        let mut actual = BTreeMap::new();
        for line in dot_config.lines() {
            if let Some((n, v)) = parse_line(line) {
                actual.insert(n, v);
            }
        }
        let mut out = Vec::new();
        for name in &self.order {
            let (want, origin) = &self.values[name];
            let got = actual.get(name).cloned().unwrap_or(Value::No);
            if got != *want {
                out.push(Mismatch { symbol: name.clone(), want: want.clone(), got, origin: origin.clone() });
            }
        }
        out
    }
}

/// A symbol the configuration did not take.
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub symbol: String,
    pub want: Value,
    pub got: Value,
    pub origin: String,
}

/// Explains mismatches and what to do about them.
pub fn explain(mismatches: &[Mismatch], kbuild: &Path) -> String {
    let mut s = String::from("the kernel configuration did not take these values:\n");
    for m in mismatches {
        let _ = writeln!(s, "  CONFIG_{}: asked {} ({}), got {}", m.symbol, m.want.render(), m.origin, m.got.render());
    }
    let _ = write!(
        s,
        "A symbol is dropped when its dependencies are not met or it does not exist in this tree. \
         Look each one up with `make -C build/linux O={} menuconfig` (press / and type the name), \
         then fix the fragment in config/.",
        kbuild.display()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_fragments_override_earlier_ones() {
        let mut f = Fragment::default();
        f.add("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n", "base").unwrap();
        f.add("# comment\n\nCONFIG_B=y\nCONFIG_A=y\nCONFIG_D=64\n", "variant").unwrap();
        assert_eq!(f.render(), "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=\"x y\"\nCONFIG_D=64\n");
        assert_eq!(f.overrides, vec![("B".into(), "base:2".into(), "variant:3".into())]);
        assert_eq!(f.get("B"), Some(&Value::Set("y".into())));
    }

    #[test]
    fn n_and_not_set_are_the_same() {
        let mut f = Fragment::default();
        f.add("CONFIG_A=n\n", "a").unwrap();
        assert_eq!(f.render(), "# CONFIG_A is not set\n");
        assert!(f.mismatches("# CONFIG_A is not set\n").is_empty());
        // A symbol absent from .config is off.
        assert!(f.mismatches("CONFIG_B=y\n").is_empty());
    }

    #[test]
    fn mismatches_name_symbol_value_and_origin() {
        let mut f = Fragment::default();
        f.add("CONFIG_RUST=y\nCONFIG_KASAN=n\nCONFIG_NR_CPUS=2\n", "config/base.config").unwrap();
        let got = f.mismatches("# CONFIG_RUST is not set\nCONFIG_KASAN=y\nCONFIG_NR_CPUS=2\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].symbol, "RUST");
        assert_eq!(got[0].got, Value::No);
        assert_eq!(got[0].origin, "config/base.config:1");
        let text = explain(&got, Path::new("/b/k"));
        assert!(text.contains("CONFIG_RUST: asked y (config/base.config:1), got n"), "{text}");
        assert!(text.contains("CONFIG_KASAN: asked n"), "{text}");
        assert!(text.contains("menuconfig"), "{text}");
    }

    #[test]
    fn typos_are_errors() {
        let mut f = Fragment::default();
        let err = f.add("CONFIG_A=y\nCONIFG_B=y\n", "frag").unwrap_err().to_string();
        assert!(err.contains("frag:2"), "{err}");
    }
}
