//! Progress on standard error for work that takes longer than a second: a step line that
//! shows its elapsed time as it runs (rewritten in place on a terminal; a start and an end
//! line otherwise, so logs keep the time).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A step in progress: its line on standard error with the elapsed time.
pub struct Step {
    label: String,
    started: Instant,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    terminal: bool,
}

/// Starts a step: `label …` now, then the elapsed time every 200 ms on a terminal.
pub fn step(label: impl Into<String>) -> Step {
    let label = label.into();
    let terminal = std::io::stderr().is_terminal();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let ticker = if terminal {
        let (stop, label) = (stop.clone(), label.clone());
        Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                eprint!("\r\x1b[2K{label} … {:.1} s", started.elapsed().as_secs_f64());
                let _ = std::io::stderr().flush();
                std::thread::sleep(Duration::from_millis(200));
            }
        }))
    } else {
        eprintln!("{label} …");
        None
    };
    Step { label, started, stop, ticker, terminal }
}

/// Whether standard error is a terminal (where a ticking line can be rewritten).
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

impl Step {
    /// Ends the step and erases its line (its result is shown elsewhere).
    pub fn clear(mut self) {
        self.end();
    }

    /// Ends the step: `label: what (1.2 s)`.
    pub fn done(mut self, what: &str) -> Duration {
        let elapsed = self.end();
        eprintln!("{}: {what} ({:.1} s)", self.label, elapsed.as_secs_f64());
        elapsed
    }

    fn end(&mut self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
        self.started.elapsed()
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if self.ticker.is_some() {
            self.end();
        }
    }
}
