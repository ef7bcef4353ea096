/* AS names: keeps a current AS-name map (asn_map.c) loaded from an embedded text, a file or an http(s) URL,
 * refreshed in the background, with the last good download cached on disk.
 *
 * Threads: fx_asn_names_create loads what it can synchronously (the embedded text, the file, or the cache of
 * the last download), then starts one background thread (file with refresh_ms > 0, or URL) that re-reads the
 * file when its stat signature changes, or downloads the URL immediately and every refresh_ms (with a
 * growing, shorter backoff after a failure). Readers (any thread) only call fx_asn_names_acquire, which holds
 * `lock` for a pointer copy and a reference increment: loading, parsing and downloading never hold it.
 *
 * Invariants: a map never changes after fx_asn_map_parse returns and is freed by its last unref; `current`
 * only ever moves to a map with at least one name, so a failed load keeps the previous names; the
 * download (through http_client.c, like every HTTP request of the process) contacts only the configured
 * URL (no redirects, no proxy) and is bounded in time and size;
 * destroy stops the thread promptly, mid-download (the HTTP client's abort flag and wake-up) or mid-sleep
 * (condition variable on CLOCK_MONOTONIC). */
#include "fx/asn_names.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fx/buf.h"
#include "fx/clock.h"
#include "fx/http_client.h"
#include "fx/log.h"
#include "fx/thread_name.h"

/* ---- The service: current map, loaders, background refresh ---- */

/* The largest list accepted from a file, the cache or a download (asn.txt is about 4 MiB today). */
#define MAX_LIST_BYTES ((size_t)64 << 20)
/* After a failed download: the first retry waits min(refresh, BACKOFF_FIRST_MS), doubling up to
 * min(refresh, BACKOFF_MAX_MS) (BACKOFF_MAX_MS alone when refresh is 0). */
#define BACKOFF_FIRST_MS ((int64_t)30 * 1000)
#define BACKOFF_MAX_MS ((int64_t)60 * 60 * 1000)
#define REASON_SIZE 256

enum source_kind { SOURCE_EMBEDDED, SOURCE_FILE, SOURCE_URL };

/* Where a load came from: the `source` label of flow_exporter_asn_names_loads_total. */
enum load_origin { ORIGIN_FILE, ORIGIN_URL, ORIGIN_CACHE, ORIGIN_EMBEDDED, N_ORIGINS };
static const char *const origin_names[N_ORIGINS] = {"file", "url", "cache", "embedded"};

/* What identifies a version of a file without reading it. `error` is the errno of a failed stat or open. */
struct file_signature {
	int error;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct fx_asn_names {
	/* Set by create, read-only afterwards. */
	enum source_kind kind;
	char *source;
	char *shown_source; /* the source for logs, without a URL's user:password@ */
	char *cache_path;
	const char *embedded_text; /* borrowed from the config */
	int64_t refresh_ms;
	int64_t timeout_ms;
	struct fx_http_client *http; /* URL only; fx_http_client_wakeup is the one call from another thread */

	/* Guarded by `lock`, which is held only for copies and increments (never for I/O or parsing):
	 * the current map, the statistics, and the stop request the thread sleeps on (`wake`). */
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	struct fx_asn_map *current;
	uint64_t loads[N_ORIGINS][2]; /* [origin][0 = success, 1 = failure] */
	uint64_t cache_write_failures;
	int64_t last_success_wall_ms; /* 0 before the first */
	/* Written under `lock`; atomic so that the HTTP client can read it without the lock (its abort flag).
	 */
	atomic_bool stopping;
	bool reload_requested; /* fx_asn_names_reload: refresh now (a file even if it looks unchanged) */

	pthread_t thread;
	bool thread_started;

	/* Owned by the background thread (by create before the thread starts). */
	struct file_signature file_seen; /* the file as last read, or as it was when the last read failed */
};

static bool same_signature(const struct file_signature *a, const struct file_signature *b)
{
	if (a->error || b->error)
		return a->error == b->error;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void signature_from_stat(struct file_signature *signature, const struct stat *st)
{
	memset(signature, 0, sizeof(*signature));
	signature->dev = st->st_dev;
	signature->ino = st->st_ino;
	signature->size = st->st_size;
	signature->mtime = st->st_mtim;
}

/* Reads a whole file of at most MAX_LIST_BYTES into body (NUL-terminated). Fills *signature from the open
 * file (or the error). Returns 0, or -1 with errno set (EFBIG when too large). */
static int read_file(const char *path, struct fx_buf *body, struct file_signature *signature)
{
	int fd = -1, saved_errno = 0;
	struct stat st;
	bool have_stat = false;
	char chunk[65536];

	memset(signature, 0, sizeof(*signature));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		saved_errno = errno;
		goto fail;
	}
	signature_from_stat(signature, &st);
	have_stat = true;
	if (S_ISDIR(st.st_mode)) {
		saved_errno = EISDIR;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved_errno = errno;
			goto fail;
		}
		if (n == 0)
			break;
		int rc = fx_buf_append(body, chunk, (size_t)n);
		if (rc != 0) {
			saved_errno = rc == FX_BUF_E_TOO_BIG ? EFBIG : ENOMEM;
			goto fail;
		}
	}
	close(fd);
	return 0;

fail:
	if (fd >= 0)
		close(fd);
	if (!have_stat)
		signature->error = saved_errno; /* else the file's identity: retried when it changes */
	errno = saved_errno;
	return -1;
}

