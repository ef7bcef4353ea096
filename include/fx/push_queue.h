/* The remote-write queue on disk (--push-queue-dir): requests an endpoint could not take, kept in order in
 * segment files so that they survive a restart, bounded by bytes (past the bound the oldest are dropped and
 * counted). vmagent's -remoteWrite.tmpDataPath is the model.
 *
 * An entry is one request as it goes on the wire (already encoded and snappy-compressed), in one or two
 * encodings ("parts": a 2.0 request and the 1.0 encoding of the same series, for an auto endpoint that has
 * not yet shown which version it speaks). Each part keeps its protocol version and content type.
 *
 * Thread: one queue belongs to one thread (the endpoint's sender); nothing is locked. fx_push_queue_stats
 * copies the counters for that thread to publish. */
#ifndef FX_PUSH_QUEUE_H
#define FX_PUSH_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* Errors (negative); fx_push_queue_strerror names them. */
#define FX_PQ_E_EMPTY (-1)   /* nothing queued */
#define FX_PQ_E_IO (-2)	     /* the disk refused (logged and counted): the entry is not stored */
#define FX_PQ_E_NOMEM (-3)   /* out of memory */
#define FX_PQ_E_TOO_BIG (-4) /* one entry larger than the bound: dropped and counted */
const char *fx_push_queue_strerror(int rc);

/* The default --push-queue-max-bytes (per endpoint), and the bounds of one part. */
#define FX_PQ_MAX_BYTES_DEFAULT (1ull << 30)
#define FX_PQ_MAX_PARTS 2
#define FX_PQ_CONTENT_TYPE_MAX 127

struct fx_push_queue_part {
	int version; /* 1 or 2 */
	char content_type[FX_PQ_CONTENT_TYPE_MAX + 1];
	char *body; /* owned by whoever holds the entry (fx_push_queue_entry_free) */
	size_t len;
	uint64_t n_series, n_samples;
	int64_t timestamp_ms;
};

struct fx_push_queue_entry {
	struct fx_push_queue_part parts[FX_PQ_MAX_PARTS];
	size_t n_parts; /* 1 or 2 */
};

/* Frees the bodies. Accepts an entry already freed (its bodies NULL). */
void fx_push_queue_entry_free(struct fx_push_queue_entry *entry);

struct fx_push_queue_config {
	const char *dir;	/* the endpoint's directory; created 0700 (and its parent) when missing */
	const char *what;	/* names the queue in the log (the URL without userinfo); copied */
	uint64_t max_bytes;	/* > 0: the bound on the bytes of the queued records */
	uint64_t segment_bytes; /* 0: max_bytes / 8, from 64 KiB to 16 MiB */
};

/* The counters of a queue (self-metrics; push_stats.h). */
struct fx_push_queue_stats {
	uint64_t bytes, requests;		  /* queued now (records on disk, headers included) */
	uint64_t dropped_requests, dropped_bytes; /* oldest dropped past the bound, total */
	uint64_t disk_errors;			  /* writes, syncs, reads, opens, removals that failed */
	uint64_t corrupt;			  /* torn or corrupt regions detected and skipped */
};

struct fx_push_queue;

/* Opens the queue: reads every segment of a previous run in order (each record checked by length and
 * CRC32; a torn or corrupt region is logged, counted and skipped), and never appends to them (a new segment
 * takes what comes). A directory that cannot be read or created is logged and counted, and the queue stays
 * usable: every append tries again. Returns NULL only when out of memory (logged). */
struct fx_push_queue *fx_push_queue_open(const struct fx_push_queue_config *config);
/* Closes the files and frees; what is queued stays on disk. Accepts NULL. */
void fx_push_queue_close(struct fx_push_queue *queue);

/* Appends an entry (borrowed; the bodies are copied to disk) with write() and fdatasync(), after dropping
 * the oldest entries as long as the bound would be passed. Returns 0, FX_PQ_E_TOO_BIG (an entry larger
 * than the bound alone: dropped and counted), FX_PQ_E_IO (disk full, read-only...: logged, counted, the
 * queue unchanged) or FX_PQ_E_NOMEM. */
__attribute__((warn_unused_result)) int fx_push_queue_append(struct fx_push_queue *queue,
							     const struct fx_push_queue_entry *entry);

/* Reads the oldest entry into *entry (owned by the caller afterwards), without removing it. A record that
 * no longer reads back intact is logged, counted, removed, and the next one is read. Returns 0,
 * FX_PQ_E_EMPTY or FX_PQ_E_NOMEM. */
__attribute__((warn_unused_result)) int fx_push_queue_peek(struct fx_push_queue *queue,
							   struct fx_push_queue_entry *entry);

/* Removes the oldest entry (the one peek returned): marked sent on disk and synced, and its segment deleted
 * once every record of it is gone. Returns 0, FX_PQ_E_EMPTY, or FX_PQ_E_IO (the mark could not be synced:
 * logged and counted; the entry is removed from the queue anyway, and a restart may send it again). */
int fx_push_queue_pop(struct fx_push_queue *queue);

/* Entries queued now. */
uint64_t fx_push_queue_requests(const struct fx_push_queue *queue);
/* The latest timestamp_ms of any part queued since open (INT64_MIN: none), so that a restarted sender keeps
 * every series' timestamps increasing after what waits on disk. */
int64_t fx_push_queue_last_timestamp(const struct fx_push_queue *queue);
void fx_push_queue_stats(const struct fx_push_queue *queue, struct fx_push_queue_stats *out);

/* The directory of an endpoint's queue: parent + "/" + 16 hex digits of SHA-256(url), where url is the
 * endpoint's URL without its userinfo (credentials never reach the disk). Returns 0, or -1 when it does not
 * fit in size. */
int fx_push_queue_dir_for(const char *parent, const char *url_without_userinfo, char *out, size_t size);

#endif
