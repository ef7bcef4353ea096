/* Checkpoints of the counters and of the offsets they cover (--state-dir), and the restore at start.
 *
 * DESIGN
 * The state directory holds a log of checkpoints, `checkpoint`, appended to every --checkpoint-interval,
 * and the log before it, `checkpoint.prev`. A log starts with a file header and then holds checkpoints,
 * each a BEGIN record, SERIES records and an END record carrying the offset each partition's counts
 * cover. A full checkpoint (BEGIN with `full` set) holds every series; a delta one only the series that
 * changed since the checkpoint before it, with their cumulative values (so replaying is an overwrite, never
 * an addition). Every record carries its length and a CRC32 of its type, length and payload, and a
 * checkpoint counts only once its END is read: a record torn by a crash or a full disk, or a flipped
 * byte, ends the log there, and the checkpoint before it is used.
 *
 * Compaction: when the log has grown past twice its base (the last full checkpoint) and its last
 * checkpoint is committed, a new log is written whole to `checkpoint.tmp`, fsynced, the current log is
 * renamed to `checkpoint.prev`, the new one to `checkpoint`, and the directory is fsynced. Until then the
 * log is only appended to (fdatasync after every checkpoint); a failed append is truncated back to the
 * last good checkpoint before the next one is written.
 *
 * Ordering: exposed <= committed <= durable. A cycle takes a consistent copy (fx_store_state_take: the
 * totals and their offsets from one merge), writes it, makes it durable, commits the offsets that advanced
 * to the group, and only then publishes it to the store, which exposes nothing newer. At start the newest
 * checkpoint (of both logs) whose every offset the group has committed is restored: a newer one whose
 * commit did not happen (a crash between the two) is skipped, because another member may have counted its
 * records from the group's offset meanwhile. Partitions start at the later of the checkpoint's offset and
 * the group's, and only partitions this process is assigned are sought (the consumer asks).
 *
 * Thread: the checkpoint thread runs the cycles; fx_checkpoint_now runs one from any thread; `lock`
 * serializes them. `stats_lock` guards the statistics the collector reads. */
#define _GNU_SOURCE
#include "fx/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fx/buf.h"
#include "fx/clock.h"
#include "fx/log.h"
#include "fx/series_table.h"
#include "fx/thread_name.h"

#define MAGIC "FXCP"
#define FORMAT_VERSION 1u
#define HEADER_SIZE 12 /* magic, version, CRC32 of both */
#define RECORD_HEAD 8  /* type, payload length */
#define RECORD_TAIL 4  /* CRC32 of head and payload */
#define RECORD_MAX (16u << 20)
#define SERIES_CHUNK 4096 /* series per SERIES record */
#define STRING_NONE 0xffffu
#define COMPACT_SLACK (1u << 20)

enum record_type { REC_BEGIN = 1, REC_SERIES = 2, REC_END = 3 };

struct stats {
	uint64_t writes[2]; /* failure, success */
	uint64_t commits[2];
	uint64_t bytes_written;
	uint64_t load_faults[FX_CHECKPOINT_FAULTS];
	int64_t last_success_ms;
	double last_duration_s;
	uint64_t last_series_written;
	bool healthy;
	const char *restored; /* "newest", "previous", "older", "none" */
};

struct fx_checkpoint {
	struct fx_checkpoint_config config;
	char *dir;
	char path[3][4096]; /* FX_CHECKPOINT_FILE, _PREV_FILE, _TMP_FILE */
	uint32_t layout_id;

	pthread_mutex_t lock; /* one cycle at a time; guards everything up to stats */
	int fd;		      /* the log appended to; -1: the next checkpoint starts a new one */
	off_t good_size;      /* the log up to its last complete checkpoint */
	bool torn_tail;	      /* a failed append is still to be truncated */
	bool keep_prev;	      /* the next new log replaces the current one without rotating it */
	off_t base_size;      /* of the last full checkpoint */
	uint64_t seq;
	struct fx_store_state *written; /* the last durable checkpoint */
	bool written_committed;
	struct fx_partition_offset *committed; /* what the group has of ours, per partition */
	size_t n_committed, cap_committed;
	struct fx_buf out;
	struct fx_ratelimit fail_log;

	struct fx_partition_offset *restored; /* immutable after restore */
	size_t n_restored;

	pthread_mutex_t stats_lock;
	struct stats stats;

	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	bool stop, started;
	pthread_t thread;
};

const char *fx_checkpoint_fault_name(enum fx_checkpoint_fault fault)
{
	static const char *const names[] = {"ok", "torn", "corrupt", "version", "layout", "io"};
	return fault < FX_CHECKPOINT_FAULTS ? names[fault] : "unknown";
}

/* ---- Encoding ---- */

static void put(struct fx_buf *out, const void *bytes, size_t n, int *rc)
{
	if (!*rc)
		*rc = fx_buf_append(out, bytes, n);
}
static void put_u16(struct fx_buf *out, uint16_t v, int *rc)
{
	put(out, &v, 2, rc);
}
static void put_u32(struct fx_buf *out, uint32_t v, int *rc)
{
	put(out, &v, 4, rc);
}
static void put_u64(struct fx_buf *out, uint64_t v, int *rc)
{
	put(out, &v, 8, rc);
}
static void put_string(struct fx_buf *out, const char *s, int *rc)
{
	size_t len = s ? strlen(s) : 0;
	if (len >= STRING_NONE)
		len = STRING_NONE - 1;
	put_u16(out, s ? (uint16_t)len : STRING_NONE, rc);
	put(out, s, len, rc);
}

