/* rio_poll.h: the reactor's driver boundary (one poll set, one wake pipe).
 *
 *   rio_poller_new / rio_poller_free
 *   rio_poller_ctl(p, fd, events, ptr, old_events)
 *                                        set the interest of fd (0 removes it)
 *   rio_poller_wait(p, out, max, timeout_ms)
 *   rio_make_pipe(fds)                   non-blocking, close-on-exec self-pipe
 *                                        (fds[0] reads, fds[1] writes)
 *   rio_read / rio_write / rio_close     on the self-pipe's ends
 *
 * Backends, chosen at build time:
 *   - epoll (Linux): level-triggered; ptr travels in epoll_event.data.
 *   - kqueue (macOS and the BSDs): one EVFILT_READ and one EVFILT_WRITE
 *     filter per fd, level-triggered (no EV_CLEAR). Not compiled on Linux:
 *     it is exercised by the macOS CI jobs.
 *   - poll(2) (any other POSIX system, and Linux or macOS when built with
 *     RIO_REACTOR=poll, so the fallback is tested here): an array of pollfd
 *     entries changed only when interest changes; O(n) per wait.
 *   - wsapoll (Windows): the poll(2) backend's body, unchanged, over
 *     WSAPoll and WSAPOLLFD. Only the few calls that differ are per platform
 *     (the "poll set primitives" below), so the RIO_REACTOR=poll build on
 *     Linux runs the code Windows runs. Only sockets can be polled.
 * Event bits are RIO_IN, RIO_OUT, RIO_ERR, RIO_HUP on every backend.
 * Errors are in errno on every backend; on Windows Winsock codes are mapped
 * as rio_sock.h explains (WSAEWOULDBLOCK -> EAGAIN, WSAEINTR -> EINTR, the
 * rest passed through, as Python's errno module names them there).
 *
 * Windows facts this relies on:
 *   - CPython's signal.set_wakeup_fd accepts only a socket there, and there
 *     is no pipe WSAPoll could watch: the "pipe" is a connected loopback TCP
 *     pair (rio_make_pipe below), which serves cross-thread wakes and signals
 *     as the pipe does on POSIX.
 *   - WSAPoll rejects POLLPRI and some other flags in `events` (WSAEINVAL):
 *     read interest is POLLRDNORM and write interest POLLWRNORM, nothing else.
 *     POLLERR, POLLHUP and POLLNVAL come back in `revents` unasked, as in poll(2).
 *   - WSAPoll with no entries fails (WSAEINVAL) instead of sleeping; the
 *     reactor always has its wake-up socket registered, and an empty set sleeps.
 *   - A peer's FIN comes back as POLLHUP without POLLRDNORM, on every wait.
 *     RIO_HUP wakes readers and writers on every backend, so reads see EOF.
 *     A writer parked on a full send buffer after the peer's FIN (a
 *     half-close; the peer still reads) would be woken by every wait: the
 *     poll body holds such an entry out of the set for RIO_HOLD_MS after
 *     each report ("Held entries" below), so the writer retries 100 times a
 *     second at most instead of spinning. Seen under wine: 1,445 ticks and
 *     34% CPU in 0.5 s before, 99 ticks after.
 *   - A socket closed while in the set: see rio_poll_fds.
 *   - WSAPoll before Windows 10 2004 does not report a failed non-blocking
 *     connect (no POLLERR/POLLHUP): a connect to a refused port waits until
 *     its timeout there. Fixed in build 19041 and later, and in every Windows
 *     Server release since 2022.
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
#define RIO_BACKEND "wsapoll"
#define RIO_POLL_BODY 1
#include "rio_sock.h"   /* winsock2.h (lean windows.h), rio_sock_fail, rio_recv/rio_send */
#include <windows.h>

#if defined(_WIN32_WINNT) && _WIN32_WINNT < 0x0600
#error "rio_poll.h needs WSAPoll: build with _WIN32_WINNT >= 0x0600 (Vista)"
#endif
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80   /* Windows 7 SP1 and later; older SDK headers lack it */
#endif

