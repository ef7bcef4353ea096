/* Steps (2)-(4) for one consumer thread: message -> records -> direction -> sampling rate -> delta table.
 *
 * Thread: owned by one consumer thread. Nothing here takes a lock per record: the decoder, the delta table
 * and the statistics belong to the thread. Hostnames are interned through a shared, locked pool, but a
 * small direct-mapped cache in front of it answers almost every record (a router sends many records).
 *
 * Sampling: the thread keeps a reference to the current --sampling-rates map and checks once per message
 * whether a reload swapped it (one atomic load); bytes and packets are multiplied exactly in 64 bits, and
 * a product that does not fit makes the record invalid (reason sampling_overflow), never a wrapped
 * counter. */
#include "fx/ingest.h"

#include <stdlib.h>
#include <string.h>

#include "fx/buf.h"
#include "fx/hash.h"
#include "fx/log.h"

#define HOSTNAME_CACHE_SLOTS 256 /* power of two */
#define STRING_CACHE_SLOTS 4096	 /* power of two: the extra dimensions' strings -> intern ids */

struct hostname_slot {
	const char *interned; /* NUL-terminated, from the pool */
	size_t len;
};

struct string_slot {
	uint32_t id; /* 0: empty */
	const char *interned;
	size_t len;
};

/* Where extra dimension i of the layout is read from: decoder key `key` (and `mask` for a prefix), or the
 * record's peer_ip_src (exporter). */
struct dim_source {
	int key, mask; /* -1: none */
	bool peer_ip_src;
};

/* The last (hostname, peer_ip_src) pair noted for a hostname: a record of a known pair costs a hash. */
struct peer_slot {
	const char *hostname; /* interned */
	uint32_t peer_hash;
};

struct fx_ingest {
	struct fx_ingest_config config;
	const struct fx_key_layout *layout; /* NULL when none */
	struct fx_decoder_key keys[FX_FLOW_EXTRA_MAX];
	struct dim_source sources[FX_KEY_EXTRA];
	struct string_slot *strings; /* STRING_CACHE_SLOTS, only with a layout with string dimensions */
	struct fx_decoder *decoder;
	struct fx_series_table *delta;
	struct fx_ingest_stats stats;
	struct fx_ratelimit invalid_log;
	int64_t now_ms; /* of the message being counted */
	struct hostname_slot hostnames[HOSTNAME_CACHE_SLOTS];
	struct peer_slot peers[HOSTNAME_CACHE_SLOTS];
	struct fx_rate_map *rates; /* a reference to the --sampling-rates map, NULL when none */
	uint64_t rates_generation;
	uint32_t default_rate;
	uint64_t rate_sources[FX_RATE_SOURCE_COUNT]; /* flows counted, by where their rate came from */
	/* The offsets the delta covers, not handed over yet (fx_ingest_note_offset). */
	struct fx_partition_offset *offsets;
	size_t n_offsets, cap_offsets;
	size_t last_noted; /* the entry the last note went to (valid while < n_offsets) */
};

static int add_key(struct fx_ingest *ingest, size_t *n, const char *name, enum fx_key_type type, uint64_t max)
{
	if (*n == FX_FLOW_EXTRA_MAX)
		return -1;
	ingest->keys[*n] = (struct fx_decoder_key){name, type, max};
	return (int)(*n)++;
}

/* The decoder keys the layout's extra dimensions read, and the cache of their strings. Returns 0 or -1. */
static int set_layout(struct fx_ingest *ingest, const struct fx_key_layout *layout)
{
	static const enum fx_key_type key_types[] = {[FX_DIM_NUMBER] = FX_KEY_NUMBER,
						     [FX_DIM_TEXT] = FX_KEY_STRING,
						     [FX_DIM_SCALAR] = FX_KEY_SCALAR,
						     [FX_DIM_NET] = FX_KEY_STRING};
	size_t n = 0;
	ingest->layout = layout;
	ingest->config.label_mask = layout->mask;
	/* The delta never folds: a key the total holds must reach its series even when this delta has seen
	 * max_series other keys; a full delta is handed over at once instead (fx_store_handoff_full). */
	for (size_t i = 0; i < layout->n_extra; i++) {
		const struct fx_dimension *dim = &layout->extra[i];
		struct dim_source *source = &ingest->sources[i];
		*source = (struct dim_source){-1, -1, false};
		if (!strcmp(dim->key, "peer_ip_src")) {
			source->peer_ip_src = true;
			continue;
		}
		source->key = add_key(ingest, &n, dim->key, key_types[dim->kind], dim->max);
		if (dim->kind == FX_DIM_NET)
			source->mask = add_key(ingest, &n, dim->mask_key, FX_KEY_NUMBER, dim->max);
		if (source->key < 0 || (dim->kind == FX_DIM_NET && source->mask < 0))
			return -1;
	}
	if (layout->n_extra) {
		ingest->strings = calloc(STRING_CACHE_SLOTS, sizeof(*ingest->strings));
		if (!ingest->strings)
			return -1;
	}
	return fx_decoder_set_keys(ingest->decoder, ingest->keys, n);
}

