/* Logging to stderr with a level, and a rate limiter for log lines written from a hot path. */
#ifndef FX_LOG_H
#define FX_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum fx_log_level { FX_LOG_ERROR = 0, FX_LOG_WARN, FX_LOG_INFO, FX_LOG_DEBUG };

/* The level is process-wide and set once by main before any thread starts. */
void fx_log_set_level(enum fx_log_level level);
/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 for anything else. */
int fx_log_level_parse(const char *text, enum fx_log_level *level);

/* Thread-safe: one line is written with a single write(2). */
void fx_log(enum fx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define fx_error(...) fx_log(FX_LOG_ERROR, __VA_ARGS__)
#define fx_warn(...) fx_log(FX_LOG_WARN, __VA_ARGS__)
#define fx_info(...) fx_log(FX_LOG_INFO, __VA_ARGS__)
#define fx_debug(...) fx_log(FX_LOG_DEBUG, __VA_ARGS__)

/* Allows FX_RATELIMIT_BURST lines per FX_RATELIMIT_PERIOD_MS and counts the rest, so that a stream of
 * bad records cannot flood the log. Owned by one thread; not locked. Zero-initialise it. */
#define FX_RATELIMIT_BURST 10
#define FX_RATELIMIT_PERIOD_MS 10000
struct fx_ratelimit {
	int64_t window_start_ms;
	uint32_t in_window;
	uint64_t suppressed; /* lines refused since the last allowed one */
};
/* Returns true when a line may be written now; then *suppressed holds how many were refused before. */
bool fx_ratelimit_allow(struct fx_ratelimit *limit, int64_t now_ms, uint64_t *suppressed);

#endif
