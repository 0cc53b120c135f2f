/* test_bus.c: the ZeroMQ/libevent glue on real sockets (inproc and tcp):
 * messages queued before the handler is registered are all delivered, a
 * small work budget still drains everything, sends from inside a handler
 * do not lose wakeups, a paused socket delivers nothing until resumed, and
 * a tracked XPUB knows which topics its subscribers want. */
#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"

typedef struct {
    struct event_base *base;
    bus_sock_t *sock;
    int got;
    int want;
    bool echo;          /* reply to every message (ROUTER) */
} counter_t;

static void on_msg(bus_sock_t *sock, bus_msg_t *msg, void *arg)
{
    counter_t *c = arg;
    c->got++;
    if (c->echo) {
        const void *parts[2] = {zmq_msg_data(&msg->part[0]), "ok"};
        size_t lens[2] = {zmq_msg_size(&msg->part[0]), 2};
        assert_int_equal(bus_send(sock, parts, lens, 2), 0);
    }
    if (c->got == c->want)
        event_base_loopbreak(c->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* Run the loop until the counter is reached or 5 s pass. */
static void run(struct event_base *base)
{
    struct event *t = evtimer_new(base, on_timeout, base);
    struct timeval tv = {5, 0};
    evtimer_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);
}

static void test_queued_before_register_all_delivered(void **state)
{
    char err[256], m[16];
    int zero = 0;
    struct event_base *base = event_base_new();
    bus_t *bus = bus_new(base, err, sizeof err);
    bus_opts_t opts = {.linger_ms = 0};
    bus_sock_t *pull = bus_socket(bus, ZMQ_PULL, "inproc://queued", true, &opts, err,
                                  sizeof err);
    assert_non_null(pull);
    void *push = zmq_socket(bus_context(bus), ZMQ_PUSH);
    zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(push, "inproc://queued"), 0);
    for (int i = 0; i < 1000; i++) {
        snprintf(m, sizeof m, "m%d", i);
        assert_int_equal(zmq_send(push, m, strlen(m), 0), (int)strlen(m));
    }
    /* Everything is queued before anyone watches the socket, and the budget
     * is far smaller than the backlog: no edge will come for most of it. */
    counter_t c = {.base = base, .want = 1000};
    bus_on_recv(pull, on_msg, &c, 7);
    run(base);
    assert_int_equal(c.got, 1000);

    zmq_close(push);
    bus_destroy(&bus);
    assert_null(bus);
    event_base_free(base);
}

static void test_replies_from_the_handler(void **state)
{
    char err[256];
    struct event_base *base = event_base_new();
    bus_t *bus = bus_new(base, err, sizeof err);
    bus_opts_t opts = {.linger_ms = 0};
    bus_sock_t *router = bus_socket(bus, ZMQ_ROUTER, "inproc://echo", true, &opts, err,
                                    sizeof err);
    assert_non_null(router);
    void *dealer = zmq_socket(bus_context(bus), ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(dealer, "inproc://echo"), 0);
    counter_t c = {.base = base, .want = 500, .echo = true};
    bus_on_recv(router, on_msg, &c, 16);
    for (int i = 0; i < 500; i++)
        assert_int_equal(zmq_send(dealer, "x", 1, 0), 1);
    run(base);
    assert_int_equal(c.got, 500);
    int replies = 0;
    char buf[8];
    while (zmq_recv(dealer, buf, sizeof buf, ZMQ_DONTWAIT) == 2)
        replies++;
    assert_int_equal(replies, 500);
    zmq_close(dealer);
    bus_destroy(&bus);
    event_base_free(base);
}

static void test_pause_and_resume(void **state)
{
    char err[256];
    struct event_base *base = event_base_new();
    bus_t *bus = bus_new(base, err, sizeof err);
    bus_opts_t opts = {.linger_ms = 0};
    bus_sock_t *pull = bus_socket(bus, ZMQ_PULL, "inproc://paused", true, &opts, err,
                                  sizeof err);
    void *push = zmq_socket(bus_context(bus), ZMQ_PUSH);
    int zero = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(push, "inproc://paused"), 0);
    counter_t c = {.base = base, .want = 10};
    bus_on_recv(pull, on_msg, &c, 4);
    bus_pause(pull);
    for (int i = 0; i < 10; i++)
        assert_int_equal(zmq_send(push, "p", 1, 0), 1);
    /* Paused: one loop pass with a short timeout delivers nothing. */
    struct event *t = evtimer_new(base, on_timeout, base);
    struct timeval tv = {0, 100000};
    evtimer_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);
    assert_int_equal(c.got, 0);
    bus_resume(pull);
    run(base);
    assert_int_equal(c.got, 10);
    zmq_close(push);
    bus_destroy(&bus);
    event_base_free(base);
}

