/* The remote-write queue on disk (push_queue.h): segment files of checksummed records, appended with
 * write() + fdatasync(), read oldest first, marked sent and deleted once every record in them is sent.
 *
 * DESIGN
 * - A segment is `<dir>/<16 hex digits of its sequence number>.seg`; sequence numbers only grow, so the
 *   names sort in queue order. Only the newest segment of this run is appended to (O_APPEND); a segment
 *   left by a previous run is only read, so a torn tail there is never followed by new records.
 * - A record starts at a multiple of 8 bytes: a 16-byte header (magic, CRC32 of everything after the CRC
 *   field, payload length, number of parts), then per part a 32-byte header (version, content-type length,
 *   body length, series, samples, timestamp), the content type and the body; zero padding to the next
 *   multiple of 8. A sent (or dropped) record gets another magic, written in place: 4 aligned bytes, which
 *   never straddle a sector, so the mark is atomic. The CRC does not cover the magic.
 * - At open every segment is read whole and every record checked; what does not check (a crash mid-write
 *   leaves a torn tail; a flipped byte) is logged, counted once and skipped: the scan resumes at the next
 *   8-byte boundary where a record checks. Then the queue keeps, per segment, the offsets and sizes of its
 *   queued records (8 bytes each in memory), so reading needs no second scan.
 * - The bound counts the bytes of queued records. A partly sent or dropped segment still holds its sent
 *   records until all of it is gone, so the disk holds at most one segment (max_bytes / 8) more.
 * - A failed write is undone with ftruncate(); when even that fails the segment is closed and the next
 *   append starts a new one (a restart then skips the torn bytes). No disk error is fatal: it is logged
 *   (rate-limited), counted, and the caller keeps the request in memory or drops it.
 *
 * Thread: see push_queue.h. */
#include "fx/push_queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <inttypes.h>
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

#define MAGIC_QUEUED 0x31515846u /* "FXQ1" little-endian */
#define MAGIC_SENT 0x30515846u	 /* "FXQ0" */
#define RECORD_HEADER 16u
#define PART_HEADER 32u
#define ALIGN 8u
#define SEGMENT_MIN (64u << 10)
#define SEGMENT_MAX (16u << 20)
#define RECORD_MAX (1u << 30) /* one record, so that offsets and sizes fit 32 bits */

struct span {
	uint32_t off, size;
};

struct segment {
	uint64_t seq;
	uint64_t end;	    /* bytes in the file (where the next record goes) */
	struct span *spans; /* queued records: spans[head .. n) */
	size_t head, n, cap;
};

struct fx_push_queue {
	char *dir, *what;
	uint64_t max_bytes, segment_bytes;
	struct segment *segments; /* segments[0] is the oldest */
	size_t n_segments, cap_segments;
	uint64_t next_seq;
	int write_fd; /* the last segment's, when it is appended to; -1: none */
	int read_fd;  /* of segment read_seq, read and marked through it; -1: none */
	uint64_t read_seq;
	int64_t last_timestamp_ms;
	struct fx_push_queue_stats stats;
	struct fx_ratelimit error_log;
};

const char *fx_push_queue_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case FX_PQ_E_EMPTY:
		return "queue empty";
	case FX_PQ_E_IO:
		return "disk error";
	case FX_PQ_E_NOMEM:
		return "out of memory";
	case FX_PQ_E_TOO_BIG:
		return "request larger than --push-queue-max-bytes";
	default:
		return "unknown error";
	}
}

void fx_push_queue_entry_free(struct fx_push_queue_entry *entry)
{
	for (size_t i = 0; i < FX_PQ_MAX_PARTS; i++) {
		free(entry->parts[i].body);
		entry->parts[i].body = NULL;
	}
}

/* ---- Errors ---- */

static void disk_error(struct fx_push_queue *queue, const char *doing, const char *path, int error)
{
	queue->stats.disk_errors++;
	uint64_t suppressed = 0;
	if (fx_ratelimit_allow(&queue->error_log, fx_mono_ms(), &suppressed))
		fx_error("push queue %s: %s %s: %s; the requests stay in memory only%s", queue->what, doing,
			 path, strerror(error), suppressed ? " (more disk errors not logged)" : "");
}

