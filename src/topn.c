/* Top-N with "other" (see topn.h): the exposed view of a snapshot.
 *
 * DESIGN
 * State per held series (a series table used as a map, `state`): v[4] (bytes[2], packets[2]) is `hidden`,
 * what the series gave to its group's "other" while folded, when it is exposed, and `F`, its frozen shown
 * value, when it is not; `records` holds its bytes at the last ranking (the window's start); `seen` its
 * flags; `updated_ms` the epoch it was last seen in. A series never exposed has F = 0.
 *  - shown = real - hidden (exposed), F (frozen or folded);
 *  - other(group) = retired(group) + sum over the group's series of (real - shown) + the overflow series
 *    of the same key. Every term only grows: shown stays put at a demotion (F = real - hidden) and at a
 *    promotion (hidden = real - F), and grows only with the series' own records.
 *  - A series removed by --series-ttl gives its (real - shown) to retired(group), found in a copy of the
 *    previous input (kept only when series can expire).
 * Ranking, at the first snapshot and then once per window: per group, by bytes since the previous ranking;
 * the incumbents stay, free places go to the best challengers, then the weakest incumbent is replaced by the
 * strongest challenger while that one carried more than 5/4 of its bytes (the hysteresis). Demoted series
 * are frozen until the next ranking, then leave (a departure, for the stale marker). Between rankings a
 * group below N takes its best challengers (no demotion).
 *
 * Thread: the store's snapshot taker, under the store's topn lock. */
#include "fx/topn.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fx/series_table.h"

#define ST_EXPOSED 0x100u
#define ST_FROZEN 0x200u
#define DEPARTED_KEEP_MS (60 * 60 * 1000)

struct fx_topn {
	struct fx_topn_config config;
	uint32_t dims;
	struct fx_series_table *state;
	struct fx_series_table *retired; /* group key -> what removed series gave to its other */
	struct fx_series *previous;	 /* the last input's held series (sorted), when series can expire */
	size_t n_previous;
	struct fx_series *departed; /* left the exposition: updated_ms = when */
	size_t n_departed, cap_departed;
	bool ranked;
	int64_t next_rank_ms;
	int64_t epoch;
};

struct fx_topn *fx_topn_create(const struct fx_topn_config *config)
{
	struct fx_topn *topn = calloc(1, sizeof(*topn));
	if (!topn)
		return NULL;
	topn->config = *config;
	topn->dims = fx_key_layout_dims(config->layout);
	/* As wide as the layout's keys (series_table.h): the state has a row per held series. */
	topn->state = fx_series_table_create_narrow(config->max_series, config->layout->n_extra);
	topn->retired = fx_series_table_create_narrow(config->max_series, config->layout->n_extra);
	if (!topn->state || !topn->retired) {
		fx_topn_destroy(topn);
		return NULL;
	}
	return topn;
}

void fx_topn_destroy(struct fx_topn *topn)
{
	if (!topn)
		return;
	fx_series_table_destroy(topn->state);
	fx_series_table_destroy(topn->retired);
	free(topn->previous);
	free(topn->departed);
	free(topn);
}

static uint64_t total_bytes(const struct fx_series *s)
{
	return s->bytes[0] + s->bytes[1];
}

/* The shown counters of a held series of state st. */
static void shown_of(const struct fx_series *real, const struct fx_series *st, uint64_t out[4])
{
	const uint64_t r[4] = {real->bytes[0], real->bytes[1], real->packets[0], real->packets[1]};
	const uint64_t v[4] = {st->bytes[0], st->bytes[1], st->packets[0], st->packets[1]};
	for (int k = 0; k < 4; k++)
		out[k] = (st->seen & ST_EXPOSED) ? r[k] - v[k] : v[k];
}

static void set_v(struct fx_series *st, const uint64_t v[4])
{
	st->bytes[0] = v[0], st->bytes[1] = v[1], st->packets[0] = v[2], st->packets[1] = v[3];
}

/* v becomes real - v: hidden <-> F at a promotion or a demotion (shown unchanged). */
static void flip(struct fx_series *st, const struct fx_series *real)
{
	const uint64_t v[4] = {real->bytes[0] - st->bytes[0], real->bytes[1] - st->bytes[1],
			       real->packets[0] - st->packets[0], real->packets[1] - st->packets[1]};
	set_v(st, v);
}

