/* rio_poll.h: the reactor's driver boundary (one poll set, one wake pipe).
 *
 *   rio_poller_new / rio_poller_free
 *   rio_poller_ctl(p, fd, events, ptr, old_events)
 *                                        set the interest of fd (0 removes it)
 *   rio_poller_wait(p, out, max, timeout_ms)
 *   rio_make_pipe(fds)                   non-blocking, close-on-exec self-pipe
 *
 * Backends, chosen at build time:
 *   - epoll (Linux): level-triggered; ptr travels in epoll_event.data.
 *   - kqueue (macOS and the BSDs): one EVFILT_READ and one EVFILT_WRITE
 *     filter per fd, level-triggered (no EV_CLEAR). Not compiled on Linux:
 *     it is exercised by the macOS CI jobs.
 *   - poll(2) (any other POSIX system, and Linux or macOS when built with
 *     RIO_REACTOR=poll, so the fallback is tested here): an array of pollfd
 *     entries changed only when interest changes; O(n) per wait.
 * Event bits are RIO_IN, RIO_OUT, RIO_ERR, RIO_HUP on every backend.
 */
#ifndef RIO_POLL_H
#define RIO_POLL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RIO_IN 0x1u
#define RIO_OUT 0x4u
#define RIO_ERR 0x8u
#define RIO_HUP 0x10u

typedef struct { uint32_t events; void *ptr; } rio_event;

#if defined(_WIN32)
/* Windows needs a WSAPoll backend with a socketpair wake-up; not built yet. */
#define RIO_BACKEND "none"
typedef struct rio_poller { int unused; } rio_poller;
static inline rio_poller *rio_poller_new(void) { errno = ENOSYS; return NULL; }
static inline void rio_poller_free(rio_poller *p) { (void)p; }
static inline int rio_poller_ctl(rio_poller *p, int fd, uint32_t ev, void *ptr, uint32_t old) {
    (void)p; (void)fd; (void)ev; (void)ptr; (void)old; errno = ENOSYS; return -1; }
static inline int rio_poller_wait(rio_poller *p, rio_event *out, int max, int t) {
    (void)p; (void)out; (void)max; (void)t; errno = ENOSYS; return -1; }
static inline int rio_make_pipe(int fds[2]) { (void)fds; errno = ENOSYS; return -1; }
static inline long rio_read(int fd, void *b, size_t n) { (void)fd; (void)b; (void)n; errno = ENOSYS; return -1; }
static inline long rio_write(int fd, const void *b, size_t n) { (void)fd; (void)b; (void)n; errno = ENOSYS; return -1; }
static inline int rio_close(int fd) { (void)fd; return 0; }

#else
#include <unistd.h>
#include <fcntl.h>

static inline long rio_read(int fd, void *b, size_t n) { return (long)read(fd, b, n); }
static inline long rio_write(int fd, const void *b, size_t n) { return (long)write(fd, b, n); }
static inline int rio_close(int fd) { return close(fd); }

static inline int rio_make_pipe(int fds[2]) {
#if defined(__linux__)
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
#else
    int i;
    if (pipe(fds) < 0) return -1;
    for (i = 0; i < 2; i++) {
        if (fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) < 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
            close(fds[0]); close(fds[1]); return -1;
        }
    }
    return 0;
#endif
}

#if defined(__linux__) && !defined(RIO_FORCE_POLL) && !defined(RIO_FORCE_KQUEUE)
#define RIO_BACKEND "epoll"
#include <sys/epoll.h>

typedef struct rio_poller {
    int epfd;
    struct epoll_event *buf;
    int cap;
} rio_poller;

static inline rio_poller *rio_poller_new(void) {
    rio_poller *p = (rio_poller *)calloc(1, sizeof(rio_poller));
    if (p == NULL) { errno = ENOMEM; return NULL; }
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) { int e = errno; free(p); errno = e; return NULL; }
    return p;
}