static void segment_path(const struct fx_push_queue *queue, uint64_t seq, char *out, size_t size)
{
	snprintf(out, size, "%s/%016" PRIx64 ".seg", queue->dir, seq);
}

/* ---- Records ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t checksum(const uint8_t *from, size_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	while (len > 0) {
		uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = crc32(crc, from, chunk);
		from += chunk;
		len -= chunk;
	}
	return (uint32_t)crc;
}

/* The bytes a record of entry takes on disk (padding included); 0 past RECORD_MAX. */
static uint64_t record_size(const struct fx_push_queue_entry *entry)
{
	uint64_t size = RECORD_HEADER;
	for (size_t i = 0; i < entry->n_parts; i++)
		size += PART_HEADER + strlen(entry->parts[i].content_type) + entry->parts[i].len;
	size = (size + ALIGN - 1) / ALIGN * ALIGN;
	return size > RECORD_MAX ? 0 : size;
}

/* Writes the record of entry into out (record_size bytes, zeroed). */
static void encode_record(const struct fx_push_queue_entry *entry, uint8_t *out)
{
	uint8_t *p = out + RECORD_HEADER;
	for (size_t i = 0; i < entry->n_parts; i++) {
		const struct fx_push_queue_part *part = &entry->parts[i];
		size_t type_len = strlen(part->content_type);
		p[0] = (uint8_t)part->version;
		p[1] = (uint8_t)type_len;
		put32(p + 4, (uint32_t)part->len);
		put64(p + 8, part->n_series);
		put64(p + 16, part->n_samples);
		put64(p + 24, (uint64_t)part->timestamp_ms);
		memcpy(p + PART_HEADER, part->content_type, type_len);
		if (part->len)
			memcpy(p + PART_HEADER + type_len, part->body, part->len);
		p += PART_HEADER + type_len + part->len;
	}
	uint32_t payload = (uint32_t)(p - out - RECORD_HEADER);
	put32(out, MAGIC_QUEUED);
	put32(out + 8, payload);
	put32(out + 12, (uint32_t)entry->n_parts);
	put32(out + 4, checksum(out + 8, (size_t)(p - out) - 8));
}

/* Checks the record at p (avail bytes to the end of the segment). Returns its size on disk, or 0 when it
 * does not check. With `out`, copies its parts (bodies malloc'd; *nomem set when that fails). */
static uint64_t decode_record(const uint8_t *p, uint64_t avail, bool *queued, int64_t *latest,
			      struct fx_push_queue_entry *out, bool *nomem)
{
	if (avail < RECORD_HEADER)
		return 0;
	uint32_t magic = get32(p), payload = get32(p + 8), n_parts = get32(p + 12);
	if ((magic != MAGIC_QUEUED && magic != MAGIC_SENT) || payload > avail - RECORD_HEADER ||
	    n_parts < 1 || n_parts > FX_PQ_MAX_PARTS || checksum(p + 8, (size_t)payload + 8) != get32(p + 4))
		return 0;
	const uint8_t *q = p + RECORD_HEADER, *end = q + payload;
	struct fx_push_queue_entry entry = {.n_parts = n_parts};
	for (uint32_t i = 0; i < n_parts; i++) {
		struct fx_push_queue_part *part = &entry.parts[i];
		if ((uint64_t)(end - q) < PART_HEADER)
			goto bad;
		uint32_t type_len = q[1], len = get32(q + 4);
		part->version = q[0];
		part->n_series = get64(q + 8);
		part->n_samples = get64(q + 16);
		part->timestamp_ms = (int64_t)get64(q + 24);
		if ((part->version != 1 && part->version != 2) || type_len > FX_PQ_CONTENT_TYPE_MAX ||
		    (uint64_t)(end - q) - PART_HEADER < (uint64_t)type_len + len)
			goto bad;
		memcpy(part->content_type, q + PART_HEADER, type_len);
		part->len = len;
		if (out && !(part->body = malloc(len ? len : 1))) {
			*nomem = true;
			goto bad;
		}
		if (out)
			memcpy(part->body, q + PART_HEADER + type_len, len);
		if (part->timestamp_ms > *latest)
			*latest = part->timestamp_ms;
		q += PART_HEADER + type_len + len;
	}
	if (q != end)
		goto bad;
	*queued = magic == MAGIC_QUEUED;
	if (out)
		*out = entry;
	return ((uint64_t)RECORD_HEADER + payload + ALIGN - 1) / ALIGN * ALIGN;
bad:
	fx_push_queue_entry_free(&entry);
	return 0;
}

