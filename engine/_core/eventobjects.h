/* eventobjects.h: the per-call API's event objects, built from the book's int64 records.
 *
 * The per-call API (OrderBook.place, cancel, amend, cancel_all) returns a list of
 * engine.events objects, msgspec Structs.  Built through the type call, one such object
 * cost more than the matching did: msgspec's constructor (argument handling, defaults,
 * a zeroed allocation) and a new Python int per field.  This file builds the same objects
 * directly:
 *
 *  - Allocation.  For a Struct type declared with gc=False (every event type is) msgspec
 *    keeps each field in a plain object slot at a fixed offset (its member descriptor's),
 *    frees with PyObject_Free and is not tracked by the collector; its dealloc clears the
 *    slots and drops the type.  So an event is PyObject_Malloc(basicsize) + PyObject_Init
 *    + one store per field: the object msgspec itself would have built.  evo_register
 *    checks that layout for every event type when book.pyx loads, and book.pyx builds one
 *    of each both ways to compare them; anything unexpected stops the import with an error
 *    rather than building wrong objects.
 *  - Freeing.  The registered types' tp_dealloc becomes evo_dealloc: msgspec's own steps
 *    for such a type (drop the fields, free, drop the type) with the memory kept on a
 *    short free list per type, which evo_new takes from first.  Events built any other
 *    way (the reference book calls the types) are freed the same way, to the same lists.
 *  - Integers.  A value-keyed cache of int objects across calls (prices, quantities and
 *    ids repeat) was tried: a quarter fewer instructions per command, yet about 30 ns
 *    slower per call (p50 of the standard flow's per-call latency, four interleaved A/B
 *    rounds), its lookups missing the CPU caches where pymalloc's recently freed blocks hit
 *    them.  Within one call, though, the same numbers recur in known places (a trade's
 *    price, quantity and ids in its two fills; the order's id, price and quantity, which
 *    the caller passed as ints, in its acceptance and as the taker; one seq in every level
 *    update), and there the events share one int object (evo_list_args, EvoRef): a
 *    comparison or two with objects the call just touched, no table.  The ints that are
 *    still new are recycled once nothing but evo_long's pool holds them (see there).
 *
 * The event kinds, field orders and names are book.pyx's (EV_* records, see its _emit
 * calls) and engine/events.py's; the test suite compares every event with the reference
 * book's.
 */
#ifndef ENGINE_EVENTOBJECTS_H
#define ENGINE_EVENTOBJECTS_H

#include <Python.h>
#include <structmember.h>
#include <stdint.h>

#define EVO_KINDS 11          /* record kinds 1..10 (book.pyx EV_*) */
#define EVO_MAX_FIELDS 6
#define EVO_FREELIST_SIZE 256  /* freed events kept per type for reuse */

typedef struct {
    PyTypeObject *type;       /* a strong reference, set by evo_register */
    Py_ssize_t size;          /* tp_basicsize */
    Py_ssize_t nfields;
    Py_ssize_t offsets[EVO_MAX_FIELDS];
    Py_ssize_t nfree;         /* freed events' memory, for evo_new to reuse */
    PyObject *free[EVO_FREELIST_SIZE];
} EvoType;

static EvoType evo_types[EVO_KINDS];

/* New objects' headers, set in place.  PyObject_Init and PyLong_FromLongLong are calls into
 * the interpreter that, on a release build, come down to three stores (type, reference
 * count, and for an int its size and digits) around a pymalloc allocation; an event
 * command builds several objects, so doing those stores here saves a few percent of a
 * per-call command.  Debug builds (reference counting tracked) and Python versions other
 * than 3.11, whose int layout this relies on, take the interpreter's own functions.  One
 * difference from PyObject_Init: an event whose memory comes from a free list (below) is
 * not re-reported to tracemalloc, which keeps the trace of the block's first allocation. */
#if !defined(Py_REF_DEBUG) && !defined(Py_TRACE_REFS)
#define EVO_FAST_HEADERS 1
#else
#define EVO_FAST_HEADERS 0
#endif
#if EVO_FAST_HEADERS && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 \
    && PyLong_SHIFT == 30
