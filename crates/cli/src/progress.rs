//! Progress of something being waited for (an operation, a rollout), on stderr so stdout stays
//! the answer. On a terminal it is an `indicatif` bar redrawn in place, with a spinner that
//! shows the client is alive while a long-poll holds; in a pipeline's log (stderr not a
//! terminal) it is a plain line, written when the progress changes and at most every
//! `log_every`, so a CI log shows where things stand without a line per poll.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the spinner turns.
const TICK: Duration = Duration::from_millis(120);

/// A progress display.
pub struct Progress {
    bar: Option<ProgressBar>,
    log_every: Duration,
    started: Instant,
    /// The last line logged and when (log mode).
    last: Option<(Instant, String)>,
}

impl Progress {
    /// A bar on stderr when it is a terminal, log lines otherwise.
    pub fn new(log_every: Duration) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(style());
            bar.enable_steady_tick(TICK);
            bar
        });
        Progress { bar, log_every, started: Instant::now(), last: None }
    }

    /// Log lines only, whatever stderr is (tests, and `--no-progress` callers).
    pub fn log_only(log_every: Duration) -> Progress {
        Progress { bar: None, log_every, started: Instant::now(), last: None }
    }

    /// Shows `done` of `total` with `message` (what is counted, the state).
    pub fn update(&mut self, done: u64, total: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(1));
            bar.set_position(if total == 0 { 1 } else { done.min(total) });
            bar.set_message(message.to_owned());
            return;
        }
        if let Some(line) = self.log_line(message, Instant::now()) {
            eprintln!("{line}");
        }
    }

    /// The line to log now for `message`, if any: when it differs from the last one logged and
    /// `log_every` has passed since (since the start for the first), at `now`.
    fn log_line(&mut self, message: &str, now: Instant) -> Option<String> {
        let since = self.last.as_ref().map_or(self.started, |(at, _)| *at);
        let changed = self.last.as_ref().is_none_or(|(_, l)| l != message);
        if changed && now.saturating_duration_since(since) >= self.log_every {
            self.last = Some((now, message.to_owned()));
            return Some(message.to_owned());
        }
        None
    }

    /// A remark (a warning while waiting) on its own line, above the bar when there is one,
    /// so the two do not overwrite each other.
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Ends the display: the bar stays on screen as it was last drawn.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn style() -> ProgressStyle {
    // The template is a constant: it parses, or the unit test below fails.
    ProgressStyle::with_template("{spinner} [{bar:24}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_template_parses() {
        assert!(ProgressStyle::with_template("{spinner} [{bar:24}] {msg}").is_ok());
    }

    #[test]
    fn a_log_gets_a_line_on_each_change_and_not_on_repeats() {
        let mut p = Progress::log_only(Duration::ZERO);
        let now = p.started;
        assert_eq!(p.log_line("1/4 running", now).as_deref(), Some("1/4 running"));
        assert_eq!(p.log_line("1/4 running", now), None);
        assert_eq!(p.log_line("2/4 running", now).as_deref(), Some("2/4 running"));
    }

    #[test]
    fn a_slow_log_waits_its_interval_before_the_next_line() {
        let hour = Duration::from_secs(3600);
        let mut p = Progress::log_only(hour);
        let start = p.started;
        assert_eq!(p.log_line("1/4 running", start), None, "nothing in the first interval");
        assert!(p.log_line("1/4 running", start + hour).is_some());
        assert_eq!(p.log_line("2/4 running", start + hour + hour / 2), None, "changed, but too soon");
        assert!(p.log_line("2/4 running", start + hour * 2).is_some());
    }
}
