//! The daemon under test: `ntop` started inside a test namespace, and its JSON API read over
//! plain HTTP/1.1 on that namespace's loopback (so nothing listens outside the namespace).

use std::{
    fmt::Write as _,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::Duration,
};

use serde_json::Value;

use crate::{Netns, NsChild, netns::show, ntop_bin, scratch_dir, unique_name, wait_until};

/// The admin password of every data directory made by [`data_dir`].
pub const PASSWORD: &str = "ntop-test-password";
/// `Authorization` header value for `admin:`[`PASSWORD`] (HTTP Basic).
pub const BASIC_AUTH: &str = "Basic YWRtaW46bnRvcC10ZXN0LXBhc3N3b3Jk";

/// A fresh data directory with the admin password set to [`PASSWORD`] (by the binary under
/// test: `ntop -P DIR --set-admin-password=…`), owned by `owner` (uid and gid) when given.
#[track_caller]
#[must_use]
pub fn data_dir(owner: Option<u32>) -> PathBuf {
    let dir = data_dir_at(&scratch_dir().join(format!("data-{}", unique_name())));
    if let Some(id) = owner {
        for entry in std::iter::once(dir.clone()).chain(
            std::fs::read_dir(&dir)
                .expect("the new data directory")
                .map(|e| e.expect("a directory entry").path()),
        ) {
            std::os::unix::fs::chown(&entry, Some(id), Some(id)).expect("chown of the data dir");
        }
    }
    dir
}

/// A data directory at `dir` (created) with the admin password set to [`PASSWORD`].
#[track_caller]
#[must_use]
pub fn data_dir_at(dir: &Path) -> PathBuf {
    let dir = dir.to_path_buf();
    let out = Command::new(ntop_bin())
        .arg("-P")
        .arg(&dir)
        .arg(format!("--set-admin-password={PASSWORD}"))
        .output()
        .expect("running ntop --set-admin-password");
    assert!(
        out.status.success(),
        "ntop --set-admin-password failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// `ntop -P <fresh data directory> ARGS` in `ns` (see [`data_dir`]), without `NTOP_LOG` from
/// the environment (it would override `-t`).
#[track_caller]
#[must_use]
pub fn ntop_command(ns: &Netns, args: &[&str]) -> Command {
    ntop_command_in(ns, &data_dir(None), args)
}

/// `ntop -P DIR --detach-on-stop ARGS` in `ns`, for a data directory the test keeps a hand on
/// (made by [`data_dir`] or by the test itself), without `NTOP_LOG` from the environment.
///
/// `--detach-on-stop`: the programs go when the daemon stops, so tests can check that nothing
/// stays attached. (Left pinned, the default, they would go only once the daemon's mount
/// namespace is torn down, asynchronously.) Tests of the default build their own command
/// with [`ntop_pinned_command`].
#[must_use]
pub fn ntop_command_in(ns: &Netns, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = ns.command(ntop_bin());
    cmd.arg("-P")
        .arg(dir)
        .arg("--detach-on-stop")
        .args(args)
        .env_remove("NTOP_LOG");
    cmd
}

/// `ntop -P DIR --pin-dir PINS ARGS` in `ns`: the default (programs left pinned and counting
/// when the daemon stops), pinned into a bpffs the test mounted ([`crate::Bpffs`]).
#[must_use]
pub fn ntop_pinned_command(ns: &Netns, dir: &Path, pins: &Path, args: &[&str]) -> Command {
    let mut cmd = ns.command(ntop_bin());
    cmd.arg("-P")
        .arg(dir)
        .arg("--pin-dir")
        .arg(pins)
        .args(args)
        .env_remove("NTOP_LOG");
    cmd
}

/// The `Authorization` header value for HTTP Basic `user:password`.
#[must_use]
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where [`Daemon::start`] makes the daemon listen inside its namespace.
pub const API: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3000));

/// Bound on start-up: a debug build loading BPF on a busy machine.
const STARTUP: Duration = Duration::from_mins(1);

/// A running `ntop`, killed when dropped.
#[derive(Debug)]
pub struct Daemon<'a> {
    child: NsChild,
    ns: &'a Netns,
    addr: SocketAddr,
}

/// `GET path` on `addr` inside `ns` with HTTP Basic `admin:`[`PASSWORD`]: the status code and
/// body, or `None` if nothing answers.
#[must_use]
pub fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_request(ns, addr, "GET", path, &[("Authorization", BASIC_AUTH)], b"")
        .map(|r| (r.status, r.body))
}

/// An answer read by [`http_request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The status line and the header lines, as received.
    pub head: String,
    /// The body (de-chunked).
    pub body: String,
}

