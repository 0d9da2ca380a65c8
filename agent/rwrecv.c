/* rwrecv: the remote write 1.0 receiver (see rwrecv.h).
 *
 * What is a 400 (-EINVAL), following Prometheus's write handler
 * (storage/remote/write_handler.go, 3.x) where it can:
 * - everything rwproto_decode refuses: snappy, size, protobuf, labels,
 *   timestamps going backwards inside a series, invalid histograms (see
 *   rwproto.c for where this is stricter than Prometheus: it skips a series
 *   with bad labels, sidewatch refuses the request);
 * - a sample or histogram more than RWRECV_MAX_AHEAD_MS in the future
 *   (Prometheus's remoteWriteAppender: ErrOutOfBounds, a 400).
 * Checked before anything touches the store, so a 400 stores nothing.
 *
 * Out-of-order and duplicate samples: Prometheus's TSDB (without an
 * out-of-order window) fails the whole request with a 400 when a sample is
 * older than the series' newest one, or has its timestamp with another
 * value, so that the sender drops it instead of retrying. sidewatch's store
 * decides that only at commit, per sample: such samples are dropped and
 * counted (store_stats, as for scrapes) and the rest of the request is
 * stored with a 204. A sender resending a batch it already delivered (after
 * a timeout) thus gets a 204 and no duplicates, where Prometheus would
 * answer 400 unless the values are identical.
 *
 * Exemplars are stored with the batch (store_batch_add_exemplar: while
 * exemplar storage is on; duplicates are dropped silently, out-of-order
 * ones and labels over 128 runes are dropped and never fail the request,
 * as in Prometheus's handler, which logs them at debug level); a series
 * that only carries exemplars is created. Metadata is recorded with the
 * batch (latest wins). */
#include "rwrecv.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mem.h"
#include "rwproto.h"

/* Prometheus's maxAheadTime for remote write samples. */
#define RWRECV_MAX_AHEAD_MS (10 * 60 * 1000)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int check_ahead(const rwproto_request *r, int64_t max_t, buf *err)
{
    for (size_t i = 0; i < r->n_series; i++) {
        const rwproto_series *s = &r->series[i];
        for (size_t j = 0; j < s->n_samples; j++) {
            if (s->samples[j].t > max_t) {
                buf_printf(err,
                           "series %zu: out of bounds: sample timestamp %" PRId64
                           " is more than 10m ahead of the receiver's time",
                           i, s->samples[j].t);
                return -EINVAL;
            }
        }
        for (size_t j = 0; j < s->n_hists; j++) {
            if (s->hists[j].t > max_t) {
                buf_printf(err,
                           "series %zu: out of bounds: histogram timestamp %" PRId64
                           " is more than 10m ahead of the receiver's time",
                           i, s->hists[j].t);
                return -EINVAL;
            }
        }
    }
    return 0;
}

int rwrecv_append(store *st, const void *body, size_t len, buf *err)
{
    rwproto_request r;
    int rc = rwproto_decode(body, len, 0, &r, err);
    if (rc != 0) return -EINVAL;
    rc = check_ahead(&r, now_ms() + RWRECV_MAX_AHEAD_MS, err);
    if (rc != 0) {
        rwproto_request_cleanup(&r);
        return rc;
    }

    store_batch *b = store_batch_new(st);
    for (size_t i = 0; i < r.n_series; i++) {
        const rwproto_series *s = &r.series[i];
        if (s->n_samples == 0 && s->n_hists == 0 && s->n_exemplars == 0) continue;
        uint64_t ref = 0;
        bool created = false;
        rc = store_series_ref(st, s->ls, &ref, &created);
        if (rc < 0) {
            buf_printf(err, "store: cannot create series %zu: %s", i, strerror(-rc));
            goto fail;
        }
        for (size_t j = 0; j < s->n_samples; j++)
            store_batch_add(b, ref, s->samples[j].t, s->samples[j].v);
        for (size_t j = 0; j < s->n_hists; j++)
            store_batch_add_histogram(b, ref, s->hists[j].t, &s->hists[j].h);
        for (size_t j = 0; j < s->n_exemplars; j++)
            store_batch_add_exemplar(b, ref, s->exemplars[j].t, s->exemplars[j].v,
                                     s->exemplars[j].ls);
    }
    for (size_t i = 0; i < r.n_metadata; i++) {
        const rwproto_metadata *m = &r.metadata[i];
        if (!m->metric[0]) continue;
        store_batch_metadata(b, m->metric, m->type, m->help, m->unit);
    }
    rc = store_batch_commit(b);
    b = NULL;
    if (rc < 0) {
        buf_printf(err, "store: commit failed: %s", strerror(-rc));
        goto fail;
    }
    rwproto_request_cleanup(&r);
    return 0;

fail:
    store_batch_free(b);
    rwproto_request_cleanup(&r);
    log_error("remote-write", "%s", buf_cstr(err));
    return rc == -ENOSPC ? -ENOSPC : -EIO;
}
