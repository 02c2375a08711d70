//! The guest's initramfs, written by the kernel's own usr/gen_init_cpio.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::cmd;
use crate::deb::{self, Userland};
use crate::layout::Layout;
use crate::lock::FolderLock;
use crate::plan::Plan;
use crate::setup::Toolchain;
use crate::variant::Variant;

/// The gen_init_cpio list for a guest: busybox and its applets, bash, the
/// init script, the plan and the test programs.
pub fn spec(busybox: &Path, applets: &[String], bash: &Path, init: &Path, plan: &Path, programs: &[PathBuf]) -> String {
    let mut s = String::new();
    for d in ["/bin", "/dev", "/proc", "/sys", "/tmp", "/lab", "/lab/bin", "/etc"] {
        let _ = writeln!(s, "dir {d} 0755 0 0");
    }
    let _ = writeln!(s, "nod /dev/console 0600 0 0 c 5 1");
    let _ = writeln!(s, "nod /dev/null 0666 0 0 c 1 3");
    let _ = writeln!(s, "file /bin/busybox {} 0755 0 0", busybox.display());
    for a in applets {
        // `busybox --list` names busybox itself: a link over it breaks /init.
        if a != "busybox" && !a.contains('/') && a != "bash" {
            let _ = writeln!(s, "slink /bin/{a} busybox 0777 0 0");
        }
    }
    let _ = writeln!(s, "file /bin/bash {} 0755 0 0", bash.display());
    let _ = writeln!(s, "file /init {} 0755 0 0", init.display());
    let _ = writeln!(s, "file /lab/plan {} 0644 0 0", plan.display());
    for p in programs {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(s, "file /lab/bin/{name} {} 0755 0 0", p.display());
    }
    s
}

/// The busybox and bash of an `arch` guest, as paths gen_init_cpio reads
/// in the build root: the root's own static ones on x86_64, Debian's
/// packages of them for another architecture.
pub fn userland(layout: &Layout, tc: &Toolchain, arch: Arch) -> Result<Userland> {
    if arch.is_host() {
        return Ok(Userland { busybox: tc.busybox.clone(), bash: tc.bash_static.clone() });
    }
    deb::userland(layout, &tc.root, arch)
}

/// Builds the variant's initramfs from the plan; returns its path.
pub fn build(layout: &Layout, tc: &Toolchain, v: &Variant, plan: &Plan) -> Result<PathBuf> {
    let gen = layout.kbuild(v).join("usr/gen_init_cpio");
    if !gen.is_file() {
        bail!("{} is missing: build the {v} kernel first (`lab build --base {} {}`)", gen.display(), v.base, v.name());
    }
    let user = userland(layout, tc, v.arch)?;
    // The root's busybox names the applets: the same version as the
    // guest's (deb::check_same_busybox), and it runs there.
    let applets: Vec<String> =
        cmd::output(tc.command(&tc.busybox).arg("--list"))?.lines().map(str::to_string).collect();
    let work = layout.base_dir(v.base).join("initramfs").join(v.name());
    fs::create_dir_all(&work)?;
    let plan_file = work.join("plan");
    fs::write(&plan_file, plan.guest_lines())?;
    let init = layout.guest().join("init");
    if !init.is_file() {
        bail!("{} is missing: the guest needs its init script", init.display());
    }
    // Another lab process may be building these programs (make test builds
    // mainline's debug kernel, and then its programs, while the other
    // guests boot): pack them whole.
    let _lock = FolderLock::acquire(&layout.selftests(v.base, v.arch), &format!("packing the {v} initramfs"))?;
    let mut programs = Vec::new();
    for n in plan.selftests() {
        if let Some(opt) = crate::plan::optional(&n) {
            let p = layout.selftests(v.base, v.arch).join(opt);
            if p.is_file() {
                programs.push(p);
            }
            continue;
        }
        let p = layout.selftests(v.base, v.arch).join(&n);
        if !p.is_file() {
            bail!(
                "test program {} is missing: the plan needs {n}; build it with `lab build --base {} {}` (it comes \
                 from tools/testing/selftests/mm or guest/programs)",
                p.display(),
                v.base,
                v.name()
            );
        }
        programs.push(p);
    }
    // The guest's own scripts (guest/bin: with-swap), which plan lines call.
    let mut scripts: Vec<PathBuf> = fs::read_dir(layout.guest().join("bin"))
        .with_context(|| format!("cannot read {}", layout.guest().join("bin").display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    scripts.sort();
    programs.extend(scripts);
    let list = work.join("list");
    fs::write(&list, spec(&user.busybox, &applets, &user.bash, &init, &plan_file, &programs))?;
    let out = layout.initramfs(v);
    // gen_init_cpio was built in the root, against its C library.
    let cpio = tc
        .command(&gen)
        .args(["-t", "0"])
        .arg(&list)
        .output()
        .with_context(|| format!("cannot run {}", gen.display()))?;
    if !cpio.status.success() {
        bail!("gen_init_cpio failed on {}:\n{}", list.display(), String::from_utf8_lossy(&cpio.stderr));
    }
    fs::write(&out, &cpio.stdout)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_is_never_linked_over() {
        let s = spec(
            Path::new("/bin/busybox"),
            &["sh".into(), "busybox".into(), "ls".into()],
            Path::new("/bin/bash-static"),
            Path::new("/r/guest/init"),
            Path::new("/b/plan"),
            &[PathBuf::from("/b/selftests/cow")],
        );
        assert!(s.contains("slink /bin/sh busybox 0777 0 0\n"));
        assert!(!s.contains("slink /bin/busybox"));
        assert!(s.contains("file /bin/busybox /bin/busybox 0755 0 0\n"));
        assert!(s.contains("file /lab/bin/cow /b/selftests/cow 0755 0 0\n"));
        assert!(s.contains("file /init /r/guest/init 0755 0 0\n"));
    }
}