#define EVO_FAST_INTS 1
#else
#define EVO_FAST_INTS 0
#endif

static inline void evo_init_header(PyObject *self, PyTypeObject *type) {
#if EVO_FAST_HEADERS
    Py_SET_TYPE(self, type);
    if (type->tp_flags & Py_TPFLAGS_HEAPTYPE) Py_INCREF(type);
    Py_SET_REFCNT(self, 1);
#else
    PyObject_Init(self, type);
#endif
}

/* Recycled ints.  Most of a command's new ints (a level's aggregate, a remaining
 * quantity, a seq, a trade id) die with its event list, soon after the call, and each
 * cost an allocation and a free (pymalloc: about 75 instructions the pair, a fifth of the
 * event building).  evo_long keeps the last EVO_INT_POOL ints it made, holding a reference
 * to each: when it comes round to one that nothing else holds any more (reference count
 * 1, its own), it writes the new value into it and hands it out again, no allocation and
 * no free.  That is safe because an object whose only reference is the pool's cannot be
 * seen by anyone: no event, list, variable or container holds it (ints are not tracked
 * by the collector, have no weak references and cache no hash).  An int still held
 * elsewhere is left to its holders and replaced in the pool by a new one.  Unlike the
 * value-keyed cache above, nothing is looked up: the pool's entries were handed out a
 * call or two before, so their memory is as warm as pymalloc's free blocks.  At most
 * EVO_INT_POOL ints (2 KiB) stay allocated for the module's lifetime. */
#define EVO_INT_POOL 64  /* a power of two; several commands' worth of new ints */
static PyObject *evo_int_pool[EVO_INT_POOL];
static unsigned int evo_int_next;

/* A new reference to an int holding ``v`` (NULL with MemoryError), as PyLong_FromLongLong
 * returns, built in place for the values an event holds (past the small-int cache and
 * below 2**60: one or two 30-bit digits, the same 32-byte pymalloc block either way),
 * from the pool above when it can.  Only positive values take the inline path (one
 * unsigned comparison decides it; an event's ids, prices, quantities and seqs are all
 * positive): a sign to handle cost about a fifth of it, for values the book never emits
 * but in a rejection's echo of a caller's bad argument. */
static Py_ALWAYS_INLINE inline PyObject *evo_long(int64_t v) {
#if EVO_FAST_INTS
    if ((uint64_t)v - 257 < ((uint64_t)1 << 60) - 257) {  /* 257 <= v < 2**60 */
        PyObject **entry = &evo_int_pool[evo_int_next++ & (EVO_INT_POOL - 1)];
        PyLongObject *o = (PyLongObject *)*entry;
        if (o == NULL || Py_REFCNT(o) != 1) {
            o = (PyLongObject *)PyObject_Malloc(offsetof(PyLongObject, ob_digit)
                                                + 2 * sizeof(digit));
            if (o == NULL) return PyErr_NoMemory();
            Py_SET_TYPE(o, &PyLong_Type);  /* a static type: no reference to take */
            Py_SET_REFCNT(o, 1);           /* the pool's */
            Py_XSETREF(*entry, (PyObject *)o);  /* the old one's other holders keep it */
        }
        digit high = (digit)((uint64_t)v >> PyLong_SHIFT);
        Py_SET_SIZE(o, high ? 2 : 1);
        o->ob_digit[0] = (digit)((uint64_t)v & PyLong_MASK);
        o->ob_digit[1] = high;
        Py_INCREF(o);  /* the caller's */
        return (PyObject *)o;
    }
#endif
    return PyLong_FromLongLong(v);
}

/* The ints of one call's events.  An event list shares one int object between fields
 * that hold the same number in known places: the call's own arguments (order id, price,
 * quantity, when exact ints) in its acceptance, cancel, expiry or rejection and as the
 * taker of its trades; a trade's price, quantity and order ids in its two fills; a trade's
 * or the order's price in a level update; one seq in all of a command's level updates.
 * Each is a comparison with one or two remembered objects of this call (borrowed: the
 * list being built or the caller holds them), not a lookup: a value-keyed cache across
 * calls was slower (see above), and a scan of all of a call's ints cost more than it saved
 * on a sweep. */
