/* The push queue on disk: append and read oldest first, pop deletes what was sent (and the segment once
 * empty), the bound drops the oldest and counts them (requests and bytes), a reopen keeps the order and
 * what was not sent, a segment cut at every byte of its last record and one with a flipped byte are
 * detected (counted) with the earlier records kept, appends never follow a torn tail, two parts (2.0 and
 * its 1.0 fallback) round-trip, and an unwritable directory and a full disk are counted without failing. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fx/push_queue.h"

static char root[256];

/* An entry whose body is `len` bytes of `seed`-derived content, timestamp = seed. */
static struct fx_push_queue_entry make_entry(int seed, size_t len)
{
	struct fx_push_queue_entry entry = {.n_parts = 1};
	struct fx_push_queue_part *part = &entry.parts[0];
	part->version = 1;
	snprintf(part->content_type, sizeof(part->content_type), "application/x-protobuf");
	part->body = malloc(len);
	for (size_t i = 0; i < len; i++)
		part->body[i] = (char)(seed * 31 + (int)i);
	part->len = len;
	part->n_series = (uint64_t)seed;
	part->n_samples = (uint64_t)seed * 2;
	part->timestamp_ms = 1000 + seed;
	return entry;
}

static bool entry_is(const struct fx_push_queue_entry *entry, int seed, size_t len)
{
	struct fx_push_queue_entry want = make_entry(seed, len);
	bool same = entry->n_parts == 1 && entry->parts[0].len == len && entry->parts[0].version == 1 &&
		    !memcmp(entry->parts[0].body, want.parts[0].body, len) &&
		    entry->parts[0].n_series == (uint64_t)seed &&
		    entry->parts[0].n_samples == (uint64_t)seed * 2 &&
		    entry->parts[0].timestamp_ms == 1000 + seed &&
		    !strcmp(entry->parts[0].content_type, "application/x-protobuf");
	fx_push_queue_entry_free(&want);
	return same;
}

static struct fx_push_queue *open_queue(const char *dir, uint64_t max_bytes, uint64_t segment_bytes)
{
	struct fx_push_queue_config config = {
	    .dir = dir, .what = "test", .max_bytes = max_bytes, .segment_bytes = segment_bytes};
	return fx_push_queue_open(&config);
}

static void append_seed(struct fx_push_queue *queue, int seed, size_t len)
{
	struct fx_push_queue_entry entry = make_entry(seed, len);
	CHECK(fx_push_queue_append(queue, &entry) == 0);
	fx_push_queue_entry_free(&entry);
}

/* Peeks, checks it is seed, pops. */
static void expect_pop(struct fx_push_queue *queue, int seed, size_t len)
{
	struct fx_push_queue_entry entry;
	int rc = fx_push_queue_peek(queue, &entry);
	CHECK(rc == 0);
	if (rc == 0) {
		CHECK(entry_is(&entry, seed, len));
		if (!entry_is(&entry, seed, len))
			fprintf(stderr, "  wanted seed %d, got n_series %llu\n", seed,
				(unsigned long long)entry.parts[0].n_series);
		fx_push_queue_entry_free(&entry);
	}
	CHECK(fx_push_queue_pop(queue) == 0);
}

static size_t count_files(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += strstr(e->d_name, ".seg") != NULL;
	if (d)
		closedir(d);
	return n;
}

