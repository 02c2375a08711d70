//! The lab's boots as LAVA jobs. LAVA (Linaro's dispatcher and scheduler,
//! which KernelCI's labs run) boots a device, reads its console and
//! records test cases; `lava-run` runs one job on a local dispatcher
//! without a server.
//!
//! A job here boots what [`crate::pipeline`] boots for a variant: the
//! same kernel, initramfs (with the variant's plan), disks, memory, CPUs and
//! QEMU options, on a device of LAVA's own `qemu` device type, and reads
//! the plan's results without a shell, with LAVA's `monitors` test method
//! matching guest/init's `LAB: END <test> rc=<n>` lines
//! ([`crate::console`]): rc 0 passes, 4 (kselftest's skip) skips, any
//! other fails, and a planned test whose END never came fails. What the
//! guest needs travels in the job's `context`, so the device dictionary
//! (config/lava/qemu-lab-01.jinja2) names only the device, and the job is
//! what a LAVA server would accept unchanged but for the artifacts'
//! `file://` URLs.
//!
//! The LAVA view and the lab's own are compared on the same boot
//! ([`results`]): the lab reads the console LAVA recorded as it reads its
//! own serial logs.

pub mod dispatch;
pub mod results;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::cmd;
use crate::layout::Layout;
use crate::plan::Plan;
use crate::qemu::{Machine, ARM64_CPU};
use crate::root::Root;
use crate::variant::Variant;

/// LAVA's device type for QEMU guests (lava-server's qemu.jinja2).
pub const DEVICE_TYPE: &str = "qemu";
/// The local device's name, and its dictionary's file name.
pub const DEVICE: &str = "qemu-lab-01";
/// The monitor that reads the plan's results: LAVA's test definition name.
pub const DEFINITION: &str = "lab";
/// The lava-server package whose device-type templates render the device
/// dictionary, as a LAVA server would.
const SERVER_PACKAGE: &str = "lava-server";

/// A test's name as LAVA records it: lower case, each run of characters
/// other than letters, digits and `_` one `_` (its `\W+`).
pub fn case_name(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' {
            s.extend(c.to_lowercase());
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    s
}

/// LAVA's form of a timeout.
fn seconds(s: u64) -> Value {
    json!({ "seconds": s })
}

/// The LAVA job that boots `v` as `m` does with `plan` (the variant's
/// own, as its initramfs has it), the artifacts at the URLs `url` gives.
/// `default_test` is the time allowed a test without a timeout of its own.
pub fn job(v: &Variant, m: &Machine, plan: &Plan, default_test: u64, url: &dyn Fn(&Path) -> String) -> Value {
    let timeouts: Vec<u64> = plan.tests.iter().map(|t| if t.timeout == 0 { default_test } else { t.timeout }).collect();
    let longest = timeouts.iter().copied().max().unwrap_or(default_test);
    // The guest kills a test at its timeout; LAVA waits a little longer
    // for each line, and for the whole plan, the sum and the boot.
    let monitor_wait = longest + 120;
    let test_time = timeouts.iter().sum::<u64>() + 300;
    let mut options = vec![
        "-nodefaults".to_string(),
        "-serial stdio".into(),
        if m.icount {
            "-accel tcg,thread=single -icount shift=0,sleep=off".into()
        } else {
            "-accel tcg,thread=multi".into()
        },
        format!("-smp {}", m.cpus),
        "-no-reboot".into(),
    ];
    let mut context = json!({
        "arch": m.arch.to_string(),
        // TCG: the template would otherwise ask for KVM and `-cpu host`.
        "no_kvm": true,
        "memory": m.mem_mib,
    });
    match m.arch {
        Arch::X86_64 => options.push("-cpu max".into()),
        // The template gives arm64 `-machine virt` and the context's CPU.
        Arch::Arm64 => context["cpu"] = json!(ARM64_CPU),
    }
    if let Some(bios) = &m.bios {
        options.push(format!("-bios {}", bios.display()));
    }
    if m.arch == Arch::X86_64 {
        options.push("-device isa-debug-exit,iobase=0xf4,iosize=0x04".into());
    }
    context["extra_options"] = json!(options);
    let mut images = serde_json::Map::new();
    images.insert(
        "kernel".into(),
        json!({ "url": url(&m.kernel), "image_arg": format!("-kernel {{kernel}} -append \"{}\"", m.append) }),
    );
    images.insert("initrd".into(), json!({ "url": url(&m.initrd), "image_arg": "-initrd {initrd}" }));
    // In the order of the machine's disks: the guest sees /dev/vda, vdb.
    for (i, d) in m.disks.iter().enumerate() {
        let key = d.image.file_stem().unwrap_or_default().to_string_lossy().replace('-', "_");
        let arg = format!(
            "-drive file={{{key}}},if=none,id=disk{i},format=raw,throttling.iops-total={} -device virtio-blk-pci,drive=disk{i}",
            d.iops
        );
        images.insert(key.clone(), json!({ "url": url(&d.image), "image_arg": arg }));
    }
    let expected: Vec<String> = plan.tests.iter().map(|t| case_name(&t.name)).collect();
    json!({
        "device_type": DEVICE_TYPE,
        "job_name": format!("lab {v}"),
        "priority": "medium",
        "visibility": "public",
        "metadata": { "lab.base": v.base.name(), "lab.variant": v.name() },
        "timeouts": {
            "job": seconds(test_time + 600),
            "action": { "minutes": 5 },
            "connection": { "minutes": 2 },
            "actions": { "lava-test-monitor": seconds(test_time) },
            // The monitor waits this long for each line it matches.
            "connections": { "lava-test-monitor": seconds(monitor_wait) },
        },
        "context": context,
        "actions": [
            { "deploy": { "to": "tmpfs", "timeout": { "minutes": 5 }, "images": images } },
            { "boot": { "method": "qemu", "media": "tmpfs", "timeout": { "minutes": 2 } } },
            { "test": {
                "timeout": seconds(test_time),
                "monitors": [
                    // guest/init's setup, before the plan: each
                    // `LAB: SETUP-FAIL <what>` is a failed case.
                    {
                        "name": "lab-setup",
                        "start": "Linux version",
                        "end": "LAB: INFO ",
                        "pattern": "LAB: (?P<result>SETUP-FAIL) (?P<test_case_id>[^\\r\\n]+)\\r?\\n",
                        "fixupdict": { "SETUP-FAIL": "fail" },
                    },
                    // The plan, from the rest of the INFO line
                    // (`kernel <release> ...`) to the sentinel. The
                    // result group captures one fixed string per outcome
                    // once the number and the space after it arrived.
                    {
                        "name": DEFINITION,
                        "start": "kernel ",
                        "end": "LAB: DONE",
                        "pattern": "LAB: END (?P<test_case_id>\\S+) (?P<result>rc=0(?= )|rc=4(?= )|rc=(?=-?\\d+ ))-?\\d* (?P<units>ms)=(?P<measurement>\\d+)\\s",
                        "fixupdict": { "rc=0": "pass", "rc=4": "skip", "rc=": "fail" },
                        "expected": expected,
                    },
                ],
            } },
        ],
    })
}