typedef struct {
    int64_t v;
    PyObject *o;  /* borrowed; NULL: nothing yet */
} EvoRef;

/* A new reference to a's or b's object if it holds ``v``, else a new int; NULL on error. */
static inline PyObject *evo_int2(int64_t v, const EvoRef *a, const EvoRef *b) {
    if (a->o != NULL && a->v == v) {
        Py_INCREF(a->o);
        return a->o;
    }
    if (b->o != NULL && b->v == v) {
        Py_INCREF(b->o);
        return b->o;
    }
    return evo_long(v);
}

static inline PyObject *evo_int1(int64_t v, const EvoRef *a) {
    if (a->o != NULL && a->v == v) {
        Py_INCREF(a->o);
        return a->o;
    }
    return evo_long(v);
}

static inline void evo_ref(EvoRef *ref, int64_t v, PyObject *o) {
    ref->v = v;
    ref->o = o;
}

/* The slot offset of a member descriptor holding an object, or -1 (no exception set). */
static Py_ssize_t evo_member_offset(PyObject *descr) {
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) return -1;
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY)) return -1;
    return member->offset;
}

/* tp_dealloc of the registered types: what msgspec's own dealloc does for them (drop each
 * field, free the memory, drop the type), but the memory goes on a short free list for
 * the next event of the type rather than back to the allocator.  One function per kind
 * (EVO_DEALLOC below), so each knows its type's fields without a lookup. */
static inline void evo_dealloc(PyObject *self, EvoType *t, const Py_ssize_t nfields) {
    PyTypeObject *tp = Py_TYPE(self);
    for (Py_ssize_t i = 0; i < nfields; i++) {
        PyObject **slot = (PyObject **)((char *)self + t->offsets[i]);
        PyObject *value = *slot;
        if (value != NULL) {  /* NULL once the attribute was deleted */
            *slot = NULL;
            Py_DECREF(value);
        }
    }
    if (t->nfree < EVO_FREELIST_SIZE) {
        t->free[t->nfree++] = self;
    } else {
        PyObject_Free(self);
    }
    Py_DECREF(tp);
}

/* Fields per record kind (book.pyx's _EVENT_TYPES; evo_register checks them): constants,
 * so each kind's dealloc loop is unrolled. */
static const Py_ssize_t evo_nfields[EVO_KINDS] = {0, 4, 2, 6, 3, 2, 4, 2, 2, 6, 4};
#define EVO_DEALLOC(k, n) \
    static void evo_dealloc_##k(PyObject *self) { evo_dealloc(self, &evo_types[k], n); }
EVO_DEALLOC(1, 4) EVO_DEALLOC(2, 2) EVO_DEALLOC(3, 6) EVO_DEALLOC(4, 3) EVO_DEALLOC(5, 2)
EVO_DEALLOC(6, 4) EVO_DEALLOC(7, 2) EVO_DEALLOC(8, 2) EVO_DEALLOC(9, 6) EVO_DEALLOC(10, 4)
static const destructor evo_deallocs[EVO_KINDS] = {
    NULL, evo_dealloc_1, evo_dealloc_2, evo_dealloc_3, evo_dealloc_4, evo_dealloc_5,
    evo_dealloc_6, evo_dealloc_7, evo_dealloc_8, evo_dealloc_9, evo_dealloc_10,
};

/* Register the type built for record ``kind``, with its fields' slot offsets in field
 * order, after checking that its instances are exactly what evo_new builds: a fixed-size
 * object freed with PyObject_Free, untracked by the collector, with no dict, no weakrefs,
 * no finalizer and nothing in it but the fields' slots.  ImportError otherwise (book.pyx
 * registers every type when the module loads). */
