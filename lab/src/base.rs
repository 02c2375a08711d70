//! The kernels the series is built on.
//!
//! linux-mm takes features against mainline, so mainline is the base the
//! series is written for: the newest `linux-source-N.M` that Debian ships
//! for trixie (7.3 when this was written, from trixie-backports). 6.12 LTS,
//! the kernel of Debian trixie and of Android 16, carries the series as a
//! backport. Each base has its own series folder (`patches/<base>/`), its
//! own configuration folder (`config/<base>/`) and its own work tree and
//! kernels under `build/<base>/`.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::root::{self, Root};

/// A kernel base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Base {
    /// The newest `linux-source-N.M` of the build root.
    #[serde(rename = "mainline")]
    Mainline,
    /// `linux-source-6.12`, the LTS.
    #[serde(rename = "6.12")]
    Lts612,
}

impl Base {
    /// Every base, the primary one first.
    pub const ALL: [Base; 2] = [Base::Mainline, Base::Lts612];

    /// The name of the base in folders, on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Base::Mainline => "mainline",
            Base::Lts612 => "6.12",
        }
    }

    /// The Debian package whose source this base is, as installed in the
    /// build root.
    pub fn source(self, root: &Root) -> Result<Source> {
        let package = match self {
            Base::Lts612 => "linux-source-6.12".to_string(),
            Base::Mainline => root::newest_source(root.sources()?.iter().map(String::as_str))
                .context("the build root has no linux-source-N.M package: refresh it with `lab setup --refresh`")?,
        };
        let version = root.package_version(&package)?;
        let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
        if !root.host_path(&tarball).is_file() {
            bail!(
                "{package} {version} is installed in the build root but {} is not there: refresh the root with \
                 `lab setup --refresh`",
                tarball.display()
            );
        }
        Ok(Source { package, version, tarball })
    }
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Base {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Base::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .with_context(|| format!("unknown base {s:?}: the bases are {}", Base::ALL.map(|b| b.name()).join(" and ")))
    }
}

/// The Debian source package of a base.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Source {
    /// `linux-source-7.3`.
    pub package: String,
    /// The exact Debian version, `7.3.4-1~bpo13+1`.
    pub version: String,
    /// The source tarball, as a path inside the build root.
    pub tarball: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_named_as_on_the_command_line() {
        for b in Base::ALL {
            assert_eq!(b.name().parse::<Base>().unwrap(), b);
        }
        assert_eq!(Base::Lts612.to_string(), "6.12");
        let e = "7.3".parse::<Base>().unwrap_err().to_string();
        assert!(e.contains("mainline and 6.12"), "{e}");
        assert_eq!(serde_json::to_string(&Base::Lts612).unwrap(), "\"6.12\"");
    }
}
