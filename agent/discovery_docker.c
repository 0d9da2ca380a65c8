#include "discovery_docker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hmap.h"
#include "httpc.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"

#define META "__meta_docker_"
/* Most "container:<id>" links followed to find a shared network namespace
 * (Prometheus follows any number, and loops forever on a cycle). */
#define MAX_SHARED_HOPS 1000
/* Longest poll while a request runs (see fetch()). */
#define FETCH_POLL_MS 20

/* ---- label lists ----------------------------------------------------------------- */

/* Labels in assignment order; ll_finish keeps the last value of each name,
 * as assigning into Go's map does. Appending keeps building linear in the
 * number of labels. */
typedef struct lent {
    char *name, *value;
    size_t seq;
} lent;

typedef struct llist {
    lent *v;
    size_t n, cap;
} llist;

/* Sets name=value (copies both); a later set of the same name wins. */
static void ll_set(llist *l, const char *name, const char *value)
{
    l->v = mem_grow(l->v, sizeof *l->v, l->n + 1, &l->cap);
    l->v[l->n].name = mem_strdup(name);
    l->v[l->n].value = mem_strdup(value);
    l->v[l->n].seq = l->n;
    l->n++;
}

static void ll_set_all(llist *l, const llist *from)
{
    for (size_t i = 0; from && i < from->n; i++)
        ll_set(l, from->v[i].name, from->v[i].value);
}

static void ll_cleanup(llist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mem_free(l->v[i].name);
        mem_free(l->v[i].value);
    }
    mem_free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_lent(const void *a, const void *b)
{
    const lent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The labels sorted by name, the last set of each name kept; empties l.
 * Returns a new array (*n entries) the caller owns. */
static discovery_docker_label *ll_finish(llist *l, size_t *n)
{
    qsort(l->v, l->n, sizeof *l->v, cmp_lent);
    discovery_docker_label *out = mem_calloc(l->n + 1, sizeof *out);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (i + 1 < l->n && strcmp(l->v[i].name, l->v[i + 1].name) == 0) {
            mem_free(l->v[i].name);
            mem_free(l->v[i].value);
            continue;
        }
        out[k].name = l->v[i].name;
        out[k].value = l->v[i].value;
        k++;
    }
    mem_free(l->v);
    memset(l, 0, sizeof *l);
    *n = k;
    return out;
}

/* An entry of an ID index (containers and networks by ID). */
typedef struct id_ent {
    const char *id;
    const void *val;
} id_ent;

static bool id_eq(const void *val, const void *key)
{
    return strcmp(((const id_ent *)val)->id, key) == 0;
}

static uint64_t id_hash(const char *id)
{
    return strutil_hash64(id, strlen(id), 0x1d);
}

static const void *id_get(const hmap *m, const char *id)
{
    const id_ent *e = hmap_get(m, id_hash(id), id_eq, id);
    return e ? e->val : NULL;
}

/* Sets id -> val; a later ID replaces the earlier one (a Go map). The
 * entries are allocated; id_index_cleanup frees them. */
static void id_put(hmap *m, const char *id, const void *val)
{
    id_ent *e = hmap_get(m, id_hash(id), id_eq, id);
    if (e) {
        e->val = val;
        return;
    }
    e = mem_malloc(sizeof *e);
    e->id = id;
    e->val = val;
    hmap_put(m, id_hash(id), e);
}

static void id_index_cleanup(hmap *m)
{
    size_t it = 0;
    void *v;
    while (hmap_next(m, &it, &v))
        mem_free(v);
    hmap_cleanup(m);
}

/* Prometheus's strutil.SanitizeLabelName: every rune outside [a-zA-Z0-9_]
 * becomes one '_' (an invalid UTF-8 byte counts as one rune). */
static void sanitize_label_name(buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char ch = *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '_') {
            buf_putc(out, (char)ch);
            p++;
            continue;
        }
        buf_putc(out, '_');
        size_t len = ch < 0x80                 ? 1
                     : ch >= 0xf0 && ch < 0xf5 ? 4
                     : ch >= 0xe0              ? 3
                     : ch >= 0xc2              ? 2
                                               : 1;
        if (ch >= 0xf5) len = 1;
        size_t k = 1;
        while (k < len && (p[k] & 0xc0) == 0x80)
            k++;
        p += k == len ? len : 1;
    }
}

/* ---- JSON helpers (Go's encoding/json behaviour, as far as it matters) ----------------- */

static const char *jtype(const json_val *v)
{
    switch (json_val_kind(v)) {
    case JSON_KIND_OBJECT:
        return "object";
    case JSON_KIND_ARRAY:
        return "array";
    case JSON_KIND_STRING:
        return "string";
    case JSON_KIND_INT:
    case JSON_KIND_REAL:
        return "number";
    case JSON_KIND_BOOL:
        return "bool";
    default:
        return "null";
    }
}

/* A field of obj: the exact key, else a case-insensitive match (Go's
 * decoder accepts both). NULL when absent or JSON null. */
static const json_val *jfield(const json_val *obj, const char *name)
{
    const json_val *v = json_val_get(obj, name);
    if (!v) {
        json_iter it = {0};
        const char *k;
        const json_val *x;
        while (json_val_next(obj, &it, &k, &x)) {
            if (strcasecmp(k, name) == 0) {
                v = x;
                break;
            }
        }
    }
    return v && !json_val_is_null(v) ? v : NULL;
}

static void type_err(buf *err, const json_val *v, const char *field, const char *go_type)
{
    buf_printf(err, "json: cannot unmarshal %s into Go struct field %s of type %s", jtype(v), field,
               go_type);
}

/* A string field: absent or null -> "" (Go leaves the zero value). */
static int jstr(const json_val *obj, const char *name, const char *field, const char **out,
                buf *err)
{
    const json_val *v = jfield(obj, name);
    *out = "";
    if (!v) return 0;
    if (!json_val_is_string(v)) {
        type_err(err, v, field, "string");
        return -EINVAL;
    }
    *out = json_val_string(v, NULL);
    return 0;
}

static int jbool(const json_val *obj, const char *name, const char *field, bool *out, buf *err)
{
    const json_val *v = jfield(obj, name);
    *out = false;
    if (!v) return 0;
    if (!json_val_is_bool(v)) {
        type_err(err, v, field, "bool");
        return -EINVAL;
    }
    *out = json_val_is_true(v);
    return 0;
}

static int juint16(const json_val *obj, const char *name, const char *field, unsigned *out,
                   buf *err)
{
    const json_val *v = jfield(obj, name);
    *out = 0;
    if (!v) return 0;
    int64_t i;
    if (!json_val_is_int(v) || json_val_int64(v, &i) < 0 || i < 0 || i > 65535) {
        type_err(err, v, field, "uint16");
        return -EINVAL;
    }
    *out = (unsigned)i;
    return 0;
}

