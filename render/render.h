/* render: funnelctl's output of funneld's replies and alerts, as JSON
 * (jansson) for --json and as text for people.
 *
 * JSON conventions: times are RFC 3339 UTC strings with milliseconds
 * ("2026-11-26T10:00:00.000Z"), null when the time is 0 (unknown); sources
 * are "marketing" / "sales" (null when unspecified); scores are numbers.
 *
 * Pure: no sockets, no clock. The render_*_json functions return a new
 * reference (caller owns it, json_decref() it); they never return NULL
 * (out of memory aborts). The render_*_text functions write to out.
 */
#ifndef FUNNELCTL_RENDER_H
#define FUNNELCTL_RENDER_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "funnel.pb-c.h"

/* How a document is printed: funnelctl --json and the HTTP API
 * (RENDER_JSON_FLAGS, then a newline), funnelctl watch --json and the
 * dashboard's event stream (RENDER_NDJSON_FLAGS, one line). */
#define RENDER_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))
#define RENDER_NDJSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* A time as JSON: RFC 3339 string, or null when ms is 0. */
json_t *render_time_json(int64_t ms);

/* "marketing", "sales", or NULL when unspecified. */
const char *render_source_name(Funnel__V1__Source s);

/* "none", "pending", "accepted" or "rejected". */
const char *render_handoff_name(Funnel__V1__HandoffStatus s);

/* The lead record: {"lead","stage","stage_entered_at","score":{"fit",
 * "engagement","total"},"persona","qualified","handoff":{"status","at"},
 * "attrs":{},"events","first_source","first_seen","last_event_at",
 * "skipped":[]}, plus "handoff":{"sent","accepted","rejected","history":[{"status",
 * "at","answered_at","rule","reason","fit","engagement"}]}, "score":{"ledger":[{"kind",
 * "rule","event_id","seq","at","points","current"}],"older":{"fit","engagement":
 * {"entries","points","current"}}}, "counts":{type:n}, "persona_history":[{"from","to",
 * "at","seq"}], "entered":[]. lead may be NULL (an empty object comes back). */
json_t *render_lead_record_json(const Funnel__V1__Lead *lead);

/* The lead's score ledger, for people: each entry with its points as
 * added and now, the older-entry carry-overs, and the sums. */
void render_ledger_text(FILE *out, const Funnel__V1__Lead *lead);

/* A found lead with its timeline: the record plus
 * "timeline":[{"seq","id","type","source","at","attrs","value"}]. */
json_t *render_lead_json(const Funnel__V1__LeadReply *reply);
void render_lead_text(FILE *out, const Funnel__V1__LeadReply *reply);

/* {"leads":n,"stages":[{"stage","now","entered","advanced","conversion",
 * "terminal"}],"handoffs":{"sent","accepted","rejected","acceptance_rate"}};
 * conversion = advanced / entered, null when entered is 0 or the stage is
 * terminal; acceptance_rate = accepted / (accepted + rejected), null when
 * none was answered. With a breakdown, also "by" and "groups":[{"group",
 * "leads","stages","handoffs"}]; with a persona filter, "persona". */
json_t *render_funnel_json(const Funnel__V1__FunnelReply *reply);
void render_funnel_text(FILE *out, const Funnel__V1__FunnelReply *reply);

/* The friction report: {"points":[{"rank","kind","stage","value","summary"}],
 * "stages":[{"stage","entered","advanced","in_progress","dropped","conversion",
 * "conversion_target","window":{"entered","advanced","conversion","below_target"},
 * "dwell":{"completed","median_ms","p90_ms","max_dwell_ms"},"stalls","stalled_now",
 * "regressions","rejections"}],"rejection_reasons":[{"reason","count"}],
 * "handoffs":{"past_sla_now","sla_breaches"},"window":{"days","min_sample",
 * "last_day"}}; with a breakdown also "by" and "groups":[{"group","points",
 * "stages","rejection_reasons","handoffs"}]. Undefined values are null. */
json_t *render_friction_json(const Funnel__V1__FrictionReply *reply);
void render_friction_text(FILE *out, const Funnel__V1__FrictionReply *reply);
/* The leads of a friction reply: {"leads":[{"lead","set","stage","since"}],
 * "total"}, stalled longest first. */
json_t *render_friction_leads_json(const Funnel__V1__FrictionReply *reply);
void render_friction_leads_text(FILE *out, const Funnel__V1__FrictionReply *reply);

