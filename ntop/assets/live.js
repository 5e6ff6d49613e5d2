// The live connection to the daemon (docs/DASHBOARD.md): `EventSource('/api/v1/events')`,
// one `summary` per poll. After three failures in a row it polls `/api/v1/interfaces` every
// 2 s instead and tries the events again every 10 s. When the daemon comes back after a
// restart (`ntop.started` in `/api/v1/status` changed), listeners get a `restart`.
//
// It also keeps the last 5 minutes of per-interface rates for the Summary chart, whatever page
// is open, so the chart is full when the user comes back to it. The time a page spent in the
// back/forward cache (no summaries arrive then) is filled from the 1-second history when it is
// shown again.

import { api, isLeaving, query } from './api.js';

export const WINDOW = 300; // seconds of live rates kept
const POLL_MS = 2000;
const PROBE_MS = 10000;

/** What the page knows about the connection; read it, do not write it. */
export const live = {
  /** `starting`, `events`, `polling` (events failed) or `down` (the daemon does not answer). */
  mode: 'starting',
  /** The last summary (from events, or built from a poll: then `partial` is true). */
  last: null,
  /** `Date.now()` when the last summary arrived. */
  lastAt: 0,
  /** `/api/v1/status` as last fetched. */
  status: null,
  /** Rates by interface name: `[{t, rx, tx, rxp, txp}]`, bytes and packets per second. */
  rates: new Map(),
};

const listeners = new Set();

/**
 * Calls `fn(type, data)` for `summary`, `mode`, `status`, `restart` and `rates` (points were
 * added to `live.rates` from the history, without a summary); returns an unsubscriber.
 */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(type, data) {
  for (const fn of [...listeners]) {
    try {
      fn(type, data);
    } catch (e) {
      console.error(e);
    }
  }
}

let source = null;
let probing = false;
let failures = 0;
let pollTimer = null;
let probeTimer = null;
let reopenTimer = null;
/** Whether the page is in the back/forward cache (between `pagehide` and `pageshow`). */
let hidden = false;
/** `ntop.started` when the page was hidden. */
let hiddenStarted;
/** Set on `pageshow`: the status check then made; the next summary ends the gap to fill. */
let resumed = null;

function setMode(mode) {
  if (live.mode === mode) return;
  live.mode = mode;
  emit('mode', mode);
}

/** Starts the connection; `status` is `/api/v1/status` as fetched at start-up (or null). */
export function start(status) {
  live.status = status;
  openEvents(false);
  // A page kept in the back/forward cache would keep its event stream open, and a browser
  // allows only six connections per host over HTTP/1.1: after a few visits the next page
  // load would wait for a free one. Close the stream when the page is hidden that way, and
  // open it again (and catch up) when it comes back.
  window.addEventListener('pagehide', (ev) => {
    if (!ev.persisted) return;
    hidden = true;
    hiddenStarted = live.status?.ntop?.started;
    clearTimeout(reopenTimer);
    if (source) {
      source.close();
      source = null;
    }
    stopPolling();
  });
  window.addEventListener('pageshow', (ev) => {
    if (!ev.persisted) return;
    hidden = false;
    failures = 0;
    // Nothing arrived while the page was away, by design: the collector is not stalled. The
    // banner's stall clock starts again now (a summary follows within a poll).
    if (live.lastAt) live.lastAt = Date.now();
    // The first summary from now on ends the gap in the rates; fillGap fills it.
    resumed = { checked: refreshStatus(), started: hiddenStarted };
    openEvents(false);
  });
}

/** Fetches `/api/v1/status`; signals `restart` when `ntop.started` changed. */
export async function refreshStatus() {
  try {
    const status = await api('/api/v1/status');
    const before = live.status?.ntop?.started;
    live.status = status;
    emit('status', status);
    if (before !== undefined && status?.ntop?.started !== before) {
      live.rates.clear();
      emit('restart', status);
    }
    return status;
  } catch {
    return null;
  }
}

function openEvents(probe) {
  if (isLeaving() || typeof EventSource !== 'function') {
    if (!pollTimer) startPolling();
    return;
  }
  if (source) source.close();
  probing = probe;
  const es = new EventSource('/api/v1/events');
  source = es;
  es.addEventListener('summary', (ev) => {
    if (es !== source) return;
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return;
    }
    const recovered = live.mode !== 'events' && live.mode !== 'starting';
    failures = 0;
    probing = false;
    stopPolling();
    setMode('events');
    if (recovered) refreshStatus();
    accept(data);
  });
  es.addEventListener('error', () => {
    if (es !== source) return;
    failures += 1;
    if (probing || failures >= 3) {
      // Give up on events for now: poll, and try them again later.
      es.close();
      source = null;
      probing = false;
      startPolling();
    } else if (es.readyState === EventSource.CLOSED) {
      // The browser does not retry after an error status (401, 503): retry ourselves.
      es.close();
      source = null;
      clearTimeout(reopenTimer);
      reopenTimer = setTimeout(() => openEvents(false), 2000);
    }
  });
}

