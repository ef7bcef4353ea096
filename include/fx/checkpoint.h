/* Durable counters (--state-dir): checkpoints of the store's totals and of the Kafka offsets they cover,
 * written every --checkpoint-interval, and the restore at start.
 *
 * The ordering that makes a restart exact: exposed <= committed <= durable. A checkpoint is made durable
 * first (written, fsynced); only then are its offsets committed to the group; only once they are committed
 * is it published to the store, which exposes nothing newer (scrapes and pushes). A restart loads the
 * newest checkpoint whose offsets the group has committed (the previous ones are kept for that), restores
 * its counters and starts each partition it is assigned at the later of the checkpoint's offset and the
 * group's. Records counted after the checkpoint are read again, and counted once.
 *
 * Bad state never stops the daemon: a directory that cannot be created or written, a full disk, a torn or
 * corrupt checkpoint are logged and counted; counting and serving go on, nothing newer is published or
 * committed until a checkpoint succeeds again.
 *
 * Thread: create, restore, start, destroy from main; fx_checkpoint_now from any thread (serialized with the
 * checkpoint thread); fx_checkpoint_start_offset from any thread after restore. */
#ifndef FX_CHECKPOINT_H
#define FX_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "fx/family_list.h"
#include "fx/intern.h"
#include "fx/series.h"
#include "fx/store.h"

/* What the checkpoints need from the consumer (NULL functions: no consumer group, so a durable checkpoint
 * counts as committed). */
struct fx_checkpoint_hooks {
	/* Commits each topic[partition] at next. Returns 0 when every one was committed. */
	int (*commit)(void *opaque, const struct fx_partition_offset *offsets, size_t n);
	/* Sets each offset's next to the group's committed offset (-1 when none). Returns 0, or -1 when the
	 * group could not be asked. */
	int (*committed)(void *opaque, struct fx_partition_offset *offsets, size_t n);
	void *opaque;
};

struct fx_checkpoint_config {
	const char *dir;	/* created 0700 when missing */
	int64_t interval_ms;	/* > 0 */
	struct fx_store *store; /* borrowed */
	/* The key's dimensions (borrowed): a checkpoint written with another layout is not used. Restored
	 * strings are interned in layout->strings, hostnames in `hostnames`. */
	const struct fx_key_layout *layout;
	struct fx_intern *hostnames;
	size_t max_series;
	struct fx_checkpoint_hooks hooks;
};

struct fx_checkpoint;

/* The files in the directory: the log of checkpoints being appended to, the previous log (kept until a
 * checkpoint of the new one is committed), and the compaction in progress. */
#define FX_CHECKPOINT_FILE "checkpoint"
#define FX_CHECKPOINT_PREV_FILE "checkpoint.prev"
#define FX_CHECKPOINT_TMP_FILE "checkpoint.tmp"

/* NULL only when out of memory. A directory that cannot be used is logged and counted, not fatal. */
struct fx_checkpoint *fx_checkpoint_create(const struct fx_checkpoint_config *config);
/* Stops the thread; fx_checkpoint_now still works. Accepts NULL. Idempotent. */
void fx_checkpoint_stop(struct fx_checkpoint *checkpoint);
/* Stops the thread (no final checkpoint: call fx_checkpoint_now first) and frees. Accepts NULL. */
void fx_checkpoint_destroy(struct fx_checkpoint *checkpoint);

/* Loads the newest usable checkpoint into the (empty) store, publishes it and writes it again as the base of
 * a new log. Falls back to older checkpoints, then to a clean start, saying which. Returns 0, or -1 when
 * out of memory (a bad or missing checkpoint is a clean start, not an error). Call before the consumer
 * starts. */
int fx_checkpoint_restore(struct fx_checkpoint *checkpoint);

/* Where the restored counters of topic[partition] stop, or -1 when the checkpoint has none. */
int64_t fx_checkpoint_start_offset(const struct fx_checkpoint *checkpoint, const char *topic,
				   int32_t partition);

/* Starts the thread: a checkpoint every interval. Returns 0 or -1. */
int fx_checkpoint_start(struct fx_checkpoint *checkpoint);

/* One checkpoint now: write what changed, commit, publish. Returns 0 when the current totals are durable,
 * committed and published, -1 otherwise. */
int fx_checkpoint_now(struct fx_checkpoint *checkpoint);

/* flow_exporter_checkpoint_* self-metrics: a collect callback (fx_collect_fn). */
int fx_checkpoint_collect(void *checkpoint, struct fx_family_list *out);

/* ---- The file format, for the tests ---- */

/* Reads the checkpoints of one file into a table (max_series, keys interned as for a restore): the one
 * ending at end_index (0 = the newest, 1 the one before, ...). Returns the number of complete checkpoints
 * in the file (>= 0) and fills *series and offsets of the chosen one (owned by the caller), or a negative
 * FX_CHECKPOINT_E_* when none could be read; *why says what was wrong with the file, even on success (a
 * torn tail): FX_CHECKPOINT_OK, or one of the reasons below. */
enum fx_checkpoint_fault {
	FX_CHECKPOINT_OK = 0,
	FX_CHECKPOINT_TORN,    /* a record cut short: the tail after the last complete checkpoint */
	FX_CHECKPOINT_CORRUPT, /* a checksum or a structure that does not match */
	FX_CHECKPOINT_VERSION, /* another magic or format version */
	FX_CHECKPOINT_LAYOUT,  /* written with other --labels / --label-from */
	FX_CHECKPOINT_IO,      /* the file could not be read */
	FX_CHECKPOINT_FAULTS
};
#define FX_CHECKPOINT_E_NONE (-1) /* no complete checkpoint */
#define FX_CHECKPOINT_E_NOMEM (-2)
int fx_checkpoint_read_file(const struct fx_checkpoint_config *config, const char *path, size_t end_index,
			    struct fx_series_table **series, struct fx_partition_offset **offsets,
			    size_t *n_offsets, enum fx_checkpoint_fault *why);
const char *fx_checkpoint_fault_name(enum fx_checkpoint_fault fault);

#endif
