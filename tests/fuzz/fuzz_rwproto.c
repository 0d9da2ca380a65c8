/* libFuzzer target for agent/rwproto's decoder. The first byte picks the
 * mode: bit 0 set, the rest is a raw prompb.WriteRequest that the target
 * wraps in a valid snappy block (literals only) so that the protobuf and
 * validation code is reached; bit 0 clear, the rest is the body as
 * received (snappy and all). Bit 1 sets a 4 KiB decompressed-size cap.
 * A decoded request must hold only valid histograms and sorted, named
 * label sets, and must survive an encode/decode round trip unchanged in
 * shape.
 *
 *   make fuzz-rwproto FUZZ_SECONDS=60
 * Seeds: tests/data/fuzz-seeds/rwproto, tests/data/fuzz-regressions/rwproto. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "labels.h"
#include "nhist.h"
#include "rwproto.h"

static void snappy_literal(buf *out, const uint8_t *raw, size_t n)
{
    size_t v = n;
    do {
        unsigned char c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        buf_putc(out, (char)c);
    } while (v);
    while (n > 0) {
        size_t k = n > 60 ? 60 : n;
        buf_putc(out, (char)((k - 1) << 2));
        buf_append(out, raw, k);
        raw += k, n -= k;
    }
}

static void check(const rwproto_request *r)
{
    for (size_t i = 0; i < r->n_series; i++) {
        const rwproto_series *s = &r->series[i];
        size_t nl = 0;
        if (!labels_metric_name(s->ls, &nl) || nl == 0) abort();
        for (size_t j = 0; j < s->n_hists; j++)
            if (nhist_validate(&s->hists[j].h, NULL, 0) != 0) abort();
        for (size_t j = 1; j < s->n_samples; j++)
            if (s->samples[j].t < s->samples[j - 1].t) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    buf body, err;
    buf_init(&body, BUF_UNLIMITED);
    buf_init(&err, 1 << 16);
    if (data[0] & 1)
        snappy_literal(&body, data + 1, size - 1);
    else
        buf_append(&body, data + 1, size - 1);
    size_t cap = (data[0] & 2) ? 4096 : 0;

    /* An exact-size copy so that ASan sees any overread. */
    uint8_t *copy = malloc(body.len ? body.len : 1);
    memcpy(copy, body.data ? body.data : "", body.len);
    rwproto_request r;
    int rc = rwproto_decode(copy, body.len, cap, &r, &err);
    free(copy);
    if (rc == 0) {
        check(&r);
        buf again;
        buf_init(&again, BUF_UNLIMITED);
        buf_reset(&err);
        if (rwproto_encode(&r, &again, &err) != 0) abort();
        rwproto_request r2;
        buf_reset(&err);
        if (rwproto_decode(again.data, again.len, 0, &r2, &err) != 0) abort();
        if (r2.n_series != r.n_series || r2.n_metadata != r.n_metadata) abort();
        for (size_t i = 0; i < r.n_series; i++) {
            if (!labels_equal(r.series[i].ls, r2.series[i].ls)) abort();
            if (r.series[i].n_samples != r2.series[i].n_samples) abort();
            if (r.series[i].n_hists != r2.series[i].n_hists) abort();
            if (r.series[i].n_exemplars != r2.series[i].n_exemplars) abort();
        }
        rwproto_request_cleanup(&r2);
        rwproto_request_cleanup(&r);
        buf_cleanup(&again);
    } else if (rc != -EINVAL || err.len == 0) {
        abort();
    }
    buf_cleanup(&body);
    buf_cleanup(&err);
    return 0;
}