static void test_order_and_reopen(void)
{
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/order/q", root);
	struct fx_push_queue *queue = open_queue(dir, 1 << 20, 4096);
	CHECK(queue != NULL);
	struct fx_push_queue_entry entry;
	CHECK(fx_push_queue_peek(queue, &entry) == FX_PQ_E_EMPTY);
	for (int i = 0; i < 50; i++)
		append_seed(queue, i, 100 + (size_t)i * 7);
	CHECK_EQ_U64(fx_push_queue_requests(queue), 50);
	CHECK(count_files(dir) > 1); /* several segments of 4 KiB */
	for (int i = 0; i < 10; i++)
		expect_pop(queue, i, 100 + (size_t)i * 7);
	/* Peek without pop does not remove. */
	CHECK(fx_push_queue_peek(queue, &entry) == 0);
	fx_push_queue_entry_free(&entry);
	CHECK_EQ_U64(fx_push_queue_requests(queue), 40);
	fx_push_queue_close(queue);

	queue = open_queue(dir, 1 << 20, 4096);
	CHECK_EQ_U64(fx_push_queue_requests(queue), 40);
	CHECK(fx_push_queue_last_timestamp(queue) == 1000 + 49);
	for (int i = 10; i < 30; i++)
		expect_pop(queue, i, 100 + (size_t)i * 7);
	append_seed(queue, 100, 10); /* after the previous run's records */
	fx_push_queue_close(queue);

	queue = open_queue(dir, 1 << 20, 4096);
	CHECK_EQ_U64(fx_push_queue_requests(queue), 21);
	for (int i = 30; i < 50; i++)
		expect_pop(queue, i, 100 + (size_t)i * 7);
	expect_pop(queue, 100, 10);
	CHECK(fx_push_queue_peek(queue, &entry) == FX_PQ_E_EMPTY);
	struct fx_push_queue_stats stats;
	fx_push_queue_stats(queue, &stats);
	CHECK_EQ_U64(stats.bytes, 0);
	CHECK_EQ_U64(stats.corrupt, 0);
	CHECK_EQ_U64(stats.disk_errors, 0);
	CHECK_EQ_U64(count_files(dir), 0); /* every segment deleted once sent */
	fx_push_queue_close(queue);
}

static void test_bound(void)
{
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/bound/q", root);
	/* Each record: 16 + 32 + 22 + 1000 = 1070 -> 1072 bytes; 10 fit in 10800. */
	struct fx_push_queue *queue = open_queue(dir, 10800, 0);
	for (int i = 0; i < 25; i++)
		append_seed(queue, i, 1000);
	struct fx_push_queue_stats stats;
	fx_push_queue_stats(queue, &stats);
	CHECK_EQ_U64(stats.requests, 10);
	CHECK_EQ_U64(stats.bytes, 10 * 1072);
	CHECK_EQ_U64(stats.dropped_requests, 15);
	CHECK_EQ_U64(stats.dropped_bytes, 15 * 1072);
	expect_pop(queue, 15, 1000); /* the oldest 15 went */
	fx_push_queue_close(queue);
	queue = open_queue(dir, 10800, 0);
	CHECK_EQ_U64(fx_push_queue_requests(queue), 9); /* the dropped ones do not come back */
	for (int i = 16; i < 25; i++)
		expect_pop(queue, i, 1000);
	/* Larger than the bound alone: dropped and counted. */
	struct fx_push_queue_entry big = make_entry(7, 20000);
	CHECK(fx_push_queue_append(queue, &big) == FX_PQ_E_TOO_BIG);
	fx_push_queue_entry_free(&big);
	fx_push_queue_stats(queue, &stats);
	CHECK_EQ_U64(stats.dropped_requests, 1);
	CHECK_EQ_U64(stats.requests, 0);
	fx_push_queue_close(queue);
}

/* Three records in one segment file; returns the file's path and the offset where the last one starts. */
static void write_three(const char *dir, char *path, size_t size, off_t *last_off, off_t *file_size)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	struct fx_push_queue *queue = open_queue(dir, 1 << 20, 1 << 20);
	append_seed(queue, 1, 300);
	append_seed(queue, 2, 301);
	struct stat st;
	snprintf(path, size, "%s/%016x.seg", dir, 1);
	CHECK(stat(path, &st) == 0);
	*last_off = st.st_size;
	append_seed(queue, 3, 250);
	CHECK(stat(path, &st) == 0);
	*file_size = st.st_size;
	fx_push_queue_close(queue);
}

