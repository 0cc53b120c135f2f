/* common.js: what the dashboard's pages share. Every value from funneld
 * goes into the page as text (textContent, setAttribute), never as markup:
 * a lead id or attribute that looks like HTML shows as what it is. */
'use strict';

const F = {};

/* An element: F.el('td', {class: 'n', 'data-stage': name}, child, ...).
 * Children are nodes or strings (text); null and undefined are skipped. */
F.el = function (tag, attrs, ...children) {
  const e = document.createElement(tag);
  F.fill(e, attrs, children);
  return e;
};

/* An SVG element, likewise. */
F.svg = function (tag, attrs, ...children) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  F.fill(e, attrs, children);
  return e;
};

F.fill = function (e, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false)
      e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined)
      continue;
    e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
};

/* Replace the children of the element with id by nodes. */
F.replace = function (id, ...nodes) {
  const e = document.getElementById(id);
  if (e)
    e.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
  return e;
};

/* The JSON of an API path; rejects with the API's {"error"} message. */
F.getJSON = async function (path) {
  const r = await fetch(path, {cache: 'no-store', headers: {Accept: 'application/json'}});
  let doc = null;
  try {
    doc = await r.json();
  } catch (e) {
    throw new Error(path + ': HTTP ' + r.status);
  }
  if (!r.ok)
    throw new Error(doc && doc.error ? doc.error : path + ': HTTP ' + r.status);
  return doc;
};

F.num = function (n) {
  return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
};

F.pct = function (x) {
  return x === null || x === undefined ? '–' : (100 * x).toFixed(1) + '%';
};

F.score = function (x) {
  return x === null || x === undefined ? '–' : Number(x).toFixed(1);
};

/* A duration in ms for people: "3d 4h", "2h 5m", "40s", "0s". */
F.dur = function (ms) {
  if (ms === null || ms === undefined)
    return '–';
  let s = Math.round(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return d + 'd' + (h ? ' ' + h + 'h' : '');
  if (h) return h + 'h' + (m ? ' ' + m + 'm' : '');
  if (m) return m + 'm' + (s ? ' ' + s + 's' : '');
  return s + 's';
};

/* An RFC 3339 time for people ("2026-11-26 10:00:00 UTC"), "–" for null. */
F.time = function (t) {
  if (!t)
    return '–';
  return String(t).replace('T', ' ').replace(/\.\d{3}Z$|Z$/, '') + ' UTC';
};

/* A link to a lead's page. */
F.leadLink = function (id) {
  return F.el('a', {href: '/lead/' + encodeURIComponent(id), class: 'lead'}, id);
};

/* A table: head is a list of column titles ({text, cls}), rows lists of
 * cells (nodes or text) or {cells, attrs}. */
F.table = function (attrs, head, rows) {
  const thead = F.el('thead', null,
    F.el('tr', null, ...head.map((h) => typeof h === 'string' ? F.el('th', null, h)
                                                              : F.el('th', {class: h.cls}, h.text))));
  const tbody = F.el('tbody');
  for (const r of rows) {
    const cells = Array.isArray(r) ? r : r.cells;
    const tr = F.el('tr', Array.isArray(r) ? null : r.attrs);
    cells.forEach((c, i) => {
      const cls = typeof head[i] === 'object' ? head[i].cls : null;
      tr.appendChild(F.el('td', {class: cls}, c));
    });
    tbody.appendChild(tr);
  }
  return F.el('table', attrs, thead, tbody);
};

/* Show an error in the page's status line. */
F.status = function (text, live) {
  const s = document.getElementById('status');
  if (!s)
    return;
  s.textContent = text;
  s.setAttribute('data-live', live ? '1' : '0');
};
