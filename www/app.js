/* app.js: the dashboard (/), built only on funneld's API: the funnel
 * (/api/funnel), friction (/api/friction), counters (/api/stats), the
 * definition (/api/definition) and the live alerts (/events). */
'use strict';

const REFRESH_MS = 5000;     /* the reports, besides after each alert */
const ALERTS_MAX = 200;      /* rows kept in the live list */
const LEADS_MS = 30000;      /* the hottest leads: a listing sorts every lead */

const state = {by: '', persona: '', timer: null, soon: null, personas: null};

/* -- funnel -------------------------------------------------------------- */

function funnelRows(stages, withData) {
  return stages.map((s) => ({
    attrs: withData ? {'data-stage': s.stage, 'data-now': s.now, 'data-entered': s.entered,
                       class: s.terminal ? 'terminal' : null} : {class: s.terminal ? 'terminal' : null},
    cells: [s.stage, F.num(s.now), F.num(s.entered), F.num(s.advanced), F.pct(s.conversion)],
  }));
}

function handoffText(h) {
  return 'Handoffs to sales: ' + F.num(h.sent) + ' sent, ' + F.num(h.accepted) + ' accepted, ' +
         F.num(h.rejected) + ' rejected; acceptance ' + F.pct(h.acceptance_rate) + '.';
}

/* The funnel as SVG: one bar per stage, its length the leads that ever
 * entered it, the darker part those in it now. */
function funnelChart(stages) {
  const W = 520, row = 34, left = 90, right = 120;
  const max = Math.max(1, ...stages.map((s) => s.entered));
  const svg = F.svg('svg', {viewBox: '0 0 ' + W + ' ' + (row * stages.length + 6),
                            role: 'img', 'aria-label': 'funnel chart'});
  stages.forEach((s, i) => {
    const y = 3 + i * row, span = W - left - right;
    const we = Math.max(1, span * s.entered / max), wn = span * s.now / max;
    const x = left + (span - we) / 2;
    svg.appendChild(F.svg('text', {x: left - 8, y: y + row / 2 + 4, 'text-anchor': 'end',
                                   class: 'label'}, s.stage));
    svg.appendChild(F.svg('rect', {x: x, y: y + 2, width: we, height: row - 8, rx: 3,
                                   class: s.terminal ? 'bar exit' : 'bar entered'},
                          F.svg('title', null, s.stage + ': ' + s.entered + ' entered')));
    svg.appendChild(F.svg('rect', {x: left + (span - wn) / 2, y: y + 2, width: wn,
                                   height: row - 8, rx: 3, class: 'bar now'},
                          F.svg('title', null, s.stage + ': ' + s.now + ' now')));
    svg.appendChild(F.svg('text', {x: W - 2, y: y + row / 2 + 4, class: 'value', 'text-anchor': 'end'},
                          F.num(s.now) + ' / ' + F.num(s.entered)));
  });
  return svg;
}

async function loadFunnel() {
  const q = new URLSearchParams();
  if (state.by) q.set('by', state.by);
  if (state.persona) q.set('persona', state.persona);
  const path = '/api/funnel' + (q.toString() ? '?' + q : '');
  let f;
  try {
    f = await F.getJSON(path);
  } catch (e) {
    F.replace('funnel-error', e.message);
    return;
  }
  F.replace('funnel-error');
  F.replace('funnel-body', ...funnelRows(f.stages, true).map((r) => {
    const tr = F.el('tr', r.attrs);
    r.cells.forEach((c, i) => tr.appendChild(F.el('td', {class: i ? 'n' : null}, c)));
    return tr;
  }));
  F.replace('funnel-chart', funnelChart(f.stages));
  F.replace('handoff-counts', handoffText(f.handoffs) + ' ' + F.num(f.leads) + ' leads' +
            (f.persona ? ' of persona ' + f.persona : '') + '.');
  const groups = (f.groups || []).map((g) => F.el('div', {class: 'group', 'data-group': g.group},
    F.el('h3', null, (f.by || '') + ' ' + g.group, F.el('span', {class: 'muted'}, ' · ' + F.num(g.leads) + ' leads')),
    F.table({class: 'compact'}, ['Stage', {text: 'Now', cls: 'n'}, {text: 'Entered', cls: 'n'},
                                 {text: 'Advanced', cls: 'n'}, {text: 'Conversion', cls: 'n'}],
            funnelRows(g.stages, false)),
    F.el('p', {class: 'muted'}, handoffText(g.handoffs))));
  F.replace('funnel-groups', ...groups);
}

