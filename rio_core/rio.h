/* rio.h: the few things Cython cannot say portably by itself.
 *
 * - RIO_DEBUG (0/1) comes from setup.py; RIO_DEBUG_ENABLED lets Cython test it
 *   as an ordinary constant, so the C compiler removes debug branches in release.
 * - rio_debug_check(): the task transitions' preconditions (RIO_DEBUG=1 only).
 * - RIO_TLS: a thread-local storage class. Each thread may run its own runtime,
 *   and "the current task" must never leak across threads (the GIL can switch
 *   threads in the middle of a tick).
 * - rio_monotonic_ns(): CLOCK_MONOTONIC in nanoseconds (the same clock as
 *   time.monotonic() on Linux and macOS). On Windows, QueryPerformanceCounter,
 *   converted as CPython does: time.monotonic()'s clock from CPython 3.13 on.
 *   Before 3.13, time.monotonic() reads GetTickCount64, a 15.6 ms tick of the
 *   same time since boot, so the two agree only to that tick; timers keep
 *   QueryPerformanceCounter's resolution.
 * - rio_dict_slot_put(): a dict value written in place while its entry is
 *   where it was (asyncio's current-tasks dict, 3.11-3.13); see below.
 * - RIO_NO_SPARES: a free-threaded build, where a reference count of 1
 *   proves nothing.
 */
#ifndef RIO_H
#define RIO_H

#include <Python.h>
#include <stdint.h>

#ifndef RIO_DEBUG
#define RIO_DEBUG 0
#endif
#define RIO_DEBUG_ENABLED RIO_DEBUG

/* A free-threaded build: a reference count of 1 does not prove that no
 * other thread holds an object, so nothing is reused on that evidence. */
#ifdef Py_GIL_DISABLED
#define RIO_NO_SPARES 1
#else
#define RIO_NO_SPARES 0
#endif

/* A state-machine precondition: fatal in a RIO_DEBUG=1 build (a broken
 * invariant must stop the process where it happened), nothing in release. */
static inline void rio_debug_check(int condition, const char *message) {
#if RIO_DEBUG
    if (!condition) Py_FatalError(message);
#else
    (void)condition;
    (void)message;
#endif
}

#if defined(_MSC_VER)
#define RIO_TLS __declspec(thread)
#elif defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__))
/* initial-exec: an offset from the thread pointer, where the default model
 * of a shared object calls __tls_get_addr on every access (four a task step,
 * about 2% of an asyncio.sleep(0) on 3.13). glibc keeps a reserve of static
 * TLS for modules loaded later with such variables; ours are two pointers. */
#define RIO_TLS __thread __attribute__((tls_model("initial-exec")))
#else
#define RIO_TLS __thread
#endif

#if defined(_WIN32)
#include <windows.h>
static inline int64_t rio_monotonic_ns(void) {
    static LARGE_INTEGER freq; /* constant since boot: a racing first write is harmless */
    LARGE_INTEGER now;
    if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    /* exact integer scaling (a double loses nanoseconds after weeks of uptime) */
    return (int64_t)(now.QuadPart / freq.QuadPart) * 1000000000LL +
           (int64_t)(now.QuadPart % freq.QuadPart) * 1000000000LL / freq.QuadPart;
}
#else
#include <time.h>
static inline int64_t rio_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}
#endif

/* Thread-local "current runtime" and "current task" (borrowed pointers: the
 * runtime holds the owning references while they are set). */
static RIO_TLS void *rio_tls_current_runtime = 0;
static RIO_TLS void *rio_tls_current_task = 0;

static inline void *rio_get_current_runtime(void) { return rio_tls_current_runtime; }
static inline void rio_set_current_runtime(void *rt) { rio_tls_current_runtime = rt; }
static inline void *rio_get_current_task(void) { return rio_tls_current_task; }
static inline void rio_set_current_task(void *t) { rio_tls_current_task = t; }

/* The exception currently raised, normalized, with its traceback attached;
 * a new reference, and the error indicator is cleared. */
