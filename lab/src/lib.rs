//! The lab: builds the fault-lock series on Linux 6.12, boots each kernel
//! variant under QEMU and runs the mm selftests in the guest.

pub mod arch;
pub mod bench;
pub mod build;
pub mod callpath;
pub mod check;
pub mod cmd;
pub mod compilefail;
pub mod deb;
pub mod initramfs;
pub mod kconfig;
pub mod layout;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod qemu;
pub mod report;
pub mod results;
pub mod send;
pub mod setup;
pub mod smtp;
pub mod tree;
