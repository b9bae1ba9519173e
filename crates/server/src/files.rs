//! The open-file limit: every connection is a file descriptor, and long polls and event streams
//! keep theirs for minutes. The usual soft limit (1024) is far below what a replica serving
//! thousands of agents holds; past it, `accept` fails and the server answers no one at all.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Assumed when the limit cannot be read.
const FALLBACK: u64 = 1024;

/// Raises the soft open-file limit to the hard one; returns the limit in force.
pub fn raise_open_file_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let (soft, hard) = (limit.current, limit.maximum);
    // `None` is "unlimited".
    if soft.is_none() || soft == hard {
        return soft.unwrap_or(u64::MAX);
    }
    match setrlimit(Resource::Nofile, Rlimit { current: hard, maximum: hard }) {
        Ok(()) => {
            let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
            tracing::info!(from = soft.unwrap_or(FALLBACK), to = now, "raised the open-file limit");
            now
        }
        Err(e) => {
            let soft = soft.unwrap_or(FALLBACK);
            tracing::warn!(limit = soft, error = %e, "cannot raise the open-file limit; open requests are capped to fit it");
            soft
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let limit = raise_open_file_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.current, after.maximum);
        assert_eq!(after.current.unwrap_or(u64::MAX), limit);
    }
}
