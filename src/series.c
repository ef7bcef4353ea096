/* The series key's label names and its total order (used to sort snapshots). */
#include "fx/series.h"

#include <string.h>

const char *const fx_label_names[7] = {
	"hostname", "source_as", "source_as_name", "destination_as", "destination_as_name", "iface_in", "iface_out",
};

static int compare_u32(uint32_t a, uint32_t b) { return (a > b) - (a < b); }

int fx_series_key_compare(const struct fx_series_key *a, const struct fx_series_key *b)
{
	int c;
	if ((c = compare_u32(a->as_src, b->as_src)) || (c = compare_u32(a->as_dst, b->as_dst)))
		return c;
	if (a->hostname != b->hostname) {
		if (!a->hostname)
			return -1;
		if (!b->hostname)
			return 1;
		c = strcmp(a->hostname, b->hostname);
		if (c)
			return c;
	}
	if ((c = compare_u32(a->iface_in, b->iface_in)) || (c = compare_u32(a->iface_out, b->iface_out)))
		return c;
	return compare_u32(a->present, b->present);
}