function startPolling() {
  if (pollTimer) return;
  if (live.mode !== 'down') setMode('polling');
  let busy = false;
  const tick = async () => {
    if (isLeaving() || busy) return;
    busy = true;
    try {
      const doc = await api('/api/v1/interfaces');
      if (live.mode === 'down' || live.mode === 'starting') {
        setMode('polling');
        refreshStatus();
      }
      accept(fromInterfaces(doc));
    } catch (e) {
      if (e.status !== 401) setMode('down');
    } finally {
      busy = false;
    }
  };
  tick();
  pollTimer = setInterval(tick, POLL_MS);
  probeTimer = setInterval(() => {
    if (!source) openEvents(true);
  }, PROBE_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  clearInterval(probeTimer);
  pollTimer = null;
  probeTimer = null;
}

/** A (partial) summary from `/api/v1/interfaces`: no top talkers, no protocols. */
function fromInterfaces(doc) {
  const ms = doc.polled_at ? Date.parse(doc.polled_at) : NaN;
  let other = 0;
  for (const i of doc.interfaces) other += i.other_hosts.sent.bytes + i.other_hosts.received.bytes;
  return {
    partial: true,
    polled_at: Number.isFinite(ms) ? ms / 1000 : null,
    interfaces: doc.interfaces.map((i) => ({
      name: i.name,
      capture_mode: i.capture_mode,
      rx: i.rx,
      tx: i.tx,
    })),
    collector: {
      host_table_capacity: doc.host_table.capacity,
      host_table_used: doc.host_table.used,
      other_hosts_bytes: other,
      errors: Object.values(doc.errors).reduce((a, n) => a + n, 0),
      poll_duration_ms: doc.poll_duration_ms,
      store: live.status?.store?.state ?? null,
    },
  };
}

function accept(summary) {
  if (summary.polled_at === null || summary.polled_at === undefined) return;
  const previous = live.last;
  live.last = summary;
  live.lastAt = Date.now();
  if (!previous || previous.polled_at !== summary.polled_at) {
    record(summary);
    if (resumed && previous && !hidden) {
      const { checked, started } = resumed;
      resumed = null;
      fillGap(previous.polled_at, summary, checked, started);
    }
  }
  emit('summary', summary);
}

/**
 * Fills the rates between `from` (the last summary before the page went into the back/forward
 * cache) and `summary` (the first after it came back) from the 1-second history, unless the
 * daemon restarted meanwhile (`checked`: the status check made on `pageshow`; the restart
 * clears the rates, and the Summary fills its chart again from the history).
 */
async function fillGap(from, summary, checked, started) {
  await checked;
  if (live.status?.ntop?.started !== started) return;
  const to = summary.polled_at;
  const start = Math.max(from, to - WINDOW);
  // Polls come every second or two (polling mode): a shorter gap is no gap.
  if (to - start < 3) return;
  await fillFromHistory(summary.interfaces.map((i) => i.name), start, to);
  emit('rates');
}

/**
 * Fills the rates window of each interface of `names` from the 1-second history, from `from`
 * to `to` (unix seconds), where it has no points (see `prefill`). Resolves when done; an
 * interface without history (a new data directory, a broken store) keeps its rates as they are.
 */
export async function fillFromHistory(names, from, to) {
  await Promise.all(
    names.map(async (name) => {
      try {
        const range = { interface: name, from: Math.floor(from), to: Math.ceil(to), resolution: 'second' };
        const doc = await api(`/api/v1/history${query(range)}`);
        prefill(name, doc.points, from, to);
      } catch {
        // The chart shows what the polls brought.
      }
    }),
  );
}

/** Appends one point per interface to the rates window. */
function record(summary) {
  const t = summary.polled_at;
  for (const i of summary.interfaces) {
    let points = live.rates.get(i.name);
    if (!points) {
      points = [];
      live.rates.set(i.name, points);
    }
    if (points.length && points[points.length - 1].t >= t) continue;
    points.push({
      t,
      rx: i.rx.bytes_per_sec,
      tx: i.tx.bytes_per_sec,
      rxp: i.rx.packets_per_sec,
      txp: i.tx.packets_per_sec,
    });
    const cut = t - WINDOW;
    let drop = 0;
    while (drop < points.length && points[drop].t < cut) drop += 1;
    if (drop) points.splice(0, drop);
  }
}

/**
 * Fills the rates window of `name` from the 1-second history (`points` as `/api/v1/history`
 * returns them) for the seconds from `from` to `to`, in the hole after the points at or before
 * `from` and before the first point after it: in time order, without overlapping them. (At
 * start the hole is in front of the live points; after the back/forward cache, the time away.)
 */
function prefill(name, points, from, to) {
  const have = live.rates.get(name) ?? [];
  let at = 0;
  while (at < have.length && have[at].t <= from) at += 1;
  const next = at < have.length ? have[at].t : Infinity;
  const byT = new Map(points.map((p) => [p.t, p]));
  const raw = [];
  // A history row covers [t, t + 1): its rate is plotted at the end of the second, as a poll's.
  for (let t = Math.ceil(from); t < to; t += 1) {
    if (t + 1 >= next) break;
    const p = byT.get(t);
    raw.push({
      t: t + 1,
      rx: p ? p.rx_bytes : 0,
      tx: p ? p.tx_bytes : 0,
      rxp: p ? p.rx_packets : 0,
      txp: p ? p.tx_packets : 0,
    });
  }
  // Polls do not fall on whole seconds: a second of the history may hold two polls and the
  // next none. A centred mean over three seconds takes that aliasing out.
  const mean = (i, k) => {
    const around = raw.slice(Math.max(0, i - 1), i + 2);
    return around.reduce((a, p) => a + p[k], 0) / around.length;
  };
  const filled = raw.map((p, i) => ({ t: p.t, rx: mean(i, 'rx'), tx: mean(i, 'tx'), rxp: mean(i, 'rxp'), txp: mean(i, 'txp') }));
  live.rates.set(name, have.slice(0, at).concat(filled, have.slice(at)));
}
