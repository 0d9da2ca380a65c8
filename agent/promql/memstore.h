/* promql/memstore: an in-memory set of series for the PromQL engine
 * (promql/eval.h's promql_queryable), for tests: the promqltest runner
 * (`sidewatch promql test`) and rule unit tests (`sidewatch test rules`).
 *
 * Series are identified by their label sets; each keeps its points sorted
 * by time. Appends may come in any order and from any number of loads: a
 * point at a timestamp the series already has replaces the old one.
 * Selection matches every series against the matchers (labels_match_all),
 * so it is linear in the number of series: fine for test data, not meant
 * for scraped data (that is the store's job).
 *
 * Native histogram samples (memstore_append_histogram) are kept with their
 * values; select() returns them as the series' histogram points
 * (promql_series.hpts) and counts them (memstore_histograms_selected).
 * Their counter reset hints come back as from Prometheus's head chunks
 * (what promqltest and promtool compare): gauge stays gauge; the first of
 * a run of histogram samples is unknown (reset if written so), each later
 * one unknown when FloatHistogram.DetectReset sees a reset (a new chunk,
 * whose hint Prometheus loses: its issue 15346), else not_reset.
 *
 * Not thread-safe: one owner. */
#ifndef SIDEWATCH_PROMQL_MEMSTORE_H
#define SIDEWATCH_PROMQL_MEMSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "labels.h"
#include "promql/eval.h"

/* Default cap on the points held (floats and histograms together); a test
 * file that would load more is refused rather than exhausting memory. */
#define MEMSTORE_DEFAULT_MAX_POINTS ((size_t)50 * 1000 * 1000)

typedef struct memstore memstore;

/* A new, empty store holding at most max_points points (0 = the default).
 * Caller frees with memstore_free(). */
memstore *memstore_new(size_t max_points);
/* Frees the store and every series; NULL is a no-op. Matrices already
 * returned by select() are owned by their callers and stay valid. */
void memstore_free(memstore *ms);
/* Drops every series (the promqltest `clear` command). */
void memstore_clear(memstore *ms);

/* Adds the float sample (t, v) to the series `ls` (borrowed; copied when
 * the series is new). A point already at t is replaced. StaleNaN
 * (strutil_stale_nan) is stored as is. Returns 0; -EINVAL with a message
 * appended to err for an empty label set; -E2BIG (store unchanged) when
 * the store already holds max_points points. */
int memstore_append(memstore *ms, const labels *ls, int64_t t, double v, buf *err);
/* memstore_append with the sample's start timestamp st (ms; 0 = unknown,
 * as memstore_append): the promqltest `@st` lines. */
int memstore_append_st(memstore *ms, const labels *ls, int64_t t, double v, int64_t st, buf *err);
/* Adds the native histogram sample (t, *h) to series `ls` (h borrowed and
 * copied), replacing a point at t (and replaced by a later append at t).
 * Errors as memstore_append. */
int memstore_append_histogram(memstore *ms, const labels *ls, int64_t t, const promql_fh *h,
                              buf *err);

/* Number of series and of points held. */
size_t memstore_series_count(const memstore *ms);
size_t memstore_point_count(const memstore *ms);

/* The promql_queryable select() callback; ctx is a memstore. Fills *out
 * (empty on entry; the caller owns what is put in it and frees it with
 * promql_matrix_cleanup) with copies of the series matching every matcher
 * that have points in [mint, maxt], with those points in time order
 * (floats in pts, histograms in hpts), sorted by labels (labels_compare).
 * A series gets start timestamps (promql_series.st) when one of its float
 * points has one. Histogram points are counted
 * (memstore_histograms_selected). Returns 0 (it does not fail). */
int memstore_select(void *ctx, const label_matcher *ms, size_t n, int64_t mint, int64_t maxt,
                    promql_matrix *out, buf *err);
/* A promql_queryable reading this store (borrowed; valid while ms is). */
promql_queryable memstore_queryable(memstore *ms);

/* How many histogram points select() has met in matching series within
 * the selected ranges since the store was made or the counter was reset;
 * tells a caller whether a query read native histograms. */
uint64_t memstore_histograms_selected(const memstore *ms);
void memstore_reset_histograms_selected(memstore *ms);

#endif
