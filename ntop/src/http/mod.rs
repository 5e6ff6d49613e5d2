//! The JSON API (documented in `docs/API.md`), as warp filters.
//!
//! Runs in the HTTP server's tasks. The handlers only read the [`SharedState`] that the
//! collector writes; they never block the async workers (see [`handlers`]).
//!
//! Composition: [`api`] is the bare route tree (it rejects what it does not serve), and
//! [`routes`] is `api` with [`handle_rejection`] turning every rejection into a JSON error.
//! Layers added later (authentication, a dashboard, HTTPS) wrap or extend `api` and end with
//! the same `recover`:
//!
//! ```ignore
//! let app = auth().and(api(state)).or(dashboard()).recover(handle_rejection);
//! ```
//!
//! | route | handler |
//! |---|---|
//! | `GET /api/v1/interfaces` | [`handlers::interfaces`] |
//! | `GET /api/v1/hosts?sort=&order=&limit=&offset=&interface=&q=&scope=` | [`handlers::hosts`] |
//! | `GET /api/v1/hosts/{ip}` | [`handlers::host`] |
//! | `GET /api/v1/protocols?interface=` | [`handlers::protocols`] |
//! | `GET /api/v1/health` | [`handlers::health`] |
//! | `GET /api/v1/status` | [`admin`] |
//! | `POST /api/v1/reset` | [`admin`] |
//! | `GET /api/v1/config`, `GET /api/v1/log?lines=` | [`admin::config_and_log`] |
//! | `POST /api/v1/password` | [`crate::auth`] (it owns the password) |
//! | `GET /api/v1/history?interface=&protocol=\|host=&from=&to=&resolution=` | [`history::history_api`] |
//! | `GET /api/v1/hosts/{ip}/usage?interface=&tz=` | [`history::history_api`] |
//! | `GET /api/v1/dump.json?interface=` | [`history::history_api`] |
//! | `GET /api/v1/dump.csv?interface=` | [`history::history_api`] |
//! | `GET /api/v1/events` (server-sent events) | [`events::Events::routes`] |
//! | `GET /`, `GET /static/{name}` (the dashboard) | [`dashboard::routes`] |
//!
//! The history and dump routes are a separate filter, [`history::history_api`] (they need the
//! data directory), combined with `api` by the caller.

pub mod admin;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod handlers;
pub mod history;
#[cfg(test)]
mod history_tests;
pub mod models;
pub mod server;
#[cfg(test)]
mod tests;
pub mod tls;

use std::{convert::Infallible, net::SocketAddr};

use warp::{Filter, Rejection, reply::Response};

/// The client's address, put into every request's extensions by the server's accept loop
/// (`warp::addr::remote()` is empty when warp does not own the listener, as with TLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Extracts the [`ClientAddr`] of the request, `None` where the server did not set it (tests).
#[must_use]
pub fn client_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>().map(|a: Option<ClientAddr>| a.map(|ClientAddr(a)| a))
}

pub use self::error::{ApiError, handle_rejection};
use crate::state::SharedState;

/// The API with every rejection rendered as a JSON error: serve this directly.
pub fn routes(
    state: SharedState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    api(state).recover(handle_rejection).unify()
}

/// The API's routes without error rendering: they reject requests they do not serve (end
/// with `.recover(handle_rejection)`).
///
/// The method is checked after the path, so that an unknown path is 404 whatever the method,
/// and a known path with another method than GET is 405.
pub fn api(state: SharedState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let state = warp::any().map(move || state.clone());
    let query = warp::query::<handlers::Query>;

    let interfaces = warp::path!("api" / "v1" / "interfaces")
        .and(warp::get())
        .and(state.clone())
        .and_then(handlers::interfaces);
    let hosts = warp::path!("api" / "v1" / "hosts")
        .and(warp::get())
        .and(query())
        .and(state.clone())
        .and_then(handlers::hosts);
    let host = warp::path!("api" / "v1" / "hosts" / String)
        .and(warp::get())
        .and(state.clone())
        .and_then(handlers::host);
    let peers = warp::path!("api" / "v1" / "hosts" / String / "peers")
        .and(warp::get())
        .and(query())
        .and(state.clone())
        .and_then(handlers::peers);
    let protocols = warp::path!("api" / "v1" / "protocols")
        .and(warp::get())
        .and(query())
        .and(state)
        .and_then(handlers::protocols);
    let health = warp::path!("api" / "v1" / "health")
        .and(warp::get())
        .map(handlers::health);

    interfaces
        .or(hosts)
        .unify()
        .or(host)
        .unify()
        .or(peers)
        .unify()
        .or(protocols)
        .unify()
        .or(health)
        .unify()
}
