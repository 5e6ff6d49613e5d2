//! Packet captures on a device inside a namespace, written as pcap and dissected by tshark, and
//! totals over them (per host, per protocol) to compare with ntop's counters.
//!
//! Why not `dumpcap`/`tshark -i`: they read the kernel's `TPACKET_V3` ring in blocks that are
//! handed over when full or after a 250 ms timeout, and a SIGINT before that drops what is in the
//! current block silently (measured here: 5 datagrams sent, SIGINT 100 ms later, 0 captured and
//! "0/0 received/dropped" reported). So the capture is an `AF_PACKET` socket of our own, bound to
//! the device (capturing from the moment `bind` returns: no readiness to wait for), read by a
//! thread into a pcap file. [`Capture::stop`] drains the socket until it is empty: every packet
//! that crossed the device before `stop` was called is in the file, because the kernel hands a
//! packet to packet sockets before the protocol stack sees it (received) or before the driver
//! sends it (sent). So stop once the test has seen its traffic complete (ping's last reply, the
//! receiver's last datagram), and the capture holds all of it. Drops in the socket are counted
//! by the kernel and make `stop` panic. tshark then dissects the file: the oracle is
//! Wireshark's dissectors, not ours.
use std::{
    collections::BTreeMap,
    env,
    ffi::CString,
    fs::{self, File},
    io::{self, BufWriter, Write as _},
    iter, mem,
    net::IpAddr,
    ops,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{Netns, netns::checked, scratch_dir, unique_name};

/// Longest frame kept whole in the file (longer ones are cut; `frame.len` stays right).
const SNAPLEN: usize = 262_144;
/// Socket receive buffer: room for bursts while the thread writes.
const RCVBUF: libc::c_int = 64 << 20;

/// A running capture; see the module documentation.
#[derive(Debug)]
pub struct Capture {
    path: PathBuf,
    what: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<u32>>>,
}

impl Capture {
    /// Starts capturing every frame received or sent on `dev` in `ns`. The capture is active
    /// when this returns.
    #[track_caller]
    #[must_use]
    pub fn start(ns: &Netns, dev: &str) -> Self {
        let what = format!("capture on {dev} in {}", ns.name());
        let socket = ns
            .enter(|| open_socket(dev))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let path = scratch_dir().join(format!("{}.pcap", unique_name()));
        let file = File::create(&path)
            .unwrap_or_else(|e| panic!("{what}: creating {}: {e}", path.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name(format!("capture-{dev}"))
                .spawn(move || capture_loop(&socket, BufWriter::new(file), &stop))
                .unwrap_or_else(|e| panic!("{what}: starting its thread: {e}"))
        };
        Self {
            path,
            what,
            stop,
            thread: Some(thread),
        }
    }

    /// The pcap file being written.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops (after draining the socket), dissects the file with tshark and deletes it (kept
    /// when `NTOP_TEST_KEEP_PCAP` is set; its path is printed then).
    #[track_caller]
    #[must_use]
    pub fn stop(mut self) -> Vec<Packet> {
        self.finish();
        let packets = read_pcap(&self.path);
        if env::var_os("NTOP_TEST_KEEP_PCAP").is_some() {
            eprintln!("{}: kept {}", self.what, self.path.display());
        } else {
            let _ = fs::remove_file(&self.path);
        }
        packets
    }

    /// Stops (after draining the socket) and leaves the pcap file to the caller.
    #[track_caller]
    #[must_use]
    pub fn stop_to_file(mut self) -> PathBuf {
        self.finish();
        mem::take(&mut self.path)
    }

    #[track_caller]
    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let drops = thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
                .unwrap_or_else(|e| panic!("{}: {e}", self.what));
            assert!(
                drops == 0,
                "{}: the kernel dropped {drops} packets for it",
                self.what
            );
        }
    }
}

