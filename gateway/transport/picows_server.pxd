# Cython's view of picows_server.py when compiled (an augmenting .pxd; the .py stays the
# source and runs as it is without a build).  ``PicowsConnection`` becomes an extension
# type derived from picows' own ``WSListener`` (``cimport``: picows ships its .pxd), so that
# per frame picows calls ``on_ws_frame`` as a C method, not through a method lookup and an
# argument tuple; the frame's type, ``fin`` flag and payload are read as C fields and calls
# (reading ``msg_type`` from Python built a ``WSMsgType`` member per frame, about 150 ns),
# and the session's ``on_frame`` is a C call.  About 0.3-0.45 µs less per frame.
#
# Built against picows' C declarations: after an upgrade of picows, build again (Cython's
# import checks the base type's size; pyproject.toml pins picows to its major version).

cimport picows.picows

from gateway.sessions.session cimport Session as TypedSession


cdef picows.picows.WSMsgType _TEXT
cdef picows.picows.WSMsgType _BINARY
cdef picows.picows.WSMsgType _CONTINUATION
cdef picows.picows.WSMsgType _CLOSE


cdef class OutputFlusher:
    cdef list _dirty
    cdef object _loop

    cpdef mark(self, PicowsConnection connection)
    cpdef flush(self)


cdef class PicowsConnection(picows.picows.WSListener):
    cdef public object gateway
    cdef public OutputFlusher flusher
    cdef list _out
    cdef Py_ssize_t _out_bytes
    cdef public picows.picows.WSTransport transport
    cdef public TypedSession session
    cdef list _fragments
    cdef object _fragment_type
    cdef Py_ssize_t _fragment_bytes

    cpdef on_ws_frame(self, picows.picows.WSTransport transport, picows.picows.WSFrame frame)
    cpdef send(self, data)
    cpdef flush(self)
    cpdef buffered(self)
