# Declarations of idmap.h: int64 id -> int32 slot, open addressing (see the header's notes).

from libc.stdint cimport int32_t, int64_t


cdef extern from "idmap.h" nogil:
    ctypedef struct IdMapCell:
        int64_t key
        int32_t value

    ctypedef struct IdMap:
        IdMapCell* cells
        size_t mask
        size_t size

    int idmap_init(IdMap* m, size_t capacity)
    void idmap_free(IdMap* m)
    int32_t idmap_get(const IdMap* m, int64_t key)
    int idmap_put(IdMap* m, int64_t key, int32_t value)
    int32_t idmap_find(const IdMap* m, int64_t key, size_t* cell)
    int idmap_put_at(IdMap* m, size_t cell, int64_t key, int32_t value)
    int idmap_del(IdMap* m, int64_t key)
