//! The HTTP and HTTPS server: serves one warp filter on any number of plain and TLS listeners
//! at once (`-w` and `-W`), with the limits a daemon facing a network needs.
//!
//! Which task runs what:
//!
//! - [`bind`] runs at startup, before privileges are dropped (ports below 1024).
//! - [`serve`] is the **accept loop task**: it accepts on every listener, refuses connections
//!   beyond [`Limits::max_connections`], and spawns one **per-connection task** each. Accept
//!   errors (EMFILE, ENOBUFS, …) are logged and retried after a short pause, never fatal.
//! - A per-connection task does the TLS handshake (bounded by [`Limits::handshake_timeout`])
//!   with the [`Reloadable`] configuration current at that moment, then serves HTTP/1.1 or
//!   HTTP/2 with hyper. Each request gets the peer address as a [`ClientAddr`] extension
//!   (read it with [`client_addr`](super::client_addr)), and requests over TLS an [`Https`]
//!   marker. HTTP/1 headers must arrive within [`Limits::header_read_timeout`] (slowloris),
//!   and a connection on which no byte moves in either direction for
//!   [`Limits::idle_timeout`] is closed (silent clients, idle HTTP/2).
//!   Streaming responses (SSE) must send something (a keep-alive comment) more often.
//!   Malformed requests get hyper's 400 and only end their own connection; a panicking
//!   handler ends only its task.
//! - When `shutdown` resolves, the accept loop closes the listeners, asks every connection to
//!   finish (HTTP/1 after the current response, HTTP/2 with GOAWAY, handshakes at once), waits
//!   for them at most [`Limits::shutdown_grace`], then aborts the rest and returns.
//! - The SIGHUP handler task calls [`Reloadable::reload`]; new handshakes see the new
//!   certificate.

use std::{
    convert::Infallible,
    future::{Future, poll_fn},
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use hyper::{Request, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    task::JoinSet,
    time::{Instant, Sleep},
};
use tokio_rustls::TlsAcceptor;
use warp::{Filter, Reply};

use super::{ClientAddr, tls::Reloadable};

/// Put into the extensions of every request that came over TLS, e.g. to mark cookies
/// `Secure`: `warp::ext::optional::<Https>()` is `Some` on HTTPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Https;

/// Errors of setting up the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error(
        "cannot listen on {addr} for HTTP/HTTPS ({source}){hint}; choose another port with \
         -w/-W PORT, or 0 to turn it off"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error (in the message already, so not a `#[source]`: printed once).
        source: io::Error,
        /// A hint for the common causes.
        hint: &'static str,
    },
}

/// Binds `addr` for [`serve`] (`-w` or `-W`).
///
/// # Errors
/// [`ServeError::Bind`], saying which flag to change.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr,
            hint: match source.kind() {
                io::ErrorKind::AddrInUse => ": is another ntop or web server running?",
                io::ErrorKind::PermissionDenied => {
                    ": ports below 1024 need root or CAP_NET_BIND_SERVICE"
                }
                io::ErrorKind::AddrNotAvailable => ": no interface has this address",
                _ => "",
            },
            source,
        })
}

/// A listening socket and how to serve it.
pub enum Listener {
    /// Plain HTTP (`-w`).
    Plain(TcpListener),
    /// HTTPS (`-W`) with a certificate that can be reloaded.
    Tls(TcpListener, Arc<Reloadable>),
}

impl Listener {
    fn tcp(&self) -> &TcpListener {
        match self {
            Self::Plain(l) | Self::Tls(l, _) => l,
        }
    }

    /// The bound address (port 0 resolved).
    ///
    /// # Errors
    /// The OS error of `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// `"http"` or `"https"`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Plain(_) => "http",
            Self::Tls(..) => "https",
        }
    }
}

/// The server's limits. [`Default`] is what ntop uses.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections at most (over all listeners); more are closed as they arrive.
    pub max_connections: usize,
    /// Time for a client to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a client to send a complete HTTP/1 request head, also between keep-alive
    /// requests.
    pub header_read_timeout: Duration,
    /// A connection on which no byte is read or written for this long is closed: a silent
    /// client, an idle HTTP/2 connection, a response stream that sends nothing (SSE needs
    /// keep-alive comments more often than this), or a handler slower than this.
    pub idle_timeout: Duration,
    /// How long shutdown waits for open connections before closing them.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_mins(2),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `app` on every listener until `shutdown` resolves, with the default [`Limits`]; see
