/* Checkpoints: a store's counters and offsets survive a round trip (full and delta checkpoints, strings of
 * the extra dimensions, created_ms; series without a hostname or an extra string too); a log cut at every
 * byte of its last record, and one with a flipped byte, are detected and the checkpoint before is used; a restore falls back to checkpoint.prev when the
 * current log is unreadable, and to an older checkpoint when the group has not committed the newest one;
 * snapshots expose only what was checkpointed and committed. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fx/checkpoint.h"
#include "fx/intern.h"
#include "fx/series_table.h"
#include "fx/store.h"

#define SERIES 300

struct world {
	struct fx_intern *hostnames, *strings;
	struct fx_key_layout layout;
	struct fx_store *store;
	struct fx_checkpoint *cp;
	struct fx_checkpoint_config config;
	int64_t group_committed; /* what the fake group has for t[0]; -1: none */
	int commits;
};

static int fake_commit(void *opaque, const struct fx_partition_offset *offsets, size_t n)
{
	struct world *w = opaque;
	for (size_t i = 0; i < n; i++)
		if (offsets[i].partition == 0)
			w->group_committed = offsets[i].next;
	w->commits++;
	return 0;
}

static int fake_committed(void *opaque, struct fx_partition_offset *offsets, size_t n)
{
	struct world *w = opaque;
	for (size_t i = 0; i < n; i++)
		offsets[i].next = offsets[i].partition == 0 ? w->group_committed : offsets[i].next;
	return 0;
}

static void world_open(struct world *w, const char *dir, bool group)
{
	memset(w, 0, sizeof(*w));
	w->group_committed = -1;
	w->hostnames = fx_intern_create(1000);
	w->strings = fx_intern_create(1000);
	char why[256];
	CHECK(fx_key_layout_parse(&w->layout, "hostname,source_as,destination_as,protocol", NULL, 0,
				  w->strings, why, sizeof(why)) == 0);
	struct fx_store_config store = {.n_workers = 1, .max_series = 10000, .layout = &w->layout};
	w->store = fx_store_create(&store);
	w->config = (struct fx_checkpoint_config){.dir = dir,
						  .interval_ms = 1000,
						  .store = w->store,
						  .layout = &w->layout,
						  .hostnames = w->hostnames,
						  .max_series = 10000};
	if (group)
		w->config.hooks = (struct fx_checkpoint_hooks){fake_commit, fake_committed, w};
	w->cp = fx_checkpoint_create(&w->config);
	CHECK(w->cp != NULL);
}

static void world_close(struct world *w)
{
	fx_checkpoint_destroy(w->cp);
	fx_store_destroy(w->store);
	fx_intern_destroy(w->hostnames);
	fx_intern_destroy(w->strings);
}

/* Adds `round` bytes to the first n series and hands them over with t[0] at offset `next`. */
static void count(struct world *w, unsigned n, uint64_t round, int64_t next)
{
	struct fx_series_table *delta = fx_series_table_create(10000);
	fx_series_table_set_fold(delta, &w->layout);
	for (unsigned i = 0; i < n; i++) {
		char host[16], proto[16];
		snprintf(host, sizeof(host), "r%u", i % 7);
		snprintf(proto, sizeof(proto), "p%u", i % 5);
		struct fx_series_key key = {.hostname = fx_intern_get(w->hostnames, host, strlen(host)),
					    .as_src = i,
					    .as_dst = 64500,
					    .present = w->layout.mask};
		key.extra[0] = fx_intern_id(w->strings, proto, strlen(proto));
		if (i % 11 == 3) { /* no hostname, no protocol: strings written as none */
			key.hostname = NULL;
			key.extra[0] = 0;
			key.present &= ~(uint32_t)(FX_LABEL_HOSTNAME | FX_LABEL_EXTRA(0));
		}
		CHECK(fx_series_table_add(delta, &key, FX_DIR_RECEIVE, round * (i + 1), round, 1000 + i) >=
		      0);
	}
	struct fx_partition_offset offset = {"t", 0, next};
	CHECK(fx_store_handoff(w->store, 0, delta, &offset, 1, false));
	fx_series_table_destroy(delta);
}

static uint64_t exposed_bytes(struct world *w, size_t *n)
{
	struct fx_snapshot *snapshot = fx_store_snapshot(w->store);
	uint64_t sum = 0;
	*n = snapshot->n_series;
	for (size_t i = 0; i < snapshot->n_series; i++)
		sum += snapshot->series[i].bytes[FX_DIR_RECEIVE];
	fx_snapshot_destroy(snapshot);
	return sum;
}

