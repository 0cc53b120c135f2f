/* funnelctl: the companion CLI of funneld (SPEC section 6).
 *
 *   funnelctl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]
 *
 * main parses the global options up to the command name, finds the command
 * in the table (CTL_COMMANDS in ctl.h) and runs it; each command parses its
 * own option table with ctl_parse (the global options are accepted there
 * too) and returns the exit status:
 *
 *   0  success
 *   1  the answer is "no" (unknown lead, rejected event, ...)
 *   2  usage or connection error, with one line "funnelctl: ..." on stderr
 *
 * Sockets: ingest is a DEALER to funneld's ROUTER (one EventBatch frame out,
 * one Ack frame back after the durable commit; ctl_ingest.c), query a
 * DEALER to its query ROUTER (one QueryRequest out, one QueryReply back;
 * ctl_query.c), alerts a SUB to its PUB (two frames, [topic][Alert];
 * ctl_watch.c). Every socket has ZMQ_LINGER 0 and every wait a deadline, so
 * funnelctl never hangs on a daemon that is not there. The default
 * endpoints are funneld's own defaults (daemon/cfg.h).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The command table: one row per command, from CTL_COMMANDS (ctl.h says
 * how to add one). */
#define S_ROW(name) &ctl_cmd_##name,
static const ctl_cmd_t *const s_commands[] = { CTL_COMMANDS(S_ROW) };
#undef S_ROW
#define S_NCOMMANDS (sizeof s_commands / sizeof *s_commands)

const ctl_cmd_t *ctl_find_command(const char *name)
{
    for (size_t i = 0; i < S_NCOMMANDS; i++)
        if (strcmp(s_commands[i]->name, name) == 0)
            return s_commands[i];
    return NULL;
}

void ctl_usage(FILE *out)
{
    fputs("Usage: funnelctl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
          "\n"
          "The companion CLI of funneld, the marketing-and-sales funnel daemon.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < S_NCOMMANDS; i++)
        fprintf(out, "  %-11s %s\n", s_commands[i]->name, s_commands[i]->summary);
    fputs("\n`funnelctl COMMAND --help` documents each command.\n", out);
    fputs("\nGlobal options (before or after the command):\n", out);
    ctl_print_main_options(out);
    fprintf(out, "\n%s", ctl_exit_help);
}

int main(int argc, char **argv)
{
    ctl_opts_t g = ctl_global_defaults;
    int rc;

    /* The options override the environment. */
    g.server_key = getenv("FUNNELCTL_SERVER_KEY");
    g.client_key = getenv("FUNNELCTL_CLIENT_KEY");
    if (g.server_key && !g.server_key[0])
        g.server_key = NULL;
    if (g.client_key && !g.client_key[0])
        g.client_key = NULL;
    /* A reader that goes away (funnelctl watch | head) ends us quietly. */
    signal(SIGPIPE, SIG_DFL);

    int first = ctl_parse_global(&g, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first >= argc) {
        ctl_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    const char *name = argv[first];
    if (strcmp(name, "help") == 0) {
        const ctl_cmd_t *cmd = first + 1 < argc ? ctl_find_command(argv[first + 1]) : NULL;
        if (cmd)
            ctl_command_help(cmd, stdout);
        else
            ctl_usage(stdout);
        return CTL_EXIT_OK;
    }
    const ctl_cmd_t *cmd = ctl_find_command(name);
    if (!cmd) {
        ctl_error("unknown command \"%s\" (see funnelctl --help)", name);
        return CTL_EXIT_USAGE;
    }
    return cmd->run(&g, argc - first, argv + first);
}