/* A map[string]string field: NULL when absent or null. */
static int jstrmap(const json_val *obj, const char *name, const char *field, const json_val **out,
                   buf *err)
{
    const json_val *v = jfield(obj, name);
    *out = NULL;
    if (!v) return 0;
    if (!json_val_is_object(v)) {
        type_err(err, v, field, "map[string]string");
        return -EINVAL;
    }
    json_iter it = {0};
    const json_val *x;
    while (json_val_next(v, &it, NULL, &x)) {
        if (!json_val_is_string(x) && !json_val_is_null(x)) {
            type_err(err, x, field, "string");
            return -EINVAL;
        }
    }
    *out = v;
    return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of a JSON object, sorted (Go iterates maps in random order;
 * sorted keys make our output deterministic). Caller frees the array. */
static const char **sorted_keys(const json_val *obj, size_t *n)
{
    *n = json_val_len(obj);
    const char **keys = mem_calloc(*n + 1, sizeof *keys);
    size_t k = 0;
    json_iter it = {0};
    const char *key;
    while (json_val_next(obj, &it, &key, NULL))
        keys[k++] = key;
    qsort(keys, k, sizeof *keys, cmp_cstr);
    return keys;
}

/* ---- IP addresses (Go's netip.Addr) ----------------------------------------------------- */

#define IP_MAX 128

/* netip.Addr.String() of a parsed address. */
static void format_ip(int af, const unsigned char *a, const char *zone, char *out)
{
    if (af == AF_INET) {
        snprintf(out, IP_MAX, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
        return;
    }
    static const unsigned char v4in6[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    size_t o = 0;
    if (memcmp(a, v4in6, 12) == 0) {
        o = (size_t)snprintf(out, IP_MAX, "::ffff:%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
    } else {
        /* RFC 5952: the first longest run of two or more zero groups is "::". */
        unsigned g[8];
        for (int i = 0; i < 8; i++)
            g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        int best = -1, best_len = 0;
        for (int i = 0; i < 8;) {
            if (g[i] != 0) {
                i++;
                continue;
            }
            int j = i;
            while (j < 8 && g[j] == 0)
                j++;
            if (j - i > best_len && j - i >= 2) {
                best = i;
                best_len = j - i;
            }
            i = j;
        }
        for (int i = 0; i < 8; i++) {
            if (i == best) {
                o += (size_t)snprintf(out + o, IP_MAX - o, "::");
                i += best_len - 1;
                continue;
            }
            if (i > 0 && i != best + best_len) out[o++] = ':';
            o += (size_t)snprintf(out + o, IP_MAX - o, "%x", g[i]);
        }
        out[o] = '\0';
    }
    if (zone && *zone) snprintf(out + o, IP_MAX - o, "%%%s", zone);
}

/* netip.Addr's UnmarshalText: "" is the zero (invalid) address; anything
 * else must parse. Sets *valid and the String() form in out. Returns 0 or
 * -EINVAL with Go's message. */
static int parse_ip(const char *s, bool *valid, char *out, buf *err)
{
    *valid = false;
    out[0] = '\0';
    if (!*s) return 0;
    unsigned char a[16];
    const char *pct = strchr(s, '%');
    bool v6 = false;
    for (const char *p = s; *p; p++) {
        if (*p == '.') break;
        if (*p == ':') {
            v6 = true;
            break;
        }
    }
    char host[IP_MAX];
    size_t hl = pct ? (size_t)(pct - s) : strlen(s);
    if (hl >= sizeof host) goto bad;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (v6) {
        if (pct && !pct[1]) {
            buf_printf(err, "ParseAddr(\"%s\"): zone must be a non-empty string", s);
            return -EINVAL;
        }
        if (inet_pton(AF_INET6, host, a) != 1) goto bad;
        if (pct && strlen(pct + 1) >= IP_MAX / 2) goto bad;
        format_ip(AF_INET6, a, pct ? pct + 1 : NULL, out);
    } else {
        if (pct || inet_pton(AF_INET, host, a) != 1) goto bad;
        format_ip(AF_INET, a, NULL, out);
    }
    *valid = true;
    return 0;
bad:
    buf_printf(err, "ParseAddr(\"%s\"): unable to parse IP", s);
    return -EINVAL;
}

static int jip(const json_val *obj, const char *name, const char *field, bool *valid, char *out,
               buf *err)
{
    const json_val *v = jfield(obj, name);
    *valid = false;
    out[0] = '\0';
    if (!v) return 0;
    if (!json_val_is_string(v)) {
        type_err(err, v, field, "netip.Addr");
        return -EINVAL;
    }
    return parse_ip(json_val_string(v, NULL), valid, out, err);
}

/* Go's net.JoinHostPort. */
static void join_host_port(buf *out, const char *host, const char *port)
{
    if (strchr(host, ':'))
        buf_printf(out, "[%s]:%s", host, port);
    else
        buf_printf(out, "%s:%s", host, port);
}

/* ---- decoding the engine's answers ---------------------------------------------------- */

typedef struct dk_net {
    const char *key; /* the network's name in the container */
    bool nil;        /* JSON null: skipped, as Prometheus skips nil endpoints */
    const char *network_id;
    char ip[IP_MAX]; /* IPAddress, else GlobalIPv6Address, else "" */
} dk_net;

typedef struct dk_port {
    unsigned private_port, public_port;
    const char *type;
    char ip[IP_MAX]; /* "" when invalid */
} dk_port;

typedef struct dk_container {
    const char *id, *name, *image, *image_id, *network_mode; /* name NULL: no Names */
    const json_val *labels;
    dk_net *nets;
    size_t n_nets; /* every entry, nil ones included (len(networks) in Go) */
    dk_port *ports;
    size_t n_ports;
} dk_container;

typedef struct dk_network {
    const char *id;
    llist labels;
} dk_network;

static void containers_free(dk_container *cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mem_free(cs[i].nets);
        mem_free(cs[i].ports);
    }
    mem_free(cs);
}

static int decode_container(const json_val *c, dk_container *out, buf *err)
{
    memset(out, 0, sizeof *out);
    if (json_val_is_null(c)) return 0; /* a zero Summary: no names, skipped */
    if (!json_val_is_object(c)) {
        buf_printf(err, "json: cannot unmarshal %s into Go value of type container.Summary",
                   jtype(c));
        return -EINVAL;
    }
    if (jstr(c, "Id", "Summary.Id", &out->id, err) < 0) return -EINVAL;
    const json_val *names = jfield(c, "Names");
    if (names) {
        if (!json_val_is_array(names)) {
            type_err(err, names, "Summary.Names", "[]string");
            return -EINVAL;
        }
        for (size_t i = 0; i < json_val_len(names); i++) {
            const json_val *x = json_val_at(names, i);
            if (!json_val_is_string(x) && !json_val_is_null(x)) {
                type_err(err, x, "Summary.Names", "string");
                return -EINVAL;
            }
        }
        if (json_val_len(names) > 0) {
            const json_val *x = json_val_at(names, 0);
            out->name = json_val_is_string(x) ? json_val_string(x, NULL) : "";
        }
    }
    if (jstr(c, "Image", "Summary.Image", &out->image, err) < 0) return -EINVAL;
    if (jstr(c, "ImageID", "Summary.ImageID", &out->image_id, err) < 0) return -EINVAL;
    if (jstrmap(c, "Labels", "Summary.Labels", &out->labels, err) < 0) return -EINVAL;
    out->network_mode = "";
    const json_val *hc = jfield(c, "HostConfig");
    if (hc) {
        if (!json_val_is_object(hc)) {
            type_err(err, hc, "Summary.HostConfig", "struct { NetworkMode string }");
            return -EINVAL;
        }
        if (jstr(hc, "NetworkMode", "Summary.HostConfig.NetworkMode", &out->network_mode, err) < 0)
            return -EINVAL;
    }
    const json_val *ports = jfield(c, "Ports");
    if (ports) {
        if (!json_val_is_array(ports)) {
            type_err(err, ports, "Summary.Ports", "[]container.PortSummary");
            return -EINVAL;
        }
        size_t np = json_val_len(ports);
        out->ports = mem_calloc(np + 1, sizeof *out->ports);
        for (size_t i = 0; i < np; i++) {
            const json_val *p = json_val_at(ports, i);
            dk_port *dp = &out->ports[out->n_ports++];
            dp->type = "";
            if (json_val_is_null(p)) continue;
            if (!json_val_is_object(p)) {
                type_err(err, p, "Summary.Ports", "container.PortSummary");
                return -EINVAL;
            }
            bool valid;
            if (jip(p, "IP", "Summary.Ports.IP", &valid, dp->ip, err) < 0 ||
                juint16(p, "PrivatePort", "Summary.Ports.PrivatePort", &dp->private_port, err) <
                    0 ||
                juint16(p, "PublicPort", "Summary.Ports.PublicPort", &dp->public_port, err) < 0 ||
                jstr(p, "Type", "Summary.Ports.Type", &dp->type, err) < 0)
                return -EINVAL;
        }
    }
    const json_val *ns = jfield(c, "NetworkSettings");
    const json_val *nets = NULL;
    if (ns) {
        if (!json_val_is_object(ns)) {
            type_err(err, ns, "Summary.NetworkSettings", "container.NetworkSettingsSummary");
            return -EINVAL;
        }
        nets = jfield(ns, "Networks");
        if (nets && !json_val_is_object(nets)) {
            type_err(err, nets, "Summary.NetworkSettings.Networks",
                     "map[string]*network.EndpointSettings");
            return -EINVAL;
        }
    }
    size_t nn;
    const char **keys = sorted_keys(nets, &nn);
    out->nets = mem_calloc(nn + 1, sizeof *out->nets);
    for (size_t i = 0; i < nn; i++) {
        const json_val *e = json_val_get(nets, keys[i]);
        dk_net *dn = &out->nets[out->n_nets++];
        dn->key = keys[i];
        dn->network_id = "";
        if (json_val_is_null(e)) {
            dn->nil = true;
            continue;
        }
        if (!json_val_is_object(e)) {
            mem_free(keys);
            type_err(err, e, "Summary.NetworkSettings.Networks", "network.EndpointSettings");
            return -EINVAL;
        }
        bool v4, v6;
        char ip6[IP_MAX];
        if (jstr(e, "NetworkID", "EndpointSettings.NetworkID", &dn->network_id, err) < 0 ||
            jip(e, "IPAddress", "EndpointSettings.IPAddress", &v4, dn->ip, err) < 0 ||
            jip(e, "GlobalIPv6Address", "EndpointSettings.GlobalIPv6Address", &v6, ip6, err) < 0) {
            mem_free(keys);
            return -EINVAL;
        }
        if (!v4 && v6) memcpy(dn->ip, ip6, sizeof ip6);
    }
    mem_free(keys);
    return 0;
}

/* Parses GET /containers/json. On success *root holds the JSON the
 * containers borrow from. */
static int decode_containers(const char *body, size_t len, json_doc **root, dk_container **out,
                             size_t *n, buf *err)
{
    json_read_error je;
    json_doc *doc = json_doc_parse(body, len, DISCOVERY_DOCKER_MAX_BODY,
                                   JSON_READ_ANY | JSON_READ_ALLOW_NUL, &je);
    const json_val *j = json_doc_root(doc);
    *out = NULL;
    *n = 0;
    if (!doc) {
        buf_printf(err, "%s (line %d, column %d)", je.text, je.line, je.column);
        return -EINVAL;
    }
    if (!json_val_is_array(j) && !json_val_is_null(j)) {
        buf_printf(err, "json: cannot unmarshal %s into Go value of type []container.Summary",
                   jtype(j));
        json_doc_free(doc);
        return -EINVAL;
    }
    size_t nc = json_val_is_array(j) ? json_val_len(j) : 0;
    dk_container *cs = mem_calloc(nc + 1, sizeof *cs);
    for (size_t i = 0; i < nc; i++) {
        if (decode_container(json_val_at(j, i), &cs[i], err) < 0) {
            containers_free(cs, i + 1);
            json_doc_free(doc);
            return -EINVAL;
        }
    }
    *root = doc;
    *out = cs;
    *n = nc;
    return 0;
}

static void networks_free(dk_network *ns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ll_cleanup(&ns[i].labels);
    mem_free(ns);
}

/* Parses GET /networks into each network's labels (Prometheus's
 * getNetworksLabels). */
static int decode_networks(const char *body, size_t len, json_doc **root, dk_network **out,
                           size_t *n, buf *err)
{
    json_read_error je;
    json_doc *doc = json_doc_parse(body, len, DISCOVERY_DOCKER_MAX_BODY,
                                   JSON_READ_ANY | JSON_READ_ALLOW_NUL, &je);
    const json_val *j = json_doc_root(doc);
    *out = NULL;
    *n = 0;
    if (!doc) {
        buf_printf(err, "%s (line %d, column %d)", je.text, je.line, je.column);
        return -EINVAL;
    }
    if (!json_val_is_array(j) && !json_val_is_null(j)) {
        buf_printf(err, "json: cannot unmarshal %s into Go value of type []network.Summary",
                   jtype(j));
        json_doc_free(doc);
        return -EINVAL;
    }
    size_t nn = json_val_is_array(j) ? json_val_len(j) : 0;
    dk_network *ns = mem_calloc(nn + 1, sizeof *ns);
    size_t k = 0;
    buf name;
    buf_init(&name, BUF_UNLIMITED);
    int rc = 0;
    for (size_t i = 0; i < nn && rc == 0; i++) {
        const json_val *o = json_val_at(j, i);
        if (json_val_is_null(o)) continue; /* a zero Summary: ID "" */
        if (!json_val_is_object(o)) {
            buf_printf(err, "json: cannot unmarshal %s into Go value of type network.Summary",
                       jtype(o));
            rc = -EINVAL;
            break;
        }
        const char *id, *nm, *scope;
        bool internal, ingress;
        const json_val *labels;
        if (jstr(o, "Id", "Summary.Id", &id, err) < 0 ||
            jstr(o, "Name", "Summary.Name", &nm, err) < 0 ||
            jstr(o, "Scope", "Summary.Scope", &scope, err) < 0 ||
            jbool(o, "Internal", "Summary.Internal", &internal, err) < 0 ||
            jbool(o, "Ingress", "Summary.Ingress", &ingress, err) < 0 ||
            jstrmap(o, "Labels", "Summary.Labels", &labels, err) < 0) {
            rc = -EINVAL;
            break;
        }
        /* A repeated ID replaces the earlier entry in the index (a Go
         * map), built by the caller. */
        dk_network *dn = &ns[k++];
        dn->id = id;
        ll_set(&dn->labels, META "network_id", id);
        ll_set(&dn->labels, META "network_name", nm);
        ll_set(&dn->labels, META "network_scope", scope);
        ll_set(&dn->labels, META "network_internal", internal ? "true" : "false");
        ll_set(&dn->labels, META "network_ingress", ingress ? "true" : "false");
        size_t nk;
        const char **keys = sorted_keys(labels, &nk);
        for (size_t l = 0; l < nk; l++) {
            buf_reset(&name);
            buf_puts(&name, META "network_label_");
            sanitize_label_name(&name, keys[l]);
            const char *v = json_val_string(json_val_get(labels, keys[l]), NULL);
            ll_set(&dn->labels, buf_cstr(&name), v ? v : "");
        }
        mem_free(keys);
    }
    buf_cleanup(&name);
    if (rc < 0) {
        networks_free(ns, k);
        json_doc_free(doc);
        return rc;
    }
    *root = doc;
    *out = ns;
    *n = k;
    return 0;
}

/* ---- building targets ------------------------------------------------------------------- */

typedef struct tbuild {
    discovery_docker_target *v;
    size_t n, cap;
} tbuild;

static void emit(tbuild *tb, llist *l)
{
    tb->v = mem_grow(tb->v, sizeof *tb->v, tb->n + 1, &tb->cap);
    tb->v[tb->n].labels = ll_finish(l, &tb->v[tb->n].n);
    tb->n++;
}

int discovery_docker_build(const config_docker_sd *sd, const char *containers,
                           size_t containers_len, const char *networks, size_t networks_len,
                           discovery_docker_target **out, size_t *n, buf *err)
{
    json_doc *cj = NULL, *nj = NULL;
    dk_container *cs = NULL;
    dk_network *ns = NULL;
    size_t nc = 0, nn = 0;
    *out = NULL;
    *n = 0;
    buf e;
    buf_init(&e, 4096);
    if (decode_containers(containers, containers_len, &cj, &cs, &nc, &e) < 0) {
        buf_printf(err, "error while listing containers: %s", buf_cstr(&e));
        buf_cleanup(&e);
        return -EINVAL;
    }
    if (decode_networks(networks, networks_len, &nj, &ns, &nn, &e) < 0) {
        buf_printf(err, "error while computing network labels: %s", buf_cstr(&e));
        buf_cleanup(&e);
        containers_free(cs, nc);
        json_doc_free(cj);
        return -EINVAL;
    }
    buf_cleanup(&e);
    /* Networks and containers by ID (Go maps: a later entry wins). */
    hmap netidx, cidx;
    hmap_init(&netidx);
    hmap_init(&cidx);
    for (size_t i = 0; i < nn; i++)
        id_put(&netidx, ns[i].id, &ns[i]);
    for (size_t i = 0; i < nc; i++) {
        if (cs[i].id) id_put(&cidx, cs[i].id, &cs[i]);
    }

    char port_s[32], priv_s[16], pub_s[16];
    snprintf(port_s, sizeof port_s, "%llu", (unsigned long long)(uint64_t)sd->port);
    tbuild tb = {0};
    buf tmp;
    buf_init(&tmp, BUF_UNLIMITED);
    for (size_t i = 0; i < nc; i++) {
        const dk_container *c = &cs[i];
        if (!c->name) continue;
        llist common = {0};
        ll_set(&common, META "container_id", c->id ? c->id : "");
        ll_set(&common, META "container_name", c->name);
        ll_set(&common, META "container_network_mode", c->network_mode);
        if (*c->image) ll_set(&common, META "container_image", c->image);
        if (*c->image_id) ll_set(&common, META "container_image_id", c->image_id);
        size_t nk;
        const char **keys = sorted_keys(c->labels, &nk);
        for (size_t l = 0; l < nk; l++) {
            buf_reset(&tmp);
            buf_puts(&tmp, META "container_label_");
            sanitize_label_name(&tmp, keys[l]);
            const char *v = json_val_string(json_val_get(c->labels, keys[l]), NULL);
            ll_set(&common, buf_cstr(&tmp), v ? v : "");
        }
        mem_free(keys);

        /* Shared networks ("container:<id>"): follow the chain until a
         * container with networks (bounded, where Prometheus would loop
         * forever on a cycle). */
        const dk_net *nets = c->nets;
        size_t n_nets = c->n_nets;
        if (n_nets == 0) {
            const char *mode = c->network_mode;
            for (size_t hops = 0;
                 hops <= nc && hops < MAX_SHARED_HOPS && strncmp(mode, "container:", 10) == 0;
                 hops++) {
                const dk_container *o = id_get(&cidx, mode + 10);
                if (!o) break;
                nets = o->nets;
                n_nets = o->n_nets;
                mode = o->network_mode;
                if (n_nets > 0) break;
            }
        }
        /* match_first_network: the first non-nil network by name (nets are
         * sorted by name already). */
        size_t first = 0, last = n_nets;
        if (sd->match_first_network && n_nets > 1) {
            for (size_t k = 0; k < n_nets; k++) {
                if (!nets[k].nil) {
                    first = k;
                    last = k + 1;
                    break;
                }
            }
        }
        for (size_t k = first; k < last; k++) {
            const dk_net *nw = &nets[k];
            if (nw->nil) continue;
            const dk_network *dnw = id_get(&netidx, nw->network_id);
            const llist *nl = dnw ? &dnw->labels : NULL;
            bool added = false;
            for (size_t p = 0; p < c->n_ports; p++) {
                const dk_port *pt = &c->ports[p];
                if (strcmp(pt->type, "tcp") != 0) continue;
                llist t = {0};
                snprintf(priv_s, sizeof priv_s, "%u", pt->private_port);
                ll_set(&t, META "network_ip", nw->ip);
                ll_set(&t, META "port_private", priv_s);
                if (pt->public_port > 0) {
                    snprintf(pub_s, sizeof pub_s, "%u", pt->public_port);
                    ll_set(&t, META "port_public", pub_s);
                    ll_set(&t, META "port_public_ip", pt->ip);
                }
                ll_set_all(&t, &common);
                ll_set_all(&t, nl);
                buf_reset(&tmp);
                join_host_port(&tmp, nw->ip, priv_s);
                ll_set(&t, "__address__", buf_cstr(&tmp));
                emit(&tb, &t);
                added = true;
            }
            if (!added) {
                llist t = {0};
                ll_set(&t, META "network_ip", nw->ip);
                ll_set_all(&t, &common);
                ll_set_all(&t, nl);
                buf_reset(&tmp);
                if (strcmp(c->network_mode, "host") != 0)
                    join_host_port(&tmp, nw->ip, port_s);
                else
                    buf_puts(&tmp, sd->host_networking_host ? sd->host_networking_host : "");
                ll_set(&t, "__address__", buf_cstr(&tmp));
                emit(&tb, &t);
            }
        }
        ll_cleanup(&common);
    }
    buf_cleanup(&tmp);
    id_index_cleanup(&netidx);
    id_index_cleanup(&cidx);
    containers_free(cs, nc);
    networks_free(ns, nn);
    json_doc_free(cj);
    json_doc_free(nj);
    *out = tb.v;
    *n = tb.n;
    return 0;
}

void discovery_docker_targets_free(discovery_docker_target *t, size_t n)
{
    if (!t) return;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < t[i].n; k++) {
            mem_free(t[i].labels[k].name);
            mem_free(t[i].labels[k].value);
        }
        mem_free(t[i].labels);
    }
    mem_free(t);
}

config_target_group *discovery_docker_groups(const discovery_docker_target *t, size_t n)
{
    config_target_group *g = mem_calloc(n + 1, sizeof *g);
    for (size_t i = 0; i < n; i++) {
        labels_builder lb;
        labels_builder_init(&lb);
        const char *addr = "";
        for (size_t k = 0; k < t[i].n; k++) {
            const discovery_docker_label *l = &t[i].labels[k];
            if (strcmp(l->name, "__address__") == 0) {
                addr = l->value;
                continue;
            }
            labels_builder_set(&lb, l->name, strlen(l->name), l->value, strlen(l->value));
        }
        g[i].labels = labels_builder_finish(&lb, NULL);
        labels_builder_cleanup(&lb);
        g[i].targets = mem_calloc(2, sizeof *g[i].targets);
        g[i].targets[0] = mem_strdup(addr);
        g[i].n_targets = 1;
        g[i].source = mem_strdup("Docker");
    }
    return g;
}

void discovery_docker_groups_free(config_target_group *g, size_t n)
{
    if (!g) return;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < g[i].n_targets; k++)
            mem_free(g[i].targets[k]);
        mem_free(g[i].targets);
        labels_free(g[i].labels);
        mem_free(g[i].source);
    }
    mem_free(g);
}