/// [`serve_with`].
pub async fn serve<F, R>(app: F, listeners: Vec<Listener>, shutdown: impl Future<Output = ()>)
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    serve_with(app, listeners, shutdown, Limits::default()).await;
}

/// Serves `app` on every listener (none: just waits for `shutdown`) until `shutdown` resolves,
/// then closes the listeners and lets open connections finish for at most
/// [`Limits::shutdown_grace`]. Never fails: per-connection errors are logged at debug level,
/// accept errors at error level.
pub async fn serve_with<F, R>(
    app: F,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Tells connections still in their TLS handshake to give up.
    let (stopping, _) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut full = Throttle::default();
    let mut failing = Throttle::default();
    let mut next = 0;
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                log_task_end(done);
                continue;
            }
            accepted = poll_fn(|cx| poll_accept(&listeners, &mut next, cx)) => accepted,
        };
        let (index, stream, peer) = match accepted {
            (index, Ok((stream, peer))) => (index, stream, peer),
            (_, Err(e)) if is_per_connection(&e) => continue,
            (_, Err(e)) => {
                if let Some(held) = failing.ready() {
                    tracing::error!(
                        "cannot accept connections: {e}{held}; retrying (too many open files? \
                         raise the limit with ulimit -n or LimitNOFILE=)"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Some(held) = full.ready() {
                tracing::warn!(
                    %peer,
                    "{} connections open, the most allowed: closing new ones{held}",
                    limits.max_connections
                );
            }
            drop(stream);
            continue;
        };
        let conn = Conn {
            peer,
            tls: match &listeners[index] {
                Listener::Plain(_) => None,
                Listener::Tls(_, tls) => Some(tls.clone()),
            },
            builder: builder.clone(),
            app: app.clone(),
            limits: limits.clone(),
            stopping: stopping.subscribe(),
            _permit: permit,
        };
        let watcher = graceful.watcher();
        conns.spawn(conn.run(stream, watcher));
    }

    drop(listeners);
    stopping.send_replace(true);
    let open = graceful.count();
    tracing::debug!(open, "HTTP server: stopped accepting, closing connections");
    let drain = async {
        graceful.shutdown().await;
        while let Some(done) = conns.join_next().await {
            log_task_end(done);
        }
    };
    if tokio::time::timeout(limits.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP connections still open after {:?}: closing them",
            limits.shutdown_grace
        );
    }
    // Abort whatever is left, and wait until their sockets are closed.
    conns.shutdown().await;
}

/// Accepts from whichever listener is ready, starting after the last one that was (so one busy
/// listener cannot starve another).
fn poll_accept(
    listeners: &[Listener],
    next: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<(usize, io::Result<(TcpStream, SocketAddr)>)> {
    let n = listeners.len();
    for k in 0..n {
        let i = (*next + k) % n;
        if let Poll::Ready(r) = listeners[i].tcp().poll_accept(cx) {
            *next = (i + 1) % n;
            return Poll::Ready((i, r));
        }
    }
    Poll::Pending
}

/// Errors of one incoming connection (it was reset before we took it), not of the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!("an HTTP connection task panicked (the server goes on): {e}");
    }
}

/// Lets a repeated message through at most every 10 s; when it does, says how many it held
/// back (a suffix for the message, empty when none).
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    fn ready(&mut self) -> Option<String> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(match std::mem::take(&mut self.held) {
            0 => String::new(),
            n => format!(" ({n} more since the last message)"),
        })
    }
}

/// One accepted connection, moved into its task.
struct Conn<F> {
    peer: SocketAddr,
    tls: Option<Arc<Reloadable>>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: F,
    limits: Limits,
    stopping: watch::Receiver<bool>,
    /// Held until the task ends: one slot of [`Limits::max_connections`].
    _permit: OwnedSemaphorePermit,
}