/* Opens a record: its head, with the length patched by end_record. Returns where it starts. */
static size_t begin_record(struct fx_buf *out, enum record_type type, int *rc)
{
	size_t at = out->len;
	put_u32(out, type, rc);
	put_u32(out, 0, rc);
	return at;
}

static void end_record(struct fx_buf *out, size_t at, int *rc)
{
	if (*rc)
		return;
	uint32_t len = (uint32_t)(out->len - at - RECORD_HEAD);
	memcpy(out->data + at + 4, &len, 4);
	uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)out->data + at, (uInt)(out->len - at));
	put_u32(out, crc, rc);
}

/* An identity of the key's dimensions: a checkpoint of another layout cannot be read back. The interface
 * names are not in the key (looked up when encoding), so keeping or dropping them keeps the identity; the
 * AS-name bits stay in it, as they always were, so that existing checkpoints remain readable. */
static uint32_t layout_id(const struct fx_key_layout *layout)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	uint32_t mask = layout->mask & ~(uint32_t)FX_LABEL_IFACE_NAMES, n = (uint32_t)layout->n_extra;
	crc = crc32(crc, (const Bytef *)&mask, 4);
	crc = crc32(crc, (const Bytef *)&n, 4);
	for (size_t i = 0; i < layout->n_extra; i++) {
		const struct fx_dimension *dim = &layout->extra[i];
		const char *parts[3] = {dim->label, dim->key, dim->mask_key ? dim->mask_key : ""};
		for (int k = 0; k < 3; k++)
			crc = crc32(crc, (const Bytef *)parts[k], (uInt)strlen(parts[k]) + 1);
		uint8_t kind = (uint8_t)dim->kind;
		crc = crc32(crc, &kind, 1);
	}
	return (uint32_t)crc;
}

/* A string's length as written (put_string's rule). */
static size_t string_len(const char *s)
{
	size_t len = s ? strlen(s) : 0;
	return len < STRING_NONE ? len : STRING_NONE - 1;
}

static unsigned char *write_bytes(unsigned char *at, const void *bytes, size_t n)
{
	memcpy(at, bytes, n);
	return at + n;
}

static unsigned char *write_string(unsigned char *at, const char *s, size_t len)
{
	uint16_t head = s ? (uint16_t)len : STRING_NONE;
	at = write_bytes(at, &head, 2);
	return len ? write_bytes(at, s, len) : at; /* s is NULL for none: no memcpy from it */
}

/* One series, in put()'s layout, written straight into room reserved once (the checkpoint of a full table
 * is a million of these a second while a backlog changes them all). */
static void put_series(const struct fx_checkpoint *cp, struct fx_buf *out, const struct fx_series *s, int *rc)
{
	const struct fx_key_layout *layout = cp->config.layout;
	const char *strings[FX_KEY_EXTRA];
	size_t lens[FX_KEY_EXTRA];
	size_t host_len = string_len(s->key.hostname);
	size_t size = 6 * 4 + 2 + host_len + 7 * 8 + 4;
	for (size_t i = 0; i < layout->n_extra; i++) {
		if (layout->extra[i].kind == FX_DIM_NUMBER) {
			size += 4;
			continue;
		}
		strings[i] = s->key.extra[i] ? fx_intern_string(layout->strings, s->key.extra[i]) : NULL;
		lens[i] = string_len(strings[i]);
		size += 2 + lens[i];
	}
	if (*rc || (*rc = fx_buf_reserve(out, size)))
		return;
	unsigned char *at = (unsigned char *)out->data + out->len;
	const uint32_t head[6] = {s->key.present, s->key.other,	   s->key.as_src,
				  s->key.as_dst,  s->key.iface_in, s->key.iface_out};
	at = write_bytes(at, head, sizeof(head));
	at = write_string(at, s->key.hostname, host_len);
	for (size_t i = 0; i < layout->n_extra; i++)
		at = layout->extra[i].kind == FX_DIM_NUMBER ? write_bytes(at, &s->key.extra[i], 4)
							    : write_string(at, strings[i], lens[i]);
	const uint64_t counts[7] = {s->bytes[0],
				    s->bytes[1],
				    s->packets[0],
				    s->packets[1],
				    s->records,
				    (uint64_t)s->updated_ms,
				    (uint64_t)s->created_ms};
	at = write_bytes(at, counts, sizeof(counts));
	at = write_bytes(at, &s->seen, 4);
	out->len = (size_t)(at - (unsigned char *)out->data);
}

static bool series_changed(const struct fx_series *a, const struct fx_series *b)
{
	return memcmp(&a->key, &b->key, sizeof(a->key)) || a->bytes[0] != b->bytes[0] ||
	       a->bytes[1] != b->bytes[1] || a->packets[0] != b->packets[0] ||
	       a->packets[1] != b->packets[1] || a->records != b->records || a->created_ms != b->created_ms ||
	       a->seen != b->seen;
}

/* One checkpoint into cp->out: every series when `full`, else those changed since `base`. Returns 0 or -1
 * (memory); *n_written is the number of series written. */
