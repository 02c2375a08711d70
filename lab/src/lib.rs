//! The lab: builds the fault-lock series on mainline and on 6.12 LTS in a
//! Debian trixie build root, boots each kernel variant under QEMU and runs
//! the mm selftests in the guest.

pub mod arch;
pub mod b4;
pub mod backport;
pub mod base;
pub mod baseline;
pub mod bench;
pub mod build;
pub mod callpath;
pub mod check;
pub mod cmd;
pub mod compilefail;
pub mod config;
pub mod console;
pub mod cover;
pub mod deb;
pub mod decode;
pub mod disk;
pub mod git;
pub mod initramfs;
pub mod kcidb;
pub mod kconfig;
pub mod lava;
pub mod layout;
pub mod lock;
pub mod maintainers;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod qemu;
pub mod report;
pub mod results;
pub mod root;
pub mod send;
pub mod setup;
pub mod smtp;
pub mod stat;
#[cfg(test)]
mod testing;
pub mod thrash;
pub mod tip;
pub mod tree;
pub mod variant;