/* ---- the request ------------------------------------------------------------------------ */

/* A JSON string as Go's encoding/json writes it (HTML-safe escaping,
 * invalid UTF-8 as U+FFFD). */
static void go_json_string(buf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    buf_putc(out, '"');
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char ch = *p;
        if (ch < 0x80) {
            if (ch == '"' || ch == '\\') {
                buf_putc(out, '\\');
                buf_putc(out, (char)ch);
            } else if (ch == '\n') {
                buf_puts(out, "\\n");
            } else if (ch == '\r') {
                buf_puts(out, "\\r");
            } else if (ch == '\t') {
                buf_puts(out, "\\t");
            } else if (ch == '\b') {
                buf_puts(out, "\\b");
            } else if (ch == '\f') {
                buf_puts(out, "\\f");
            } else if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&') {
                buf_printf(out, "\\u00%c%c", hex[ch >> 4], hex[ch & 15]);
            } else {
                buf_putc(out, (char)ch);
            }
            p++;
            continue;
        }
        /* A UTF-8 sequence: validate it. */
        size_t len = ch >= 0xc2 && ch < 0xe0   ? 2
                     : ch >= 0xe0 && ch < 0xf0 ? 3
                     : ch >= 0xf0 && ch < 0xf5 ? 4
                                               : 0;
        uint32_t cp = len == 2 ? ch & 0x1f : len == 3 ? ch & 0x0f : ch & 0x07;
        bool ok = len > 0;
        for (size_t k = 1; ok && k < len; k++) {
            if ((p[k] & 0xc0) != 0x80)
                ok = false;
            else
                cp = cp << 6 | (p[k] & 0x3f);
        }
        if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
            ok = false;
        if (!ok) {
            buf_puts(out, "\\ufffd");
            p++;
            continue;
        }
        if (cp == 0x2028 || cp == 0x2029) {
            buf_printf(out, "\\u%04x", cp);
        } else {
            buf_append(out, (const char *)p, len);
        }
        p += len;
    }
    buf_putc(out, '"');
}

