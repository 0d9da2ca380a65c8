#include "workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

#include "log.h"
#include "mem.h"

typedef struct job {
    workq_fn fn;
    void *arg;
    struct job *next;
} job;

struct workq {
    char name[32];
    unsigned max_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    unsigned idle;     /* threads waiting for a job */
    unsigned n_queued; /* jobs no thread has taken yet */
    bool stopping;
    pthread_t *threads;
    unsigned n_threads;
};

static void *worker(void *arg)
{
    workq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping) {
            q->idle++;
            pthread_cond_wait(&q->cv, &q->mu);
            q->idle--;
        }
        job *j = q->head;
        if (!j) break; /* stopping and nothing left */
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->n_queued--;
        pthread_mutex_unlock(&q->mu);
        j->fn(j->arg);
        mem_free(j);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

workq *workq_new(const char *name, unsigned max_threads)
{
    workq *q = mem_calloc(1, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name ? name : "workq");
    q->max_threads = max_threads ? max_threads : 1;
    q->threads = mem_calloc(q->max_threads, sizeof *q->threads);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    return q;
}

int workq_submit(workq *q, workq_fn fn, void *arg)
{
    job *j = mem_calloc(1, sizeof *j);
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        mem_free(j);
        return -ESHUTDOWN;
    }
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n_queued++;
    /* A new thread only when the idle ones cannot take every queued job. */
    if (q->n_queued > q->idle && q->n_threads < q->max_threads) {
        int rc = pthread_create(&q->threads[q->n_threads], NULL, worker, q);
        if (rc == 0)
            q->n_threads++;
        else
            log_warn("workq", "%s: cannot start a worker thread (%u running): %s", q->name,
                     q->n_threads, strerror(rc));
    }
    bool inline_run = q->n_threads == 0;
    if (inline_run) {
        /* No thread at all: take the job back and run it here. */
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->n_queued--;
    } else {
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (inline_run) {
        fn(arg);
        mem_free(j);
    }
    return 0;
}

unsigned workq_threads(workq *q)
{
    pthread_mutex_lock(&q->mu);
    unsigned n = q->n_threads;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void workq_stop(workq *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    unsigned n = q->n_threads;
    q->n_threads = 0; /* joined below; a second call joins none */
    pthread_mutex_unlock(&q->mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(q->threads[i], NULL);
}

void workq_free(workq *q)
{
    if (!q) return;
    workq_stop(q);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    mem_free(q->threads);
    mem_free(q);
}