static uint64_t table_bytes(const struct fx_series_table *table)
{
	uint64_t sum = 0;
	const struct fx_series *s = fx_series_table_array(table);
	for (size_t i = 0; i < fx_series_table_count(table); i++)
		sum += s[i].bytes[FX_DIR_RECEIVE];
	return sum;
}

static uint64_t expected(unsigned n, uint64_t rounds_sum)
{
	return rounds_sum * (uint64_t)n * (n + 1) / 2;
}

static void copy_file(const char *from, const char *to, size_t len)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char *buf = malloc(len ? len : 1);
	CHECK(in && out && buf && fread(buf, 1, len, in) == len && fwrite(buf, 1, len, out) == len);
	fclose(in);
	fclose(out);
	free(buf);
}

static size_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) ? 0 : (size_t)st.st_size;
}

/* Writes two checkpoints (a full one at offset 10, a delta at 20), returns the size after the first. */
static size_t two_checkpoints(const char *dir)
{
	struct world w;
	world_open(&w, dir, false);
	CHECK(fx_checkpoint_restore(w.cp) == 0); /* clean start: writes the empty base */
	count(&w, SERIES, 1, 10);
	CHECK(fx_checkpoint_now(w.cp) == 0);
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, FX_CHECKPOINT_FILE);
	size_t first = file_size(path);
	count(&w, SERIES / 2, 2, 20); /* a delta: half the series change */
	CHECK(fx_checkpoint_now(w.cp) == 0);
	size_t n = 0;
	CHECK_EQ_U64(exposed_bytes(&w, &n), expected(SERIES, 1) + expected(SERIES / 2, 2));
	world_close(&w);
	return first;
}

static void test_round_trip_and_torn(const char *dir)
{
	size_t first = two_checkpoints(dir);
	char path[512], cut[512];
	snprintf(path, sizeof(path), "%s/%s", dir, FX_CHECKPOINT_FILE);
	snprintf(cut, sizeof(cut), "%s/cut", dir);
	size_t size = file_size(path);
	CHECK(size > first);

	struct world w;
	world_open(&w, dir, false);
	struct fx_series_table *series = NULL;
	struct fx_partition_offset *offsets = NULL;
	size_t n_offsets = 0;
	enum fx_checkpoint_fault why;
	CHECK(fx_checkpoint_read_file(&w.config, path, 0, &series, &offsets, &n_offsets, &why) == 3);
	CHECK(why == FX_CHECKPOINT_OK);
	CHECK_EQ_U64(fx_series_table_count(series), SERIES);
	CHECK_EQ_U64(table_bytes(series), expected(SERIES, 1) + expected(SERIES / 2, 2));
	CHECK(n_offsets == 1 && offsets[0].next == 20 && !strcmp(offsets[0].topic, "t"));
	/* The key's strings come back, interned in the pools. */
	const struct fx_series *s0 = fx_series_table_array(series);
	CHECK(s0[0].key.hostname != NULL && fx_intern_string(w.strings, s0[0].key.extra[0]) != NULL);
	CHECK(s0[0].created_ms >= 1000);
	fx_series_table_destroy(series);
	free(offsets);

	/* Cut at every byte of the last checkpoint: always torn, always the one before. */
	size_t failures = 0;
	for (size_t len = first; len < size; len++) {
		copy_file(path, cut, len);
		int n = fx_checkpoint_read_file(&w.config, cut, 0, &series, &offsets, &n_offsets, &why);
		bool ok = n == 2 && (len == first || why == FX_CHECKPOINT_TORN) &&
			  table_bytes(series) == expected(SERIES, 1) && offsets[0].next == 10;
		failures += !ok;
		fx_series_table_destroy(series);
		free(offsets);
	}
	CHECK_EQ_U64(failures, 0);

	/* A flipped byte anywhere in the last checkpoint: corrupt, the one before is used. */
	for (size_t at = first; at < size; at += 97) {
		copy_file(path, cut, size);
		int fd = open(cut, O_RDWR);
		unsigned char byte;
		CHECK(pread(fd, &byte, 1, (off_t)at) == 1);
		byte ^= 0x10;
		CHECK(pwrite(fd, &byte, 1, (off_t)at) == 1);
		close(fd);
		int n = fx_checkpoint_read_file(&w.config, cut, 0, &series, &offsets, &n_offsets, &why);
		CHECK(n == 2 && why == FX_CHECKPOINT_CORRUPT && table_bytes(series) == expected(SERIES, 1));
		fx_series_table_destroy(series);
		free(offsets);
	}
	unlink(cut);
	world_close(&w);
}

