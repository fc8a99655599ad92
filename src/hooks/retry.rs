//! The retry policy of one event: bounded attempts, exponential backoff in between, and no
//! retry for an answer that a retry would not change (a 4xx other than 408 and 429).

use std::future::Future;
use std::time::Duration;

use crate::backoff::{Backoff, BackoffConfig};

/// How one attempt went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// The receiver answered with a status other than 2xx.
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    /// No answer: connection refused, reset, TLS failure, timeout.
    #[error("{0}")]
    Network(String),
}

impl AttemptError {
    /// Whether trying again can help: network trouble, 5xx, 408 and 429 can pass; another
    /// 4xx (a wrong path or key) will not.
    pub fn retryable(&self) -> bool {
        match self {
            AttemptError::Network(_) => true,
            AttemptError::Status(s) => *s >= 500 || *s == 408 || *s == 429,
        }
    }
}

/// Attempts per event and the waits between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries, the first one included (at least 1).
    pub attempts: u32,
    /// Wait after the first failure; it doubles after each further one.
    pub base: Duration,
    /// The wait never grows beyond this.
    pub cap: Duration,
}

impl RetryPolicy {
    /// `attempts` tries with waits of 1, 2, 4 ... at most 30 s in between.
    pub fn new(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts: attempts.max(1),
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }

    /// Calls `attempt` until it succeeds, fails for good or the attempts run out; returns the
    /// tries made, or the last error with them.
    pub async fn run<F, Fut>(&self, mut attempt: F) -> Result<u32, (AttemptError, u32)>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<(), AttemptError>>,
    {
        let mut backoff = Backoff::new(BackoffConfig {
            base: self.base,
            cap: self.cap,
            stable_after: Duration::MAX,
        });
        let mut n = 1;
        loop {
            match attempt(n).await {
                Ok(()) => return Ok(n),
                Err(e) if !e.retryable() || n >= self.attempts => return Err((e, n)),
                Err(_) => {
                    // No jitter: one sender per webhook, no herd to spread.
                    tokio::time::sleep(backoff.next_delay(1.0)).await;
                    n += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    /// Runs `policy` over attempts answering `answers` in turn; returns the outcome and the
    /// seconds (paused time) at which each attempt started.
    async fn run(
        policy: RetryPolicy,
        answers: Vec<Result<(), AttemptError>>,
    ) -> (Result<u32, (AttemptError, u32)>, Vec<u64>) {
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let t = Arc::clone(&times);
        let out = policy
            .run(|n| {
                t.lock().unwrap().push(start.elapsed().as_secs());
                let a = answers
                    .get(n as usize - 1)
                    .cloned()
                    .unwrap_or(Err(AttemptError::Status(500)));
                async move { a }
            })
            .await;
        let times = times.lock().unwrap().clone();
        (out, times)
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_until_success() {
        let answers = vec![
            Err(AttemptError::Status(500)),
            Err(AttemptError::Network("connection refused".into())),
            Err(AttemptError::Status(503)),
            Ok(()),
        ];
        let (out, times) = run(RetryPolicy::new(5), answers).await;
        assert_eq!(out, Ok(4));
        assert_eq!(times, [0, 1, 3, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded_and_waits_capped() {
        let mut policy = RetryPolicy::new(7);
        policy.cap = Duration::from_secs(4);
        let (out, times) = run(policy, Vec::new()).await;
        assert_eq!(out, Err((AttemptError::Status(500), 7)));
        assert_eq!(times, [0, 1, 3, 7, 11, 15, 19]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_error_is_not_retried() {
        let (out, times) = run(RetryPolicy::new(5), vec![Err(AttemptError::Status(404))]).await;
        assert_eq!(out, Err((AttemptError::Status(404), 1)));
        assert_eq!(times, [0]);
        assert!(AttemptError::Status(429).retryable());
    }
}