static void test_torn_tail(void)
{
	char dir[300], path[400];
	snprintf(dir, sizeof(dir), "%s/torn", root);
	off_t last_off, file_size;
	write_three(dir, path, sizeof(path), &last_off, &file_size);
	int failures_before = check_failures;
	for (off_t cut = last_off; cut < file_size; cut++) {
		write_three(dir, path, sizeof(path), &last_off, &file_size);
		CHECK(truncate(path, cut) == 0);
		struct fx_push_queue *queue = open_queue(dir, 1 << 20, 1 << 20);
		struct fx_push_queue_stats stats;
		fx_push_queue_stats(queue, &stats);
		CHECK_EQ_U64(stats.requests, 2);
		CHECK_EQ_U64(stats.corrupt, cut > last_off ? 1 : 0);
		/* A new record goes to a new segment, after the two kept ones. */
		append_seed(queue, 4, 10);
		expect_pop(queue, 1, 300);
		expect_pop(queue, 2, 301);
		expect_pop(queue, 4, 10);
		fx_push_queue_close(queue);
		if (check_failures != failures_before) {
			fprintf(stderr, "  torn at byte %lld of %lld\n", (long long)cut,
				(long long)file_size);
			break;
		}
	}
}

static void test_flipped_byte(void)
{
	char dir[300], path[400];
	snprintf(dir, sizeof(dir), "%s/flip", root);
	off_t last_off, file_size;
	write_three(dir, path, sizeof(path), &last_off, &file_size);
	/* Every byte of the middle record (offset 8-aligned after the first 376-byte one) flipped in turn:
	 * the first and the third are kept (the scan resumes at the next record), the second is counted. */
	off_t second = 376; /* 16 + 32 + 22 + 300 = 370, padded to 376 */
	int failures_before = check_failures;
	for (off_t at = second; at < last_off; at++) {
		write_three(dir, path, sizeof(path), &last_off, &file_size);
		int fd = open(path, O_RDWR);
		unsigned char byte;
		CHECK(pread(fd, &byte, 1, at) == 1);
		byte ^= 0x40;
		CHECK(pwrite(fd, &byte, 1, at) == 1);
		close(fd);
		struct fx_push_queue *queue = open_queue(dir, 1 << 20, 1 << 20);
		struct fx_push_queue_stats stats;
		fx_push_queue_stats(queue, &stats);
		bool padding = at >= second + 16 + 32 + 22 + 301; /* padding bytes are not checked */
		CHECK_EQ_U64(stats.requests, padding ? 3 : 2);
		CHECK_EQ_U64(stats.corrupt, padding ? 0 : 1);
		expect_pop(queue, 1, 300);
		if (padding)
			expect_pop(queue, 2, 301);
		expect_pop(queue, 3, 250);
		fx_push_queue_close(queue);
		if (check_failures != failures_before) {
			fprintf(stderr, "  flipped byte %lld\n", (long long)at);
			break;
		}
	}
	/* A flip after open is detected at read: counted, skipped, the next one read. */
	write_three(dir, path, sizeof(path), &last_off, &file_size);
	struct fx_push_queue *queue = open_queue(dir, 1 << 20, 1 << 20);
	int fd = open(path, O_RDWR);
	CHECK(pwrite(fd, "X", 1, 100) == 1);
	close(fd);
	expect_pop(queue, 2, 301);
	struct fx_push_queue_stats stats;
	fx_push_queue_stats(queue, &stats);
	CHECK_EQ_U64(stats.corrupt, 1);
	fx_push_queue_close(queue);
}

static void test_two_parts(void)
{
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/parts", root);
	struct fx_push_queue *queue = open_queue(dir, 1 << 20, 0);
	struct fx_push_queue_entry entry = make_entry(5, 40), second = make_entry(6, 33);
	entry.parts[0].version = 2;
	snprintf(entry.parts[0].content_type, sizeof(entry.parts[0].content_type),
		 "application/x-protobuf;proto=io.prometheus.write.v2.Request");
	entry.parts[1] = second.parts[0];
	entry.n_parts = 2;
	CHECK(fx_push_queue_append(queue, &entry) == 0);
	fx_push_queue_close(queue);
	queue = open_queue(dir, 1 << 20, 0);
	struct fx_push_queue_entry got;
	CHECK(fx_push_queue_peek(queue, &got) == 0);
	CHECK_EQ_U64(got.n_parts, 2);
	CHECK(got.parts[0].version == 2 && got.parts[1].version == 1);
	CHECK_STR(got.parts[0].content_type, "application/x-protobuf;proto=io.prometheus.write.v2.Request");
	CHECK(got.parts[0].len == 40 && !memcmp(got.parts[0].body, entry.parts[0].body, 40));
	CHECK(got.parts[1].len == 33 && !memcmp(got.parts[1].body, entry.parts[1].body, 33));
	fx_push_queue_entry_free(&got);
	fx_push_queue_entry_free(&entry);
	fx_push_queue_close(queue);
}