/* Winsock must be started before the first socket call. CPython's socket
 * module does it on import and rio_core imports it first, but the reactor
 * does not depend on that: the first poller or pipe takes one reference of
 * its own, kept until the process exits (as the socket module's is). */
static inline int rio_wsa_startup(void) {
    static volatile LONG started = 0;
    WSADATA data;
    int err;
    if (started) return 0;
    err = WSAStartup(MAKEWORD(2, 2), &data);
    if (err != 0) { errno = rio_sock_errno(err); return -1; }
    /* two racing first calls take two references: harmless */
    InterlockedExchange(&started, 1);
    return 0;
}

/* ---- the self-pipe: a connected loopback TCP pair */

static inline long rio_read(int fd, void *b, size_t n) { return rio_recv(fd, b, n); }
static inline long rio_write(int fd, const void *b, size_t n) { return rio_send(fd, b, n); }
static inline int rio_close(int fd) {
    return closesocket((SOCKET)fd) == SOCKET_ERROR ? rio_sock_fail() : 0;
}

/* Non-blocking, not inherited by child processes, no Nagle delay: a wake
 * byte written while the previous one is still unacknowledged must not wait
 * for the peer's delayed ACK. */
static inline int rio_pipe_end_setup(SOCKET s) {
    u_long nonblocking = 1;
    BOOL nodelay = TRUE;
    if (ioctlsocket(s, FIONBIO, &nonblocking) == SOCKET_ERROR ||
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, (int)sizeof(nodelay)) ==
            SOCKET_ERROR)
        return rio_sock_fail();
    if (!SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0)) {
        /* a Win32 code, not a WSA one: its numbers collide with errno's */
        errno = GetLastError() == ERROR_INVALID_HANDLE ? EBADF : EINVAL;
        return -1;
    }
    return 0;
}

/* A socket that child processes do not inherit from its creation on
 * (CPython creates its sockets the same way). */
static inline SOCKET rio_pipe_socket(void) {
    return WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                      WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}

/* Listen on 127.0.0.1:0, connect, accept, close the listener (what CPython's
 * socket.socketpair does on Windows). The accepted connection must be ours:
 * another local process could have connected to the listener first. */
static inline int rio_make_pipe(int fds[2]) {
    SOCKET listener = INVALID_SOCKET, writer = INVALID_SOCKET, reader = INVALID_SOCKET;
    struct sockaddr_in addr, ours, peer;
    int len, saved;
    if (rio_wsa_startup() < 0) return -1;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    listener = rio_pipe_socket();
    if (listener == INVALID_SOCKET) goto fail;
    len = (int)sizeof(addr);
    if (bind(listener, (struct sockaddr *)&addr, len) == SOCKET_ERROR ||
        getsockname(listener, (struct sockaddr *)&addr, &len) == SOCKET_ERROR ||
        listen(listener, 1) == SOCKET_ERROR)
        goto fail;
    writer = rio_pipe_socket();
    if (writer == INVALID_SOCKET) goto fail;
    /* blocking connect: completes once the listener's backlog holds it */
    if (connect(writer, (struct sockaddr *)&addr, (int)sizeof(addr)) == SOCKET_ERROR) goto fail;
    reader = accept(listener, NULL, NULL);
    if (reader == INVALID_SOCKET) goto fail;
    len = (int)sizeof(ours);
    if (getsockname(writer, (struct sockaddr *)&ours, &len) == SOCKET_ERROR) goto fail;
    len = (int)sizeof(peer);
    if (getpeername(reader, (struct sockaddr *)&peer, &len) == SOCKET_ERROR) goto fail;
    if (ours.sin_addr.s_addr != peer.sin_addr.s_addr || ours.sin_port != peer.sin_port) {
        WSASetLastError(WSAECONNABORTED);
        goto fail;
    }
    closesocket(listener);
    listener = INVALID_SOCKET;
    if (rio_pipe_end_setup(reader) < 0 || rio_pipe_end_setup(writer) < 0) {
        saved = errno;
        closesocket(reader);
        closesocket(writer);
        errno = saved;
        return -1;
    }
    fds[0] = (int)reader;
    fds[1] = (int)writer;
    return 0;
fail:
    saved = rio_sock_errno(WSAGetLastError());
    if (reader != INVALID_SOCKET) closesocket(reader);
    if (writer != INVALID_SOCKET) closesocket(writer);
    if (listener != INVALID_SOCKET) closesocket(listener);
    errno = saved;
    return -1;
}

