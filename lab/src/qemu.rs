//! Booting a guest under QEMU (TCG only) with a watchdog that follows the
//! guest's progress markers.
//!
//! The watchdog gives the boot, each test and the shutdown their own
//! deadline: a guest that panics and spins, deadlocks, or stops printing is
//! killed and reported, and QEMU never outlives the lab (it gets SIGKILL
//! when the lab exits, even on a crash of the lab itself).

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::arch::Arch;
use crate::console::{self, Marker};
use crate::plan::Plan;
use crate::root::Root;

/// How the QEMU process ended, as the host saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HostOutcome {
    /// QEMU exited by itself with this code (None: killed by a signal).
    Exited { code: Option<i32> },
    /// The watchdog killed QEMU: nothing happened in `phase` for `secs`.
    TimedOut { phase: String, secs: u64 },
}

/// The arm64 guest's CPU: `max` (every feature QEMU emulates: LSE atomics,
/// LPA2, ...), with QEMU's cheap implementation-defined pointer
/// authentication instead of the architected QARMA, which is costly under
/// TCG. The whole guest (boot and guest/plan, 2 vCPUs, idle 2-core host, one
/// run each) took 62 s with it, 64 s with plain `max` or neoverse-n1 and
/// 70 s with cortex-a72.
pub const ARM64_CPU: &str = "max,pauth-impdef=on";

/// What to boot.
#[derive(Clone, Debug)]
pub struct Machine {
    pub arch: Arch,
    pub qemu: PathBuf,
    /// Firmware (`-bios`): qboot on x86_64; none on arm64, where QEMU's
    /// own loader starts the kernel and PSCI ends it.
    pub bios: Option<PathBuf>,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cpus: u32,
    pub mem_mib: u32,
    pub append: String,
    /// The guest's clock counts instructions (`-icount shift=0,sleep=off`:
    /// one nanosecond per instruction, idle time skipped), so the time a
    /// guest program measures is repeatable. It needs single-threaded TCG.
    pub icount: bool,
    /// Disks, in order: the guest sees them as /dev/vda, /dev/vdb, ...
    pub disks: Vec<Disk>,
    /// The console is a person's terminal (`lab shell`): QEMU's monitor is
    /// multiplexed on it (Ctrl-A x quits, Ctrl-A c the monitor), and
    /// Ctrl-C goes to the guest.
    pub interactive: bool,
}

/// A disk of the guest, as users' machines have them: virtio-blk, backed
/// by a raw image file of the host, its I/O asynchronous (unlike zram's) and
/// throttled by QEMU to `iops` requests a second, so that each request
/// takes about 1/iops seconds once the throttle's burst (a tenth of a
/// second's worth) is spent.
#[derive(Clone, Debug)]
pub struct Disk {
    pub image: PathBuf,
    pub iops: u32,
}

impl Machine {
    /// The QEMU command line, run in the build root. KVM is never used: on
    /// these machines guests hang under it.
    pub fn command(&self, root: &Root) -> Command {
        let mut c = root.command(&self.qemu);
        if self.icount {
            c.args(["-accel", "tcg,thread=single", "-icount", "shift=0,sleep=off"]);
        } else {
            c.args(["-accel", "tcg,thread=multi"]);
        }
        match self.arch {
            Arch::X86_64 => c.args(["-cpu", "max"]),
            // virt's PL011 is the console (ttyAMA0); PSCI, which QEMU
            // emulates, brings up the second CPU and ends the guest on
            // `reboot -f` (with -no-reboot).
            Arch::Arm64 => c.args(["-machine", "virt", "-cpu", ARM64_CPU]),
        };
        c.args(["-smp", &self.cpus.to_string(), "-m", &format!("{}M", self.mem_mib)]);
        let serial = if self.interactive { "mon:stdio" } else { "stdio" };
        c.args(["-nodefaults", "-display", "none", "-no-reboot", "-serial", serial]);
        if let Some(bios) = &self.bios {
            c.arg("-bios").arg(bios);
        }
        c.arg("-kernel").arg(&self.kernel).arg("-initrd").arg(&self.initrd).args(["-append", &self.append]);
        for (i, d) in self.disks.iter().enumerate() {
            let mut drive = std::ffi::OsString::from("file=");
            drive.push(&d.image);
            drive.push(format!(",if=none,id=disk{i},format=raw,throttling.iops-total={}", d.iops));
            // PCI on both: x86_64's pc machine and arm64's virt have a host
            // bridge (config/arch/arm64.config: PCI_HOST_GENERIC).
            c.arg("-drive").arg(drive).args(["-device", &format!("virtio-blk-pci,drive=disk{i}")]);
        }
        if self.arch == Arch::X86_64 {
            // A guest program may end QEMU with an exit code through it.
            c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        }
        c
    }
}

/// Deadlines of the watchdog.
#[derive(Clone, Debug)]
pub struct Watchdog {
    /// From start to the first marker.
    pub boot: Duration,
    /// Added to a test's own timeout (the guest kills the test first; this
    /// catches a guest that cannot).
    pub grace: Duration,
    /// For a test with no timeout of its own.
    pub default_test: Duration,
    /// From the last marker to QEMU's exit.
    pub shutdown: Duration,
}

impl Default for Watchdog {
    fn default() -> Self {
        Self {
            boot: Duration::from_secs(180),
            grace: Duration::from_secs(60),
            default_test: Duration::from_secs(900),
            shutdown: Duration::from_secs(60),
        }
    }
}

