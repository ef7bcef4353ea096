/* Snapshot lifetime: a snapshot owns its arrays, its AS-name reference and its self-metric list. */
#include "fx/snapshot.h"

#include <stdlib.h>

void fx_snapshot_destroy(struct fx_snapshot *snapshot)
{
	if (!snapshot)
		return;
	free(snapshot->series);
	free(snapshot->expired);
	fx_asn_map_unref(snapshot->names);
	fx_family_list_destroy(snapshot->self);
	free(snapshot);
}
