/* Step (3): the direction of a flow. The local ASNs are few (usually one), sorted at startup; a linear scan
 * of a handful of integers beats a binary search, so the scan is used below 16 and bisection above. */
#include "fx/classify.h"

static bool is_local(const struct fx_local_asns *local, uint32_t asn)
{
	if (local->n < 16) {
		for (size_t i = 0; i < local->n; i++)
			if (local->asn[i] == asn)
				return true;
		return false;
	}
	size_t lo = 0, hi = local->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (local->asn[mid] < asn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < local->n && local->asn[lo] == asn;
}

enum fx_direction fx_classify(const struct fx_local_asns *local, uint32_t as_src, uint32_t as_dst)
{
	if (is_local(local, as_src))
		return FX_DIR_TRANSMIT;
	if (is_local(local, as_dst))
		return FX_DIR_RECEIVE;
	return FX_DIR_NONE;
}
