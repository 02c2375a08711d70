//! Progress on long steps: bars and spinners on a terminal, and plain
//! lines (every tenth of the way, and on events) in CI logs.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A progress indicator that degrades to plain lines off a terminal.
pub struct Progress {
    bar: ProgressBar,
    tty: bool,
    label: String,
    /// Last tenth reported in plain mode.
    tenth: u64,
    /// What `set` counts, for plain lines ("steps", "MiB").
    unit: &'static str,
    /// Divides positions for plain lines (bytes to MiB).
    scale: u64,
}

impl Progress {
    fn new(bar: ProgressBar, label: &str) -> Self {
        let tty = std::io::stderr().is_terminal();
        if !tty {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        Self { bar, tty, label: label.to_string(), tenth: 0, unit: "steps", scale: 1 }
    }

    /// A bar of `len` steps (an estimate; it grows if exceeded).
    pub fn bar(label: &str, len: u64, template: &str) -> Self {
        let bar = ProgressBar::new(len);
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.set_prefix(label.to_string());
        Self::new(bar, label)
    }

    /// Reports positions as bytes (in MiB on plain lines).
    pub fn in_bytes(mut self) -> Self {
        self.unit = "MiB";
        self.scale = 1 << 20;
        self
    }

    /// A spinner with a message.
    pub fn spinner(label: &str, msg: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]").expect("valid template"));
        bar.set_prefix(label.to_string());
        bar.set_message(msg.to_string());
        let p = Self::new(bar, label);
        if p.tty {
            p.bar.enable_steady_tick(Duration::from_millis(250));
        } else {
            eprintln!("lab: {label}: {msg}");
        }
        p
    }

    /// Moves a bar to `pos`, growing it past its estimate if needed.
    pub fn set(&mut self, pos: u64, msg: &str) {
        if pos > self.bar.length().unwrap_or(0) {
            self.bar.set_length(pos + pos / 20 + 1);
        }
        self.bar.set_position(pos);
        if self.tty {
            self.bar.set_message(msg.to_string());
        } else {
            let len = self.bar.length().unwrap_or(1).max(1);
            let tenth = pos * 10 / len;
            if tenth > self.tenth {
                self.tenth = tenth;
                eprintln!(
                    "lab: {}: {}% ({}/{} {}, {}s)",
                    self.label,
                    tenth * 10,
                    pos / self.scale,
                    len / self.scale,
                    self.unit,
                    self.bar.elapsed().as_secs()
                );
            }
        }
    }

    /// Changes a spinner's message (printed as a line off a terminal).
    pub fn message(&self, msg: &str) {
        if self.tty {
            self.bar.set_message(msg.to_string());
        } else {
            eprintln!("lab: {}: {msg}", self.label);
        }
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: &str) {
        if self.tty {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