/* The current log unreadable (a flipped byte in its header): the restore takes checkpoint.prev, says so,
 * and the exporter's counters resume at its values. */
static void test_fallback_to_prev(const char *dir)
{
	two_checkpoints(dir);
	char path[512], prev[512];
	snprintf(path, sizeof(path), "%s/%s", dir, FX_CHECKPOINT_FILE);
	snprintf(prev, sizeof(prev), "%s/%s", dir, FX_CHECKPOINT_PREV_FILE);
	copy_file(path, prev, file_size(path));
	int fd = open(path, O_RDWR);
	CHECK(pwrite(fd, "X", 1, 0) == 1);
	close(fd);
	struct world w;
	world_open(&w, dir, false);
	CHECK(fx_checkpoint_restore(w.cp) == 0);
	size_t n = 0;
	CHECK_EQ_U64(exposed_bytes(&w, &n), expected(SERIES, 1) + expected(SERIES / 2, 2));
	CHECK_EQ_U64(n, SERIES);
	CHECK(fx_checkpoint_start_offset(w.cp, "t", 0) == 20);
	CHECK(fx_checkpoint_start_offset(w.cp, "t", 1) == -1);
	/* Counting resumes from the restored values: no reset. */
	count(&w, SERIES, 1, 30);
	CHECK(fx_checkpoint_now(w.cp) == 0);
	CHECK_EQ_U64(exposed_bytes(&w, &n), 2 * expected(SERIES, 1) + expected(SERIES / 2, 2));
	world_close(&w);
}

/* The newest checkpoint was written but its commit never happened (a crash between the two): the group
 * is behind it, so the checkpoint before is restored. Exposed values follow commits: a failed commit
 * publishes nothing. */
static void test_group_disagrees(const char *dir)
{
	struct world w;
	world_open(&w, dir, true);
	CHECK(fx_checkpoint_restore(w.cp) == 0);
	count(&w, SERIES, 1, 10);
	CHECK(fx_checkpoint_now(w.cp) == 0);
	CHECK(w.group_committed == 10);
	count(&w, SERIES, 1, 20);
	CHECK(fx_checkpoint_now(w.cp) == 0);
	size_t n = 0;
	CHECK_EQ_U64(exposed_bytes(&w, &n), 2 * expected(SERIES, 1));
	world_close(&w);

	struct world again;
	world_open(&again, dir, true);
	again.group_committed = 10; /* the commit of the checkpoint at 20 was lost */
	CHECK(fx_checkpoint_restore(again.cp) == 0);
	CHECK_EQ_U64(exposed_bytes(&again, &n), expected(SERIES, 1));
	CHECK(fx_checkpoint_start_offset(again.cp, "t", 0) == 10);
	/* Counts not checkpointed yet are not exposed. */
	count(&again, SERIES, 1, 20);
	CHECK_EQ_U64(exposed_bytes(&again, &n), expected(SERIES, 1));
	CHECK(fx_checkpoint_now(again.cp) == 0);
	CHECK_EQ_U64(exposed_bytes(&again, &n), 2 * expected(SERIES, 1));
	world_close(&again);
}

/* A state directory that cannot be written: the daemon goes on, the failure is reported, nothing newer
 * is exposed. */
static void test_unwritable(void)
{
	struct world w;
	world_open(&w, "/proc/flow-exporter-cannot-be-here", false);
	CHECK(fx_checkpoint_restore(w.cp) == 0);
	count(&w, 10, 1, 10);
	CHECK(fx_checkpoint_now(w.cp) == -1);
	size_t n = 0;
	CHECK_EQ_U64(exposed_bytes(&w, &n), 0);
	struct fx_family_list *families = fx_family_list_create();
	CHECK(fx_checkpoint_collect(w.cp, families) == 0);
	fx_family_list_destroy(families);
	world_close(&w);
}

static void clean(const char *dir)
{
	const char *names[] = {FX_CHECKPOINT_FILE, FX_CHECKPOINT_PREV_FILE, FX_CHECKPOINT_TMP_FILE};
	for (size_t i = 0; i < 3; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
}

int main(void)
{
	char dir[] = "/tmp/test_checkpoint.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	test_round_trip_and_torn(dir);
	clean(dir);
	test_fallback_to_prev(dir);
	clean(dir);
	test_group_disagrees(dir);
	clean(dir);
	test_unwritable();
	rmdir(dir);
	return check_exit();
}
