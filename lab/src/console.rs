//! The guest's protocol on its serial console, as guest/init prints it:
//!
//! ```text
//! LAB: INFO kernel <release> cpus=<n>
//! LAB: BEGIN <name>
//! LAB: END <name> rc=<exit status> ms=<elapsed milliseconds>
//! LAB: SETUP-FAIL <what>
//! LAB: DONE
//! ```
//!
//! The host's watchdog ([`crate::qemu`]) reads it while the guest runs, to
//! give each test its own deadline; the analysis ([`crate::results`])
//! reads it from the log afterwards, to cut the log into tests.

use regex::Regex;
use std::sync::LazyLock;

/// One protocol line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker<'a> {
    /// What the guest runs on (`INFO`).
    Info(&'a str),
    /// A test starts.
    Begin(&'a str),
    /// A test ended with exit status `rc` after `ms` milliseconds. An END
    /// whose numbers do not read (a line the console cut) has rc -1.
    End { name: &'a str, rc: i32, ms: u64 },
    /// A setup step failed: the guest's tests cannot be trusted.
    SetupFail(&'a str),
    /// The end-of-run sentinel.
    Done,
}

/// The prefix of every protocol line; a kernel report that carries it
/// belongs to the protocol's line, not to a test's output.
pub const PREFIX: &str = "LAB: ";

static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"LAB: (BEGIN|END|DONE|INFO|SETUP-FAIL)(?: (.*?))?(?: rc=(-?\d+)(?: ms=(\d+))?)?\s*$")
        .expect("valid regex")
});

/// The protocol line `line` holds, if any (anywhere on the line: the
/// kernel may have printed before it without a newline).
pub fn marker(line: &str) -> Option<Marker<'_>> {
    let c = MARKER.captures(line)?;
    let rest = c.get(2).map_or("", |m| m.as_str().trim());
    let word = rest.split_whitespace().next().unwrap_or("");
    Some(match &c[1] {
        "INFO" => Marker::Info(rest),
        "BEGIN" => Marker::Begin(word),
        "END" => Marker::End {
            name: word,
            rc: c.get(3).and_then(|m| m.as_str().parse().ok()).unwrap_or(-1),
            ms: c.get(4).and_then(|m| m.as_str().parse().ok()).unwrap_or(0),
        },
        "SETUP-FAIL" => Marker::SetupFail(rest),
        _ => Marker::Done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_guest_init_prints_is_read() {
        assert_eq!(marker("LAB: INFO kernel 7.3.4 cpus=2"), Some(Marker::Info("kernel 7.3.4 cpus=2")));
        assert_eq!(marker("LAB: BEGIN vmtests"), Some(Marker::Begin("vmtests")));
        assert_eq!(marker("LAB: END vmtests rc=1 ms=76123\r"), Some(Marker::End { name: "vmtests", rc: 1, ms: 76123 }));
        assert_eq!(marker("LAB: SETUP-FAIL swapon /dev/vda"), Some(Marker::SetupFail("swapon /dev/vda")));
        assert_eq!(marker("LAB: DONE"), Some(Marker::Done));
        // After a kernel line the console did not end.
        assert_eq!(marker("[   3.1] x86/fpu: LAB: BEGIN kunit"), Some(Marker::Begin("kunit")));
        // A cut END still ends its test.
        assert_eq!(marker("LAB: END kunit"), Some(Marker::End { name: "kunit", rc: -1, ms: 0 }));
        assert_eq!(marker("LAB: END kunit rc=0"), Some(Marker::End { name: "kunit", rc: 0, ms: 0 }));
        assert_eq!(marker("# LAB is not a marker"), None);
        assert_eq!(marker("ok 1 LAB"), None);
    }
}
