//! A real browser for the dashboard's tests: Debian's headless Chromium, driven over `WebDriver`
//! (`chromedriver`, with the [fantoccini] client), inside a test namespace.
//!
//! The daemon under test listens on its namespace's loopback ([`crate::daemon::API`]), which
//! nothing outside the namespace reaches. So `chromedriver` is started *in* the namespace
//! (`ip netns exec`, [`Netns::command`]) and Chromium, its child, inherits it; the test process
//! talks to `chromedriver` on that loopback too, from a thread that has entered the namespace
//! ([`Netns::enter`]) for every command, so every connection the client opens is made there.
//!
//! Every step is bounded: `chromedriver` has [`DRIVER_STARTUP`] to answer, every `WebDriver`
//! command [`COMMAND_TIMEOUT`], and waits poll a condition ([`Browser::wait`]) up to a timeout,
//! never a fixed sleep. Dropping the [`Browser`] ends the session, kills `chromedriver` and every
//! Chromium process (their own process group) and removes the temporary profile, also when the
//! test panics; a panicking test also gets the browser's console log printed.
//!
//! Helpers find elements by CSS selector; [`testid`] makes the selector of a `data-testid` of the
//! dashboard's contract (docs/DASHBOARD.md). Reads (`attr`, `text`, `count`, `eval`) run as
//! scripts in the page, so a re-rendered element never goes stale between finding and reading
//! it; clicks and typing are real `WebDriver` input.
//!
//! Console errors: the session records the browser's console (`goog:loggingPrefs`); every entry
//! at level `SEVERE` (uncaught exceptions, `console.error`, resources that failed to load,
//! Content-Security-Policy violations) is an error, and [`Browser::assert_no_console_errors`]
//! fails the test on any.
//!
//! Screenshots go to `<target dir>/screenshots/<test>-<page>.png` (the build's target directory,
//! which git ignores).

use std::{
    fmt::Write as _,
    fs,
    future::Future,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    sync::Mutex,
    thread,
    time::Duration,
};

use fantoccini::{
    Client, ClientBuilder, Locator,
    error::CmdError,
    wd::{Capabilities, WebDriverCompatibleCommand},
};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::{Netns, NsChild, daemon::PASSWORD, scratch_dir, unique_name, wait_until};

/// Debian's Chromium launcher (package `chromium`; `cargo xtask setup` installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `ChromeDriver`, the same version as [`CHROMIUM`] (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Bound on `chromedriver` answering `GET /status` as ready.
pub const DRIVER_STARTUP: Duration = Duration::from_secs(30);
/// Bound on one `WebDriver` command (a page load included).
pub const COMMAND_TIMEOUT: Duration = Duration::from_mins(1);
/// Default bound of the `wait_*` helpers.
pub const WAIT: Duration = Duration::from_secs(20);
/// Pause between two checks of a waited-for condition.
const POLL: Duration = Duration::from_millis(50);
/// The desktop viewport every session starts with (CSS pixels).
pub const DESKTOP: (u32, u32) = (1280, 800);
/// The phone viewport of the narrow-screen checks (CSS pixels).
pub const PHONE: (u32, u32) = (360, 740);

/// The CSS selector of the element with `data-testid="id"`.
#[must_use]
pub fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

/// A free TCP port on the loopback of `ns` (bound, read, released: the namespace is the
/// test's own, so nothing else takes it meanwhile).
#[track_caller]
#[must_use]
pub fn free_port(ns: &Netns) -> u16 {
    ns.enter(|| {
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
    })
    .unwrap_or_else(|e| panic!("finding a free port in {}: {e}", ns.name()))
}

/// Where screenshots go: `screenshots/` in the target directory of the running test binary
/// (`<target>/<profile>/deps/<test>-<hash>`), created if missing.
#[track_caller]
#[must_use]
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary is in <target>/<profile>/deps");
    let dir = target.join("screenshots");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Whether `chromedriver` on `addr` in `ns` answers `GET /status` with `"ready": true`. (It keeps
/// connections open whatever the request says, so the answer is read up to its
/// `Content-Length`, within 2 s.)
fn driver_ready(ns: &Netns, addr: SocketAddr) -> bool {
    ns.enter(|| -> Option<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET /status HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
        let mut raw = Vec::new();
        let mut buf = [0_u8; 4096];
        loop {
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let len: usize = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })?;
            if body.len() >= len {
                let v: Value = serde_json::from_str(&body[..len]).ok()?;
                return Some(head.starts_with("HTTP/1.1 200") && v["value"]["ready"] == true);
            }
        }
    })
    .unwrap_or(false)
}

