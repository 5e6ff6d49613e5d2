//! The poll loop: reads the kernel maps every refresh interval and hands each [`Sample`] to the
//! shared [`State`](crate::state::State).
//!
//! Runs on its own OS thread ("ntop-collector"), not on the async runtime: a poll at 100k hosts
//! is a few milliseconds of `bpf(2)` calls and copying, which must not stall HTTP handlers. The
//! thread ticks on a fixed schedule; if a poll overruns the interval, the missed ticks are
//! skipped (and counted) rather than run back to back. After each poll it wakes the persister
//! ([`crate::persist`]), which writes the data directory on its own thread, and bumps the poll
//! counter the dashboard's event streams wait on ([`crate::http::events`]), if it was given
//! one ([`spawn_notifying`]).

use std::{
    sync::mpsc::{self, RecvTimeoutError},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::{
    ebpf::{self, Kernel},
    persist::Waker,
    sample::Sample,
    state::SharedState,
};

/// Where samples come from: the kernel maps in the daemon, anything in tests.
pub trait Source: Send {
    /// Reads all counters once into `out` (whose buffers are reused from poll to poll).
    ///
    /// # Errors
    /// When the counters cannot be read this time.
    fn sample_into(&mut self, out: &mut Sample) -> Result<(), ebpf::Error>;
}

impl Source for Kernel {
    fn sample_into(&mut self, out: &mut Sample) -> Result<(), ebpf::Error> {
        self.read_into(out)
    }
}

/// A running poll loop.
#[derive(Debug)]
pub struct Collector<S> {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<S>,
}

/// Starts polling `source` every `interval` into `state`, beginning now.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn<S: Source + 'static>(
    source: S,
    state: SharedState,
    interval: Duration,
    persister: Option<Waker>,
) -> std::io::Result<Collector<S>> {
    spawn_notifying(source, state, interval, persister, None)
}

/// [`spawn`], and after each poll that reached `state`, adds one to `polls` (wrapping), for the
/// tasks that wait for new data (the dashboard's event streams).
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn_notifying<S: Source + 'static>(
    mut source: S,
    state: SharedState,
    interval: Duration,
    persister: Option<Waker>,
    polls: Option<watch::Sender<u64>>,
) -> std::io::Result<Collector<S>> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = thread::Builder::new().name("ntop-collector".into()).spawn(move || {
        let mut next = Instant::now();
        let mut failing = false;
        let mut sample = Sample::empty();
        loop {
            match source.sample_into(&mut sample) {
                Ok(()) => {
                    if failing {
                        tracing::info!("reading the kernel counters works again");
                        failing = false;
                    }
                    state.write().unwrap_or_else(std::sync::PoisonError::into_inner).ingest(&sample);
                    if let Some(p) = &persister {
                        p.poll_done();
                    }
                    if let Some(polls) = &polls {
                        polls.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                Err(e) if !failing => {
                    tracing::error!("{e}; nothing is lost, the kernel keeps counting");
                    failing = true;
                }
                Err(_) => {}
            }
            next += interval;
            let now = Instant::now();
            if next < now {
                let behind = now - next;
                tracing::warn!(
                    "a poll took longer than the refresh interval ({interval:?}); skipping {behind:?}"
                );
                next = now + interval;
            }
            match stopped.recv_timeout(next - now) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return source,
            }
        }
    })?;
    Ok(Collector { stop, thread })
}

impl<S> Collector<S> {
    /// Stops the loop and gives the source back (for the daemon: to detach the programs).
    ///
    /// # Panics
    /// If the collector thread panicked.
    #[must_use]
    pub fn stop(self) -> S {
        let _ = self.stop.send(());
        self.thread.join().expect("the collector thread panicked")
    }
}
