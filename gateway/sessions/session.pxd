# Cython's view of session.py when compiled (an augmenting .pxd; the .py stays the source
# and runs as it is without a build).  ``Session`` becomes an extension type: its fields
# are slots read without a dictionary lookup, and its rate-limit buckets are typed, so
# taking a token is a C call.  ``__dict__`` keeps it open to attributes set from outside
# (tests do), as a Python class is.

from gateway.sequencer.venue cimport Venue
from gateway.sessions.ratelimit cimport TokenBucket


cdef class Session:
    cdef public object gateway
    cdef public object _max_buffered_bytes
    cdef public Venue venue
    cdef public object connection
    cdef public object participant_id
    cdef public bint is_admin
    cdef public set channels
    cdef public bint cancel_on_disconnect
    cdef public set placed
    cdef public bint _pruning
    cdef public object _prune_at
    cdef public object prunes
    cdef public bint closed
    cdef public object address
    cdef public TokenBucket _bucket
    cdef public object _dead_man
    cdef public TokenBucket _participant_bucket
    cdef dict __dict__
    cdef object __weakref__

    # The methods an order passes through, called from one another as C functions (a
    # subclass's override still wins: cpdef checks for one).
    cpdef on_frame(self, frame)
    cpdef send(self, data)
    cpdef _reply(self, request_id, result)
    cpdef _participant(self, request_id)
    cpdef _market(self, symbol, request_id)
    cpdef _plain_command(self, plain)
    cpdef _answer_place(self, request_id, reports)
    cpdef _answer_order(self, request_id, picked)
    cpdef _placed(self, reports)
    cpdef _place_outcome(self, reports)
    cpdef _order_ref(self, params, request_id)
    cpdef _answer_change(self, request_id, reports)
    cpdef _changed(self, reports)
    cpdef _change_outcome(self, reports)