impl<F, R> Conn<F>
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    /// The per-connection task.
    async fn run(mut self, stream: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let _ = stream.set_nodelay(true);
        let io = Idle::new(stream, self.limits.idle_timeout);
        match self.tls.take() {
            None => self.http(io, false, watcher).await,
            Some(tls) => {
                let acceptor = TlsAcceptor::from(tls.config());
                let handshake =
                    tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(io));
                let mut stopping = self.stopping.clone();
                let io = tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(io)) => io,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                            return;
                        }
                    },
                    _ = stopping.wait_for(|&s| s) => return,
                };
                self.http(io, true, watcher).await;
            }
        }
    }

    async fn http<I>(self, io: I, tls: bool, watcher: hyper_util::server::graceful::Watcher)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let service = TowerToHyperService::new(warp::service(self.app));
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ClientAddr(peer));
            if tls {
                req.extensions_mut().insert(Https);
            }
            hyper::service::Service::call(&service, req)
        });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(%peer, "HTTP connection ended: {e}");
        }
    }
}

/// A stream that fails with `TimedOut` once no byte has moved in either direction for
/// `timeout` while a read or write is waiting.
struct Idle<T> {
    io: T,
    timeout: Duration,
    last: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    fn new(io: T, timeout: Duration) -> Self {
        let last = Instant::now();
        Self {
            io,
            timeout,
            last,
            sleep: Box::pin(tokio::time::sleep_until(last + timeout)),
        }
    }

