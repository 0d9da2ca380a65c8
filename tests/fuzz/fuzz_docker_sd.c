/* libFuzzer target: discovery_docker_build (the Engine API's
 * GET /containers/json and GET /networks bodies into targets) and the
 * conversion into target groups. Input: one option byte (bit 0:
 * match_first_network, bit 1: a negative port), the containers body, a NUL
 * byte, the networks body. Every call must succeed with well-formed targets
 * or fail with a message, never crash, leak or hang.
 *
 * Seeds: `make fuzz` builds them from ../shared/conformance/docker-sd and
 * tests/data/docker-sd (see the Makefile). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery_docker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    config_docker_sd sd = {.port = (data[0] & 2) ? -1 : 80,
                           .host_networking_host = "localhost",
                           .match_first_network = data[0] & 1};
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    const char *nul = memchr(in, '\0', len);
    size_t clen = nul ? (size_t)(nul - in) : len;
    const char *nets = nul ? nul + 1 : "[]";
    size_t nlen = nul ? len - clen - 1 : 2;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    discovery_docker_target *t = NULL;
    size_t n = 0;
    int rc = discovery_docker_build(&sd, in, clen, nets, nlen, &t, &n, &err);
    if (rc == 0) {
        if (err.len != 0 || (n > 0 && !t)) abort();
        for (size_t i = 0; i < n; i++) {
            bool addr = false;
            for (size_t k = 0; k < t[i].n; k++) {
                if (k > 0 && strcmp(t[i].labels[k - 1].name, t[i].labels[k].name) >= 0) abort();
                addr |= strcmp(t[i].labels[k].name, "__address__") == 0;
            }
            if (!addr) abort();
        }
        config_target_group *g = discovery_docker_groups(t, n);
        for (size_t i = 0; i < n; i++) {
            if (g[i].n_targets != 1 || !g[i].labels) abort();
        }
        discovery_docker_groups_free(g, n);
        discovery_docker_targets_free(t, n);
    } else {
        if (t || err.len == 0) abort();
    }
    buf_cleanup(&err);
    return 0;
}
