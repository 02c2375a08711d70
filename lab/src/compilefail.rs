//! Programs that must not compile against the kernel crate.
//!
//! The safety claims of `kernel::mm::fault` are type rules ("no VMA after
//! the lock is released", "the lock stays on its task", "no result that
//! misstates the lock"). The lab compiles each file of
//! `checks/compile-fail/<base>/` the way kbuild compiles mm/fault_lock.rs,
//! and expects the error code its `expect:` line names; a control copy
//! with the offending lines replaced must compile.

use anyhow::{bail, Context, Result};
use std::path::Path;

use crate::root::Root;

/// The marker of a line the control copy replaces.
const MARK: &str = "// compile-fail: ";

/// The rustc command kbuild used for `object` (from its `.cmd` file),
/// without the steps that follow it.
pub fn rustc_command(kbuild: &Path, object: &str) -> Result<String> {
    let rel = Path::new(object);
    let cmd_file = kbuild
        .join(rel.parent().unwrap_or(Path::new("")))
        .join(format!(".{}.cmd", rel.file_name().and_then(|n| n.to_str()).unwrap_or("")));
    let text = std::fs::read_to_string(&cmd_file).with_context(|| {
        format!("cannot read {}: build the kernel with the series' Rust option first", cmd_file.display())
    })?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("savedcmd_{object} := ")))
        .with_context(|| format!("{} holds no command for {object}", cmd_file.display()))?;
    // The rustc step ends at the first `;`: objtool follows it, and with
    // CONFIG_RUST_INLINE_HELPERS llvm-link and clang (`...rs;llvm-link-22 ...`).
    Ok(line.split(';').next().unwrap_or(line).trim().to_string())
}

/// The control copy: marked lines replaced by their marker's code.
pub fn control(source: &str) -> String {
    source
        .lines()
        .map(|l| match l.split_once(MARK) {
            Some((code, replacement)) => {
                let indent = &code[..code.len() - code.trim_start().len()];
                format!("{indent}{}\n", replacement.trim())
            }
            None => format!("{l}\n"),
        })
        .collect()
}

/// The error code a file expects (`expect: E0505`).
pub fn expected(source: &str) -> Option<String> {
    source.lines().find_map(|l| l.split_once("expect: ").map(|(_, c)| c.trim().to_string()))
}

/// Rewrites kbuild's command for `template_src` to compile `src` as crate
/// `name` into `out`.
fn retarget(cmd: &str, template_src: &str, src: &Path, name: &str, out: &Path) -> Result<String> {
    let mut words: Vec<String> = Vec::new();
    let mut saw_src = false;
    let mut it = cmd.split(' ');
    while let Some(w) = it.next() {
        if w == template_src {
            saw_src = true;
            words.push(src.display().to_string());
        } else if w == "--out-dir" {
            // Its value is the next word.
            it.next();
        } else if !(w.starts_with("--emit=") || w.starts_with("RUST_MODFILE=") || w.starts_with("--out-dir=")) {
            words.push(w.to_string());
        }
    }
    if !saw_src {
        bail!("kbuild's command does not name {template_src}");
    }
    let mut s = words.join(" ");
    s = s.replacen("--crate-name fault_lock", &format!("--crate-name {name}"), 1);
    s.push_str(&format!(" --out-dir {} --emit=obj={}/{name}.o", out.display(), out.display()));
    Ok(s)
}

/// Compiles every file of `dir`; returns a line per file, or what failed.
pub fn check(root: &Root, kbuild: &Path, tree: &Path, dir: &Path, work: &Path) -> Result<Vec<String>> {
    let object = "mm/fault_lock.o";
    let cmd = rustc_command(kbuild, object)?;
    let template_src = tree.join("mm/fault_lock.rs").display().to_string();
    std::fs::create_dir_all(work)?;
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for f in &files {
        let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("x").replace('-', "_");
        let source = std::fs::read_to_string(f)?;
        let want = expected(&source).with_context(|| format!("{} has no `expect: E....` line", f.display()))?;
        let run = |src: &Path, crate_name: &str| -> Result<(bool, String)> {
            let sh = retarget(&cmd, &template_src, src, crate_name, work)?;
            // kbuild exports RUSTC_BOOTSTRAP=1 for its unstable flags; its
            // rustc is the build root's.
            let o = root.command("sh").arg("-c").arg(&sh).current_dir(kbuild).env("RUSTC_BOOTSTRAP", "1").output()?;
            Ok((o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned()))
        };
        let (ok, stderr) = run(f, &format!("cf_{name}"))?;
        let ctl_path = work.join(format!("{name}_control.rs"));
        std::fs::write(&ctl_path, control(&source))?;
        let (ctl_ok, ctl_err) = run(&ctl_path, &format!("cf_{name}_control"))?;
        let file = f.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        if ok {
            problems.push(format!("{file} compiled, but must fail with {want}"));
        } else if !stderr.contains(&format!("error[{want}]")) {
            let first = stderr.lines().find(|l| l.starts_with("error")).unwrap_or("no error line");
            problems.push(format!("{file} failed, but not with {want}: {first}"));
        } else if !ctl_ok {
            let first = ctl_err.lines().find(|l| l.starts_with("error")).unwrap_or("no error line");
            problems.push(format!("{file}: the control copy does not compile either: {first}"));
        } else {
            out.push(format!("{file}: {want}"));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_replaces_marked_lines() {
        let src = "fn f() -> usize {\n    let a = 1;\n    a + b() // compile-fail: a\n}\n// expect: E0505\n";
        assert_eq!(control(src), "fn f() -> usize {\n    let a = 1;\n    a\n}\n// expect: E0505\n");
        assert_eq!(expected(src).as_deref(), Some("E0505"));
    }

    #[test]
    fn the_rustc_step_is_cut_from_what_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mm")).unwrap();
        // With CONFIG_RUST_INLINE_HELPERS (no space before llvm-link's `;`).
        let saved = "savedcmd_mm/fault_lock.o := OBJTREE=/k clippy-driver --emit=llvm-bc=mm/fault_lock.bc \
                     /t/mm/fault_lock.rs;llvm-link-22 --internalize mm/fault_lock.bc -o mm/fault_lock.m.bc; \
                     clang-22 -c mm/fault_lock.m.bc ; ./tools/objtool/objtool mm/fault_lock.o\n";
        std::fs::write(dir.path().join("mm/.fault_lock.o.cmd"), saved).unwrap();
        assert_eq!(
            rustc_command(dir.path(), "mm/fault_lock.o").unwrap(),
            "OBJTREE=/k clippy-driver --emit=llvm-bc=mm/fault_lock.bc /t/mm/fault_lock.rs"
        );
    }

    #[test]
    fn kbuilds_command_is_retargeted() {
        let cmd = "RUST_MODFILE=mm/fault_lock /usr/bin/rustc --edition=2021 --extern kernel --crate-name fault_lock \
                   --out-dir mm/ --emit=dep-info=mm/.fault_lock.o.d --emit=obj=mm/fault_lock.o /t/mm/fault_lock.rs";
        let s = retarget(cmd, "/t/mm/fault_lock.rs", Path::new("/c/x.rs"), "cf_x", Path::new("/w")).unwrap();
        assert_eq!(
            s,
            "/usr/bin/rustc --edition=2021 --extern kernel --crate-name cf_x /c/x.rs --out-dir /w --emit=obj=/w/cf_x.o"
        );
    }
}