static void add4(struct fx_series *to, const uint64_t v[4], uint32_t seen)
{
	to->bytes[0] += v[0], to->bytes[1] += v[1], to->packets[0] += v[2], to->packets[1] += v[3];
	if (v[0] || v[2])
		to->seen |= seen & (1u << FX_DIR_RECEIVE);
	if (v[1] || v[3])
		to->seen |= seen & (1u << FX_DIR_TRANSMIT);
}

static int depart(struct fx_topn *topn, const struct fx_series *series, int64_t now_ms)
{
	if (topn->n_departed == topn->cap_departed) {
		size_t cap = topn->cap_departed ? 2 * topn->cap_departed : 64;
		struct fx_series *grown = realloc(topn->departed, cap * sizeof(*grown));
		if (!grown)
			return -1;
		topn->departed = grown;
		topn->cap_departed = cap;
	}
	struct fx_series *d = &topn->departed[topn->n_departed++];
	memset(d, 0, sizeof(*d));
	d->key = series->key;
	d->seen = series->seen;
	d->updated_ms = now_ms;
	return 0;
}

struct candidate {
	struct fx_series_key group;
	uint64_t gain;
	const struct fx_series *real;
	struct fx_series *st;
	bool selected;
};

static int compare_candidates(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	int c = memcmp(&x->group, &y->group, sizeof(x->group));
	if (c)
		return c;
	if (x->gain != y->gain)
		return x->gain > y->gain ? -1 : 1;
	return fx_series_key_compare(&x->real->key, &y->real->key);
}

/* Hysteresis: a challenger takes an incumbent's place when it carried more than 5/4 of its bytes. */
static bool beats(uint64_t challenger, uint64_t incumbent)
{
	return (unsigned __int128)challenger * 4 > (unsigned __int128)incumbent * 5;
}

/* One group's candidates [c, c + n), sorted by gain (best first): selects N of them. */
static void select_group(struct candidate *c, size_t n, size_t top, bool full)
{
	size_t incumbents = 0;
	for (size_t i = 0; i < n; i++)
		if (c[i].st->seen & ST_EXPOSED)
			c[i].selected = true, incumbents++;
	for (size_t i = 0; i < n && incumbents < top; i++)
		if (!c[i].selected)
			c[i].selected = true, incumbents++;
	if (!full)
		return;
	/* Weakest selected incumbent against the strongest unselected challenger. */
	size_t weak = n, strong = 0;
	for (;;) {
		while (weak > 0 && !c[weak - 1].selected)
			weak--;
		while (strong < n && c[strong].selected)
			strong++;
		if (weak == 0 || strong >= n || strong > weak - 1 || !beats(c[strong].gain, c[weak - 1].gain))
			return;
		c[weak - 1].selected = false;
		c[strong].selected = true;
		weak--;
	}
}

/* Ranks (full) or fills free places (not full) over the held series of in[]. Returns 0 or -1. */
static int rank(struct fx_topn *topn, const struct fx_series *in, size_t n, bool full, int64_t now_ms)
{
	struct candidate *c = malloc((n ? n : 1) * sizeof(*c));
	if (!c)
		return -1;
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i].key.other)
			continue;
		const struct fx_series *st = fx_series_table_find(topn->state, &in[i].key);
		c[m].real = &in[i];
		c[m].st = (struct fx_series *)st;
		c[m].gain = total_bytes(&in[i]) - st->records;
		c[m].selected = false;
		fx_key_fold(&in[i].key, topn->dims, topn->config.group, &c[m].group);
		m++;
	}
	qsort(c, m, sizeof(*c), compare_candidates);
	int rc = 0;
	for (size_t a = 0, b; a < m; a = b) {
		for (b = a + 1; b < m && !memcmp(&c[b].group, &c[a].group, sizeof(c[a].group)); b++)
			;
		select_group(c + a, b - a, topn->config.n, full);
	}
	for (size_t i = 0; i < m; i++) {
		struct fx_series *st = c[i].st;
		bool exposed = st->seen & ST_EXPOSED, frozen = st->seen & ST_FROZEN;
		if (c[i].selected && !exposed) {
			flip(st, c[i].real);
			st->seen = ST_EXPOSED;
		} else if (!c[i].selected && exposed) {
			flip(st, c[i].real);
			st->seen = ST_FROZEN;
		} else if (!c[i].selected && frozen && full) {
			st->seen = 0;
			rc |= depart(topn, c[i].real, now_ms);
		}
		if (full)
			st->records = total_bytes(c[i].real);
	}
	free(c);
	return rc;
}