/* Makes the current map `map` (which has at least one name) and counts a successful load.
 * Takes ownership of map. */
static void install_map(struct fx_asn_names *names, struct fx_asn_map *map, enum load_origin origin,
			size_t bad_lines)
{
	size_t count = fx_asn_map_count(map);
	pthread_mutex_lock(&names->lock);
	struct fx_asn_map *old = names->current;
	names->current = map;
	names->loads[origin][0]++;
	names->last_success_wall_ms = fx_wall_ms();
	pthread_mutex_unlock(&names->lock);
	fx_asn_map_unref(old); /* outside the lock: the last unref frees a large map */
	fx_info("asn names: loaded %zu names from %s %s (%zu lines skipped)", count, origin_names[origin],
		names->kind == SOURCE_EMBEDDED ? "text"
		: origin == ORIGIN_CACHE       ? names->cache_path
					       : names->shown_source,
		bad_lines);
}

static void count_failure(struct fx_asn_names *names, enum load_origin origin, const char *what,
			  const char *reason)
{
	pthread_mutex_lock(&names->lock);
	names->loads[origin][1]++;
	pthread_mutex_unlock(&names->lock);
	fx_warn("asn names: loading %s %s failed (%s); keeping the previous names", origin_names[origin],
		what, reason);
}

/* Parses text and installs it when it has at least one name. Returns 0, or -1 (counted and logged). */
static int load_text(struct fx_asn_names *names, enum load_origin origin, const char *what, const char *text,
		     size_t len)
{
	size_t bad_lines = 0;
	struct fx_asn_map *map = fx_asn_map_parse(text, len, &bad_lines);
	if (!map) {
		count_failure(names, origin, what, "out of memory");
		return -1;
	}
	if (fx_asn_map_count(map) == 0) {
		char reason[REASON_SIZE];
		snprintf(reason, sizeof(reason), "no names in %zu bytes, %zu lines skipped", len, bad_lines);
		fx_asn_map_unref(map);
		count_failure(names, origin, what, reason);
		return -1;
	}
	install_map(names, map, origin, bad_lines);
	return 0;
}

/* Reads the file source when it changed since it was last seen (always when force is set).
 * Thread: create, then the background thread. */
static void refresh_file(struct fx_asn_names *names, bool force)
{
	struct file_signature now;
	struct stat st;
	struct fx_buf body;

	if (!force) {
		if (stat(names->source, &st) == 0) {
			signature_from_stat(&now, &st);
		} else {
			memset(&now, 0, sizeof(now));
			now.error = errno;
		}
		/* An unchanged file is not read again, and an unchanged failure is not logged again. */
		if (same_signature(&now, &names->file_seen))
			return;
	}
	fx_buf_init(&body, MAX_LIST_BYTES);
	if (read_file(names->source, &body, &names->file_seen) != 0) {
		char reason[REASON_SIZE];
		snprintf(reason, sizeof(reason), "%s", strerror(errno));
		count_failure(names, ORIGIN_FILE, names->shown_source, reason);
	} else {
		(void)load_text(names, ORIGIN_FILE, names->shown_source, body.data ? body.data : "",
				body.len);
	}
	fx_buf_free(&body);
}