static inline void rio_poller_free(rio_poller *p) {
    if (p == NULL) return;
    close(p->epfd);
    free(p->buf);
    free(p);
}

/* `old_events` is what the kernel holds for fd now (0: no entry). */
static inline int rio_poller_ctl(rio_poller *p, int fd, uint32_t events, void *ptr, uint32_t old_events) {
    struct epoll_event ev;
    int op;
    memset(&ev, 0, sizeof(ev));
    ev.events = (events & RIO_IN ? EPOLLIN : 0) | (events & RIO_OUT ? EPOLLOUT : 0);
    ev.data.ptr = ptr;
    if (events == 0) op = EPOLL_CTL_DEL;
    else op = old_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(p->epfd, op, fd, &ev) == 0) return 0;
    /* the fd was closed and reopened behind our back: the kernel dropped it */
    if (op == EPOLL_CTL_MOD && errno == ENOENT) return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF)) return 0;
    return -1;
}

static inline int rio_poller_wait(rio_poller *p, rio_event *out, int max, int timeout_ms) {
    int n, i;
    if (p->cap < max) {
        struct epoll_event *b = (struct epoll_event *)realloc(p->buf, sizeof(*b) * (size_t)max);
        if (b == NULL) { errno = ENOMEM; return -1; }
        p->buf = b; p->cap = max;
    }
    n = epoll_wait(p->epfd, p->buf, max, timeout_ms);
    for (i = 0; i < n; i++) {
        uint32_t e = p->buf[i].events;
        out[i].events = (e & EPOLLIN ? RIO_IN : 0) | (e & EPOLLOUT ? RIO_OUT : 0) |
                        (e & EPOLLERR ? RIO_ERR : 0) | (e & EPOLLHUP ? RIO_HUP : 0);
        out[i].ptr = p->buf[i].data.ptr;
    }
    return n;
}

#elif (defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
       defined(__NetBSD__) || defined(__DragonFly__) || defined(RIO_FORCE_KQUEUE)) && !defined(RIO_FORCE_POLL)
#define RIO_BACKEND "kqueue"
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>

typedef struct rio_poller {
    int kq;
    struct kevent *buf;
    int cap;
} rio_poller;

static inline rio_poller *rio_poller_new(void) {
    rio_poller *p = (rio_poller *)calloc(1, sizeof(rio_poller));
    if (p == NULL) { errno = ENOMEM; return NULL; }
    p->kq = kqueue();
    if (p->kq < 0) { int e = errno; free(p); errno = e; return NULL; }
    if (fcntl(p->kq, F_SETFD, FD_CLOEXEC) < 0) { int e = errno; close(p->kq); free(p); errno = e; return NULL; }
    return p;
}

static inline void rio_poller_free(rio_poller *p) {
    if (p == NULL) return;
    close(p->kq);
    free(p->buf);
    free(p);
}

/* One filter per direction: add the new ones (re-adding updates udata), delete the old. */
static inline int rio_poller_ctl(rio_poller *p, int fd, uint32_t events, void *ptr, uint32_t old_events) {
    struct kevent changes[2];
    int n = 0, i;
    if (events & RIO_IN) EV_SET(&changes[n++], fd, EVFILT_READ, EV_ADD, 0, 0, ptr);
    else if (old_events & RIO_IN) EV_SET(&changes[n++], fd, EVFILT_READ, EV_DELETE, 0, 0, ptr);
    if (events & RIO_OUT) EV_SET(&changes[n++], fd, EVFILT_WRITE, EV_ADD, 0, 0, ptr);
    else if (old_events & RIO_OUT) EV_SET(&changes[n++], fd, EVFILT_WRITE, EV_DELETE, 0, 0, ptr);
    for (i = 0; i < n; i++) {
        if (kevent(p->kq, &changes[i], 1, NULL, 0, NULL) < 0) {
            if ((changes[i].flags & EV_DELETE) && (errno == ENOENT || errno == EBADF)) continue;
            return -1;
        }
    }
    return 0;
}

