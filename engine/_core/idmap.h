/*
 * IdMap: an open-addressing hash map from int64 ids to int32 pool slots.
 *
 * Why not std::unordered_map: it allocates a node per insert and frees it per erase, and
 * order entry inserts and erases on nearly every command.  Here keys and values sit in two
 * flat arrays, probing is linear (cache friendly), and erase uses backward-shift deletion,
 * so there are no tombstones and lookups never slow down as ids come and go.
 *
 * The table keeps its load at or below 1/2 and doubles when it would pass that.  A value
 * of -1 marks an empty cell, so values must be >= 0.  Keys are scrambled with the
 * splitmix64 finalizer, so sequential ids spread evenly.
 */
#ifndef ALATAU_IDMAP_H
#define ALATAU_IDMAP_H

#include <stdint.h>
#include <stdlib.h>

typedef struct {
    int64_t *keys;
    int32_t *values;
    size_t mask;  /* capacity - 1; capacity is a power of two */
    size_t size;
} IdMap;

static inline size_t idmap_home(const IdMap *m, int64_t key) {
    uint64_t z = (uint64_t)key + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (size_t)(z ^ (z >> 31)) & m->mask;
}

/* Returns 0 on success, -1 when out of memory. */
static inline int idmap_init(IdMap *m, size_t capacity) {
    size_t cap = 16;
    while (cap < capacity) cap <<= 1;
    m->keys = (int64_t *)malloc(cap * sizeof(int64_t));
    m->values = (int32_t *)malloc(cap * sizeof(int32_t));
    if (m->keys == NULL || m->values == NULL) {
        free(m->keys);
        free(m->values);
        m->keys = NULL;
        m->values = NULL;
        return -1;
    }
    for (size_t i = 0; i < cap; i++) m->values[i] = -1;
    m->mask = cap - 1;
    m->size = 0;
    return 0;
}

static inline void idmap_free(IdMap *m) {
    free(m->keys);
    free(m->values);
    m->keys = NULL;
    m->values = NULL;
}

/* The value stored for key, or -1. */
static inline int32_t idmap_get(const IdMap *m, int64_t key) {
    size_t i = idmap_home(m, key);
    while (m->values[i] != -1) {
        if (m->keys[i] == key) return m->values[i];
        i = (i + 1) & m->mask;
    }
    return -1;
}

static inline void idmap_put_unchecked(IdMap *m, int64_t key, int32_t value) {
    size_t i = idmap_home(m, key);
    while (m->values[i] != -1) {
        if (m->keys[i] == key) {
            m->values[i] = value;
            return;
        }
        i = (i + 1) & m->mask;
    }
    m->keys[i] = key;
    m->values[i] = value;
    m->size++;
}

/* Insert or replace.  Returns 0 on success, -1 when out of memory (map unchanged). */
static inline int idmap_put(IdMap *m, int64_t key, int32_t value) {
    if ((m->size + 1) * 2 > m->mask + 1) {
        IdMap bigger;
        if (idmap_init(&bigger, (m->mask + 1) * 2) != 0) return -1;
        for (size_t i = 0; i <= m->mask; i++) {
            if (m->values[i] != -1) idmap_put_unchecked(&bigger, m->keys[i], m->values[i]);
        }
        idmap_free(m);
        *m = bigger;
    }
    idmap_put_unchecked(m, key, value);
    return 0;
}

/* Remove key if present (backward-shift deletion).  Returns 1 if it was there. */
static inline int idmap_del(IdMap *m, int64_t key) {
    size_t i = idmap_home(m, key);
    while (m->values[i] != -1) {
        if (m->keys[i] == key) break;
        i = (i + 1) & m->mask;
    }
    if (m->values[i] == -1) return 0;
    size_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->values[j] == -1) break;
        size_t home = idmap_home(m, m->keys[j]);
        /* Move j back to the hole at i unless its home lies cyclically in (i, j]. */
        int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            m->keys[i] = m->keys[j];
            m->values[i] = m->values[j];
            i = j;
        }
    }
    m->values[i] = -1;
    m->size--;
    return 1;
}

#endif
