//! MAC addresses of hosts, where the kernel knows them: its neighbour tables (ARP for IPv4,
//! NDP for IPv6) of the monitored interfaces. ntop's kernel programs count by IP address
//! only, so a host's MAC comes from here: hosts on a monitored link have one, hosts behind a
//! router do not (their frames carry the router's).
//!
//! Who runs what:
//! - A thread of its own (`ntop-neighbours`, [`spawn`]) dumps the tables with one netlink
//!   `RTM_GETNEIGH` request (both families) every [`REFRESH`], keeps the usable entries of the
//!   monitored interfaces (at most [`MAX_ENTRIES`]) and swaps the new table in whole.
//! - The HTTP handlers (through [`State::hosts`](crate::state::State::hosts)) read it with
//!   [`Neighbours::mac`]: a lock-free load and one hash lookup, never a system call.
//! - The collector never touches it.
//!
//! Usable entries are those in the states `REACHABLE`, `STALE`, `DELAY`, `PROBE` and
//! `PERMANENT` with a 6-byte link-layer address; `INCOMPLETE`, `FAILED` and `NOARP` entries
//! (and the all-zero address) are left out. A failed dump keeps the last table, says why in
//! the log once, and is retried at the next refresh.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
        mpsc::{self, RecvTimeoutError, Sender},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use arc_swap::ArcSwap;

use crate::state::HostMacs;

/// How often the tables are read.
pub const REFRESH: Duration = Duration::from_secs(10);
/// Most entries kept (about 12 MB at most); more are left out, with a warning.
pub const MAX_ENTRIES: usize = 262_144;

/// Netlink message types and flags (`linux/netlink.h`, `linux/rtnetlink.h`): stable ABI.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_DUMP: u16 = 0x300;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// `nlmsghdr` and `ndmsg` sizes.
const NLMSG_HDRLEN: usize = 16;
const NDMSG_LEN: usize = 12;
/// `NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT`.
const USABLE_STATES: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80;

/// One usable neighbour entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The interface it is on.
    pub ifindex: u32,
    /// Its IP address.
    pub ip: IpAddr,
    /// Its link-layer address.
    pub mac: [u8; 6],
}

/// Why the neighbour tables could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NeighbourError {
    /// A netlink socket operation failed.
    #[error(
        "{what} a netlink socket for the kernel's neighbour tables failed: {source}; MAC \
         addresses are not shown until it works (ntop retries every 10 s)"
    )]
    Socket {
        /// Which operation (`opening`, `sending on`, `receiving on`).
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel answered the dump request with an error.
    #[error(
        "the kernel refused to list its neighbour tables: {0}; MAC addresses are not shown \
         until it works (ntop retries every 10 s)"
    )]
    Kernel(#[source] io::Error),
    /// The answer could not be parsed.
    #[error(
        "the kernel's neighbour table dump is malformed ({0}); this is a bug in ntop or the \
         kernel: please report it with your kernel version. MAC addresses are not shown"
    )]
    Malformed(&'static str),
}

/// Whether a dump is complete after a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` was seen.
    Done,
}

/// The current table, shared with the HTTP handlers.
#[derive(Debug, Default)]
pub struct Neighbours {
    table: ArcSwap<HashMap<(IpAddr, u32), [u8; 6]>>,
}

impl Neighbours {
    /// The MAC of `ip` on `ifindex`, if the last dump had it (IPv4-mapped IPv6 as IPv4).
    #[must_use]
    pub fn mac(&self, ip: IpAddr, ifindex: u32) -> Option<[u8; 6]> {
        self.table
            .load()
            .get(&(ip.to_canonical(), ifindex))
            .copied()
    }

    /// Entries in the table.
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.load().len()
    }

    /// Whether the table is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the table with the entries of `found` on `ifindexes` (all interfaces when
    /// empty), at most [`MAX_ENTRIES`]; returns how many were left out for the bound.
    pub fn replace(&self, found: &[Neighbour], ifindexes: &[u32]) -> usize {
        let mut table = HashMap::with_capacity(found.len().min(MAX_ENTRIES));
        let mut left_out = 0;
        for n in found
            .iter()
            .filter(|n| ifindexes.is_empty() || ifindexes.contains(&n.ifindex))
        {
            if table.len() >= MAX_ENTRIES && !table.contains_key(&(n.ip, n.ifindex)) {
                left_out += 1;
                continue;
            }
            table.insert((n.ip, n.ifindex), n.mac);
        }
        self.table.store(Arc::new(table));
        left_out
    }
}