static int encode_checkpoint(struct fx_checkpoint *cp, const struct fx_store_state *state,
			     const struct fx_store_state *base, bool full, size_t *n_written)
{
	struct fx_buf *out = &cp->out;
	int rc = 0;
	size_t at = begin_record(out, REC_BEGIN, &rc);
	put_u64(out, cp->seq, &rc);
	put_u32(out, full ? 1 : 0, &rc);
	put_u32(out, cp->layout_id, &rc);
	put_u64(out, (uint64_t)state->taken_ms, &rc);
	end_record(out, at, &rc);
	size_t in_chunk = 0, count_at = 0;
	*n_written = 0;
	for (size_t i = 0; i < state->n_series && !rc; i++) {
		const struct fx_series *s = &state->series[i];
		if (!full && i < base->n_series && !series_changed(s, &base->series[i]))
			continue;
		if (in_chunk == 0) {
			at = begin_record(out, REC_SERIES, &rc);
			count_at = out->len;
			put_u32(out, 0, &rc);
		}
		put_series(cp, out, s, &rc);
		(*n_written)++;
		if (++in_chunk == SERIES_CHUNK || i + 1 == state->n_series) {
			uint32_t count = (uint32_t)in_chunk;
			if (!rc)
				memcpy(out->data + count_at, &count, 4);
			end_record(out, at, &rc);
			in_chunk = 0;
		}
	}
	if (in_chunk) { /* the last changed series was not the last one */
		uint32_t count = (uint32_t)in_chunk;
		if (!rc)
			memcpy(out->data + count_at, &count, 4);
		end_record(out, at, &rc);
	}
	at = begin_record(out, REC_END, &rc);
	put_u64(out, cp->seq, &rc);
	put_u64(out, state->n_series, &rc);
	put_u32(out, (uint32_t)state->n_offsets, &rc);
	for (size_t i = 0; i < state->n_offsets; i++) {
		put_string(out, state->offsets[i].topic, &rc);
		put_u32(out, (uint32_t)state->offsets[i].partition, &rc);
		put_u64(out, (uint64_t)state->offsets[i].next, &rc);
	}
	end_record(out, at, &rc);
	return rc ? -1 : 0;
}

/* ---- Decoding ---- */

struct cursor {
	const unsigned char *p, *end;
	bool bad;
};

static void get(struct cursor *c, void *to, size_t n)
{
	if (c->bad || (size_t)(c->end - c->p) < n) {
		c->bad = true;
		memset(to, 0, n);
		return;
	}
	memcpy(to, c->p, n);
	c->p += n;
}
static uint16_t get_u16(struct cursor *c)
{
	uint16_t v;
	get(c, &v, 2);
	return v;
}
static uint32_t get_u32(struct cursor *c)
{
	uint32_t v;
	get(c, &v, 4);
	return v;
}
static uint64_t get_u64(struct cursor *c)
{
	uint64_t v;
	get(c, &v, 8);
	return v;
}
/* A string: its bytes (not NUL-terminated) and length; NULL for none. */
static const char *get_string(struct cursor *c, size_t *len)
{
	uint16_t n = get_u16(c);
	if (c->bad || n == STRING_NONE) {
		*len = 0;
		return NULL;
	}
	if ((size_t)(c->end - c->p) < n) {
		c->bad = true;
		return NULL;
	}
	const char *s = (const char *)c->p;
	c->p += n;
	*len = n;
	return s;
}

struct scanned {
	size_t base; /* where the full checkpoint this one builds on begins */
	size_t end;  /* just past its END record */
	struct fx_partition_offset *offsets;
	size_t n_offsets;
	uint64_t n_series;
};

struct scan {
	unsigned char *data;
	size_t size;
	struct scanned *checkpoints;
	size_t n, cap;
	enum fx_checkpoint_fault fault;
};

static void scan_free(struct scan *scan)
{
	for (size_t i = 0; i < scan->n; i++)
		free(scan->checkpoints[i].offsets);
	free(scan->checkpoints);
	free(scan->data);
	memset(scan, 0, sizeof(*scan));
}

/* The offsets of an END record. Returns 0, -1 (bad structure) or -2 (memory). */
static int read_end(struct cursor *c, uint64_t seq, struct scanned *out)
{
	if (get_u64(c) != seq)
		return -1;
	out->n_series = get_u64(c);
	uint32_t n = get_u32(c);
	if (c->bad || n > (c->end - c->p) / 14)
		return -1;
	out->offsets = calloc(n ? n : 1, sizeof(*out->offsets));
	if (!out->offsets)
		return -2;
	for (uint32_t i = 0; i < n; i++) {
		size_t len;
		const char *topic = get_string(c, &len);
		struct fx_partition_offset *p = &out->offsets[i];
		if (!topic || len >= sizeof(p->topic))
			c->bad = true;
		else
			memcpy(p->topic, topic, len);
		p->partition = (int32_t)get_u32(c);
		p->next = (int64_t)get_u64(c);
	}
	out->n_offsets = n;
	return c->bad || c->p != c->end ? -1 : 0;
}

/* Finds the complete checkpoints of a log already in scan->data. Stops at the first record that is torn
 * or corrupt, noting why. Returns 0 or -1 (memory). */