/* ---- poll set primitives for the shared body below */

typedef WSAPOLLFD rio_pollfd;
#define RIO_POLL_WANT_IN POLLRDNORM
#define RIO_POLL_WANT_OUT POLLWRNORM
#define RIO_POLL_FD(fd) ((SOCKET)(fd))

static inline int rio_poll_startup(void) { return rio_wsa_startup(); }

/* WSAPoll looks at a socket only when it waits: check it now, as epoll_ctl
 * does. Anything but a socket fails here (WSAENOTSOCK). */
static inline int rio_poll_check_fd(int fd) {
    int type = 0, len = (int)sizeof(type);
    if (getsockopt((SOCKET)fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == SOCKET_ERROR)
        return rio_sock_fail();
    return 0;
}

/* WSAPoll with poll(2)'s answers, for the shared body:
 *   - a socket closed while in the set: poll(2) reports POLLNVAL for that
 *     entry. WSAPoll has been seen to fail as a whole instead (WSAENOTSOCK;
 *     WSAEINVAL when no socket is valid), which would fail every wait until
 *     the entry goes. On those errors each socket is checked and the dead
 *     ones get POLLNVAL (RIO_ERR: their waiters wake, a stale entry is
 *     dropped), as poll(2) does.
 *   - the count is of entries with nonzero revents, as poll(2)'s is: wine's
 *     WSAPoll leaves POLLNVAL entries out of it, and a 0 would make the body
 *     skip them.
 *   - revents are cleared first, so none is left over from an earlier call
 *     whatever WSAPoll writes. */
static inline int rio_poll_fds(rio_pollfd *fds, int n, int timeout_ms) {
    int i, ready = 0, err = 0;
    if (n == 0) {   /* WSAPoll fails on an empty set; poll(2) sleeps */
        Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
        return 0;
    }
    for (i = 0; i < n; i++) fds[i].revents = 0;
    if (WSAPoll(fds, (ULONG)n, timeout_ms) == SOCKET_ERROR) {
        err = WSAGetLastError();
        if (err != WSAENOTSOCK && err != WSAEINVAL) {
            errno = rio_sock_errno(err);
            return -1;
        }
        for (i = 0; i < n; i++) {
            int type = 0, len = (int)sizeof(type);
            fds[i].revents = 0;
            if (getsockopt(fds[i].fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == SOCKET_ERROR)
                fds[i].revents = POLLNVAL;
        }
    }
    for (i = 0; i < n; i++) ready += fds[i].revents != 0;
    if (ready == 0 && err != 0) {   /* the failure was not a dead socket */
        errno = rio_sock_errno(err);
        return -1;
    }
    return ready;
}

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
    /* the kernel still holds an entry we had forgotten (a discarded registration) */
    if (op == EPOLL_CTL_ADD && errno == EEXIST) return epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev);
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
#define RIO_POLL_BODY 1
#include <poll.h>

/* ---- poll set primitives for the shared body below */

typedef struct pollfd rio_pollfd;
#define RIO_POLL_WANT_IN POLLIN
#define RIO_POLL_WANT_OUT POLLOUT
#define RIO_POLL_FD(fd) (fd)

static inline int rio_poll_startup(void) { return 0; }

/* poll(2) looks at an fd only when it waits: check it now, as epoll_ctl does */
static inline int rio_poll_check_fd(int fd) { return fcntl(fd, F_GETFD) < 0 ? -1 : 0; }

static inline int rio_poll_fds(rio_pollfd *fds, int n, int timeout_ms) {
    return poll(fds, (nfds_t)n, timeout_ms);
}
#endif
#endif

#if defined(RIO_POLL_BODY)
/* The poll(2) and WSAPoll backends: one body over the primitives above
 * (rio_pollfd, RIO_POLL_WANT_IN/OUT, RIO_POLL_FD, rio_poll_startup,
 * rio_poll_check_fd, rio_poll_fds). Invariant: fds[i], ptrs[i] and
 * held_until[i] describe the same fd for i < n; an fd has at most one entry;
 * entries hold only nonzero interest.
 *
 * Held entries. WSAPoll reports POLLHUP once the peer has sent FIN, and on
 * every wait after that. A writer parked on a full send buffer of such a
 * socket (the peer half-closed but still reads) would be woken by every wait,
 * find the buffer still full, park again: a busy loop. So an entry with write
 * interest only whose event is POLLHUP alone (no POLLOUT, no error) is
 * reported (the writer retries), then held out of the poll set for
 * RIO_HOLD_MS. So such a writer retries every RIO_HOLD_MS at most, and learns
 * that the peer has read (the socket is writable) within RIO_HOLD_MS. A reset
 * comes with POLLERR or makes the retry fail: nothing waits forever. A ctl
 * that adds read interest ends the hold (a reader must see the FIN at once).
 * Entries [0, active) are polled; [active, n) are held, each until
 * held_until[i] (rio_hold_clock_ms). poll(2) on Linux reports POLLHUP for a
 * socket only with POLLOUT or POLLERR, so it never holds. */
#define RIO_HOLD_MS 10

#if defined(_WIN32)
static inline int64_t rio_hold_clock_ms(void) { return (int64_t)GetTickCount64(); }
#else
#include <time.h>
static inline int64_t rio_hold_clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#endif

typedef struct rio_poller {
    rio_pollfd *fds;
    void **ptrs;
    int64_t *held_until;
    int n, active, cap;
} rio_poller;

static inline rio_poller *rio_poller_new(void) {
    rio_poller *p;
    if (rio_poll_startup() < 0) return NULL;
    p = (rio_poller *)calloc(1, sizeof(rio_poller));
    if (p == NULL) errno = ENOMEM;
    return p;
}

static inline void rio_poller_free(rio_poller *p) {
    if (p == NULL) return;
    free(p->fds); free(p->ptrs); free(p->held_until); free(p);
}

static inline void rio_poll_move(rio_poller *p, int to, int from) {
    p->fds[to] = p->fds[from];
    p->ptrs[to] = p->ptrs[from];
    p->held_until[to] = p->held_until[from];
}

static inline void rio_poll_swap(rio_poller *p, int a, int b) {
    rio_pollfd f = p->fds[a];
    void *q = p->ptrs[a];
    int64_t h = p->held_until[a];
    rio_poll_move(p, a, b);
    p->fds[b] = f; p->ptrs[b] = q; p->held_until[b] = h;
}

/* out of the poll set until `until`: the active entry at i becomes the first held one */
static inline void rio_poll_hold(rio_poller *p, int i, int64_t until) {
    p->fds[i].revents = 0;
    p->active--;
    rio_poll_swap(p, i, p->active);
    p->held_until[p->active] = until;
}

/* back into the poll set: the entry at i >= active becomes the last active one */
static inline void rio_poll_unhold(rio_poller *p, int i) {
    rio_poll_swap(p, i, p->active);
    p->held_until[p->active] = 0;
    p->active++;
}

static inline int rio_poller_ctl(rio_poller *p, int fd, uint32_t events, void *ptr, uint32_t old_events) {
    int i;
    short want = (short)((events & RIO_IN ? RIO_POLL_WANT_IN : 0) |
                         (events & RIO_OUT ? RIO_POLL_WANT_OUT : 0));
    (void)old_events;
    for (i = 0; i < p->n; i++) {
        if (p->fds[i].fd == RIO_POLL_FD(fd)) {
            if (want == 0) {               /* remove, keeping both regions dense */
                if (i < p->active) {
                    p->active--;
                    rio_poll_move(p, i, p->active);
                    i = p->active;         /* now a hole at the start of the held region */
                }
                p->n--;
                if (i != p->n) rio_poll_move(p, i, p->n);
            } else {
                p->fds[i].events = want;
                p->ptrs[i] = ptr;
                if (i >= p->active && want != RIO_POLL_WANT_OUT) rio_poll_unhold(p, i);
            }
            return 0;
        }
    }
    if (want == 0) return 0;
    if (rio_poll_check_fd(fd) < 0) return -1;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        rio_pollfd *f = (rio_pollfd *)realloc(p->fds, sizeof(*f) * (size_t)cap);
        void **q;
        int64_t *h;
        if (f == NULL) { errno = ENOMEM; return -1; }
        p->fds = f;
        q = (void **)realloc(p->ptrs, sizeof(*q) * (size_t)cap);
        if (q == NULL) { errno = ENOMEM; return -1; }
        p->ptrs = q;
        h = (int64_t *)realloc(p->held_until, sizeof(*h) * (size_t)cap);
        if (h == NULL) { errno = ENOMEM; return -1; }
        p->held_until = h;
        p->cap = cap;
    }
    /* a new entry is active: move the first held one (if any) to the end */
    if (p->active < p->n) rio_poll_move(p, p->n, p->active);
    i = p->active;
    p->fds[i].fd = RIO_POLL_FD(fd);
    p->fds[i].events = want;
    p->fds[i].revents = 0;
    p->ptrs[i] = ptr;
    p->held_until[i] = 0;
    p->active++;
    p->n++;
    return 0;
}