static void test_unwritable(void)
{
	if (geteuid() == 0) {
		fprintf(stderr,
			"test_unwritable: as root every directory is writable: using a file as parent\n");
	}
	char file[300], dir[400];
	snprintf(file, sizeof(file), "%s/a-file", root);
	FILE *f = fopen(file, "w");
	fclose(f);
	snprintf(dir, sizeof(dir), "%s/q",
		 file); /* a directory under a regular file: ENOTDIR, even as root */
	struct fx_push_queue *queue = open_queue(dir, 1 << 20, 0);
	CHECK(queue != NULL);
	struct fx_push_queue_entry entry = make_entry(1, 10);
	CHECK(fx_push_queue_append(queue, &entry) == FX_PQ_E_IO);
	CHECK(fx_push_queue_append(queue, &entry) == FX_PQ_E_IO);
	fx_push_queue_entry_free(&entry);
	struct fx_push_queue_stats stats;
	fx_push_queue_stats(queue, &stats);
	CHECK(stats.disk_errors >= 2);
	CHECK_EQ_U64(stats.requests, 0);
	fx_push_queue_close(queue);
}

/* A full disk, simulated with RLIMIT_FSIZE (write() fails with EFBIG past it, even as root): the append
 * fails, is counted, leaves no partial record behind, the records before stay readable, and once there is
 * room again appends work. */
static void test_disk_full(void)
{
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/full", root);
	struct fx_push_queue *queue = open_queue(dir, 1 << 20, 1 << 20);
	append_seed(queue, 1, 1000);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, tight = {.rlim_cur = 1500, .rlim_max = RLIM_INFINITY};
	getrlimit(RLIMIT_FSIZE, &old);
	tight.rlim_max = old.rlim_max;
	CHECK(setrlimit(RLIMIT_FSIZE, &tight) == 0);
	struct fx_push_queue_entry entry = make_entry(2, 1000);
	CHECK(fx_push_queue_append(queue, &entry) == FX_PQ_E_IO);
	CHECK(fx_push_queue_append(queue, &entry) == FX_PQ_E_IO);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	struct fx_push_queue_stats stats;
	fx_push_queue_stats(queue, &stats);
	CHECK_EQ_U64(stats.requests, 1);
	CHECK(stats.disk_errors >= 2);
	CHECK(fx_push_queue_append(queue, &entry) == 0);
	fx_push_queue_entry_free(&entry);
	fx_push_queue_close(queue);
	queue = open_queue(dir, 1 << 20, 1 << 20);
	fx_push_queue_stats(queue, &stats);
	CHECK_EQ_U64(stats.corrupt, 0); /* the failed writes were undone */
	expect_pop(queue, 1, 1000);
	expect_pop(queue, 2, 1000);
	fx_push_queue_close(queue);
}

static void test_dir_for(void)
{
	char a[128], b[128];
	CHECK(fx_push_queue_dir_for("/q", "http://h:9/api/v1/write", a, sizeof(a)) == 0);
	CHECK(fx_push_queue_dir_for("/q", "http://h:9/api/v1/write?tenant=2", b, sizeof(b)) == 0);
	CHECK(strlen(a) == 3 + 16 && strncmp(a, "/q/", 3) == 0);
	CHECK(strcmp(a, b) != 0);
	CHECK(fx_push_queue_dir_for("/q", "http://h:9/api/v1/write", b, 10) == -1);
}

int main(void)
{
	snprintf(root, sizeof(root), "%s/fx-test-push-queue.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(root))
		return 1;
	test_order_and_reopen();
	test_bound();
	test_torn_tail();
	test_flipped_byte();
	test_two_parts();
	test_unwritable();
	test_disk_full();
	test_dir_for();
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
	return check_exit();
}
