// A small SVG line chart, written for this dashboard (no library): several series over one
// time axis, a y axis in human units from zero, local-time x ticks, the latest value of each
// series in the legend, and a cursor driven by the pointer or the keyboard (focus the chart,
// then ←/→, Home, End, Esc) whose values are read out in a polite live region.
//
// The root element gets `data-points`: how many time points are plotted now; `data-nonzero`:
// how many of them have a value above zero in some series (traffic, not a filled-in gap);
// `data-latest`: the time of the last point, unix milliseconds (empty without points); and
// `data-max-gap`: the longest time between two neighbouring points, milliseconds (0 with fewer
// than two).
// Styling is all in app.css (`.chart-*`, `.series-N`), so light and dark modes just work and
// no inline style is needed (the page's CSP forbids it).

import { h, s, uid } from './dom.js';
import { clock, dateTime } from './format.js';

const PAD = { top: 12, right: 16, bottom: 28, left: 78 };
const TIME_STEPS = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  172800, 345600, 604800, 1209600, 2592000,
];

/** The smallest "nice" step (1, 2, 2.5 or 5 times a power of ten) of at least `raw`. */
export function niceStep(raw) {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const base = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * base >= raw * (1 - 1e-9)) return m * base;
  return 10 * base;
}

/** Ticks from 0 to at least `max`, about `count` of them: `{step, top, ticks}`. */
export function valueTicks(max, count = 4) {
  const step = niceStep((max > 0 ? max : 1) / count);
  const top = Math.max(step, Math.ceil(max / step - 1e-9) * step);
  const ticks = [];
  for (let i = 0; i * step <= top + step / 2; i += 1) ticks.push(i * step);
  return { step, top, ticks };
}

/** Time ticks between `from` and `to` (unix seconds) on local-time boundaries. */
export function timeTicks(from, to, maxTicks) {
  const span = Math.max(1, to - from);
  const step = TIME_STEPS.find((st) => span / st <= maxTicks) ?? TIME_STEPS[TIME_STEPS.length - 1];
  // Align to the local clock (minutes, hours, midnights), not to UTC.
  const offset = -new Date(from * 1000).getTimezoneOffset() * 60;
  const ticks = [];
  for (let t = Math.ceil((from + offset) / step) * step - offset; t <= to; t += step) ticks.push(t);
  return { step, ticks };
}

function tickLabel(t, step, span) {
  const d = new Date(t * 1000);
  if (step >= 86400 || (span > 86400 && d.getHours() === 0 && d.getMinutes() === 0)) {
    return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  }
  if (step < 60) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Index of the time in sorted `times` nearest to `t`. */
function nearest(times, t) {
  let lo = 0;
  let hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(times[lo - 1] - t) <= Math.abs(times[lo] - t)) return lo - 1;
  return lo;
}

function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i -= 1) {
    if (values[i] !== null && values[i] !== undefined && Number.isFinite(values[i])) return values[i];
  }
  return null;
}

export class LineChart {
  /**
   * `root`: the element to draw in (it gets the legend and the readout too).
   * Options: `label` (accessible name), `yFormat` (value → text), `height` (px),
   * `emptyText` (shown without data).
   */
  constructor(root, { label = 'Chart', yFormat = String, height = 220, emptyText = 'No data yet' } = {}) {
    this.root = root;
    this.label = label;
    this.yFormat = yFormat;
    this.height = height;
    this.emptyText = emptyText;
    this.times = [];
    this.series = [];
    this.from = null;
    this.to = null;
    this.cursor = null; // a time, or null
    this.width = 0;
    this.scale = null;
    this.clipId = uid('chart-clip');
    const readoutId = uid('chart-readout');
    this.svg = s('svg', {
      class: 'chart-svg',
      role: 'img',
      tabindex: '0',
      'aria-label': label,
      'aria-describedby': readoutId,
    });
    this.legend = h('ul', { class: 'chart-legend' });
    this.readout = h('p', { class: 'chart-readout', id: readoutId, 'aria-live': 'polite' });
    this.cursorLayer = s('g', { class: 'chart-cursor' });
    root.classList.add('chart');
    root.setAttribute('data-points', '0');
    root.setAttribute('data-nonzero', '0');
    root.setAttribute('data-latest', '');
    root.setAttribute('data-max-gap', '0');
    root.replaceChildren(this.svg, this.legend, this.readout);

    this.svg.addEventListener('pointermove', (e) => this.onPointer(e));
    this.svg.addEventListener('pointerdown', (e) => this.onPointer(e));
    this.svg.addEventListener('pointerleave', () => {
      if (document.activeElement !== this.svg) this.setCursor(null);
    });
    this.svg.addEventListener('keydown', (e) => this.onKey(e));
    this.svg.addEventListener('focus', () => {
      if (this.cursor === null && this.times.length) this.setCursor(this.times[this.times.length - 1]);
    });
    this.svg.addEventListener('blur', () => this.setCursor(null));
    if (typeof ResizeObserver === 'function') {
      this.observer = new ResizeObserver(() => {
        if (this.measure() !== this.width) this.render();
      });
      this.observer.observe(root);
    }
    this.render();
  }

