//! Asking many questions at once: a fixed number of worker threads share the queue and a rate
//! limit, and hand each answer to the caller's thread as it arrives (which writes it to the
//! cache). The first failure stops the workers from starting new questions; answers already
//! under way are still delivered, so nothing asked is lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::client::{AskError, Client, Reply};

/// A question still to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub query: u64,
    pub prompt: String,
}

/// Spaces requests at least `interval` apart, across all workers.
#[derive(Debug)]
struct RateLimit {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// At most `per_second` requests a second; 0 is no limit.
    fn new(per_second: f64) -> RateLimit {
        let interval = if per_second > 0.0 {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        RateLimit {
            interval,
            next: Mutex::new(None),
        }
    }

    /// Waits for this request's turn.
    fn wait(&self) {
        if self.interval.is_zero() {
            return;
        }
        let now = Instant::now();
        let slot = {
            // A worker that panicked while holding the lock cannot leave a bad slot behind.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        std::thread::sleep(slot.saturating_duration_since(now));
    }
}

/// Asks every job's prompt with at most `concurrency` requests in flight and `rate` requests a
/// second (0: no limit), calling `arrived` on this thread with each answer as it comes. Returns
/// the first error (a question that failed, or `arrived` failing) once every worker stopped.
pub fn ask_all(
    client: &Client,
    jobs: &[Job],
    concurrency: usize,
    rate: f64,
    mut arrived: impl FnMut(&Job, Reply) -> Result<()>,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let limit = RateLimit::new(rate);
    let (send, receive) = mpsc::channel::<(usize, Result<Reply, AskError>)>();
    let mut first_error: Option<anyhow::Error> = None;
    std::thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, jobs.len().max(1)) {
            let send = send.clone();
            let (next, stop, limit) = (&next, &stop, &limit);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() || stop.load(Ordering::Relaxed) {
                    break;
                }
                limit.wait();
                let result = client.ask(&jobs[i].prompt, &|| stop.load(Ordering::Relaxed));
                let failed = result.is_err();
                if send.send((i, result)).is_err() || failed {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            });
        }
        drop(send);
        for (i, result) in receive {
            let delivered = result
                .map_err(anyhow::Error::from)
                .and_then(|reply| arrived(&jobs[i], reply));
            if let Err(e) = delivered {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_spaces_requests_across_threads() {
        let limit = RateLimit::new(50.0);
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..3 {
                        limit.wait();
                    }
                });
            }
        });
        // Nine requests at 50 a second: the last may start no sooner than 8 × 20 ms.
        assert!(started.elapsed() >= Duration::from_millis(160));
        let unlimited = RateLimit::new(0.0);
        let started = Instant::now();
        for _ in 0..1000 {
            unlimited.wait();
        }
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