struct fx_ingest *fx_ingest_create(const struct fx_ingest_config *config)
{
	struct fx_ingest *ingest = calloc(1, sizeof(*ingest));
	if (!ingest)
		goto fail;
	ingest->config = *config;
	ingest->decoder = fx_decoder_create(config->max_record_bytes);
	ingest->delta =
	    fx_series_table_create_narrow(config->max_series, config->layout ? config->layout->n_extra : 0);
	if (!ingest->decoder || !ingest->delta)
		goto fail;
	if (config->layout && set_layout(ingest, config->layout))
		goto fail;
	if (config->sampling) {
		ingest->rates_generation = fx_sampling_generation(config->sampling);
		ingest->rates = fx_sampling_acquire(config->sampling);
		ingest->default_rate = fx_sampling_default_rate(config->sampling);
	}
	return ingest;
fail:
	fx_error("ingest: out of memory");
	fx_ingest_destroy(ingest);
	return NULL;
}

void fx_ingest_destroy(struct fx_ingest *ingest)
{
	if (!ingest)
		return;
	fx_decoder_destroy(ingest->decoder);
	fx_series_table_destroy(ingest->delta);
	fx_rate_map_unref(ingest->rates);
	free(ingest->strings);
	free(ingest->offsets);
	free(ingest);
}

static const char *intern_hostname(struct fx_ingest *ingest, const char *name, size_t len)
{
	struct hostname_slot *slot =
	    &ingest->hostnames[fx_hash_bytes(name, len) & (HOSTNAME_CACHE_SLOTS - 1)];
	if (slot->interned && slot->len == len && memcmp(slot->interned, name, len) == 0)
		return slot->interned;
	const char *interned = fx_intern_get(ingest->config.hostnames, name, len);
	if (interned) {
		slot->interned = interned;
		slot->len = len;
	}
	return interned;
}

/* The intern id of an extra dimension's string, through the thread's cache; 0 when the pool is full. */
static uint32_t intern_string(struct fx_ingest *ingest, const char *text, size_t len)
{
	struct string_slot *slot = &ingest->strings[fx_hash_bytes(text, len) & (STRING_CACHE_SLOTS - 1)];
	if (slot->id && slot->len == len && memcmp(slot->interned, text, len) == 0)
		return slot->id;
	uint32_t id = fx_intern_id(ingest->layout->strings, text, len);
	if (id) {
		*slot = (struct string_slot){id, fx_intern_string(ingest->layout->strings, id), len};
	}
	return id;
}

/* The value of extra dimension i: true with key->extra[i] set, false when the record has none. Sets
 * *full when a string could not be interned (the record then goes to its overflow series). */
static bool extra_value(struct fx_ingest *ingest, const struct fx_flow *flow, size_t i, uint32_t *out,
			bool *full)
{
	const struct fx_dimension *dim = &ingest->layout->extra[i];
	const struct dim_source *source = &ingest->sources[i];
	char text[80];
	const char *bytes;
	size_t len;
	if (source->peer_ip_src) {
		bytes = flow->peer_ip_src;
		len = flow->peer_ip_src_len;
	} else {
		const struct fx_flow_value *value = &flow->extra[source->key];
		if (value->type == FX_VALUE_ABSENT)
			return false;
		if (dim->kind == FX_DIM_NUMBER) {
			*out = (uint32_t)value->number;
			return true;
		}
		bytes = value->text;
		len = value->len;
		if (value->type == FX_VALUE_NUMBER) {
			len = fx_u64_to_dec(value->number, text);
			bytes = text;
		} else if (dim->kind == FX_DIM_NET && flow->extra[source->mask].type == FX_VALUE_NUMBER &&
			   len + 5 <= sizeof(text)) {
			memcpy(text, bytes, len);
			text[len++] = '/';
			len += fx_u64_to_dec(flow->extra[source->mask].number, text + len);
			bytes = text;
		}
	}
	if (!len)
		return false; /* an empty value is no label */
	*out = intern_string(ingest, bytes, len);
	if (!*out)
		*full = true;
	return *out != 0;
}

