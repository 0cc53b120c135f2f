/* ingest_int.h: the dispatcher's insides, shared by its three files and
 * by nobody else: ingest.c (intake, group commit, Acks), ingest_deadline.c
 * (deadlines falling due) and ingest_replay.c (bringing the state up to
 * date with the log). Everything here runs on the loop thread. */
#ifndef FUNNELD_INGEST_INT_H
#define FUNNELD_INGEST_INT_H

#include <event2/event.h>
#include <pthread.h>

#include "ingest.h"
#include "partition.h"

#define INGEST_REASON_LEN 192
#define INGEST_INTAKE_MAX 32
#define INGEST_COMMIT_TRIES 8
#define INGEST_PUBLISHERS_MAX 1024

enum { V_PENDING = 0, V_ACCEPTED, V_DUPLICATE, V_REJECTED };

/* One received batch waiting for its group to commit. */
typedef struct pending {
    Funnel__V1__EventBatch *batch;  /* owned, decoded into arena */
    struct arena *arena;            /* the batch's allocations */
    bus_sock_t *reply;              /* ingest socket, NULL for streams */
    zmq_msg_t envelope[BUS_PARTS_MAX - 1]; /* routing frames to echo */
    int n_envelope;
    unsigned char *verdict;         /* per event: V_* */
    char (*reason)[INGEST_REASON_LEN];   /* per event: why rejected */
    zmq_msg_t payload;              /* the EventBatch bytes (a reference) */
    uint32_t *raw_off;              /* per event: its bytes in payload, to */
    uint32_t *raw_len;              /* log as received (0: encode again) */
    uint32_t accepted;
    uint32_t duplicates;
    uint64_t last_seq;
    bool logged;                    /* in the log, verdicts final: ack only */
    uint64_t recv_ns;               /* arrival (metrics_now_ns) */
    uint32_t n_invalid;             /* events refused by validation */
    bool txn_refused;               /* too large for one transaction */
    ingest_done_fn *done;           /* ingest_submit's source: told once */
    void *done_arg;
    struct pending *next;
} pending_t;

/* A logged batch's accepted events, kept decoded for the partitions
 * (ingest_partition.c): the log entries first..first+n-1, in order. */
typedef struct {
    uint64_t first;
    size_t n;
    const Funnel__V1__Event **evs;  /* owned array; the events in arena */
    struct arena *arena;            /* the batch's, owned */
} ingest_fed_t;

/* The last seq seen from one sequenced stream publisher. */
typedef struct {
    char *name;
    uint64_t last_seq;
} ingest_publisher_t;

struct ingest {
    struct event_base *base;
    store_t *store;
    const defn_t *const *defn_p;
    const hnd_t *const *pipeline;
    bus_sock_t *alerts;
    ingest_opts_t opts;

    pending_t *head;
    pending_t *tail;
    size_t n_pending_events;
    struct event *ev_commit;       /* group timer */
    struct event *ev_retry;        /* store failed: try again */
    bool failing;                  /* intake paused on a store failure */
    bool stopping;

    bus_sock_t *intake[INGEST_INTAKE_MAX];
    size_t n_intake;
    ingest_pause_fn *intake_fn[INGEST_INTAKE_MAX]; /* other intakes */
    void *intake_arg[INGEST_INTAKE_MAX];
    size_t n_intake_fn;
    ingest_alert_fn *alert_sink;   /* another alert output, or NULL */
    void *alert_sink_arg;

    ingest_alert_t *out;            /* alerts of the open group */
    size_t n_out;
    size_t cap_out;

    int64_t watermark_ms;          /* largest event time received */

    struct event *ev_deadline;     /* the earliest deadline is due */
    bool firing;                   /* inside s_fire_due */

    ingest_publisher_t *publishers;     /* sequenced stream publishers */
    size_t n_publishers;
    bool publishers_full;

    /* With a partition (ingest_partition.c), the loop only logs and
     * acknowledges; the partition thread applies (ingest_apply and the
     * group's funnel-wide checks run there, filling `out`) and hands the
     * alerts over to the loop, which publishes them. */
    partition_t *part;
    bool split;                    /* part started: ingest_apply is its */
    size_t lag_max;                /* logged, not applied: intake pauses */
    bool lagging;                  /* intake paused by lag_max */
    pthread_mutex_t hand_lock;
    ingest_alert_t *hand;          /* applied, to publish (hand_lock) */
    size_t n_hand;
    size_t cap_hand;
    int hand_fd;                   /* eventfd: something was handed over */
    struct event *ev_hand;
    uint64_t hand_applied;         /* the sequence handed over up to (hand_lock) */
    /* With more than one partition: each one's applying context
     * (pctx[0] is this one; the others' owner is this one, whose hand-over
     * eventfd they share) and thread (parts[0] is part); on the loop
     * thread, each context's alerts taken over and waiting until every
     * partition handed over up to their sequence (wait, from at_wait). */
    ingest_t *owner;               /* the loop's ingest_t (NULL: none) */
    ingest_t *pctx[STORE_PARTS_MAX];
    partition_t *parts[STORE_PARTS_MAX];
    unsigned n_parts;
    ingest_alert_t *wait;
    size_t n_wait, cap_wait, at_wait;
    /* The loop's only: the batches logged and acknowledged that some
     * partition has not applied yet, in log order, their events handed to
     * the partitions decoded (fed[at_fed..n_fed), under feed_lock: the
     * loop appends and frees, the partition threads read). */
    pthread_mutex_t feed_lock;
    ingest_fed_t *fed;
    size_t n_fed, cap_fed, at_fed;