impl HostMacs for Neighbours {
    fn mac(&self, ip: IpAddr, ifindex: u32) -> Option<[u8; 6]> {
        Self::mac(self, ip, ifindex)
    }
}

/// The refresh thread; stops when dropped (or with [`Poller::stop`]).
#[derive(Debug)]
pub struct Poller {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// Stops the thread and waits for it (at most one dump, which times out after 2 s).
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.shut();
    }
}

/// Starts the thread that reads the neighbour tables now and every `every`, keeping the
/// entries of the interfaces `ifindexes`.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn(ifindexes: Vec<u32>, every: Duration) -> io::Result<(Arc<Neighbours>, Poller)> {
    let neighbours = Arc::new(Neighbours::default());
    let (stop, stopped) = mpsc::channel::<()>();
    let shared = Arc::clone(&neighbours);
    let thread = thread::Builder::new()
        .name("ntop-neighbours".into())
        .spawn(move || {
            let mut last_error: Option<String> = None;
            let mut warned_bound = false;
            loop {
                match dump() {
                    Ok(found) => {
                        if last_error.take().is_some() {
                            tracing::info!("reading the kernel's neighbour tables works again");
                        }
                        let left_out = shared.replace(&found, &ifindexes);
                        if left_out > 0 && !warned_bound {
                            warned_bound = true;
                            tracing::warn!(
                                "the neighbour tables of the monitored interfaces hold more \
                                 than {MAX_ENTRIES} entries; {left_out} are left out, and \
                                 their hosts are shown without a MAC address"
                            );
                        }
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if last_error.as_ref() != Some(&text) {
                            tracing::warn!("{text}");
                            last_error = Some(text);
                        }
                    }
                }
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        })?;
    Ok((
        neighbours,
        Poller {
            stop: Some(stop),
            thread: Some(thread),
        },
    ))
}

/// Dumps the kernel's neighbour tables (IPv4 and IPv6, every interface) with netlink.
///
/// # Errors
/// [`NeighbourError`] when the socket fails, the kernel refuses, or the answer is malformed.
pub fn dump() -> Result<Vec<Neighbour>, NeighbourError> {
    let mut found = Vec::new();
    dump_with(|datagram, seq| {
        let progress = parse(datagram, seq, &mut found)?;
        if found.len() > 4 * MAX_ENTRIES {
            return Err(NeighbourError::Malformed(
                "far more entries than ntop keeps",
            ));
        }
        Ok(progress)
    })?;
    Ok(found)
}

/// Sends the dump request and hands each datagram of the answer, with the request's sequence
/// number, to `each` until it says [`Progress::Done`].
fn dump_with(
    mut each: impl FnMut(&[u8], u32) -> Result<Progress, NeighbourError>,
) -> Result<(), NeighbourError> {
    static SEQ: AtomicU32 = AtomicU32::new(1);
    let socket_error = |what| move |source| NeighbourError::Socket { what, source };
    // SAFETY: plain socket(2) call; the descriptor is owned right after.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(socket_error("opening")(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A dump never hangs the thread: give up after 2 s without an answer.
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: `timeout` is a valid timeval of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&timeout).cast(),
            libc::socklen_t::try_from(size_of::<libc::timeval>()).unwrap_or_default(),
        )
    };
    if rc != 0 {
        return Err(socket_error("configuring")(io::Error::last_os_error()));
    }
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let request = request(seq);
    // SAFETY: all-zero bytes are a valid sockaddr_nl; it names the kernel (pid 0).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::sa_family_t::try_from(libc::AF_NETLINK).unwrap_or_default();
    // SAFETY: `request` and `kernel` are valid for their stated lengths.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            std::ptr::from_ref(&kernel).cast(),
            libc::socklen_t::try_from(size_of::<libc::sockaddr_nl>()).unwrap_or_default(),
        )
    };
    if sent < 0 {
        return Err(socket_error("sending on")(io::Error::last_os_error()));
    }
    let mut buf = vec![0_u8; 64 * 1024];
    // Bounded: a dump of more than this many datagrams is not believed.
    for _ in 0..65_536 {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        let n = usize::try_from(n)
            .map_err(|_| socket_error("receiving on")(io::Error::last_os_error()))?;
        if n > buf.len() {
            return Err(NeighbourError::Malformed("a datagram larger than 64 KiB"));
        }
        if each(&buf[..n], seq)? == Progress::Done {
            return Ok(());
        }
    }
    Err(NeighbourError::Malformed("the dump does not end"))
}