/// A progress event from the guest, for the caller's display.
#[derive(Debug)]
pub enum Event<'a> {
    Begin(&'a str),
    End { name: &'a str, rc: i32 },
    Line(&'a str),
}

/// Kills and reaps the child when dropped, so no QEMU is left behind on
/// any return path.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs `cmd` (QEMU, or a stand-in in tests), writing everything it prints
/// to `log` and enforcing the watchdog. Returns how it ended.
pub fn run(
    mut cmd: Command,
    log: &Path,
    plan: &Plan,
    wd: &Watchdog,
    mut on_event: impl FnMut(Event),
) -> Result<HostOutcome> {
    let mut logf = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let (reader, writer) = std::io::pipe()?;
    let writer2 = writer.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(2), which is async-signal-safe; it touches no memory of
    // the parent's.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("cannot start {}", crate::cmd::describe(&cmd)))?;
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = Reaper(child);

    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let pump = std::thread::spawn(move || {
        let mut r = BufReader::new(reader);
        loop {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(buf).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut phase = "boot".to_string();
    let mut limit = wd.boot;
    let mut last = Instant::now();
    let outcome = loop {
        let left = limit.saturating_sub(last.elapsed());
        match rx.recv_timeout(left) {
            Ok(bytes) => {
                logf.write_all(&bytes)?;
                let line = String::from_utf8_lossy(&bytes);
                let line = line.trim_end_matches(['\n', '\r']);
                match console::marker(line) {
                    Some(Marker::Begin(name)) => {
                        last = Instant::now();
                        phase = format!("test {name}");
                        limit = plan
                            .get(name)
                            .filter(|t| t.timeout > 0)
                            .map_or(wd.default_test, |t| Duration::from_secs(t.timeout))
                            + wd.grace;
                        on_event(Event::Begin(name));
                    }
                    Some(Marker::End { name, rc, .. }) => {
                        last = Instant::now();
                        phase = format!("after test {name}");
                        limit = wd.grace;
                        on_event(Event::End { name, rc });
                    }
                    Some(Marker::Done) => {
                        last = Instant::now();
                        phase = "shutdown".into();
                        limit = wd.shutdown;
                    }
                    // Setup's own lines are output like any other: the
                    // boot's deadline still runs.
                    Some(Marker::Info(_) | Marker::SetupFail(_)) | None => on_event(Event::Line(line)),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let secs = last.elapsed().as_secs();
                let _ = child.0.kill();
                writeln!(logf, "\nLAB-HOST: watchdog: no progress for {secs}s during {phase}; killed QEMU")?;
                break HostOutcome::TimedOut { phase, secs };
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.0.wait()?;
                break HostOutcome::Exited { code: status.code() };
            }
        }
    };
    drop(child);
    let _ = pump.join();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(arch: Arch, bios: Option<&str>) -> Machine {
        Machine {
            arch,
            qemu: PathBuf::from("qemu"),
            bios: bios.map(PathBuf::from),
            kernel: PathBuf::from("/k/Image"),
            initrd: PathBuf::from("/i/x.cpio"),
            cpus: 2,
            mem_mib: 2048,
            append: "console=ttyX lab.cpus=2".into(),
            icount: false,
            disks: vec![],
            interactive: false,
        }
    }

    fn args(m: &Machine) -> String {
        let c = m.command(&Root::new("/nonexistent", vec![]));
        c.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn an_x86_64_guest_boots_qboot_and_may_exit_through_the_debug_port() {
        let a = args(&machine(Arch::X86_64, Some("/q/qboot.rom")));
        for want in [
            "-accel tcg,thread=multi",
            "-cpu max -smp 2 -m 2048M",
            "-nodefaults -display none -no-reboot -serial stdio",
            "-bios /q/qboot.rom -kernel /k/Image -initrd /i/x.cpio -append console=ttyX lab.cpus=2",
            "-device isa-debug-exit",
        ] {
            assert!(a.contains(want), "{want:?} missing from {a}");
        }
        assert!(!a.contains("virt"), "{a}");
    }

    #[test]
    fn an_arm64_guest_is_a_virt_board_without_x86_devices() {
        let a = args(&machine(Arch::Arm64, None));
        for want in [
            "-accel tcg,thread=multi",
            &format!("-machine virt -cpu {ARM64_CPU} -smp 2 -m 2048M"),
            "-nodefaults -display none -no-reboot -serial stdio -kernel /k/Image",
        ] {
            assert!(a.contains(want), "{want:?} missing from {a}");
        }
        for x86 in ["isa-debug-exit", "-bios", "-cpu max "] {
            assert!(!a.contains(x86), "{x86:?} in {a}");
        }
        // Pointer authentication's architected algorithm is what makes
        // `max` slow under TCG.
        assert!(!ARM64_CPU.starts_with("max") || ARM64_CPU.contains("pauth-impdef=on"), "{ARM64_CPU}");
    }

    #[test]
    fn the_icount_clock_takes_single_threaded_tcg() {
        let mut m = machine(Arch::X86_64, None);
        m.icount = true;
        let a = args(&m);
        assert!(a.contains("-accel tcg,thread=single -icount shift=0,sleep=off") && !a.contains("thread=multi"), "{a}");
    }

    #[test]
    fn disks_are_throttled_virtio_block_devices_in_order() {
        let mut m = machine(Arch::Arm64, None);
        assert!(!args(&m).contains("-drive"));
        m.disks = vec![
            Disk { image: PathBuf::from("/r/swap.img"), iops: 500 },
            Disk { image: PathBuf::from("/r/data.img"), iops: 20 },
        ];
        let a = args(&m);
        assert!(
            a.contains(
                "-drive file=/r/swap.img,if=none,id=disk0,format=raw,throttling.iops-total=500 \
                 -device virtio-blk-pci,drive=disk0 \
                 -drive file=/r/data.img,if=none,id=disk1,format=raw,throttling.iops-total=20 \
                 -device virtio-blk-pci,drive=disk1"
            ),
            "{a}"
        );
    }
}
