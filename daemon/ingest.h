/* ingest.h: the dispatcher. socket -> decode -> validate -> handlers ->
 * store -> ack/alerts.
 *
 * Batches from the ingest ROUTER and from stream SUBs are decoded and
 * validated as they arrive and queued into the pending group. The group is
 * committed when it holds group_max_events events, or once the loop has
 * drained its sockets (after group_delay_ms): the handlers run over every
 * event inside one store group, the log is fsync'd, and only then are the
 * Acks sent and the alerts published. The alerts of an event (or a fired
 * deadline) are numbered and stored in its group, whether or not anyone
 * subscribes, so a crash between commit and publish loses none: they stay
 * retrievable by number (AlertsSince), and events replayed from the log at
 * start-up raise theirs again with the same numbers. Stored alerts older
 * than alerts_retention_ms are removed a bounded step per group.
 *
 * When the store cannot commit (disk full, I/O error), intake pauses, the
 * pending group is kept, and the commit is retried every second; nothing is
 * acknowledged meanwhile and queries keep being served.
 *
 * Threading: the loop thread only.
 */
#ifndef FUNNELD_INGEST_H
#define FUNNELD_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "hnd.h"
#include "metrics.h"
#include "partition.h"
#include "store.h"
#include "validate.h"

struct event_base;

typedef struct ingest ingest_t;

typedef struct {
    size_t group_max_events;   /* commit once this many events are pending */
    int group_delay_ms;        /* then at most this long after the first */
    size_t max_batch_events;   /* larger batches are refused whole */
    bool event_clock;          /* daemon time = event-time watermark */
    unsigned progress_interval_ms; /* replay progress log lines (see progress.h) */
    int64_t alerts_retention_ms; /* stored alerts older than this (daemon
                                    time) are removed; 0: kept for ever */
    validate_limits_t limits;
    metrics_t *metrics;        /* what to record into, or NULL */
    bool log_read_only;        /* the log is only read (a rebuild): no
                                  deadline falling due is logged */
    bool cluster_judged;       /* cluster mode: the funnel-wide conversion
                                  alerts are judged for the whole cluster
                                  (nats_judge.h), never raised here on this
                                  instance's leads (the check still keeps
                                  its window's counters) */
} ingest_opts_t;

/* A dispatcher over store, applying pipeline under *defn_p (read at each
 * group, so a reload takes effect at the next group) and publishing alerts
 * on alerts (may be NULL). Borrowed: everything passed in must outlive the
 * dispatcher. Caller owns the result: ingest_destroy(). */
ingest_t *ingest_new(struct event_base *base, store_t *store,
                     const defn_t *const *defn_p, const hnd_t *const *pipeline,
                     bus_sock_t *alerts, const ingest_opts_t *opts);

/* Commit what is pending (best effort) and free. Accepts NULL. */
void ingest_destroy(ingest_t **self_p);

/* Sockets to pause while the store cannot commit, and on shutdown. */
void ingest_add_intake(ingest_t *self, bus_sock_t *sock);

/* Another intake (NATS, nats.h): fn(arg, true) when intake pauses (the
 * store cannot commit, the partition lags, shutdown), fn(arg, false) when
 * it resumes. At most INGEST_INTAKE_MAX of them. Loop thread. */
typedef void ingest_pause_fn(void *arg, bool pause);
void ingest_add_intake_fn(ingest_t *self, ingest_pause_fn *fn, void *arg);

/* Also hand every alert published to fn (the NATS subjects, nats.h), on
 * the loop thread, after its commit as on the alerts socket; buf (len
 * bytes, the Alert) is borrowed for the call. Alerts are then built for
 * every topic, wanted on the alerts socket or not. Loop thread. */
typedef void ingest_alert_fn(void *arg, const char *topic, const uint8_t *buf, size_t len);
void ingest_set_alert_sink(ingest_t *self, ingest_alert_fn *fn, void *arg);

/* Publish an alert raised outside the state's groups (the cluster's
 * conversion check, nats_judge.h): on the alerts socket when subscribed
 * and to the alert sink, as the state's alerts after their commit; buf
 * (len bytes, the Alert) is borrowed for the call. Not stored. Loop
 * thread. */
void ingest_publish_alert(ingest_t *self, const char *topic, const uint8_t *buf, size_t len);

/* Told once when a batch handed over by ingest_submit is settled:
 * committed true when its group is durable in the log (fsync'd) or the
 * batch was refused whole (it will never be applied: undecodable, too
 * large), so that its source may acknowledge it; false when it is
 * dropped uncommitted (ingest_destroy), so that its source delivers it
 * again later. */
typedef void ingest_done_fn(void *arg, bool committed);

/* Where a batch handed over by ingest_submit comes from. */
typedef struct {
    const char *origin;        /* for logs and notices, e.g. "nats funnel.in.3" */
    int partition;             /* >= 0: every event's lead must be of this */
    unsigned n_partitions;     /* cluster partition among n (partition_of) */
    ingest_done_fn *done;      /* may be NULL */
    void *done_arg;
} ingest_source_t;

/* Decode, validate and queue one EventBatch (len bytes at data, copied)
 * from an at-least-once source such as a JetStream consumer: as a
 * stream's batch, with no Ack (refusals are logged and published on
 * ingest.rejected), plus the partition check of src, which rejects the
 * events of leads of another partition. src is copied; src->done is
 * called as described above. Returns true when the batch filled the group
 * and it was committed (the caller then yields the loop). Loop thread. */
