/* Top-N with "other" against a model of a TSDB: random traffic over three routers whose mix shifts, the
 * store's snapshots taken at increasing times with a short window (membership changes many times). The model
 * keeps the last value of every series ever exposed, like a TSDB scraping each snapshot; at every snapshot:
 * no exposed counter ever goes down (resets() = 0), the sum of the last values of every series ever exposed
 * equals the exact total sent (sum(increase()) over the run), per router and family, and no group exposes
 * more than N + 1 series plus the frozen ones (those demoted at the last ranking).
 *
 * The hysteresis itself (test_hysteresis), fx_topn_apply driven with made-up snapshots at chosen times
 * against a reference model written from README's rule: a challenger with exactly 5/4 of the weakest
 * incumbent's bytes in the window does not displace it, one byte more does; membership changes at most once
 * per window (at the first snapshot at or after the window's end), whatever the traffic between; a demoted
 * series stays frozen for one window, then leaves; promoted again it continues from its frozen value; other
 * = everything not shown. Scripted cases at the boundary, then random traffic whose gains sit at 5/4 - 1,
 * 5/4 and 5/4 + 1 of each other, compared snapshot by snapshot (members and every shown value). */
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "fx/ingest.h"
#include "fx/intern.h"
#include "fx/store.h"
#include "fx/topn.h"

enum { HOSTS = 3, N = 5, ROUNDS = 120, MAX_MODEL = 20000 };
static const char *const hosts[HOSTS] = {"r1", "r2", "r3"};

struct model_entry {
	struct fx_series_key key;
	uint64_t last[4];
};

static struct model_entry model[MAX_MODEL];
static size_t n_model;

static struct model_entry *model_find(const struct fx_series_key *key)
{
	for (size_t i = 0; i < n_model; i++)
		if (!memcmp(&model[i].key, key, sizeof(*key)))
			return &model[i];
	if (n_model == MAX_MODEL)
		return NULL;
	memset(&model[n_model], 0, sizeof(model[0]));
	model[n_model].key = *key;
	return &model[n_model++];
}

static int host_of(const char *hostname)
{
	for (int h = 0; h < HOSTS; h++)
		if (hostname && !strcmp(hostname, hosts[h]))
			return h;
	return -1;
}

struct world {
	struct fx_local_asns local;
	struct fx_intern *hostnames, *strings;
	struct fx_key_layout layout;
	struct fx_store *store;
	struct fx_ingest *ingest;
};

static void check_snapshot(const struct fx_snapshot *snapshot, const uint64_t sent[HOSTS][4], int round)
{
	size_t exposed[HOSTS] = {0};
	uint64_t sum[HOSTS][4] = {{0}};
	int resets = 0;
	for (size_t i = 0; i < snapshot->n_series; i++) {
		const struct fx_series *s = &snapshot->series[i];
		struct model_entry *e = model_find(&s->key);
		CHECK(e != NULL);
		if (!e)
			return;
		const uint64_t v[4] = {s->bytes[0], s->bytes[1], s->packets[0], s->packets[1]};
		for (int k = 0; k < 4; k++) {
			resets += v[k] < e->last[k];
			e->last[k] = v[k];
		}
		int h = host_of(s->key.hostname);
		CHECK(h >= 0);
		if (h >= 0 && !s->key.other)
			exposed[h]++;
	}
	CHECK_EQ_U64(resets, 0);
	for (size_t i = 0; i < n_model; i++) {
		int h = host_of(model[i].key.hostname);
		for (int k = 0; h >= 0 && k < 4; k++)
			sum[h][k] += model[i].last[k];
	}
	for (int h = 0; h < HOSTS; h++) {
		for (int k = 0; k < 4; k++)
			if (sum[h][k] != sent[h][k]) {
				CHECK_EQ_U64(sum[h][k], sent[h][k]);
				fprintf(stderr, "round %d host %d family %d\n", round, h, k);
			}
		/* N exposed, at most N frozen (demoted at the last ranking), besides other. */
		CHECK(exposed[h] <= 2 * N);
	}
}

