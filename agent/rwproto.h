/* rwproto: the Prometheus remote write 1.0 wire format: a
 * prometheus.WriteRequest protobuf message (prompb's remote.proto and
 * types.proto, written in agent/remote.proto and compiled with protoc-c at
 * build time), snappy block-compressed. The only user of the generated
 * remote-write code and of <snappy-c.h> (Debian's libsnappy).
 *
 * Encoding takes the caller's series and samples and produces the HTTP
 * body a sender POSTs (Content-Encoding: snappy, Content-Type:
 * application/x-protobuf, X-Prometheus-Remote-Write-Version: 0.1.0).
 * Decoding takes a received body and gives owned series, for the receiver.
 *
 * Native histograms go as prompb.Histogram (integer counts as deltas, or
 * float counts; spans; reset hint; custom values for schema -53). */
#ifndef SIDEWATCH_RWPROTO_H
#define SIDEWATCH_RWPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "expfmt.h"
#include "labels.h"
#include "nhist.h"

#define RWPROTO_CONTENT_TYPE "application/x-protobuf"
#define RWPROTO_VERSION "0.1.0"
/* Largest decompressed request the decoder accepts (Prometheus's receiver
 * has none; 32 MiB is 16x its default max_samples_per_send worth of big
 * series). */
#define RWPROTO_MAX_DECODED ((size_t)32 << 20)

typedef struct rwproto_sample {
    int64_t t;
    double v;
} rwproto_sample;

typedef struct rwproto_hsample {
    int64_t t;
    nhist h; /* encode: borrowed; decode: owned */
} rwproto_hsample;

typedef struct rwproto_exemplar {
    labels *ls; /* encode: borrowed; decode: owned */
    int64_t t;
    double v;
} rwproto_exemplar;

typedef struct rwproto_series {
    labels *ls; /* encode: borrowed (sorted, __name__ included); decode: owned */
    rwproto_sample *samples;
    size_t n_samples;
    rwproto_hsample *hists;
    size_t n_hists;
    rwproto_exemplar *exemplars;
    size_t n_exemplars;
} rwproto_series;

typedef struct rwproto_metadata {
    char *metric, *help, *unit; /* encode: borrowed; decode: owned */
    enum expfmt_type type;
} rwproto_metadata;

typedef struct rwproto_request {
    rwproto_series *series;
    size_t n_series;
    rwproto_metadata *metadata;
    size_t n_metadata;
} rwproto_request;

/* Encodes the request (its arrays borrowed) as a snappy-compressed
 * WriteRequest into out (replacing its content). Returns 0, or -ENOMEM /
 * -E2BIG (out's cap) with a message in err. */
int rwproto_encode(const rwproto_request *r, buf *out, buf *err);

/* Decodes a snappy-compressed WriteRequest body: *out (caller frees with
 * rwproto_request_cleanup) gets owned copies of everything. Returns 0, or
 * -EINVAL with the reason in err ("snappy: corrupt input", "decompressed
 * size 40 MiB exceeds the limit of 32 MiB", "protobuf: cannot decode the
 * WriteRequest", "series 3: label name \"\" is empty", "series 2: labels
 * not sorted", a histogram nhist_validate rejects, ...): nothing is
 * returned then. max_decoded 0 means RWPROTO_MAX_DECODED. */
int rwproto_decode(const void *body, size_t len, size_t max_decoded, rwproto_request *out,
                   buf *err);
void rwproto_request_cleanup(rwproto_request *r);

#endif
