//! The API's request handlers: validate the request, read the state, render JSON.
//!
//! They run in the HTTP server's tasks; the state work (sorting up to a million hosts,
//! serializing a page) runs on tokio's blocking pool under the state's read lock, so slow
//! requests neither stall the async workers nor hold the lock longer than the work takes.
//! The collector (the only writer) waits for the lock at most that long.

use std::{net::IpAddr, sync::PoisonError};

use serde::Serialize;
use warp::{
    Rejection,
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE},
    reply::Response,
};

use super::{
    error::ApiError,
    models::{
        Health, Host, HostEntriesResponse, HostsResponse, InterfacesResponse, PeersResponse,
        Protocol, ProtocolsResponse,
    },
};
use crate::state::{HostQuery, Order, Scope, SharedState, SortKey, State, display_addr, key_addr};

/// Hosts per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Most hosts per page.
pub const MAX_LIMIT: usize = 10_000;
/// Longest search text (`q`), in characters.
pub const MAX_SEARCH: usize = 256;

/// Query parameters, as warp decodes them (in order, duplicates kept).
pub type Query = Vec<(String, String)>;

/// `GET /api/v1/health`: `{"status":"ok"}`, whatever the state.
#[must_use]
pub fn health() -> Response {
    json(StatusCode::OK, &Health { status: "ok" })
}

/// `GET /api/v1/interfaces`.
///
/// # Errors
///
/// Rejects with an [`ApiError`] (rendered by [`handle_rejection`](super::handle_rejection)):
/// only `internal_error`.
pub async fn interfaces(state: SharedState) -> Result<Response, Rejection> {
    with_state(state, |s| {
        Ok(json(StatusCode::OK, &InterfacesResponse::new(s)))
    })
    .await
}

/// `GET /api/v1/hosts?sort=&order=&limit=&offset=&interface=&q=&scope=`.
///
/// # Errors
///
/// Rejects with an [`ApiError`] (rendered by [`handle_rejection`](super::handle_rejection)):
/// an unknown, repeated or invalid parameter, or an unknown interface.
pub async fn hosts(query: Query, state: SharedState) -> Result<Response, Rejection> {
    const ALLOWED: [&str; 7] = [
        "sort",
        "order",
        "limit",
        "offset",
        "interface",
        "q",
        "scope",
    ];
    const ALLOWED_TEXT: &str = "`sort`, `order`, `limit`, `offset`, `interface`, `q` and `scope`";
    let [sort, order, limit, offset, interface, search, scope] =
        params(query, ALLOWED, ALLOWED_TEXT).map_err(warp::reject::custom)?;
    let sort = match sort {
        None => SortKey::default(),
        Some(v) => SortKey::from_name(&v).ok_or_else(|| ApiError::InvalidParameter {
            name: "sort",
            value: v,
            expected: format!("one of {}", SortKey::ALL.map(SortKey::as_str).join(", ")),
        })?,
    };
    let order = match order {
        None => sort.default_order(),
        Some(v) => Order::from_name(&v).ok_or_else(|| ApiError::InvalidParameter {
            name: "order",
            value: v,
            expected: "`asc` or `desc`".to_owned(),
        })?,
    };
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(v) => parse_count(&v).filter(|n| *n <= MAX_LIMIT).ok_or_else(|| {
            ApiError::InvalidParameter {
                name: "limit",
                value: v,
                expected: format!("a whole number from 0 to {MAX_LIMIT}"),
            }
        })?,
    };
    let offset = match offset {
        None => 0,
        Some(v) => parse_count(&v).ok_or_else(|| ApiError::InvalidParameter {
            name: "offset",
            value: v,
            expected: "a whole number, 0 or more".to_owned(),
        })?,
    };
    let search = match search {
        Some(v) if v.chars().count() > MAX_SEARCH => {
            return Err(warp::reject::custom(ApiError::InvalidParameter {
                name: "q",
                value: v,
                expected: format!("at most {MAX_SEARCH} characters"),
            }));
        }
        // An emptied search box lists every host.
        Some(v) if v.trim().is_empty() => None,
        Some(v) => Some(v.trim().to_owned()),
        None => None,
    };
    let scope = match scope.as_deref() {
        None | Some("all") => None,
        Some("local") => Some(Scope::Local),
        Some("remote") => Some(Scope::Remote),
        Some(_) => {
            return Err(warp::reject::custom(ApiError::InvalidParameter {
                name: "scope",
                value: scope.unwrap_or_default(),
                expected: "`all`, `local` or `remote`".to_owned(),
            }));
        }
    };
    with_state(state, move |s| {
        let ifindex = interface.map(|name| ifindex_of(s, name)).transpose()?;
        let page = s.hosts(&HostQuery {
            sort,
            order,
            offset,
            limit,
            ifindex,
            search,
            scope,
        });
        Ok(json(
            StatusCode::OK,
            &HostsResponse {
                total: page.total,
                offset,
                limit,
                hosts: page.hosts.into_iter().map(Host::from).collect(),
            },
        ))
    })
    .await
}