impl Drop for Capture {
    /// A capture not stopped (the test panicked or forgot): stop it; keep the file when
    /// panicking.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
            if thread::panicking() {
                eprintln!("{}: left {}", self.what, self.path.display());
            } else {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// An `AF_PACKET` socket bound to `dev` in the calling thread's namespace, non-blocking.
fn open_socket(dev: &str) -> io::Result<OwnedFd> {
    let name = CString::new(dev).map_err(|_| io::Error::other("device name with a NUL"))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::other(format!(
            "no device {dev}: {}",
            io::Error::last_os_error()
        )));
    }
    // Protocol 0: the socket receives nothing until bind names the protocol and the device, so
    // no frame of another device gets in.
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let size = RCVBUF;
    // SAFETY: the option value is a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            socklen::<libc::c_int>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = u16::try_from(libc::AF_PACKET).expect("AF_PACKET fits u16");
    sll.sll_protocol = u16::try_from(libc::ETH_P_ALL)
        .expect("ETH_P_ALL fits u16")
        .to_be();
    sll.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    // SAFETY: the address is a sockaddr_ll of the given size.
    let rc = unsafe { libc::bind(fd, (&raw const sll).cast(), socklen::<libc::sockaddr_ll>()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(mem::size_of::<T>()).expect("small type")
}

/// Reads frames into the pcap file until `stop`, then drains what is queued; returns the
/// kernel's count of frames dropped for this socket.
fn capture_loop(socket: &OwnedFd, mut out: BufWriter<File>, stop: &AtomicBool) -> io::Result<u32> {
    let fd = socket.as_raw_fd();
    write_pcap_header(&mut out)?;
    let mut buf = vec![0_u8; SNAPLEN];
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        // Drain everything queued now.
        loop {
            // SAFETY: buf is writable for its length; MSG_TRUNC returns the frame's real length.
            let n = unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                }
            }
            let len = usize::try_from(n).expect("non-negative");
            write_pcap_record(&mut out, &buf[..len.min(buf.len())], len)?;
        }
        if stopping {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&raw mut pfd, 1, 10) };
    }
    out.flush()?;
    // SAFETY: tpacket_stats is plain data; all-zero is valid.
    let mut stats: libc::tpacket_stats = unsafe { mem::zeroed() };
    let mut len = socklen::<libc::tpacket_stats>();
    // SAFETY: the option value is a tpacket_stats of the given size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut stats).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stats.tp_drops)
}

/// Writes `frames` as a pcap file (for `tcpreplay`, and for tshark to dissect as an oracle).
///
/// # Panics
/// When the file cannot be written.
#[track_caller]
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let write = || -> io::Result<()> {
        let mut out = BufWriter::new(File::create(path)?);
        write_pcap_header(&mut out)?;
        for f in frames {
            write_pcap_record(&mut out, f, f.len())?;
        }
        out.flush()
    };
    write().unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn write_pcap_header(out: &mut impl io::Write) -> io::Result<()> {
    out.write_all(&0xa1b2_c3d4_u32.to_ne_bytes())?; // microsecond timestamps
    out.write_all(&2_u16.to_ne_bytes())?;
    out.write_all(&4_u16.to_ne_bytes())?;
    out.write_all(&0_i32.to_ne_bytes())?; // thiszone
    out.write_all(&0_u32.to_ne_bytes())?; // sigfigs
    out.write_all(
        &u32::try_from(SNAPLEN)
            .expect("snaplen fits u32")
            .to_ne_bytes(),
    )?;
    out.write_all(&1_u32.to_ne_bytes()) // LINKTYPE_ETHERNET
}

fn write_pcap_record(out: &mut impl io::Write, data: &[u8], len: usize) -> io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = u32::try_from(now.as_secs()).unwrap_or(u32::MAX);
    let to_u32 = |n: usize| u32::try_from(n).map_err(io::Error::other);
    out.write_all(&secs.to_ne_bytes())?;
    out.write_all(&now.subsec_micros().to_ne_bytes())?;
    out.write_all(&to_u32(data.len())?.to_ne_bytes())?;
    out.write_all(&to_u32(len)?.to_ne_bytes())?;
    out.write_all(data)
}

