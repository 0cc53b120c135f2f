/* test_cfg.c: funneld's configuration: defaults, file, command line and
 * their precedence, and the errors each gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"

static cfg_action_t load(cfg_t *cfg, char *err, size_t errlen, int argc, ...)
{
    char *argv[32];
    va_list ap;
    argv[0] = (char *)"funneld";
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    return cfg_load(cfg, argc, argv, err, errlen);
}

static char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/funneld-test-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    cfg_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, err, sizeof err, 1), CFG_RUN);
    assert_string_equal(cfg.state_dir, "./var/funneld");
    assert_string_equal(cfg.ingest, "tcp://127.0.0.1:7701");
    assert_string_equal(cfg.alerts, "tcp://127.0.0.1:7702");
    assert_string_equal(cfg.query, "tcp://127.0.0.1:7703");
    assert_string_equal(cfg.clock, "wall");
    assert_int_equal(cfg.insecure_remote, 0);
    assert_string_equal(cfg.curve_secret_file, "");
    assert_string_equal(cfg.http, "127.0.0.1:7704");
    assert_int_equal(cfg.subscribe_count, 0);
    cfg_free(&cfg);
}

static void test_file_then_command_line(void **state)
{
    cfg_t cfg;
    char err[512];
    char *path = write_file("state_dir: /tmp/from-file\ngroup_max_events: 77\n"
                            "subscribe: [tcp://127.0.0.1:5556, tcp://127.0.0.1:5557]\n");
    assert_int_equal(load(&cfg, err, sizeof err, 5, "--config", path, "--state-dir",
                          "/tmp/from-cli"),
                     CFG_RUN);
    assert_string_equal(cfg.state_dir, "/tmp/from-cli"); /* command line wins */
    assert_int_equal(cfg.group_max_events, 77);            /* file beats default */
    assert_int_equal(cfg.subscribe_count, 2);
    cfg_free(&cfg);
    /* --subscribe on the command line replaces the file's list. */
    assert_int_equal(load(&cfg, err, sizeof err, 5, "--config", path, "--subscribe",
                          "tcp://127.0.0.1:6000"),
                     CFG_RUN);
    assert_int_equal(cfg.subscribe_count, 1);
    assert_string_equal(cfg.subscribe[0], "tcp://127.0.0.1:6000");
    cfg_free(&cfg);
    unlink(path);
}

static void test_errors_name_the_place(void **state)
{
    cfg_t cfg;
    char err[512];
    char *path = write_file("clock: wall\ncolour: blue\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_ERROR);
    char want[128];
    snprintf(want, sizeof want, "%s:2:1: ", path);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "colour"));
    cfg_free(&cfg);
    unlink(path);

    path = write_file("state_dir: [1\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_ERROR);
    snprintf(want, sizeof want, "%s:1:", path);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "YAML syntax error"));
    cfg_free(&cfg);
    unlink(path);

    assert_int_equal(load(&cfg, err, sizeof err, 3, "--clock", "sundial"), CFG_ERROR);
    assert_non_null(strstr(err, "clock must be"));
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--group-max-events", "-3"), CFG_ERROR);
    assert_non_null(strstr(err, "non-negative integer"));
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 2, "--no-such-option"), CFG_ERROR);
    assert_non_null(strstr(err, "unknown option"));
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--linger-ms", "4000000000"), CFG_ERROR);
    assert_non_null(strstr(err, "linger_ms"));
    cfg_free(&cfg);
}

static void test_remote_endpoints_need_consent(void **state)
{
    cfg_t cfg;
    char err[512];
    assert_true(cfg_endpoint_is_local("tcp://127.0.0.1:7701"));
    assert_true(cfg_endpoint_is_local("tcp://localhost:7701"));
    assert_true(cfg_endpoint_is_local("tcp://[::1]:7701"));
    assert_true(cfg_endpoint_is_local("ipc:///run/funneld/ingest"));
    assert_false(cfg_endpoint_is_local("tcp://0.0.0.0:7701"));
    assert_false(cfg_endpoint_is_local("tcp://*:7701"));
    assert_false(cfg_endpoint_is_local("tcp://10.1.2.3:7701"));

    assert_int_equal(load(&cfg, err, sizeof err, 3, "--alerts", "tcp://*:7702"), CFG_ERROR);
    assert_non_null(strstr(err, "refusing to bind tcp://*:7702"));
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 5, "--alerts", "tcp://*:7702",
                          "--insecure-remote", "1"),
                     CFG_RUN);
    cfg_free(&cfg);
    /* CURVE opens the binds; it needs both files. */
    assert_int_equal(load(&cfg, err, sizeof err, 7, "--alerts", "tcp://*:7702",
                          "--curve-secret-file", "/k/server.key", "--curve-clients-file",
                          "/k/clients"),
                     CFG_RUN);
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--curve-secret-file", "/k/server.key"),
                     CFG_ERROR);
    assert_non_null(strstr(err, "curve_clients_file"));
    cfg_free(&cfg);
    /* The replaced setting says what to use instead. */
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--allow-remote", "1"), CFG_ERROR);
    assert_non_null(strstr(err, "insecure_remote"));
    assert_non_null(strstr(err, "curve_secret_file"));
    cfg_free(&cfg);
    char *path = write_file("allow_remote: 1\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_ERROR);
    assert_non_null(strstr(err, ":1:1: "));
    assert_non_null(strstr(err, "insecure_remote"));
    cfg_free(&cfg);
    unlink(path);
    /* A remote publisher needs CURVE (or the explicit consent) too. */
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--subscribe", "tcp://10.0.0.9:7801"),
                     CFG_ERROR);
    assert_non_null(strstr(err, "refusing to subscribe"));
    cfg_free(&cfg);
    /* http off loopback: CURVE and a token. */
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--http", "0.0.0.0:7704"), CFG_ERROR);
    assert_non_null(strstr(err, "http_token_file"));
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 9, "--http", "0.0.0.0:7704",
                          "--curve-secret-file", "/k/s.key", "--curve-clients-file",
                          "/k/c", "--http-token-file", "/k/token"),
                     CFG_RUN);
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--http", "7704"), CFG_ERROR);
    assert_non_null(strstr(err, "host:port"));
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--http", ""), CFG_RUN);
    cfg_free(&cfg);
}

