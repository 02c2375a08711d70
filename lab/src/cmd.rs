//! Running external programs (git, make, QEMU) with their output kept.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Renders a command the way a user would type it into a POSIX shell, for
/// messages and for the command lines the lab writes down (`qemu.cmd`).
pub fn describe(cmd: &Command) -> String {
    let quote = |s: &str| -> String {
        // Only a NUL cannot be quoted, and no argument can hold one.
        shlex::try_quote(s).map_or_else(|_| s.replace('\0', ""), Into::into)
    };
    let mut s = String::new();
    if let Some(dir) = cmd.get_current_dir() {
        s.push_str(&format!("(cd {} && ", quote(&dir.to_string_lossy())));
    }
    s.push_str(&quote(&cmd.get_program().to_string_lossy()));
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&quote(&arg.to_string_lossy()));
    }
    if cmd.get_current_dir().is_some() {
        s.push(')');
    }
    s
}

/// Runs `cmd` and returns its standard output; fails with its standard
/// error when it exits non-zero.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}):\n{}{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd`, appending its standard output and error to `log`, and
/// calls `on_line` for each line as it arrives.
///
/// On failure the error names the log and quotes the first lines that
/// look like errors.
pub fn run_logged(cmd: &mut Command, log: &Path, on_line: impl FnMut(&str)) -> Result<()> {
    run_logged_with_input(cmd, Stdio::null(), log, on_line)
}

/// As [`run_logged`], with `input` as the command's standard input (an
/// answer to a question it asks).
pub fn run_logged_with_input(
    cmd: &mut Command,
    input: impl Into<Stdio>,
    log: &Path,
    mut on_line: impl FnMut(&str),
) -> Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut logf = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    writeln!(logf, "$ {}", describe(cmd))?;
    // Both streams go to one pipe so the log keeps their order.
    let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
    let writer2 = writer.try_clone()?;
    let mut child = cmd
        .stdin(input)
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    // Drop our copies of the write end, so EOF arrives when the child exits.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut errors = Vec::new();
    for line in BufReader::new(reader).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        writeln!(logf, "{line}")?;
        if errors.len() < 20 && looks_like_error(&line) {
            errors.push(line.clone());
        }
        on_line(&line);
    }
    let status = child.wait()?;
    writeln!(logf, "# exit: {status}")?;
    if !status.success() {
        let excerpt = if errors.is_empty() { tail(log, 15).unwrap_or_default() } else { errors.join("\n") };
        bail!("`{}` failed ({status}).\nFirst error lines:\n{excerpt}\nFull log: {}", describe(cmd), log.display());
    }
    Ok(())
}

/// Whether a build-log line reports an error (compiler, linker, make).
///
/// make's closing `*** [...] Error 2` lines only repeat that something
/// failed, so they do not count.
pub fn looks_like_error(line: &str) -> bool {
    let make_stop = line.contains("*** ") && line.trim_end().rsplit(' ').nth(1).is_none_or(|w| w != "Error");
    line.contains("error:")
        || line.contains("error[")
        || make_stop
        || line.contains("undefined reference")
        || line.contains("undefined symbol")
        || line.starts_with("ERROR:")
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_build_names_its_first_error_and_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let mut c = Command::new("sh");
        c.arg("-c").arg(
            "echo '  CC      mm/memory.o'; echo \"mm/memory.c:12:3: error: use of undeclared identifier 'x'\" >&2; \
             echo 'mm/memory.c:40:1: error: expected expression'; \
             echo 'make[1]: *** [scripts/Makefile.build:229: mm/memory.o] Error 1'; exit 2",
        );
        let e = format!("{:#}", run_logged(&mut c, &log, |_| {}).unwrap_err());
        let excerpt = e.split_once("First error lines:\n").and_then(|(_, x)| x.split_once("Full log")).expect(&e).0;
        let first = excerpt.find("12:3: error: use of undeclared").expect(&e);
        assert!(first < excerpt.find("40:1: error").expect(&e), "errors in the order the build printed them: {e}");
        assert!(!excerpt.contains("Error 1"), "make's summary line is not an error of its own: {e}");
        assert!(e.contains("exit status: 2") && e.contains(&log.display().to_string()), "{e}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("  CC      mm/memory.o") && text.contains("# exit: exit status: 2"), "{text}");
    }

    /// What describe() writes, a shell reads back as the same arguments.
    #[test]
    fn a_described_command_reads_back_as_itself() {
        let args = ["-append", "console=ttyS0 lab.plan=\"a b\"", "it's", "$HOME", "", "a;b", "-m", "4096"];
        let mut c = Command::new("qemu-system-x86_64");
        c.args(args).current_dir("/tmp/a b");
        let text = describe(&c);
        let inner = text.strip_prefix("(cd '/tmp/a b' && ").and_then(|t| t.strip_suffix(')')).expect(&text);
        let words = shlex::split(inner).expect(&text);
        assert_eq!(words[0], "qemu-system-x86_64");
        assert_eq!(&words[1..], args, "{text}");
        assert_eq!(describe(Command::new("make").arg("-j3")), "make -j3");
    }

    #[test]
    fn error_lines() {
        assert!(looks_like_error("mm/memory.c:12:3: error: use of undeclared identifier 'x'"));
        assert!(looks_like_error("error[E0425]: cannot find value `x` in this scope"));
        assert!(looks_like_error("make[2]: *** No rule to make target 'usr/x'.  Stop."));
        assert!(looks_like_error("ld.lld: error: undefined symbol: release_fault_lock"));
        assert!(!looks_like_error("make[1]: *** [/l/Makefile:236: __sub-make] Error 2"));
        assert!(!looks_like_error("  CC      mm/memory.o"));
    }
}
