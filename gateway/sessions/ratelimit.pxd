# Cython's view of ratelimit.py when compiled (an augmenting .pxd): the bucket's fields
# are C doubles and ``take`` a C call from typed callers.  The .py stays the source.

cdef class TokenBucket:
    cdef public double rate
    cdef public double burst
    cdef public double tokens
    cdef public double updated

    cpdef double take(self, double now)