static void log_invalid(struct fx_ingest *ingest, enum fx_record_kind kind, const char *record, size_t len)
{
	uint64_t suppressed;
	if (!fx_ratelimit_allow(&ingest->invalid_log, ingest->now_ms, &suppressed))
		return;
	int shown = len > 200 ? 200 : (int)len;
	fx_warn("invalid record (%s), skipped: %.*s%s%s", fx_record_kind_name(kind), shown, record,
		len > 200 ? "..." : "", suppressed ? " (more invalid records were not logged)" : "");
}

/* Notes the exporter address behind a hostname label when this thread has not seen the pair yet. */
static void note_peer(struct fx_ingest *ingest, const char *hostname, const struct fx_flow *flow)
{
	uint32_t hash = (uint32_t)fx_hash_bytes(flow->peer_ip_src, flow->peer_ip_src_len);
	uintptr_t bits = (uintptr_t)hostname;
	struct peer_slot *slot = &ingest->peers[(bits >> 4 ^ bits >> 12) & (HOSTNAME_CACHE_SLOTS - 1)];
	if (slot->hostname == hostname && slot->peer_hash == hash)
		return;
	fx_exporter_peers_note(ingest->config.peers, hostname, flow->peer_ip_src, flow->peer_ip_src_len);
	*slot = (struct peer_slot){hostname, hash};
}

/* The rate this flow is multiplied by, and where it came from (the order of sampling.h). */
static uint32_t rate_of(const struct fx_ingest *ingest, const struct fx_flow *flow,
			enum fx_rate_source *source)
{
	if (ingest->rates) {
		uint32_t rate = 0;
		if (flow->hostname)
			rate = fx_rate_map_lookup(ingest->rates, flow->hostname, flow->hostname_len);
		if (!rate && flow->peer_ip_src && flow->peer_ip_src != flow->hostname)
			rate = fx_rate_map_lookup(ingest->rates, flow->peer_ip_src, flow->peer_ip_src_len);
		if (rate) {
			*source = FX_RATE_FILE;
			return rate;
		}
	}
	if (flow->sampling_rate) {
		*source = flow->sampling_rate == 1 ? FX_RATE_RECORD_ONE : FX_RATE_RECORD;
		return flow->sampling_rate;
	}
	if (ingest->default_rate) {
		*source = FX_RATE_FLAG;
		return ingest->default_rate;
	}
	*source = FX_RATE_UNKNOWN;
	return 1;
}

/* Bytes and packets times the rate. False when a product does not fit in 64 bits. */
static bool renormalize(uint32_t rate, uint64_t *bytes, uint64_t *packets)
{
	if (rate == 1)
		return true;
	return !__builtin_mul_overflow(*bytes, (uint64_t)rate, bytes) &&
	       !__builtin_mul_overflow(*packets, (uint64_t)rate, packets);
}

/* The extra dimensions of the key. A string the pool cannot hold sends the record to its overflow series. */
static void add_extras(struct fx_ingest *ingest, const struct fx_flow *flow, struct fx_series_key *key)
{
	bool full = false;
	for (size_t i = 0; i < ingest->layout->n_extra; i++) {
		if (extra_value(ingest, flow, i, &key->extra[i], &full))
			key->present |= FX_LABEL_EXTRA(i);
	}
	if (full) {
		struct fx_series_key folded;
		fx_key_overflow(ingest->layout, key, &folded);
		*key = folded;
	}
}