/// `GET /api/v1/hosts/{ip}`: `segment` is the raw (percent-encoded) path segment.
///
/// # Errors
///
/// Rejects with an [`ApiError`] (rendered by [`handle_rejection`](super::handle_rejection)):
/// bad percent-encoding, not an IP address, or an address never seen.
pub async fn host(segment: String, state: SharedState) -> Result<Response, Rejection> {
    let ip = path_addr(&segment)?;
    with_state(state, move |s| {
        let entries = s.host_entries(ip);
        if entries.is_empty() {
            return Err(ApiError::HostNotFound(ip.to_string()));
        }
        Ok(json(
            StatusCode::OK,
            &HostEntriesResponse {
                ip,
                entries: entries.into_iter().map(Host::from).collect(),
            },
        ))
    })
    .await
}

/// Peers listed unless `limit` says otherwise.
pub const DEFAULT_PEERS: usize = 10;
/// Most peers listed.
pub const MAX_PEERS: usize = 100;

/// `GET /api/v1/hosts/{ip}/peers?limit=&interface=`: the hosts `ip` exchanged most bytes with,
/// from the kernel's pair counts.
///
/// # Errors
///
/// Rejects with an [`ApiError`] (rendered by [`handle_rejection`](super::handle_rejection)):
/// bad percent-encoding, not an IP address, an address never seen, an unknown or invalid
/// parameter, or an unknown interface.
pub async fn peers(
    segment: String,
    query: Query,
    state: SharedState,
) -> Result<Response, Rejection> {
    let [limit, interface] = params(query, ["limit", "interface"], "`limit` and `interface`")
        .map_err(warp::reject::custom)?;
    let limit = match limit {
        None => DEFAULT_PEERS,
        Some(v) => parse_count(&v)
            .filter(|n| (1..=MAX_PEERS).contains(n))
            .ok_or_else(|| ApiError::InvalidParameter {
                name: "limit",
                value: v,
                expected: format!("a whole number from 1 to {MAX_PEERS}"),
            })?,
    };
    let ip = path_addr(&segment)?;
    with_state(state, move |s| {
        let ifindex = interface.map(|name| ifindex_of(s, name)).transpose()?;
        if !s.has_host(ip) {
            return Err(ApiError::HostNotFound(ip.to_string()));
        }
        if s.pair_table().capacity == 0 && s.polled_at().is_some() {
            return Err(ApiError::PeersNotCounted);
        }
        Ok(json(
            StatusCode::OK,
            &PeersResponse::new(ip, s.peers(ip, ifindex, limit)),
        ))
    })
    .await
}

