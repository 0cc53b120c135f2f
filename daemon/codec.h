/* codec.h: between the wire/storage encoding (protobuf, funnel.v1) and the
 * handlers' plain structs.
 *
 * The store keeps leads as encoded funnel.v1.Lead and events as encoded
 * funnel.v1.Event, so the state directory, the alerts and the query
 * replies all speak the documented protocol.
 */
#ifndef FUNNELD_CODEC_H
#define FUNNELD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "funnel.pb-c.h"
#include "hnd.h"

struct arena;

/* Fill *out from lead (stage names from d). The strings of *out borrow
 * from lead and d; out->attrs and out->skipped point into `scratch`, which
 * must outlive *out. */
typedef struct {
    Funnel__V1__Lead__AttrsEntry entries[HND_ATTRS_MAX];
    Funnel__V1__Lead__AttrsEntry *entry_ptrs[HND_ATTRS_MAX];
    char *skipped[DEFN_STAGES_MAX];
    char *entered[DEFN_STAGES_MAX];
    char *advanced[DEFN_STAGES_MAX];
    Funnel__V1__LedgerEntry ledger[HND_LEDGER_MAX];
    Funnel__V1__LedgerEntry *ledger_ptrs[HND_LEDGER_MAX];
    Funnel__V1__LedgerCarry older_fit, older_engagement;
    Funnel__V1__BehaviourCount counts[HND_COUNTS_MAX];
    Funnel__V1__BehaviourCount *count_ptrs[HND_COUNTS_MAX];
    Funnel__V1__HandoffRecord handoffs[HND_HANDOFFS_MAX];
    Funnel__V1__HandoffRecord *handoff_ptrs[HND_HANDOFFS_MAX];
    Funnel__V1__PersonaChange pchanges[HND_PCHANGES_MAX];
    Funnel__V1__PersonaChange *pchange_ptrs[HND_PCHANGES_MAX];
    Funnel__V1__FrictionRecord friction[HND_FRICTION_MAX];
    Funnel__V1__FrictionRecord *friction_ptrs[HND_FRICTION_MAX];
    Funnel__V1__FrictionTally tally[HND_TALLY_MAX + HND_RTALLY_MAX];
    Funnel__V1__FrictionTally *tally_ptrs[HND_TALLY_MAX + HND_RTALLY_MAX];
    Funnel__V1__LeadQuality quality;
} codec_lead_scratch_t;

void codec_lead_to_pb(const hnd_lead_t *lead, const defn_t *d,
                      Funnel__V1__Lead *out, codec_lead_scratch_t *scratch);

/* The same, with engagement, total and the ledger's current values decayed
 * to as_of_ms (hnd_scores_as_of: never before the lead's last event), the
 * time set in out->scores_as_of_ms. codec_lead_to_pb is this at the lead's
 * last event time, as leads are stored. For query replies and alerts,
 * with the daemon's time. */
void codec_lead_to_pb_at(const hnd_lead_t *lead, const defn_t *d,
                         int64_t as_of_ms, Funnel__V1__Lead *out,
                         codec_lead_scratch_t *scratch);

/* An upper bound of a Lead's encoding: the lead's own fields, the
 * definition's stage names it may carry, and tags and lengths. */
#define CODEC_LEAD_MAX (2 * sizeof(hnd_lead_t) + DEFN_STAGES_MAX * (DEFN_NAME_MAX + 1) + \
                        HND_TALLY_MAX * (DEFN_NAME_MAX + 32) + 16384)

/* Encode lead. *buf is borrowed: a buffer of CODEC_LEAD_MAX bytes, valid
 * until the next call in the same thread (each thread has its own). */
size_t codec_lead_pack(const hnd_lead_t *lead, const defn_t *d, const uint8_t **buf);

/* Like codec_lead_pack, into out (CODEC_LEAD_MAX bytes, the caller's):
 * any thread. Returns the length. */
size_t codec_lead_pack_into(const hnd_lead_t *lead, const defn_t *d, uint8_t *out);

/* Like codec_lead_pack, the scores decayed to as_of_ms (never before the
 * lead's last event: codec_lead_to_pb_at), into a buffer of its own
 * (borrowed: valid until the next call), so that both encodings of a lead
 * can be held at once. */
size_t codec_lead_pack_at(const hnd_lead_t *lead, const defn_t *d, int64_t as_of_ms,
                          const uint8_t **buf);

/* Decode a stored lead. A stage the definition no longer has becomes the
 * first stage (and is logged once by the caller). What the record does not
 * store is derived under d (hnd_lead_loaded). Returns 0, or -1 when the
 * bytes are not a Lead. Any thread (each decodes in an arena of its own,
 * reset at its next call). */
int codec_lead_unpack(const void *buf, size_t len, const defn_t *d,
                      hnd_lead_t *lead);

/* The same for any thread, decoding in the caller's arena a (reset
 * first; what the lead was decoded from stays there until the next reset). */
int codec_lead_unpack_in(struct arena *a, const void *buf, size_t len, const defn_t *d,
                         hnd_lead_t *lead);