/* ---- Segments ---- */

/* Room for one more span. Returns 0 or FX_PQ_E_NOMEM. */
static int span_reserve(struct segment *segment)
{
	struct span *spans = fx_array_grow(segment->spans, &segment->cap, segment->n, sizeof(*spans), 64);
	if (!spans)
		return FX_PQ_E_NOMEM;
	segment->spans = spans;
	return 0;
}

static int span_push(struct segment *segment, uint32_t off, uint32_t size)
{
	if (span_reserve(segment) != 0)
		return FX_PQ_E_NOMEM;
	segment->spans[segment->n++] = (struct span){off, size};
	return 0;
}

static struct segment *segment_add(struct fx_push_queue *queue, uint64_t seq)
{
	struct segment *segments =
	    fx_array_grow(queue->segments, &queue->cap_segments, queue->n_segments, sizeof(*segments), 16);
	if (!segments)
		return NULL;
	queue->segments = segments;
	struct segment *segment = &queue->segments[queue->n_segments++];
	*segment = (struct segment){.seq = seq};
	return segment;
}

/* The descriptor to read and mark segment seq with (opened on demand, one at a time). */
static int read_fd_of(struct fx_push_queue *queue, uint64_t seq)
{
	if (queue->read_fd >= 0 && queue->read_seq == seq)
		return queue->read_fd;
	if (queue->read_fd >= 0)
		close(queue->read_fd);
	char path[4096];
	segment_path(queue, seq, path, sizeof(path));
	queue->read_fd = open(path, O_RDWR | O_CLOEXEC);
	if (queue->read_fd < 0 && (errno == EROFS || errno == EACCES)) {
		/* Read-only: the records can still be sent; marking them fails (counted), so a restart may
		 * send them again. */
		disk_error(queue, "cannot open for writing", path, errno);
		queue->read_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	queue->read_seq = seq;
	if (queue->read_fd < 0)
		disk_error(queue, "cannot open", path, errno);
	return queue->read_fd;
}

/* Removes the oldest segment from the queue and its file from the disk. */
static void segment_remove_oldest(struct fx_push_queue *queue)
{
	struct segment *segment = &queue->segments[0];
	if (queue->n_segments == 1 && queue->write_fd >= 0) {
		close(queue->write_fd);
		queue->write_fd = -1;
	}
	if (queue->read_fd >= 0 && queue->read_seq == segment->seq) {
		close(queue->read_fd);
		queue->read_fd = -1;
	}
	char path[4096];
	segment_path(queue, segment->seq, path, sizeof(path));
	if (unlink(path) != 0 && errno != ENOENT)
		disk_error(queue, "cannot remove", path, errno);
	free(segment->spans);
	queue->n_segments--;
	memmove(queue->segments, queue->segments + 1, queue->n_segments * sizeof(*queue->segments));
}

/* Takes the oldest record out of the queue: marked sent in place (synced when `sync`), its segment removed
 * once empty. Returns 0, or FX_PQ_E_IO when the mark did not reach the disk (counted). */
static int remove_oldest(struct fx_push_queue *queue, bool sync)
{
	struct segment *segment = &queue->segments[0];
	struct span span = segment->spans[segment->head++];
	queue->stats.bytes -= span.size;
	queue->stats.requests--;
	/* The mark comes first even when the segment goes next: an unlink not yet on disk at a crash must
	 * not bring the record back as queued. */
	int rc = 0;
	bool last = segment->head == segment->n;
	uint8_t mark[4];
	put32(mark, MAGIC_SENT);
	int fd = read_fd_of(queue, segment->seq);
	if (fd < 0) {
		rc = FX_PQ_E_IO;
	} else if (pwrite(fd, mark, sizeof(mark), span.off) != (ssize_t)sizeof(mark) ||
		   (sync && fdatasync(fd) != 0)) {
		char path[4096];
		segment_path(queue, segment->seq, path, sizeof(path));
		disk_error(queue, "cannot mark a sent record in", path, errno);
		rc = FX_PQ_E_IO;
	}
	if (last)
		segment_remove_oldest(queue);
	return rc;
}

/* ---- Opening ---- */

/* Checks every record of a segment read whole (buf, size) and keeps the queued ones. Returns 0 or
 * FX_PQ_E_NOMEM. */
static int scan_segment(struct fx_push_queue *queue, struct segment *segment, const uint8_t *buf,
			uint64_t size)
{
	uint64_t off = 0;
	while (off < size) {
		bool queued = false, nomem = false;
		uint64_t len =
		    decode_record(buf + off, size - off, &queued, &queue->last_timestamp_ms, NULL, &nomem);
		if (len > 0) {
			if (queued && span_push(segment, (uint32_t)off, (uint32_t)len) != 0)
				return FX_PQ_E_NOMEM;
			if (queued) {
				queue->stats.bytes += len;
				queue->stats.requests++;
			}
			off += len;
			continue;
		}
		uint64_t next = off + ALIGN;
		while (next < size &&
		       !decode_record(buf + next, size - next, &queued, &(int64_t){0}, NULL, &nomem))
			next += ALIGN;
		if (next > size)
			next = size;
		queue->stats.corrupt++;
		fx_warn("push queue %s: segment %016" PRIx64 ": %s record at offset %" PRIu64 " (%" PRIu64
			" bytes skipped)",
			queue->what, segment->seq, next >= size ? "torn or corrupt last" : "corrupt", off,
			next - off);
		off = next;
	}
	segment->end = size;
	return 0;
}

/* Reads segment seq of a previous run and adds its queued records. Returns 0 or FX_PQ_E_NOMEM. */
static int load_segment(struct fx_push_queue *queue, uint64_t seq)
{
	char path[4096];
	segment_path(queue, seq, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		disk_error(queue, "cannot read", path, errno);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	uint64_t size = (uint64_t)st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	ssize_t got = 0;
	for (uint64_t done = 0; buf && done < size; done += (uint64_t)got)
		if ((got = pread(fd, buf + done, size - done, (off_t)done)) <= 0) {
			size = done; /* what could be read is scanned; the rest is counted as torn */
			disk_error(queue, "cannot read", path, got < 0 ? errno : EIO);
			break;
		}
	close(fd);
	struct segment *segment = buf ? segment_add(queue, seq) : NULL;
	int rc = segment ? scan_segment(queue, segment, buf, size) : FX_PQ_E_NOMEM;
	free(buf);
	if (rc == 0 && segment->n == 0) {
		queue->n_segments--; /* nothing queued in it: the file goes */
		free(segment->spans);
		if (unlink(path) != 0)
			disk_error(queue, "cannot remove", path, errno);
	}
	return rc;
}

static int compare_seq(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The sequence numbers of the segments in the directory, sorted. Returns how many (*out malloc'd), or -1
 * when out of memory. */
static ssize_t list_segments(struct fx_push_queue *queue, uint64_t **out)
{
	*out = NULL;
	DIR *dir = opendir(queue->dir);
	if (!dir) {
		if (errno != ENOENT)
			disk_error(queue, "cannot read the directory", queue->dir, errno);
		return 0;
	}
	size_t n = 0, cap = 0;
	struct dirent *entry;
	while ((entry = readdir(dir))) {
		char *end = NULL;
		if (strlen(entry->d_name) != 20 || strcmp(entry->d_name + 16, ".seg") != 0)
			continue;
		uint64_t seq = strtoull(entry->d_name, &end, 16);
		if (end != entry->d_name + 16)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *seqs = realloc(*out, cap * sizeof(*seqs));
			if (!seqs) {
				closedir(dir);
				return -1;
			}
			*out = seqs;
		}
		(*out)[n++] = seq;
	}
	closedir(dir);
	if (n)
		qsort(*out, n, sizeof(**out), compare_seq);
	return (ssize_t)n;
}

/* mkdir -p of the queue's directory, 0700. Returns 0 or -1 (errno). */
static int make_dirs(const char *dir)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

struct fx_push_queue *fx_push_queue_open(const struct fx_push_queue_config *config)
{
	struct fx_push_queue *queue = calloc(1, sizeof(*queue));
	uint64_t *seqs = NULL;
	if (!queue || !(queue->dir = strdup(config->dir)) || !(queue->what = strdup(config->what)))
		goto fail;
	queue->max_bytes = config->max_bytes;
	queue->segment_bytes = config->segment_bytes;
	if (!queue->segment_bytes) {
		queue->segment_bytes = config->max_bytes / 8;
		queue->segment_bytes = queue->segment_bytes < SEGMENT_MIN   ? SEGMENT_MIN
				       : queue->segment_bytes > SEGMENT_MAX ? SEGMENT_MAX
									    : queue->segment_bytes;
	}
	queue->write_fd = queue->read_fd = -1;
	queue->last_timestamp_ms = INT64_MIN;
	if (make_dirs(queue->dir) != 0)
		disk_error(queue, "cannot create the directory", queue->dir, errno);
	ssize_t n = list_segments(queue, &seqs);
	if (n < 0)
		goto fail;
	for (ssize_t i = 0; i < n; i++)
		if (load_segment(queue, seqs[i]) != 0)
			goto fail;
	queue->next_seq = n > 0 ? seqs[n - 1] + 1 : 1;
	free(seqs);
	if (queue->stats.requests)
		fx_info("push queue %s: %" PRIu64 " requests (%" PRIu64 " bytes) from a previous run, in %s",
			queue->what, queue->stats.requests, queue->stats.bytes, queue->dir);
	return queue;
fail:
	fx_error("push queue %s: out of memory", config->what);
	free(seqs);
	fx_push_queue_close(queue);
	return NULL;
}

void fx_push_queue_close(struct fx_push_queue *queue)
{
	if (!queue)
		return;
	if (queue->write_fd >= 0)
		close(queue->write_fd);
	if (queue->read_fd >= 0)
		close(queue->read_fd);
	for (size_t i = 0; i < queue->n_segments; i++)
		free(queue->segments[i].spans);
	free(queue->segments);
	free(queue->dir);
	free(queue->what);
	free(queue);
}

/* ---- Appending ---- */

/* A new segment to append to. Returns 0 or FX_PQ_E_IO / FX_PQ_E_NOMEM. */
static int open_write_segment(struct fx_push_queue *queue)
{
	char path[4096];
	if (make_dirs(queue->dir) != 0) {
		disk_error(queue, "cannot create the directory", queue->dir, errno);
		return FX_PQ_E_IO;
	}
	uint64_t seq = queue->next_seq;
	segment_path(queue, seq, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		disk_error(queue, "cannot create", path, errno);
		return FX_PQ_E_IO;
	}
	int dir_fd = open(queue->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0 || fsync(dir_fd) != 0) {
		disk_error(queue, "cannot sync the directory", queue->dir, errno);
		if (dir_fd >= 0)
			close(dir_fd);
		close(fd);
		unlink(path);
		return FX_PQ_E_IO;
	}
	close(dir_fd);
	if (!segment_add(queue, seq)) {
		close(fd);
		unlink(path);
		return FX_PQ_E_NOMEM;
	}
	queue->next_seq++;
	queue->write_fd = fd;
	return 0;
}

/* write() of the whole record and fdatasync(); a failure is undone (ftruncate) or, when that fails too,
 * the segment is closed. Returns 0 or FX_PQ_E_IO. */
static int write_record(struct fx_push_queue *queue, struct segment *segment, const uint8_t *record,
			uint64_t size)
{
	uint64_t done = 0;
	ssize_t wrote = 0;
	while (done < size && (wrote = write(queue->write_fd, record + done, size - done)) > 0)
		done += (uint64_t)wrote;
	int error = done < size ? (wrote < 0 ? errno : ENOSPC) : 0;
	if (!error && fdatasync(queue->write_fd) != 0)
		error = errno;
	if (!error)
		return 0;
	char path[4096];
	segment_path(queue, segment->seq, path, sizeof(path));
	disk_error(queue, "cannot write", path, error);
	if (ftruncate(queue->write_fd, (off_t)segment->end) != 0) {
		close(queue->write_fd);
		queue->write_fd = -1;
		if (segment->n == segment->head) { /* nothing queued in it: it goes (it is the last) */
			if (unlink(path) != 0 && errno != ENOENT)
				disk_error(queue, "cannot remove", path, errno);
			free(segment->spans);
			queue->n_segments--;
		}
	}
	return FX_PQ_E_IO;
}

int fx_push_queue_append(struct fx_push_queue *queue, const struct fx_push_queue_entry *entry)
{
	uint64_t size = record_size(entry);
	if (size == 0 || size > queue->max_bytes) {
		queue->stats.dropped_requests++;
		queue->stats.dropped_bytes += size;
		return FX_PQ_E_TOO_BIG;
	}
	struct segment *last = queue->n_segments ? &queue->segments[queue->n_segments - 1] : NULL;
	if (queue->write_fd >= 0 && last && last->end >= queue->segment_bytes) {
		close(queue->write_fd);
		queue->write_fd = -1;
	}
	int rc = queue->write_fd >= 0 ? 0 : open_write_segment(queue);
	if (rc != 0)
		return rc;
	struct segment *segment = &queue->segments[queue->n_segments - 1];
	uint8_t *record = calloc(1, size);
	if (!record || span_reserve(segment) != 0) { /* the span first: a record on disk is always queued */
		free(record);
		return FX_PQ_E_NOMEM;
	}
	encode_record(entry, record);
	rc = write_record(queue, segment, record, size);
	free(record);
	if (rc != 0)
		return rc;
	segment->spans[segment->n++] = (struct span){(uint32_t)segment->end, (uint32_t)size};
	segment->end += size;
	queue->stats.bytes += size;
	queue->stats.requests++;
	for (size_t i = 0; i < entry->n_parts; i++)
		if (entry->parts[i].timestamp_ms > queue->last_timestamp_ms)
			queue->last_timestamp_ms = entry->parts[i].timestamp_ms;
	/* The bound, oldest first; the new record alone fits it. */
	while (queue->stats.bytes > queue->max_bytes) {
		uint32_t dropped = queue->segments[0].spans[queue->segments[0].head].size;
		queue->stats.dropped_requests++;
		queue->stats.dropped_bytes += dropped;
		(void)remove_oldest(queue, false);
	}
	return 0;
}

/* ---- Reading ---- */

int fx_push_queue_peek(struct fx_push_queue *queue, struct fx_push_queue_entry *entry)
{
	while (queue->stats.requests > 0) {
		struct segment *segment = &queue->segments[0];
		struct span span = segment->spans[segment->head];
		uint8_t *buf = malloc(span.size);
		if (!buf)
			return FX_PQ_E_NOMEM;
		int fd = read_fd_of(queue, segment->seq);
		ssize_t got = fd >= 0 ? pread(fd, buf, span.size, span.off) : -1;
		char path[4096];
		segment_path(queue, segment->seq, path, sizeof(path));
		if (fd >= 0 && got != (ssize_t)span.size)
			disk_error(queue, "cannot read", path, got < 0 ? errno : EIO);
		bool queued = false, nomem = false;
		int64_t latest = INT64_MIN;
		uint64_t len = got == (ssize_t)span.size
				   ? decode_record(buf, span.size, &queued, &latest, entry, &nomem)
				   : 0;
		free(buf);
		if (nomem)
			return FX_PQ_E_NOMEM;
		if (len == span.size && queued)
			return 0;
		if (len)
			fx_push_queue_entry_free(entry);
		queue->stats.corrupt++;
		fx_warn("push queue %s: segment %016" PRIx64 ": the record at offset %" PRIu32
			" no longer reads back intact; skipped",
			queue->what, segment->seq, span.off);
		(void)remove_oldest(queue, false);
	}
	return FX_PQ_E_EMPTY;
}

int fx_push_queue_pop(struct fx_push_queue *queue)
{
	if (queue->stats.requests == 0)
		return FX_PQ_E_EMPTY;
	return remove_oldest(queue, true);
}

uint64_t fx_push_queue_requests(const struct fx_push_queue *queue)
{
	return queue->stats.requests;
}

int64_t fx_push_queue_last_timestamp(const struct fx_push_queue *queue)
{
	return queue->last_timestamp_ms;
}

void fx_push_queue_stats(const struct fx_push_queue *queue, struct fx_push_queue_stats *out)
{
	*out = queue->stats;
}

int fx_push_queue_dir_for(const char *parent, const char *url_without_userinfo, char *out, size_t size)
{
	unsigned char digest[32];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, url_without_userinfo, strlen(url_without_userinfo), digest) !=
	    0)
		return -1;
	char hex[17];
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	int n = snprintf(out, size, "%s/%s", parent, hex);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}
