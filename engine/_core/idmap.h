/*
 * IdMap: an open-addressing hash map from int64 ids to int32 pool slots.
 *
 * Why not std::unordered_map: it allocates a node per insert and frees it per erase, and
 * order entry inserts and erases on nearly every command.  Here the entries sit in one
 * flat array, probing is linear (cache friendly), and erase uses backward-shift deletion,
 * so there are no tombstones and lookups never slow down as ids come and go.
 *
 * A cell holds its key and its value together (16 bytes, four to a cache line): a lookup
 * reads one cache line, where keys and values in two arrays cost two misses per lookup on
 * a table larger than the CPU's first-level cache (a cancel's lookup of an order id that
 * was placed long ago is such a miss).
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
    int64_t key;
    int32_t value;  /* -1: the cell is empty */
    int32_t unused;
} IdMapCell;

typedef struct {
    IdMapCell *cells;
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
    m->cells = (IdMapCell *)malloc(cap * sizeof(IdMapCell));
    if (m->cells == NULL) return -1;
    for (size_t i = 0; i < cap; i++) m->cells[i].value = -1;
    m->mask = cap - 1;
    m->size = 0;
    return 0;
}

static inline void idmap_free(IdMap *m) {
    free(m->cells);
    m->cells = NULL;
}

/* The value stored for key, or -1. */
static inline int32_t idmap_get(const IdMap *m, int64_t key) {
    size_t i = idmap_home(m, key);
    for (;;) {
        const IdMapCell *c = &m->cells[i];
        if (c->value == -1 || c->key == key) return c->value;
        i = (i + 1) & m->mask;
    }
}

static inline void idmap_put_unchecked(IdMap *m, int64_t key, int32_t value) {
    size_t i = idmap_home(m, key);
    while (m->cells[i].value != -1) {
        if (m->cells[i].key == key) {
            m->cells[i].value = value;
            return;
        }
        i = (i + 1) & m->mask;
    }
    m->cells[i].key = key;
    m->cells[i].value = value;
    m->size++;
}

/* Insert or replace.  Returns 0 on success, -1 when out of memory (map unchanged). */
static inline int idmap_put(IdMap *m, int64_t key, int32_t value) {
    if ((m->size + 1) * 2 > m->mask + 1) {
        IdMap bigger;
        if (idmap_init(&bigger, (m->mask + 1) * 2) != 0) return -1;
        for (size_t i = 0; i <= m->mask; i++) {
            if (m->cells[i].value != -1)
                idmap_put_unchecked(&bigger, m->cells[i].key, m->cells[i].value);
        }
        idmap_free(m);
        *m = bigger;
    }
    idmap_put_unchecked(m, key, value);
    return 0;
}

/* The value stored for key, or -1 with *cell the empty cell where key would go: what
 * idmap_put_at then fills without hashing and probing again (an order's place looks its
 * id up to reject a duplicate, then inserts it). */
static inline int32_t idmap_find(const IdMap *m, int64_t key, size_t *cell) {
    size_t i = idmap_home(m, key);
    for (;;) {
        const IdMapCell *c = &m->cells[i];
        if (c->value == -1 || c->key == key) {
            *cell = i;
            return c->value;
        }
        i = (i + 1) & m->mask;
    }
}

/* Insert key, absent, at the cell idmap_find gave for it, the map unchanged since; if the
 * insert needs the table to grow, the cell means nothing and idmap_put places it.
 * Returns 0 on success, -1 when out of memory (map unchanged). */
static inline int idmap_put_at(IdMap *m, size_t cell, int64_t key, int32_t value) {
    if ((m->size + 1) * 2 > m->mask + 1) return idmap_put(m, key, value);
    m->cells[cell].key = key;
    m->cells[cell].value = value;
    m->size++;
    return 0;
}

/* Remove key if present (backward-shift deletion).  Returns 1 if it was there. */
static inline int idmap_del(IdMap *m, int64_t key) {
    size_t i = idmap_home(m, key);
    while (m->cells[i].value != -1) {
        if (m->cells[i].key == key) break;
        i = (i + 1) & m->mask;
    }
    if (m->cells[i].value == -1) return 0;
    size_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->cells[j].value == -1) break;
        size_t home = idmap_home(m, m->cells[j].key);
        /* Move j back to the hole at i unless its home lies cyclically in (i, j]. */
        int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            m->cells[i] = m->cells[j];
            i = j;
        }
    }
    m->cells[i].value = -1;
    m->size--;
    return 1;
}

#endif
