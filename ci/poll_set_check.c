/* A model-based check of the poll(2)/WSAPoll body's poll set (rio_poll.h):
 * random interest changes, holds (what WSAPoll's repeated POLLHUP triggers,
 * which Linux never produces), expiries and waits, with the set compared to a
 * model after every step. Built by ci/check-poll-set.sh with the poll(2)
 * primitives (RIO_FORCE_POLL) and the sanitizers; the wsapoll build shares
 * this body unchanged.
 *
 * Invariants checked: every registered fd has exactly one entry and nothing
 * else has one; an entry's events and ptr are the last ctl's; entries
 * [0, active) are polled and not held; entries [active, n) are held, with
 * write interest only and a hold time; a wait releases every expired hold;
 * a wait reports only registered fds, with the ptr they were registered with. */
#define _GNU_SOURCE 1  /* pipe2, as Python.h defines it for the engine */
#include "rio_poll.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define FDS 24
#define STEPS 200000

static int fds[FDS];
static uint32_t model_want[FDS]; /* RIO_IN | RIO_OUT; 0: not registered */
static int tags[FDS];            /* each fd's ptr is &tags[k] */
static int failures = 0;

#define CHECK(cond, step)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "step %ld: failed: %s (line %d)\n", (long)(step), \
                    #cond, __LINE__);                                         \
            if (++failures > 10) exit(1);                                     \
        }                                                                     \
    } while (0)

static int slot_of(int fd) {
    int k;
    for (k = 0; k < FDS; k++)
        if (fds[k] == fd) return k;
    return -1;
}

static short poll_want(uint32_t want) {
    return (short)((want & RIO_IN ? RIO_POLL_WANT_IN : 0) | (want & RIO_OUT ? RIO_POLL_WANT_OUT : 0));
}

static void check_set(rio_poller *p, long step) {
    int seen[FDS] = {0};
    int i, k, registered = 0;
    CHECK(0 <= p->active && p->active <= p->n && p->n <= p->cap, step);
    for (i = 0; i < p->n; i++) {
        k = slot_of((int)p->fds[i].fd);
        CHECK(k >= 0, step);
        if (k < 0) continue;
        seen[k]++;
        CHECK(model_want[k] != 0, step);
        CHECK(p->fds[i].events == poll_want(model_want[k]), step);
        CHECK(p->ptrs[i] == &tags[k], step);
        if (i < p->active) {
            CHECK(p->held_until[i] == 0, step);
        } else {
            CHECK(p->held_until[i] > 0, step);
            CHECK(p->fds[i].events == RIO_POLL_WANT_OUT, step);
        }
    }
    for (k = 0; k < FDS; k++) {
        CHECK(seen[k] == (model_want[k] != 0), step);
        registered += model_want[k] != 0;
    }
    CHECK(registered == p->n, step);
}

int main(void) {
    rio_poller *p = rio_poller_new();
    rio_event events[FDS];
    long step;
    int k, pair[2], holds = 0, expiries = 0, reported = 0;
    srand(20261126);
    if (p == NULL) { perror("rio_poller_new"); return 1; }
    for (k = 0; k < FDS; k++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0) { perror("socketpair"); return 1; }
        fds[k] = pair[0];   /* pair[1] stays open: pair[0] is writable, not readable */
    }
    for (step = 0; step < STEPS; step++) {
        int op = rand() % 10;
        k = rand() % FDS;
        if (op < 5) {                               /* interest change */
            uint32_t want = (uint32_t)(rand() % 4);
            want = (want & 1 ? RIO_IN : 0) | (want & 2 ? RIO_OUT : 0);
            CHECK(rio_poller_ctl(p, fds[k], want, &tags[k], model_want[k]) == 0, step);
            model_want[k] = want;
        } else if (op < 7) {                        /* a hold, as WSAPoll's POLLHUP makes */
            int i;
            for (i = 0; i < p->active; i++)
                if (p->fds[i].events == RIO_POLL_WANT_OUT) break;
            if (i < p->active) {
                /* half in the past (the next wait releases them), half far ahead */
                int64_t now = rio_hold_clock_ms();
                rio_poll_hold(p, i, rand() % 2 ? now - 1 : now + 3600 * 1000);
                holds++;
            }
        } else {                                    /* a wait */
            int before = p->n - p->active, n, j, i;
            int64_t started = rio_hold_clock_ms();
            n = rio_poller_wait(p, events, FDS, 0);
            CHECK(n >= 0, step);
            for (i = p->active; i < p->n; i++)   /* every expired hold was released */
                CHECK(p->held_until[i] > started, step);
            if (before > p->n - p->active) expiries += before - (p->n - p->active);
            for (j = 0; j < n; j++) {
                int slot = (int)((int *)events[j].ptr - tags);
                CHECK(slot >= 0 && slot < FDS && model_want[slot] != 0, step);
                CHECK(events[j].events != 0, step);
                reported++;
            }
        }
        check_set(p, step);
    }
    printf("poll set: %d steps, %d holds, %d expired holds released, %d events, %d failures\n",
           STEPS, holds, expiries, reported, failures);
    rio_poller_free(p);
    return failures != 0;
}
