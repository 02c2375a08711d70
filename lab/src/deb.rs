//! Debian packages of another architecture, for a guest's userland.
//!
//! An arm64 guest runs Debian's arm64 `busybox-static` and `bash-static`.
//! They cannot be installed next to the build root's amd64 ones, so the
//! lab downloads the .deb files with the root's apt-get (the root knows
//! arm64 as a foreign architecture) into `build/userland/<arch>/debs` and
//! extracts them with dpkg-deb.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::cmd;
use crate::layout::Layout;
use crate::progress::Progress;
use crate::root::Root;

/// A package of the guest's userland and the program in it.
#[derive(Clone, Copy, Debug)]
pub struct Program {
    pub package: &'static str,
    /// The program's path in the package (without a leading `./`).
    pub path: &'static str,
}

pub const BUSYBOX: Program = Program { package: "busybox-static", path: "usr/bin/busybox" };
pub const BASH: Program = Program { package: "bash-static", path: "usr/bin/bash-static" };

/// A .deb as `apt-get download --print-uris` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebFile {
    pub uri: String,
    /// The name apt-get gives the downloaded file:
    /// `<package>_<version, ':' as %3a>_<arch>.deb`.
    pub file_name: String,
    pub size: u64,
}

impl DebFile {
    /// The package version, from the file name.
    pub fn version(&self) -> Option<String> {
        let stem = self.file_name.strip_suffix(".deb")?;
        let mut parts = stem.split('_');
        let (_, version, _) = (parts.next()?, parts.next()?, parts.next()?);
        Some(version.replace("%3a", ":"))
    }
}

/// The line of `apt-get download --print-uris <package>:<arch>` that names
/// that package's .deb for that architecture:
/// `'URI' FILE SIZE HASH`.
pub fn parse_print_uris(out: &str, package: &str, deb_arch: &str) -> Result<DebFile> {
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [uri, file, size, ..] = words.as_slice() else { continue };
        let ok = file.starts_with(&format!("{package}_")) && file.ends_with(&format!("_{deb_arch}.deb"));
        if let (true, Ok(size)) = (ok, size.parse()) {
            return Ok(DebFile { uri: uri.trim_matches('\'').to_string(), file_name: file.to_string(), size });
        }
    }
    bail!("apt-get names no {package} .deb for {deb_arch} in:\n{}", out.trim())
}