/* Lead quality (render_lab.c): one group {"group" (groups only),
 * "handed_off","won","lost","open","outcome_before_handoff",
 * "lost_after_timeout","precision","recall","base_rate","lift",
 * "median_handoff_to_won_ms","rejection_rate","all_leads":{"won","lost",
 * "open"}}; the reply, the whole funnel's group plus "lost_after_ms",
 * "as_of_ms", "definition" and with a breakdown "by" and "groups". A rate
 * with nothing to divide by is null. Text: a table, a row per group. */
json_t *render_quality_group_json(const Funnel__V1__QualityGroup *g);
json_t *render_quality_json(const Funnel__V1__QualityReply *q);
void render_quality_text(FILE *out, const Funnel__V1__QualityReply *q);

/* A backtest (render_lab.c): {"live","draft": {"definition","handoffs",
 * "leads","stages":[{"stage","now","entered","conversion"}],"friction":
 * {"stall","regression","handoff_rejected","handoff_sla","dropped",
 * "conversion_below_target"},"quality":{render_quality_json}},"both",
 * "only_live","only_draft": {"count","sample":[ids]},"weeks":[{"week",
 * "live","draft"}],"replayed","upto_seq","events","since_ms","until_ms",
 * "as_of_ms","elapsed_ms","cpu_ms"}, and with a sweep "sweep":{"key","rows":
 * [{"value","handoffs","handoffs_per_week","handed_off","precision",
 * "recall"}]}. Text: the two sides in columns, the sets, the weeks, the
 * sweep. */
json_t *render_backtest_json(const Funnel__V1__BacktestReply *r);
void render_backtest_text(FILE *out, const Funnel__V1__BacktestReply *r);

/* The shadow drafts (render_shadow.c): {"drafts":[{"name","path",
 * "definition","hash","state" ("rebuilding" or "following"),"applied_seq",
 * "log_seq","handoffs","live_handoffs","both","only_live","only_draft",
 * "weeks":[{"week","both","only_live","only_draft"}]}]}. Text: one block
 * per draft. */
json_t *render_shadow_json(const Funnel__V1__ShadowReply *r);
void render_shadow_text(FILE *out, const Funnel__V1__ShadowReply *r);

/* A promotion (render_shadow.c): {"definition","path","old_state",
 * "applied_seq","ingest_paused_ms","warning"}; text: one paragraph, name
 * being the draft promoted, and the warning if there is one. */
json_t *render_promote_json(const Funnel__V1__PromoteReply *r);
void render_promote_text(FILE *out, const char *name, const Funnel__V1__PromoteReply *r);

/* friction --suggest (render_lab.c), from the whole funnel's friction and
 * its --by persona breakdown (may be NULL): per stage with completed
 * stays, the p90 of its stays rounded up to whole minutes, hours or days
 * as a max_dwell, and the personas whose p90 (over at least 10 stays)
 * differs from it by more than half: {"stages":[{"stage","completed",
 * "p90_ms","max_dwell_ms","suggested_ms","suggested","personas":
 * [{"persona","completed","p90_ms","suggested_ms","suggested"}]}]}. Text:
 * a YAML fragment for the definition, the personas as comments (a
 * definition has one max_dwell per stage). */
json_t *render_dwell_suggest_json(const Funnel__V1__FrictionReply *all,
                                  const Funnel__V1__FrictionReply *by_persona);
void render_dwell_suggest_text(FILE *out, const Funnel__V1__FrictionReply *all,
                               const Funnel__V1__FrictionReply *by_persona);

/* Every Stats field, plus "uptime" (human). */
json_t *render_stats_json(const Funnel__V1__Stats *stats);
void render_stats_text(FILE *out, const Funnel__V1__Stats *stats);

/* One checkpoint: {"name","seq","bytes","created_at"}, or one line of text. */
json_t *render_checkpoint_json(const Funnel__V1__CheckpointInfo *c);
void render_checkpoint_text(FILE *out, const Funnel__V1__CheckpointInfo *c);

/* {"kind","topic","lead","at","stage","from_stage","reasons":[],"event_id",
 * "seq","snapshot":{lead record}|null}. topic is the topic frame it came
 * on (borrowed; NULL: the alert's own topic field). */
json_t *render_alert_json(const Funnel__V1__Alert *alert, const char *topic);
/* One line, no newline at the start, '\n' at the end. */
void render_alert_text(FILE *out, const Funnel__V1__Alert *alert, const char *topic);

#endif
