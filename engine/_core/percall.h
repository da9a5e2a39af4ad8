/* percall.h: the per-call API's entry for OrderBook.place, ahead of Cython's own.
 *
 * Cython's wrapper of a def method with nine parameters, any of them by keyword, spends
 * about 170 instructions of a per-call place on the call itself (a switch on the count,
 * the keyword names' table built on every call, a new reference to each argument and its
 * release, a checked conversion per int).  Nearly every caller (the benchmark, the
 * exchange's Python path) passes five exact ints by position: order id, owner, side,
 * price, qty.  For that call pc_place reads the five ints' digits in place and calls the
 * book's core directly (about 100 instructions fewer per place, 3 % of the standard
 * flow's per-call command under callgrind); any other call (keywords, a sixth argument,
 * an int subclass or an object with __index__, a negative int or one past what two digits
 * hold, an out-of-range side) goes to Cython's wrapper unchanged, so the accepted
 * arguments, the errors and their messages stay exactly Cython's.
 *
 * pc_install puts pc_place in the type's dictionary as "place", a method descriptor like
 * the one it replaces (same name, same docstring with its signature, same flags); the
 * original wrapper is kept as the general path.  book.pyx calls it once when the module
 * loads; anything unexpected (the entry not being Cython's FASTCALL method) stops the
 * import rather than leaving a half-installed method.
 */
#ifndef ENGINE_PERCALL_H
#define ENGINE_PERCALL_H

#include <Python.h>
#include <stdint.h>

/* The book's core for five int64 arguments, with the argument objects themselves for
 * the events to share (book.pyx's _place_ints): a new list or NULL with an exception. */
typedef PyObject *(*pc_place_core_fn)(PyObject *self, const int64_t *values,
                                      PyObject *const *args);
typedef PyObject *(*pc_fastcall_fn)(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames);

static pc_place_core_fn pc_place_core;
static pc_fastcall_fn pc_place_general;  /* Cython's wrapper */

/* Does ``o`` hold a non-negative int of at most two 30-bit digits (below 2**60, an int64
 * for sure)?  Then *v is its value.  Exact ints only: a subclass may override __index__
 * and such; it takes the general path, which calls what Cython calls. */
static inline int pc_small_int(PyObject *o, int64_t *v) {
    if (!PyLong_CheckExact(o)) return 0;
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    /* 3.11's layout (as eventobjects.h's evo_long): the sign in ob_size, then digits.
     * The sizes in the order they come (ids and quantities one digit, prices in tiyn
     * two, the side 0 or 1); a negative number goes the general way, where it is
     * rejected or raises as before. */
    const PyLongObject *l = (const PyLongObject *)o;
    Py_ssize_t size = Py_SIZE(o);
    if (size == 1) {
        *v = (int64_t)l->ob_digit[0];
        return 1;
    }
    if (size == 2) {
        *v = (int64_t)l->ob_digit[0] | ((int64_t)l->ob_digit[1] << PyLong_SHIFT);
        return 1;
    }
    *v = 0;
    return size == 0;
#else
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || x < 0) return 0;  /* no error is set for an exact int */
    *v = (int64_t)x;
    return 1;
#endif
}

static PyObject *pc_place(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames) {
    int64_t v[5];
    if (nargs == 5 && kwnames == NULL && pc_small_int(args[0], &v[0])
            && pc_small_int(args[1], &v[1]) && pc_small_int(args[2], &v[2])
            && pc_small_int(args[3], &v[3]) && pc_small_int(args[4], &v[4])
            && (v[2] == 0 || v[2] == 1)) {  /* BUY, SELL; else the general path's error */
        return pc_place_core(self, v, args);
    }
    return pc_place_general(self, args, nargs, kwnames);
}

static PyMethodDef pc_place_def = {"place", NULL, METH_FASTCALL | METH_KEYWORDS, NULL};

/* Replace ``type``'s "place" (Cython's METH_FASTCALL|METH_KEYWORDS method descriptor) by
 * pc_place calling ``core`` for the common call and the original for the rest. */
static int pc_install(PyObject *type, void *core) {
    PyTypeObject *tp = (PyTypeObject *)type;
    PyObject *descr = PyDict_GetItemString(tp->tp_dict, "place");  /* borrowed */
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMethodDescr_Type)
            || ((PyMethodDescrObject *)descr)->d_method->ml_flags
                   != (METH_FASTCALL | METH_KEYWORDS)
            || pc_place_general != NULL) {
        PyErr_SetString(PyExc_ImportError,
                        "OrderBook.place is not the FASTCALL method percall.h replaces");
        return -1;
    }
    PyMethodDef *original = ((PyMethodDescrObject *)descr)->d_method;
    pc_place_def.ml_meth = (PyCFunction)(void (*)(void))pc_place;
    pc_place_def.ml_doc = original->ml_doc;
    PyObject *fast = PyDescr_NewMethod(tp, &pc_place_def);
    if (fast == NULL) return -1;
    pc_place_general = (pc_fastcall_fn)(void (*)(void))original->ml_meth;
    pc_place_core = (pc_place_core_fn)core;
    int failed = PyDict_SetItemString(tp->tp_dict, "place", fast);
    Py_DECREF(fast);
    if (failed) return -1;
    PyType_Modified(tp);
    return 0;
}

#endif /* ENGINE_PERCALL_H */