/* -- friction ------------------------------------------------------------ */

async function loadFriction() {
  let r, leads;
  try {
    [r, leads] = await Promise.all([F.getJSON('/api/friction'),
                                    F.getJSON('/api/friction?leads=1&limit=50')]);
  } catch (e) {
    F.replace('friction-points', F.el('li', {class: 'error'}, e.message));
    return;
  }
  F.replace('friction-points', ...(r.points.length ? r.points.map((p) =>
    F.el('li', {'data-kind': p.kind, 'data-stage': p.stage},
         F.el('span', {class: 'kind kind-' + p.kind}, p.kind.replace('_', ' ')),
         F.el('span', null, ' ' + p.summary)))
    : [F.el('li', {class: 'muted'}, 'No friction point yet.')]));
  F.replace('friction-stages', F.table({class: 'compact small'},
    ['Stage', {text: 'Entered', cls: 'n'}, {text: 'In progress', cls: 'n'},
     {text: 'Dropped', cls: 'n'}, {text: 'Conversion', cls: 'n'}, {text: 'Target', cls: 'n'},
     {text: 'Median', cls: 'n'}, {text: 'p90', cls: 'n'}, {text: 'Stalls', cls: 'n'},
     {text: 'Regressions', cls: 'n'}, {text: 'Rejections', cls: 'n'}],
    r.stages.map((s) => ({attrs: {'data-friction-stage': s.stage}, cells: [
      s.stage, F.num(s.entered), F.num(s.in_progress), F.num(s.dropped),
      s.window && s.window.conversion !== null ? F.pct(s.window.conversion) + ' (w)' : F.pct(s.conversion),
      F.pct(s.conversion_target), F.dur(s.dwell.median_ms), F.dur(s.dwell.p90_ms),
      F.num(s.stalls) + (s.stalled_now ? ' (' + F.num(s.stalled_now) + ' now)' : ''),
      F.num(s.regressions), F.num(s.rejections)]}))));
  F.replace('rejection-reasons', r.rejection_reasons.length
    ? F.table({class: 'compact'}, ['Reason', {text: 'Rejections', cls: 'n'}],
              r.rejection_reasons.map((x) => [x.reason, F.num(x.count)]))
    : F.el('p', {class: 'muted'}, 'No handoff rejected.'));
  F.replace('stalled-leads', leads.leads.length
    ? F.el('div', null,
        F.table({class: 'compact'}, ['Lead', 'Stage', 'Why', 'Since'],
                leads.leads.map((l) => ({attrs: {'data-stalled-lead': l.lead},
                                         cells: [F.leadLink(l.lead), l.stage || '–', l.set, F.time(l.since)]}))),
        F.el('p', {class: 'muted'}, F.num(leads.total) + ' in all; past the SLA now: ' +
             F.num(r.handoffs.past_sla_now) + ', SLA breaches ever: ' + F.num(r.handoffs.sla_breaches) + '.'))
    : F.el('p', {class: 'muted'}, 'No lead stalled now.'));
}

/* -- leads --------------------------------------------------------------- */

async function loadLeads() {
  let r;
  try {
    r = await F.getJSON('/api/leads?sort=score&desc=1&limit=20');
  } catch (e) {
    F.replace('leads', F.el('p', {class: 'error'}, e.message));
    return;
  }
  F.replace('leads', r.leads.length
    ? F.table({class: 'compact'}, ['Lead', 'Stage', 'In stage', 'Persona', {text: 'Fit', cls: 'n'},
                                   {text: 'Engagement', cls: 'n'}, {text: 'Total', cls: 'n'},
                                   'Handoff', 'Last event'],
        r.leads.map((l) => ({attrs: {'data-row-lead': l.lead}, cells: [
          F.leadLink(l.lead), l.stage, F.dur(l.in_stage_ms), l.persona || '–', F.score(l.fit),
          F.score(l.engagement), F.score(l.total), l.handoff, F.time(l.last_event_at)]})))
    : F.el('p', {class: 'muted'}, 'No lead yet.'));
}