static void test_model(void)
{
	struct world w;
	char why[256];
	w.local = (struct fx_local_asns){.asn = {65000}, .n = 1};
	w.hostnames = fx_intern_create(100);
	w.strings = fx_intern_create(1000);
	CHECK(fx_key_layout_parse(&w.layout, "hostname,source_as,destination_as", NULL, 0, w.strings, why,
				  sizeof(why)) == 0);
	struct fx_store_config store = {.n_workers = 1,
					.max_series = 150,
					.layout = &w.layout,
					.top_n = N,
					.top_n_window_ms = 1000,
					.top_n_group = FX_LABEL_HOSTNAME};
	w.store = fx_store_create(&store);
	struct fx_ingest_config config = {.local = &w.local,
					  .layout = &w.layout,
					  .max_series = 150,
					  .max_record_bytes = 4096,
					  .hostnames = w.hostnames,
					  .store = w.store};
	w.ingest = fx_ingest_create(&config);
	CHECK(w.store && w.ingest);
	uint64_t sent[HOSTS][4] = {{0}}, rng = 0x9e3779b97f4a7c15ull;
	size_t max_exposed = 0;
	for (int round = 0; round < ROUNDS; round++) {
		char message[256];
		for (int r = 0; r < 200; r++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			int h = (int)(rng % HOSTS);
			/* The mix shifts: the popular ASes move every ten rounds; a few hundred keys in all
			 * (more than --max-series: the overflow series is the other series too). */
			unsigned asn = (unsigned)((rng >> 8) % 8 + (unsigned)(round / 10) * 7 +
						  ((rng >> 30) % 5 == 0 ? 300 : 0));
			unsigned long long bytes = 1 + (rng >> 40) % 1000;
			bool transmit = (rng >> 20) & 1;
			snprintf(message, sizeof(message),
				 "{\"label\": \"%s\", \"as_src\": %u, \"as_dst\": %u, \"bytes\": %llu, "
				 "\"packets\": 2}",
				 hosts[h], transmit ? 65000 : asn, transmit ? asn : 65000, bytes);
			fx_ingest_message(w.ingest, message, strlen(message), 1000);
			sent[h][transmit ? 1 : 0] += bytes;
			sent[h][transmit ? 3 : 2] += 2;
		}
		CHECK(fx_ingest_flush(w.ingest, true));
		struct fx_snapshot *snapshot = fx_store_snapshot(w.store);
		CHECK(snapshot != NULL);
		if (!snapshot)
			break;
		/* The store takes the wall clock; the window is one second: rounds are made to cross it. */
		check_snapshot(snapshot, (const uint64_t(*)[4])sent, round);
		if (snapshot->n_series > max_exposed)
			max_exposed = snapshot->n_series;
		fx_snapshot_destroy(snapshot);
		struct timespec pause = {0, 60 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "top-N model: %zu series ever exposed, at most %zu at once, %d rounds\n", n_model,
		max_exposed, ROUNDS);
	CHECK(n_model > (size_t)HOSTS * (N + 1)); /* membership changed */
	fx_ingest_destroy(w.ingest);
	fx_store_destroy(w.store);
	fx_intern_destroy(w.hostnames);
	fx_intern_destroy(w.strings);
}

/* ---- the hysteresis against a reference model ---------------------------------------------------- */

enum { HN = 3, HMAX = 8, WINDOW_MS = 1000 };
enum hstate { H_FOLDED, H_EXPOSED, H_FROZEN };

/* README's rule for one group, with every series' real bytes (one direction, packets unused). */
struct ref {
	size_t n;
	uint64_t real[HMAX], at_rank[HMAX], shown[HMAX];
	enum hstate state[HMAX];
	bool ranked;
	int64_t next_rank_ms;
};

static uint64_t ref_gain(const struct ref *m, size_t i)
{
	return m->real[i] - m->at_rank[i];
}

/* Best first: more bytes in the window, then the lower AS (the exporter's key order). */
static void ref_order(const struct ref *m, size_t order[HMAX])
{
	for (size_t i = 0; i < m->n; i++)
		order[i] = i;
	for (size_t i = 1; i < m->n; i++)
		for (size_t j = i; j > 0 && ref_gain(m, order[j]) > ref_gain(m, order[j - 1]); j--) {
			size_t t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
}

static void ref_snapshot(struct ref *m, int64_t now_ms)
{
	bool full = !m->ranked || now_ms >= m->next_rank_ms;
	size_t order[HMAX], members = 0;
	bool selected[HMAX] = {false};
	ref_order(m, order);
	for (size_t i = 0; i < m->n; i++)
		if (m->state[i] == H_EXPOSED)
			selected[i] = true, members++;
	for (size_t k = 0; k < m->n && members < HN; k++)
		if (!selected[order[k]])
			selected[order[k]] = true, members++;
	while (full) {
		/* The weakest member against the strongest challenger: it must carry MORE than 5/4. */
		size_t weak = HMAX, strong = HMAX;
		for (size_t k = 0; k < m->n; k++)
			if (selected[order[k]])
				weak = order[k];
		for (size_t k = m->n; k-- > 0;)
			if (!selected[order[k]])
				strong = order[k];
		if (weak == HMAX || strong == HMAX || ref_gain(m, strong) * 4 <= ref_gain(m, weak) * 5)
			break;
		selected[weak] = false;
		selected[strong] = true;
	}
	for (size_t i = 0; i < m->n; i++) {
		if (selected[i])
			m->state[i] = H_EXPOSED; /* shown continues from where it stood */
		else if (m->state[i] == H_EXPOSED)
			m->state[i] = H_FROZEN;
		else if (m->state[i] == H_FROZEN && full)
			m->state[i] = H_FOLDED;
		if (full)
			m->at_rank[i] = m->real[i];
	}
	if (full) {
		m->ranked = true;
		m->next_rank_ms = now_ms + WINDOW_MS;
	}
}

/* Traffic: shown grows with the series' own bytes only while it is exposed. */
static void ref_add(struct ref *m, size_t i, uint64_t bytes)
{
	m->real[i] += bytes;
	if (m->state[i] == H_EXPOSED)
		m->shown[i] += bytes;
}

struct hworld {
	struct fx_intern *strings;
	struct fx_key_layout layout;
	struct fx_topn *topn;
	struct ref ref;
	const char *host;
	int64_t now_ms;
};

static struct fx_series_key hkey(const struct hworld *w, size_t i)
{
	struct fx_series_key key = {0};
	key.hostname = w->host;
	key.as_src = 100 + (uint32_t)i;
	key.as_dst = 65000;
	key.present = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS;
	return key;
}

/* One snapshot of the exporter and of the model at w->now_ms: the same members, the same shown bytes, and
 * other = the rest. Returns false (and reports) on a difference. */
static bool hsnapshot(struct hworld *w, const char *what)
{
	struct ref *m = &w->ref;
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	CHECK(snapshot != NULL);
	if (!snapshot)
		return false;
	snapshot->layout = &w->layout;
	snapshot->label_mask = w->layout.mask;
	snapshot->self = fx_family_list_create();
	snapshot->series = calloc(m->n ? m->n : 1, sizeof(*snapshot->series));
	snapshot->n_series = m->n;
	for (size_t i = 0; i < m->n; i++) { /* as_src ascending: sorted */
		struct fx_series *s = &snapshot->series[i];
		s->key = hkey(w, i);
		s->bytes[FX_DIR_RECEIVE] = m->real[i];
		s->records = 1;
		s->seen = 1u << FX_DIR_RECEIVE;
	}
	CHECK(fx_topn_apply(w->topn, snapshot, w->now_ms) == 0);
	ref_snapshot(m, w->now_ms);
	uint64_t shown[HMAX] = {0}, other = 0, total = 0, model_other = 0;
	bool present[HMAX] = {false}, ok = true;
	for (size_t i = 0; i < snapshot->n_series; i++) {
		const struct fx_series *s = &snapshot->series[i];
		if (s->key.other) {
			other += s->bytes[FX_DIR_RECEIVE];
			continue;
		}
		size_t at = s->key.as_src - 100;
		present[at] = true;
		shown[at] = s->bytes[FX_DIR_RECEIVE];
	}
	for (size_t i = 0; i < m->n; i++) {
		bool want = m->state[i] != H_FOLDED;
		if (present[i] != want || (want && shown[i] != m->shown[i])) {
			fprintf(stderr,
				"%s at %lld ms: series %zu: exporter %s %llu, model %s %llu (state %d)\n",
				what, (long long)w->now_ms, i, present[i] ? "shows" : "hides",
				(unsigned long long)shown[i], want ? "shows" : "hides",
				(unsigned long long)m->shown[i], (int)m->state[i]);
			ok = false;
		}
		total += m->real[i];
		model_other += m->real[i] - m->shown[i]; /* a hidden series shows its frozen value */
	}
	if (other != model_other) {
		fprintf(stderr, "%s at %lld ms: other %llu, model %llu (total %llu)\n", what,
			(long long)w->now_ms, (unsigned long long)other, (unsigned long long)model_other,
			(unsigned long long)total);
		ok = false;
	}
	CHECK(ok);
	fx_snapshot_destroy(snapshot);
	return ok;
}

static void hsetup(struct hworld *w, size_t n_series)
{
	char why[256];
	memset(w, 0, sizeof(*w));
	w->strings = fx_intern_create(100);
	CHECK(fx_key_layout_parse(&w->layout, "hostname,source_as,destination_as", NULL, 0, w->strings, why,
				  sizeof(why)) == 0);
	struct fx_topn_config config = {HN, WINDOW_MS, FX_LABEL_HOSTNAME, &w->layout, 100, false};
	w->topn = fx_topn_create(&config);
	CHECK(w->topn != NULL);
	w->host = "r1";
	w->ref.n = n_series;
	w->now_ms = 1000000;
}

static void hteardown(struct hworld *w)
{
	fx_topn_destroy(w->topn);
	fx_intern_destroy(w->strings);
}

static enum hstate hstate_of(const struct hworld *w, size_t i)
{
	return w->ref.state[i];
}

static void test_hysteresis_scripted(void)
{
	struct hworld w;
	hsetup(&w, 5);
	/* First snapshot: a ranking; the three heaviest are members. */
	const uint64_t first[5] = {1000, 900, 800, 10, 10};
	for (size_t i = 0; i < 5; i++)
		ref_add(&w.ref, i, first[i]);
	hsnapshot(&w, "first ranking");
	CHECK(hstate_of(&w, 0) == H_EXPOSED && hstate_of(&w, 1) == H_EXPOSED &&
	      hstate_of(&w, 2) == H_EXPOSED);
	/* Window 2: the weakest member (2) carries 400, challenger 3 exactly 5/4 of it: 500. No change. */
	ref_add(&w.ref, 0, 1000), ref_add(&w.ref, 1, 1000), ref_add(&w.ref, 2, 400), ref_add(&w.ref, 3, 500);
	w.now_ms += WINDOW_MS;
	hsnapshot(&w, "exactly 5/4");
	CHECK(hstate_of(&w, 2) == H_EXPOSED && hstate_of(&w, 3) == H_FOLDED);
	/* Window 3: one byte more than 5/4, 501 against 400: challenger 3 displaces member 2. */
	ref_add(&w.ref, 0, 1000), ref_add(&w.ref, 1, 1000), ref_add(&w.ref, 2, 400), ref_add(&w.ref, 3, 501);
	w.now_ms += WINDOW_MS;
	hsnapshot(&w, "5/4 plus one byte");
	CHECK(hstate_of(&w, 2) == H_FROZEN && hstate_of(&w, 3) == H_EXPOSED);
	uint64_t frozen_at = w.ref.shown[2];
	/* Within the window, however strong the traffic: no ranking. 2 stays frozen (its bytes go to other),
	 * 4 stays folded. */
	for (int k = 1; k <= 9; k++) {
		ref_add(&w.ref, 2, 100000), ref_add(&w.ref, 4, 100000);
		w.now_ms += 111; /* the ninth 1 ms before the window ends */
		hsnapshot(&w, "within the window");
		CHECK(hstate_of(&w, 2) == H_FROZEN && hstate_of(&w, 4) == H_FOLDED);
		CHECK_EQ_U64(w.ref.shown[2], frozen_at);
	}
	/* At the window's end: a ranking; 2 and 4 carried ~900000 each: both promoted (2 from its frozen
	 * value), the two weakest members demoted. */
	w.now_ms += 1;
	ref_add(&w.ref, 0, 1000);
	hsnapshot(&w, "next ranking");
	CHECK(hstate_of(&w, 2) == H_EXPOSED && hstate_of(&w, 4) == H_EXPOSED);
	CHECK_EQ_U64(w.ref.shown[2], frozen_at);
	/* One more window with no traffic: the frozen ones leave. */
	w.now_ms += WINDOW_MS;
	hsnapshot(&w, "frozen leave");
	size_t folded = 0;
	for (size_t i = 0; i < 5; i++)
		folded += hstate_of(&w, i) == H_FOLDED;
	CHECK_EQ_U64(folded, 2);
	hteardown(&w);
}

static void test_hysteresis_random(void)
{
	struct hworld w;
	hsetup(&w, HMAX);
	uint64_t rng = 0x243f6a8885a308d3ull;
	size_t changes = 0;
	enum hstate before[HMAX];
	for (int step = 0; step < 3000; step++) {
		memcpy(before, w.ref.state, sizeof(before));
		/* Gains near the boundary: multiples of 4 and 5 of one unit, so that 5/4 ratios recur
		 * exactly, plus or minus one byte. */
		for (size_t i = 0; i < HMAX; i++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			uint64_t unit = 1 + (rng >> 50) % 3;
			uint64_t bytes = ((rng >> 8) % 3 == 0 ? 4 : 5) * unit * 25 + (rng >> 20) % 3 - 1;
			if ((rng >> 30) % 4 == 0)
				bytes = 0;
			ref_add(&w.ref, i, bytes);
		}
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		w.now_ms += (int64_t)((rng >> 10) % 700); /* 0 to 0.7 windows: several snapshots a window */
		if (!hsnapshot(&w, "random"))
			break;
		changes += memcmp(before, w.ref.state, sizeof(before)) != 0;
	}
	fprintf(stderr, "hysteresis: %zu of 3000 snapshots changed the membership\n", changes);
	CHECK(changes > 100);
	hteardown(&w);
}

int main(void)
{
	test_hysteresis_scripted();
	test_hysteresis_random();
	test_model();
	return check_exit();
}