static inline int rio_poller_wait(rio_poller *p, rio_event *out, int max, int timeout_ms) {
    int n, i, k = 0;
    int64_t now = 0;
    if (p->active < p->n) {                /* release expired holds; wake up for the next */
        int64_t next = -1;
        now = rio_hold_clock_ms();
        for (i = p->n - 1; i >= p->active; i--) {
            if (p->held_until[i] <= now) {
                rio_poll_unhold(p, i);     /* index i now holds an entry not yet looked at */
                i++;
            } else if (next < 0 || p->held_until[i] < next) {
                next = p->held_until[i];
            }
        }
        if (next >= 0 && (timeout_ms < 0 || next - now < timeout_ms)) timeout_ms = (int)(next - now);
    }
    n = rio_poll_fds(p->fds, p->active, timeout_ms);
    if (n <= 0) return n;
    /* downwards, so that holding entry i (a swap with the last active one,
       already looked at) never skips an entry */
    for (i = p->active - 1; i >= 0 && k < max; i--) {
        short r = p->fds[i].revents;
        if (r == 0) continue;
        out[k].events = (r & RIO_POLL_WANT_IN ? RIO_IN : 0) | (r & RIO_POLL_WANT_OUT ? RIO_OUT : 0) |
                        (r & (POLLERR | POLLNVAL) ? RIO_ERR : 0) | (r & POLLHUP ? RIO_HUP : 0);
        out[k].ptr = p->ptrs[i];
        k++;
        if ((r & (POLLHUP | POLLERR | POLLNVAL | RIO_POLL_WANT_OUT)) == POLLHUP &&
            p->fds[i].events == RIO_POLL_WANT_OUT) {
            if (now == 0) now = rio_hold_clock_ms();
            rio_poll_hold(p, i, now + RIO_HOLD_MS);
        }
    }
    return k;
}
#endif

#endif