/// A `WebDriver` command of `ChromeDriver`'s own on the current session: `POST
/// /session/{id}/{path}` with a JSON body.
#[derive(Debug)]
struct SessionPost {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or(""),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// The arguments Chromium gets (beside `ChromeDriver`'s own automation flags).
fn chromium_args(profile: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        // The new headless mode: the same browser as with a window, rendering off screen.
        "--headless=new",
        // Chromium refuses to start as root with its sandbox on (the sandbox's user namespace
        // and setuid helper are built for an unprivileged user, and root inside it would defeat
        // it); the tests run as root (namespaces, BPF), and the pages they open are the
        // daemon's own, on the namespace's loopback.
        "--no-sandbox",
        "--disable-gpu",
        // This machine has no network but the namespace's: no background requests (component
        // updates, sync, safe-browsing lists, QUIC probes) that would fail noisily or slowly.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-crash-reporter",
        "--disable-breakpad",
        "--no-first-run",
        "--no-default-browser-check",
        "--password-store=basic",
        "--mute-audio",
        "--hide-scrollbars",
        // Same pixels on every machine: no scaling, one language.
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    args.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
    args.push(format!(
        "--user-data-dir={}",
        profile.join("chromium").display()
    ));
    args
}

/// A headless Chromium session in a test namespace; see the module documentation.
pub struct Browser<'a> {
    ns: &'a Netns,
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: NsChild,
    /// Temporary directory: the Chromium profile, HOME and XDG directories of both processes.
    profile: PathBuf,
    /// Prefix of screenshot names (the test's name).
    name: String,
    /// Every console entry read so far, `LEVEL message`, for the failure report.
    console: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Browser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("ns", &self.ns.name())
            .field("driver", &self.driver.id())
            .field("profile", &self.profile)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> Browser<'a> {
    /// Starts `chromedriver` in `ns` on a free port, waits (at most [`DRIVER_STARTUP`]) until it
    /// is ready, and opens a session: headless Chromium with a fresh profile, a
    /// [`DESKTOP`]-sized window, time zone UTC and language `en-US`. `name` prefixes its
    /// screenshots (use the test's name).
    #[track_caller]
    #[must_use]
    pub fn start(ns: &'a Netns, name: &str) -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: `cargo xtask setup` installs Debian's chromium and \
                 chromium-driver"
            );
        }
        let profile = scratch_dir().join(format!("{}-browser", unique_name()));
        fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("creating {}: {e}", profile.display()));
        let port = free_port(ns);
        let mut cmd = ns.command(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            // Deterministic times in the page, and nothing written to root's home.
            .env("TZ", "UTC")
            .env("LANG", "C.UTF-8")
            .env("HOME", &profile)
            .env("XDG_CONFIG_HOME", profile.join("config"))
            .env("XDG_CACHE_HOME", profile.join("cache"))
            // A process group of its own (pgid = its pid, `ip netns exec` execs it): Chromium's
            // processes join it, so one kill of the group ends them all.
            .process_group(0);
        let driver = NsChild::spawn(cmd);
        let mut browser = Self {
            ns,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for the WebDriver client"),
            client: None,
            driver,
            profile,
            name: name.to_owned(),
            console: Mutex::new(Vec::new()),
        };
        // From here on, a panic drops `browser`, which cleans up.
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let ready = wait_until(DRIVER_STARTUP, Duration::from_millis(20), || {
            if let Some(status) = browser.driver.try_wait() {
                return Some(Err(status));
            }
            driver_ready(ns, addr).then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => {}
            Some(Err(status)) => panic!(
                "chromedriver exited ({status}) before it was ready; stderr:\n{}",
                browser.driver.stderr()
            ),
            None => panic!(
                "chromedriver did not answer on {addr} in {} within {DRIVER_STARTUP:?}; \
                 stdout:\n{}\nstderr:\n{}",
                ns.name(),
                browser.driver.stdout(),
                browser.driver.stderr()
            ),
        }
        let caps = capabilities(&browser.profile);
        let url = format!("http://{addr}/");
        let client = browser
            .block_on("starting a Chromium session", async {
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url)
                    .await
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|e| {
                panic!(
                    "{e}\nchromedriver stdout:\n{}\nstderr:\n{}",
                    browser.driver.stdout(),
                    browser.driver.stderr()
                )
            });
        browser.client = Some(client);
        // The window's size includes what headless Chromium reserves for a window's frame;
        // the page gets exactly the desktop viewport through device-metrics emulation.
        browser.set_viewport(DESKTOP);
        // Whatever Chromium's own start page logged is not the test's.
        let _ = browser.read_console();
        browser
    }

    /// The pid of `chromedriver`, which leads the process group of every browser process.
    #[must_use]
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// The temporary directory of the Chromium profile (removed on drop).
    #[must_use]
    pub fn profile_dir(&self) -> &Path {
        &self.profile
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a started session")
    }

    /// Runs `fut` to completion on a thread in the browser's namespace, at most
    /// [`COMMAND_TIMEOUT`].
    fn block_on<T: Send>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, String>> + Send,
    ) -> Result<T, String> {
        let rt = &self.rt;
        self.ns
            .enter(move || rt.block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, fut).await }))
            .unwrap_or_else(|_| Err(format!("no answer within {COMMAND_TIMEOUT:?}")))
            .map_err(|e| format!("{what}: {e}"))
    }

    /// A `WebDriver` command: its result, or the error as text.
    fn cmd<T: Send>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, CmdError>> + Send,
    ) -> Result<T, String> {
        self.block_on(what, async { fut.await.map_err(|e| e.to_string()) })
    }

    /// Opens `url` and waits for its load event.
    #[track_caller]
    pub fn goto(&self, url: &str) {
        let c = self.client();
        self.cmd(&format!("opening {url}"), c.goto(url))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Loads the page shown now again (a new document, unlike opening the same address with a
    /// `#fragment`, which only scrolls), and waits for its load event.
    #[track_caller]
    pub fn reload(&self) {
        let c = self.client();
        self.cmd("reloading the page", c.refresh())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Goes one entry back in the session's history, as the browser's Back button does, and
    /// waits until the page is shown: loaded again (its load event), or restored from the
    /// back/forward cache (its `pageshow`).
    #[track_caller]
    pub fn back(&self) {
        let c = self.client();
        self.cmd("going back", c.back())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The address of the page shown now.
    #[track_caller]
    #[must_use]
    pub fn current_url(&self) -> String {
        let c = self.client();
        self.cmd("reading the URL", c.current_url())
            .map_or_else(|e| panic!("{e}"), |u| u.to_string())
    }

    /// Runs `script` (a function body: `arguments[i]` are `args`, `return` gives the result) in
    /// the page; its result.
    ///
    /// # Errors
    /// The script's error (or the session's), as text.
    pub fn try_eval(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        let c = self.client();
        self.cmd("running a script", c.execute(script, args))
    }

    /// Runs `script` in the page (see [`Browser::try_eval`]); panics on a script error.
    #[track_caller]
    pub fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.try_eval(script, args)
            .unwrap_or_else(|e| panic!("{e}\nscript: {script}"))
    }

    /// Runs `script` as an asynchronous function body: it ends by calling the last argument
    /// (`arguments[arguments.length - 1]`) with its result, within the session's script timeout
    /// (30 s). Panics on a script error or timeout.
    #[track_caller]
    pub fn eval_async(&self, script: &str, args: Vec<Value>) -> Value {
        let c = self.client();
        self.cmd(
            "running an asynchronous script",
            c.execute_async(script, args),
        )
        .unwrap_or_else(|e| panic!("{e}\nscript: {script}"))
    }

    /// Has `source` run in every document the session opens from now on, before the page's own
    /// scripts (`Page.addScriptToEvaluateOnNewDocument`; the page's Content-Security-Policy does
    /// not apply to it). For measurements that must start with the navigation.
    #[track_caller]
    pub fn add_init_script(&self, source: &str) {
        let c = self.client();
        self.cmd(
            "adding a start-up script",
            c.issue_cmd(SessionPost {
                path: "goog/cdp/execute",
                body: json!({"cmd": "Page.addScriptToEvaluateOnNewDocument",
                             "params": {"source": source}}),
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The elements matching `selector` now.
    #[track_caller]
    #[must_use]
    pub fn count(&self, selector: &str) -> usize {
        let n = self.eval(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(selector)],
        );
        n.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .expect("a count")
    }

    /// Whether an element matches `selector` and is rendered (has a layout box).
    #[track_caller]
    #[must_use]
    pub fn visible(&self, selector: &str) -> bool {
        self.eval(
            "const e = document.querySelector(arguments[0]); \
             return !!e && e.getClientRects().length > 0;",
            vec![json!(selector)],
        ) == true
    }

    /// Attribute `name` of the first element matching `selector` (`None`: no such element or
    /// attribute).
    #[track_caller]
    #[must_use]
    pub fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.eval(
            "const e = document.querySelector(arguments[0]); \
             return e ? e.getAttribute(arguments[1]) : null;",
            vec![json!(selector), json!(name)],
        )
        .as_str()
        .map(str::to_owned)
    }

    /// The rendered text of the first element matching `selector` (`None`: no such element).
    #[track_caller]
    #[must_use]
    pub fn text(&self, selector: &str) -> Option<String> {
        self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            vec![json!(selector)],
        )
        .as_str()
        .map(str::to_owned)
    }

    /// A number attribute (e.g. `data-points`) of the first element matching `selector`.
    #[track_caller]
    #[must_use]
    pub fn number_attr(&self, selector: &str, name: &str) -> Option<u64> {
        self.attr(selector, name)?.trim().parse().ok()
    }

    /// Waits until `condition` returns `Some` (polling every 50 ms, at most `timeout`) and
    /// returns its value. On timeout it saves a screenshot (`<test>-timeout.png`) and panics
    /// with `what`, the page's address and the start of its text.
    #[track_caller]
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        if let Some(v) = wait_until(timeout, POLL, || condition(self)) {
            return v;
        }
        self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
    }

    /// Panics with `what`, after saving a screenshot (`<test>-timeout.png`), with the page's
    /// address, the start of its text and the console.
    #[track_caller]
    pub fn fail(&self, what: &str) -> ! {
        let shot = self.try_screenshot("timeout");
        let url = self.cmd("reading the URL", self.client().current_url());
        let text = self.try_eval(
            "return document.body ? document.body.innerText.slice(0, 2000) : '';",
            vec![],
        );
        panic!(
            "{what}\nURL: {url:?}\nscreenshot: {shot:?}\npage text: {text:?}\nconsole: {:#?}",
            self.console_log()
        );
    }

    /// Waits (at most [`WAIT`]) until an element matches `selector` and is rendered.
    #[track_caller]
    pub fn wait_visible(&self, selector: &str) {
        self.wait(&format!("`{selector}` to be shown"), WAIT, |b| {
            b.try_eval(
                "const e = document.querySelector(arguments[0]); \
                 return !!e && e.getClientRects().length > 0;",
                vec![json!(selector)],
            )
            .ok()
            .filter(|v| *v == true)
            .map(|_| ())
        });
    }

    /// Waits (at most [`WAIT`]) for the element with `data-testid="id"`.
    #[track_caller]
    pub fn wait_testid(&self, id: &str) {
        self.wait_visible(&testid(id));
    }

    /// Clicks the first element matching `selector` with a real pointer click (scrolled into
    /// view); waits for it to be there and clickable first (at most [`WAIT`]).
    #[track_caller]
    pub fn click(&self, selector: &str) {
        let c = self.client();
        let mut last = String::new();
        let done = wait_until(WAIT, POLL, || {
            let r = self.cmd(&format!("clicking `{selector}`"), async {
                c.find(Locator::Css(selector)).await?.click().await
            });
            r.map_err(|e| last = e).ok()
        });
        if done.is_none() {
            self.fail(&format!(
                "`{selector}` was not clickable within {WAIT:?}: {last}"
            ));
        }
    }

    /// Replaces the value of the input matching `selector` with `text`, typed key by key (so
    /// the page sees `input` events as from a person).
    #[track_caller]
    pub fn type_into(&self, selector: &str, text: &str) {
        let c = self.client();
        let mut last = String::new();
        let done = wait_until(WAIT, POLL, || {
            let r = self.cmd(&format!("typing into `{selector}`"), async {
                let e = c.find(Locator::Css(selector)).await?;
                e.clear().await?;
                e.send_keys(text).await
            });
            r.map_err(|e| last = e).ok()
        });
        if done.is_none() {
            self.fail(&format!(
                "`{selector}` took no input within {WAIT:?}: {last}"
            ));
        }
    }

    /// The value of the cookie `name` of the page shown now (`HttpOnly` ones too: `WebDriver` sees
    /// them, scripts do not); `None` when there is none.
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<String> {
        let c = self.client();
        self.cmd("reading a cookie", c.get_named_cookie(name))
            .ok()
            .map(|c| c.value().to_owned())
    }

    /// The text of an open `alert`/`confirm`/`prompt` dialog, which is accepted (OK); `None`
    /// when none is open.
    #[must_use]
    pub fn accept_dialog(&self) -> Option<String> {
        let c = self.client();
        let text = self.cmd("reading a dialog", c.get_alert_text()).ok()?;
        self.cmd("accepting a dialog", c.accept_alert()).ok()?;
        Some(text)
    }

    /// Sets the viewport to `width` × `height` CSS pixels (device-metrics emulation, which
    /// stays for later pages of the session). Below 600 px it also emulates a phone (touch,
    /// `<meta name="viewport">` honoured), as a device toolbar does.
    #[track_caller]
    pub fn set_viewport(&self, (width, height): (u32, u32)) {
        let body = json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}});
        let c = self.client();
        self.cmd(
            "setting the viewport",
            c.issue_cmd(SessionPost {
                path: "goog/cdp/execute",
                body,
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let size = self.eval("return [window.innerWidth, window.innerHeight];", vec![]);
        assert_eq!(
            size,
            json!([width, height]),
            "the viewport after setting it to {width}x{height}"
        );
    }

    /// Saves a screenshot of the viewport as `<screenshot dir>/<test>-<page>.png`.
    #[track_caller]
    pub fn screenshot(&self, page: &str) -> PathBuf {
        self.try_screenshot(page).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_screenshot(&self, page: &str) -> Result<PathBuf, String> {
        let c = self.client();
        let png = self.cmd("taking a screenshot", c.screenshot())?;
        let path = screenshot_dir().join(format!("{}-{page}.png", self.name));
        fs::write(&path, png).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    }

    /// New console entries since the last read, as (level, message); they are also kept for
    /// the failure report.
    fn read_console(&self) -> Vec<(String, String)> {
        let c = self.client();
        let v = self
            .cmd(
                "reading the browser's console",
                c.issue_cmd(SessionPost {
                    path: "se/log",
                    body: json!({"type": "browser"}),
                }),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let entries: Vec<(String, String)> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or("?").to_owned(),
                            e["message"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut log = self
            .console
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.extend(entries.iter().map(|(l, m)| format!("{l} {m}")));
        entries
    }

    /// Every console entry read so far (`LEVEL message`), including those of
    /// [`Browser::console_errors`] calls.
    #[must_use]
    pub fn console_log(&self) -> Vec<String> {
        if self.client.is_some() {
            let _ = self.read_console();
        }
        self.console
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The console errors (level `SEVERE`) since the last call.
    #[track_caller]
    #[must_use]
    pub fn console_errors(&self) -> Vec<String> {
        self.read_console()
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .map(|(_, m)| m)
            .collect()
    }

    /// Panics if the console has errors since the last check, naming `page`.
    #[track_caller]
    pub fn assert_no_console_errors(&self, page: &str) {
        let errors = self.console_errors();
        assert!(errors.is_empty(), "console errors on {page}: {errors:#?}");
    }

    /// Logs in through the login form at `base` (`http://127.0.0.1:3000`) with user `admin` and
    /// [`PASSWORD`], and waits until the browser has left `/login`.
    #[track_caller]
    pub fn log_in(&self, base: &str) {
        self.goto(&format!("{base}/login"));
        self.type_into("#password", PASSWORD);
        self.click("form button[type=submit]");
        let login = format!("{base}/login");
        self.wait("the login to leave /login", WAIT, |b| {
            let url = b.cmd("reading the URL", b.client().current_url()).ok()?;
            (!url.as_str().starts_with(&login)).then_some(())
        });
    }
}

/// The session's capabilities: Chromium's binary and arguments, the console log, page loads
/// that wait for the load event, and dialogs left for the test to handle.
fn capabilities(profile: &Path) -> Capabilities {
    let caps = json!({
        "browserName": "chrome",
        "pageLoadStrategy": "normal",
        "unhandledPromptBehavior": "ignore",
        "timeouts": {"pageLoad": 30_000, "script": 30_000, "implicit": 0},
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": chromium_args(profile),
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object"),
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        if thread::panicking() && self.client.is_some() {
            let log = self.console_log();
            let mut text = String::new();
            for line in &log {
                let _ = writeln!(text, "  {line}");
            }
            eprintln!("--- browser console of {} ---\n{text}---", self.name);
        }
        // End the session (Chromium quits); bounded like every command.
        if let Some(client) = self.client.take() {
            let _ = self.block_on("ending the session", async {
                tokio::time::timeout(Duration::from_secs(10), client.close())
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            });
        }
        // Then chromedriver and whatever is left of Chromium: the whole process group.
        let pgid = libc::pid_t::try_from(self.driver.id()).expect("pid fits pid_t");
        // SAFETY: kill has no memory-safety preconditions; -pgid names the group that
        // chromedriver leads (made for it at spawn), so only its processes get the signal.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        self.driver.kill();
        let gone = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            // SAFETY: signal 0 only checks whether the group still has a process.
            let rc = unsafe { libc::kill(-pgid, 0) };
            (rc == -1).then_some(())
        });
        if gone.is_none() {
            eprintln!("warning: processes of chromedriver's group {pgid} still exist after 10 s");
        }
        if let Err(e) = fs::remove_dir_all(&self.profile) {
            eprintln!("warning: removing {}: {e}", self.profile.display());
        }
    }
}