    /// Called when the inner stream is pending: `Ready` with the error once idle too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let deadline = self.last + self.timeout;
            if self.sleep.deadline() != deadline {
                self.sleep.as_mut().reset(deadline);
            }
            ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= self.last + self.timeout {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no data for {:?}", self.timeout),
                ));
            }
        }
    }

    fn progress<V>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<V>>,
        moved: bool,
    ) -> Poll<io::Result<V>> {
        match r {
            Poll::Ready(r) => {
                if moved {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        this.progress(cx, r, moved)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        let moved = matches!(r, Poll::Ready(Ok(n)) if n > 0);
        this.progress(cx, r, moved)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        let moved = matches!(r, Poll::Ready(Ok(n)) if n > 0);
        this.progress(cx, r, moved)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.progress(cx, r, false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.progress(cx, r, false)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        fs,
        io::{Read as _, Write as _},
        path::{Path, PathBuf},
        process::Command,
        time::Duration,
    };

    use tokio::{sync::oneshot, task::JoinHandle};
    use warp::Filter;

    use super::*;
    use crate::{
        http::{
            client_addr, handle_rejection,
            tls::{
                CertPaths, default_names, self_signed,
                tests::{scratch, write_pair},
            },
        },
        store::DataDir,
    };

    /// `/addr` answers the client address the handler saw, `/hello` a greeting, `/panic`
    /// panics; everything else is the API's JSON 404.
    fn app() -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
        let addr = warp::path!("addr")
            .and(client_addr())
            .map(|a: Option<SocketAddr>| a.map_or_else(|| "none".to_owned(), |a| a.to_string()));
        let hello = warp::path!("hello").map(|| "hello".to_owned());
        let scheme = warp::path!("scheme")
            .and(warp::ext::optional::<Https>())
            .map(|h: Option<Https>| if h.is_some() { "https" } else { "http" }.to_owned());
        let panic = warp::path!("panic").map(|| -> String { panic!("handler panics on purpose") });
        addr.or(hello)
            .unify()
            .or(scheme)
            .unify()
            .or(panic)
            .unify()
            .recover(handle_rejection)
    }

    struct Server {
        http: SocketAddr,
        https: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<()>,
    }

    impl Server {
        async fn start(tls: Arc<Reloadable>, limits: Limits) -> Self {
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let plain = Listener::Plain(bind(any).await.unwrap());
            let secure = Listener::Tls(bind(any).await.unwrap(), tls);
            assert_eq!((plain.scheme(), secure.scheme()), ("http", "https"));
            let (http, https) = (plain.local_addr().unwrap(), secure.local_addr().unwrap());
            let (stop, stopped) = oneshot::channel();
            let shutdown = async {
                let _ = stopped.await;
            };
            let task = tokio::spawn(serve_with(app(), vec![plain, secure], shutdown, limits));
            Self {
                http,
                https,
                stop: Some(stop),
                task,
            }
        }

        /// Triggers shutdown and returns how long `serve` took to return.
        async fn stop(mut self) -> Duration {
            let t = Instant::now();
            self.stop.take().unwrap().send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(30), self.task)
                .await
                .expect("serve returns")
                .unwrap();
            t.elapsed()
        }
    }

    /// A reloadable configuration over a fresh pair in `dir`.
    fn reloadable(dir: &Path) -> (Arc<Reloadable>, CertPaths) {
        let paths = write_pair(dir, "server", &["localhost", "127.0.0.1"]);
        (Arc::new(Reloadable::load(paths.clone()).unwrap()), paths)
    }

    struct Output {
        ok: bool,
        stdout: String,
        stderr: String,
    }

    async fn run(program: &'static str, args: Vec<String>) -> Output {
        tokio::task::spawn_blocking(move || {
            let out = Command::new(program)
                .args(&args)
                .env("OPENSSL_CONF", "/dev/null")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            Output {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }

    /// `curl -v` with `args`, printing the status and HTTP version on the last line.
    async fn curl(args: &[&str]) -> Output {
        let mut all = vec![
            "-sSv",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code} %{http_version}",
        ];
        all.extend_from_slice(args);
        run("curl", all.into_iter().map(str::to_owned).collect()).await
    }

    fn s(p: &Path) -> String {
        p.to_string_lossy().into_owned()
    }

    /// Reads what the server sends until it closes (or 5 s pass).
    fn read_all(stream: &mut std::net::TcpStream) -> Vec<u8> {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn plain_and_tls_at_once_with_the_client_address() {
        let base = scratch("serve-both");
        let data = DataDir::open(base.join("data")).unwrap();
        let paths = self_signed(&data, &default_names()).unwrap();
        let ca = s(&paths.cert);
        let server = Server::start(
            Arc::new(Reloadable::load(paths).unwrap()),
            Limits::default(),
        )
        .await;
        let (http, https) = (
            format!("http://{}", server.http),
            format!("https://{}", server.https),
        );

        let out = curl(&[&format!("{http}/addr")]).await;
        assert!(out.ok, "{}", out.stderr);
        let (body, status) = out.stdout.rsplit_once('\n').unwrap();
        assert_eq!(status, "200 1.1");
        let seen: SocketAddr = body.parse().unwrap();
        assert_eq!(seen.ip(), server.http.ip());
        assert_ne!(seen.port(), server.http.port(), "the peer's port, not ours");

        let out = curl(&["--http2-prior-knowledge", &format!("{http}/hello")]).await;
        assert_eq!(out.stdout, "hello\n200 2", "{}", out.stderr);

        // TLS 1.3 with ALPN h2, TLS 1.3 with HTTP/1.1, TLS 1.2: all see the client address.
        for (flags, version, tls) in [
            (&["--tlsv1.3"][..], "2", "TLSv1.3"),
            (&["--tlsv1.3", "--http1.1"][..], "1.1", "TLSv1.3"),
            (&["--tlsv1.2", "--tls-max", "1.2"][..], "2", "TLSv1.2"),
        ] {
            let mut args = vec!["--cacert", &ca];
            args.extend_from_slice(flags);
            let url = format!("{https}/addr");
            args.push(&url);
            let out = curl(&args).await;
            assert!(out.ok, "{flags:?}: {}", out.stderr);
            let (body, status) = out.stdout.rsplit_once('\n').unwrap();
            assert_eq!(status, format!("200 {version}"), "{flags:?}");
            assert!(
                out.stderr.contains(&format!("SSL connection using {tls}")),
                "{}",
                out.stderr
            );
            assert_eq!(body.parse::<SocketAddr>().unwrap().ip(), server.https.ip());
        }

        // Requests over TLS are marked.
        for (url, want) in [(&http, "http"), (&https, "https")] {
            let out = curl(&["--cacert", &ca, &format!("{url}/scheme")]).await;
            assert!(
                out.stdout.starts_with(&format!("{want}\n200 ")),
                "{}",
                out.stdout
            );
        }

        // The generated certificate is valid for `localhost` too.
        let port = server.https.port();
        let out = curl(&[
            "--cacert",
            &ca,
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            &format!("https://localhost:{port}/hello"),
        ])
        .await;
        assert_eq!(out.stdout, "hello\n200 2", "{}", out.stderr);

        // Unknown routes: the API's JSON 404 on both.
        for url in [format!("{http}/nope"), format!("{https}/nope")] {
            let out = curl(&["--cacert", &ca, &url]).await;
            let (body, status) = out.stdout.rsplit_once('\n').unwrap();
            assert!(status.starts_with("404 "), "{url}: {status}");
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(json["code"].is_string(), "{body}");
        }

        // A large body to a route that reads none: answered, connection not stuck.
        let big = base.join("big");
        fs::write(&big, vec![b'x'; 8 << 20]).unwrap();
        let out = curl(&[
            "--data-binary",
            &format!("@{}", s(&big)),
            &format!("{http}/nope"),
        ])
        .await;
        assert!(
            out.stdout.ends_with("404 1.1"),
            "{}\n{}",
            out.stdout,
            out.stderr
        );

        assert!(server.stop().await < Duration::from_secs(2));
        fs::remove_dir_all(base).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tls_below_1_2_is_refused() {
        let base = scratch("serve-tls11");
        let (tls, paths) = reloadable(&base);
        let server = Server::start(tls, Limits::default()).await;
        let ca = s(&paths.cert);
        let url = format!("https://{}/hello", server.https);

        let out = curl(&["--cacert", &ca, "--tlsv1.1", "--tls-max", "1.1", &url]).await;
        assert!(!out.ok, "curl with TLS 1.1 must fail: {}", out.stdout);

        // openssl with its own restrictions lifted (`OPENSSL_CONF=/dev/null`, security level
        // 0), so that the refusal is the server's: an alert from the server, while the same
        // client gets through with TLS 1.2.
        let s_client = |flag: &'static str| {
            let args = [
                "s_client",
                "-connect",
                &server.https.to_string(),
                flag,
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
            ]
            .map(str::to_owned)
            .to_vec();
            run("openssl", args)
        };
        let out = s_client("-tls1_2").await;
        assert!(
            out.stdout.contains("Protocol  : TLSv1.2"),
            "{}{}",
            out.stdout,
            out.stderr
        );
        for flag in ["-tls1_1", "-tls1"] {
            let out = s_client(flag).await;
            assert!(!out.ok, "{flag}: {}", out.stdout);
            assert!(
                out.stderr.contains("SSL alert number"),
                "{flag}: the server must refuse with an alert: {}",
                out.stderr
            );
        }
        // The server still serves.
        let out = curl(&["--cacert", &ca, &url]).await;
        assert_eq!(out.stdout, "hello\n200 2", "{}", out.stderr);
        server.stop().await;
        fs::remove_dir_all(base).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn malformed_requests_and_panics_do_not_stop_the_server() {
        let base = scratch("serve-garbage");
        let (tls, _) = reloadable(&base);
        let server = Server::start(tls, Limits::default()).await;
        let http = server.http;
        let answers = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for request in [
                b"this is not http\r\n\r\n".to_vec(),
                b"GET /hello HTTP/1.1\r\nHost: x\r\nbroken header line\r\n\r\n".to_vec(),
                [
                    b"GET /hello HTTP/1.1\r\nX: ".as_slice(),
                    &vec![b'a'; 1 << 20],
                    b"\r\n\r\n",
                ]
                .concat(),
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS to the plain port".to_vec(),
            ] {
                let mut c = std::net::TcpStream::connect(http).unwrap();
                let _ = c.write_all(&request);
                out.push(String::from_utf8_lossy(&read_all(&mut c)).into_owned());
            }
            out
        })
        .await
        .unwrap();
        assert!(answers[0].starts_with("HTTP/1.1 400 "), "{:?}", answers[0]);
        assert!(answers[1].starts_with("HTTP/1.1 400 "), "{:?}", answers[1]);
        assert!(answers[2].starts_with("HTTP/1.1 431 "), "{:?}", answers[2]);
        assert!(answers[3].starts_with("HTTP/1.1 400 "), "{:?}", answers[3]);

        let out = curl(&[&format!("http://{http}/panic")]).await;
        assert!(!out.ok, "a panicking handler gives no answer");
        let out = curl(&[&format!("http://{http}/hello")]).await;
        assert_eq!(out.stdout, "hello\n200 1.1", "{}", out.stderr);
        assert!(server.stop().await < Duration::from_secs(2));
        fs::remove_dir_all(base).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn silent_and_idle_clients_do_not_hold_up_shutdown() {
        let base = scratch("serve-silent");
        let (tls, _) = reloadable(&base);
        let server = Server::start(tls, Limits::default()).await;
        // Connected and silent, on both ports; and an HTTP/1.1 keep-alive connection idle
        // after one request.
        let silent_plain = tokio::net::TcpStream::connect(server.http).await.unwrap();
        let silent_tls = tokio::net::TcpStream::connect(server.https).await.unwrap();
        let mut idle = std::net::TcpStream::connect(server.http).unwrap();
        idle.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0; 1024];
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = idle.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
        tokio::time::sleep(Duration::from_millis(200)).await;

        let took = server.stop().await;
        assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
        assert!(
            read_all(&mut idle).is_empty(),
            "the idle connection is closed"
        );
        drop((silent_plain, silent_tls));
        fs::remove_dir_all(base).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_slow_client_holds_up_shutdown_at_most_the_grace_period() {
        let base = scratch("serve-slowloris");
        let (tls, _) = reloadable(&base);
        let grace = Duration::from_secs(2);
        let limits = Limits {
            shutdown_grace: grace,
            ..Limits::default()
        };
        let server = Server::start(tls, limits).await;
        // Half a request head, then nothing (slowloris).
        let mut slow = std::net::TcpStream::connect(server.http).unwrap();
        slow.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let took = server.stop().await;
        assert!(
            took < grace + Duration::from_secs(1),
            "shutdown took {took:?}"
        );
        let _ = read_all(&mut slow);
        fs::remove_dir_all(base).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn connections_beyond_the_limit_and_idle_ones_are_closed() {
        let base = scratch("serve-limits");
        let (tls, _) = reloadable(&base);
        let limits = Limits {
            max_connections: 2,
            idle_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let server = Server::start(tls, limits).await;
        let (http, https) = (server.http, server.https);
        tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            let mut first = std::net::TcpStream::connect(http).unwrap();
            let mut second = std::net::TcpStream::connect(https).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            // The third is closed at once.
            let mut third = std::net::TcpStream::connect(http).unwrap();
            let _ = third.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(read_all(&mut third).is_empty());
            assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
            // The silent ones are closed after the idle timeout, freeing their slots.
            assert!(read_all(&mut first).is_empty());
            assert!(read_all(&mut second).is_empty());
            let t = t.elapsed();
            assert!(
                t >= Duration::from_millis(900) && t < Duration::from_secs(3),
                "{t:?}"
            );
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = curl(&[&format!("http://{http}/hello")]).await;
        assert_eq!(out.stdout, "hello\n200 1.1", "{}", out.stderr);
        server.stop().await;
        fs::remove_dir_all(base).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reload_serves_the_new_certificate_and_keeps_it_when_the_next_is_broken() {
        let base = scratch("serve-reload");
        let (tls, paths) = reloadable(&base);
        let server = Server::start(tls.clone(), Limits::default()).await;
        let url = format!("https://{}/hello", server.https);
        let old_ca = base.join("old-ca.pem");
        fs::copy(&paths.cert, &old_ca).unwrap();
        let get = |ca: PathBuf| {
            let url = url.clone();
            async move { curl(&["--cacert", &s(&ca), &url]).await }
        };
        assert!(get(old_ca.clone()).await.ok);

        // A new pair at the same paths: after reload, clients see the new certificate.
        let new = write_pair(&base, "new", &["localhost", "127.0.0.1"]);
        fs::copy(&new.cert, &paths.cert).unwrap();
        fs::copy(&new.key, &paths.key).unwrap();
        assert!(get(old_ca.clone()).await.ok, "not before the reload");
        tls.reload().unwrap();
        let out = get(new.cert.clone()).await;
        assert_eq!(out.stdout, "hello\n200 2", "{}", out.stderr);
        let out = get(old_ca.clone()).await;
        assert!(!out.ok, "the old certificate is no longer served");

        // Broken files: reload fails and the last good certificate stays.
        fs::write(&paths.key, "garbage").unwrap();
        assert!(tls.reload().is_err());
        fs::copy(&old_ca, &paths.cert).unwrap();
        fs::copy(&new.key, &paths.key).unwrap();
        let err = tls.reload().unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(get(new.cert.clone()).await.ok);

        server.stop().await;
        fs::remove_dir_all(base).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn no_listeners_just_waits_for_shutdown() {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(app(), Vec::new(), async {
            let _ = stopped.await;
        }));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_busy_port_names_the_flags() {
        let taken = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let msg = bind(addr).await.unwrap_err().to_string();
        assert!(
            msg.contains(&format!("cannot listen on {addr} for HTTP/HTTPS")),
            "{msg}"
        );
        assert!(msg.contains("another ntop"), "{msg}");
        assert!(msg.contains("-w/-W PORT, or 0 to turn it off"), "{msg}");
    }
}
