//! Host names: reverse DNS (`getnameinfo(3)` with `NI_NAMEREQD`) for the addresses the API
//! shows, as classic ntop resolved them unless `-n` was given.
//!
//! Who runs what:
//! - The HTTP handlers (through [`State::hosts`](crate::state::State::hosts), on the blocking
//!   pool) call [`Resolver::name`]: it answers from the cache under a short mutex and, for an
//!   address it does not know, puts the address on a bounded queue with `try_send`. It never
//!   waits for a lookup, and a full queue just drops the request (the next listing asks
//!   again).
//! - [`Config::workers`] threads (`ntop-resolver-N`) take addresses off the queue and do the
//!   blocking lookups, one at a time each, and store the answers. A slow or dead DNS server
//!   slows only them.
//! - The collector never touches any of it.
//!
//! The cache holds at most [`Config::max_entries`] addresses. Names are kept for
//! [`Config::ttl`], "no name" answers for [`Config::negative_ttl`], and failures (a timeout,
//! no DNS server) for [`Config::failure_ttl`]; an expired name is still shown while it is
//! looked up again. When the cache is full, expired entries go first, then those closest to
//! expiry. Names are PTR answers as the system resolver gives them (not forward-confirmed);
//! one that is not a plausible host name (an address, control or markup characters, too long)
//! counts as no name.
//!
//! The lookup is a function ([`LookupFn`]) so tests inject a fake one and need no network.

use std::{
    collections::{HashMap, HashSet},
    ffi::CStr,
    fmt,
    net::IpAddr,
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::state::HostNames;

/// The answer of one reverse lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The address has this name.
    Name(String),
    /// The address has no name (`EAI_NONAME`: no PTR record).
    NoName,
    /// The lookup failed (a timeout, no DNS server); why, for the debug log.
    Failed(String),
}

/// A reverse lookup: blocking, called on the resolver's threads only.
pub type LookupFn = Arc<dyn Fn(IpAddr) -> Lookup + Send + Sync>;

/// Sizes and times of the resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Threads doing lookups.
    pub workers: usize,
    /// Addresses waiting for a lookup, at most.
    pub queue: usize,
    /// Addresses cached, at most.
    pub max_entries: usize,
    /// How long a name is kept before it is looked up again.
    pub ttl: Duration,
    /// How long "no name" is kept.
    pub negative_ttl: Duration,
    /// How long a failed lookup is not retried.
    pub failure_ttl: Duration,
}