static int evo_register(int kind, PyObject *type, Py_ssize_t nfields, const Py_ssize_t *offsets) {
    if (kind <= 0 || kind >= EVO_KINDS || nfields != evo_nfields[kind]
            || !PyType_Check(type)) {
        PyErr_SetString(PyExc_ValueError, "evo_register: bad event type registration");
        return -1;
    }
    PyTypeObject *tp = (PyTypeObject *)type;
    int ok = !PyType_IS_GC(tp) && tp->tp_itemsize == 0 && tp->tp_dictoffset == 0
        && tp->tp_weaklistoffset == 0 && tp->tp_finalize == NULL && tp->tp_free == PyObject_Free
        && tp->tp_basicsize == (Py_ssize_t)(sizeof(PyObject) + nfields * sizeof(PyObject *));
    for (Py_ssize_t i = 0; ok && i < nfields; i++) {
        ok = offsets[i] >= (Py_ssize_t)sizeof(PyObject)
            && offsets[i] + (Py_ssize_t)sizeof(PyObject *) <= tp->tp_basicsize
            && offsets[i] % (Py_ssize_t)sizeof(PyObject *) == 0;
        for (Py_ssize_t j = 0; ok && j < i; j++) ok = offsets[j] != offsets[i];
    }
    if (!ok) {
        PyErr_Format(PyExc_ImportError,
                     "%s is not laid out as the compiled book builds events (a msgspec Struct "
                     "with gc=False and only its fields' slots)", tp->tp_name);
        return -1;
    }
    EvoType *t = &evo_types[kind];
    if (t->type != NULL) {
        PyErr_Format(PyExc_ImportError, "event record kind %d is registered twice", kind);
        return -1;
    }
    Py_INCREF(type);  /* kept for good: its instances may use evo_dealloc at any time */
    t->type = tp;
    t->size = tp->tp_basicsize;
    t->nfields = nfields;
    for (Py_ssize_t i = 0; i < nfields; i++) t->offsets[i] = offsets[i];
    t->nfree = 0;
    tp->tp_dealloc = evo_deallocs[kind];
    return 0;
}

/* A new event of record ``kind`` holding ``fields`` (new references, all stolen, also on
 * failure), in memory from the type's free list if it has some; NULL if a field is NULL
 * (its build failed: the others are dropped) or with MemoryError if the allocation fails.
 * ``n`` is the kind's number of fields, a constant at every call: inlined, the checks and
 * stores unroll, where a loop over the type's own count cost a fifth of a command's
 * event building. */
static Py_ALWAYS_INLINE inline PyObject *evo_new(int kind, PyObject **fields,
                                                 const Py_ssize_t n) {
    EvoType *t = &evo_types[kind];
    Py_ssize_t i;
    PyObject *self;
    int ok = 1;
    for (i = 0; i < n; i++) ok &= fields[i] != NULL;
    if (!ok) {
        for (i = 0; i < n; i++) Py_XDECREF(fields[i]);
        return NULL;
    }
    if (t->nfree) {
        self = t->free[--t->nfree];
    } else {
        self = (PyObject *)PyObject_Malloc((size_t)t->size);
        if (self == NULL) {
            for (i = 0; i < n; i++) Py_DECREF(fields[i]);
            return PyErr_NoMemory();
        }
    }
    evo_init_header(self, t->type);
    for (i = 0; i < n; i++) *(PyObject **)((char *)self + t->offsets[i]) = fields[i];
    return self;
}

/* The strings events hold, and the error for a record of unknown kind (evo_set_names). */
static PyObject *evo_side_names[2];      /* "buy", "sell" */
static PyObject *evo_liquidity_names[2]; /* "maker", "taker" */
static PyObject *evo_reasons;            /* tuple: cancel reason names by number */
static PyObject *evo_reject_names;       /* tuple: reject code names by number */
static PyObject *evo_integrity_error;    /* engine.errors.BookIntegrityError */

static int evo_set_names(PyObject *buy, PyObject *sell, PyObject *maker, PyObject *taker,
                         PyObject *reasons, PyObject *reject_names, PyObject *integrity_error) {
    if (!PyTuple_Check(reasons) || !PyTuple_Check(reject_names)) {
        PyErr_SetString(PyExc_TypeError, "evo_set_names: reasons and reject names are tuples");
        return -1;
    }
    PyObject *objs[7] = {buy, sell, maker, taker, reasons, reject_names, integrity_error};
    PyObject **slots[7] = {&evo_side_names[0], &evo_side_names[1], &evo_liquidity_names[0],
                           &evo_liquidity_names[1], &evo_reasons, &evo_reject_names,
                           &evo_integrity_error};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(objs[i]);
        Py_XSETREF(*slots[i], objs[i]);
    }
    return 0;
}