bool ingest_submit(ingest_t *self, const void *data, size_t len, const ingest_source_t *src);

/* Apply the events the log holds beyond the state (after a crash, or into
 * a state being rebuilt), reporting progress (progress.h: a terminal line,
 * log lines every opts.progress_interval_ms, sd_notify STATUS= and
 * EXTEND_TIMEOUT_USEC=). Returns the number replayed, or -1 on a store
 * error. */
long ingest_recover(ingest_t *self);

/* Events whose type begins with this are funneld's own entries in the log
 * (user events may not use it: see validate.c): a deadline that fell due,
 * with attributes "kind" and "due_ms", at the daemon's time then. */
#define INGEST_DEADLINE_TYPE "$deadline"

/* Arm the deadline timer (after ingest_recover): deadlines that fell due
 * while funneld was down fire at once (wall clock) or as soon as the
 * event-time watermark passes them (event clock). */
void ingest_start_deadlines(ingest_t *self);

/* bus_recv_fn for the ingest ROUTER ([envelope...][EventBatch]) and for
 * stream SUBs ([topic][EventBatch]). arg is the ingest_t. */
void ingest_on_ingest(bus_sock_t *sock, bus_msg_t *msg, void *arg);
void ingest_on_stream(bus_sock_t *sock, bus_msg_t *msg, void *arg);

/* From now on apply the state off the Ack path, in partition threads
 * (partition.h), one per partition of the store (store_parts(): the
 * primary and those opened with store_open_part, each applying its leads'
 * entries): the loop thread decodes, validates, deduplicates, appends to
 * the log, fsyncs and acknowledges; the partitions apply the logged
 * events in log order and the alerts are published once the state change
 * that raised them is stored (with several partitions, merged in log
 * order). Intake pauses while more than lag_max events (0: twice
 * group_max_events) are logged and not applied by some partition. Call
 * after ingest_recover(), which with several partitions leaves the
 * replay to them: each applies the log from its own applied sequence,
 * and this waits for all of them (with progress) before it returns, the
 * number of entries they replayed in *replayed (may be NULL). Returns 0,
 * or -1 (logged). */
int ingest_start_partition(ingest_t *self, size_t lag_max, long *replayed);

/* Let the partition apply what is logged (at most 30 s), stop it and
 * publish its last alerts; the loop applies again. Idempotent; done by
 * ingest_shutdown() and ingest_destroy(). */
void ingest_stop_partition(ingest_t *self);

/* Hold the partition between groups once it applied what is logged (at
 * most 10 s): while held, the definition it applies may be replaced.
 * No-op without a partition. */
void ingest_hold(ingest_t *self);
void ingest_release(ingest_t *self);

/* Stop intake and commit everything pending, acknowledging it. Returns 0,
 * or -1 if the last commit failed (the events are then not acknowledged
 * and their publishers will resend them). */
int ingest_shutdown(ingest_t *self);

/* The daemon's time: wall clock, or the event-time watermark. */
int64_t ingest_now_ms(const ingest_t *self);

/* Milliseconds of wall-clock time since the Unix epoch. */
int64_t ingest_wall_ms(void);

/* Call fn(arg) on the loop thread after every commit of the log (events,
 * fired deadlines), e.g. to wake the threads that follow the log. */
void ingest_on_committed(ingest_t *self, void (*fn)(void *arg), void *arg);

/* -- appliers: the state side alone, for shadow drafts (ingest_apply.c) --
 * An applier applies logged entries to a store of its own (a shadow
 * store) under a definition of its own, through the same handlers and
 * the same code as the live state (ingest_apply), from a partition thread
 * (partition.h). It runs on event time, as the definition lab does
 * (lab.h): the log's "$deadline" entries (the live definition's
 * deadlines) are passed over; the applier's own deadlines fall due when
 * the events' time passes them (before the event that passes it is
 * applied), and, once it has applied everything the log holds, at the
 * daemon's time (as the live state's do after each commit). Every alert
 * is kept for the caller, who publishes it (ingest_applier_take). */

/* One alert raised by an applied group, for publication: its topic and
 * its Alert encoding (buf, len bytes, malloc'd). */
typedef struct {
    char topic[48];
    uint8_t *buf;
    size_t len;
    uint64_t log_seq;          /* the log entry that raised it (the funnel-wide
                                  ones: the last of their group) */
} ingest_alert_t;

/* An applier over store (a shadow store) under *defn_p with pipeline;
 * opts' clock, retention and limits apply, its groups' do not. Borrowed:
 * everything must outlive it. Free with ingest_destroy(). */
ingest_t *ingest_applier_new(store_t *store, const defn_t *const *defn_p,
                             const hnd_t *const *pipeline, const ingest_opts_t *opts);

/* partition_ops_t.apply for an applier (arg): apply n entries inside the
 * open state group; caught_up says whether e[n-1] is the last entry the
 * log had committed (the daemon's time applies then). Returns 0, or -1
 * on a store error. */
int ingest_applier_apply(ingest_t *self, const partition_entry_t *e, size_t n,
                         bool caught_up);

/* Append the alerts of the last committed group to *list (n entries, cap
 * slots: grown as needed; the caller owns each buf and the array) and
 * forget them; or drop them (an aborted group). */
void ingest_applier_take(ingest_t *self, ingest_alert_t **list, size_t *n, size_t *cap);
void ingest_applier_drop(ingest_t *self);

#endif