struct retire_ctx {
	struct fx_topn *topn;
	int rc;
};

static int compare_keys(const void *key, const void *series)
{
	return fx_series_key_compare(key, &((const struct fx_series *)series)->key);
}

/* A held series left the input (--series-ttl): what it gave to "other" stays there. */
static void retire(void *opaque, const struct fx_series *st)
{
	struct retire_ctx *ctx = opaque;
	struct fx_topn *topn = ctx->topn;
	const struct fx_series *real = topn->n_previous ? bsearch(&st->key, topn->previous, topn->n_previous,
								  sizeof(*topn->previous), compare_keys)
							: NULL;
	if (!real)
		return;
	uint64_t shown[4], given[4];
	shown_of(real, st, shown);
	const uint64_t r[4] = {real->bytes[0], real->bytes[1], real->packets[0], real->packets[1]};
	for (int k = 0; k < 4; k++)
		given[k] = r[k] - shown[k];
	struct fx_series_key group;
	fx_key_fold(&st->key, topn->dims, topn->config.group, &group);
	bool created;
	struct fx_series *to = fx_series_table_upsert(topn->retired, &group, &created);
	if (!to) {
		ctx->rc = -1;
		return;
	}
	add4(to, given, real->seen); /* an exposed one has its store tombstone, hence its stale marker */
}

/* Stamps the state of every held series of in[] with this epoch, creating new ones; retires the rest. */
static int track(struct fx_topn *topn, const struct fx_series *in, size_t n)
{
	topn->epoch++;
	for (size_t i = 0; i < n; i++) {
		if (in[i].key.other)
			continue;
		bool created;
		struct fx_series *st = fx_series_table_upsert(topn->state, &in[i].key, &created);
		if (!st)
			return -1;
		st->updated_ms = topn->epoch;
	}
	struct retire_ctx ctx = {topn, 0};
	fx_series_table_expire(topn->state, topn->epoch, retire, &ctx);
	return ctx.rc;
}

static int compare_series(const void *a, const void *b)
{
	return fx_series_key_compare(&((const struct fx_series *)a)->key,
				     &((const struct fx_series *)b)->key);
}

/* The exposed series of in[] into out (room for n + groups): shown values of the exposed and frozen ones,
 * the groups' other series, the overflow series. Returns how many, or -1 (memory). */
static long expose(struct fx_topn *topn, const struct fx_series *in, size_t n, struct fx_series *out,
		   size_t room, int64_t now_ms)
{
	struct fx_series_table *groups = fx_series_table_create(n + 1);
	if (!groups)
		return -1;
	size_t w = 0;
	long rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (in[i].key.other)
			continue;
		const struct fx_series *st = fx_series_table_find(topn->state, &in[i].key);
		uint64_t shown[4], given[4];
		shown_of(&in[i], st, shown);
		const uint64_t r[4] = {in[i].bytes[0], in[i].bytes[1], in[i].packets[0], in[i].packets[1]};
		for (int k = 0; k < 4; k++)
			given[k] = r[k] - shown[k];
		if (st->seen & (ST_EXPOSED | ST_FROZEN)) {
			out[w] = in[i];
			set_v(&out[w], shown);
			w++;
		}
		struct fx_series_key group;
		fx_key_fold(&in[i].key, topn->dims, topn->config.group, &group);
		bool created;
		struct fx_series *g = fx_series_table_upsert(groups, &group, &created);
		if (!g)
			rc = -1;
		else
			add4(g, given, in[i].seen);
	}
	/* What removed series gave, and the overflow series of the same key, join their group's other. */
	for (size_t i = 0; i < fx_series_table_count(topn->retired) && !rc; i++) {
		struct fx_series retired; /* whole: groups keeps whole keys */
		fx_series_table_copy_row(topn->retired, i, &retired);
		bool created;
		struct fx_series *g = fx_series_table_upsert(groups, &retired.key, &created);
		if (!g)
			rc = -1;
		else
			add4(g,
			     (const uint64_t[4]){retired.bytes[0], retired.bytes[1], retired.packets[0],
						 retired.packets[1]},
			     retired.seen);
	}
	for (size_t i = 0; i < n && !rc; i++) {
		if (!in[i].key.other)
			continue;
		struct fx_series *g = (struct fx_series *)fx_series_table_find(groups, &in[i].key);
		if (g) {
			add4(g,
			     (const uint64_t[4]){in[i].bytes[0], in[i].bytes[1], in[i].packets[0],
						 in[i].packets[1]},
			     in[i].seen);
			g->seen |= in[i].seen;
		} else if (w < room) {
			out[w++] = in[i];
		}
	}
	const struct fx_series *g = fx_series_table_array(groups);
	for (size_t i = 0; i < fx_series_table_count(groups) && !rc && w < room; i++) {
		if (!g[i].seen)
			continue; /* nothing folded in this group yet: no other series */
		out[w] = g[i];
		out[w].updated_ms = now_ms;
		w++;
	}
	fx_series_table_destroy(groups);
	return rc ? -1 : (long)w;
}