/// One captured frame, as tshark dissected it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    /// `frame.len`: the whole Ethernet frame without FCS, as the kernel's link counters count.
    pub len: u64,
    /// `eth.type` (the outer one: 0x8100 for a VLAN tag).
    pub eth_type: Option<u16>,
    /// `ip.src` or `ipv6.src` (outer header).
    pub src: Option<IpAddr>,
    /// `ip.dst` or `ipv6.dst` (outer header).
    pub dst: Option<IpAddr>,
    /// `ip.proto` or `ipv6.nxt` of the outer header (0 for IPv6 hop-by-hop options, as MLD has).
    pub ip_proto: Option<u8>,
    /// The transport protocol after any IPv6 extension headers (6 TCP, 17 UDP, 1 ICMP,
    /// 58 `ICMPv6`…); `None` for non-IP frames.
    pub transport: Option<u8>,
    /// `icmp.type` or `icmpv6.type`.
    pub icmp_type: Option<u8>,
    /// `tcp.srcport` or `udp.srcport`.
    pub src_port: Option<u16>,
    /// `tcp.dstport` or `udp.dstport`.
    pub dst_port: Option<u16>,
}

impl Packet {
    /// An ICMP or `ICMPv6` echo request.
    #[must_use]
    pub fn is_echo_request(&self) -> bool {
        matches!(
            (self.transport, self.icmp_type),
            (Some(1), Some(8)) | (Some(58), Some(128))
        )
    }

    /// An ICMP or `ICMPv6` echo reply.
    #[must_use]
    pub fn is_echo_reply(&self) -> bool {
        matches!(
            (self.transport, self.icmp_type),
            (Some(1), Some(0)) | (Some(58), Some(129))
        )
    }
}

/// The tshark fields [`parse_fields`] reads, in order.
const FIELDS: [&str; 15] = [
    "frame.len",
    "eth.type",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.proto",
    "ipv6.nxt",
    "icmp.type",
    "icmpv6.type",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "ipv6.fraghdr.nxt",
];

/// Dissects a pcap (or pcapng) file with tshark into one [`Packet`] per frame.
#[track_caller]
#[must_use]
pub fn read_pcap(path: &Path) -> Vec<Packet> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(path).args([
        "-n",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=f",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    checked(&mut cmd)
        .lines()
        .map(|line| {
            parse_fields(line).unwrap_or_else(|| panic!("unexpected tshark line: {line:?}"))
        })
        .collect()
}

/// One line of `tshark -T fields` with [`FIELDS`], tab-separated, empty where absent.
fn parse_fields(line: &str) -> Option<Packet> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != FIELDS.len() {
        return None;
    }
    try_parse_fields(&f).ok()
}

/// A field that is empty (`Ok(None)`), a number (decimal or `0x` hex) or malformed (`Err`).
fn num<T: TryFrom<u64>>(s: &str) -> Result<Option<T>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    let v = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(drop)?;
    T::try_from(v).map(Some).map_err(drop)
}

/// A field that is empty (`Ok(None)`), an address or malformed (`Err`).
fn addr(s: &str) -> Result<Option<IpAddr>, ()> {
    if s.is_empty() {
        Ok(None)
    } else {
        s.parse().map(Some).map_err(drop)
    }
}

fn try_parse_fields(f: &[&str]) -> Result<Packet, ()> {
    let len = num(f[0])?.ok_or(())?;
    let ip4_proto: Option<u8> = num(f[6])?;
    let ip6_next: Option<u8> = num(f[7])?;
    let icmp6_type: Option<u8> = num(f[9])?;
    let (tcp_src, tcp_dst): (Option<u16>, Option<u16>) = (num(f[10])?, num(f[11])?);
    let (udp_src, udp_dst): (Option<u16>, Option<u16>) = (num(f[12])?, num(f[13])?);
    let frag_next: Option<u8> = num(f[14])?;
    let transport = match (ip4_proto, ip6_next) {
        (Some(p), _) => Some(p),
        // A later IPv6 fragment: no transport header to dissect; its fragment header names the
        // protocol (as `ip.proto` does for IPv4 fragments).
        (None, Some(0 | 43 | 44 | 60))
            if frag_next.is_some()
                && icmp6_type.is_none()
                && tcp_src.is_none()
                && udp_src.is_none() =>
        {
            frag_next
        }
        // IPv6 extension headers (hop-by-hop, routing, fragment, destination options): the
        // transport is the layer tshark dissected after them.
        (None, Some(0 | 43 | 44 | 60)) if icmp6_type.is_some() => Some(58),
        (None, Some(0 | 43 | 44 | 60)) if tcp_src.is_some() => Some(6),
        (None, Some(0 | 43 | 44 | 60)) if udp_src.is_some() => Some(17),
        (None, next) => next,
    };
    Ok(Packet {
        len,
        eth_type: num(f[1])?,
        src: addr(f[2])?.or(addr(f[4])?),
        dst: addr(f[3])?.or(addr(f[5])?),
        ip_proto: ip4_proto.or(ip6_next),
        transport,
        icmp_type: num::<u8>(f[8])?.or(icmp6_type),
        src_port: tcp_src.or(udp_src),
        dst_port: tcp_dst.or(udp_dst),
    })
}