/* A new reference to item ``i`` of ``names``, or NULL with BookIntegrityError. */
static PyObject *evo_name(PyObject *names, int64_t i, const char *what) {
    if (i < 0 || i >= PyTuple_GET_SIZE(names)) {
        PyErr_Format(evo_integrity_error, "%s %lld is not known", what, (long long)i);
        return NULL;
    }
    PyObject *name = PyTuple_GET_ITEM(names, i);
    if (name == Py_None) {
        PyErr_Format(evo_integrity_error, "%s %lld is not known", what, (long long)i);
        return NULL;
    }
    Py_INCREF(name);
    return name;
}

static inline PyObject *evo_side(int64_t side) {
    PyObject *name = evo_side_names[side == 0 ? 0 : 1];
    Py_INCREF(name);
    return name;
}

/* Records of the book (kind, then up to seven int64 fields; ``width`` int64 each) as a new
 * list of event objects; NULL with an exception on failure.  ``id``, ``price``, ``qty``
 * hold the call's order id, price and quantity as exact ints (borrowed; o NULL where there
 * is none) for the events to share: an int equal to a field is used for it, as the
 * reference book's events hold the objects they were given. */
static PyObject *evo_list_refs(const int64_t *records, Py_ssize_t n, Py_ssize_t width,
                               EvoRef id, EvoRef price, EvoRef qty) {
    /* The last trade's price, qty, maker, taker; the command's seq. */
    EvoRef t_price = {0, NULL}, t_qty = {0, NULL}, t_maker = {0, NULL}, t_taker = {0, NULL};
    EvoRef seq = {0, NULL};
    if (n == 0) return PyList_New(0);
    /* The events go into an item array of our own, which becomes the list's at the end:
     * PyList_New(n) would zero it with calloc first, about a twentieth of a per-call
     * command's event building, for slots that are all set below.  Until then no list
     * exists, so nothing (the collector included) ever sees an unset slot. */
    PyObject **items = (PyObject **)PyMem_Malloc((size_t)n * sizeof(PyObject *));
    if (items == NULL) return PyErr_NoMemory();
    Py_ssize_t i;
    PyObject *f[EVO_MAX_FIELDS];
    for (i = 0; i < n; i++) {
        const int64_t *r = records + i * width;
        int kind = (int)r[0];
        Py_ssize_t k = 0;
        PyObject *event;
        switch (kind) {
        case 10:  /* EV_LEVEL: BookLevel(side, price, qty, seq) */
            f[k++] = evo_side(r[1]);
            f[k++] = evo_int2(r[2], &t_price, &price);
            f[k++] = evo_int1(r[3], &qty);  /* a new level holding just the order */
            f[k] = evo_int1(r[4], &seq);
            evo_ref(&seq, r[4], f[k]);
            k++;
            event = evo_new(kind, f, 4);  /* steals the fields */
            break;
        case 3:   /* EV_FILLED: OrderFilled(order_id, counter, price, qty, remaining, liq) */
            f[k++] = evo_int2(r[1], &t_maker, &t_taker);
            f[k++] = evo_int2(r[2], &t_taker, &t_maker);
            f[k++] = evo_int1(r[3], &t_price);
            f[k++] = evo_int1(r[4], &t_qty);
            f[k++] = evo_long(r[5]);
            f[k] = evo_liquidity_names[r[6] == 0 ? 0 : 1];
            Py_INCREF(f[k]);
            k++;
            event = evo_new(kind, f, 6);  /* steals the fields */
            break;
        case 9:   /* EV_TRADE: Trade(trade_id, price, qty, maker, taker, taker_side) */
            f[k++] = evo_long(r[1]);
            f[k] = evo_int1(r[2], &t_price);
            evo_ref(&t_price, r[2], f[k++]);
            f[k] = evo_int1(r[3], &qty);  /* the whole order in one fill */
            evo_ref(&t_qty, r[3], f[k++]);
            f[k] = evo_long(r[4]);
            evo_ref(&t_maker, r[4], f[k++]);
            f[k] = evo_int1(r[5], &id);
            evo_ref(&t_taker, r[5], f[k++]);
            f[k++] = evo_side(r[6]);
            event = evo_new(kind, f, 6);  /* steals the fields */
            break;
        case 1:   /* EV_ACCEPTED: OrderAccepted(order_id, side, price, qty) */
            f[k++] = evo_int1(r[1], &id);
            f[k++] = evo_side(r[2]);
            f[k++] = evo_int1(r[3], &price);
            f[k++] = evo_int1(r[4], &qty);
            event = evo_new(kind, f, 4);  /* steals the fields */
            break;
        case 4:   /* EV_CANCELED: OrderCanceled(order_id, remaining_qty, reason) */
            f[k++] = evo_int1(r[1], &id);
            f[k++] = evo_long(r[2]);
            f[k++] = evo_name(evo_reasons, r[3], "cancel reason");
            event = evo_new(kind, f, 3);  /* steals the fields */
            break;
        case 5:   /* EV_EXPIRED: OrderExpired(order_id, remaining_qty) */
            f[k++] = evo_int1(r[1], &id);
            f[k++] = evo_long(r[2]);
            event = evo_new(kind, f, 2);  /* steals the fields */
            break;
        case 6:   /* EV_AMENDED: OrderAmended(order_id, price, qty, priority_kept) */
            f[k++] = evo_int1(r[1], &id);
            f[k++] = evo_int1(r[2], &price);
            f[k++] = evo_int1(r[3], &qty);
            f[k] = r[4] ? Py_True : Py_False;
            Py_INCREF(f[k]);
            k++;
            event = evo_new(kind, f, 4);  /* steals the fields */
            break;
        case 2:   /* EV_REJECTED: OrderRejected(order_id, code) */
        case 7:   /* EV_AMEND_REJECTED: AmendRejected(order_id, code) */
        case 8:   /* EV_CANCEL_REJECTED: CancelRejected(order_id, code) */
            f[k++] = evo_int1(r[1], &id);
            f[k++] = evo_name(evo_reject_names, r[2], "reject code");
            event = evo_new(kind, f, 2);  /* steals the fields */
            break;
        default:
            PyErr_Format(evo_integrity_error, "unknown event record kind %lld", (long long)r[0]);
            event = NULL;
        }
        if (event == NULL) goto failed;
        items[i] = event;
    }
    PyListObject *out = (PyListObject *)PyList_New(0);
    if (out == NULL) goto failed;
    out->ob_item = items;  /* the list's own now: list_dealloc frees it with PyMem_Free */
    out->allocated = n;
    Py_SET_SIZE(out, n);
    return (PyObject *)out;
failed:
    while (i > 0) Py_DECREF(items[--i]);
    PyMem_Free(items);
    return NULL;
}

/* evo_list_refs with the call's arguments as objects: ``args`` (borrowed, ``nargs`` of
 * them: order id, price, qty; NULL entries skipped) and their int64 ``values``; only
 * exact ints are shared. */
static PyObject *evo_list_args(const int64_t *records, Py_ssize_t n, Py_ssize_t width,
                               PyObject *const *args, const int64_t *values, Py_ssize_t nargs) {
    EvoRef refs[3] = {{0, NULL}, {0, NULL}, {0, NULL}};
    for (Py_ssize_t a = 0; a < nargs && a < 3; a++) {
        if (args[a] != NULL && PyLong_CheckExact(args[a])) evo_ref(&refs[a], values[a], args[a]);
    }
    return evo_list_refs(records, n, width, refs[0], refs[1], refs[2]);
}

static PyObject *evo_list(const int64_t *records, Py_ssize_t n, Py_ssize_t width) {
    return evo_list_args(records, n, width, NULL, NULL, 0);
}

#endif /* ENGINE_EVENTOBJECTS_H */