/* The snapshot's expired series and the departures of the last hour. */
static struct fx_series *expired_of(struct fx_topn *topn, const struct fx_snapshot *snapshot, int64_t now_ms,
				    size_t *n)
{
	size_t kept = 0;
	for (size_t i = 0; i < topn->n_departed; i++)
		if (topn->departed[i].updated_ms >= now_ms - DEPARTED_KEEP_MS)
			topn->departed[kept++] = topn->departed[i];
	topn->n_departed = kept;
	*n = snapshot->n_expired + kept;
	struct fx_series *expired = malloc((*n ? *n : 1) * sizeof(*expired));
	if (!expired)
		return NULL;
	if (snapshot->n_expired)
		memcpy(expired, snapshot->expired, snapshot->n_expired * sizeof(*expired));
	if (kept)
		memcpy(expired + snapshot->n_expired, topn->departed, kept * sizeof(*expired));
	return expired;
}

/* Keeps the held series of the input for retire(), when series can leave it. */
static int keep_previous(struct fx_topn *topn, const struct fx_series *in, size_t n)
{
	struct fx_series *copy = malloc((n ? n : 1) * sizeof(*copy));
	if (!copy)
		return -1;
	if (n)
		memcpy(copy, in, n * sizeof(*copy));
	free(topn->previous);
	topn->previous = copy;
	topn->n_previous = n;
	return 0;
}

int fx_topn_apply(struct fx_topn *topn, struct fx_snapshot *snapshot, int64_t now_ms)
{
	const struct fx_series *in = snapshot->series;
	size_t n = snapshot->n_series, n_expired = 0;
	if (track(topn, in, n))
		return -1;
	bool full = !topn->ranked || now_ms >= topn->next_rank_ms;
	if (rank(topn, in, n, full, now_ms))
		return -1;
	if (full) {
		topn->ranked = true;
		topn->next_rank_ms = now_ms + topn->config.window_ms;
	}
	size_t room = 2 * n + 1;
	struct fx_series *out = malloc(room * sizeof(*out));
	struct fx_series *expired = expired_of(topn, snapshot, now_ms, &n_expired);
	long w = out && expired ? expose(topn, in, n, out, room, now_ms) : -1;
	if (w < 0 || (topn->config.series_expire && keep_previous(topn, in, n))) {
		free(out);
		free(expired);
		return -1;
	}
	qsort(out, (size_t)w, sizeof(*out), compare_series);
	struct fx_snapshot_shared *shared = fx_snapshot_shared_create(out, (size_t)w, expired, n_expired);
	if (!shared)
		return -1;
	/* The arrays replaced are the snapshot's own when it shares none (snapshot.h): free them. */
	if (snapshot->shared) {
		fx_snapshot_shared_unref(snapshot->shared);
	} else {
		free(snapshot->series);
		free(snapshot->expired);
	}
	fx_snapshot_use_shared(snapshot, shared);
	fx_snapshot_shared_unref(shared);
	return 0;
}
