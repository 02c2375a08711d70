//! Kernel reports with file and line: a serial log that holds a kernel
//! report goes through the tree's scripts/decode_stacktrace.sh, which gives
//! each frame of its stack traces (`do_swap_page+0x1c/0x5e0`) the source
//! file and line (addr2line on vmlinux), where the kernel has the line
//! tables for it (`CONFIG_DEBUG_INFO`: config/debug.config sets it, reduced).

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::Path;

use crate::base::Base;
use crate::root::Root;
use crate::setup::llvm_of;

/// Writes `log` to `out` with the frames of its stack traces decoded by
/// `src`'s scripts/decode_stacktrace.sh against `vmlinux` (built from `src`,
/// whose path the script strips from file names), in the build root with
/// the base's LLVM tools (llvm-addr2line, llvm-nm, llvm-readelf: they read
/// every architecture the lab builds).
pub fn decode(root: &Root, base: Base, src: &Path, vmlinux: &Path, log: &Path, out: &Path) -> Result<()> {
    let script = src.join("scripts/decode_stacktrace.sh");
    let mut c = root.command("bash");
    c.arg(&script).arg(vmlinux).arg(src);
    c.env("LLVM", format!("-{}", llvm_of(base)));
    c.stdin(File::open(log).with_context(|| format!("cannot read {}", log.display()))?);
    c.stdout(File::create(out).with_context(|| format!("cannot write {}", out.display()))?);
    let o = c.output().with_context(|| format!("cannot run {}", script.display()))?;
    if !o.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            script.display(),
            vmlinux.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).lines().take(3).collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd;
    use crate::testing::{in_root, InRoot};
    use std::fs;

    #[test]
    fn frames_get_their_file_and_line() {
        // The build root's tools on a small program with line tables in
        // place of vmlinux, and the script of a tree the lab keeps.
        let InRoot { layout, root, scratch } = in_root("usr/bin");
        let src = layout.tree(Base::Mainline);
        assert!(src.join("scripts/decode_stacktrace.sh").is_file(), "no mainline tree: run `lab tree` first");
        let d = scratch.path();
        fs::write(d.join("t.c"), "int f(int x)\n{\n\treturn x * 3 + 1;\n}\n\nint main(void)\n{\n\treturn f(1);\n}\n")
            .unwrap();
        // The script as a tree has it, the program's folder as that tree.
        fs::create_dir(d.join("scripts")).unwrap();
        fs::copy(src.join("scripts/decode_stacktrace.sh"), d.join("scripts/decode_stacktrace.sh")).unwrap();
        let clang = format!("clang-{}", llvm_of(Base::Mainline));
        cmd::output(root.command(&clang).current_dir(d).args(["-g", "-O0", "-o", "vmlinux", "t.c"])).unwrap();
        fs::write(
            d.join("serial.log"),
            "[   12.5] WARNING: CPU: 1 PID: 80 at t.c:3 f+0x4/0x20\n[   12.5] Call Trace:\n[   12.5]  main+0x12/0x30\n",
        )
        .unwrap();
        decode(&root, Base::Mainline, d, &d.join("vmlinux"), &d.join("serial.log"), &d.join("decoded.log")).unwrap();
        let text = fs::read_to_string(d.join("decoded.log")).unwrap();
        // The frame, with the file relative to the tree; other lines as
        // they were.
        assert!(text.ends_with("\n[   12.5]  main (t.c:8)\n"), "{text}");
        assert!(text.contains("\n[   12.5] Call Trace:\n"), "{text}");
        assert_eq!(text.lines().count(), 3, "{text}");
    }
}
