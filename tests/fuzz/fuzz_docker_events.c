/* libFuzzer target for docker's handling of engine input: the /events
 * NDJSON stream (split into chunks anywhere), /containers/json lists,
 * /containers/{id}/json inspects, /info and /version bodies, all applied
 * to a container cache that never connects. Whatever the input, nothing
 * may crash, leak or hang, and a published snapshot must be consistent.
 *
 * Input: byte 0 picks the kind (% 5: 0 events, 1 list, 2 inspect, 3 info,
 * 4 version), byte 1 the events chunk size (and bit 7 of byte 0 whether a
 * snapshot is published), the rest is the body. Seeds: the captures in
 * ../shared/docker (make builds build/fuzz/seeds-docker_events). Build and
 * run with `make fuzz-docker_events`. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "docker.h"
#include "json.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level((enum log_level)(LOG_ERROR + 1));
    httpc_global_init();
    return 0;
}

static void check_snapshot(docker *d)
{
    /* Publishing happens in docker_step; the host does not exist, so the
     * connection attempt it starts fails harmlessly (and is cancelled by
     * docker_free). */
    docker_step(d);
    docker_snapshot *s = docker_snapshot_get(d);
    for (size_t i = 0; i < s->n_containers; i++) {
        const docker_container *c = &s->containers[i];
        if (i > 0 && strcmp(s->containers[i - 1].id, c->id) >= 0) abort();
        if (docker_snapshot_find(s, c->id) != c) abort();
        if (!c->name || !c->image || !c->state || !c->health) abort();
        for (size_t k = 1; k < c->n_labels; k++)
            if (strcmp(c->labels[k - 1].key, c->labels[k].key) > 0) abort();
    }
    docker_snapshot_unref(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int kind = data[0] % 5;
    bool publish = data[0] & 0x80;
    size_t chunk = data[1] ? data[1] : 1;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;

    docker_opts o = {.host = "unix:///nonexistent/sidewatch-fuzz.sock", .event_line_limit = 4096};
    docker *d = NULL;
    buf err;
    buf_init(&err, 1024);
    if (docker_new(&o, NULL, &d, &err) < 0) abort();
    buf_cleanup(&err);

    switch (kind) {
    case 0:
        for (size_t off = 0; off < len; off += chunk)
            docker_feed_events(d, body + off, len - off < chunk ? len - off : chunk);
        break;
    case 1:
        docker_feed_list(d, body, len);
        /* Events on top of whatever the list left. */
        docker_feed_events(d, body, len);
        docker_feed_list(d, "[]", 2);
        break;
    case 2: {
        /* Cache the container the body names, then apply the body to it. */
        char id[DOCKER_ID_MAX + 1] = "c49a6c5f2635";
        json_doc *j = json_doc_parse(body, len, DOCKER_BODY_LIMIT, 0, NULL);
        const char *jid = json_val_string(json_val_get(json_doc_root(j), "Id"), NULL);
        if (jid && strlen(jid) <= DOCKER_ID_MAX) strcpy(id, jid);
        json_doc_free(j);
        char list[DOCKER_ID_MAX + 32];
        snprintf(list, sizeof list, "[{\"Id\":\"%s\"}]", id);
        docker_feed_list(d, list, strlen(list));
        if (docker_feed_inspect(d, id, body, len) == 0 && publish) check_snapshot(d);
        break;
    }
    case 3:
        docker_feed_info(d, body, len);
        break;
    default: {
        char api[16];
        buf e;
        buf_init(&e, 4096);
        int rc = docker_negotiate_version(body, len, api, &e);
        if (rc == 0 && (strlen(api) < 3 || strlen(api) > 7)) abort();
        if (rc != 0 && e.len == 0) abort();
        buf_cleanup(&e);
        break;
    }
    }
    if (publish) check_snapshot(d);
    docker_free(d);
    return 0;
}