static void count_record(void *opaque, enum fx_record_kind kind, const struct fx_flow *flow,
			 const char *record, size_t len)
{
	struct fx_ingest *ingest = opaque;
	enum fx_rate_source source = FX_RATE_UNKNOWN;
	uint64_t bytes = 0, packets = 0;
	if (kind == FX_REC_FLOW) {
		bytes = flow->bytes;
		packets = flow->packets;
		if (!renormalize(rate_of(ingest, flow, &source), &bytes, &packets))
			kind = FX_REC_INVALID_SAMPLING_OVERFLOW;
	}
	ingest->stats.records[kind]++;
	if (kind != FX_REC_FLOW) {
		if (kind >= FX_REC_FIRST_INVALID)
			log_invalid(ingest, kind, record, len);
		return;
	}
	enum fx_direction direction = fx_classify(ingest->config.local, flow->as_src, flow->as_dst);
	if (direction == FX_DIR_NONE) {
		ingest->stats.not_local++;
		return;
	}
	uint32_t mask = ingest->config.label_mask;
	struct fx_series_key key = {0};
	if ((mask & FX_LABEL_HOSTNAME) && flow->hostname) {
		key.hostname = intern_hostname(ingest, flow->hostname, flow->hostname_len);
		if (!key.hostname) {
			ingest->stats.refused_hostname_limit++;
			return;
		}
		key.present |= FX_LABEL_HOSTNAME;
		if (ingest->config.peers && flow->peer_ip_src && flow->peer_ip_src != flow->hostname)
			note_peer(ingest, key.hostname, flow);
	}
	if (mask & FX_LABEL_SOURCE_AS) {
		key.as_src = flow->as_src;
		key.present |= FX_LABEL_SOURCE_AS;
	}
	if (mask & FX_LABEL_DESTINATION_AS) {
		key.as_dst = flow->as_dst;
		key.present |= FX_LABEL_DESTINATION_AS;
	}
	if ((mask & FX_LABEL_IFACE_IN) && flow->has_iface_in) {
		key.iface_in = flow->iface_in;
		key.present |= FX_LABEL_IFACE_IN;
	}
	if ((mask & FX_LABEL_IFACE_OUT) && flow->has_iface_out) {
		key.iface_out = flow->iface_out;
		key.present |= FX_LABEL_IFACE_OUT;
	}
	if (ingest->layout && ingest->layout->n_extra)
		add_extras(ingest, flow, &key);
	int rc = fx_series_table_add(ingest->delta, &key, direction, bytes, packets, ingest->now_ms);
	if (rc == FX_TABLE_E_FULL) {
		fx_store_handoff_full(ingest->config.store, ingest->config.worker, ingest->delta);
		rc = fx_series_table_add(ingest->delta, &key, direction, bytes, packets, ingest->now_ms);
	}
	if (rc < 0) {
		ingest->stats.refused_series_limit++;
	} else {
		ingest->stats.counted++;
		ingest->stats.overflowed += rc == FX_TABLE_FOLDED || key.other;
		ingest->rate_sources[source]++;
	}
}

/* A reload swapped the rates map: take the new one (rarely: the generation changes only on a reload). */
static void refresh_rates(struct fx_ingest *ingest)
{
	struct fx_sampling *sampling = ingest->config.sampling;
	uint64_t generation = fx_sampling_generation(sampling);
	if (generation == ingest->rates_generation)
		return;
	fx_rate_map_unref(ingest->rates);
	ingest->rates = fx_sampling_acquire(sampling);
	ingest->rates_generation = generation;
}

void fx_ingest_message(struct fx_ingest *ingest, const char *message, size_t len, int64_t now_ms)
{
	ingest->stats.messages++;
	ingest->now_ms = now_ms;
	if (ingest->config.sampling)
		refresh_rates(ingest);
	fx_decode_message(ingest->decoder, message, len, count_record, ingest);
}

bool fx_ingest_flush(struct fx_ingest *ingest, bool wait)
{
	/* The offsets go with the counts they cover, in the same merge; offsets alone (messages without a
	 * record counted) too, so that a checkpoint covers them. */
	if ((fx_series_table_count(ingest->delta) || ingest->n_offsets) &&
	    fx_store_handoff(ingest->config.store, ingest->config.worker, ingest->delta, ingest->offsets,
			     ingest->n_offsets, wait))
		ingest->n_offsets = 0;
	if (ingest->config.sampling)
		fx_sampling_publish(ingest->config.sampling, ingest->config.worker, ingest->rate_sources);
	return ingest->n_offsets == 0 && fx_series_table_count(ingest->delta) == 0;
}

const struct fx_ingest_stats *fx_ingest_get_stats(const struct fx_ingest *ingest)
{
	return &ingest->stats;
}

int fx_ingest_note_offset(struct fx_ingest *ingest, const char *topic, int32_t partition, int64_t next)
{
	/* A batch holds runs of messages of one partition: the entry of the last note is tried first, so that
	 * a message costs one comparison, not a search of every partition the worker reads. */
	if (ingest->last_noted < ingest->n_offsets) {
		struct fx_partition_offset *p = &ingest->offsets[ingest->last_noted];
		if (p->partition == partition && strcmp(p->topic, topic) == 0) {
			if (next > p->next)
				p->next = next;
			return 0;
		}
	}
	if (fx_partition_offsets_advance(&ingest->offsets, &ingest->n_offsets, &ingest->cap_offsets, topic,
					 partition, next))
		return -1;
	for (size_t i = 0; i < ingest->n_offsets; i++)
		if (ingest->offsets[i].partition == partition && strcmp(ingest->offsets[i].topic, topic) == 0)
			ingest->last_noted = i;
	return 0;
}
