//! The daemon under test: `ntop` started inside a test namespace, and its JSON API read over
//! plain HTTP/1.1 on that namespace's loopback (so nothing listens outside the namespace).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::ExitStatus,
    time::Duration,
};

use serde_json::Value;

use crate::{Netns, NsChild, ntop_bin, wait_until};

/// Where the daemon listens inside its namespace.
pub const API: &str = "127.0.0.1:3000";

/// A running `ntop`.
#[derive(Debug)]
pub struct Daemon<'a> {
    child: NsChild,
    ns: &'a Netns,
}

/// `GET path` on `addr` inside `ns`: the status code and body, or `None` if nothing answers.
#[must_use]
pub fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    ns.enter(|| -> Option<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
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
        Some((status, body))
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
    /// Starts `ntop -w 127.0.0.1:3000 ARGS` in `ns` and waits (at most 20 s) until it has
    /// polled the kernel once.
    #[track_caller]
    #[must_use]
    pub fn start(ns: &'a Netns, args: &[&str]) -> Self {
        let mut cmd = ns.command(ntop_bin());
        cmd.args(["-w", API]).args(args);
        let mut child = NsChild::spawn(cmd);
        let ready = wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            if let Some(status) = child.try_wait() {
                panic!("ntop exited during startup ({status}): {}", child.stderr());
            }
            let (code, body) = http_get(ns, API.parse().ok()?, "/api/v1/interfaces")?;
            let v: Value = serde_json::from_str(&body).ok()?;
            (code == 200 && !v["polled_at"].is_null()).then_some(())
        });
        assert!(
            ready.is_some(),
            "ntop did not answer within 20 s: {}",
            child.stderr()
        );
        Self { child, ns }
    }

    /// `GET path` as JSON; panics unless the answer is 200 with a JSON body.
    #[track_caller]
    #[must_use]
    pub fn get(&self, path: &str) -> Value {
        let (code, body) = http_get(self.ns, API.parse().expect("API address"), path)
            .unwrap_or_else(|| panic!("no answer to GET {path}: {}", self.child.stderr()));
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
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
