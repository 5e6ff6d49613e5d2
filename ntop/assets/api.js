// Requests to the daemon's JSON API: credentials are the session cookie; state-changing
// requests carry the session's CSRF token; a 401 sends the browser to the login page (and the
// page comes back to the same view after the login).

let csrf = null;
let leaving = false;

/** Sets the session's CSRF token (from GET /api/v1/session). */
export function setCsrf(token) {
  csrf = token || null;
}

/** An answer that is not a success: `status` 0 means the daemon did not answer at all. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Goes to the login page, remembering the view to come back to. */
export function toLogin() {
  if (leaving) return;
  leaving = true;
  try {
    sessionStorage.setItem('ntop.return', location.hash);
  } catch {
    // Storage may be disabled: the page then opens on the summary.
  }
  location.assign('/login');
}

/** Whether the page is on its way to the login page (stop updating it). */
export const isLeaving = () => leaving;

/** Longest a request may take before the page gives up on it (and says so). */
const TIMEOUT_MS = 20000;

/** `signal` (if any) or a timeout, whichever fires first. */
function deadline(signal) {
  if (typeof AbortSignal.timeout !== 'function') return signal;
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  if (!signal) return timeout;
  return typeof AbortSignal.any === 'function' ? AbortSignal.any([signal, timeout]) : signal;
}

/**
 * Calls the API. Resolves with the parsed JSON (the text for other answers, `null` for 204);
 * rejects with an `ApiError` carrying the API's `code` and `message`.
 */
export async function api(path, { method = 'GET', body, signal, redirect401 = true } = {}) {
  // `X-Requested-With` marks a script's request: a 401 for it should not make the browser ask
  // for HTTP Basic credentials (the page sends the user to /login instead).
  const headers = { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: deadline(signal),
    });
  } catch (e) {
    if (e && e.name === 'AbortError' && signal && signal.aborted) throw e;
    throw new ApiError(0, 'network', 'ntop is not answering');
  }
  if (response.status === 401 && redirect401) {
    toLogin();
    throw new ApiError(401, 'unauthorized', 'Your session has ended; logging in again…');
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = text;
  if ((response.headers.get('Content-Type') || '').includes('json')) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const code = data && typeof data === 'object' && data.code ? data.code : `http_${response.status}`;
    const message =
      data && typeof data === 'object' && data.message ? data.message : `HTTP ${response.status}`;
    throw new ApiError(response.status, code, message);
  }
  return data;
}

/** A query string from an object, leaving out `undefined`, `null` and empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
