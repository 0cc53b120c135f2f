/* ctl_keygen.c: funnelctl keygen NAME: a CURVE key pair for funneld or for
 * one of its clients (daemon/curvekey.c writes the files). */
#include <string.h>

#include "ctl.h"
#include "curvekey.h"

static int s_run_keygen(ctl_opts_t *g, int argc, char **argv)
{
    int rc;
    char pub[CURVEKEY_TEXT], err[4200];
    int first = ctl_parse(&ctl_cmd_keygen, g, NULL, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first + 1 != argc || argv[first][0] == '\0') {
        ctl_error("keygen: give one NAME (see funnelctl keygen --help)");
        return CTL_EXIT_USAGE;
    }
    const char *base = argv[first];
    const char *slash = strrchr(base, '/');
    const char *name = slash ? slash + 1 : base;
    if (name[0] == '\0') {
        ctl_error("keygen: NAME must not end with /");
        return CTL_EXIT_USAGE;
    }
    if (curvekey_generate(base, name, pub, err, sizeof err) == -1) {
        ctl_error("keygen: %s", err);
        return CTL_EXIT_USAGE;
    }
    if (g->json) {
        json_t *doc = json_object();
        char path[4200];
        json_object_set_new(doc, "name", json_string(name));
        json_object_set_new(doc, "public_key", json_string(pub));
        snprintf(path, sizeof path, "%s.key", base);
        json_object_set_new(doc, "secret_file", json_string(path));
        snprintf(path, sizeof path, "%s.pub", base);
        json_object_set_new(doc, "public_file", json_string(path));
        ctl_print_doc(doc);
    } else {
        printf("%s\n", pub);
    }
    return CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_keygen = {
    .name = "keygen",
    .summary = "make a CURVE key pair (NAME.key, NAME.pub)",
    .usage = "Usage: funnelctl keygen NAME\n",
    .about =
        "Make a CURVE key pair for funneld (curve_secret_file) or for one of its\n"
        "clients: NAME.key, the secret key (mode 0600: keep it private), and NAME.pub,\n"
        "the public key, both Z85 text after a comment line. Prints the public key:\n"
        "a client's goes into funneld's curve_clients_file (with a name after it),\n"
        "funneld's is what its clients pass as --server-key. Existing files are never\n"
        "replaced. NAME may include a directory.\n"
        "\n"
        "With --json: {\"name\", \"public_key\", \"secret_file\", \"public_file\"}.\n",
    .run = s_run_keygen,
};