/* -- counters and the definition ---------------------------------------- */

async function loadStats() {
  try {
    const s = await F.getJSON('/api/stats');
    F.replace('stats', 'funneld: ' + F.num(s.applied) + ' events applied, ' + F.num(s.leads) +
              ' leads, ' + F.num(s.alerts) + ' alerts; up ' + s.uptime + '; definition ' +
              s.definition + '.');
    /* A reload (SIGHUP) changed the definition: show the new one. */
    if (state.personas && !s.definition.includes(state.personas))
      loadDefinition();
  } catch (e) {
    F.replace('stats', F.el('span', {class: 'error'}, e.message));
  }
}

function condText(when) {
  return when && when.length ? ' when ' + when.join(' and ') : '';
}

async function loadDefinition() {
  let d;
  try {
    d = await F.getJSON('/api/definition');
  } catch (e) {
    F.replace('definition', F.el('p', {class: 'error'}, e.message));
    return;
  }
  F.replace('defn-name', d.name + ' · ' + d.hash);
  const personas = document.getElementById('persona');
  if (state.personas !== d.hash) {
    state.personas = d.hash;
    personas.replaceChildren(F.el('option', {value: ''}, 'every persona'),
      ...d.personas.map((p) => F.el('option', {value: p.persona}, p.persona)),
      F.el('option', {value: '-'}, '(none)'));
    personas.value = state.persona;
  }
  const h = d.handoff;
  F.replace('definition',
    F.el('p', null, F.el('strong', null, d.name), ' · hash ', F.el('code', null, d.hash),
         ' · from ', F.el('code', null, d.path)),
    F.el('div', {class: 'cols'},
      F.el('div', null, F.el('h3', null, 'Stages'),
        F.table({class: 'compact'}, ['#', 'Stage', 'Max dwell', 'Conversion target'],
                d.stages.map((s) => [s.order === null ? 'exit' : String(s.order),
                                     s.stage + (s.terminal ? ' (terminal)' : ''),
                                     F.dur(s.max_dwell_ms), F.pct(s.conversion_target)])),
        F.el('h3', null, 'Transitions'),
        F.el('ul', null, ...d.transitions.map((t) => F.el('li', null,
          F.el('code', null, t.type), (t.source ? ' from ' + t.source : '') + ' → ',
          F.el('strong', null, t.to), condText(t.when)))),
        d.regressions.length ? F.el('h3', null, 'Regressions') : null,
        d.regressions.length ? F.el('ul', null, ...d.regressions.map((r) => F.el('li', null,
          F.el('code', null, r.type), ' moves ' + r.from.join(', ') + ' → ', F.el('strong', null, r.to))))
          : null),
      F.el('div', null, F.el('h3', null, 'Scoring'),
        F.table({class: 'compact'}, ['Engagement event', {text: 'Points', cls: 'n'}],
                d.scoring.points.map((p) => [p.type, F.score(p.points)])),
        F.el('p', {class: 'muted'}, 'Engagement half-life: ' +
             (d.scoring.half_life_ms ? F.dur(d.scoring.half_life_ms) : 'none') + '.'),
        F.table({class: 'compact'}, ['Fit rule', {text: 'Points', cls: 'n'}],
                d.scoring.fit.map((p) => [p.rule, F.score(p.points)])),
        F.el('h3', null, 'Qualification'),
        F.el('p', null, 'A lead qualifies when ' + d.qualification.join(', or ') + '.'),
        F.el('h3', null, 'Handoff'),
        F.el('p', null, 'Sales answers within ' + F.dur(h.sla_ms) + ' with ', F.el('code', null, h.accept_type),
             ' or ', F.el('code', null, h.reject_type), ' (reason in ', F.el('code', null, h.reason_attr),
             '); a rejected lead ' + (h.recycle_stage ? 'returns to ' + h.recycle_stage : 'stays') +
             (h.recycle_reset ? ', engagement reset.' : '.')),
        F.el('h3', null, 'Personas'),
        F.el('ol', null, ...d.personas.map((p) => F.el('li', null, F.el('strong', null, p.persona),
          p.when.length ? condText(p.when) : ' (every lead)'))),
        F.el('p', {class: 'muted'}, 'Friction: conversion over ' + F.dur(d.friction.conversion_window_ms) +
             ' windows of at least ' + d.friction.min_sample + ' leads.'))));
}