/// Packets and bytes (`frame.len`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Frames.
    pub packets: u64,
    /// Bytes of whole frames.
    pub bytes: u64,
}

impl Totals {
    /// Counts `p`: one more frame, `p.len` more bytes.
    pub fn add(&mut self, p: &Packet) {
        self.packets += 1;
        self.bytes += p.len;
    }
}

impl ops::Add for Totals {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            packets: self.packets + other.packets,
            bytes: self.bytes + other.bytes,
        }
    }
}

impl iter::Sum for Totals {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| a + b)
    }
}

/// The totals of `packets`.
pub fn totals<'a>(packets: impl IntoIterator<Item = &'a Packet>) -> Totals {
    let mut t = Totals::default();
    for p in packets {
        t.add(p);
    }
    t
}

/// What one host sent and received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostTotals {
    /// Frames with this host as IP source.
    pub sent: Totals,
    /// Frames with this host as IP destination.
    pub received: Totals,
}

/// Per IP address: frames sent (as source) and received (as destination); non-IP frames are
/// left out.
#[must_use]
pub fn per_host(packets: &[Packet]) -> BTreeMap<IpAddr, HostTotals> {
    let mut hosts: BTreeMap<IpAddr, HostTotals> = BTreeMap::new();
    for p in packets {
        if let Some(src) = p.src {
            hosts.entry(src).or_default().sent.add(p);
        }
        if let Some(dst) = p.dst {
            hosts.entry(dst).or_default().received.add(p);
        }
    }
    hosts
}

/// Per pair of IP addresses `(host, peer)`: frames from `host` to `peer` (sent) and from `peer` to
/// `host` (received). Every IP frame counts twice: once from each end's side.
#[must_use]
pub fn per_pair(packets: &[Packet]) -> BTreeMap<(IpAddr, IpAddr), HostTotals> {
    let mut pairs: BTreeMap<(IpAddr, IpAddr), HostTotals> = BTreeMap::new();
    for p in packets {
        if let (Some(src), Some(dst)) = (p.src, p.dst) {
            pairs.entry((src, dst)).or_default().sent.add(p);
            pairs.entry((dst, src)).or_default().received.add(p);
        }
    }
    pairs
}

/// What [`per_protocol`] groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// IP frames by transport protocol number (after IPv6 extension headers).
    Ip(u8),
    /// Non-IP frames by `EtherType` (0x0806 ARP…).
    NonIp(u16),
    /// Frames tshark found no `EtherType` in.
    Other,
}

