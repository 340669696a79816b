/* rio_poll.h: the system calls the reactor uses, behind one set of names.
 *
 * Linux: epoll. Elsewhere (until the kqueue backend lands) the epoll names are
 * stubs that fail with ENOSYS, so the module still compiles and the runtime
 * raises a clear OSError at start-up instead of failing to build.
 */
#ifndef RIO_POLL_H
#define RIO_POLL_H

#include <errno.h>

#if defined(__linux__)
#define RIO_HAVE_EPOLL 1
#include <sys/epoll.h>
#include <unistd.h>
#include <fcntl.h>
static inline int rio_make_pipe(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }
#else
#define RIO_HAVE_EPOLL 0
#if !defined(_WIN32)
#include <unistd.h>
#include <fcntl.h>
#endif
#include <stdint.h>
#define EPOLLIN 0x001
#define EPOLLOUT 0x004
#define EPOLLERR 0x008
#define EPOLLHUP 0x010
#define EPOLLRDHUP 0x2000
#define EPOLL_CTL_ADD 1
#define EPOLL_CTL_DEL 2
#define EPOLL_CTL_MOD 3
#define EPOLL_CLOEXEC 0
typedef union epoll_data { void *ptr; int fd; uint32_t u32; uint64_t u64; } epoll_data_t;
struct epoll_event { uint32_t events; epoll_data_t data; };
static inline int epoll_create1(int flags) { (void)flags; errno = ENOSYS; return -1; }
static inline int epoll_ctl(int e, int op, int fd, struct epoll_event *ev) {
    (void)e; (void)op; (void)fd; (void)ev; errno = ENOSYS; return -1; }
static inline int epoll_wait(int e, struct epoll_event *ev, int n, int t) {
    (void)e; (void)ev; (void)n; (void)t; errno = ENOSYS; return -1; }
static inline int rio_make_pipe(int fds[2]) { (void)fds; errno = ENOSYS; return -1; }
#if defined(_WIN32)
static inline int close(int fd) { (void)fd; return 0; }
static inline long read(int fd, void *b, unsigned long n) { (void)fd; (void)b; (void)n; errno = ENOSYS; return -1; }
static inline long write(int fd, const void *b, unsigned long n) { (void)fd; (void)b; (void)n; errno = ENOSYS; return -1; }
#endif
#endif

#endif
