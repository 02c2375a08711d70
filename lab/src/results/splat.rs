//! Kernel reports on the console (oopses, KASAN, lockdep, warnings,
//! stalls), each with the lines that belong to it.

use regex::Regex;
use std::sync::LazyLock;

use super::Splat;
use crate::console;

static KERNEL_HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[TC]\d+\]\s*)?(BUG|WARNING|Oops|UBSAN): ").expect("valid regex")
});

/// Substrings that are kernel reports wherever they appear on a line (the
/// console may print them in the middle of a program's partial line).
const SPLATS: &[(&str, &str)] = &[
    ("Kernel panic - not syncing", "panic"),
    ("BUG: KASAN:", "KASAN"),
    ("BUG: KFENCE:", "KFENCE"),
    ("WARNING: possible circular locking", "lockdep"),
    ("WARNING: possible recursive locking", "lockdep"),
    ("WARNING: inconsistent lock state", "lockdep"),
    ("WARNING: suspicious RCU usage", "lockdep"),
    ("WARNING: bad unlock balance", "lockdep"),
    ("WARNING: held lock freed", "lockdep"),
    ("WARNING: lock held when returning to user space", "lockdep"),
    ("WARNING: possible irq lock inversion", "lockdep"),
    ("lock order detected", "lockdep"),
    ("WARNING: CPU:", "WARNING"),
    ("kernel BUG at", "BUG"),
    ("BUG: unable to handle", "BUG"),
    ("BUG: sleeping function called", "BUG"),
    ("BUG: scheduling while atomic", "BUG"),
    ("BUG: soft lockup", "soft lockup"),
    ("BUG: workqueue lockup", "BUG"),
    ("BUG: Bad page", "BUG"),
    ("BUG: Bad rss-counter", "BUG"),
    ("Oops:", "Oops"),
    ("general protection fault", "Oops"),
    ("Unable to handle kernel", "Oops"),
    ("list_add corruption", "list corruption"),
    ("list_del corruption", "list corruption"),
    ("detected stalls on CPUs", "RCU stall"),
    ("self-detected stall on CPU", "RCU stall"),
    ("blocked for more than", "hung task"),
    ("UBSAN:", "UBSAN"),
];

/// The kind of kernel report starting on `line`, if any.
pub fn splat_kind(line: &str) -> Option<String> {
    if line.contains(console::PREFIX) {
        return None;
    }
    for (needle, kind) in SPLATS {
        if line.contains(needle) {
            return Some((*kind).to_string());
        }
    }
    KERNEL_HEAD.captures(line).map(|c| c[1].to_string())
}

/// Finds kernel reports, with up to 40 lines of each.
pub fn find_splats(lines: &[&str]) -> Vec<Splat> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(kind) = splat_kind(lines[i]) {
            let mut end = (i + 40).min(lines.len());
            for (j, l) in lines.iter().enumerate().take(end).skip(i + 1) {
                if l.contains("---[ end") || l.contains(console::PREFIX) {
                    end = j + usize::from(l.contains("---[ end"));
                    break;
                }
            }
            out.push(Splat { kind, line: i + 1, excerpt: lines[i..end].join("\n") });
            // A report's own lines (a panic after an oops, lockdep's chain)
            // are part of it, not new reports.
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_reports_are_recognised() {
        assert_eq!(splat_kind("[   12.3] WARNING: CPU: 1 PID: 7 at mm/memory.c:1 f+0x1"), Some("WARNING".into()));
        assert_eq!(splat_kind("BUG: KASAN: slab-use-after-free in handle_mm_fault"), Some("KASAN".into()));
        assert_eq!(splat_kind("xyz[ 3.1] Oops: general protection fault"), Some("Oops".into()));
        assert_eq!(splat_kind("[    5.0] BUG: spinlock bad magic on CPU#0"), Some("BUG".into()));
        assert_eq!(splat_kind("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"), Some("RCU stall".into()));
        assert_eq!(splat_kind("# [INFO] some test said WARNING: it is fine"), None);
        assert_eq!(splat_kind("ok 3 Basic COW after fork() with base page"), None);
    }

    #[test]
    fn a_report_is_one_splat_with_its_lines() {
        let log = [
            "a",
            "BUG: unable to handle page fault",
            "RIP: x",
            "Kernel panic - not syncing: Fatal exception",
            "---[ end Kernel panic ]---",
            "b",
        ];
        let s = find_splats(&log);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].line, 2);
        assert!(s[0].excerpt.ends_with("---[ end Kernel panic ]---"));
    }
}