impl Default for Config {
    /// 4 threads, 1024 queued, 65,536 cached (about 8 MB at most), names for an hour,
    /// "no name" for 10 minutes, failures for a minute.
    fn default() -> Self {
        Self {
            workers: 4,
            queue: 1024,
            max_entries: 65_536,
            ttl: Duration::from_hours(1),
            negative_ttl: Duration::from_mins(10),
            failure_ttl: Duration::from_mins(1),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// `None`: no name (or none yet after a failure).
    name: Option<Arc<str>>,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<IpAddr, Entry>,
    /// Addresses queued or being looked up (so that one is not queued twice).
    pending: HashSet<IpAddr>,
}

/// The reverse-DNS resolver: a cache in front of a bounded queue and worker threads. See the
/// [module docs](self). Dropping it stops the workers once their current lookup returns.
pub struct Resolver {
    cache: Arc<Mutex<Cache>>,
    queue: SyncSender<IpAddr>,
    config: Config,
    workers: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("config", &self.config)
            .field("cached", &lock(&self.cache).entries.len())
            .finish_non_exhaustive()
    }
}

fn lock(cache: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    // Every update is a few inserts and removes: a panic leaves a usable cache.
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Resolver {
    /// Starts the worker threads with the system resolver ([`system_lookup`]).
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub fn start(config: Config) -> std::io::Result<Self> {
        Self::with_lookup(config, &(Arc::new(system_lookup) as LookupFn))
    }

    /// Starts the worker threads with `lookup` (tests pass a fake one).
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub fn with_lookup(config: Config, lookup: &LookupFn) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::sync_channel::<IpAddr>(config.queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let cache = Arc::new(Mutex::new(Cache::default()));
        let workers = (0..config.workers.max(1))
            .map(|n| {
                let receiver = Arc::clone(&receiver);
                let cache = Arc::clone(&cache);
                let lookup = Arc::clone(lookup);
                thread::Builder::new()
                    .name(format!("ntop-resolver-{n}"))
                    .spawn(move || {
                        loop {
                            // Holding the receiver's lock only while waiting for an address.
                            let next = receiver
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .recv();
                            let Ok(ip) = next else {
                                return; // The resolver was dropped.
                            };
                            let answer = lookup(ip);
                            store(&cache, &config, ip, answer, Instant::now());
                        }
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            cache,
            queue,
            config,
            workers,
        })
    }

    /// The name of `ip` if known (also an expired one, while it is looked up again); queues a
    /// lookup when there is none or it expired. Never blocks on a lookup.
    #[must_use]
    pub fn name(&self, ip: IpAddr) -> Option<Arc<str>> {
        let ip = ip.to_canonical();
        if !worth_resolving(ip) {
            return None;
        }
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        let (known, fresh) = match cache.entries.get(&ip) {
            Some(e) => (e.name.clone(), e.expires > now),
            None => (None, false),
        };
        if !fresh && cache.pending.insert(ip) {
            match self.queue.try_send(ip) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    cache.pending.remove(&ip);
                }
            }
        }
        known
    }

    /// Adds to `out` every cached address whose name contains `needle` (lowercase),
    /// ignoring ASCII case.
    pub fn matching(&self, needle: &str, out: &mut HashSet<IpAddr>) {
        let cache = lock(&self.cache);
        out.extend(cache.entries.iter().filter_map(|(ip, e)| {
            e.name
                .as_deref()
                .is_some_and(|name| contains_ignore_ascii_case(name, needle))
                .then_some(*ip)
        }));
    }

    /// Addresses cached (names and "no name" answers).
    #[must_use]
    pub fn cached(&self) -> usize {
        lock(&self.cache).entries.len()
    }

    /// Stops the workers and waits for them (tests; the daemon just drops the resolver, and a
    /// lookup in progress ends with the process).
    pub fn shutdown(self) {
        let Self { queue, workers, .. } = self;
        drop(queue);
        for w in workers {
            let _ = w.join();
        }
    }
}

impl HostNames for Resolver {
    fn name(&self, ip: IpAddr) -> Option<Arc<str>> {
        Self::name(self, ip)
    }

    fn matching(&self, needle: &str, out: &mut HashSet<IpAddr>) {
        Self::matching(self, needle, out);
    }
}

/// Whether a PTR lookup of `ip` can mean anything: not for the unspecified address, multicast
/// or the IPv4 broadcast address.
fn worth_resolving(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Stores the answer for `ip` (called by a worker), keeping the cache within its bound.
fn store(cache: &Mutex<Cache>, config: &Config, ip: IpAddr, answer: Lookup, now: Instant) {
    let mut cache = lock(cache);
    cache.pending.remove(&ip);
    let previous = cache.entries.get(&ip).and_then(|e| e.name.clone());
    let (name, ttl) = match answer {
        Lookup::Name(name) => {
            if let Some(clean) = clean_name(&name) {
                (Some(Arc::from(clean)), config.ttl)
            } else {
                tracing::debug!(%ip, name = %name.escape_debug(), "ignoring an implausible PTR name");
                (None, config.negative_ttl)
            }
        }
        Lookup::NoName => (None, config.negative_ttl),
        // Keep showing a name we had: the DNS server may be down for a moment.
        Lookup::Failed(why) => {
            tracing::debug!(%ip, "reverse lookup failed: {why}");
            (previous, config.failure_ttl)
        }
    };
    if !cache.entries.contains_key(&ip) && cache.entries.len() >= config.max_entries.max(1) {
        make_room(&mut cache.entries, config.max_entries.max(1), now);
    }
    cache.entries.insert(
        ip,
        Entry {
            name,
            expires: now + ttl,
        },
    );
}

/// Frees at least a tenth of `max` places: expired entries first, then the ones that expire
/// soonest. O(entries), done once per tenth of the cache, not per insert.
fn make_room(entries: &mut HashMap<IpAddr, Entry>, max: usize, now: Instant) {
    let keep = max - max.div_ceil(10);
    entries.retain(|_, e| e.expires > now);
    if entries.len() <= keep {
        return;
    }
    let mut expiries: Vec<Instant> = entries.values().map(|e| e.expires).collect();
    let cut = expiries.len() - keep;
    let (_, nth, _) = expiries.select_nth_unstable(cut - 1);
    let cutoff = *nth;
    let mut removed = 0;
    // Everything expiring before the cutoff, and as many at the cutoff as needed.
    entries.retain(|_, e| {
        if e.expires < cutoff || (e.expires == cutoff && removed < cut) {
            removed += 1;
            false
        } else {
            true
        }
    });
}

/// A PTR answer as shown: without the trailing dot; `None` if it is not a plausible host name
/// (empty, longer than 253 characters, an IP address, or with characters other than printable
/// ASCII: spaces, control characters, non-ASCII, and the markup characters `<>"'&\` and the
/// backtick are refused).
#[must_use]
pub fn clean_name(name: &str) -> Option<&str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let plausible = !name.is_empty()
        && name.len() <= 253
        && name.parse::<IpAddr>().is_err()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\"'&\\`".contains(&b));
    plausible.then_some(name)
}

/// Whether `haystack` contains `needle` (lowercase), ignoring ASCII case; no allocation.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The system's reverse lookup: `getnameinfo(3)` with `NI_NAMEREQD` (a name or an error,
/// never the address as text), through NSS (`/etc/hosts`, DNS, …). Blocks up to the system
/// resolver's timeouts.
#[must_use]
pub fn system_lookup(ip: IpAddr) -> Lookup {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default(),
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe {
                std::ptr::from_mut(&mut storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin);
            }
            size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or_default(),
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
            unsafe {
                std::ptr::from_mut(&mut storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6);
            }
            size_of::<libc::sockaddr_in6>()
        }
    };
    let mut host = [0 as libc::c_char; 1025]; // NI_MAXHOST
    // SAFETY: `storage` holds a socket address of `len` bytes; `host` is a writable buffer of
    // its stated length; no service is asked for (null, 0).
    let rc = unsafe {
        libc::getnameinfo(
            std::ptr::from_ref(&storage).cast::<libc::sockaddr>(),
            libc::socklen_t::try_from(len).unwrap_or_default(),
            host.as_mut_ptr(),
            libc::socklen_t::try_from(host.len()).unwrap_or_default(),
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    match rc {
        0 => {
            // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
            let name = unsafe { CStr::from_ptr(host.as_ptr()) };
            Lookup::Name(name.to_string_lossy().into_owned())
        }
        libc::EAI_NONAME => Lookup::NoName,
        libc::EAI_SYSTEM => Lookup::Failed(std::io::Error::last_os_error().to_string()),
        other => {
            // SAFETY: gai_strerror returns a static NUL-terminated string for any code.
            let text = unsafe { CStr::from_ptr(libc::gai_strerror(other)) };
            Lookup::Failed(text.to_string_lossy().into_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Condvar,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A fake DNS: fixed answers, counting lookups per address.
    struct Fake {
        answers: HashMap<IpAddr, Lookup>,
        calls: Mutex<HashMap<IpAddr, usize>>,
    }

    impl Fake {
        fn new(answers: &[(&str, Lookup)]) -> Arc<Self> {
            Arc::new(Self {
                answers: answers.iter().map(|(a, l)| (ip(a), l.clone())).collect(),
                calls: Mutex::default(),
            })
        }

        fn lookup(self: &Arc<Self>) -> LookupFn {
            let me = Arc::clone(self);
            Arc::new(move |ip| {
                *me.calls.lock().unwrap().entry(ip).or_default() += 1;
                me.answers.get(&ip).cloned().unwrap_or(Lookup::NoName)
            })
        }

        fn calls(&self, a: &str) -> usize {
            self.calls.lock().unwrap().get(&ip(a)).copied().unwrap_or(0)
        }
    }

    /// Polls `r.name(a)` until it is not pending any more (the worker stored an answer).
    fn settle(r: &Resolver, a: &str) -> Option<Arc<str>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let name = r.name(ip(a));
            let pending = lock(&r.cache).pending.contains(&ip(a));
            if !pending && lock(&r.cache).entries.contains_key(&ip(a)) {
                return name.or_else(|| r.name(ip(a)));
            }
            assert!(Instant::now() < deadline, "no answer for {a}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn names_arrive_in_the_background_and_are_cached() {
        let fake = Fake::new(&[
            ("192.0.2.1", Lookup::Name("gw.example.net.".into())),
            ("192.0.2.3", Lookup::Failed("timed out".into())),
            ("2001:db8::1", Lookup::Name("Six.Example.ORG".into())),
        ]);
        let r = Resolver::with_lookup(Config::default(), &fake.lookup()).unwrap();
        // Not known yet: no name now, a lookup is queued.
        assert_eq!(r.name(ip("192.0.2.1")), None);
        assert_eq!(settle(&r, "192.0.2.1").as_deref(), Some("gw.example.net"));
        assert_eq!(settle(&r, "192.0.2.2"), None, "no PTR record");
        assert_eq!(settle(&r, "192.0.2.3"), None, "failed");
        assert_eq!(
            settle(&r, "2001:db8::1").as_deref(),
            Some("Six.Example.ORG")
        );
        // Cached, positive and negative: asking again looks nothing up.
        for _ in 0..10 {
            let _ = r.name(ip("192.0.2.1"));
            let _ = r.name(ip("192.0.2.2"));
            let _ = r.name(ip("192.0.2.3"));
        }
        assert_eq!(
            (
                fake.calls("192.0.2.1"),
                fake.calls("192.0.2.2"),
                fake.calls("192.0.2.3")
            ),
            (1, 1, 1)
        );
        // IPv4-mapped IPv6 is the IPv4 address.
        assert_eq!(
            r.name(ip("::ffff:192.0.2.1")).as_deref(),
            Some("gw.example.net")
        );
        // Search over names, ignoring case.
        let mut out = HashSet::new();
        r.matching("example", &mut out);
        assert_eq!(out, HashSet::from([ip("192.0.2.1"), ip("2001:db8::1")]));
        out.clear();
        r.matching("six.example.org", &mut out);
        assert_eq!(out, HashSet::from([ip("2001:db8::1")]));
        // Multicast, broadcast, unspecified: never looked up.
        for a in ["224.0.0.1", "255.255.255.255", "0.0.0.0", "ff02::1", "::"] {
            assert_eq!(r.name(ip(a)), None);
        }
        r.shutdown();
        assert_eq!(fake.calls("ff02::1") + fake.calls("224.0.0.1"), 0);
    }

    #[test]
    fn expired_entries_are_looked_up_again_and_failures_keep_the_old_name() {
        let answers = Arc::new(Mutex::new(Lookup::Name("one.example".to_owned())));
        let calls = Arc::new(AtomicUsize::new(0));
        let lookup: LookupFn = {
            let (answers, calls) = (Arc::clone(&answers), Arc::clone(&calls));
            Arc::new(move |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                answers.lock().unwrap().clone()
            })
        };
        let config = Config {
            ttl: Duration::from_millis(30),
            negative_ttl: Duration::from_millis(30),
            failure_ttl: Duration::from_millis(30),
            ..Config::default()
        };
        let r = Resolver::with_lookup(config, &lookup).unwrap();
        assert_eq!(settle(&r, "198.51.100.1").as_deref(), Some("one.example"));
        thread::sleep(Duration::from_millis(40));
        // Expired: the old name is still shown while it is looked up again.
        *answers.lock().unwrap() = Lookup::Failed("timed out".into());
        assert_eq!(r.name(ip("198.51.100.1")).as_deref(), Some("one.example"));
        assert_eq!(settle(&r, "198.51.100.1").as_deref(), Some("one.example"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        thread::sleep(Duration::from_millis(40));
        *answers.lock().unwrap() = Lookup::NoName;
        let _ = r.name(ip("198.51.100.1"));
        assert_eq!(settle(&r, "198.51.100.1"), None, "the name went away");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        r.shutdown();
    }

    #[test]
    fn the_queue_is_bounded_and_never_blocks() {
        // One worker, stuck in its first lookup until released; a queue of 2.
        let gate = Arc::new((Mutex::new((false, 0_usize)), Condvar::new()));
        let lookup: LookupFn = {
            let gate = Arc::clone(&gate);
            Arc::new(move |_| {
                let (m, cv) = &*gate;
                let mut g = m.lock().unwrap();
                g.1 += 1;
                cv.notify_all();
                while !g.0 {
                    g = cv.wait(g).unwrap();
                }
                Lookup::NoName
            })
        };
        let config = Config {
            workers: 1,
            queue: 2,
            ..Config::default()
        };
        let r = Resolver::with_lookup(config, &lookup).unwrap();
        let _ = r.name(ip("203.0.113.0"));
        {
            let (m, cv) = &*gate;
            let mut g = m.lock().unwrap();
            while g.1 == 0 {
                g = cv.wait(g).unwrap();
            }
        }
        // The worker is busy with .0: two more fit in the queue, the rest are dropped, and
        // asking returns at once.
        let started = Instant::now();
        for i in 1..=20 {
            assert_eq!(r.name(ip(&format!("203.0.113.{i}"))), None);
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(lock(&r.cache).pending.len(), 3);
        {
            let (m, cv) = &*gate;
            m.lock().unwrap().0 = true;
            cv.notify_all();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !lock(&r.cache).pending.is_empty() {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            gate.0.lock().unwrap().1,
            3,
            "only the queued ones were looked up"
        );
        assert_eq!(r.cached(), 3);
        // A dropped one is asked for again by the next listing.
        let _ = r.name(ip("203.0.113.20"));
        assert_eq!(settle(&r, "203.0.113.20"), None);
        assert_eq!(gate.0.lock().unwrap().1, 4);
        r.shutdown();
    }

    #[test]
    fn the_cache_is_bounded() {
        let fake = Fake::new(&[]);
        let config = Config {
            max_entries: 10,
            ..Config::default()
        };
        let r = Resolver::with_lookup(config, &fake.lookup()).unwrap();
        for i in 0..50 {
            let a = format!("198.18.0.{i}");
            let _ = settle(&r, &a);
            assert!(r.cached() <= 10, "{} after {a}", r.cached());
        }
        // The newest answer is always kept.
        assert!(lock(&r.cache).entries.contains_key(&ip("198.18.0.49")));
        r.shutdown();
    }

    #[test]
    fn making_room_drops_expired_then_soonest_to_expire() {
        let now = Instant::now();
        let mut entries: HashMap<IpAddr, Entry> = (0..10_u8)
            .map(|i| {
                (
                    IpAddr::from([192, 0, 2, i]),
                    Entry {
                        name: None,
                        // .0 and .1 expired; the rest expire in i seconds.
                        expires: (now + Duration::from_secs(u64::from(i)))
                            .checked_sub(Duration::from_secs(1))
                            .unwrap(),
                    },
                )
            })
            .collect();
        make_room(&mut entries, 10, now);
        // Expired .0 and .1 (expires ≤ now) are gone; 8 left, within the 9 to keep.
        assert_eq!(entries.len(), 8);
        make_room(&mut entries, 5, now);
        // Keep 4 of the 8: the ones expiring last, .6 to .9.
        let mut left: Vec<u8> = entries
            .keys()
            .map(|a| match a {
                IpAddr::V4(v4) => v4.octets()[3],
                IpAddr::V6(_) => unreachable!(),
            })
            .collect();
        left.sort_unstable();
        assert_eq!(left, [6, 7, 8, 9]);
    }

    #[test]
    fn implausible_names_are_no_names() {
        assert_eq!(clean_name("host.example."), Some("host.example"));
        assert_eq!(clean_name("a_b-c.example"), Some("a_b-c.example"));
        for bad in [
            "",
            ".",
            "192.0.2.1",
            "2001:db8::1",
            "two words.example",
            "<script>.example",
            "quote\".example",
            "tab\t.example",
            "ünïcode.example",
            &"a".repeat(254),
        ] {
            assert_eq!(clean_name(bad), None, "{bad:?}");
        }
        let fake = Fake::new(&[("192.0.2.9", Lookup::Name("192.0.2.10".into()))]);
        let r = Resolver::with_lookup(Config::default(), &fake.lookup()).unwrap();
        assert_eq!(
            settle(&r, "192.0.2.9"),
            None,
            "a PTR naming another address"
        );
        r.shutdown();
    }

    #[test]
    fn substring_ignoring_ascii_case() {
        assert!(contains_ignore_ascii_case(
            "Mail.Example.ORG",
            "example.org"
        ));
        assert!(contains_ignore_ascii_case("x", ""));
        assert!(!contains_ignore_ascii_case("ex", "example"));
    }

    /// The real resolver on loopback (`/etc/hosts`, no network):
    /// `cargo test -p ntop --lib resolve -- --ignored`.
    #[test]
    #[ignore = "depends on the machine's /etc/hosts and NSS configuration"]
    fn system_lookup_of_loopback() {
        let answer = system_lookup(ip("127.0.0.1"));
        assert!(matches!(answer, Lookup::Name(_)), "{answer:?}");
    }
}