static void test_http_split(void **state)
{
    char host[64];
    unsigned port;
    assert_int_equal(cfg_http_split("127.0.0.1:7704", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7704);
    assert_int_equal(cfg_http_split("[::1]:80", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_true(cfg_host_is_local(host));
    assert_int_equal(cfg_http_split("::1:80", host, sizeof host, &port), -1);
    assert_int_equal(cfg_http_split("host:0", host, sizeof host, &port), -1);
    assert_int_equal(cfg_http_split("host:65536", host, sizeof host, &port), -1);
    assert_int_equal(cfg_http_split(":80", host, sizeof host, &port), -1);
    assert_false(cfg_host_is_local("0.0.0.0"));
}

static void test_subscribe_entries_with_keys(void **state)
{
    cfg_t cfg;
    char err[512];
    char *path = write_file("curve_secret_file: /k/s.key\n"
                            "curve_clients_file: /k/clients\n"
                            "subscribe:\n"
                            "  - ipc:///run/crm.sock\n"
                            "  - endpoint: tcp://crm.example:7801\n"
                            "    curve_server_key: /k/crm.pub\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_RUN);
    assert_int_equal(cfg.subscribe_count, 2);
    assert_string_equal(cfg.subscribe[0], "ipc:///run/crm.sock");
    assert_null(cfg.subscribe_key[0]);
    assert_string_equal(cfg.subscribe[1], "tcp://crm.example:7801");
    assert_string_equal(cfg.subscribe_key[1], "/k/crm.pub");
    /* --dump-config writes them back as they were. */
    char dump[64];
    snprintf(dump, sizeof dump, "%s.dump", path);
    FILE *f = fopen(dump, "w");
    assert_non_null(f);
    cfg_dump(&cfg, f);
    fclose(f);
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", dump), CFG_RUN);
    assert_int_equal(cfg.subscribe_count, 2);
    assert_string_equal(cfg.subscribe_key[1], "/k/crm.pub");
    cfg_free(&cfg);
    unlink(dump);
    unlink(path);

    /* With CURVE on, a TCP publisher needs its key. */
    path = write_file("curve_secret_file: /k/s.key\ncurve_clients_file: /k/c\n"
                      "subscribe: [tcp://127.0.0.1:7801]\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_ERROR);
    assert_non_null(strstr(err, "needs a curve_server_key"));
    cfg_free(&cfg);
    unlink(path);
    /* An unknown key in an entry is named with its place. */
    path = write_file("subscribe:\n  - endpoint: tcp://127.0.0.1:7801\n    key: x\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_ERROR);
    char want[128];
    snprintf(want, sizeof want, "%s:3:5: unknown key", path);
    assert_non_null(strstr(err, want));
    cfg_free(&cfg);
    unlink(path);
    path = write_file("subscribe:\n  - curve_server_key: /k/x.pub\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_ERROR);
    assert_non_null(strstr(err, ":2:5: a subscribe entry is an endpoint"));
    cfg_free(&cfg);
    unlink(path);
    path = write_file("subscribe: tcp://127.0.0.1:7801\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_ERROR);
    assert_non_null(strstr(err, "must be a list"));
    cfg_free(&cfg);
    unlink(path);
}

static void test_dump_loads_back(void **state)
{
    cfg_t cfg;
    char err[512];
    char *path = write_file("state_dir: \"a \\\"quoted\\\" \\\\ dir\"\n");
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), CFG_RUN);
    assert_string_equal(cfg.state_dir, "a \"quoted\" \\ dir");
    char dump[64];
    snprintf(dump, sizeof dump, "%s.dump", path);
    FILE *f = fopen(dump, "w");
    assert_non_null(f);
    cfg_dump(&cfg, f);
    fclose(f);
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", dump), CFG_RUN);
    assert_string_equal(cfg.state_dir, "a \"quoted\" \\ dir");
    cfg_free(&cfg);
    unlink(dump);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_then_command_line),
        cmocka_unit_test(test_errors_name_the_place),
        cmocka_unit_test(test_remote_endpoints_need_consent),
        cmocka_unit_test(test_http_split),
        cmocka_unit_test(test_subscribe_entries_with_keys),
        cmocka_unit_test(test_dump_loads_back),
    };
    return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}
