// A tiny element builder: h('p', {class: 'x', testid: 'y', onclick: f}, 'text', child, …).
// Nothing is ever parsed as markup: every text is a text node, so nothing from the network
// can inject HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') {
        el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
      } else if (key === 'testid') {
        el.setAttribute('data-testid', value);
      } else if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'value' && 'value' in el) {
        el.value = value;
      } else if (key === 'checked' || key === 'selected' || key === 'disabled') {
        el[key] = Boolean(value);
        if (value) el.setAttribute(key, '');
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** An HTML element. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces `el`'s children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A fresh element id with `prefix`. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A horizontally scrollable, keyboard-scrollable wrapper for a wide table. */
export function tableWrap(label, table) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
}

/**
 * A table head of one row: each column a label (`'Host'`), right-aligned for numbers
 * `{ num: 'Bytes' }`, or a header only screen readers see (a column of bars)
 * `{ hidden: 'Relative' }`.
 */
export function thead(...cols) {
  const cell = (c) => {
    if (typeof c === 'string') return h('th', { scope: 'col' }, c);
    if (c.hidden !== undefined) return h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, c.hidden));
    return h('th', { scope: 'col', class: 'num' }, c.num);
  };
  return h('thead', null, h('tr', null, ...cols.map(cell)));
}

/** A small horizontal bar (SVG, no inline style) showing `fraction` (0…1). */
export function bar(fraction, cls = '') {
  const f = Number.isFinite(fraction) ? Math.max(0, Math.min(1, fraction)) : 0;
  return s(
    'svg',
    { class: ['bar', cls], viewBox: '0 0 100 8', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
    s('rect', { class: 'bar-bg', x: 0, y: 0, width: 100, height: 8, rx: 2 }),
    s('rect', { class: 'bar-fg', x: 0, y: 0, width: (f * 100).toFixed(2), height: 8, rx: 2 }),
  );
}

/** A `<select>` with a visible label: options are `[value, text]` pairs. */
export function select(label, options, value, onchange, attrs = {}) {
  const id = uid('sel');
  const sel = h(
    'select',
    { id, ...attrs, onchange: (e) => onchange(e.target.value) },
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)),
  );
  return h('label', { class: 'field', for: id }, h('span', null, label), sel);
}

/** A notice paragraph: `kind` is `info`, `warn` or `error`. */
export function notice(kind, ...text) {
  return h('p', { class: ['notice', `notice-${kind}`], role: kind === 'error' ? 'alert' : null }, ...text);
}

/**
 * Shows a notice of `kind` with `text` in `region` (an `aria-live` element), or empties it
 * when `text` is empty. Pages refresh every few seconds: the notice is replaced only when its
 * kind or text changed, so a screen reader announces a problem once, not at every refresh.
 */
export function say(region, kind, text) {
  const key = text ? `${kind}\n${text}` : '';
  if (region.dataset.said === key) return;
  region.dataset.said = key;
  if (text) replace(region, notice(kind, text));
  else region.replaceChildren();
}

/**
 * Runs `fn` (which rebuilds `container`'s content) and puts the keyboard focus back on the
 * link or control with the same `href` or `data-key` if it was inside: live tables are
 * rebuilt every second, and a keyboard user must not lose their place.
 */
export function keepFocus(container, fn) {
  const active = document.activeElement;
  const keyOf = (el) => el.getAttribute('data-key') || el.getAttribute('href');
  const key = active && active !== document.body && container.contains(active) ? keyOf(active) : null;
  fn();
  if (!key) return;
  for (const el of container.querySelectorAll('[data-key], a[href]')) {
    if (keyOf(el) === key) {
      el.focus({ preventScroll: true });
      return;
    }
  }
}

/**
 * Makes `tbody`'s rows `rows` (fresh `<tr>`s), keeping the rows already there that have the
 * same `data-key` and patching only the cells that changed: live tables update every few
 * seconds, and links that stay the same element can be clicked, focused and read without
 * being replaced under the user (or a test driver).
 */
export function syncRows(tbody, rows) {
  keepFocus(tbody, () => {
    const old = new Map();
    for (const tr of tbody.children) {
      if (tr.dataset.key) old.set(tr.dataset.key, tr);
    }
    const placed = new Set();
    rows.forEach((fresh, i) => {
      const key = fresh.dataset.key;
      let tr = key ? old.get(key) : undefined;
      if (tr && !placed.has(tr)) {
        if (!tr.isEqualNode(fresh)) patch(tr, fresh);
      } else {
        tr = fresh;
      }
      placed.add(tr);
      const at = tbody.children[i];
      if (at !== tr) tbody.insertBefore(tr, at ?? null);
    });
    for (const tr of [...tbody.children]) {
      if (!placed.has(tr)) tr.remove();
    }
  });
}

function patch(el, fresh) {
  for (const { name } of [...el.attributes]) {
    if (!fresh.hasAttribute(name)) el.removeAttribute(name);
  }
  for (const { name, value } of fresh.attributes) {
    if (el.getAttribute(name) !== value) el.setAttribute(name, value);
  }
  if (el.children.length !== fresh.children.length) {
    el.replaceChildren(...fresh.childNodes);
    return;
  }
  const cells = [...el.children];
  const next = [...fresh.children];
  cells.forEach((cell, i) => {
    if (!cell.isEqualNode(next[i])) cell.replaceWith(next[i]);
  });
}
