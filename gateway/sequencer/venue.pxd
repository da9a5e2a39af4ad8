# Cython's view of venue.py when compiled (an augmenting .pxd; the .py stays the source and
# runs as it is without a build).  The venue and its batches become extension types: their
# fields are slots read without a dictionary lookup, and the methods every command passes
# through are called from typed callers (the sessions) as C functions.  ``__dict__`` keeps
# the venue open to attributes set from outside (tests replace ``query``), as a Python
# class is.


cdef class _Batch:
    cdef public object durable
    cdef public object outcomes
    cdef public list dones
    cdef public list queries


cdef class Venue:
    cdef public object host
    cdef public object clock_ms
    cdef public object tapes
    cdef public object channels
    cdef public object scales
    cdef public dict order_listeners
    cdef public object commands_executed
    cdef public object on_published
    cdef public object published_seq
    cdef public object _pending
    cdef public object _unpublished
    cdef public object failure
    cdef public object _published
    cdef public bint _failed
    cdef public object _wakeup
    cdef public object _last_ts
    cdef public object _task
    cdef public bint _closed
    cdef dict __dict__
    cdef object __weakref__

    cpdef submit(self, build, done=*)
    cpdef _stamp(self)
    cpdef _execute_batch(self, batch)
    cpdef _publish_ready(self)
    cpdef _published_commands(self, outcomes, queries)
    cpdef publish_batch(self, results)
    cpdef _publish_private(self, reports)
    cpdef _publish_public(self, book_changes, trades)