/// The address in a `/api/v1/hosts/{ip}…` path segment, in the form the API shows it
/// (`::ffff:198.18.0.1` becomes `198.18.0.1`).
pub(super) fn path_addr(segment: &str) -> Result<IpAddr, ApiError> {
    let decoded =
        percent_decode(segment).ok_or_else(|| ApiError::InvalidPathEncoding(segment.to_owned()))?;
    let ip: IpAddr = decoded
        .parse()
        .map_err(|_| ApiError::InvalidAddress(decoded.clone()))?;
    Ok(display_addr(key_addr(ip)))
}

/// `GET /api/v1/protocols?interface=`.
///
/// # Errors
///
/// Rejects with an [`ApiError`] (rendered by [`handle_rejection`](super::handle_rejection)):
/// an unknown or repeated parameter, or an unknown interface.
pub async fn protocols(query: Query, state: SharedState) -> Result<Response, Rejection> {
    let [interface] =
        params(query, ["interface"], "only `interface`").map_err(warp::reject::custom)?;
    with_state(state, move |s| {
        let ifindex = interface.map(|name| ifindex_of(s, name)).transpose()?;
        Ok(json(
            StatusCode::OK,
            &ProtocolsResponse {
                protocols: s
                    .protocols(ifindex)
                    .into_iter()
                    .map(Protocol::from)
                    .collect(),
            },
        ))
    })
    .await
}

/// Runs `f` on the blocking pool with the state read-locked.
async fn with_state<F>(state: SharedState, f: F) -> Result<Response, Rejection>
where
    F: FnOnce(&State) -> Result<Response, ApiError> + Send + 'static,
{
    let result = tokio::task::spawn_blocking(move || {
        // A panic in the collector while it held the lock poisons it; the collector itself
        // carries on (it ignores the poison too), so the state stays worth reading.
        let guard = state.read().unwrap_or_else(PoisonError::into_inner);
        f(&guard)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the request's worker failed: {e}")))?;
    result.map_err(warp::reject::custom)
}

/// The ifindex of the interface called `name`.
pub(super) fn ifindex_of(s: &State, name: String) -> Result<u32, ApiError> {
    s.interface(&name).map(|i| i.ifindex).ok_or_else(|| {
        let known: Vec<_> = s.interfaces().map(|i| i.name.to_owned()).collect();
        ApiError::InterfaceNotFound {
            name,
            known: if known.is_empty() {
                "none yet".to_owned()
            } else {
                known.join(", ")
            },
        }
    })
}

/// Sorts `query`'s values by the names in `allowed`; rejects unknown and repeated names.
pub(super) fn params<const N: usize>(
    query: Query,
    allowed: [&'static str; N],
    allowed_text: &'static str,
) -> Result<[Option<String>; N], ApiError> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for (name, value) in query {
        let Some(i) = allowed.iter().position(|a| *a == name) else {
            return Err(ApiError::UnknownParameter {
                name,
                allowed: allowed_text,
            });
        };
        if values[i].replace(value).is_some() {
            return Err(ApiError::DuplicateParameter(allowed[i]));
        }
    }
    Ok(values)
}

/// A decimal count: digits only (no sign, no spaces).
pub(super) fn parse_count(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Decodes `%XX` escapes; `None` if one is malformed or the result is not UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// A JSON response. Serializing our documents cannot fail; if it did, the response is a 500
/// error (still JSON).
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        Err(e) => {
            tracing::error!(error = %e, "serializing a response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"code":"internal_error","message":"serializing the response failed"}"#
                    .to_vec(),
            )
        }
    };
    let mut response = Response::new(bytes.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("198.18.0.1").as_deref(), Some("198.18.0.1"));
        assert_eq!(
            percent_decode("%3A%3Affff%3a198.18.0.1").as_deref(),
            Some("::ffff:198.18.0.1")
        );
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%+1"), None);
        // A lone UTF-8 lead byte.
        assert_eq!(percent_decode("%C3"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("00042"), Some(42));
        assert_eq!(parse_count("+5"), None);
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count(""), None);
        assert_eq!(parse_count("1e3"), None);
        assert_eq!(parse_count("99999999999999999999999999"), None);
    }
}
