# cython: language_level=3
"""Channels: ``channel`` (many senders, many receivers, each item to one
receiver), ``broadcast`` (every receiver gets every item) and ``watch`` (the
latest value). Built on the waiter queues of rio_core._sync.

Design note
-----------
- **Hand-offs.** An item sent while receivers wait goes straight to the
  first of them (``deliver``); otherwise into the buffer (a native ring of
  owned references). The buffer is empty while receivers wait.
- **Room, and reservations.** A send completes at once while there is room:
  ``buffer + reserved < capacity + waiting receivers``. Otherwise the sender
  parks holding its item. When room appears, the first parked sender is
  granted a *reserved* slot, not the item's place: it puts the item in when
  it runs. So a send cancelled after its grant gives the slot to the next
  sender and its item never enters the channel (a cancelled send sends
  nothing), and FIFO order among senders holds. Capacity 0 is a rendezvous:
  the only room is a waiting receiver.
- **The fast path.** While no task is parked on the channel, a send with
  room (nobody queued before it) and a recv with an item buffered complete in
  ``try_now``, on their first poll: a ring push or pop, no wake and, as each
  handle reuses its last waiter, no allocation. Operations stay lazy: a send
  never awaited sends nothing (the handle's spare waiter holds its item until
  the handle's next operation or ``close()``).
- **Cancel-safe receive.** A receiver that was handed an item but cancelled
  before it ran passes the item to the next waiting receiver, or back to the
  front of the buffer: nothing is lost, nothing reordered.
- **Explicit closing, counted per handle** (Python frees objects at no
  predictable moment). Receivers see the end (``ChannelClosed``; ``async
  for`` stops) only once every sender handle is closed and the buffer and
  the parked senders are drained. When every receiver is closed, sends fail
  with ``ChannelClosed`` and the buffer is dropped.
- ``*_blocking`` calls park a thread (not the runtime) on the same queues;
  they refuse to run on a thread that is running a rio runtime.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF

from rio_core._queue cimport ring_init, ring_push, ring_push_front, ring_pop, ring_clear
from rio_core._runtime cimport current_runtime_or_none
from rio_core._sync cimport (
    Primitive, WaitQueue, Waiter, make_waiter, reuse_waiter, NOT_NOW,
    WAITER_NEW, WAITER_GRANTED, WAITER_CLOSED, WAITER_DONE, OP_SEND, OP_RECV,
)
from rio_core._sync import ChannelClosed

from asyncio.events import _get_running_loop


class WouldBlock(Exception):
    """``try_send`` on a full channel, or ``try_recv`` on an empty one."""


class Lagged(Exception):
    """A broadcast receiver fell behind: ``skipped`` values were dropped
    before it read them. The next ``recv`` continues from the oldest kept."""

    def __init__(self, skipped):
        super().__init__(f"the receiver lagged behind and missed {skipped} values")
        self.skipped = skipped


cdef object RESERVED = "reserved slot"


cdef int check_not_on_runtime(str what) except -1:
    if current_runtime_or_none() is not None or _get_running_loop() is not None:
        raise RuntimeError(f"{what}() blocks its thread: call it from a thread that runs "
                           "no event loop (in a task, await the async form)")
    return 0


cdef Py_ssize_t checked_capacity(object capacity, bint allow_none, Py_ssize_t minimum) except -2:
    if capacity is None and allow_none:
        return -1
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        what = "an int or None" if allow_none else "an int"
        raise TypeError(f"capacity must be {what}, got {type(capacity).__name__} "
                        f"{capacity!r:.40}")
    if capacity < minimum:
        raise ValueError(f"capacity must be >= {minimum}, got {capacity}")
    return capacity


# --------------------------------------------------------------------------- channel

def channel(capacity):
    """A channel: ``(Sender, Receiver)``. ``capacity`` items are buffered; 0 is
    a rendezvous (a send waits for a receiver), None is unbounded."""
    cdef Channel state = Channel.__new__(Channel)
    cdef Sender sender = Sender.__new__(Sender)
    cdef Receiver receiver = Receiver.__new__(Receiver)
    state.capacity = checked_capacity(capacity, True, 0)
    state.senders = 1
    state.receivers = 1
    sender.channel = state
    receiver.channel = state
    return sender, receiver


@cython.final
cdef class Channel(Primitive):
    def __cinit__(self):
        ring_init(&self.buffer, 16)
        self.send_waiters = WaitQueue(self)
        self.recv_waiters = WaitQueue(self)

    def __dealloc__(self):
        ring_clear(&self.buffer)

    cdef bint has_room(self) noexcept:
        return (self.capacity < 0 or
                self.buffer.count + self.reserved < self.capacity + self.recv_waiters.count)

    cdef int deliver(self, object item, bint front) except -1:
        """Hand ``item`` to the first waiting receiver, or buffer it."""
        cdef Waiter receiver = self.recv_waiters.pop()
        if receiver is not None:
            receiver.grant(item)
        elif front:
            ring_push_front(&self.buffer, item)
        else:
            ring_push(&self.buffer, item)
        return 0

    cdef object take(self):
        cdef object item = <object>ring_pop(&self.buffer)
        Py_DECREF(item)         # `item` owns the buffer's reference now
        return item

    cdef int pump(self) except -1:
        """Grant parked senders the room there is now (a reserved slot each)."""
        cdef Waiter sender
        while self.send_waiters.head is not None and self.has_room():
            sender = self.send_waiters.pop()
            self.reserved += 1
            sender.grant(RESERVED)
        return 0

    cdef bint ended(self) noexcept:
        return (self.senders == 0 and self.buffer.count == 0 and self.reserved == 0
                and self.send_waiters.count == 0)

    cdef int attempt(self, Waiter waiter) except -1:
        if waiter.op == OP_SEND:
            if self.receivers == 0:
                waiter.state = WAITER_CLOSED
                waiter.error = ChannelClosed("every receiver of the channel is closed")
            elif self.send_waiters.count == 0 and self.has_room():
                self.deliver(waiter.item, False)
                waiter.item = None
                waiter.state = WAITER_GRANTED
                waiter.granted = None
            else:
                self.send_waiters.push(waiter)
            return 0
        if self.buffer.count > 0:
            waiter.granted = self.take()
            waiter.state = WAITER_GRANTED
            self.pump()
        elif self.ended():
            waiter.state = WAITER_CLOSED
            waiter.error = ChannelClosed("every sender of the channel is closed")
        else:
            self.recv_waiters.push(waiter)
            self.pump()             # a rendezvous sender may come in now
        return 0

    cdef object try_now(self, Waiter waiter):
        # attempt()'s outcomes that need no queue and wake nobody but parked
        # threads (no task is parked here)
        cdef object item
        if waiter.op == OP_SEND:
            if (self.receivers == 0 or self.send_waiters.count != 0
                    or self.recv_waiters.count != 0 or not self.has_room()):
                return NOT_NOW
            item = waiter.item
            waiter.item = None
            waiter.state = WAITER_DONE
            ring_push(&self.buffer, item)
            return None
        if self.buffer.count == 0:
            return NOT_NOW
        waiter.state = WAITER_DONE
        item = self.take()
        if self.send_waiters.head is not None:
            self.pump()
        return item

    cdef object complete(self, Waiter waiter):
        cdef object item
        if waiter.op == OP_SEND and waiter.granted is RESERVED:
            # the reserved slot: put the item in now
            self.reserved -= 1
            item = waiter.item
            waiter.item = None
            if self.receivers == 0:
                self.pump()
                self.end_if_drained()
                raise ChannelClosed("every receiver of the channel is closed")
            self.deliver(item, False)
            self.end_if_drained()
            return None
        return waiter.granted

    cdef int reclaim(self, Waiter waiter) except -1:
        if waiter.op == OP_SEND:
            if waiter.granted is RESERVED:      # a cancelled send sends nothing
                self.reserved -= 1
                waiter.item = None
                self.pump()
                self.end_if_drained()
        elif self.receivers > 0:               # a received item goes back, in order
            self.deliver(waiter.granted, True)
        return 0

    cdef int left(self, Waiter waiter) except -1:
        if waiter.op == OP_SEND:
            waiter.item = None
        return self.end_if_drained()

    cdef int close_sender(self) except -1:
        self.senders -= 1
        return self.end_if_drained()

    cdef int end_if_drained(self) except -1:
        """Once every sender is closed and nothing is left to receive, the
        waiting receivers get ChannelClosed. Called wherever the last item,
        reserved slot or parked sender can go away."""
        if self.ended() and self.recv_waiters.count:
            self.recv_waiters.close_all(ChannelClosed("every sender of the channel is closed"))
        return 0

    cdef int close_receiver(self) except -1:
        self.receivers -= 1
        if self.receivers == 0:
            ring_clear(&self.buffer)
            ring_init(&self.buffer, 16)
            self.send_waiters.close_all(ChannelClosed("every receiver of the channel is closed"))
            self.end_if_drained()
        return 0

    def __len__(self):
        return self.buffer.count


@cython.final
cdef class Sender:
    """The sending side of a ``channel``. ``clone()`` makes another handle;
    the channel ends for receivers once every handle is closed."""

    def __init__(self):
        raise TypeError("senders come from rio_rt.channel()")

    cdef int check_open(self) except -1:
        if self.closed:
            raise ChannelClosed("send on a closed Sender")
        return 0

    def send(self, item):
        """Send ``item``, waiting while the channel is full. Raises ChannelClosed
        when every receiver is closed. Cancel-safe: a cancelled send sends nothing."""
        cdef Waiter waiter
        self.check_open()
        waiter = reuse_waiter(<PyObject *>self.spare, self.channel, OP_SEND)
        self.spare = waiter
        waiter.item = item
        return waiter

    def try_send(self, item):
        """Send now, or raise WouldBlock (full; a rendezvous with no receiver
        waiting) or ChannelClosed."""
        cdef Channel channel = self.channel
        self.check_open()
        if channel.receivers == 0:
            raise ChannelClosed("every receiver of the channel is closed")
        if channel.send_waiters.count != 0 or not channel.has_room():
            raise WouldBlock("the channel is full")
        channel.deliver(item, False)

    def send_blocking(self, item):
        """Send from a thread that runs no event loop, blocking that thread."""
        cdef Waiter waiter
        self.check_open()
        check_not_on_runtime("send_blocking")
        waiter = make_waiter(self.channel, OP_SEND)
        waiter.item = item
        return waiter.block_thread()

    def clone(self):
        cdef Sender other = Sender.__new__(Sender)
        self.check_open()
        other.channel = self.channel
        self.channel.senders += 1
        return other

    def close(self):
        """Close this handle (idempotent)."""
        self.spare = None
        if not self.closed:
            self.closed = True
            self.channel.close_sender()

    def is_closed(self):
        """True when this handle is closed or every receiver is."""
        return self.closed or self.channel.receivers == 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return f"<rio Sender{' closed' if self.closed else ''} of {channel_repr(self.channel)}>"


cdef str channel_repr(Channel channel):
    capacity = "unbounded" if channel.capacity < 0 else f"capacity={channel.capacity}"
    return (f"channel {capacity}, {channel.buffer.count} buffered, "
            f"{channel.senders} senders, {channel.receivers} receivers")


@cython.final
cdef class Receiver:
    """The receiving side of a ``channel``: ``await recv()``, ``async for``."""

    def __init__(self):
        raise TypeError("receivers come from rio_rt.channel()")

    cdef int check_open(self) except -1:
        if self.closed:
            raise ChannelClosed("recv on a closed Receiver")
        return 0

    def recv(self):
        """The next item, waiting for one; ChannelClosed once every sender is
        closed and everything sent was received. Cancel-safe: a cancelled recv
        takes nothing."""
        cdef Waiter waiter
        self.check_open()
        waiter = reuse_waiter(<PyObject *>self.spare, self.channel, OP_RECV)
        self.spare = waiter
        return waiter

    def try_recv(self):
        """The next item now; WouldBlock when empty, ChannelClosed at the end."""
        cdef Channel channel = self.channel
        self.check_open()
        if channel.buffer.count > 0:
            item = channel.take()
            channel.pump()
            return item
        if channel.ended():
            raise ChannelClosed("every sender of the channel is closed")
        raise WouldBlock("the channel is empty")

    def recv_blocking(self):
        """Receive from a thread that runs no event loop, blocking that thread."""
        self.check_open()
        check_not_on_runtime("recv_blocking")
        return make_waiter(self.channel, OP_RECV).block_thread()

    def clone(self):
        cdef Receiver other = Receiver.__new__(Receiver)
        self.check_open()
        other.channel = self.channel
        self.channel.receivers += 1
        return other

    def close(self):
        """Close this handle (idempotent)."""
        self.spare = None
        if not self.closed:
            self.closed = True
            self.channel.close_receiver()

    def is_closed(self):
        return self.closed

    def __aiter__(self):
        return self

    def __anext__(self):
        cdef Waiter waiter
        if self.closed:
            raise StopAsyncIteration
        waiter = reuse_waiter(<PyObject *>self.spare, self.channel, OP_RECV)
        self.spare = waiter
        waiter.for_anext = True
        return waiter

    def __len__(self):
        return self.channel.buffer.count

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return f"<rio Receiver{' closed' if self.closed else ''} of {channel_repr(self.channel)}>"


# --------------------------------------------------------------------------- broadcast

def broadcast(capacity):
    """A broadcast channel: ``(BroadcastSender, BroadcastReceiver)``. Every
    receiver gets every value sent after it subscribed; the last ``capacity``
    values are kept, and a receiver that falls further behind gets ``Lagged``."""
    cdef Broadcast state = Broadcast.__new__(Broadcast)
    cdef BroadcastSender sender = BroadcastSender.__new__(BroadcastSender)
    state.capacity = checked_capacity(capacity, False, 1)
    state.values = [None] * state.capacity
    state.senders = 1
    sender.channel = state
    return sender, sender.subscribe()


@cython.final
cdef class Broadcast(Primitive):
    def __cinit__(self):
        self.waiters = WaitQueue(self)

    cdef object resolve(self, BroadcastReceiver receiver):
        """The receiver's next value (it moves on), Lagged (once), or None when
        it has read everything."""
        cdef uint64_t skipped
        if receiver.next_seq < self.first_seq:
            skipped = self.first_seq - receiver.next_seq
            receiver.next_seq = self.first_seq
            raise Lagged(skipped)
        if receiver.next_seq < self.next_seq:
            value = self.values[receiver.next_seq % self.capacity]
            receiver.next_seq += 1
            return (value,)
        return None

    cdef int attempt(self, Waiter waiter) except -1:
        try:
            got = self.resolve(<BroadcastReceiver>waiter.receiver)
        except Lagged as exc:
            waiter.state = WAITER_CLOSED
            waiter.error = exc
            return 0
        if got is not None:
            waiter.state = WAITER_GRANTED
            waiter.granted = got[0]
        elif self.senders == 0:
            waiter.state = WAITER_CLOSED
            waiter.error = ChannelClosed("every sender of the broadcast channel is closed")
        else:
            self.waiters.push(waiter)
        return 0

    cdef int reclaim(self, Waiter waiter) except -1:
        (<BroadcastReceiver>waiter.receiver).next_seq -= 1     # not read after all
        return 0

    cdef int send_value(self, object value) except -1:
        cdef Waiter waiter
        self.values[self.next_seq % self.capacity] = value
        self.next_seq += 1
        if self.next_seq - self.first_seq > <uint64_t>self.capacity:
            self.first_seq = self.next_seq - self.capacity
        cdef list parked = []
        while self.waiters.head is not None:
            parked.append(self.waiters.pop())
        for waiter in parked:
            # parked: not lagging; None when another task's recv on the same
            # receiver took the value first: it parks again, in order
            got = self.resolve(<BroadcastReceiver>waiter.receiver)
            if got is None:
                waiter.state = WAITER_NEW
                self.waiters.push(waiter)
            else:
                waiter.grant(got[0])
        return 0


@cython.final
cdef class BroadcastSender:
    def __init__(self):
        raise TypeError("broadcast senders come from rio_rt.broadcast()")

    def send(self, value):
        """Send to every receiver; never waits (the oldest value is dropped
        when a receiver is ``capacity`` values behind)."""
        if self.closed:
            raise ChannelClosed("send on a closed BroadcastSender")
        self.channel.send_value(value)

    def subscribe(self):
        """A new receiver, which gets the values sent from now on."""
        cdef BroadcastReceiver receiver = BroadcastReceiver.__new__(BroadcastReceiver)
        receiver.channel = self.channel
        receiver.next_seq = self.channel.next_seq
        return receiver

    def clone(self):
        cdef BroadcastSender other = BroadcastSender.__new__(BroadcastSender)
        if self.closed:
            raise ChannelClosed("clone of a closed BroadcastSender")
        other.channel = self.channel
        self.channel.senders += 1
        return other

    def close(self):
        if not self.closed:
            self.closed = True
            self.channel.senders -= 1
            if self.channel.senders == 0:
                self.channel.waiters.close_all(
                    ChannelClosed("every sender of the broadcast channel is closed"))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()


@cython.final
cdef class BroadcastReceiver:
    def __init__(self):
        raise TypeError("broadcast receivers come from rio_rt.broadcast() or subscribe()")

    def recv(self):
        """The next value; Lagged once if values were dropped before this
        receiver read them; ChannelClosed once every sender is closed and
        everything was read. Cancel-safe."""
        cdef Waiter waiter
        if self.closed:
            raise ChannelClosed("recv on a closed BroadcastReceiver")
        waiter = make_waiter(self.channel, OP_RECV)
        waiter.receiver = self
        return waiter

    def close(self):
        self.closed = True

    def __aiter__(self):
        return self

    def __anext__(self):
        cdef Waiter waiter
        if self.closed:
            raise StopAsyncIteration
        waiter = make_waiter(self.channel, OP_RECV)
        waiter.receiver = self
        waiter.for_anext = True
        return waiter

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# --------------------------------------------------------------------------- watch

def watch(initial):
    """A watch channel: ``(WatchSender, WatchReceiver)`` holding one value,
    ``initial`` at first. Receivers ``borrow()`` the latest value and wait
    for the next change with ``changed()``."""
    cdef Watch state = Watch.__new__(Watch)
    cdef WatchSender sender = WatchSender.__new__(WatchSender)
    state.value = initial
    sender.channel = state
    return sender, sender.subscribe()


@cython.final
cdef class Watch(Primitive):
    def __cinit__(self):
        self.waiters = WaitQueue(self)

    cdef int attempt(self, Waiter waiter) except -1:
        cdef WatchReceiver receiver = waiter.receiver
        if self.version != receiver.seen:
            receiver.seen = self.version
            waiter.state = WAITER_GRANTED
            waiter.granted = None
        elif self.sender_closed:
            waiter.state = WAITER_CLOSED
            waiter.error = ChannelClosed("the watch channel's sender is closed")
        else:
            self.waiters.push(waiter)
        return 0

    cdef object complete(self, Waiter waiter):
        (<WatchReceiver>waiter.receiver).seen = self.version
        return None


@cython.final
cdef class WatchSender:
    def __init__(self):
        raise TypeError("watch senders come from rio_rt.watch()")

    def send(self, value):
        """Replace the value and wake every receiver waiting in ``changed()``;
        never waits."""
        if self.closed:
            raise ChannelClosed("send on a closed WatchSender")
        self.channel.value = value
        self.channel.version += 1
        self.channel.waiters.grant_all(None)

    def borrow(self):
        return self.channel.value

    def subscribe(self):
        cdef WatchReceiver receiver = WatchReceiver.__new__(WatchReceiver)
        receiver.channel = self.channel
        receiver.seen = self.channel.version
        return receiver

    def close(self):
        if not self.closed:
            self.closed = True
            self.channel.sender_closed = True
            self.channel.waiters.close_all(ChannelClosed("the watch channel's sender is closed"))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


@cython.final
cdef class WatchReceiver:
    def __init__(self):
        raise TypeError("watch receivers come from rio_rt.watch() or subscribe()")

    def borrow(self):
        """The latest value (does not mark it seen)."""
        return self.channel.value

    def changed(self):
        """Wait until a value newer than the last one seen is sent (then it
        counts as seen); ChannelClosed once the sender is closed. Cancel-safe."""
        cdef Waiter waiter
        if self.closed:
            raise ChannelClosed("changed() on a closed WatchReceiver")
        waiter = make_waiter(self.channel, OP_RECV)
        waiter.receiver = self
        return waiter

    def has_changed(self):
        return self.channel.version != self.seen

    def clone(self):
        cdef WatchReceiver other = WatchReceiver.__new__(WatchReceiver)
        other.channel = self.channel
        other.seen = self.seen
        return other

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