  /** Stops watching the root's size (call when the chart leaves the page). */
  destroy() {
    if (this.observer) this.observer.disconnect();
  }

  measure() {
    return Math.max(220, Math.floor(this.root.clientWidth || 640));
  }

  /**
   * New data: `times` (unix seconds, ascending), `series` (`[{name, values, cls}]`, one value
   * per time, `null` for a gap), and optionally the x range `from`/`to` (default: the data's).
   */
  setData({ times, series, from = null, to = null }) {
    this.times = times;
    this.series = series;
    this.from = from;
    this.to = to;
    let nonzero = 0;
    let gap = 0;
    for (let i = 0; i < times.length; i += 1) {
      if (series.some((se) => se.values[i] > 0)) nonzero += 1;
      if (i > 0) gap = Math.max(gap, times[i] - times[i - 1]);
    }
    this.root.setAttribute('data-points', String(times.length));
    this.root.setAttribute('data-nonzero', String(nonzero));
    this.root.setAttribute('data-latest', times.length ? String(Math.round(times[times.length - 1] * 1000)) : '');
    this.root.setAttribute('data-max-gap', String(Math.round(gap * 1000)));
    this.render();
  }

  render() {
    const W = (this.width = this.measure());
    const H = this.height;
    const pw = W - PAD.left - PAD.right;
    const ph = H - PAD.top - PAD.bottom;
    const { times, series } = this;
    let from = this.from ?? times[0];
    let to = this.to ?? times[times.length - 1];
    if (from === undefined || from === null) {
      to = Date.now() / 1000;
      from = to - 300;
    }
    if (!(to > from)) to = from + 1;
    let max = 0;
    for (const se of series) for (const v of se.values) if (v > max) max = v;
    const { top, ticks } = valueTicks(max);
    const x = (t) => PAD.left + ((t - from) / (to - from)) * pw;
    const y = (v) => PAD.top + ph - (v / top) * ph;
    this.scale = { x, y, from, to, pw };

    const svg = this.svg;
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('height', String(H));
    const grid = s('g', { class: 'chart-grid' });
    for (const v of ticks) {
      const yy = y(v).toFixed(1);
      grid.append(
        s('line', { x1: PAD.left, x2: W - PAD.right, y1: yy, y2: yy }),
        s('text', { class: 'chart-label', x: PAD.left - 8, y: yy, dy: '0.32em', 'text-anchor': 'end' }, this.yFormat(v)),
      );
    }
    const span = to - from;
    const { step, ticks: tticks } = timeTicks(from, to, Math.max(2, Math.floor(pw / 80)));
    for (const t of tticks) {
      const xx = x(t).toFixed(1);
      grid.append(
        s('line', { class: 'chart-tick', x1: xx, x2: xx, y1: PAD.top + ph, y2: PAD.top + ph + 4 }),
        s('text', { class: 'chart-label', x: xx, y: H - 8, 'text-anchor': 'middle' }, tickLabel(t, step, span)),
      );
    }
    grid.append(s('line', { class: 'chart-axis', x1: PAD.left, x2: W - PAD.right, y1: PAD.top + ph, y2: PAD.top + ph }));

    const clip = s('clipPath', { id: this.clipId }, s('rect', { x: PAD.left, y: 0, width: pw, height: H }));
    const lines = s('g', { class: 'chart-lines', 'clip-path': `url(#${this.clipId})` });
    series.forEach((se, k) => {
      let d = '';
      let pen = false;
      const dots = [];
      for (let i = 0; i < times.length; i += 1) {
        const v = se.values[i];
        if (v === null || v === undefined || !Number.isFinite(v)) {
          pen = false;
          continue;
        }
        const px = x(times[i]).toFixed(1);
        const py = y(v).toFixed(1);
        d += `${pen ? 'L' : 'M'}${px} ${py}`;
        const next = se.values[i + 1];
        if (!pen && (next === null || next === undefined)) dots.push([px, py]);
        pen = true;
      }
      const cls = se.cls ?? `series-${k}`;
      if (d) lines.append(s('path', { class: ['chart-line', cls], d }));
      for (const [px, py] of dots) lines.append(s('circle', { class: ['chart-dot', cls], cx: px, cy: py, r: 2.5 }));
    });

    const layers = [s('defs', null, clip), grid, lines];
    if (!times.length) {
      layers.push(
        s('text', { class: 'chart-empty', x: PAD.left + pw / 2, y: PAD.top + ph / 2, 'text-anchor': 'middle' }, this.emptyText),
      );
    }
    layers.push(this.cursorLayer);
    svg.replaceChildren(...layers);
    this.renderLegend();
    this.drawCursor();
  }

