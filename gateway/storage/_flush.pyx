# cython: language_level=3
"""A journal's disk flushes in a thread that never takes the GIL.

The event loop writes each batch's frame and asks for it to be flushed (``request``: a
mutex, a store and a condition signal, with the GIL released, about 100 ns); this thread
runs ``fdatasync`` whenever something written is not yet flushed, then records how far the
file is durable and bumps an eventfd.  The loop watches that eventfd (``add_reader``) and,
when it is readable, completes every batch the flush covered.

Why a C thread and not a Python one: a Python worker must take the GIL back after each
flush to report it, and waits for the busy loop thread to let it go (up to the 5 ms switch
interval); measured, that cost more CPU and tail latency than flushing on the loop
(``gateway.storage.journal``).  This thread runs ``fdatasync``, a mutex and ``write`` on an
eventfd: no Python, no GIL.  One flush covers every frame written before it started, so at
saturation each flush carries several batches and the loop never waits for the disk.
"""

from libc.errno cimport errno
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset


cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t

    ctypedef struct pthread_mutex_t:
        pass

    ctypedef struct pthread_cond_t:
        pass

    int pthread_create(pthread_t* thread, const void* attr,
                       void* (*start)(void*) noexcept nogil, void* arg)
    int pthread_join(pthread_t thread, void** result)
    int pthread_mutex_init(pthread_mutex_t* mutex, const void* attr)
    int pthread_mutex_destroy(pthread_mutex_t* mutex)
    int pthread_mutex_lock(pthread_mutex_t* mutex)
    int pthread_mutex_unlock(pthread_mutex_t* mutex)
    int pthread_cond_init(pthread_cond_t* cond, const void* attr)
    int pthread_cond_destroy(pthread_cond_t* cond)
    int pthread_cond_wait(pthread_cond_t* cond, pthread_mutex_t* mutex)
    int pthread_cond_signal(pthread_cond_t* cond)


cdef extern from "<unistd.h>" nogil:
    int fdatasync(int fd)
    long write(int fd, const void* buf, size_t count)
    int close(int fd)


cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    int EFD_NONBLOCK
    int EFD_CLOEXEC


cdef struct FlushState:
    pthread_mutex_t lock
    pthread_cond_t wake
    int fd  # the journal segment
    int notify_fd  # the eventfd the loop watches
    int64_t requested  # the file's frames end here: flush up to it
    int64_t synced  # durable up to here
    int error  # errno of a failed fdatasync (then nothing more is flushed)
    bint stopping


cdef void* _flush_loop(void* arg) noexcept nogil:
    cdef FlushState* state = <FlushState*>arg
    cdef int64_t target
    cdef uint64_t one = 1
    cdef int failed
    pthread_mutex_lock(&state.lock)
    while True:
        while state.requested <= state.synced and not state.stopping:
            pthread_cond_wait(&state.wake, &state.lock)
        if state.requested <= state.synced:  # stopping, nothing left to flush
            break
        target = state.requested
        pthread_mutex_unlock(&state.lock)
        failed = 0
        if fdatasync(state.fd) != 0:
            failed = errno
        pthread_mutex_lock(&state.lock)
        if failed:
            state.error = failed
        else:
            state.synced = target
        write(state.notify_fd, &one, 8)
        if failed:
            break
    pthread_mutex_unlock(&state.lock)
    return NULL


cdef class FlushThread:
    """``fdatasync`` of one file descriptor in a C thread (see the module docstring)."""

    cdef FlushState* _state
    cdef pthread_t _thread
    cdef bint _running

    def __cinit__(self, int fd, int64_t synced=0):
        self._state = <FlushState*>malloc(sizeof(FlushState))
        if self._state == NULL:
            raise MemoryError()
        memset(self._state, 0, sizeof(FlushState))
        self._state.fd = fd
        self._state.synced = synced
        self._state.requested = synced
        self._state.notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self._state.notify_fd < 0:
            error = errno
            free(self._state)
            self._state = NULL
            raise OSError(error, "eventfd failed")
        pthread_mutex_init(&self._state.lock, NULL)
        pthread_cond_init(&self._state.wake, NULL)
        if pthread_create(&self._thread, NULL, _flush_loop, self._state) != 0:
            close(self._state.notify_fd)
            pthread_mutex_destroy(&self._state.lock)
            pthread_cond_destroy(&self._state.wake)
            free(self._state)
            self._state = NULL
            raise OSError("cannot start the journal's flush thread")
        self._running = True

    @property
    def notify_fd(self) -> int:
        """Readable (an eventfd) after each flush or failure: read 8 bytes to clear it."""
        return self._state.notify_fd if self._state != NULL else -1

    def request(self, int64_t end) -> None:
        """Flush the file up to ``end`` (bytes; everything written before this call)."""
        cdef FlushState* state = self._state
        if state == NULL or not self._running:
            raise RuntimeError("the flush thread is stopped")
        with nogil:
            pthread_mutex_lock(&state.lock)
            if end > state.requested:
                state.requested = end
                pthread_cond_signal(&state.wake)
            pthread_mutex_unlock(&state.lock)

    def progress(self) -> tuple[int, int]:
        """(durable up to this byte, errno of a failed flush or 0)."""
        cdef FlushState* state = self._state
        cdef int64_t synced
        cdef int error
        if state == NULL:
            return (0, 0)
        with nogil:
            pthread_mutex_lock(&state.lock)
            synced = state.synced
            error = state.error
            pthread_mutex_unlock(&state.lock)
        return (synced, error)

    def stop(self) -> None:
        """Flush what was requested, then end the thread (idempotent)."""
        cdef FlushState* state = self._state
        if state == NULL or not self._running:
            return
        with nogil:
            pthread_mutex_lock(&state.lock)
            state.stopping = True
            pthread_cond_signal(&state.wake)
            pthread_mutex_unlock(&state.lock)
            pthread_join(self._thread, NULL)
        self._running = False

    def close(self) -> None:
        """``stop``, then free the thread's state and its eventfd."""
        self._release()

    cdef void _release(self) noexcept:
        cdef FlushState* state = self._state
        if state != NULL and self._running:
            with nogil:
                pthread_mutex_lock(&state.lock)
                state.stopping = True
                pthread_cond_signal(&state.wake)
                pthread_mutex_unlock(&state.lock)
                pthread_join(self._thread, NULL)
            self._running = False
        if self._state != NULL:
            close(self._state.notify_fd)
            pthread_mutex_destroy(&self._state.lock)
            pthread_cond_destroy(&self._state.wake)
            free(self._state)
            self._state = NULL

    def __dealloc__(self):
        self._release()
