//! Debian packages of another architecture, for a guest's userland.
//!
//! An arm64 guest runs Debian's arm64 `busybox-static` and `bash-static`.
//! They cannot be installed next to the host's amd64 ones, so the lab
//! fetches the .deb files with apt-get (arm64 added to dpkg's foreign
//! architectures, which needs root once) into build/<arch>/debs and reads
//! the programs out of them (ar, then the data tarball).

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::Arch;
use crate::cmd;
use crate::layout::Layout;
use crate::progress::Progress;
use crate::setup::{apt_update, is_root};

/// A package of the guest's userland and the program in it.
#[derive(Clone, Copy, Debug)]
pub struct Program {
    pub package: &'static str,
    /// The program's path in the package (without a leading `./`).
    pub path: &'static str,
}

pub const BUSYBOX: Program = Program { package: "busybox-static", path: "bin/busybox" };
pub const BASH: Program = Program { package: "bash-static", path: "bin/bash-static" };

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

/// Reads `path` (e.g. `bin/busybox`) out of a .deb's data tarball.
pub fn read_member(deb: &Path, path: &str) -> Result<Vec<u8>> {
    let file = fs::File::open(deb).with_context(|| format!("cannot open {}", deb.display()))?;
    let mut ar = ar::Archive::new(file);
    while let Some(entry) = ar.next_entry() {
        let entry = entry.with_context(|| format!("{} is not a .deb (ar archive)", deb.display()))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).trim_end_matches('/').to_string();
        let Some(compression) = name.strip_prefix("data.tar") else { continue };
        let tarball: Box<dyn Read> = match compression {
            "" => Box::new(entry),
            ".xz" => Box::new(xz2::read::XzDecoder::new(entry)),
            other => bail!("{}: data.tar{other} is a compression the lab does not read (xz or none)", deb.display()),
        };
        return find_in_tar(tarball, path).with_context(|| format!("reading {}", deb.display()));
    }
    bail!("{} has no data.tar member: not a Debian binary package", deb.display())
}

/// The contents of `path` in a tar stream; the error lists what it holds.
fn find_in_tar(tarball: impl Read, path: &str) -> Result<Vec<u8>> {
    let mut tar = tar::Archive::new(tarball);
    let mut seen = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        if name == path && entry.header().entry_type().is_file() {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            return Ok(data);
        }
        if entry.header().entry_type().is_file() {
            seen.push(name);
        }
    }
    bail!("no file {path} in the package (it holds: {})", seen.join(", "))
}

/// Whether dpkg (and so apt) knows `deb_arch`, natively or as a foreign
/// architecture.
fn dpkg_knows(deb_arch: &str) -> Result<bool> {
    let native = cmd::output(Command::new("dpkg").arg("--print-architecture"))?;
    let foreign = cmd::output(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    Ok(native.trim() == deb_arch || foreign.split_whitespace().any(|a| a == deb_arch))
}

/// The command that makes apt see `deb_arch`'s packages.
fn add_arch_command(deb_arch: &str) -> String {
    format!("dpkg --add-architecture {deb_arch} && apt-get update")
}

/// Makes apt see `deb_arch`'s packages: adds it to dpkg's architectures and
/// updates the lists (as root), or says what to run.
fn ensure_foreign_arch(deb_arch: &str, log: &Path) -> Result<()> {
    if dpkg_knows(deb_arch)? {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "the {deb_arch} guest's busybox and bash come from Debian's {deb_arch} packages, which apt \
             does not list yet. Run once:\n  sudo sh -c '{}'\nthen run the lab again.",
            add_arch_command(deb_arch)
        );
    }
    eprintln!("lab: adding {deb_arch} to dpkg's architectures, for the guest's packages (log: {})", log.display());
    cmd::run_logged(Command::new("dpkg").args(["--add-architecture", deb_arch]), log, |_| {})?;
    apt_update(log)
}

/// What apt would download for `package:<deb_arch>`; updates the lists once
/// (as root) if apt does not know the package yet.
fn locate(package: &str, deb_arch: &str, log: &Path) -> Result<DebFile> {
    let spec = format!("{package}:{deb_arch}");
    let ask = || cmd::output(Command::new("apt-get").args(["download", "--print-uris", &spec]));
    let out = match ask() {
        Ok(out) => out,
        Err(_) if is_root() => {
            apt_update(log)?;
            ask().with_context(|| format!("apt cannot find {spec}, even after apt-get update"))?
        }
        Err(e) => {
            return Err(e.context(format!(
                "apt cannot find {spec}: its lists may be old. Run:\n  sudo apt-get update\nthen run the lab again."
            )))
        }
    };
    parse_print_uris(&out, package, deb_arch)
}