static void query_escape(buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_putc(out, (char)c);
        } else if (c == ' ') {
            buf_putc(out, '+');
        } else {
            buf_putc(out, '%');
            buf_putc(out, hex[c >> 4]);
            buf_putc(out, hex[c & 15]);
        }
    }
}

void discovery_docker_filters_query(const config_docker_sd *sd, buf *out)
{
    /* Distinct names that have at least one value, sorted; for each, its
     * distinct values sorted (client.Filters is map[string]map[string]bool). */
    size_t nv = 0;
    for (size_t i = 0; i < sd->n_filters; i++)
        nv += sd->filters[i].n_values;
    if (nv == 0) return;
    const char **names = mem_calloc(sd->n_filters + 1, sizeof *names);
    size_t nn = 0;
    for (size_t i = 0; i < sd->n_filters; i++) {
        if (sd->filters[i].n_values > 0) names[nn++] = sd->filters[i].name;
    }
    qsort(names, nn, sizeof *names, cmp_cstr);
    const char **vals = mem_calloc(nv + 1, sizeof *vals);
    buf js;
    buf_init(&js, BUF_UNLIMITED);
    buf_putc(&js, '{');
    for (size_t i = 0; i < nn; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0) continue;
        size_t k = 0;
        for (size_t f = 0; f < sd->n_filters; f++) {
            if (strcmp(sd->filters[f].name, names[i]) != 0) continue;
            for (size_t v = 0; v < sd->filters[f].n_values; v++)
                vals[k++] = sd->filters[f].values[v];
        }
        qsort(vals, k, sizeof *vals, cmp_cstr);
        if (js.len > 1) buf_putc(&js, ',');
        go_json_string(&js, names[i]);
        buf_puts(&js, ":{");
        for (size_t v = 0; v < k; v++) {
            if (v > 0 && strcmp(vals[v], vals[v - 1]) == 0) continue;
            if (v > 0) buf_putc(&js, ',');
            go_json_string(&js, vals[v]);
            buf_puts(&js, ":true");
        }
        buf_putc(&js, '}');
    }
    buf_putc(&js, '}');
    buf_puts(out, "filters=");
    query_escape(out, js.data, js.len);
    buf_cleanup(&js);
    mem_free(vals);
    mem_free(names);
}

