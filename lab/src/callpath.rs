//! Proof, read from the built objects, that the C fault path calls the
//! Rust implementation when the series' option is on, and the C one when
//! it is off.
//!
//! `config/call-path` names the option and, for each symbol, the object
//! that must define it (the Rust one) and the C objects that must call it.
//! With the option on, that object must be linked, define the symbol, and
//! the callers must have relocations to it; with it off, the object must
//! not be linked (the C definition serves).

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};
use std::path::Path;

/// One symbol to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub symbol: String,
    pub defined_by: String,
    pub callers: Vec<String>,
}

/// The parsed `config/call-path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPath {
    /// The Kconfig option (without `CONFIG_`) that selects the Rust code.
    pub option: String,
    pub expects: Vec<Expect>,
}

impl CallPath {
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut option = None;
        let mut expects = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [w, ..] if w.starts_with('#') => {}
                ["option", name] => option = Some(name.to_string()),
                [symbol, defined_by, callers @ ..] if !callers.is_empty() => expects.push(Expect {
                    symbol: symbol.to_string(),
                    defined_by: defined_by.to_string(),
                    callers: callers.iter().map(|s| s.to_string()).collect(),
                }),
                _ => bail!("{origin}:{}: expected `option NAME` or `symbol object caller...`", n + 1),
            }
        }
        let option = option.with_context(|| format!("{origin}: no `option NAME` line"))?;
        Ok(Self { option, expects })
    }

    /// The expectations for a kernel of `src_arch` (the folder under
    /// arch/): `$SRCARCH` in an object's path becomes it, as in kbuild.
    pub fn for_arch(mut self, src_arch: &str) -> Self {
        let subst = |p: &mut String| *p = p.replace("$SRCARCH", src_arch);
        for e in &mut self.expects {
            subst(&mut e.defined_by);
            e.callers.iter_mut().for_each(subst);
        }
        self
    }
}

/// Whether `obj` defines `symbol` as a global.
fn defines(obj: &object::File, symbol: &str) -> bool {
    obj.symbols().any(|s| s.is_definition() && s.is_global() && s.name() == Ok(symbol))
}

/// How many relocations of `obj` refer to `symbol`.
fn references(obj: &object::File, symbol: &str) -> usize {
    let mut n = 0;
    for section in obj.sections() {
        for (_, rel) in section.relocations() {
            if let RelocationTarget::Symbol(idx) = rel.target() {
                if obj.symbol_by_index(idx).is_ok_and(|s| s.name() == Ok(symbol)) {
                    n += 1;
                }
            }
        }
    }
    n
}

fn load(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Whether kbuild linked `object` (a path relative to the build folder)
/// into vmlinux: it is a member of its folder's thin `built-in.a`, which
/// kbuild rewrites on every build (a stale object file does not count).
fn linked(kbuild: &Path, object: &str) -> Result<bool> {
    let rel = Path::new(object);
    let archive = kbuild.join(rel.parent().unwrap_or(Path::new(""))).join("built-in.a");
    let data = load(&archive)?;
    let ar = object::read::archive::ArchiveFile::parse(&*data)
        .with_context(|| format!("cannot parse {}", archive.display()))?;
    // Members are named relative to the archive's folder.
    let want = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    for member in ar.members() {
        let member = member?;
        if std::str::from_utf8(member.name()).unwrap_or("").trim_end_matches('/') == want {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Checks one built kernel; returns what was found, or what is wrong.
pub fn check(kbuild: &Path, cp: &CallPath) -> Result<String> {
    let config = std::fs::read_to_string(kbuild.join(".config"))?;
    let on = config.lines().any(|l| l == format!("CONFIG_{}=y", cp.option));
    let vmlinux_data = load(&kbuild.join("vmlinux"))?;
    let vmlinux = object::File::parse(&*vmlinux_data).context("cannot parse vmlinux")?;
    let mut problems = Vec::new();
    let mut calls = 0;
    for e in &cp.expects {
        let is_linked = linked(kbuild, &e.defined_by)?;
        if !on {
            // The C definition (a real function or a static inline) is used.
            if is_linked {
                problems.push(format!("{} is linked although {} is off", e.defined_by, cp.option));
            }
            continue;
        }
        if !is_linked {
            problems.push(format!("{} is not linked into vmlinux", e.defined_by));
        }
        if !defines(&vmlinux, &e.symbol) {
            problems.push(format!("vmlinux does not define {} globally", e.symbol));
        }
        let def_data = load(&kbuild.join(&e.defined_by))?;
        let def = object::File::parse(&*def_data)?;
        if !defines(&def, &e.symbol) {
            problems.push(format!("{} does not define {}", e.defined_by, e.symbol));
        }
        for c in &e.callers {
            let data = load(&kbuild.join(c))?;
            let n = references(&object::File::parse(&*data)?, &e.symbol);
            if n == 0 {
                problems.push(format!("{c} does not call {}", e.symbol));
            }
            calls += n;
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(if on {
        format!("{} Rust symbols in vmlinux, {calls} calls from C", cp.expects.len())
    } else {
        format!("{} off: the Rust objects are not linked", cp.option)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let cp = CallPath::parse("# c\noption X\n\nfoo mm/a.o mm/b.o fs/c.o\n", "f").unwrap();
        assert_eq!(cp.option, "X");
        assert_eq!(cp.expects[0].callers, ["mm/b.o", "fs/c.o"]);
        assert!(CallPath::parse("foo mm/a.o\noption X\n", "f").unwrap_err().to_string().contains("f:1"));
        assert!(CallPath::parse("foo mm/a.o b.o\n", "f").is_err());
    }

    #[test]
    fn objects_under_arch_follow_the_kernel_built() {
        let cp = CallPath::parse("option X\nfoo mm/a.o mm/b.o arch/$SRCARCH/mm/fault.o\n", "f").unwrap();
        assert_eq!(cp.clone().for_arch("arm64").expects[0].callers, ["mm/b.o", "arch/arm64/mm/fault.o"]);
        assert_eq!(cp.for_arch("x86").expects[0].callers, ["mm/b.o", "arch/x86/mm/fault.o"]);
    }

    /// A real ELF object from the C compiler: a global definition, an
    /// undefined callee and its call relocations.
    #[test]
    fn reads_symbols_and_relocations_of_real_objects() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.c");
        std::fs::write(&src, "void callee(void);\nvoid caller(void) { callee(); callee(); }\n").unwrap();
        let obj = dir.path().join("a.o");
        let st = std::process::Command::new("cc")
            .args(["-c", "-O2", "-fno-pic", "-o"])
            .arg(&obj)
            .arg(&src)
            .status()
            .unwrap();
        assert!(st.success());
        let data = std::fs::read(&obj).unwrap();
        let f = object::File::parse(&*data).unwrap();
        assert!(defines(&f, "caller"));
        assert!(!defines(&f, "callee"));
        assert_eq!(references(&f, "callee"), 2);
        assert_eq!(references(&f, "caller"), 0);
    }
}
