//! Throttling of password guesses per client address: at most [`MAX_FAILURES`] failed (or
//! still running) password checks per [`WINDOW`] from one client, then `429` with
//! `Retry-After` until the oldest failure leaves the window. Applies to `POST /login` and to
//! HTTP Basic credentials alike (both check the admin password).
//!
//! Runs in the HTTP handlers. A client is an IPv4 address or an IPv6 /64 (one host usually
//! owns a whole /64); requests without a known address share one bucket. The table holds at
//! most [`MAX_CLIENTS`] clients: when it is full, clients whose failures have all expired are
//! dropped first, then the one whose last failure is the oldest.
//!
//! An attempt is counted from the moment it starts (so that many concurrent guesses cannot
//! all pass the check before the first fails) until it succeeds; an attempt dropped without
//! an outcome (the client went away during the check) counts as a failure.

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// Failed password checks allowed per client and window.
pub const MAX_FAILURES: usize = 5;
/// The sliding window.
pub const WINDOW: Duration = Duration::from_mins(1);
/// Most clients tracked at once.
pub const MAX_CLIENTS: usize = 10_000;

/// Who is throttled: an IPv4 address, an IPv6 /64, or "address unknown".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 client (IPv4-mapped IPv6 included).
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 client.
    V6(u64),
    /// The server did not say.
    Unknown,
}

impl ClientKey {
    /// The key of a client address.
    #[must_use]
    pub fn of(addr: Option<SocketAddr>) -> Self {
        match addr.map(|a| a.ip().to_canonical()) {
            Some(IpAddr::V4(v4)) => Self::V4(v4),
            Some(IpAddr::V6(v6)) => Self::V6(u64::try_from(v6.to_bits() >> 64).unwrap_or_default()),
            None => Self::Unknown,
        }
    }
}

#[derive(Debug, Default)]
struct Client {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

/// The throttle.
#[derive(Debug)]
pub struct Limiter {
    clients: Mutex<HashMap<ClientKey, Client>>,
    max_failures: usize,
    window: Duration,
    max_clients: usize,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    /// The default limits.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(MAX_FAILURES, WINDOW, MAX_CLIENTS)
    }

    /// Other limits (tests).
    #[must_use]
    pub fn with_limits(max_failures: usize, window: Duration, max_clients: usize) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            max_failures: max_failures.max(1),
            window,
            max_clients: max_clients.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, Client>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a password check for `key` at `now`.
    ///
    /// # Errors
    /// How long the client must wait, when it has used up its attempts.
    pub fn begin(&self, key: ClientKey, now: Instant) -> Result<Attempt<'_>, Duration> {
        let mut clients = self.lock();
        if !clients.contains_key(&key) && clients.len() >= self.max_clients {
            self.make_room(&mut clients, now);
        }
        let client = clients.entry(key).or_default();
        while client
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.window)
        {
            client.failures.pop_front();
        }
        if client.failures.len() + client.in_flight >= self.max_failures {
            let wait = client
                .failures
                .front()
                .map_or(Duration::from_secs(1), |&t| {
                    (t + self.window).saturating_duration_since(now)
                });
            return Err(wait);
        }
        client.in_flight += 1;
        Ok(Attempt {
            limiter: self,
            key,
            started: now,
            done: false,
        })
    }

    fn make_room(&self, clients: &mut HashMap<ClientKey, Client>, now: Instant) {
        clients.retain(|_, c| {
            c.in_flight > 0
                || c.failures
                    .back()
                    .is_some_and(|&t| now.saturating_duration_since(t) < self.window)
        });
        while clients.len() >= self.max_clients {
            let Some(oldest) = clients
                .iter()
                .min_by_key(|(_, c)| (c.in_flight, c.failures.back().copied()))
                .map(|(k, _)| *k)
            else {
                break;
            };
            clients.remove(&oldest);
        }
    }

    fn finish(&self, key: ClientKey, failed_at: Option<Instant>) {
        let mut clients = self.lock();
        // The client may have been evicted meanwhile: then there is nothing to update.
        if let Some(client) = clients.get_mut(&key) {
            client.in_flight = client.in_flight.saturating_sub(1);
            if let Some(t) = failed_at {
                client.failures.push_back(t);
            }
            if client.in_flight == 0 && client.failures.is_empty() {
                clients.remove(&key);
            }
        }
    }

    /// Clients tracked.
    #[must_use]
    pub fn clients(&self) -> usize {
        self.lock().len()
    }
}