static inline int rio_poller_wait(rio_poller *p, rio_event *out, int max, int timeout_ms) {
    struct timespec ts, *tsp = NULL;
    int n, i;
    if (p->cap < max) {
        struct kevent *b = (struct kevent *)realloc(p->buf, sizeof(*b) * (size_t)max);
        if (b == NULL) { errno = ENOMEM; return -1; }
        p->buf = b; p->cap = max;
    }
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    n = kevent(p->kq, NULL, 0, p->buf, max, tsp);
    for (i = 0; i < n; i++) {
        struct kevent *ev = &p->buf[i];
        uint32_t bits = ev->filter == EVFILT_READ ? RIO_IN : (ev->filter == EVFILT_WRITE ? RIO_OUT : 0);
        if (ev->flags & EV_EOF) bits |= RIO_HUP;
        if (ev->flags & EV_ERROR) bits |= RIO_ERR;
        out[i].events = bits;
        out[i].ptr = ev->udata;
    }
    return n;
}

#else
#define RIO_BACKEND "poll"
#include <poll.h>

typedef struct rio_poller {
    struct pollfd *fds;
    void **ptrs;
    int n, cap;
} rio_poller;

static inline rio_poller *rio_poller_new(void) {
    rio_poller *p = (rio_poller *)calloc(1, sizeof(rio_poller));
    if (p == NULL) errno = ENOMEM;
    return p;
}

static inline void rio_poller_free(rio_poller *p) {
    if (p == NULL) return;
    free(p->fds); free(p->ptrs); free(p);
}

static inline int rio_poller_ctl(rio_poller *p, int fd, uint32_t events, void *ptr, uint32_t old_events) {
    int i;
    short want = (short)((events & RIO_IN ? POLLIN : 0) | (events & RIO_OUT ? POLLOUT : 0));
    (void)old_events;
    for (i = 0; i < p->n; i++) {
        if (p->fds[i].fd == fd) {
            if (want == 0) {               /* remove: move the last entry here */
                p->n--;
                p->fds[i] = p->fds[p->n];
                p->ptrs[i] = p->ptrs[p->n];
            } else {
                p->fds[i].events = want;
                p->ptrs[i] = ptr;
            }
            return 0;
        }
    }
    if (want == 0) return 0;
    /* poll(2) looks at an fd only when it waits: check it now, as epoll_ctl does */
    if (fcntl(fd, F_GETFD) < 0) return -1;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        struct pollfd *f = (struct pollfd *)realloc(p->fds, sizeof(*f) * (size_t)cap);
        void **q;
        if (f == NULL) { errno = ENOMEM; return -1; }
        p->fds = f;
        q = (void **)realloc(p->ptrs, sizeof(*q) * (size_t)cap);
        if (q == NULL) { errno = ENOMEM; return -1; }
        p->ptrs = q;
        p->cap = cap;
    }
    p->fds[p->n].fd = fd;
    p->fds[p->n].events = want;
    p->fds[p->n].revents = 0;
    p->ptrs[p->n] = ptr;
    p->n++;
    return 0;
}

static inline int rio_poller_wait(rio_poller *p, rio_event *out, int max, int timeout_ms) {
    int n, i, k = 0;
    n = poll(p->fds, (nfds_t)p->n, timeout_ms);
    if (n <= 0) return n;
    for (i = 0; i < p->n && k < max; i++) {
        short r = p->fds[i].revents;
        if (r == 0) continue;
        out[k].events = (r & POLLIN ? RIO_IN : 0) | (r & POLLOUT ? RIO_OUT : 0) |
                        (r & (POLLERR | POLLNVAL) ? RIO_ERR : 0) | (r & POLLHUP ? RIO_HUP : 0);
        out[k].ptr = p->ptrs[i];
        k++;
    }
    return k;
}
#endif
#endif

#endif
