//! Traffic generators, each bounded in count and in time: ICMP echo with iputils `ping`, UDP
//! datagrams from sockets opened inside a namespace (`setns(2)` on a thread, see
//! [`Netns::enter`]) with a counting receiver, TCP with iperf3 or with plain sockets.
use std::{
    io::{self, Read as _, Write as _},
    net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::{Netns, wait_until};

/// What `ping` reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingStats {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
}

/// Sends `count` echo requests with `size` bytes of ICMP payload from `ns` to `addr`, 10 ms
/// apart, and waits up to 2 s for the last reply (iputils `ping -c COUNT -s SIZE -i 0.01 -W 2`,
/// killed if it runs longer than that allows). Returns when every reply is in or time is up.
#[track_caller]
#[must_use]
pub fn ping(ns: &Netns, addr: IpAddr, count: u32, size: usize) -> PingStats {
    let limit = u64::from(count) / 100 + 10;
    let out = ns.exec(
        "timeout",
        [
            "-k".to_owned(),
            "2".to_owned(),
            limit.to_string(),
            "ping".to_owned(),
            "-n".to_owned(),
            "-q".to_owned(),
            "-c".to_owned(),
            count.to_string(),
            "-s".to_owned(),
            size.to_string(),
            "-i".to_owned(),
            "0.01".to_owned(),
            "-W".to_owned(),
            "2".to_owned(),
            addr.to_string(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_ping(&stdout).unwrap_or_else(|| {
        panic!(
            "ping {addr} in {} failed ({}): {}{}",
            ns.name(),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// `5 packets transmitted, 5 received, 0% packet loss, time 41ms`.
fn parse_ping(stdout: &str) -> Option<PingStats> {
    let line = stdout.lines().find(|l| l.contains("packets transmitted"))?;
    let mut parts = line.split(',');
    let number = |part: Option<&str>| part?.split_whitespace().next()?.parse().ok();
    Some(PingStats {
        transmitted: number(parts.next())?,
        received: number(parts.next())?,
    })
}

/// Sends `count` UDP datagrams of `payload_len` bytes from `from` (an ephemeral port) to
/// `to:port`, inside `ns`; returns the source port. Put a [`UdpSink`] at the other end: without
/// a receiver the peer answers with ICMP port-unreachable messages, which are rate-limited.
#[track_caller]
#[expect(
    clippy::must_use_candidate,
    reason = "the source port is extra; sending is the point"
)]
pub fn udp_send(
    ns: &Netns,
    from: IpAddr,
    to: IpAddr,
    port: u16,
    count: u32,
    payload_len: usize,
) -> u16 {
    let socket = ns
        .enter(|| UdpSocket::bind(SocketAddr::new(from, 0)))
        .unwrap_or_else(|e| panic!("binding a UDP socket to {from} in {}: {e}", ns.name()));
    let target = SocketAddr::new(to, port);
    socket
        .connect(target)
        .unwrap_or_else(|e| panic!("connecting UDP to {target}: {e}"));
    let payload = vec![0x5a_u8; payload_len];
    for i in 0..count {
        // ENOBUFS can come back when a queue is full for a moment: retry a bounded number.
        let mut tries = 0;
        loop {
            match socket.send(&payload) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && tries < 1000 => {
                    tries += 1;
                    thread::yield_now();
                }
                Err(e) => panic!("sending UDP datagram {i} of {count} to {target}: {e}"),
            }
        }
    }
    socket
        .local_addr()
        .expect("a bound UDP socket's address")
        .port()
}

/// A UDP socket inside a namespace that counts what it receives, on its own thread, until
/// dropped.
#[derive(Debug)]
pub struct UdpSink {
    addr: SocketAddr,
    packets: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpSink {
    /// Binds `addr` in `ns` (port 0 picks one; see [`UdpSink::addr`]).
    #[track_caller]
    #[must_use]
    pub fn bind(ns: &Netns, addr: SocketAddr) -> Self {
        let socket = ns
            .enter(|| UdpSocket::bind(addr))
            .unwrap_or_else(|e| panic!("binding UDP {addr} in {}: {e}", ns.name()));
        set_rcvbuf(&socket, 32 << 20);
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("setting a UDP read timeout");
        let addr = socket.local_addr().expect("a bound UDP socket's address");
        let packets = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (packets, bytes, stop) =
                (Arc::clone(&packets), Arc::clone(&bytes), Arc::clone(&stop));
            thread::spawn(move || {
                let mut buf = vec![0_u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        packets.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            })
        };
        Self {
            addr,
            packets,
            bytes,
            stop,
            thread: Some(thread),
        }
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams and payload bytes received so far.
    #[must_use]
    pub fn received(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Waits up to `timeout` until at least `packets` datagrams have arrived; returns the
    /// count then (check it: fewer means some were lost).
    #[must_use]
    pub fn wait_for(&self, packets: u64, timeout: Duration) -> u64 {
        let n = || self.packets.load(Ordering::Relaxed);
        wait_until(timeout, Duration::from_millis(2), || {
            (n() >= packets).then_some(())
        });
        n()
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn set_rcvbuf(socket: &UdpSocket, size: libc::c_int) {
    let len = libc::socklen_t::try_from(size_of::<libc::c_int>()).expect("small");
    // SAFETY: the option value is a c_int of the given size; the fd is open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            len,
        )
    };
    assert!(rc == 0, "SO_RCVBUFFORCE: {}", io::Error::last_os_error());
}

/// Sends `bytes` bytes over one TCP connection from `client` to `server_addr` in `server`
/// with plain sockets, and returns how many the server read before the client closed. Returns
/// once both sides have closed (see [`wait_tcp_closed`]), so every segment has crossed. Every
/// step is bounded by `timeout`.
#[track_caller]
#[must_use]
pub fn tcp_transfer(
    client: &Netns,
    server: &Netns,
    server_addr: SocketAddr,
    bytes: u64,
    timeout: Duration,
) -> u64 {
    let listener = server
        .enter(|| TcpListener::bind(server_addr))
        .unwrap_or_else(|e| panic!("listening on {server_addr} in {}: {e}", server.name()));
    let addr = listener.local_addr().expect("a listener's address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let reader = thread::spawn(move || -> io::Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(timeout))?;
        let mut buf = vec![0_u8; 1 << 16];
        let mut total = 0;
        loop {
            match conn.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut stream = client
        .enter(|| TcpStream::connect_timeout(&addr, timeout))
        .unwrap_or_else(|e| panic!("connecting to {addr} from {}: {e}", client.name()));
    stream
        .set_write_timeout(Some(timeout))
        .expect("a write timeout");
    let chunk = vec![0xa5_u8; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).expect("fits");
        stream
            .write_all(&chunk[..n])
            .unwrap_or_else(|e| panic!("sending to {addr}: {e}"));
        left -= n as u64;
    }
    stream
        .shutdown(Shutdown::Write)
        .expect("closing the sending side");
    let received = reader
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
        .unwrap_or_else(|e| panic!("receiving on {addr}: {e}"));
    drop(stream);
    wait_tcp_closed(&[client, server], addr.port(), timeout);
    received
}

/// Waits until neither namespace has a TCP socket on `port` (local or remote) other than in
/// `TIME_WAIT`: then the closing handshakes are over and every segment of the connections has
/// crossed the link.
#[track_caller]
pub fn wait_tcp_closed(namespaces: &[&Netns], port: u16, timeout: Duration) {
    let open = || -> Vec<String> {
        namespaces
            .iter()
            .flat_map(|ns| {
                open_tcp_sockets(ns, port)
                    .into_iter()
                    .map(|l| format!("{}: {l}", ns.name()))
            })
            .collect()
    };
    let closed = wait_until(timeout, Duration::from_millis(2), || {
        open().is_empty().then_some(())
    });
    assert!(
        closed.is_some(),
        "TCP sockets on port {port} still open after {timeout:?}: {:#?}",
        open()
    );
}

/// Lines of `/proc/net/tcp` and `tcp6` in `ns` for sockets on `port` (local or remote) that
/// are not in `TIME_WAIT` (state 06).
fn open_tcp_sockets(ns: &Netns, port: u16) -> Vec<String> {
    let port = format!(":{port:04X}");
    let mut open = Vec::new();
    for file in ["tcp", "tcp6"] {
        for line in ns.proc_net(file).lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 3 && (f[1].ends_with(&port) || f[2].ends_with(&port)) && f[3] != "06" {
                open.push(line.trim().to_owned());
            }
        }
    }
    open
}

/// What iperf3's client reported (`end.sum_sent` / `end.sum_received` of its JSON).
#[derive(Clone, Debug)]
pub struct Iperf3Result {
    /// Bytes of payload the client sent.
    pub sent_bytes: u64,
    /// Bytes of payload the server had read when the test ended: iperf3 stops counting at the
    /// client's end message, so this can be less than `sent_bytes` (by what was in flight).
    pub received_bytes: u64,
    /// The client's whole JSON report.
    pub json: serde_json::Value,
}

/// Runs one iperf3 TCP test of `bytes` bytes from `client` to an iperf3 server on
/// `server_addr` port 5201 in `server` (`iperf3 -s -1`, which ends after one test). Waits for
/// the server's listening socket before starting the client; the client is killed after
/// `timeout`. Returns once both processes have exited and their connections are closed.
/// Besides the data connection, iperf3 opens a control connection (a few hundred bytes each
/// way).
#[track_caller]
#[must_use]
pub fn iperf3_tcp(
    client: &Netns,
    server: &Netns,
    server_addr: IpAddr,
    bytes: u64,
    timeout: Duration,
) -> Iperf3Result {
    const PORT: u16 = 5201;
    let addr = server_addr.to_string();
    let mut server_proc = server.spawn("iperf3", ["-s", "-1", "-B", &addr, "-p", "5201"]);
    let listening = wait_until(timeout, Duration::from_millis(5), || {
        if let Some(status) = server_proc.try_wait() {
            panic!(
                "iperf3 server in {} exited ({status}): {}",
                server.name(),
                server_proc.stderr()
            );
        }
        tcp_listening(server, PORT).then_some(())
    });
    assert!(
        listening.is_some(),
        "iperf3 server in {} not listening after {timeout:?}",
        server.name()
    );
    let secs = timeout.as_secs().max(1).to_string();
    let out = client.exec(
        "timeout",
        [
            "-k",
            "2",
            &secs,
            "iperf3",
            "-c",
            &addr,
            "-p",
            "5201",
            "-n",
            &bytes.to_string(),
            "-J",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 client in {} ({}): not JSON ({e}): {stdout}",
            client.name(),
            out.status
        )
    });
    assert!(
        out.status.success(),
        "iperf3 client in {} failed ({}): {}",
        client.name(),
        out.status,
        json["error"]
    );
    let exited = server_proc.wait_timeout(timeout);
    assert!(
        exited.is_some(),
        "iperf3 server in {} still running after the test",
        server.name()
    );
    wait_tcp_closed(&[client, server], PORT, timeout);
    let sum = |k: &str| {
        json["end"][k]["bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no end.{k}.bytes in iperf3's JSON"))
    };
    Iperf3Result {
        sent_bytes: sum("sum_sent"),
        received_bytes: sum("sum_received"),
        json,
    }
}

/// Whether a TCP socket listens on `port` in `ns` (`/proc/net/tcp` and `tcp6`, state 0A).
#[must_use]
pub fn tcp_listening(ns: &Netns, port: u16) -> bool {
    let port = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|file| {
        ns.proc_net(file).lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&port) && f[3] == "0A"
        })
    })
}

#[cfg(test)]
mod tests {
    use super::parse_ping;

    #[test]
    fn parses_ping_summary() {
        let out = "PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.\n\n--- 198.18.0.2 ping \
                   statistics ---\n5 packets transmitted, 4 received, 20% packet loss, time 41ms\n";
        let s = parse_ping(out).unwrap();
        assert_eq!((s.transmitted, s.received), (5, 4));
        assert!(parse_ping("ping: connect: Network is unreachable\n").is_none());
    }
}
