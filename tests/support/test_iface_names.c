/* See test_iface_names.h. */
#include "test_iface_names.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fx/iface_map.h"

struct fx_iface_names *fx_test_iface_names(void)
{
	static const char *const hosts[] = {"r1", "a\"b\\c\nd"};
	static char names[2][4096][24], descriptions[2][4096][24];
	struct fx_iface_entry *entries = calloc(2 * 4096, sizeof(*entries));
	for (size_t h = 0; h < 2; h++)
		for (uint32_t i = 0; i < 4096; i++) {
			snprintf(names[h][i], sizeof(names[h][i]), "%s%u", h ? "x\\" : "et-0/0/", i);
			snprintf(descriptions[h][i], sizeof(descriptions[h][i]), "%s",
				 i % 3 == 0   ? ""
				 : i % 3 == 1 ? "d \"q\""
					      : "plain");
			entries[h * 4096 + i] =
			    (struct fx_iface_entry){hosts[h], i, names[h][i], descriptions[h][i], 0, false};
		}
	struct fx_iface_names *interfaces =
	    fx_iface_names_create(NULL, fx_iface_map_build(entries, 2 * 4096), NULL);
	free(entries);
	if (!interfaces)
		abort();
	return interfaces;
}