/// Per protocol: IP frames by transport protocol, others by `EtherType`.
#[must_use]
pub fn per_protocol(packets: &[Packet]) -> BTreeMap<Protocol, Totals> {
    let mut protocols: BTreeMap<Protocol, Totals> = BTreeMap::new();
    for p in packets {
        let key = match (p.transport, p.eth_type) {
            (Some(t), _) => Protocol::Ip(t),
            (None, Some(e)) => Protocol::NonIp(e),
            (None, None) => Protocol::Other,
        };
        protocols.entry(key).or_default().add(p);
    }
    protocols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tshark_fields() {
        let ping = "98\t0x0800\t198.18.0.1\t198.18.0.2\t\t\t1\t\t8\t\t\t\t\t\t";
        let p = parse_fields(ping).unwrap();
        assert_eq!(p.len, 98);
        assert_eq!(p.eth_type, Some(0x0800));
        assert_eq!(p.src, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(p.transport, Some(1));
        assert!(p.is_echo_request());
        assert!(!p.is_echo_reply());

        let mld = "90\t0x86dd\t\t\t::\tff02::1:ff00:1\t\t0\t\t131\t\t\t\t\t";
        let p = parse_fields(mld).unwrap();
        assert_eq!(
            (p.ip_proto, p.transport, p.icmp_type),
            (Some(0), Some(58), Some(131))
        );
        assert_eq!(p.dst, Some("ff02::1:ff00:1".parse().unwrap()));

        let udp6 = "1062\t0x000086dd\t\t\t2001:db8::1\t2001:db8::2\t\t17\t\t\t\t\t40000\t9\t";
        let p = parse_fields(udp6).unwrap();
        assert_eq!(
            (p.transport, p.src_port, p.dst_port),
            (Some(17), Some(40000), Some(9))
        );

        let arp = "42\t0x0806\t\t\t\t\t\t\t\t\t\t\t\t\t";
        let p = parse_fields(arp).unwrap();
        assert_eq!((p.transport, p.eth_type), (None, Some(0x0806)));

        assert!(parse_fields("98\t0x0800").is_none());
        assert!(parse_fields("x\t\t\t\t\t\t\t\t\t\t\t\t\t\t").is_none());
    }

    #[test]
    fn aggregates_per_host_and_protocol() {
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let b: IpAddr = "198.18.0.2".parse().unwrap();
        let icmp = |src, dst, len| Packet {
            len,
            eth_type: Some(0x0800),
            src: Some(src),
            dst: Some(dst),
            ip_proto: Some(1),
            transport: Some(1),
            ..Packet::default()
        };
        let arp = Packet {
            len: 42,
            eth_type: Some(0x0806),
            ..Packet::default()
        };
        let packets = vec![icmp(a, b, 98), icmp(b, a, 98), icmp(a, b, 100), arp];
        let hosts = per_host(&packets);
        assert_eq!(
            hosts[&a].sent,
            Totals {
                packets: 2,
                bytes: 198
            }
        );
        assert_eq!(
            hosts[&a].received,
            Totals {
                packets: 1,
                bytes: 98
            }
        );
        assert_eq!(
            hosts[&b].received,
            Totals {
                packets: 2,
                bytes: 198
            }
        );
        let protocols = per_protocol(&packets);
        assert_eq!(
            protocols[&Protocol::Ip(1)],
            Totals {
                packets: 3,
                bytes: 296
            }
        );
        assert_eq!(
            protocols[&Protocol::NonIp(0x0806)],
            Totals {
                packets: 1,
                bytes: 42
            }
        );
        assert_eq!(
            totals(&packets),
            Totals {
                packets: 4,
                bytes: 338
            }
        );
    }

    #[test]
    fn writes_pcap_that_tshark_reads() {
        let dir = scratch_dir();
        let path = dir.join(format!("{}.pcap", unique_name()));
        let mut out = BufWriter::new(File::create(&path).unwrap());
        write_pcap_header(&mut out).unwrap();
        // An Ethernet frame with an IPv4 header (UDP, 198.18.0.1 -> 198.18.0.2, ports 1000 -> 9)
        // and 4 bytes of payload: 14 + 20 + 8 + 4 = 46 bytes, cut to 34 in the file.
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend([
            0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ]);
        frame.extend([0x03, 0xe8, 0, 9, 0, 12, 0, 0, 1, 2, 3, 4]);
        write_pcap_record(&mut out, &frame, frame.len()).unwrap();
        write_pcap_record(&mut out, &frame[..34], frame.len()).unwrap();
        drop(out);
        let packets = read_pcap(&path);
        fs::remove_file(&path).unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].len, 46);
        assert_eq!(packets[0].transport, Some(17));
        assert_eq!(
            (packets[0].src_port, packets[0].dst_port),
            (Some(1000), Some(9))
        );
        assert_eq!(packets[1].len, 46);
        assert_eq!(packets[1].dst, Some("198.18.0.2".parse().unwrap()));
    }
}