/// `value` as YAML under a comment header.
pub fn to_yaml(header: &str, value: &Value) -> Result<String> {
    let mut s: String = header.lines().map(|l| format!("# {l}\n").replace("# \n", "#\n")).collect();
    s.push_str(&serde_norway::to_string(value)?);
    Ok(s)
}

/// The folder of lava-server's device-type templates (qemu.jinja2 and
/// base.jinja2), from its Debian package of the root's sources, fetched
/// with `apt-get download` and unpacked with dpkg-deb into build/lava.
fn device_types(layout: &Layout, root: &Root, log: &Path) -> Result<PathBuf> {
    let dir = layout.build.join("lava");
    let unpacked = dir.join(SERVER_PACKAGE);
    let types = unpacked.join("usr/share/lava-server/device-types");
    if types.join("qemu.jinja2").is_file() {
        return Ok(types);
    }
    let debs = dir.join("debs");
    fs::create_dir_all(&debs)?;
    eprintln!("lab: fetching {SERVER_PACKAGE}'s device-type templates (log: {})", log.display());
    cmd::run_logged(root.command("apt-get").current_dir(&debs).args(["download", SERVER_PACKAGE]), log, |_| {})
        .with_context(|| {
            format!("apt-get download {SERVER_PACKAGE} failed: check the network and the root's apt lists")
        })?;
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{SERVER_PACKAGE}_"))))
        .with_context(|| format!("apt-get download left no {SERVER_PACKAGE} .deb in {}", debs.display()))?;
    let _ = fs::remove_dir_all(&unpacked);
    cmd::run_logged(root.command("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked), log, |_| {})
        .context("dpkg-deb could not unpack lava-server")?;
    if !types.join("qemu.jinja2").is_file() {
        bail!("{} has no usr/share/lava-server/device-types/qemu.jinja2", deb.display());
    }
    Ok(types)
}

/// The device configuration `lava-run --device` reads: the dictionary
/// `config/lava/<DEVICE>.jinja2` rendered with `job`'s context by
/// lava-server's own templates and lava_common's Jinja environment, as
/// the server renders it for each job, after the job passed lava_common's
/// strict schema, as on submission; the configuration passes its device
/// schema (config/lava/render-device.py).
pub fn render_device(layout: &Layout, root: &Root, job: &Path, out: &Path, log: &Path) -> Result<()> {
    let types = device_types(layout, root, log)?;
    let config = layout.repo.join("config/lava");
    let mut c = root.command("python3");
    c.arg(config.join("render-device.py")).arg(&config).arg(&types).args([DEVICE, DEVICE_TYPE]).arg(job);
    let text = cmd::output(&mut c).context("rendering the device dictionary with lava-server's templates failed")?;
    fs::write(out, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::Base;
    use crate::qemu::Disk;
    use crate::testing::{in_root, InRoot};

    #[test]
    fn names_are_recorded_as_lava_records_them() {
        assert_eq!(case_name("fault-bench"), "fault_bench");
        assert_eq!(case_name("vma-lock-disk"), "vma_lock_disk");
        assert_eq!(case_name("Mixed--Case x"), "mixed_case_x");
    }

    fn machine() -> Machine {
        Machine {
            arch: Arch::X86_64,
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            bios: Some("/usr/share/qemu/qboot.rom".into()),
            kernel: "/b/bzImage".into(),
            initrd: "/b/rust.cpio".into(),
            cpus: 2,
            mem_mib: 4096,
            append: "console=ttyS0 lab.cpus=2".into(),
            icount: false,
            disks: vec![Disk { image: "/r/swap-disk.img".into(), iops: 1000 }],
            interactive: false,
        }
    }

    #[test]
    fn a_job_boots_what_the_lab_boots() {
        let v = Variant::new(Base::Mainline, Arch::X86_64, "rust");
        let m = machine();
        let plan =
            Plan::parse("fault-bench ktap 300 fault_bench -q\nvmtests ktap 2400 run_vmtests.sh\nx exit 0 true\n", "p")
                .unwrap();
        let j = job(&v, &m, &plan, 900, &|p| format!("file://{}", p.display()));
        let ctx = &j["context"];
        assert_eq!(ctx["memory"], 4096);
        let opts: Vec<&str> = ctx["extra_options"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
        for o in ["-smp 2", "-cpu max", "-accel tcg,thread=multi", "-bios /usr/share/qemu/qboot.rom", "-no-reboot"] {
            assert!(opts.contains(&o), "{opts:?}");
        }
        let images = &j["actions"][0]["deploy"]["images"];
        assert_eq!(images["kernel"]["image_arg"], "-kernel {kernel} -append \"console=ttyS0 lab.cpus=2\"");
        assert_eq!(images["swap_disk"]["url"], "file:///r/swap-disk.img");
        assert!(images["swap_disk"]["image_arg"].as_str().unwrap().starts_with("-drive file={swap_disk},"));
        let monitor = &j["actions"][2]["test"]["monitors"][1];
        assert_eq!(monitor["expected"], json!(["fault_bench", "vmtests", "x"]));
        // Each END line waits at most the longest test's time (the guest's
        // default for one without) and a margin; the plan all of them.
        assert_eq!(j["timeouts"]["connections"]["lava-test-monitor"]["seconds"], 2400 + 120);
        assert_eq!(j["actions"][2]["test"]["timeout"]["seconds"], 300 + 2400 + 900 + 300);
        let yaml = to_yaml("A job.\n\nIts second paragraph.", &j).unwrap();
        assert!(yaml.starts_with("# A job.\n#\n# Its second paragraph.\ndevice_type: qemu\n"), "{yaml}");
    }

    #[test]
    fn lava_server_accepts_the_job_and_renders_its_device() {
        // The build root's lava-common, and lava-server's templates (apt-get
        // download the first time).
        let InRoot { layout, root, scratch } = in_root("usr/bin/lava-run");
        let d = scratch.path();
        for arch in Arch::ALL {
            let v = Variant::new(Base::Mainline, arch, "rust");
            let m = Machine { arch, bios: arch.is_host().then(|| "/usr/share/qemu/qboot.rom".into()), ..machine() };
            let plan = Plan::parse("fault-bench ktap 300 fault_bench -q\n", "p").unwrap();
            let job_file = d.join(format!("job-{arch}.yaml"));
            fs::write(
                &job_file,
                to_yaml("A job.", &job(&v, &m, &plan, 900, &|p| format!("file://{}", p.display()))).unwrap(),
            )
            .unwrap();
            let device = d.join(format!("device-{arch}.yaml"));
            render_device(&layout, &root, &job_file, &device, &d.join("log")).unwrap();
            let text = fs::read_to_string(&device).unwrap();
            let want = match arch {
                Arch::X86_64 => ["qemu-system-x86_64", "-cpu max", "-m 4096"],
                Arch::Arm64 => ["qemu-system-aarch64", "-cpu max,pauth-impdef=on", "-machine virt"],
            };
            for w in want {
                assert!(text.contains(w), "{arch}: no {w} in {text}");
            }
            // KVM stays off (no_kvm), and the dictionary adds no network.
            assert!(!text.contains("enable-kvm") && !text.contains("-net nic"), "{text}");
        }
    }
}
