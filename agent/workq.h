/* workq: a bounded pool of worker threads that runs queued jobs in FIFO
 * order. The HTTP server (api.c) hands it the requests that take time
 * (queries, remote write bodies, /federate, reloads) so that its event loop
 * never waits for one.
 *
 * Threads are started on demand, up to max_threads, and then stay until
 * workq_free: an idle process holds none. The queue itself has no cap of
 * its own; its callers bound it (api.c queues at most one job per
 * connection, so --web.max-connections is the cap). */
#ifndef SIDEWATCH_WORKQ_H
#define SIDEWATCH_WORKQ_H

#include <stddef.h>

typedef struct workq workq;

/* A job: runs once on a worker thread with its argument (borrowed; the
 * job itself frees or hands back what it owns). */
typedef void (*workq_fn)(void *arg);

/* A pool of at most max_threads threads (0 is taken as 1). Never fails
 * (memory via mem.h; a thread that cannot be started is logged and the
 * pool makes do with the ones it has, running jobs inline if it has none).
 * Caller frees with workq_free. */
workq *workq_new(const char *name, unsigned max_threads);

/* Queues fn(arg). Returns 0, or -ESHUTDOWN once workq_free has begun (fn
 * is not run then: the caller still owns arg). Any thread may call it. */
int workq_submit(workq *q, workq_fn fn, void *arg);

/* Threads started so far (for tests and /metrics). */
unsigned workq_threads(workq *q);

/* Refuses new jobs from now on (workq_submit returns -ESHUTDOWN), runs
 * every queued one to its end and joins the threads; the pool stays
 * allocated, so late submitters get an answer. Must not be called from a
 * job; a second call is a no-op. */
void workq_stop(workq *q);

/* workq_stop, then frees. NULL is a no-op. */
void workq_free(workq *q);

#endif