int discovery_docker_endpoint(const char *host, buf *base, buf *socket, bool *use_http_config,
                              buf *err)
{
    const char *sep = strstr(host, "://");
    *use_http_config = false;
    if (!sep || !sep[3]) {
        buf_printf(err, "unable to parse docker host `%s`", host);
        return -EINVAL;
    }
    size_t plen = (size_t)(sep - host);
    const char *addr = sep + 3;
    if (plen == 4 && memcmp(host, "unix", 4) == 0) {
        buf_puts(base, "http://api.moby.localhost");
        buf_puts(socket, addr);
        return 0;
    }
    bool tcp = plen == 3 && memcmp(host, "tcp", 3) == 0;
    bool http = plen == 4 && memcmp(host, "http", 4) == 0;
    bool https = plen == 5 && memcmp(host, "https", 5) == 0;
    if (!tcp && !http && !https) {
        buf_printf(err,
                   "unsupported docker host protocol \"%.*s\" in `%s` (sidewatch connects over "
                   "unix, tcp, http and https)",
                   (int)plen, host, host);
        return -EINVAL;
    }
    /* host:port, then an optional base path (the client keeps it). */
    size_t alen = strcspn(addr, "/?#");
    const char *path = addr + alen;
    size_t path_len = strcspn(path, "?#");
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    buf_printf(base, "%s://%.*s%.*s", https ? "https" : "http", (int)alen, addr, (int)path_len,
               path);
    *use_http_config = http || https;
    return 0;
}