/* Run the loop until bus_wanted(sock, topic) == want, or 5 s pass. */
static bool await_wanted(struct event_base *base, bus_sock_t *sock, const char *topic,
                         bool want)
{
    struct event *t = evtimer_new(base, on_timeout, base);
    struct timeval tv = {5, 0};
    evtimer_add(t, &tv);
    while (bus_wanted(sock, topic) != want && evtimer_pending(t, NULL))
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return bus_wanted(sock, topic) == want;
}

static void test_xpub_tracks_subscriptions(void **state)
{
    char err[256];
    struct event_base *base = event_base_new();
    bus_t *bus = bus_new(base, err, sizeof err);
    bus_opts_t opts = {.linger_ms = 0};
    bus_sock_t *pub = bus_socket(bus, ZMQ_XPUB, "inproc://xpub", true, &opts, err,
                                 sizeof err);
    assert_non_null(pub);
    bus_track_subscriptions(pub, 4);
    assert_false(bus_wanted(pub, "handoff"));     /* nobody yet */

    int zero = 0;
    void *s1 = zmq_socket(bus_context(bus), ZMQ_SUB);
    void *s2 = zmq_socket(bus_context(bus), ZMQ_SUB);
    zmq_setsockopt(s1, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s2, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(s1, "inproc://xpub"), 0);
    assert_int_equal(zmq_connect(s2, "inproc://xpub"), 0);
    zmq_setsockopt(s1, ZMQ_SUBSCRIBE, "hand", 4);
    assert_true(await_wanted(base, pub, "handoff", true));
    assert_false(bus_wanted(pub, "stage"));
    assert_false(bus_wanted(pub, "han"));          /* shorter than the prefix */

    /* Another subscriber of the same prefix keeps it wanted when the first
     * unsubscribes (a later subscription on s1 shows its unsubscription
     * was handled: one subscriber's messages arrive in order). */
    zmq_setsockopt(s2, ZMQ_SUBSCRIBE, "hand", 4);
    zmq_setsockopt(s2, ZMQ_SUBSCRIBE, "s2-ready", 8);
    assert_true(await_wanted(base, pub, "s2-ready", true));
    zmq_setsockopt(s1, ZMQ_UNSUBSCRIBE, "hand", 4);
    zmq_setsockopt(s1, ZMQ_SUBSCRIBE, "friction.", 9);
    assert_true(await_wanted(base, pub, "friction.stall", true));
    assert_true(bus_wanted(pub, "handoff"));

    /* A subscriber that goes away takes its subscriptions with it. */
    zmq_close(s2);
    assert_true(await_wanted(base, pub, "handoff", false));
    assert_true(bus_wanted(pub, "friction.stall"));

    /* The empty prefix wants everything. */
    zmq_setsockopt(s1, ZMQ_SUBSCRIBE, "", 0);
    assert_true(await_wanted(base, pub, "stage", true));
    zmq_setsockopt(s1, ZMQ_UNSUBSCRIBE, "", 0);
    assert_true(await_wanted(base, pub, "stage", false));

    /* A prefix too long to keep: every topic counts as wanted while it is
     * subscribed (slower, never wrong). */
    char lng[300];
    memset(lng, 'x', sizeof lng);
    zmq_setsockopt(s1, ZMQ_SUBSCRIBE, lng, sizeof lng);
    assert_true(await_wanted(base, pub, "stage", true));
    zmq_setsockopt(s1, ZMQ_UNSUBSCRIBE, lng, sizeof lng);
    assert_true(await_wanted(base, pub, "stage", false));
    assert_true(bus_wanted(pub, "friction.stall"));
    zmq_close(s1);
    bus_destroy(&bus);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_before_register_all_delivered),
        cmocka_unit_test(test_replies_from_the_handler),
        cmocka_unit_test(test_pause_and_resume),
        cmocka_unit_test(test_xpub_tracks_subscriptions),
    };
    return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