static inline PyObject *rio_fetch_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Set StopIteration carrying `value`, for an iterator's __next__ that then
 * ends with a bare `raise StopIteration` (which Cython turns into "return
 * NULL", adding no traceback frame). Before 3.12 the error is stored
 * unnormalised, so no exception object is created at all. */
static inline void rio_set_stop_value(PyObject *value) {
    PyObject *exc;
#if PY_VERSION_HEX < 0x030C0000
    if (!PyTuple_Check(value) && !PyExceptionInstance_Check(value)) {
        PyErr_SetObject(PyExc_StopIteration, value);
        return;
    }
#endif
    exc = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
}

/* The same through one StopIteration object, reused (3.12+): from 3.12
 * `await` on an object that is not a coroutine resumes it through
 * tp_iternext, so every await of a done future whose result is not None ends
 * in a StopIteration, and creating one (a call of the type, then
 * PyErr_SetObject's context chaining) was a fifth of an await-and-set round
 * on 3.13. The await takes the value out of the exception and drops it, so
 * the object can be used again as long as no one else holds it (refcount 1
 * in `*cache`) and nothing was attached to it (no traceback, context, cause,
 * notes or attributes). While an exception is being handled, a fresh one is
 * made, since PyErr_SetObject would chain it as context. The cache keeps the
 * last value until rio_clear_stop_cache (each task step ends with it). */
static inline void rio_set_stop_value_cached(PyObject **cache, PyObject *value) {
#if PY_VERSION_HEX >= 0x030C0000
    PyStopIterationObject *stop = (PyStopIterationObject *)*cache;
    PyObject *exc, *handled, *old_arg, *old_value;
    if (stop != NULL && Py_REFCNT(stop) == 1 && PyTuple_CheckExact(stop->args)
            && PyTuple_GET_SIZE(stop->args) == 1 && Py_REFCNT(stop->args) == 1
            && stop->traceback == NULL && stop->context == NULL && stop->cause == NULL
            && stop->notes == NULL && stop->dict == NULL) {
        handled = PyErr_GetHandledException();
        if (handled == NULL) {
            old_arg = PyTuple_GET_ITEM(stop->args, 0);
            old_value = stop->value;
            Py_INCREF(value);
            PyTuple_SET_ITEM(stop->args, 0, value);
            Py_INCREF(value);
            stop->value = value;
            stop->suppress_context = 0;
            Py_DECREF(old_arg);         /* (no exception is set yet) */
            Py_XDECREF(old_value);
            Py_INCREF(stop);
            PyErr_SetRaisedException((PyObject *)stop);
            return;
        }
        Py_DECREF(handled);
    }
    rio_set_stop_value(value);
    if (*cache == NULL || Py_REFCNT(*cache) == 1) {
        exc = PyErr_GetRaisedException();
        if (exc != NULL && Py_IS_TYPE(exc, (PyTypeObject *)PyExc_StopIteration)
                && PyTuple_CheckExact(((PyBaseExceptionObject *)exc)->args)
                && PyTuple_GET_SIZE(((PyBaseExceptionObject *)exc)->args) == 1) {
            Py_INCREF(exc);
            Py_XSETREF(*cache, exc);
        }
        PyErr_SetRaisedException(exc);
    }
#else
    (void)cache;
    rio_set_stop_value(value);
#endif
}

/* Let go of the value the reused StopIteration still holds (if no one else
 * holds the object). */
static inline void rio_clear_stop_cache(PyObject *cache) {
#if PY_VERSION_HEX >= 0x030C0000
    PyStopIterationObject *stop = (PyStopIterationObject *)cache;
    PyObject *old_arg, *old_value;
    if (stop == NULL || stop->value == Py_None || Py_REFCNT(stop) != 1
            || !PyTuple_CheckExact(stop->args) || PyTuple_GET_SIZE(stop->args) != 1
            || Py_REFCNT(stop->args) != 1) {
        return;
    }
    old_arg = PyTuple_GET_ITEM(stop->args, 0);
    old_value = stop->value;
    PyTuple_SET_ITEM(stop->args, 0, Py_NewRef(Py_None));
    stop->value = Py_NewRef(Py_None);
    Py_DECREF(old_arg);
    Py_XDECREF(old_value);
#else
    (void)cache;
#endif
}

/* Give a leaf future's type an am_send slot (3.10+): PyIter_Send, which is
 * how Python 3.11 runs `await` on an object that is not a coroutine (and how
 * C callers resume one on every version), then gets the outcome as a return
 * value instead of through StopIteration. Set once, at module init, before
 * any instance exists. */
static inline void rio_set_am_send(PyObject *type, sendfunc am_send) {
    PyTypeObject *t = (PyTypeObject *)type;
    if (t->tp_as_async != NULL && t->tp_as_async->am_send == NULL) {
        t->tp_as_async->am_send = am_send;
    }
}

/* The same for an iterator that is not awaitable (no __await__, so the type
 * has no async table): give it `slots`, a zeroed table of its own that must
 * live as long as the type (a module-level static), holding only am_send. */
static inline void rio_set_am_send_only(PyObject *type, PyAsyncMethods *slots,
                                        sendfunc am_send) {
    PyTypeObject *t = (PyTypeObject *)type;
    if (t->tp_as_async == NULL) {
        slots->am_send = am_send;
        t->tp_as_async = slots;
        PyType_Modified(t);
    }
}

/* A type's method-cache version tag, or 0 when it has none: it changes
 * whenever the type or one of its bases is modified (an attribute set or
 * deleted), so a verdict about a type's methods keyed on (type, tag) stays
 * true while the tag is the same. Up to 3.12 the tag is valid only with
 * Py_TPFLAGS_VALID_VERSION_TAG; from 3.13 the tag itself is reset to 0. */
static inline unsigned int rio_type_tag(PyObject *type) {
    PyTypeObject *t = (PyTypeObject *)type;
#if PY_VERSION_HEX >= 0x030D0000
    return t->tp_version_tag;
#else
    return (t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) ? t->tp_version_tag : 0;
#endif
}

/* obj.__dict__ as PyObject_GenericGetDict makes it (a new reference), or
 * NULL with no error set when the object has none. */
static inline PyObject *rio_instance_dict(PyObject *obj) {
    PyObject *d = PyObject_GenericGetDict(obj, NULL);
    if (d == NULL) {
        PyErr_Clear();
    }
    return d;
}

/* A dict's version: up to 3.12 every change to a dict gives it a new value
 * from one counter, so (dict, version) names its contents exactly (3.12
 * keeps the field, deprecated, for dict watchers' bookkeeping). 0 from 3.13:
 * an instance dict there shares the object's inline values, and an
 * attribute store into those leaves the dict's version as it was (found by
 * this project's property test, tests/test_aio_queue.py). */
static inline uint64_t rio_dict_version(PyObject *d) {
#if PY_VERSION_HEX >= 0x030D0000
    (void)d;
    return 0;
#else
    uint64_t version;
    _Py_COMP_DIAG_PUSH
    _Py_COMP_DIAG_IGNORE_DEPR_DECLS
    version = ((PyDictObject *)d)->ma_version_tag;
    _Py_COMP_DIAG_POP
    return version;
#endif
}

/* A remembered place of one key's value in one dict: replace the value of a
 * key already there without a lookup. The task step makes each task
 * asyncio's current task of its loop, a value write into asyncio's
 * current-tasks dict per step (up to 3.13); PyDict_SetItem's lookup, version
 * and watcher bookkeeping were about 320 of the 2,300 instructions of an
 * asyncio.sleep(0) on 3.13.
 *
 * The place is (keys table, entry index) of a combined table with general
 * (not only str) keys, CPython 3.11-3.13's layout, mirrored below; the
 * CPython headers keep it internal. It is trusted only when the table is
 * the dict's current one, the index is below its entry count and the entry
 * holds that very key: a key is in at most one live entry, so the entry is
 * the key's, even if the table was freed and another made at the same
 * address. Anything else (a dict watcher, a split table, a resize, a
 * deletion) takes PyDict_SetItem, then finds the place again. Unlike
 * PyDict_SetItem, the write leaves the dict's version as it was: no dict
 * watcher is there to be told (checked), and only the current-tasks dict is
 * written this way. rio_dict_slots_probe() checks the layout at import on a
 * dict of its own; if it disagrees, every write takes PyDict_SetItem. */
typedef struct {
    void *keys;             /* borrowed; compared, dereferenced only while current */
    Py_ssize_t index;
} rio_dict_slot;

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define RIO_DICT_SLOTS 1
typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind;            /* 0: general keys */
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];          /* then the entries */
} rio_dict_keys;

typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
} rio_dict_entry;

#if PY_VERSION_HEX >= 0x030D0000
#define RIO_DICT_WATCH_BITS 0xFFF   /* watchers, and their mutation counter */
#elif PY_VERSION_HEX >= 0x030C0000
#define RIO_DICT_WATCH_BITS 0xFF
#else
#define RIO_DICT_WATCH_BITS 0       /* 3.11 has no dict watchers */
#endif

static int rio_dict_slots_ok = 0;

static inline rio_dict_entry *rio_dict_entries(rio_dict_keys *keys) {
    return (rio_dict_entry *)(keys->dk_indices + ((size_t)1 << keys->dk_log2_index_bytes));
}

/* The table to use, or NULL when this dict is not one a slot may write. */
static inline rio_dict_keys *rio_dict_writable_keys(PyObject *d) {
    PyDictObject *mp = (PyDictObject *)d;
    rio_dict_keys *keys;
    uint64_t version;
    if (!rio_dict_slots_ok || !PyDict_CheckExact(d) || mp->ma_values != NULL) {
        return NULL;
    }
    _Py_COMP_DIAG_PUSH
    _Py_COMP_DIAG_IGNORE_DEPR_DECLS
    version = mp->ma_version_tag;
    _Py_COMP_DIAG_POP
    keys = (rio_dict_keys *)mp->ma_keys;
    if ((version & RIO_DICT_WATCH_BITS) != 0 || keys->dk_kind != 0) {
        return NULL;
    }
    return keys;
}