/* ---- the discoverer -------------------------------------------------------------------- */

struct discovery_docker {
    config *cfg;
    const config_docker_sd *sd;
    char *job;
    buf base, socket;
    bool use_http_config;
    char *query;          /* "?filters=..." or "" */
    char api_version[32]; /* "" until negotiated */
    httpc *http;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    int notify_fd;
    pthread_mutex_t mu;
    config_target_group *groups; /* published, not taken yet */
    size_t n_groups;
    bool fresh;
    uint64_t published_hash;
    bool published;
    atomic_uint_fast64_t refreshes, failures;
    registry_metric *m_refreshes, *m_failures, *m_duration;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct fetch_result {
    bool done;
    int result; /* enum httpc_result */
    long status;
    char *error;
    char *body;
    size_t len;
} fetch_result;

static void fetch_result_cleanup(fetch_result *r)
{
    mem_free(r->error);
    mem_free(r->body);
    memset(r, 0, sizeof *r);
}

static void on_fetch_done(void *ctx, const httpc_response *resp)
{
    fetch_result *r = ctx;
    r->done = true;
    r->result = resp->result;
    r->status = resp->status;
    r->error = resp->error ? mem_strdup(resp->error) : NULL;
    r->body = mem_malloc(resp->body_len + 1);
    memcpy(r->body, resp->body, resp->body_len);
    r->body[resp->body_len] = '\0';
    r->len = resp->body_len;
}

/* GET base+path on this thread, driving httpc until it completes or the
 * discoverer stops. Returns 0 when a response arrived (any status), else
 * -EIO with the reason in err. */
static int fetch(discovery_docker *d, const char *path, fetch_result *r, buf *err)
{
    memset(r, 0, sizeof *r);
    buf url;
    buf_init(&url, BUF_UNLIMITED);
    buf_printf(&url, "%s%s", buf_cstr(&d->base), path);
    const config_http_client *hc = &d->sd->http;
    char *user = NULL, *pass = NULL, *cred = NULL;
    char *auth_h = NULL;
    const char *headers[2] = {NULL, NULL};
    httpc_request req = {
        .url = buf_cstr(&url),
        .unix_socket = d->socket.len ? buf_cstr(&d->socket) : NULL,
        .timeout_ms = d->sd->refresh_interval_ms,
        .body_limit = DISCOVERY_DOCKER_MAX_BODY,
        .gzip = true,
    };
    if (d->use_http_config) {
        if (hc->has_authorization) {
            cred = config_read_secret(&hc->authorization_credentials);
            size_t n = strlen(cred ? cred : "") + 64 +
                       strlen(hc->authorization_type ? hc->authorization_type : "Bearer");
            auth_h = mem_malloc(n);
            snprintf(auth_h, n, "Authorization: %s %s",
                     hc->authorization_type ? hc->authorization_type : "Bearer", cred ? cred : "");
            headers[0] = auth_h;
            req.headers = headers;
        }
        if (hc->has_basic_auth) {
            user = hc->basic_auth_username_file
                       ? config_read_secret(&(config_secret){NULL, hc->basic_auth_username_file})
                       : mem_strdup(hc->basic_auth_username ? hc->basic_auth_username : "");
            pass = config_read_secret(&hc->basic_auth_password);
            req.basic_user = user;
            req.basic_password = pass;
        }
        req.tls_ca_file = hc->tls_ca_file;
        req.tls_cert_file = hc->tls_cert_file;
        req.tls_key_file = hc->tls_key_file;
        req.tls_server_name = hc->tls_server_name;
        req.tls_insecure_skip_verify = hc->tls_insecure_skip_verify;
        req.follow_redirects = hc->follow_redirects;
    }
    httpc_transfer *t = NULL;
    int rc = httpc_start(d->http, &req, on_fetch_done, r, &t);
    if (cred) {
        memset(cred, 0, strlen(cred));
        mem_free(cred);
    }
    if (auth_h) {
        memset(auth_h, 0, strlen(auth_h));
        mem_free(auth_h);
    }
    if (pass) {
        memset(pass, 0, strlen(pass));
        mem_free(pass);
    }
    mem_free(user);
    if (rc < 0) {
        buf_printf(err, "cannot start the request to %s: %s", buf_cstr(&url), strerror(-rc));
        buf_cleanup(&url);
        return -EIO;
    }
    while (!r->done) {
        if (atomic_load(&d->stop)) {
            httpc_cancel(d->http, t);
            break;
        }
        /* Short polls: httpc_poll polls even when its first
         * curl_multi_perform already finished the transfer, and then
         * sleeps the whole timeout before reporting it. */
        httpc_poll(d->http, FETCH_POLL_MS, -1);
    }
    if (r->result != HTTPC_OK) {
        if (d->socket.len && r->result == HTTPC_ERR_CONNECT)
            buf_printf(err,
                       "Cannot connect to the Docker daemon at %s. Is the docker daemon running? "
                       "(%s)",
                       d->sd->host, r->error ? r->error : "connection failed");
        else
            buf_printf(err, "GET %s: %s", buf_cstr(&url), r->error ? r->error : "failed");
        buf_cleanup(&url);
        return -EIO;
    }
    buf_cleanup(&url);
    return 0;
}

/* The daemon's error for a non-2xx answer, as the Go client words it. */
static void daemon_error(const fetch_result *r, buf *err)
{
    json_doc *j = json_doc_parse(r->body, r->len, DISCOVERY_DOCKER_MAX_BODY, JSON_READ_ANY, NULL);
    const char *m = json_val_string(json_val_get(json_doc_root(j), "message"), NULL);
    if (m) {
        buf_printf(err, "Error response from daemon: %s", m);
    } else {
        size_t n = r->len;
        while (n > 0 && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
            n--;
        if (n > 512) n = 512;
        if (n > 0)
            buf_printf(err, "Error response from daemon: %.*s", (int)n, r->body);
        else
            buf_printf(err, "request returned %ld %s for API route and version", r->status,
                       r->status == 404 ? "Not Found" : "status");
    }
    json_doc_free(j);
}

/* "1.41" -> 1041; -1 when not <major>.<minor>. */
static long api_number(const char *v)
{
    char *end;
    if (!v || *v < '0' || *v > '9') return -1;
    long major = strtol(v, &end, 10);
    if (*end != '.' || end[1] < '0' || end[1] > '9') return -1;
    long minor = strtol(end + 1, &end, 10);
    if (*end || major > 1000 || minor > 999) return -1;
    return major * 1000 + minor;
}

/* Negotiates the API version once, as the moby client does: min(engine,
 * DISCOVERY_DOCKER_MAX_API); an engine that does not say keeps the
 * maximum; one older than DISCOVERY_DOCKER_MIN_API is not negotiated (the
 * requests then ask for the maximum and the engine refuses them, as with
 * Prometheus). A connection failure leaves it for the next refresh. */
static void negotiate(discovery_docker *d)
{
    if (d->api_version[0]) return;
    fetch_result r;
    buf err;
    buf_init(&err, 4096);
    if (fetch(d, "/version", &r, &err) < 0) {
        buf_cleanup(&err);
        fetch_result_cleanup(&r);
        return; /* the listing reports the connection failure */
    }
    buf_cleanup(&err);
    const char *ver = NULL;
    json_doc *j =
        r.status == 200 ? json_doc_parse(r.body, r.len, DISCOVERY_DOCKER_MAX_BODY, 0, NULL) : NULL;
    ver = json_val_string(json_val_get(json_doc_root(j), "ApiVersion"), NULL);
    long num = api_number(ver);
    if (!ver || !*ver) {
        snprintf(d->api_version, sizeof d->api_version, "%s", DISCOVERY_DOCKER_MAX_API);
    } else if (num < 0 || num < api_number(DISCOVERY_DOCKER_MIN_API)) {
        log_warn("discovery",
                 "job %s: docker_sd: API version %s of %s is not supported: the minimum supported "
                 "API version is %s",
                 d->job, ver, d->sd->host, DISCOVERY_DOCKER_MIN_API);
    } else if (num < api_number(DISCOVERY_DOCKER_MAX_API)) {
        snprintf(d->api_version, sizeof d->api_version, "%ld.%ld", num / 1000, num % 1000);
    } else {
        snprintf(d->api_version, sizeof d->api_version, "%s", DISCOVERY_DOCKER_MAX_API);
    }
    if (d->api_version[0])
        log_debug("discovery", "job %s: docker_sd: %s speaks API %s, using %s", d->job, d->sd->host,
                  ver ? ver : "(unknown)", d->api_version);
    json_doc_free(j);
    fetch_result_cleanup(&r);
}

static uint64_t targets_hash(const discovery_docker_target *t, size_t n)
{
    uint64_t h = 0x5bd1e995u ^ n;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < t[i].n; k++) {
            h = strutil_hash64(t[i].labels[k].name, strlen(t[i].labels[k].name), h);
            h = strutil_hash64(t[i].labels[k].value, strlen(t[i].labels[k].value) + 1, h);
        }
        h = h * 31 + 7;
    }
    return h;
}

