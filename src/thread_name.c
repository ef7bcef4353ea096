/* Thread names: see thread_name.h. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "fx/thread_name.h"

#include <stdio.h>

void fx_thread_name(pthread_t thread, const char *role, long index)
{
	char name[64];
	if (index < 0)
		snprintf(name, sizeof(name), "fx-%s", role);
	else
		snprintf(name, sizeof(name), "fx-%s-%ld", role, index);
	name[15] = '\0'; /* the kernel's bound: 16 bytes with the NUL */
	(void)pthread_setname_np(thread, name);
}