/// A version without Debian's binNMU suffix (`+b1`): binary rebuilds of
/// one source version, which may differ between architectures.
pub fn source_version(version: &str) -> &str {
    match version.rsplit_once("+b") {
        Some((head, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => head,
        _ => version,
    }
}

/// What apt in the root would download for `package:<deb_arch>`.
fn locate(root: &Root, package: &str, deb_arch: &str) -> Result<DebFile> {
    let spec = format!("{package}:{deb_arch}");
    let out = cmd::output(root.command("apt-get").args(["download", "--print-uris", &spec])).with_context(|| {
        format!(
            "apt in the build root cannot find {spec}: its lists may be old, or it lacks {deb_arch} as a foreign \
             architecture; remake it with `lab setup --refresh`"
        )
    })?;
    parse_print_uris(&out, package, deb_arch)
}

/// The .deb of `package` for `arch` in `build/userland/<arch>/debs`,
/// downloaded with the root's apt-get unless the same file is there
/// already.
pub fn fetch(layout: &Layout, root: &Root, arch: Arch, package: &str) -> Result<(PathBuf, DebFile)> {
    let deb_arch = arch.deb_arch();
    let log = layout.logs().join(format!("debs-{arch}.log"));
    let want = locate(root, package, deb_arch)?;
    let dir = layout.userland(arch).join("debs");
    fs::create_dir_all(&dir)?;
    let path = dir.join(&want.file_name);
    if fs::metadata(&path).is_ok_and(|m| m.len() == want.size) {
        return Ok((path, want));
    }
    let pb = Progress::spinner(&format!("{package}:{deb_arch}"), &format!("downloading {}", want.file_name));
    let mut c = root.command("apt-get");
    // apt-get download writes to the current folder (and verifies the hash).
    c.current_dir(&dir).args(["download", &format!("{package}:{deb_arch}")]);
    let res = cmd::run_logged(&mut c, &log, |_| {});
    pb.finish();
    res.with_context(|| format!("downloading {package}:{deb_arch} failed"))?;
    if !path.is_file() {
        bail!("apt-get download did not write {}: see {}", path.display(), log.display());
    }
    Ok((path, want))
}

/// A guest's static busybox and bash.
#[derive(Clone, Debug)]
pub struct Userland {
    pub busybox: PathBuf,
    pub bash: PathBuf,
}

/// Fails unless the guest's busybox is the root's source version: the
/// guest's applet links come from the root's `busybox --list`, since the
/// guest's busybox cannot run here.
pub fn check_same_busybox(host: &str, guest: &str, deb_arch: &str) -> Result<()> {
    if source_version(host) != source_version(guest) {
        bail!(
            "the {deb_arch} guest's busybox-static is {guest} but the build root's is {host}: the lab lists the \
             guest's applets with the root's busybox, so they must be one version. Remake the root with \
             `lab setup --refresh`."
        );
    }
    Ok(())
}

/// The busybox and bash of an `arch` guest from Debian's packages,
/// extracted under `build/userland/<arch>/root`.
pub fn userland(layout: &Layout, root: &Root, arch: Arch) -> Result<Userland> {
    let (deb, file) = fetch(layout, root, arch, BUSYBOX.package)?;
    let host = root.package_version(BUSYBOX.package)?;
    check_same_busybox(&host, &file.version().unwrap_or_default(), arch.deb_arch())?;
    let busybox = extract(layout, root, arch, &deb, BUSYBOX)?;
    let (deb, _) = fetch(layout, root, arch, BASH.package)?;
    let bash = extract(layout, root, arch, &deb, BASH)?;
    Ok(Userland { busybox, bash })
}

/// Extracts `deb` with the root's dpkg-deb under build/userland/<arch>/root
/// and returns the path of `program` there.
fn extract(layout: &Layout, root: &Root, arch: Arch, deb: &Path, program: Program) -> Result<PathBuf> {
    let dir = layout.userland(arch).join("root");
    fs::create_dir_all(&dir)?;
    cmd::output(root.command("dpkg-deb").arg("-x").arg(deb).arg(&dir))
        .with_context(|| format!("dpkg-deb cannot extract {}", deb.display()))?;
    let dest = dir.join(program.path);
    if !dest.is_file() {
        bail!("{} has no {}: see `dpkg-deb -c {}`", deb.display(), program.path, deb.display());
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deb_of_the_right_package_and_architecture_is_chosen() {
        let out = "'http://deb.debian.org/debian/pool/main/b/busybox/busybox_1%3a1.35.0-4+b1_arm64.deb' busybox_1%3a1.35.0-4+b1_arm64.deb 1 SHA256:00\n\
                   'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1%3a1.35.0-4+b1_amd64.deb' busybox-static_1%3a1.35.0-4+b1_amd64.deb 2 SHA256:11\n\
                   'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb' busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb 822236 SHA256:22\n";
        let d = parse_print_uris(out, "busybox-static", "arm64").unwrap();
        assert_eq!(d.file_name, "busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb");
        assert_eq!(d.size, 822236);
        assert!(d.uri.starts_with("http://") && !d.uri.contains('\''));
        assert_eq!(d.version().unwrap(), "1:1.35.0-4+deb12u1+b1");
        assert!(parse_print_uris(out, "bash-static", "arm64").unwrap_err().to_string().contains("no bash-static"));
    }

    #[test]
    fn binary_rebuilds_of_one_source_version_are_the_same_busybox() {
        assert_eq!(source_version("1:1.35.0-4+deb12u1+b1"), "1:1.35.0-4+deb12u1");
        assert_eq!(source_version("1:1.35.0-4+deb12u1"), "1:1.35.0-4+deb12u1");
        assert_eq!(source_version("1.0+bx"), "1.0+bx");
        check_same_busybox("1:1.35.0-4+deb12u1+b1", "1:1.35.0-4+deb12u1+b2", "arm64").unwrap();
        let e = check_same_busybox("1:1.35.0-4+deb12u1", "1:1.36.1-9", "arm64").unwrap_err().to_string();
        assert!(e.contains("1:1.36.1-9") && e.contains("lab setup --refresh"), "{e}");
    }
}
