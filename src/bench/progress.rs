//! Progress of a running phase on stderr: a redrawn bar when stderr is a terminal, a plain line
//! every few seconds otherwise (CI logs), so a long run shows it is alive without flooding.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::data::Tracker;

/// How often the bar is redrawn on a terminal.
const BAR_INTERVAL: Duration = Duration::from_millis(200);
/// How often a plain progress line is printed when stderr is not a terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(5);
const BAR_WIDTH: usize = 30;

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Requests,
}

/// A phase in progress; [`Progress::finish`] ends its display.
#[derive(Debug)]
pub struct Progress {
    label: String,
    started: Instant,
    tracker: Tracker,
    renderer: JoinHandle<()>,
    terminal: bool,
}

impl Progress {
    /// Starts displaying `label`'s progress towards `total` units counted by the returned
    /// progress's tracker.
    pub fn start(label: &str, total: u64, unit: Unit) -> Progress {
        let tracker = Tracker::default();
        let terminal = std::io::stderr().is_terminal();
        let started = Instant::now();
        let renderer = {
            let tracker = tracker.clone();
            let label = label.to_owned();
            tokio::spawn(async move {
                let interval = if terminal {
                    BAR_INTERVAL
                } else {
                    LINE_INTERVAL
                };
                if !terminal {
                    eprintln!("{label}: started");
                }
                loop {
                    tokio::time::sleep(interval).await;
                    let line = status(&label, tracker.get(), total, unit, started.elapsed());
                    let mut err = std::io::stderr().lock();
                    // Progress is best effort: a closed stderr must not stop the benchmark.
                    let _ = if terminal {
                        write!(err, "\r{line}\x1b[K")
                    } else {
                        writeln!(err, "{line}")
                    };
                    let _ = err.flush();
                }
            })
        };
        Progress {
            label: label.to_owned(),
            started,
            tracker,
            renderer,
            terminal,
        }
    }

    pub fn tracker(&self) -> Tracker {
        self.tracker.clone()
    }

    /// Stops the display, clearing the bar from the terminal.
    pub fn finish(self) {
        self.renderer.abort();
        if self.terminal {
            eprint!("\r\x1b[K");
        } else {
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!("{}: done in {secs:.2} s", self.label);
        }
    }
}

/// One progress line: `label [#####-----] 50% 512/1024 MiB 120.3 MiB/s`.
fn status(label: &str, done: u64, total: u64, unit: Unit, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    let bar = format!("{}{}", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled));
    let percent = (fraction * 100.0).floor();
    let rate = super::stats::rate(done as f64, elapsed);
    match unit {
        Unit::Bytes => {
            let mib = |n: u64| n as f64 / (1 << 20) as f64;
            format!(
                "{label} [{bar}] {percent:.0}% {:.0}/{:.0} MiB {:.1} MiB/s",
                mib(done),
                mib(total),
                rate / (1 << 20) as f64
            )
        }
        Unit::Requests => {
            format!("{label} [{bar}] {percent:.0}% {done}/{total} requests {rate:.0}/s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let line = status(
            "put",
            512 << 20,
            1024 << 20,
            Unit::Bytes,
            Duration::from_secs(2),
        );
        assert_eq!(
            line,
            format!(
                "put [{}{}] 50% 512/1024 MiB 256.0 MiB/s",
                "#".repeat(15),
                "-".repeat(15)
            )
        );
        let line = status("get", 10, 10, Unit::Requests, Duration::from_secs(1));
        assert_eq!(
            line,
            format!("get [{}] 100% 10/10 requests 10/s", "#".repeat(30))
        );
        assert!(status("x", 5, 0, Unit::Requests, Duration::ZERO).contains("100%"));
    }
}
