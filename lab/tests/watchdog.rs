//! The guest watchdog, driven by a stand-in for QEMU: a guest that stops
//! making progress is killed and reported, and no process outlives the
//! run.

use lab::plan::Plan;
use lab::qemu::HostOutcome;
use lab::qemu::{self, Event, Watchdog};
use std::process::Command;
use std::time::{Duration, Instant};

fn fake_guest(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

fn short() -> Watchdog {
    Watchdog {
        boot: Duration::from_secs(3),
        grace: Duration::from_secs(2),
        default_test: Duration::from_secs(1),
        shutdown: Duration::from_secs(2),
    }
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[test]
fn a_guest_that_stops_in_a_test_is_killed_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let plan = Plan::parse("stuck exit 1 /bin/sleep 1000\n", "p").unwrap();
    let script =
        format!("echo $$ > {}; echo 'Linux version 6.12'; echo 'LAB: BEGIN stuck'; exec sleep 1000", pidfile.display());
    let log = dir.path().join("serial.log");
    let mut begun = Vec::new();
    let t0 = Instant::now();
    let out = qemu::run(fake_guest(&script), &log, &plan, &short(), |e| {
        if let Event::Begin(n) = e {
            begun.push(n.to_string());
        }
    })
    .unwrap();
    // The test's own timeout (1 s) plus the grace (2 s).
    assert!(t0.elapsed() < Duration::from_secs(10));
    match out {
        HostOutcome::TimedOut { phase, .. } => assert_eq!(phase, "test stuck"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(begun, ["stuck"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("LAB: BEGIN stuck"));
    assert!(text.contains("watchdog: no progress"), "{text}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(!alive(&pid), "the stand-in guest {pid} must be dead");
}

#[test]
fn a_guest_that_never_boots_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::default();
    let out =
        qemu::run(fake_guest("echo SeaBIOS; exec sleep 1000"), &dir.path().join("s.log"), &plan, &short(), |_| {})
            .unwrap();
    assert!(matches!(out, HostOutcome::TimedOut { ref phase, .. } if phase == "boot"), "{out:?}");
}

#[test]
fn a_guest_that_ends_reports_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::parse("t exit 5 /bin/true\n", "p").unwrap();
    let out = qemu::run(
        fake_guest("echo 'LAB: BEGIN t'; echo 'LAB: END t rc=0 ms=3'; echo 'LAB: DONE'; exit 0"),
        &dir.path().join("s.log"),
        &plan,
        &short(),
        |_| {},
    )
    .unwrap();
    assert_eq!(out, HostOutcome::Exited { code: Some(0) });
}
