/* lead.js: one lead (/lead/ID), from /api/lead/ID: stage, scores with
 * their ledger, persona, handoff and friction history, timeline. */
'use strict';

function leadId() {
  const p = location.pathname;
  return decodeURIComponent(p.slice(p.indexOf('/lead/') + 6));
}

function attrsText(attrs) {
  return Object.entries(attrs || {}).map(([k, v]) => k + '=' + v).join(', ');
}

function summary(l) {
  const item = (term, value, attrs) => [F.el('dt', null, term), F.el('dd', attrs, value)];
  return [
    ...item('Stage', l.stage, {id: 'lead-stage', 'data-stage': l.stage}),
    ...item('In it since', F.time(l.stage_entered_at)),
    ...item('Persona', l.persona || '–', {id: 'lead-persona'}),
    ...item('Qualified', l.qualified ? 'yes' : 'no'),
    ...item('Handoff', l.handoff ? l.handoff.status + (l.handoff.at ? ' since ' + F.time(l.handoff.at) : '') : '–'),
    ...item('First seen', F.time(l.first_seen) + (l.first_source ? ' (' + l.first_source + ')' : '')),
    ...item('Last event', F.time(l.last_event_at)),
    ...item('Events', F.num(l.events)),
    ...item('Skipped stages', l.skipped && l.skipped.length ? l.skipped.join(', ') : 'none'),
  ];
}

function scores(l) {
  const s = l.score || {};
  const parts = [F.el('div', {class: 'score'},
    F.el('span', {class: 'pill'}, 'fit ' + F.score(s.fit)),
    F.el('span', {class: 'pill'}, 'engagement ' + F.score(s.engagement)),
    F.el('span', {class: 'pill total'}, 'total ' + F.score(s.total)))];
  if (s.ledger && s.ledger.length)
    parts.push(F.table({class: 'compact'}, ['Kind', 'Rule', 'At', {text: 'Points', cls: 'n'}, {text: 'Now', cls: 'n'}],
      s.ledger.map((e) => [e.kind, e.rule, F.time(e.at), F.score(e.points), F.score(e.current)])));
  if (s.older)
    parts.push(F.el('p', {class: 'muted'}, 'Older entries: ' +
      Object.entries(s.older).map(([k, o]) => k + ' ' + F.num(o.entries) + ' entries, now ' + F.score(o.current)).join('; ')));
  if (l.persona_history && l.persona_history.length)
    parts.push(F.el('h3', null, 'Persona history'),
      F.table({class: 'compact'}, ['At', 'From', 'To'],
              l.persona_history.map((p) => [F.time(p.at), p.from || '–', p.to || '–'])));
  return parts;
}

function handoffs(l) {
  const h = l.handoff || {};
  const hist = h.history || [];
  if (!hist.length)
    return [F.el('p', {class: 'muted'}, 'Never handed off.')];
  return [F.table({class: 'compact'}, ['Sent', 'Status', 'Answered', 'Rule', 'Reason', {text: 'Fit', cls: 'n'}, {text: 'Engagement', cls: 'n'}],
    hist.map((x) => [F.time(x.at), x.status, F.time(x.answered_at), x.rule || '–', x.reason || '–',
                     F.score(x.fit), F.score(x.engagement)]))];
}

function friction(l) {
  const f = l.friction || {};
  const now = [];
  if (f.stalled) now.push('stalled now');
  if (f.sla_breached) now.push('handoff past the SLA now');
  const hist = f.history || [];
  return [
    F.el('p', {class: now.length ? 'error' : 'muted'}, now.length ? now.join(', ') : 'Not stalled now.'),
    hist.length ? F.table({class: 'compact'}, ['At', 'Kind', 'Stage', 'Duration', 'Detail'],
      hist.map((x) => [F.time(x.at), x.kind, x.stage || '–', F.dur(x.duration_ms), x.detail || '']))
      : F.el('p', {class: 'muted'}, 'No friction history.'),
  ];
}

async function load() {
  const id = leadId();
  F.replace('lead-id', 'Lead ', F.el('code', null, id));
  document.title = 'funneld lead ' + id;
  let l;
  try {
    l = await F.getJSON('/api/lead/' + encodeURIComponent(id));
  } catch (e) {
    F.replace('lead-error', e.message);
    F.status('not found', false);
    return;
  }
  F.replace('lead-summary', ...summary(l));
  F.replace('lead-scores', ...scores(l));
  F.replace('lead-handoffs', ...handoffs(l));
  F.replace('lead-friction', ...friction(l));
  const attrs = Object.entries(l.attrs || {});
  F.replace('lead-attrs', attrs.length
    ? F.table({class: 'compact', id: 'lead-attrs-table'}, ['Attribute', 'Value'], attrs.map(([k, v]) => [k, String(v)]))
    : F.el('p', {class: 'muted'}, 'No attributes.'));
  const tl = (l.timeline || []).slice().reverse();
  F.replace('lead-timeline', F.table({class: 'compact'}, ['#', 'At', 'Type', 'Source', 'Attributes'],
    tl.map((e) => [String(e.seq), F.time(e.at), e.type, e.source || '–', attrsText(e.attrs)])));
  F.status('loaded', true);
}

load();