/* Loads the cache of the last download. A missing cache (the first start) is not a failure.
 * Thread: create. */
static void load_cache(struct fx_asn_names *names)
{
	struct fx_buf body;
	struct file_signature ignored;

	fx_buf_init(&body, MAX_LIST_BYTES);
	if (read_file(names->cache_path, &body, &ignored) != 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			fx_info("asn names: no cache at %s yet", names->cache_path);
		} else {
			char reason[REASON_SIZE];
			snprintf(reason, sizeof(reason), "%s", strerror(errno));
			count_failure(names, ORIGIN_CACHE, names->cache_path, reason);
		}
	} else {
		(void)load_text(names, ORIGIN_CACHE, names->cache_path, body.data ? body.data : "", body.len);
	}
	fx_buf_free(&body);
}

/* Creates every missing directory above path (like mkdir -p of its dirname). Returns 0 or -1 (errno). */
static int make_parent_dirs(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	char *last_slash = strrchr(copy, '/');
	int rc = 0;
	if (last_slash && last_slash != copy) {
		*last_slash = '\0';
		for (char *p = copy + 1; rc == 0; p++) {
			if (*p != '/' && *p != '\0')
				continue;
			char saved = *p;
			*p = '\0';
			if (mkdir(copy, 0755) != 0 && errno != EEXIST)
				rc = -1;
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	int saved_errno = errno;
	free(copy);
	errno = saved_errno;
	return rc;
}

static int write_all(int fd, const char *bytes, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, bytes, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		bytes += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replaces the cache atomically: a temporary file in the same directory, fsync, rename, fsync of the
 * directory. A failure is logged and counted, never fatal. Thread: the background thread. */
static void write_cache(struct fx_asn_names *names, const char *body, size_t len)
{
	char *tmp_path = NULL;
	int fd = -1;
	const char *step = "mkdir";

	if (make_parent_dirs(names->cache_path) != 0)
		goto fail;
	step = "allocate";
	size_t tmp_size = strlen(names->cache_path) + sizeof(".tmp.XXXXXX");
	tmp_path = malloc(tmp_size);
	if (!tmp_path) {
		errno = ENOMEM;
		goto fail;
	}
	snprintf(tmp_path, tmp_size, "%s.tmp.XXXXXX", names->cache_path);
	step = "create";
	fd = mkstemp(tmp_path);
	if (fd < 0) {
		free(tmp_path);
		tmp_path = NULL; /* nothing to unlink */
		goto fail;
	}
	step = "write";
	if (fchmod(fd, 0644) != 0 || write_all(fd, body, len) != 0)
		goto fail;
	step = "fsync";
	if (fsync(fd) != 0)
		goto fail;
	step = "close";
	int rc = close(fd);
	fd = -1;
	if (rc != 0)
		goto fail;
	step = "rename";
	if (rename(tmp_path, names->cache_path) != 0)
		goto fail;
	free(tmp_path);
	tmp_path = NULL;

	/* Make the rename durable; a failure here leaves a good cache that may not survive a power loss. */
	char *dir = strdup(names->cache_path);
	if (dir) {
		char *slash = strrchr(dir, '/');
		const char *dir_path = ".";
		if (slash == dir) {
			dir_path = "/";
		} else if (slash) {
			*slash = '\0';
			dir_path = dir;
		}
		int dir_fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dir_fd >= 0) {
			(void)fsync(dir_fd);
			close(dir_fd);
		}
		free(dir);
	}
	return;

fail:;
	int saved_errno = errno;
	if (fd >= 0)
		close(fd);
	if (tmp_path) {
		unlink(tmp_path);
		free(tmp_path);
	}
	pthread_mutex_lock(&names->lock);
	names->cache_write_failures++;
	pthread_mutex_unlock(&names->lock);
	fx_warn("asn names: writing the cache %s failed at %s: %s", names->cache_path, step,
		strerror(saved_errno));
}

/* ---- Download (background thread only) ---- */

/* Downloads the URL into body. Returns 0 when it answered 200, else -1 with a reason (an empty reason when
 * destroy aborted the transfer). */
static int download_list(struct fx_asn_names *names, struct fx_buf *body, char *reason, size_t reason_size)
{
	struct fx_http_request request = {.response = body};
	struct fx_http_result result;
	reason[0] = '\0';
	fx_http_client_send(names->http, &request, &result);
	if (atomic_load(&names->stopping))
		return -1; /* aborted: empty reason */
	if (result.too_big)
		snprintf(reason, reason_size, "the list is larger than %zu bytes", MAX_LIST_BYTES);
	else if (result.status == 0)
		snprintf(reason, reason_size, "%s", result.error);
	else if (result.status != 200)
		snprintf(reason, reason_size, "HTTP status %ld", result.status);
	else
		return 0;
	return -1;
}

/* One download: installs and caches the list on success. Returns 0, or -1 (logged and counted, unless
 * destroy aborted it). */
static int refresh_url(struct fx_asn_names *names)
{
	struct fx_buf body;
	char reason[REASON_SIZE];
	int rc = -1;

	fx_buf_init(&body, MAX_LIST_BYTES);
	if (download_list(names, &body, reason, sizeof(reason)) != 0) {
		if (reason[0])
			count_failure(names, ORIGIN_URL, names->shown_source, reason);
		goto done;
	}
	const char *text = body.data ? body.data : "";
	if (load_text(names, ORIGIN_URL, names->shown_source, text, body.len) != 0)
		goto done;
	rc = 0;
	if (names->cache_path)
		write_cache(names, text, body.len);

done:
	fx_buf_free(&body);
	return rc;
}

/* Sleeps delay_ms (forever when delay_ms <= 0) unless destroy asks to stop or a reload to refresh now
 * (*reload set). Returns false when stopping. */
static bool sleep_unless_stopping(struct fx_asn_names *names, int64_t delay_ms, bool *reload)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (delay_ms > 0) {
		int64_t seconds = delay_ms / 1000;
		if (seconds > (int64_t)INT_MAX)
			seconds = INT_MAX; /* keep tv_sec far from overflow */
		deadline.tv_sec += (time_t)seconds;
		deadline.tv_nsec += (long)(delay_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&names->lock);
	while (!atomic_load(&names->stopping) && !names->reload_requested) {
		int rc = delay_ms > 0 ? pthread_cond_timedwait(&names->wake, &names->lock, &deadline)
				      : pthread_cond_wait(&names->wake, &names->lock);
		if (rc == ETIMEDOUT)
			break;
	}
	bool stopping = atomic_load(&names->stopping);
	*reload = names->reload_requested;
	names->reload_requested = false;
	pthread_mutex_unlock(&names->lock);
	return !stopping;
}

static int64_t backoff_ms(const struct fx_asn_names *names, unsigned failures)
{
	int64_t first = BACKOFF_FIRST_MS, max = BACKOFF_MAX_MS;
	if (names->refresh_ms > 0) {
		first = names->refresh_ms < first ? names->refresh_ms : first;
		max = names->refresh_ms < max ? names->refresh_ms : max;
	}
	int64_t delay = first;
	for (unsigned k = 1; k < failures && delay < max; k++)
		delay *= 2;
	return delay < max ? delay : max;
}

static void *refresh_thread(void *opaque)
{
	struct fx_asn_names *names = opaque;

	bool reload;
	if (names->kind == SOURCE_FILE) {
		while (sleep_unless_stopping(names, names->refresh_ms, &reload))
			refresh_file(names, reload);
		return NULL;
	}
	unsigned failures = 0;
	for (;;) {
		int64_t delay;
		if (refresh_url(names) == 0) {
			failures = 0;
			delay = names->refresh_ms; /* 0: never again, sleep until destroy */
		} else {
			failures++;
			delay = backoff_ms(names, failures);
		}
		if (!sleep_unless_stopping(names, delay, &reload))
			break;
	}
	return NULL;
}

/* A copy of the source for logs, with the user information of a URL (user:password@) replaced by "***@". */
static char *redact_source(const char *source)
{
	const char *authority = strstr(source, "://");
	authority = authority ? authority + 3 : NULL;
	size_t authority_len = authority ? strcspn(authority, "/?#") : 0;
	const char *at = authority ? memchr(authority, '@', authority_len) : NULL;
	if (!at)
		return strdup(source);
	/* The last '@' of the authority ends the user information. */
	while (memchr(at + 1, '@', authority_len - (size_t)(at + 1 - authority)))
		at = memchr(at + 1, '@', authority_len - (size_t)(at + 1 - authority));
	size_t size = (size_t)(authority - source) + strlen("***") + strlen(at) + 1;
	char *shown = malloc(size);
	if (shown)
		snprintf(shown, size, "%.*s***%s", (int)(authority - source), source, at);
	return shown;
}

static bool is_url(const char *source)
{
	return strncasecmp(source, "http://", 7) == 0 || strncasecmp(source, "https://", 8) == 0;
}

struct fx_asn_names *fx_asn_names_create(const struct fx_asn_names_config *config)
{
	struct fx_asn_names *names = NULL;
	pthread_condattr_t cond_attr;
	bool cond_attr_initialized = false;

	if (!config->embedded_text && (!config->source || !config->source[0])) {
		fx_error("asn names: no source (a file path or an http(s) URL)");
		goto fail;
	}
	assert(config->refresh_ms >= 0);
	names = calloc(1, sizeof(*names));
	if (!names)
		goto fail_memory;
	/* The lock and condition variable first, so that destroy can always release them. */
	if (pthread_mutex_init(&names->lock, NULL) != 0)
		goto fail_free;
	if (pthread_condattr_init(&cond_attr) != 0) {
		pthread_mutex_destroy(&names->lock);
		goto fail_free;
	}
	cond_attr_initialized = true;
	if (pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&names->wake, &cond_attr) != 0) {
		pthread_mutex_destroy(&names->lock);
		goto fail_free;
	}
	pthread_condattr_destroy(&cond_attr);
	cond_attr_initialized = false;
	atomic_init(&names->stopping, false);

	names->refresh_ms = config->refresh_ms;
	names->timeout_ms = config->timeout_ms;
	if (config->embedded_text) {
		names->kind = SOURCE_EMBEDDED;
		names->embedded_text = config->embedded_text;
		(void)load_text(names, ORIGIN_EMBEDDED, "built-in list", names->embedded_text,
				strlen(names->embedded_text));
		return names; /* never refreshed */
	}
	names->kind = is_url(config->source) ? SOURCE_URL : SOURCE_FILE;
	assert(names->kind != SOURCE_URL || config->timeout_ms > 0);
	names->source = strdup(config->source);
	names->shown_source = redact_source(config->source);
	if (!names->source || !names->shown_source)
		goto fail_memory;
	if (config->cache_path && config->cache_path[0]) {
		names->cache_path = strdup(config->cache_path);
		if (!names->cache_path)
			goto fail_memory;
	}

	if (names->kind == SOURCE_FILE) {
		refresh_file(names, true);
		if (names->refresh_ms == 0)
			return names;
	} else {
		/* Only this URL: no redirects (the client's rule), no proxy from the environment. */
		struct fx_http_client_config http = {
		    .url = names->source,
		    .timeout_ms = names->timeout_ms,
		    .ignore_proxy_env = true,
		    .accept_encoding = true,
		};
		names->http = fx_http_client_create(&http, "GET", NULL, 0);
		if (!names->http)
			goto fail;
		fx_http_client_set_abort(names->http, &names->stopping);
		if (names->cache_path)
			load_cache(names);
	}
	int rc = pthread_create(&names->thread, NULL, refresh_thread, names);
	if (rc != 0) {
		fx_error("asn names: cannot start the refresh thread: %s", strerror(rc));
		goto fail;
	}
	names->thread_started = true;
	fx_thread_name(names->thread, "asn-names", -1);
	return names;

fail_free:
	/* Only before the lock and condition variable both exist: destroy cannot be used yet. */
	fx_error("asn names: cannot initialise a lock");
	if (cond_attr_initialized)
		pthread_condattr_destroy(&cond_attr);
	free(names);
	return NULL;
fail_memory:
	fx_error("asn names: out of memory");
fail:
	fx_asn_names_destroy(names);
	return NULL;
}

void fx_asn_names_destroy(struct fx_asn_names *names)
{
	if (!names)
		return;
	if (names->thread_started) {
		pthread_mutex_lock(&names->lock);
		atomic_store(&names->stopping, true);
		pthread_cond_signal(&names->wake);
		pthread_mutex_unlock(&names->lock);
		if (names->http)
			fx_http_client_wakeup(names->http); /* interrupts a download in progress */
		pthread_join(names->thread, NULL);
	}
	fx_http_client_destroy(names->http);
	fx_asn_map_unref(names->current);
	pthread_cond_destroy(&names->wake);
	pthread_mutex_destroy(&names->lock);
	free(names->source);
	free(names->shown_source);
	free(names->cache_path);
	free(names);
}

struct fx_asn_map *fx_asn_names_acquire(struct fx_asn_names *names)
{
	if (!names)
		return NULL;
	pthread_mutex_lock(&names->lock);
	struct fx_asn_map *map = fx_asn_map_ref(names->current);
	pthread_mutex_unlock(&names->lock);
	return map;
}

int fx_asn_names_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_asn_names *names = opaque;
	uint64_t loads[N_ORIGINS][2], cache_write_failures;
	int64_t last_success_wall_ms;

	/* Copy under the lock, encode outside it. */
	pthread_mutex_lock(&names->lock);
	size_t count = fx_asn_map_count(names->current);
	memcpy(loads, names->loads, sizeof(loads));
	cache_write_failures = names->cache_write_failures;
	last_success_wall_ms = names->last_success_wall_ms;
	pthread_mutex_unlock(&names->lock);

	/* Only the origins this source can have, so that no series is always zero. */
	bool origins[N_ORIGINS] = {false};
	if (names->kind == SOURCE_EMBEDDED)
		origins[ORIGIN_EMBEDDED] = true;
	else if (names->kind == SOURCE_FILE)
		origins[ORIGIN_FILE] = true;
	else
		origins[ORIGIN_URL] = origins[ORIGIN_CACHE] = true;

	if (fx_family_begin(out, "flow_exporter_asn_names", "AS names currently loaded.", FX_METRIC_GAUGE) !=
		0 ||
	    fx_family_add_u64(out, count, 0, NULL) != 0)
		return -1;
	if (fx_family_begin(out, "flow_exporter_asn_names_loads_total",
			    "Loads of the AS name list by source and result.", FX_METRIC_COUNTER) != 0)
		return -1;
	for (int origin = 0; origin < N_ORIGINS; origin++) {
		if (!origins[origin])
			continue;
		for (int failed = 0; failed < 2; failed++) {
			struct fx_label labels[2] = {{"result", failed ? "failure" : "success"},
						     {"source", origin_names[origin]}};
			if (fx_family_add_u64(out, loads[origin][failed], 2, labels) != 0)
				return -1;
		}
	}
	if (fx_family_begin(out, "flow_exporter_asn_names_cache_write_failures_total",
			    "Failures to write the cache of the downloaded AS name list.",
			    FX_METRIC_COUNTER) != 0 ||
	    fx_family_add_u64(out, cache_write_failures, 0, NULL) != 0)
		return -1;
	if (fx_family_begin(out, "flow_exporter_asn_names_last_success_timestamp_seconds",
			    "Unix time of the last successful load of the AS name list (0 before the first).",
			    FX_METRIC_GAUGE) != 0 ||
	    fx_family_add_double(out, (double)last_success_wall_ms / 1000.0, 0, NULL) != 0)
		return -1;
	return 0;
}

void fx_asn_names_reload(struct fx_asn_names *names)
{
	if (!names || !names->thread_started)
		return;
	pthread_mutex_lock(&names->lock);
	names->reload_requested = true;
	pthread_cond_signal(&names->wake);
	pthread_mutex_unlock(&names->lock);
}