    /* Called after every commit of the log (shadow drafts follow it). */
    void (*committed_fn)(void *arg);
    void *committed_arg;
};

/* After a commit of the log: call the committed hook, if any. (ingest.c) */
void ingest_committed(ingest_t *self);

/* A group's work between begin and commit. Returns INGEST_FILLED, or
 * INGEST_NOTHING when there was nothing to do (the group is dropped); a
 * store error is sticky in the store and comes out of the commit. */
enum { INGEST_FILLED = 0, INGEST_NOTHING = 1 };
typedef int ingest_fill_fn(ingest_t *self, void *arg);

/* Run one group: begin, fill, the funnel-wide checks, commit; a map found
 * full is grown and the group redone, and with retry_stale (replay) a
 * failed state commit too. The alerts of the last attempt are left queued.
 * Returns STORE_OK, STORE_ESTALE, STORE_ETXNFULL, STORE_ERR or
 * INGEST_NOTHING. (ingest.c) */
int ingest_run_group(ingest_t *self, ingest_fill_fn *fill, void *arg, bool retry_stale);

/* Apply one event (or a "$deadline" entry) inside the open group; see
 * ingest.c. raw (raw_len bytes, or NULL) is pb's encoding as received, to
 * log without encoding it again. Returns 0 and *seq_out, 1 when not
 * applied, -1 on a store error. (ingest.c) */
int ingest_apply(ingest_t *self, const Funnel__V1__Event *pb, const void *raw,
                 size_t raw_len, uint64_t replay_seq, uint64_t *seq_out);

/* Publish the queued alerts, or drop them; either way the queue is empty
 * afterwards. (ingest.c) */
void ingest_out_publish(ingest_t *self);
void ingest_out_clear(ingest_t *self);

/* A log group (with a partition): begin, fill, commit the log; a map
 * found full is grown and the group redone. Returns STORE_OK,
 * STORE_ETXNFULL, STORE_ERR or INGEST_NOTHING. (ingest.c) */
int ingest_run_log_group(ingest_t *self, ingest_fill_fn *fill, void *arg);

/* Append pb to the log in the open log group (raw: its bytes as
 * received, or NULL), linked to prev_seq. Returns its sequence, or 0 on
 * a store error (sticky). (ingest.c) */
uint64_t ingest_log_event(ingest_t *self, const Funnel__V1__Event *pb, const void *raw,
                          size_t raw_len, uint64_t prev_seq);

/* Free what the partition's hand-over holds (after the partition
 * stopped). (ingest_partition.c) */
void ingest_part_free(ingest_t *self);

/* p was logged and is being acknowledged: with partitions running, keep
 * its accepted events decoded for them (p's arena is taken over, p->arena
 * is NULL afterwards), until every partition applied them. Nothing is
 * taken without partitions. (ingest_partition.c) */
void ingest_part_keep(ingest_t *self, pending_t *p);

/* The funnel-wide checks and the retention step of the stored alerts,
 * at the end of a group, inside it (alert_seq_begin: the last alert
 * sequence when the group began). (ingest.c) */
void ingest_group_end(ingest_t *self, uint64_t alert_seq_begin);

/* Intake pause (bus_pause) on every intake socket, or resume. (ingest.c) */
void ingest_intake_pause(ingest_t *self, bool pause);

/* Whether an alert of topic is to be built for publication: a subscriber
 * of the alerts socket wants it, or an alert sink takes everything.
 * (ingest.c) */
bool ingest_wanted(const ingest_t *self, const char *topic);

/* Publish one alert on the alerts socket (counted in the metrics). (ingest.c) */
void ingest_publish(ingest_t *self, const char *topic, const uint8_t *buf, size_t len);

/* After a log commit: wake the partition, pause intake when it lags
 * too far behind. Publish what the partition handed over, arm the
 * deadlines, resume intake when it caught up. (ingest_partition.c) */
void ingest_part_committed(ingest_t *self);
/* Wake every partition (something was logged). (ingest_partition.c) */
void ingest_part_notify(ingest_t *self);
void ingest_part_publish(ingest_t *self);

/* Apply the logged events the state lacks. Returns how many, or -1.
 * (ingest_replay.c) */
long ingest_replay(ingest_t *self);

/* Arm the deadline timer for the earliest pending deadline; the timer's
 * callback. (ingest_deadline.c) */
void ingest_arm_deadlines(ingest_t *self);
void ingest_on_deadline(evutil_socket_t fd, short what, void *arg);

#endif
