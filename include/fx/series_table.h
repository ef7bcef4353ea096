/* Step (4) of the data path: flow counters keyed by the label tuple, in an open-addressing hash table
 * with a dense array of series (so that merging and copying are linear scans).
 *
 * Thread: a table has one owner at a time (a consumer thread for its delta table, the store for the
 * cumulative one); it is not locked. */
#ifndef FX_SERIES_TABLE_H
#define FX_SERIES_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/series.h"

struct fx_series_table;

#define FX_TABLE_E_FULL (-1)
#define FX_TABLE_E_NOMEM (-2)
/* Not an error: the record went to its hostname's overflow series. */
#define FX_TABLE_FOLDED 1

/* Overflow series (keys with "other" labels) a table holds besides max_series: one per hostname, and the
 * hostnames are bounded by their intern pool (65,536) plus the series with none. */
#define FX_TABLE_FOLDED_MAX ((size_t)65537)

/* max_series bounds the number of held series (keys without "other" labels); memory grows on demand up to
 * it, plus FX_TABLE_FOLDED_MAX overflow series. NULL on allocation failure. The table keeps every extra
 * slot of a key (FX_KEY_EXTRA): its rows are whole struct fx_series. */
struct fx_series_table *fx_series_table_create(size_t max_series);
/* The same, keeping only the first key_extra extra slots of a key (a layout's n_extra): a row is a
 * struct fx_series cut after key.extra[key_extra - 1] (96 bytes with none, against 128). Every key given
 * to the table must have its slots past key_extra zero (what the layout's keys have). */
struct fx_series_table *fx_series_table_create_narrow(size_t max_series, size_t key_extra);
size_t fx_series_table_key_extra(const struct fx_series_table *table);

/* From now on, a new held series past max_series is added to its overflow series (fx_key_overflow of
 * layout, borrowed) instead of being refused: by fx_series_table_add and fx_series_table_merge. */
void fx_series_table_set_fold(struct fx_series_table *table, const struct fx_key_layout *layout);
/* Series without "other" labels: what max_series bounds. */
size_t fx_series_table_count_held(const struct fx_series_table *table);
void fx_series_table_destroy(struct fx_series_table *table);

/* Adds one record to the series of `key` (creating it). Returns 0, FX_TABLE_FOLDED when it went to the
 * overflow series (set_fold), FX_TABLE_E_FULL when a new series would pass max_series (or the overflow
 * series their bound), or FX_TABLE_E_NOMEM. */
__attribute__((warn_unused_result)) int fx_series_table_add(struct fx_series_table *table,
							    const struct fx_series_key *key,
							    enum fx_direction direction, uint64_t bytes,
							    uint64_t packets, int64_t now_ms);

/* The series of key (a row, see fx_series_table_row), created with zero counters (updated_ms INT64_MIN) when
 * absent (*created set), for a table used as a map (topn.c); NULL when full or out of memory. Valid until
 * the table is next modified. */
struct fx_series *fx_series_table_upsert(struct fx_series_table *table, const struct fx_series_key *key,
					 bool *created);

/* Adds every series of src into dst. Returns the number of records of src refused because dst was full. */
uint64_t fx_series_table_merge(struct fx_series_table *dst, const struct fx_series_table *src);

/* Removes every series whose updated_ms < cutoff_ms, except the overflow series; on_removed (may be NULL)
 * sees each one first (a whole copy). Returns how many were removed. */
size_t fx_series_table_expire(struct fx_series_table *table, int64_t cutoff_ms,
			      void (*on_removed)(void *opaque, const struct fx_series *series), void *opaque);

/* Forgets every series, keeps the memory. */
void fx_series_table_clear(struct fx_series_table *table);

size_t fx_series_table_count(const struct fx_series_table *table);
size_t fx_series_table_max(const struct fx_series_table *table);
/* The dense array of series of a table of whole rows (fx_series_table_create), valid until the table is next
 * modified. */
const struct fx_series *fx_series_table_array(const struct fx_series_table *table);
/* Row i < count of any table, valid until the table is next modified; of a narrow table only the extra
 * slots below its key_extra may be read, and it must not be copied as a whole struct: */
const struct fx_series *fx_series_table_row(const struct fx_series_table *table, size_t i);
/* ... copy_row copies row i into a whole struct (the slots past key_extra zero), copy_out the count rows
 * into out[0..count). */
void fx_series_table_copy_row(const struct fx_series_table *table, size_t i, struct fx_series *out);
void fx_series_table_copy_out(const struct fx_series_table *table, struct fx_series *out);
/* Looks a series up (a row, as above); NULL when absent. */
const struct fx_series *fx_series_table_find(const struct fx_series_table *table,
					     const struct fx_series_key *key);

#endif