/* The same for any thread, decoding on the heap (the query thread's
 * decayed reads). */
int codec_lead_decode(const void *buf, size_t len, const defn_t *d,
                      hnd_lead_t *lead);

/* Fill *out with a view of ev (borrowed pointers); attrs go into kv, which
 * holds at least ev->n_attrs entries. */
void codec_event_view(const Funnel__V1__Event *ev, hnd_kv_t *kv,
                      hnd_event_t *out);

/* Where each event of an encoded EventBatch (len bytes at buf) lies: the n
 * values of field 1 (events), in order, as offsets and lengths into buf
 * (off[n], lens[n]), read from the bytes without decoding them. Returns 0,
 * or -1 when the bytes do not show exactly n events (then every event is
 * encoded again: nothing depends on this but speed). */
int codec_index_batch(const uint8_t *buf, size_t len, size_t n, uint32_t *off,
                      uint32_t *lens);

/* The lead id of an encoded funnel.v1.Event (len bytes at buf; field 2,
 * lead_id), read without decoding the rest: *id points into buf, *n is
 * its length (not NUL-terminated). Returns 0, or -1 when it has none or
 * the bytes are not a well-formed run of fields (the caller then decodes
 * them whole). */
int codec_event_lead_peek(const void *buf, size_t len, const uint8_t **id, size_t *n);

/* The summary of a stored lead that a listing shows (LeadRow), read from
 * its encoded funnel.v1.Lead without decoding the rest of it (no
 * allocation: a listing reads every lead). Strings borrow from the
 * encoded bytes and are not NUL-terminated (their lengths are given);
 * fields the bytes lack keep their proto3 default (0, "", false). */
typedef struct {
    const char *id, *stage, *persona;
    size_t id_len, stage_len, persona_len;
    int64_t stage_entered_at_ms, first_seen_ms, last_event_ms;
    double engagement;          /* as of last_event_ms (hnd_decay for later) */
    double fit;
    bool qualified, stalled;
    int handoff_status;         /* Funnel__V1__HandoffStatus */
    int first_source;           /* Funnel__V1__Source */
    uint64_t events;
} codec_lead_summary_t;

/* Fill *out from the len bytes of an encoded Lead at buf. Returns 0, or -1
 * when the bytes are not a well-formed message. Pure, any thread. */
int codec_lead_summary(const void *buf, size_t len, codec_lead_summary_t *out);

/* Handler alert a as a funnel.v1.Alert, encoded by hand (protobuf's wire
 * format; tests/unit/test_codec checks it against protobuf-c): it is built
 * for every alert of every event, to be stored, so it is written once,
 * straight into the store's reserved space. First prepare: the alert
 * numbered seq in the log and alert_seq in the stored stream (0: not
 * stored), about lead (NULL: none) whose Lead encoding is lead_pb
 * (lead_len bytes, from codec_lead_pack() or codec_lead_pack_at(); copied
 * in as it is when written; NULL: the alert carries no snapshot) and the event ev (NULL: none), dated by its own
 * time or else the latest of at_ms, the lead's last event and ev; w->size
 * is then its encoded size. Then write it into out (w->size bytes).
 * Everything stays borrowed. */
#define CODEC_ALERT_STRS 6   /* kind, topic, lead_id, stage, from_stage, event_id */
typedef struct {
    const char *str[CODEC_ALERT_STRS];
    size_t str_len[CODEC_ALERT_STRS];
    const char *reasons[HND_REASONS_MAX];
    size_t reason_len[HND_REASONS_MAX];
    size_t n_reasons;
    int64_t at_ms;
    uint64_t seq;
    uint64_t alert_seq;
    const uint8_t *lead_pb;
    size_t lead_len;
    size_t size;
} codec_alert_wire_t;

void codec_alert_prepare(codec_alert_wire_t *w, const hnd_alert_t *a, const defn_t *d,
                         const hnd_lead_t *lead, const uint8_t *lead_pb, size_t lead_len,
                         const hnd_event_t *ev, uint64_t seq, uint64_t alert_seq,
                         int64_t at_ms);
void codec_alert_write(const codec_alert_wire_t *w, uint8_t *out);

/* An alert about the funnel as a whole (no lead), not stored: prepared and
 * written into a new buffer (caller frees) of *len bytes. */
uint8_t *codec_alert_pack(const hnd_alert_t *a, const defn_t *d, const hnd_event_t *ev,
                          uint64_t seq, int64_t at_ms, size_t *len);

/* A protobuf varint: its size, and writing it at p (returns the end). */
size_t codec_varint_size(uint64_t v);
uint8_t *codec_varint_put(uint8_t *p, uint64_t v);

/* Encode an alert of funneld about itself (no lead): kind, topic, at_ms,
 * the reasons and an event id (NULL: none). Arguments are borrowed.
 * Returns a new buffer (caller frees) of *len bytes. */
uint8_t *codec_notice_pack(const char *kind, const char *topic, int64_t at_ms,
                           char **reasons, size_t n_reasons,
                           const char *event_id, size_t *len);

#endif
