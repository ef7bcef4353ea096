/* Steps (2)-(4) for one consumer thread: decode a Kafka message, classify each record, multiply its bytes
 * and packets by its sampling rate (sampling.h), and add it to the thread's delta table, with no lock per
 * record. Also keeps the thread's record statistics.
 *
 * Thread: an ingest step is owned by one consumer thread. */
#ifndef FX_INGEST_H
#define FX_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/classify.h"
#include "fx/exporter_peers.h"
#include "fx/flow_decode.h"
#include "fx/intern.h"
#include "fx/sampling.h"
#include "fx/store.h"

struct fx_ingest_config {
	const struct fx_local_asns *local; /* borrowed, immutable */
	uint32_t label_mask;		   /* FX_LABEL_* kept (when layout is NULL) */
	/* The dimensions of the key (--labels, --label-from); borrowed, immutable. NULL: label_mask's built-in
	 * labels only, and no overflow series (a full table refuses). */
	const struct fx_key_layout *layout;
	size_t max_series;		   /* bound of the delta table */
	size_t max_record_bytes;
	struct fx_intern *hostnames; /* borrowed, shared by all workers */
	struct fx_store *store;	     /* borrowed; where flushes hand the delta over */
	size_t worker;		     /* this thread's number in the store */
	/* Borrowed; where sampling rates come from (sampling.h). NULL: records are multiplied by their own
	 * sampling_rate only, and the rate sources are not published. */
	struct fx_sampling *sampling;
	/* Borrowed; where the exporter address behind each hostname label is noted (for interface names).
	 * NULL: not noted. */
	struct fx_exporter_peers *peers;
};

/* What one ingest step has seen since it was created. */
struct fx_ingest_stats {
	uint64_t messages;
	uint64_t records[FX_REC_KIND_COUNT]; /* by what the decoder made of them */
	uint64_t counted;		     /* flows added to a series */
	uint64_t not_local;		     /* flows with neither AS local */
	uint64_t refused_series_limit;	     /* flows refused: the delta table was full */
	uint64_t refused_hostname_limit;     /* flows refused: too many distinct hostnames */
	uint64_t overflowed;		     /* flows added to an overflow series (table or string pool full) */
};

struct fx_ingest;

struct fx_ingest *fx_ingest_create(const struct fx_ingest_config *config);
/* Accepts NULL. Counts not flushed are lost: flush first. */
void fx_ingest_destroy(struct fx_ingest *ingest);

/* Decodes and counts every record of one Kafka message. Bad records are counted by reason and logged at a
 * bounded rate. */
void fx_ingest_message(struct fx_ingest *ingest, const char *message, size_t len, int64_t now_ms);

/* Merges the delta table into the store (see fx_store_handoff; `wait`: even if the store is busy) and
 * publishes the rate-source counts. Returns true when nothing is left to hand over, false when the store
 * was busy (call again at the next flush). */
bool fx_ingest_flush(struct fx_ingest *ingest, bool wait);

const struct fx_ingest_stats *fx_ingest_get_stats(const struct fx_ingest *ingest);

/* After a message of topic[partition] is counted (fx_ingest_message): its offset + 1, which the next flush
 * hands to the store with the counts (durable mode, --state-dir). Returns 0 or -1 (memory: the offset is
 * not noted, so the checkpoint covers less, never more). */
int fx_ingest_note_offset(struct fx_ingest *ingest, const char *topic, int32_t partition, int64_t next);

#endif
