// Human units and local times for the dashboard (docs/DASHBOARD.md): bytes as B/KB/MB/GB/TB
// (powers of 1000), rates as bit/s, kbit/s, Mbit/s, Gbit/s, times in the browser's time zone.

const BYTES = ['B', 'KB', 'MB', 'GB', 'TB', 'PB', 'EB'];
const BITS = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s', 'Pbit/s'];
const PACKETS = ['pkt/s', 'kpkt/s', 'Mpkt/s', 'Gpkt/s', 'Tpkt/s'];
const DASH = '–';

/** `value` scaled by powers of 1000 into `units`, three significant digits. */
function scaled(value, units) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  let v = Math.abs(value);
  let i = 0;
  while (v >= 999.5 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  let digits = 0;
  if (i > 0 || !Number.isInteger(v)) digits = v < 9.995 ? 2 : v < 99.95 ? 1 : 0;
  const sign = value < 0 ? '-' : '';
  return `${sign}${v.toFixed(digits)} ${units[i]}`;
}

/** Bytes: `1.23 MB`. */
export const bytes = (n) => scaled(n, BYTES);

/** A rate in bytes per second, shown in bits: `9.84 Mbit/s`. */
export const bits = (bytesPerSec) =>
  bytesPerSec === null || bytesPerSec === undefined ? DASH : scaled(bytesPerSec * 8, BITS);

/** A rate already in bits per second (chart axes). */
export const bitRate = (bitsPerSec) => scaled(bitsPerSec, BITS);

/** Packets per second: `1.20 kpkt/s`. */
export const packetRate = (pps) => scaled(pps, PACKETS);

const grouped = new Intl.NumberFormat();

/** A count with the locale's digit grouping: `1,234,567`. */
export const count = (n) =>
  n === null || n === undefined || !Number.isFinite(n) ? DASH : grouped.format(n);

/** A fraction as a percentage: `12.5 %`. */
export function percent(fraction) {
  if (!Number.isFinite(fraction)) return DASH;
  const p = fraction * 100;
  return `${p < 10 && p > 0 ? p.toFixed(1) : Math.round(p)} %`;
}

/** A time as a `Date`: accepts a `Date`, unix seconds or an RFC 3339 string. */
export function toDate(t) {
  if (t instanceof Date) return t;
  if (typeof t === 'number') return new Date(t * 1000);
  if (typeof t === 'string') return new Date(t);
  return null;
}

const CLOCK = { hour: '2-digit', minute: '2-digit', second: '2-digit' };

/** Local clock time: `14:03:07`. */
export function clock(t) {
  const d = toDate(t);
  return d && !Number.isNaN(d.getTime()) ? d.toLocaleTimeString([], CLOCK) : DASH;
}

/** Local date and time: `3 Mar 2025, 14:03:07`. */
export function dateTime(t) {
  const d = toDate(t);
  if (!d || Number.isNaN(d.getTime())) return DASH;
  return d.toLocaleString([], {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    ...CLOCK,
  });
}

/** A local date: `3 Mar 2025`. */
export function date(t) {
  const d = toDate(t);
  if (!d || Number.isNaN(d.getTime())) return DASH;
  return d.toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' });
}

/** A month: `March 2025`. */
export function month(t) {
  const d = toDate(t);
  if (!d || Number.isNaN(d.getTime())) return DASH;
  return d.toLocaleDateString([], { year: 'numeric', month: 'long' });
}

/** How long ago `t` was, roughly: `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`. */
export function ago(t, now = Date.now()) {
  const d = toDate(t);
  if (!d || Number.isNaN(d.getTime())) return DASH;
  const s = Math.max(0, Math.round((now - d.getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A duration in milliseconds: `1.52 ms`, `830 µs`. */
export function millis(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return DASH;
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** The browser's current UTC offset as the usage API takes it: `Z`, `+02:00`, `-05:30`. */
export function utcOffset(d = new Date()) {
  const minutes = -d.getTimezoneOffset();
  if (minutes === 0) return 'Z';
  const sign = minutes > 0 ? '+' : '-';
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${sign}${hh}:${mm}`;
}

/** How ingress is counted, for people. */
export function captureMode(mode) {
  return (
    { 'xdp-native': 'XDP (native)', 'xdp-generic': 'XDP (generic)', tc: 'TC' }[mode] ?? mode ?? DASH
  );
}

/** A protocol's label: `tcp (IPv4)`, `arp`. */
export function protocolLabel(name, family) {
  const fam = { ipv4: 'IPv4', ipv6: 'IPv6' }[family];
  return fam ? `${name} (${fam})` : name;
}

/** A time compactly: the clock time when it is today, else the date and time. */
export function when(t) {
  const d = toDate(t);
  if (!d || Number.isNaN(d.getTime())) return DASH;
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], CLOCK);
  return d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}