static int scan_records(struct scan *scan, uint32_t want_layout)
{
	size_t at = HEADER_SIZE, base = 0;
	bool in_checkpoint = false;
	uint64_t seq = 0;
	while (at < scan->size) {
		if (scan->size - at < RECORD_HEAD + RECORD_TAIL) {
			scan->fault = FX_CHECKPOINT_TORN;
			return 0;
		}
		uint32_t type, len, crc;
		memcpy(&type, scan->data + at, 4);
		memcpy(&len, scan->data + at + 4, 4);
		if (len > RECORD_MAX) {
			scan->fault = FX_CHECKPOINT_CORRUPT;
			return 0;
		}
		if (scan->size - at - RECORD_HEAD - RECORD_TAIL < len) {
			scan->fault = FX_CHECKPOINT_TORN;
			return 0;
		}
		memcpy(&crc, scan->data + at + RECORD_HEAD + len, 4);
		if (crc != (uint32_t)crc32(0L, scan->data + at, RECORD_HEAD + len)) {
			scan->fault = FX_CHECKPOINT_CORRUPT;
			return 0;
		}
		struct cursor c = {scan->data + at + RECORD_HEAD, scan->data + at + RECORD_HEAD + len, false};
		size_t next = at + RECORD_HEAD + len + RECORD_TAIL;
		if (type == REC_BEGIN) {
			seq = get_u64(&c);
			bool full = get_u32(&c) != 0;
			if (get_u32(&c) != want_layout) {
				scan->fault = FX_CHECKPOINT_LAYOUT;
				return 0;
			}
			if (c.bad || (!full && scan->n == 0)) {
				scan->fault = FX_CHECKPOINT_CORRUPT;
				return 0;
			}
			if (full)
				base = at;
			in_checkpoint = true;
		} else if (type == REC_END && in_checkpoint) {
			struct scanned *grown =
			    fx_array_grow(scan->checkpoints, &scan->cap, scan->n, sizeof(*grown), 8);
			if (!grown)
				return -1;
			scan->checkpoints = grown;
			struct scanned *s = &grown[scan->n];
			memset(s, 0, sizeof(*s));
			int rc = read_end(&c, seq, s);
			if (rc == -2)
				return -1;
			if (rc) {
				free(s->offsets);
				scan->fault = FX_CHECKPOINT_CORRUPT;
				return 0;
			}
			s->base = base;
			s->end = next;
			scan->n++;
			in_checkpoint = false;
		} else if (type != REC_SERIES || !in_checkpoint) {
			scan->fault = FX_CHECKPOINT_CORRUPT;
			return 0;
		}
		at = next;
	}
	if (in_checkpoint)
		scan->fault = FX_CHECKPOINT_TORN;
	return 0;
}