/* Rewrites err as "<prefix>: <err>". */
static void prefix_error(buf *err, const char *prefix)
{
    buf msg;
    buf_init(&msg, BUF_UNLIMITED);
    buf_printf(&msg, "%s: %s", prefix, buf_cstr(err));
    buf_reset(err);
    buf_puts(err, buf_cstr(&msg));
    buf_cleanup(&msg);
}

/* GET path, requiring a 2xx answer. Returns 0, or -1 with the reason in
 * err prefixed by `what`. */
static int get_ok(discovery_docker *d, const char *path, fetch_result *r, const char *what,
                  buf *err)
{
    int rc = fetch(d, path, r, err);
    if (rc == 0 && (r->status < 200 || r->status > 299)) {
        daemon_error(r, err);
        rc = -1;
    }
    if (rc < 0) prefix_error(err, what);
    return rc < 0 ? -1 : 0;
}

/* Publishes the targets of a successful refresh if they changed. */
static void publish(discovery_docker *d, const discovery_docker_target *ts, size_t nt)
{
    uint64_t h = targets_hash(ts, nt);
    if (d->published && h == d->published_hash) return;
    config_target_group *g = discovery_docker_groups(ts, nt);
    pthread_mutex_lock(&d->mu);
    discovery_docker_groups_free(d->groups, d->n_groups);
    d->groups = g;
    d->n_groups = nt;
    d->fresh = true;
    pthread_mutex_unlock(&d->mu);
    d->published = true;
    d->published_hash = h;
    if (d->notify_fd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(d->notify_fd, &one, sizeof one);
        (void)w; /* a full eventfd is already readable */
    }
    log_debug("discovery", "job %s: docker_sd: %zu targets from %s", d->job, nt, d->sd->host);
}

/* One refresh: list, build, publish. Returns 0 or -1 (logged, counted). */
static int refresh(discovery_docker *d)
{
    int64_t start = mono_ms();
    negotiate(d);
    const char *ver = d->api_version[0] ? d->api_version : DISCOVERY_DOCKER_MAX_API;
    buf path, err;
    buf_init(&path, BUF_UNLIMITED);
    buf_init(&err, 4096);
    fetch_result cr = {0}, nr = {0};
    discovery_docker_target *ts = NULL;
    size_t nt = 0;
    int rc = -1;
    buf_printf(&path, "/v%s/containers/json%s", ver, d->query);
    if (get_ok(d, buf_cstr(&path), &cr, "error while listing containers", &err) == 0) {
        buf_reset(&path);
        buf_printf(&path, "/v%s/networks", ver);
        if (get_ok(d, buf_cstr(&path), &nr, "error while computing network labels", &err) == 0 &&
            discovery_docker_build(d->sd, cr.body, cr.len, nr.body, nr.len, &ts, &nt, &err) == 0) {
            rc = 0;
            publish(d, ts, nt);
            discovery_docker_targets_free(ts, nt);
        }
    }
    if (rc < 0 && !atomic_load(&d->stop)) {
        log_error("discovery", "job %s: docker_sd %s: Unable to refresh target groups: %s", d->job,
                  d->sd->host, buf_cstr(&err));
        atomic_fetch_add(&d->failures, 1);
        if (d->m_failures) registry_inc(d->m_failures);
    }
    atomic_fetch_add(&d->refreshes, 1);
    if (d->m_refreshes) registry_inc(d->m_refreshes);
    if (d->m_duration) registry_observe(d->m_duration, (double)(mono_ms() - start) / 1000.0);
    fetch_result_cleanup(&cr);
    fetch_result_cleanup(&nr);
    buf_cleanup(&path);
    buf_cleanup(&err);
    return rc;
}