/// A password check in progress; say how it ended with [`succeeded`](Self::succeeded) or
/// [`failed`](Self::failed). Dropping it without either counts as a failure.
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    key: ClientKey,
    started: Instant,
    done: bool,
}

impl Attempt<'_> {
    /// The password was right: the attempt does not count.
    pub fn succeeded(mut self) {
        self.done = true;
        self.limiter.finish(self.key, None);
    }

    /// The password was wrong: a failure at `now`.
    pub fn failed(mut self, now: Instant) {
        self.done = true;
        self.limiter.finish(self.key, Some(now));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.limiter.finish(self.key, Some(self.started));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        s.parse().ok().map(|ip| SocketAddr::new(ip, 1234))
    }

    const A: ClientKey = ClientKey::V4(Ipv4Addr::new(198, 18, 0, 1));
    const B: ClientKey = ClientKey::V4(Ipv4Addr::new(198, 18, 0, 2));
    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn keys() {
        assert_eq!(ClientKey::of(addr("198.18.0.1")), A);
        assert_eq!(ClientKey::of(addr("::ffff:198.18.0.1")), A);
        assert_eq!(
            ClientKey::of(addr("2001:db8:1:2::1")),
            ClientKey::of(addr("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(addr("2001:db8:1:2::1")),
            ClientKey::of(addr("2001:db8:1:3::1"))
        );
        assert_eq!(ClientKey::of(None), ClientKey::Unknown);
    }

    #[test]
    fn five_failures_per_minute_then_wait() {
        let t0 = Instant::now();
        let l = Limiter::new();
        for i in 0..5 {
            l.begin(A, t0 + i * SEC).unwrap().failed(t0 + i * SEC);
        }
        assert_eq!(l.begin(A, t0 + 10 * SEC).unwrap_err(), 50 * SEC);
        assert!(
            l.begin(B, t0 + 10 * SEC).is_ok(),
            "another client is not affected"
        );
        assert_eq!(l.begin(A, t0 + 59 * SEC).unwrap_err(), SEC);
        // The first failure leaves the window at 60 s: one more attempt.
        l.begin(A, t0 + 60 * SEC).unwrap().failed(t0 + 60 * SEC);
        assert_eq!(l.begin(A, t0 + 60 * SEC).unwrap_err(), SEC);
    }

    #[test]
    fn success_does_not_count_and_does_not_forgive() {
        let t0 = Instant::now();
        let l = Limiter::new();
        for _ in 0..10 {
            l.begin(A, t0).unwrap().succeeded();
        }
        assert_eq!(l.clients(), 0, "nothing kept for clients without failures");
        for _ in 0..4 {
            l.begin(A, t0).unwrap().failed(t0);
        }
        l.begin(A, t0).unwrap().succeeded();
        l.begin(A, t0).unwrap().failed(t0);
        assert!(l.begin(A, t0).is_err());
    }

    #[test]
    fn attempts_in_flight_count_and_dropped_ones_fail() {
        let t0 = Instant::now();
        let l = Limiter::new();
        let running: Vec<_> = (0..5).map(|_| l.begin(A, t0).unwrap()).collect();
        assert_eq!(l.begin(A, t0).unwrap_err(), SEC, "all five are running");
        drop(running);
        assert_eq!(
            l.begin(A, t0 + SEC).unwrap_err(),
            59 * SEC,
            "dropped = failed"
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let l = Limiter::with_limits(2, WINDOW, 3);
        for i in 0..3u8 {
            let key = ClientKey::V4(Ipv4Addr::new(198, 18, 7, i));
            l.begin(key, t0 + u32::from(i) * SEC)
                .unwrap()
                .failed(t0 + u32::from(i) * SEC);
        }
        assert_eq!(l.clients(), 3);
        l.begin(A, t0 + 5 * SEC).unwrap().failed(t0 + 5 * SEC);
        assert_eq!(l.clients(), 3, "198.18.7.0 (oldest failure) was evicted");
        // Expired clients are dropped before anyone else.
        l.begin(B, t0 + 62 * SEC).unwrap().failed(t0 + 62 * SEC);
        assert_eq!(l.clients(), 2, "only A and B are within the window");
    }
}