/* Reads a log into scan. A missing file is no checkpoint and no fault. Returns 0 or -1 (memory). */
static int scan_file(const char *path, uint32_t want_layout, struct scan *scan)
{
	memset(scan, 0, sizeof(*scan));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			scan->fault = FX_CHECKPOINT_IO;
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) || st.st_size < 0) {
		close(fd);
		scan->fault = FX_CHECKPOINT_IO;
		return 0;
	}
	scan->size = (size_t)st.st_size;
	scan->data = malloc(scan->size ? scan->size : 1);
	if (!scan->data) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	while (got < scan->size) {
		ssize_t n = read(fd, scan->data + got, scan->size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	scan->size = got;
	uint32_t version, crc;
	if (got < HEADER_SIZE) {
		scan->fault = got ? FX_CHECKPOINT_TORN : FX_CHECKPOINT_OK;
		return 0;
	}
	memcpy(&version, scan->data + 4, 4);
	memcpy(&crc, scan->data + 8, 4);
	if (memcmp(scan->data, MAGIC, 4) || crc != (uint32_t)crc32(0L, scan->data, 8) ||
	    version != FORMAT_VERSION) {
		scan->fault = FX_CHECKPOINT_VERSION;
		return 0;
	}
	return scan_records(scan, want_layout);
}

/* Reads one series into the table. Returns 0, -1 (bad structure) or -2 (a string pool or the table is
 * full, or memory: the series is left out). */
static int replay_series(const struct fx_checkpoint_config *config, struct cursor *c,
			 struct fx_series_table *table)
{
	const struct fx_key_layout *layout = config->layout;
	struct fx_series s;
	memset(&s, 0, sizeof(s));
	s.key.present = get_u32(c);
	s.key.other = get_u32(c);
	s.key.as_src = get_u32(c);
	s.key.as_dst = get_u32(c);
	s.key.iface_in = get_u32(c);
	s.key.iface_out = get_u32(c);
	size_t len;
	const char *host = get_string(c, &len);
	bool lost = false;
	if (host && !(s.key.hostname = fx_intern_get(config->hostnames, host, len)))
		lost = true;
	for (size_t i = 0; i < layout->n_extra; i++) {
		if (layout->extra[i].kind == FX_DIM_NUMBER) {
			s.key.extra[i] = get_u32(c);
			continue;
		}
		const char *text = get_string(c, &len);
		if (text && !(s.key.extra[i] = fx_intern_id(layout->strings, text, len)))
			lost = true;
	}
	s.bytes[0] = get_u64(c);
	s.bytes[1] = get_u64(c);
	s.packets[0] = get_u64(c);
	s.packets[1] = get_u64(c);
	s.records = get_u64(c);
	s.updated_ms = (int64_t)get_u64(c);
	s.created_ms = (int64_t)get_u64(c);
	s.seen = get_u32(c);
	if (c->bad)
		return -1;
	if (lost)
		return -2;
	bool created;
	struct fx_series *to = fx_series_table_upsert(table, &s.key, &created);
	if (!to)
		return -2;
	*to = s;
	return 0;
}

/* Rebuilds the totals of checkpoint k of a scanned log: its full base and the deltas up to it. Returns the
 * number of series left out (pools or table full), or -1 (bad structure, which a checked CRC makes a bug
 * or a foreign writer). */
static long replay(const struct fx_checkpoint_config *config, const struct scan *scan, size_t k,
		   struct fx_series_table *table)
{
	long lost = 0;
	for (size_t at = scan->checkpoints[k].base; at < scan->checkpoints[k].end;) {
		uint32_t type, len;
		memcpy(&type, scan->data + at, 4);
		memcpy(&len, scan->data + at + 4, 4);
		struct cursor c = {scan->data + at + RECORD_HEAD, scan->data + at + RECORD_HEAD + len, false};
		if (type == REC_SERIES) {
			uint32_t n = get_u32(&c);
			for (uint32_t i = 0; i < n; i++) {
				int rc = replay_series(config, &c, table);
				if (rc == -1)
					return -1;
				lost += rc == -2;
			}
		}
		at += RECORD_HEAD + len + RECORD_TAIL;
	}
	return lost;
}

static size_t table_size_for(const struct fx_checkpoint_config *config, uint64_t n_series)
{
	return n_series > config->max_series ? (size_t)n_series : config->max_series;
}

int fx_checkpoint_read_file(const struct fx_checkpoint_config *config, const char *path, size_t end_index,
			    struct fx_series_table **series, struct fx_partition_offset **offsets,
			    size_t *n_offsets, enum fx_checkpoint_fault *why)
{
	struct scan scan;
	*series = NULL;
	*offsets = NULL;
	*n_offsets = 0;
	if (scan_file(path, layout_id(config->layout), &scan)) {
		scan_free(&scan);
		return FX_CHECKPOINT_E_NOMEM;
	}
	*why = scan.fault;
	if (end_index >= scan.n) {
		scan_free(&scan);
		return FX_CHECKPOINT_E_NONE;
	}
	size_t k = scan.n - 1 - end_index;
	struct scanned *chosen = &scan.checkpoints[k];
	*series = fx_series_table_create(table_size_for(config, chosen->n_series));
	if (!*series || replay(config, &scan, k, *series) < 0) {
		fx_series_table_destroy(*series);
		*series = NULL;
		scan_free(&scan);
		return FX_CHECKPOINT_E_NOMEM;
	}
	*offsets = chosen->offsets;
	*n_offsets = chosen->n_offsets;
	chosen->offsets = NULL;
	int n = (int)scan.n;
	scan_free(&scan);
	return n;
}

/* ---- Writing ---- */

static int write_all(int fd, const char *data, size_t len, off_t at)
{
	while (len) {
		ssize_t n = pwrite(fd, data, len, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		data += n;
		len -= (size_t)n;
		at += n;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Creates the directory (0700) and its parents when missing. Returns 0 or -1 (errno). */
static int make_dir(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s", dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -1;
	return 0;
}

/* A new log holding cp->out after its header: written to the temporary file, fsynced, then renamed into
 * place, the current log becoming the previous one. Returns 0 or -1 (errno). */
static int write_new_log(struct fx_checkpoint *cp)
{
	const char *tmp = cp->path[2];
	if (make_dir(cp->dir))
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	unsigned char header[HEADER_SIZE];
	uint32_t version = FORMAT_VERSION;
	memcpy(header, MAGIC, 4);
	memcpy(header + 4, &version, 4);
	uint32_t crc = (uint32_t)crc32(0L, header, 8);
	memcpy(header + 8, &crc, 4);
	if (write_all(fd, (const char *)header, HEADER_SIZE, 0) ||
	    write_all(fd, cp->out.data, cp->out.len, HEADER_SIZE) || fsync(fd))
		goto fail;
	/* After a restore from the previous log, the current one (torn, or ahead of the group) is replaced
	 * and the previous kept: it holds the checkpoint the group agrees with. */
	if (!cp->keep_prev && rename(cp->path[0], cp->path[1]) && errno != ENOENT)
		goto fail;
	if (rename(tmp, cp->path[0]) || fsync_dir(cp->dir))
		goto fail;
	if (cp->fd >= 0)
		close(cp->fd);
	cp->fd = fd;
	cp->good_size = cp->base_size = (off_t)(HEADER_SIZE + cp->out.len);
	cp->torn_tail = false;
	cp->keep_prev = false;
	return 0;
fail:;
	int saved = errno;
	close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}

/* Appends cp->out to the log and makes it durable; a failure is truncated back (now or before the next
 * append). Returns 0 or -1 (errno). */
static int append_log(struct fx_checkpoint *cp)
{
	if (cp->torn_tail) {
		if (ftruncate(cp->fd, cp->good_size))
			return -1;
		cp->torn_tail = false;
	}
	if (write_all(cp->fd, cp->out.data, cp->out.len, cp->good_size) || fdatasync(cp->fd)) {
		int saved = errno;
		cp->torn_tail = ftruncate(cp->fd, cp->good_size) != 0;
		errno = saved;
		return -1;
	}
	cp->good_size += (off_t)cp->out.len;
	return 0;
}

/* Writes state as the next checkpoint: a new log (first one, compaction), a full checkpoint (series moved)
 * or a delta. Returns 0 or -1 (logged by the caller, errno set). */
static int write_state(struct fx_checkpoint *cp, const struct fx_store_state *state, size_t *n_written)
{
	bool compact = cp->fd < 0 || !cp->written ||
		       (cp->written_committed && cp->good_size > 2 * cp->base_size + (off_t)COMPACT_SLACK);
	bool full = compact || state->epoch != cp->written->epoch;
	fx_buf_reset(&cp->out);
	cp->seq++;
	if (encode_checkpoint(cp, state, cp->written, full, n_written)) {
		errno = ENOMEM;
		return -1;
	}
	if (compact)
		return write_new_log(cp);
	off_t before = cp->good_size;
	if (append_log(cp))
		return -1;
	if (full)
		cp->base_size = cp->good_size - before;
	return 0;
}

/* The offsets of `written` that advanced past what the group has of ours; committed, then remembered.
 * Returns 0 when nothing is left to commit. */
static int commit_written(struct fx_checkpoint *cp)
{
	const struct fx_store_state *state = cp->written;
	if (!cp->config.hooks.commit)
		return 0;
	struct fx_partition_offset *todo = malloc((state->n_offsets ? state->n_offsets : 1) * sizeof(*todo));
	if (!todo)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < state->n_offsets; i++) {
		const struct fx_partition_offset *p = &state->offsets[i];
		bool known = false;
		for (size_t j = 0; j < cp->n_committed && !known; j++)
			known = cp->committed[j].partition == p->partition &&
				!strcmp(cp->committed[j].topic, p->topic) && cp->committed[j].next >= p->next;
		if (!known)
			todo[n++] = *p;
	}
	int rc = n ? cp->config.hooks.commit(cp->config.hooks.opaque, todo, n) : 0;
	for (size_t i = 0; i < n && !rc; i++)
		if (fx_partition_offsets_advance(&cp->committed, &cp->n_committed, &cp->cap_committed,
						 todo[i].topic, todo[i].partition, todo[i].next))
			rc = -1;
	pthread_mutex_lock(&cp->stats_lock);
	if (n)
		cp->stats.commits[rc == 0]++;
	pthread_mutex_unlock(&cp->stats_lock);
	free(todo);
	return rc;
}

static void note_write(struct fx_checkpoint *cp, bool ok, int64_t started_ms, size_t bytes, size_t series)
{
	pthread_mutex_lock(&cp->stats_lock);
	cp->stats.writes[ok]++;
	cp->stats.healthy = ok;
	if (ok) {
		cp->stats.bytes_written += bytes;
		cp->stats.last_success_ms = fx_wall_ms();
		cp->stats.last_duration_s = (double)(fx_mono_ms() - started_ms) / 1000.0;
		cp->stats.last_series_written = series;
	}
	pthread_mutex_unlock(&cp->stats_lock);
}

/* One cycle. @locks cp->lock held. */
static int cycle(struct fx_checkpoint *cp)
{
	int64_t started = fx_mono_ms();
	struct fx_store_state *state = fx_store_state_take(cp->config.store, cp->written);
	if (!state)
		return errno == EAGAIN ? 0 : -1; /* EAGAIN: a worker is mid-message; the next cycle takes it */
	bool current = true;
	if (!cp->written || state->generation != cp->written->generation) {
		size_t n_written = 0;
		if (write_state(cp, state, &n_written)) {
			uint64_t suppressed = 0;
			if (fx_ratelimit_allow(&cp->fail_log, fx_mono_ms(), &suppressed))
				fx_error(
				    "checkpoint: cannot write in %s: %s; counting and serving go on, nothing "
				    "newer is exposed or committed until a checkpoint succeeds (%" PRIu64
				    " more such failures)",
				    cp->dir, strerror(errno), suppressed);
			note_write(cp, false, started, 0, 0);
			current = false;
		} else {
			note_write(cp, true, started, cp->out.len, n_written);
			fx_store_state_unref(cp->written);
			cp->written = fx_store_state_ref(state);
			cp->written_committed = false;
		}
	}
	fx_store_state_unref(state);
	if (cp->written && !cp->written_committed && commit_written(cp) == 0) {
		cp->written_committed = true;
		fx_store_publish(cp->config.store, cp->written);
	}
	return current && cp->written_committed ? 0 : -1;
}

int fx_checkpoint_now(struct fx_checkpoint *cp)
{
	pthread_mutex_lock(&cp->lock);
	int rc = cycle(cp);
	pthread_mutex_unlock(&cp->lock);
	return rc;
}

static void *checkpoint_main(void *opaque)
{
	struct fx_checkpoint *cp = opaque;
	pthread_mutex_lock(&cp->stop_lock);
	while (!cp->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		int64_t ns = until.tv_nsec + (cp->config.interval_ms % 1000) * 1000000L;
		until.tv_sec += cp->config.interval_ms / 1000 + ns / 1000000000L;
		until.tv_nsec = ns % 1000000000L;
		while (!cp->stop &&
		       pthread_cond_timedwait(&cp->stop_cond, &cp->stop_lock, &until) != ETIMEDOUT)
			;
		if (cp->stop)
			break;
		pthread_mutex_unlock(&cp->stop_lock);
		fx_checkpoint_now(cp);
		pthread_mutex_lock(&cp->stop_lock);
	}
	pthread_mutex_unlock(&cp->stop_lock);
	return NULL;
}

/* ---- Life cycle ---- */

struct fx_checkpoint *fx_checkpoint_create(const struct fx_checkpoint_config *config)
{
	struct fx_checkpoint *cp = calloc(1, sizeof(*cp));
	if (!cp || !(cp->dir = strdup(config->dir)))
		goto fail;
	cp->config = *config;
	cp->config.dir = cp->dir;
	cp->fd = -1;
	cp->layout_id = layout_id(config->layout);
	fx_buf_init(&cp->out, SIZE_MAX / 2); /* bounded by the series table, itself bounded */
	const char *names[3] = {FX_CHECKPOINT_FILE, FX_CHECKPOINT_PREV_FILE, FX_CHECKPOINT_TMP_FILE};
	for (int i = 0; i < 3; i++)
		snprintf(cp->path[i], sizeof(cp->path[i]), "%s/%s", cp->dir, names[i]);
	pthread_mutex_init(&cp->lock, NULL);
	pthread_mutex_init(&cp->stats_lock, NULL);
	pthread_mutex_init(&cp->stop_lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&cp->stop_cond, &attr);
	pthread_condattr_destroy(&attr);
	cp->stats.restored = "none";
	if (make_dir(cp->dir))
		fx_error("checkpoint: cannot create the state directory %s: %s; counters will not survive a "
			 "restart until it can be written",
			 cp->dir, strerror(errno));
	unlink(cp->path[2]); /* a compaction a crash interrupted: never complete, never read */
	return cp;
fail:
	fx_error("checkpoint: out of memory");
	if (cp)
		free(cp->dir);
	free(cp);
	return NULL;
}

void fx_checkpoint_stop(struct fx_checkpoint *cp)
{
	if (!cp || !cp->started)
		return;
	pthread_mutex_lock(&cp->stop_lock);
	cp->stop = true;
	pthread_cond_signal(&cp->stop_cond);
	pthread_mutex_unlock(&cp->stop_lock);
	pthread_join(cp->thread, NULL);
	cp->started = false;
}

void fx_checkpoint_destroy(struct fx_checkpoint *cp)
{
	if (!cp)
		return;
	fx_checkpoint_stop(cp);
	if (cp->fd >= 0)
		close(cp->fd);
	fx_store_state_unref(cp->written);
	fx_buf_free(&cp->out);
	free(cp->committed);
	free(cp->restored);
	pthread_mutex_destroy(&cp->lock);
	pthread_mutex_destroy(&cp->stats_lock);
	pthread_mutex_destroy(&cp->stop_lock);
	pthread_cond_destroy(&cp->stop_cond);
	free(cp->dir);
	free(cp);
}

int fx_checkpoint_start(struct fx_checkpoint *cp)
{
	if (pthread_create(&cp->thread, NULL, checkpoint_main, cp)) {
		fx_error("checkpoint: cannot start the thread");
		return -1;
	}
	cp->started = true;
	fx_thread_name(cp->thread, "checkpoint", -1);
	return 0;
}

int64_t fx_checkpoint_start_offset(const struct fx_checkpoint *cp, const char *topic, int32_t partition)
{
	for (size_t i = 0; cp && i < cp->n_restored; i++)
		if (cp->restored[i].partition == partition && !strcmp(cp->restored[i].topic, topic))
			return cp->restored[i].next;
	return -1;
}

/* ---- Restore ---- */

/* Whether the group has committed every offset of checkpoint s (so its records cannot have been counted
 * by another member beyond it). Returns 1, 0, or -1 when the group could not be asked. */
static int group_agrees(struct fx_checkpoint *cp, const struct scanned *s)
{
	if (!cp->config.hooks.committed || !s->n_offsets)
		return 1;
	struct fx_partition_offset *theirs = malloc(s->n_offsets * sizeof(*theirs));
	if (!theirs)
		return -1;
	memcpy(theirs, s->offsets, s->n_offsets * sizeof(*theirs));
	int rc = cp->config.hooks.committed(cp->config.hooks.opaque, theirs, s->n_offsets) ? -1 : 1;
	for (size_t i = 0; i < s->n_offsets && rc == 1; i++)
		if (theirs[i].next < s->offsets[i].next) {
			fx_info(
			    "checkpoint: a checkpoint covers %s[%d] up to %" PRId64
			    ", the group committed %" PRId64 ": it was not committed, an older one is taken",
			    s->offsets[i].topic, s->offsets[i].partition, s->offsets[i].next, theirs[i].next);
			rc = 0;
		}
	free(theirs);
	return rc;
}

/* Picks the checkpoint to restore, newest first over both logs: the first the group agrees with; when none
 * does the newest, said so. Sets *file and *k; returns the rank (1 = the newest), or 0 when there is
 * none. */
static size_t choose(struct fx_checkpoint *cp, struct scan scans[2], int *file, size_t *k)
{
	size_t rank = 0;
	for (int f = 0; f < 2; f++) {
		for (size_t i = scans[f].n; i-- > 0;) {
			rank++;
			int agrees = group_agrees(cp, &scans[f].checkpoints[i]);
			if (agrees == 0)
				continue;
			if (agrees < 0)
				fx_warn(
				    "checkpoint: the group's committed offsets are unknown: restoring this "
				    "checkpoint");
			*file = f;
			*k = i;
			return rank;
		}
	}
	for (int f = 0; f < 2; f++) {
		if (scans[f].n) {
			fx_warn("checkpoint: every checkpoint is ahead of the group's committed offsets: "
				"restoring "
				"the newest (records another member counted meanwhile may count twice)");
			*file = f;
			*k = scans[f].n - 1;
			return 1;
		}
	}
	return 0;
}

static void note_faults(struct fx_checkpoint *cp, struct scan scans[2])
{
	for (int f = 0; f < 2; f++) {
		if (scans[f].fault == FX_CHECKPOINT_OK)
			continue;
		fx_error("checkpoint: %s is %s after %zu complete checkpoint(s): that part is not used",
			 cp->path[f], fx_checkpoint_fault_name(scans[f].fault), scans[f].n);
		pthread_mutex_lock(&cp->stats_lock);
		cp->stats.load_faults[scans[f].fault]++;
		pthread_mutex_unlock(&cp->stats_lock);
	}
}

/* Restores checkpoint k of scan into the store. Returns 0, or -1 (memory). */
static int restore_one(struct fx_checkpoint *cp, const struct scan *scan, size_t k, const char *which)
{
	const struct scanned *s = &scan->checkpoints[k];
	struct fx_series_table *table = fx_series_table_create(table_size_for(&cp->config, s->n_series));
	if (!table)
		return -1;
	long lost = replay(&cp->config, scan, k, table);
	int rc = lost < 0 ? -1 : fx_store_restore(cp->config.store, table, s->offsets, s->n_offsets);
	if (!rc)
		fx_info("checkpoint: restored %zu series and the offsets of %zu partition(s) from the %s "
			"checkpoint in %s",
			fx_series_table_count(table), s->n_offsets, which, cp->dir);
	if (lost > 0)
		fx_error("checkpoint: %ld restored series did not fit (string pools or --max-series)", lost);
	fx_series_table_destroy(table);
	cp->restored = malloc((s->n_offsets ? s->n_offsets : 1) * sizeof(*cp->restored));
	if (rc || !cp->restored)
		return -1;
	memcpy(cp->restored, s->offsets, s->n_offsets * sizeof(*cp->restored));
	cp->n_restored = s->n_offsets;
	for (size_t i = 0; i < s->n_offsets && !rc; i++)
		rc = fx_partition_offsets_advance(&cp->committed, &cp->n_committed, &cp->cap_committed,
						  s->offsets[i].topic, s->offsets[i].partition,
						  s->offsets[i].next);
	return rc;
}

int fx_checkpoint_restore(struct fx_checkpoint *cp)
{
	struct scan scans[2];
	memset(scans, 0, sizeof(scans));
	int rc = -1;
	if (scan_file(cp->path[0], cp->layout_id, &scans[0]) ||
	    scan_file(cp->path[1], cp->layout_id, &scans[1]))
		goto done;
	note_faults(cp, scans);
	int file = 0;
	size_t k = 0, rank = choose(cp, scans, &file, &k);
	const char *which = rank == 0 ? "none" : rank == 1 ? "newest" : rank == 2 ? "previous" : "older";
	if (rank && restore_one(cp, &scans[file], k, which))
		goto done;
	if (!rank)
		fx_info("checkpoint: no usable checkpoint in %s: a clean start (counters from zero)",
			cp->dir);
	cp->keep_prev = rank && file == 1;
	pthread_mutex_lock(&cp->stats_lock);
	cp->stats.restored = which;
	pthread_mutex_unlock(&cp->stats_lock);
	/* What was restored is durable already: exposed from now on, whatever the first write does. */
	struct fx_store_state *state = fx_store_state_take(cp->config.store, NULL);
	if (!state)
		goto done;
	fx_store_publish(cp->config.store, state);
	fx_store_state_unref(state);
	fx_checkpoint_now(cp);
	rc = 0;
done:
	scan_free(&scans[0]);
	scan_free(&scans[1]);
	if (rc)
		fx_error("checkpoint: out of memory while restoring");
	return rc;
}

/* ---- Self-metrics ---- */

static int add_results(struct fx_family_list *out, const char *name, const char *help,
		       const uint64_t counts[2])
{
	struct fx_label result[2] = {{"result", "failure"}, {"result", "success"}};
	if (fx_family_begin(out, name, help, FX_METRIC_COUNTER))
		return -1;
	for (int i = 0; i < 2; i++)
		if (fx_family_add_u64(out, counts[i], 1, &result[i]))
			return -1;
	return 0;
}

int fx_checkpoint_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_checkpoint *cp = opaque;
	pthread_mutex_lock(&cp->stats_lock);
	struct stats st = cp->stats;
	pthread_mutex_unlock(&cp->stats_lock);
	struct fx_label restored = {"checkpoint", st.restored};
	int rc =
	    add_results(out, "flow_exporter_checkpoints_total",
			"Checkpoints written to --state-dir, by result (after a failure nothing newer is "
			"exposed or committed until one succeeds).",
			st.writes) ||
	    fx_family_begin(out, "flow_exporter_checkpoint_healthy",
			    "1 when the last checkpoint was written, 0 when it failed.", FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, st.healthy, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_checkpoint_bytes_written_total",
			    "Bytes of checkpoints written to --state-dir.", FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, st.bytes_written, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_checkpoint_last_success_timestamp_seconds",
			    "When the last checkpoint was made durable (Unix time).", FX_METRIC_GAUGE) ||
	    fx_family_add_double(out, (double)st.last_success_ms / 1000.0, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_checkpoint_duration_seconds",
			    "How long the last checkpoint took: copy, encode, write, fsync.",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_double(out, st.last_duration_s, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_checkpoint_series_written",
			    "Series in the last checkpoint (a delta holds the changed ones only).",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, st.last_series_written, 0, NULL) ||
	    add_results(out, "flow_exporter_checkpoint_offset_commits_total",
			"Commits of checkpointed offsets to the consumer group, by result.", st.commits) ||
	    fx_family_begin(out, "flow_exporter_checkpoint_load_errors_total",
			    "Checkpoint files found torn, corrupt, of another version or layout, or "
			    "unreadable at start (what follows the fault is not used).",
			    FX_METRIC_COUNTER);
	for (int f = 1; f < FX_CHECKPOINT_FAULTS && !rc; f++) {
		struct fx_label reason = {"reason", fx_checkpoint_fault_name((enum fx_checkpoint_fault)f)};
		rc = fx_family_add_u64(out, st.load_faults[f], 1, &reason);
	}
	rc = rc ||
	     fx_family_begin(
		 out, "flow_exporter_checkpoint_restored",
		 "The checkpoint restored at start: newest, previous, older or none (a clean start).",
		 FX_METRIC_GAUGE) ||
	     fx_family_add_u64(out, 1, 1, &restored);
	return rc ? -1 : 0;
}