  renderLegend() {
    const latest = this.series.map((se) => [se, lastValue(se.values)]);
    this.legend.replaceChildren(
      ...latest.map(([se, v], k) =>
        h(
          'li',
          null,
          s(
            'svg',
            { class: 'chart-swatch', viewBox: '0 0 20 10', 'aria-hidden': 'true' },
            s('line', { class: ['chart-line', se.cls ?? `series-${k}`], x1: 1, x2: 19, y1: 5, y2: 5 }),
          ),
          `${se.name} `,
          h('strong', null, v === null ? '–' : this.yFormat(v)),
        ),
      ),
    );
    const summary = latest
      .filter(([, v]) => v !== null)
      .map(([se, v]) => `${se.name} ${this.yFormat(v)}`)
      .join(', ');
    // Not while the chart has the focus: a screen reader may read a focused element's name
    // again whenever it changes (every poll); the cursor's readout speaks then.
    if (document.activeElement !== this.svg) {
      this.svg.setAttribute('aria-label', summary ? `${this.label}. Latest: ${summary}` : this.label);
    }
  }

  onPointer(e) {
    if (!this.times.length || !this.scale) return;
    const r = this.svg.getBoundingClientRect();
    if (!r.width) return;
    const px = ((e.clientX - r.left) * this.width) / r.width;
    const { from, to, pw } = this.scale;
    const t = from + ((px - PAD.left) / pw) * (to - from);
    this.setCursor(this.times[nearest(this.times, t)]);
  }

  onKey(e) {
    const n = this.times.length;
    if (!n) return;
    let i = this.cursor === null ? n - 1 : nearest(this.times, this.cursor);
    switch (e.key) {
      case 'ArrowLeft':
        i = Math.max(0, i - 1);
        break;
      case 'ArrowRight':
        i = Math.min(n - 1, i + 1);
        break;
      case 'PageUp':
        i = Math.max(0, i - 10);
        break;
      case 'PageDown':
        i = Math.min(n - 1, i + 10);
        break;
      case 'Home':
        i = 0;
        break;
      case 'End':
        i = n - 1;
        break;
      case 'Escape':
        this.setCursor(null);
        return;
      default:
        return;
    }
    e.preventDefault();
    this.setCursor(this.times[i]);
  }

  setCursor(t) {
    const changed = t !== this.cursor;
    this.cursor = t;
    this.drawCursor();
    if (changed) this.readout.textContent = this.cursorText();
  }

  cursorText() {
    if (this.cursor === null || !this.times.length) return '';
    const i = nearest(this.times, this.cursor);
    const span = (this.scale?.to ?? 0) - (this.scale?.from ?? 0);
    const when = span > 86400 ? dateTime(this.times[i]) : clock(this.times[i]);
    const values = this.series.map((se) => {
      const v = se.values[i];
      return `${se.name} ${v === null || v === undefined ? '–' : this.yFormat(v)}`;
    });
    return `${when}: ${values.join(', ')}`;
  }

  drawCursor() {
    const layer = this.cursorLayer;
    if (this.cursor === null || !this.times.length || !this.scale) {
      layer.replaceChildren();
      if (this.readout.textContent) this.readout.textContent = '';
      return;
    }
    const { x, y } = this.scale;
    const i = nearest(this.times, this.cursor);
    const xx = x(this.times[i]).toFixed(1);
    const parts = [s('line', { class: 'chart-cursor-line', x1: xx, x2: xx, y1: PAD.top, y2: this.height - PAD.bottom })];
    this.series.forEach((se, k) => {
      const v = se.values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      parts.push(s('circle', { class: ['chart-dot', se.cls ?? `series-${k}`], cx: xx, cy: y(v).toFixed(1), r: 3.5 }));
    });
    layer.replaceChildren(...parts);
    const text = this.cursorText();
    if (this.readout.textContent !== text) this.readout.textContent = text;
  }
}