/// The dump request: `nlmsghdr` + `ndmsg` for every family.
fn request(seq: u32) -> [u8; NLMSG_HDRLEN + NDMSG_LEN] {
    let mut req = [0_u8; NLMSG_HDRLEN + NDMSG_LEN];
    #[expect(clippy::cast_possible_truncation, reason = "28 bytes")]
    let len = (NLMSG_HDRLEN + NDMSG_LEN) as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0 (the kernel assigns ours); ndm_family AF_UNSPEC (0): both families.
    req
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parses one datagram of a `RTM_GETNEIGH` dump answer (request sequence number `seq`),
/// adding the usable entries to `out`. Messages of other sequence numbers are skipped.
///
/// # Errors
/// [`NeighbourError::Kernel`] for an error message, [`NeighbourError::Malformed`] when a
/// length does not fit.
pub fn parse(buf: &[u8], seq: u32, out: &mut Vec<Neighbour>) -> Result<Progress, NeighbourError> {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32_at(buf, at).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return Err(NeighbourError::Malformed(
                "a message length past its datagram",
            ));
        }
        let kind = u16_at(buf, at + 4).unwrap_or(0);
        let msg_seq = u32_at(buf, at + 8).unwrap_or(0);
        let body = &buf[at + NLMSG_HDRLEN..at + len];
        at += align4(len);
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(Progress::Done),
            NLMSG_ERROR => {
                let errno = u32_at(body, 0)
                    .ok_or(NeighbourError::Malformed("a short error message"))?
                    .cast_signed();
                if errno != 0 {
                    return Err(NeighbourError::Kernel(io::Error::from_raw_os_error(
                        errno.saturating_neg(),
                    )));
                }
            }
            RTM_NEWNEIGH => {
                if let Some(n) = neighbour(body)? {
                    out.push(n);
                }
            }
            // NLMSG_NOOP, and anything else a dump may carry.
            _ => {}
        }
    }
    Ok(Progress::More)
}

/// One `RTM_NEWNEIGH` body (`ndmsg` and attributes), if it is a usable entry.
fn neighbour(body: &[u8]) -> Result<Option<Neighbour>, NeighbourError> {
    if body.len() < NDMSG_LEN {
        return Err(NeighbourError::Malformed("a short neighbour message"));
    }
    let family = i32::from(body[0]);
    let ifindex = u32_at(body, 4).unwrap_or(0);
    let state = u16_at(body, 8).unwrap_or(0);
    let mut ip = None;
    let mut mac = None;
    let mut at = NDMSG_LEN;
    while at + 4 <= body.len() {
        let len = usize::from(u16_at(body, at).unwrap_or(0));
        if len < 4 || at + len > body.len() {
            return Err(NeighbourError::Malformed(
                "an attribute length past its message",
            ));
        }
        let value = &body[at + 4..at + len];
        match u16_at(body, at + 2).unwrap_or(0) & 0x3fff {
            NDA_DST => {
                ip = match (family, value.len()) {
                    (libc::AF_INET, 4) => <[u8; 4]>::try_from(value)
                        .ok()
                        .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
                    (libc::AF_INET6, 16) => <[u8; 16]>::try_from(value)
                        .ok()
                        .map(|o| IpAddr::V6(Ipv6Addr::from(o)).to_canonical()),
                    _ => None,
                };
            }
            NDA_LLADDR => mac = <[u8; 6]>::try_from(value).ok(),
            _ => {}
        }
        at += align4(len);
    }
    Ok(match (ip, mac) {
        (Some(ip), Some(mac)) if state & USABLE_STATES != 0 && mac != [0; 6] => {
            Some(Neighbour { ifindex, ip, mac })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests;