/// The .deb of `package` for `arch` in build/<arch>/debs, downloaded with
/// apt-get unless the same file is there already.
pub fn fetch(layout: &Layout, arch: Arch, package: &str) -> Result<(PathBuf, DebFile)> {
    let deb_arch = arch.deb_arch();
    let log = layout.logs().join(format!("debs-{arch}.log"));
    ensure_foreign_arch(deb_arch, &log)?;
    let want = locate(package, deb_arch, &log)?;
    let dir = layout.arch_dir(arch).join("debs");
    fs::create_dir_all(&dir)?;
    let path = dir.join(&want.file_name);
    if fs::metadata(&path).is_ok_and(|m| m.len() == want.size) {
        return Ok((path, want));
    }
    let pb = Progress::spinner(&format!("{package}:{deb_arch}"), &format!("downloading {}", want.file_name));
    let mut c = Command::new("apt-get");
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

/// Fails unless the guest's busybox is the host's source version: the
/// guest's applet links come from the host's `busybox --list`, since the
/// guest's busybox cannot run here.
pub fn check_same_busybox(host: &str, guest: &str, deb_arch: &str) -> Result<()> {
    if source_version(host) != source_version(guest) {
        bail!(
            "the {deb_arch} guest's busybox-static is {guest} but the host's is {host}: the lab lists the \
             guest's applets with the host's busybox, so they must be one version. Run:\n  \
             apt-get update && apt-get install busybox-static\nthen run the lab again."
        );
    }
    Ok(())
}

/// The busybox and bash of an `arch` guest from Debian's packages,
/// extracted to build/<arch>/root/bin.
pub fn userland(layout: &Layout, arch: Arch) -> Result<Userland> {
    let (deb, file) = fetch(layout, arch, BUSYBOX.package)?;
    let host = cmd::output(Command::new("dpkg-query").args(["-W", "-f", "${Version}", BUSYBOX.package]))?;
    check_same_busybox(host.trim(), &file.version().unwrap_or_default(), arch.deb_arch())?;
    let busybox = extract(layout, arch, &deb, BUSYBOX)?;
    let (deb, _) = fetch(layout, arch, BASH.package)?;
    let bash = extract(layout, arch, &deb, BASH)?;
    Ok(Userland { busybox, bash })
}

/// Writes `program` from `deb` to build/<arch>/root, executable.
fn extract(layout: &Layout, arch: Arch, deb: &Path, program: Program) -> Result<PathBuf> {
    let dest = layout.arch_dir(arch).join("root").join(program.path);
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&dest, read_member(deb, program.path)?)?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .deb as dpkg-deb builds it: debian-binary, control and data
    /// tarballs (xz) in an ar archive.
    fn fake_deb(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let tarball = |entries: &[(&str, &[u8])]| {
            let mut tar = tar::Builder::new(Vec::new());
            for (name, data) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o755);
                h.set_cksum();
                tar.append_data(&mut h, name, *data).unwrap();
            }
            let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
            std::io::Write::write_all(&mut xz, &tar.into_inner().unwrap()).unwrap();
            xz.finish().unwrap()
        };
        let control = tarball(&[("./control", b"Package: busybox-static\n"), ("./bin/busybox", b"not this one")]);
        let data = tarball(files);
        let mut ar = ar::Builder::new(Vec::new());
        for (name, body) in [("debian-binary", b"2.0\n".to_vec()), ("control.tar.xz", control), ("data.tar.xz", data)] {
            ar.append(&ar::Header::new(name.as_bytes().to_vec(), body.len() as u64), &body[..]).unwrap();
        }
        let path = dir.join("p_1.0_arm64.deb");
        fs::write(&path, ar.into_inner().unwrap()).unwrap();
        path
    }

    #[test]
    fn a_program_is_read_from_the_data_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let deb = fake_deb(
            dir.path(),
            &[("./usr/share/doc/busybox-static/copyright", b"GPL"), ("./bin/busybox", b"\x7fELF arm64 busybox")],
        );
        assert_eq!(read_member(&deb, "bin/busybox").unwrap(), b"\x7fELF arm64 busybox");
        let e = format!("{:#}", read_member(&deb, "bin/bash-static").unwrap_err());
        assert!(
            e.contains("no file bin/bash-static") && e.contains("bin/busybox") && e.contains("p_1.0_arm64.deb"),
            "{e}"
        );
        let junk = dir.path().join("junk.deb");
        fs::write(&junk, b"not an archive").unwrap();
        assert!(read_member(&junk, "bin/busybox").is_err());
    }

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
        assert!(e.contains("1:1.36.1-9") && e.contains("apt-get install busybox-static"), "{e}");
    }
}