/* -- live alerts --------------------------------------------------------- */

function scoreBreakdown(snap) {
  if (!snap || !snap.score)
    return null;
  const s = snap.score;
  const ledger = (s.ledger || []).slice().sort((a, b) => Math.abs(b.current) - Math.abs(a.current)).slice(0, 6);
  return F.el('div', {class: 'score'},
    F.el('span', {class: 'pill'}, 'fit ' + F.score(s.fit)),
    F.el('span', {class: 'pill'}, 'engagement ' + F.score(s.engagement)),
    F.el('span', {class: 'pill total'}, 'total ' + F.score(s.total)),
    ledger.length ? F.el('ul', {class: 'ledger'}, ...ledger.map((e) =>
      F.el('li', null, F.el('code', null, e.rule), ' ' + e.kind + ' ' + F.score(e.current)))) : null);
}

function addAlert(a) {
  const list = document.getElementById('alerts');
  const li = F.el('li', {'data-topic': a.topic, 'data-lead': a.lead,
                         class: a.topic === 'handoff' ? 'handoff' : 'friction'},
    F.el('span', {class: 'kind kind-' + a.topic.replace(/\./g, '-')}, a.topic),
    ' ', F.leadLink(a.lead),
    a.stage ? F.el('span', null, ' in ' + a.stage) : null,
    F.el('span', {class: 'muted'}, ' · ' + F.time(a.at)),
    a.reasons && a.reasons.length ? F.el('div', {class: 'reasons'}, a.reasons.join('; ')) : null,
    a.topic === 'handoff' ? scoreBreakdown(a.snapshot) : null);
  list.insertBefore(li, list.firstChild);
  while (list.children.length > ALERTS_MAX)
    list.removeChild(list.lastChild);
}

function connect() {
  const es = new EventSource('/events?topics=handoff,friction');
  es.onopen = () => F.status('live', true);
  es.onerror = () => {
    F.status('reconnecting…', false);
    /* The browser retries by itself after a network error ("retry:"),
     * but gives up after an HTTP error: then start again. */
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      setTimeout(connect, 2000);
    }
  };
  es.onmessage = (m) => {
    let a;
    try {
      a = JSON.parse(m.data);
    } catch (e) {
      return;
    }
    addAlert(a);
    refreshSoon();
  };
}

/* -- refresh ------------------------------------------------------------- */

function refresh() {
  clearTimeout(state.timer);
  Promise.allSettled([loadFunnel(), loadFriction(), loadStats()]).then(() => {
    state.timer = setTimeout(refresh, REFRESH_MS);
  });
}

/* After an alert: the reports changed; refresh once for a burst. */
function refreshSoon() {
  if (state.soon)
    return;
  state.soon = setTimeout(() => {
    state.soon = null;
    refresh();
  }, 300);
}

function controls() {
  const by = document.getElementById('by'), persona = document.getElementById('persona');
  const sync = () => {
    /* A persona filter combines with the persona breakdown only. */
    persona.disabled = state.by !== '' && state.by !== 'persona';
    if (persona.disabled) {
      persona.value = '';
      state.persona = '';
    }
  };
  by.addEventListener('change', () => { state.by = by.value; sync(); refresh(); });
  persona.addEventListener('change', () => { state.persona = persona.value; refresh(); });
  document.getElementById('funnel-controls').addEventListener('submit', (e) => e.preventDefault());
  sync();
}

controls();
loadDefinition();
refresh();
loadLeads();
setInterval(loadLeads, LEADS_MS);
connect();
