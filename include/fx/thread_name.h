/* Names for the daemon's threads, as top -H, ps -L, perf and /proc/<pid>/task/<tid>/comm show them:
 * "fx-<role>" or "fx-<role>-<index>" (at most 15 bytes; longer is cut). librdkafka names its own ("rdk:*"). */
#ifndef FX_THREAD_NAME_H
#define FX_THREAD_NAME_H

#include <pthread.h>

/* index < 0: no index. A failure only leaves the thread with the process's name. */
void fx_thread_name(pthread_t thread, const char *role, long index);

#endif