static void *docker_thread(void *arg)
{
    discovery_docker *d = arg;
    int64_t every = d->sd->refresh_interval_ms;
    int64_t next = mono_ms();
    while (!atomic_load(&d->stop)) {
        int64_t now = mono_ms();
        if (now >= next) {
            refresh(d);
            /* A ticker: the next tick keeps the phase; ticks missed while
             * a refresh ran are dropped. */
            next += every;
            now = mono_ms();
            if (next <= now) next = now + every - (now - next) % every;
            continue;
        }
        int64_t wait = next - now;
        httpc_poll(d->http, wait > 1000 ? 1000 : (int)wait, -1);
    }
    return NULL;
}

discovery_docker *discovery_docker_new(config *cfg, const config_docker_sd *sd, const char *job,
                                       registry *reg, int notify_fd)
{
    discovery_docker *d = mem_calloc(1, sizeof *d);
    d->cfg = config_ref(cfg);
    d->sd = sd;
    d->job = mem_strdup(job ? job : "");
    d->notify_fd = notify_fd;
    buf_init(&d->base, BUF_UNLIMITED);
    buf_init(&d->socket, BUF_UNLIMITED);
    pthread_mutex_init(&d->mu, NULL);
    atomic_init(&d->stop, false);
    atomic_init(&d->refreshes, 0);
    atomic_init(&d->failures, 0);
    buf err;
    buf_init(&err, 4096);
    if (discovery_docker_endpoint(sd->host, &d->base, &d->socket, &d->use_http_config, &err) < 0) {
        log_error("discovery", "job %s: Cannot create service discovery: docker_sd: %s", d->job,
                  buf_cstr(&err));
        buf_cleanup(&err);
        discovery_docker_free(d);
        return NULL;
    }
    buf_cleanup(&err);
    buf q;
    buf_init(&q, BUF_UNLIMITED);
    discovery_docker_filters_query(sd, &q);
    if (q.len) {
        buf full;
        buf_init(&full, BUF_UNLIMITED);
        buf_printf(&full, "?%s", buf_cstr(&q));
        d->query = buf_detach(&full, NULL);
    } else {
        d->query = mem_strdup("");
    }
    buf_cleanup(&q);
    if (reg) {
        static const char *const ln[] = {"mechanism", NULL};
        static const char *const lv[] = {"docker", NULL};
        d->m_refreshes =
            registry_child(registry_counter(reg, "sidewatch_sd_refreshes_total",
                                            "Refreshes of service discovery mechanisms.", ln),
                           lv);
        d->m_failures = registry_child(
            registry_counter(reg, "sidewatch_sd_refresh_failures_total",
                             "Failed refreshes of service discovery mechanisms.", ln),
            lv);
        static const double bounds[] = {0.001, 0.01, 0.1, 1, 10};
        d->m_duration =
            registry_child(registry_histogram(reg, "sidewatch_sd_refresh_duration_seconds",
                                              "Duration of service discovery refreshes.", ln,
                                              bounds, sizeof bounds / sizeof bounds[0]),
                           lv);
    }
    d->http = httpc_new();
    if (!d->http || pthread_create(&d->thread, NULL, docker_thread, d) != 0) {
        log_error("discovery", "job %s: docker_sd: cannot start its thread", d->job);
        discovery_docker_free(d);
        return NULL;
    }
    d->started = true;
    return d;
}

void discovery_docker_free(discovery_docker *d)
{
    if (!d) return;
    if (d->started) {
        atomic_store(&d->stop, true);
        httpc_wakeup(d->http);
        pthread_join(d->thread, NULL);
    }
    httpc_free(d->http);
    discovery_docker_groups_free(d->groups, d->n_groups);
    pthread_mutex_destroy(&d->mu);
    buf_cleanup(&d->base);
    buf_cleanup(&d->socket);
    mem_free(d->query);
    mem_free(d->job);
    config_unref(d->cfg);
    mem_free(d);
}

bool discovery_docker_take(discovery_docker *d, config_target_group **out, size_t *n)
{
    pthread_mutex_lock(&d->mu);
    bool fresh = d->fresh;
    if (fresh) {
        *out = d->groups;
        *n = d->n_groups;
        d->groups = NULL;
        d->n_groups = 0;
        d->fresh = false;
    }
    pthread_mutex_unlock(&d->mu);
    return fresh;
}

static bool str_eq(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

static bool secret_eq(const config_secret *a, const config_secret *b)
{
    return str_eq(a->value, b->value) && str_eq(a->file, b->file);
}

static bool http_eq(const config_http_client *a, const config_http_client *b)
{
    return a->has_basic_auth == b->has_basic_auth &&
           str_eq(a->basic_auth_username, b->basic_auth_username) &&
           str_eq(a->basic_auth_username_file, b->basic_auth_username_file) &&
           secret_eq(&a->basic_auth_password, &b->basic_auth_password) &&
           a->has_authorization == b->has_authorization &&
           str_eq(a->authorization_type, b->authorization_type) &&
           secret_eq(&a->authorization_credentials, &b->authorization_credentials) &&
           a->has_oauth2 == b->has_oauth2 && str_eq(a->tls_ca_file, b->tls_ca_file) &&
           str_eq(a->tls_cert_file, b->tls_cert_file) && str_eq(a->tls_key_file, b->tls_key_file) &&
           str_eq(a->tls_server_name, b->tls_server_name) &&
           a->tls_insecure_skip_verify == b->tls_insecure_skip_verify &&
           str_eq(a->tls_min_version, b->tls_min_version) && str_eq(a->tls_ca, b->tls_ca) &&
           str_eq(a->tls_cert, b->tls_cert) && str_eq(a->tls_key, b->tls_key) &&
           str_eq(a->proxy_url, b->proxy_url) && a->follow_redirects == b->follow_redirects &&
           a->enable_http2 == b->enable_http2;
}

bool discovery_docker_same(const discovery_docker *d, const config_docker_sd *sd, const char *job)
{
    const config_docker_sd *a = d->sd;
    if (strcmp(d->job, job ? job : "") != 0 || !str_eq(a->host, sd->host) || a->port != sd->port ||
        !str_eq(a->host_networking_host, sd->host_networking_host) ||
        a->refresh_interval_ms != sd->refresh_interval_ms ||
        a->match_first_network != sd->match_first_network || a->n_filters != sd->n_filters ||
        !http_eq(&a->http, &sd->http))
        return false;
    for (size_t i = 0; i < a->n_filters; i++) {
        const config_param *x = &a->filters[i], *y = &sd->filters[i];
        if (!str_eq(x->name, y->name) || x->n_values != y->n_values) return false;
        for (size_t k = 0; k < x->n_values; k++) {
            if (!str_eq(x->values[k], y->values[k])) return false;
        }
    }
    return true;
}

uint64_t discovery_docker_refreshes(const discovery_docker *d)
{
    return atomic_load(&((discovery_docker *)d)->refreshes);
}

uint64_t discovery_docker_failures(const discovery_docker *d)
{
    return atomic_load(&((discovery_docker *)d)->failures);
}