/* Find `key`'s entry (newest first: a fresh insert is the last one). */
static inline void rio_dict_slot_find(PyObject *d, PyObject *key, rio_dict_slot *slot) {
    rio_dict_keys *keys = rio_dict_writable_keys(d);
    rio_dict_entry *entries;
    Py_ssize_t i;
    slot->keys = NULL;
    if (keys == NULL) {
        return;
    }
    entries = rio_dict_entries(keys);
    for (i = keys->dk_nentries - 1; i >= 0; i--) {
        if (entries[i].me_key == key) {
            if (entries[i].me_value != NULL) {
                slot->keys = keys;
                slot->index = i;
            }
            return;
        }
    }
}
#endif

/* d[key] = value, through the slot when it still holds key's entry. */
static inline int rio_dict_slot_put(PyObject *d, PyObject *key, PyObject *value,
                                    rio_dict_slot *slot) {
#ifdef RIO_DICT_SLOTS
    rio_dict_keys *keys = (rio_dict_keys *)((PyDictObject *)d)->ma_keys;
    rio_dict_entry *entry;
    PyObject *old;
    if (keys == slot->keys && rio_dict_writable_keys(d) == keys
            && slot->index < keys->dk_nentries) {
        entry = rio_dict_entries(keys) + slot->index;
        if (entry->me_key == key && entry->me_value != NULL) {
            old = entry->me_value;
            Py_INCREF(value);
            entry->me_value = value;
            Py_DECREF(old);         /* (as PyDict_SetItem: after the store) */
#if RIO_DEBUG
            rio_debug_check(PyDict_GetItem(d, key) == value, "rio_dict_slot_put: lost write");
#endif
            return 0;
        }
    }
    if (PyDict_SetItem(d, key, value) < 0) {
        return -1;
    }
    rio_dict_slot_find(d, key, slot);
    return 0;
#else
    (void)slot;
    return PyDict_SetItem(d, key, value);
#endif
}

/* Check the mirrored layout on a dict of our own (at import): a value
 * written through a slot must be what the dict then holds, and the dict
 * must still compare, resize and delete as before. Returns whether slots
 * are used. */
static inline int rio_dict_slots_probe(void) {
#ifdef RIO_DICT_SLOTS
    PyObject *d, *key, *other;
    rio_dict_keys *keys;
    rio_dict_slot slot = {NULL, 0};
    int ok = 0;
    d = PyDict_New();
    key = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    other = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (d == NULL || key == NULL || other == NULL
            || PyDict_SetItem(d, other, Py_None) < 0 || PyDict_SetItem(d, key, Py_False) < 0) {
        goto done;
    }
    /* the header fields where the mirror has them: a fresh table of 8
     * one-byte indices, general keys, two entries */
    keys = (rio_dict_keys *)((PyDictObject *)d)->ma_keys;
    if (keys->dk_log2_size != 3 || keys->dk_log2_index_bytes != 3 || keys->dk_kind != 0
            || keys->dk_nentries != 2 || rio_dict_entries(keys)[1].me_key != key
            || rio_dict_entries(keys)[1].me_value != Py_False
            || rio_dict_entries(keys)[0].me_key != other) {
        goto done;
    }
    rio_dict_slots_ok = 1;
    rio_dict_slot_find(d, key, &slot);
    if (slot.keys != keys || slot.index != 1 || rio_dict_slot_put(d, key, Py_True, &slot) < 0) {
        goto done;
    }
    ok = PyDict_GetItemWithError(d, key) == Py_True && PyDict_GET_SIZE(d) == 2
         && PyDict_GetItemWithError(d, other) == Py_None;
done:
    PyErr_Clear();
    Py_XDECREF(d);
    Py_XDECREF(key);
    Py_XDECREF(other);
    rio_dict_slots_ok = ok;
    return ok;
#else
    return 0;
#endif
}

/* Cython makes the instance dict of a type declaring `cdef dict __dict__` in
 * tp_new, for every instance. Drop it while it is still empty: the generic
 * attribute code (and the `__dict__` getter, PyObject_GenericGetDict) makes
 * one on first use, and Cython's traverse, clear and dealloc accept NULL. An
 * instance with no dict also keeps CPython 3.12+'s method-call specialisation
 * (LOAD_ATTR_METHOD_LAZY_DICT), which an instance dict turns off. */
static inline void rio_drop_empty_dict(PyObject *obj) {
    Py_ssize_t offset = Py_TYPE(obj)->tp_dictoffset;
    PyObject **slot, *dict;
    if (offset <= 0) {
        return;
    }
    slot = (PyObject **)((char *)obj + offset);
    dict = *slot;
    if (dict != NULL && PyDict_CheckExact(dict) && PyDict_GET_SIZE(dict) == 0) {
        *slot = NULL;
        Py_DECREF(dict);
    }
}

#endif
