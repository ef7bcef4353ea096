/* Logging: one line per call to stderr, "2026-11-26T17:00:00.123Z level message". A line is formatted
 * into a stack buffer and written with one write(2), so lines from different threads never interleave. */
#include "fx/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set once by main before threads start, read by all: the only process-wide setting. */
static enum fx_log_level log_level = FX_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void fx_log_set_level(enum fx_log_level level) { log_level = level; }

int fx_log_level_parse(const char *text, enum fx_log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*level = (enum fx_log_level)i;
			return 0;
		}
	}
	return -1;
}

void fx_log(enum fx_log_level level, const char *fmt, ...)
{
	if (level > log_level)
		return;
	char line[2048];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	int n = snprintf(line + len, sizeof(line) - len, ".%03ldZ %-5s ", now.tv_nsec / 1000000L,
			 level_names[level]);
	len += (size_t)n;
	va_list ap;
	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	len += (size_t)n;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2; /* truncated: keep the newline */
	line[len++] = '\n';
	ssize_t ignored = write(STDERR_FILENO, line, len);
	(void)ignored;
}

bool fx_ratelimit_allow(struct fx_ratelimit *limit, int64_t now_ms, uint64_t *suppressed)
{
	if (now_ms - limit->window_start_ms >= FX_RATELIMIT_PERIOD_MS) {
		limit->window_start_ms = now_ms;
		limit->in_window = 0;
	}
	if (limit->in_window >= FX_RATELIMIT_BURST) {
		limit->suppressed++;
		return false;
	}
	limit->in_window++;
	*suppressed = limit->suppressed;
	limit->suppressed = 0;
	return true;
}