impl HttpResponse {
    /// The value of the first header called `name` (case-insensitive), trimmed.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON, or `None` when it is not JSON.
    #[must_use]
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// `METHOD path` on `addr` inside `ns` over plain HTTP/1.1 with exactly the given `headers`
/// (plus `Host`, `Connection: close` and, with a body, `Content-Length`): the answer, or
/// `None` if nothing answers (2 s to connect, 10 s to read).
#[must_use]
pub fn http_request(
    ns: &Netns,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<HttpResponse> {
    ns.enter(|| -> Option<HttpResponse> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (name, value) in headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        if !body.is_empty() {
            let _ = write!(request, "Content-Length: {}\r\n", body.len());
        }
        request.push_str("Connection: close\r\n\r\n");
        let mut raw = request.into_bytes();
        raw.extend_from_slice(body);
        s.write_all(&raw).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        // The API answers with Content-Length or chunked; de-chunk the simple case.
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Some(HttpResponse {
            status,
            head: head.to_owned(),
            body,
        })
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl<'a> Daemon<'a> {
    /// Starts `ntop -w 127.0.0.1:3000 ARGS` in `ns`; see [`Daemon::spawn`].
    #[track_caller]
    #[must_use]
    pub fn start(ns: &'a Netns, args: &[&str]) -> Self {
        let mut cmd = ntop_command(ns, &["-w", &API.to_string()]);
        cmd.args(args);
        Self::spawn(ns, API, cmd)
    }

    /// Starts `cmd`, an `ntop` command in `ns` whose arguments make it serve on `addr` (`-w
    /// ADDR`), and waits (at most 1 min) until its API answers and it has polled the kernel once
    /// (`polled_at` in `/api/v1/interfaces`). It binds its port before loading the programs but
    /// serves only after attaching them, so by then everything is attached. Panics if it exits
    /// first or does not get there in time.
    #[track_caller]
    #[must_use]
    pub fn spawn(ns: &'a Netns, addr: SocketAddr, cmd: Command) -> Self {
        let what = show(&cmd);
        let mut child = NsChild::spawn(cmd);
        let ready = wait_until(STARTUP, Duration::from_millis(20), || {
            if let Some(status) = child.try_wait() {
                return Some(Err(status));
            }
            let (code, body) = http_get(ns, addr, "/api/v1/interfaces")?;
            let v: Value = serde_json::from_str(&body).ok()?;
            (code == 200 && !v["polled_at"].is_null()).then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => Self { child, ns, addr },
            Some(Err(status)) => panic!(
                "`{what}` exited ({status}) before serving; stderr:\n{}",
                child.stderr()
            ),
            None => panic!(
                "`{what}` did not answer on {addr} within {STARTUP:?}; stderr:\n{}",
                child.stderr()
            ),
        }
    }

    /// Where the API listens (in the daemon's namespace).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process, for signals, its exit status and its output.
    pub fn child(&mut self) -> &mut NsChild {
        &mut self.child
    }

    /// `GET path` as JSON; panics unless the answer is 200 with a JSON body.
    #[track_caller]
    #[must_use]
    pub fn get(&self, path: &str) -> Value {
        let (code, body) = http_get(self.ns, self.addr, path)
            .unwrap_or_else(|| panic!("no answer to GET {path}: {}", self.child.stderr()));
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// The first entry of `ip` in `GET /api/v1/hosts/{ip}`, `null` while it has not been seen
    /// (404); panics on any other answer.
    #[must_use]
    pub fn first_entry(&self, ip: std::net::IpAddr) -> Value {
        let (code, body) = http_get(self.ns, self.addr, &format!("/api/v1/hosts/{ip}"))
            .unwrap_or_else(|| panic!("no answer to GET /api/v1/hosts/{ip}: {}", self.stderr()));
        match code {
            200 => serde_json::from_str::<Value>(&body).expect("JSON")["entries"][0].clone(),
            404 => Value::Null,
            _ => panic!("GET /api/v1/hosts/{ip}: {code} {body}"),
        }
    }

    /// `(packets, bytes)` of the first interface's received traffic, of `peer`'s first entry's
    /// sent traffic, and of the first interface's received IPv4 UDP, as the daemon reports them
    /// (zeros for what it does not list yet): what a test flow from `peer` shows up in.
    #[must_use]
    pub fn rx_totals(&self, peer: std::net::IpAddr) -> [(u64, u64); 3] {
        let pair = |v: &Value| {
            (
                v["packets"].as_u64().unwrap_or(0),
                v["bytes"].as_u64().unwrap_or(0),
            )
        };
        let iface = self.get("/api/v1/interfaces");
        let host = self.first_entry(peer);
        let protocols = self.get("/api/v1/protocols");
        let udp = protocols["protocols"]
            .as_array()
            .and_then(|p| {
                p.iter()
                    .find(|p| p["name"] == "udp" && p["family"] == "ipv4")
                    .cloned()
            })
            .unwrap_or(Value::Null);
        [
            pair(&iface["interfaces"][0]["rx"]),
            pair(&host["sent"]),
            pair(&udp["rx"]),
        ]
    }

    /// The daemon's log so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        self.child.stderr()
    }

    /// SIGINT, then waits (SIGKILL after 10 s).
    #[must_use]
    pub fn stop(mut self) -> ExitStatus {
        self.child.stop(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_encodes_like_rfc_4648() {
        assert_eq!(basic_auth("admin", PASSWORD), BASIC_AUTH);
        // Every padding length.
        assert_eq!(basic_auth("a", ""), "Basic YTo=");
        assert_eq!(basic_auth("ab", ""), "Basic YWI6");
        assert_eq!(basic_auth("abc", ""), "Basic YWJjOg==");
    }

    #[test]
    fn headers_are_found_case_insensitively() {
        let r = HttpResponse {
            status: 401,
            head: "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
                   WWW-Authenticate: Basic realm=\"ntop\""
                .into(),
            body: r#"{"code":"unauthorized"}"#.into(),
        };
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"ntop\""));
        assert_eq!(r.header("HTTP/1.1 401 Unauthorized"), None);
        assert_eq!(r.json().unwrap()["code"], "unauthorized");
    }
}
