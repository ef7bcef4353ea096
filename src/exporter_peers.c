/* hostname -> exporter address (see exporter_peers.h): a small array searched by pointer; there are as many
 * entries as routers, and consumer threads come here only when their cache sees a new pair.
 *
 * Thread: `lock` guards everything. */
#include "fx/exporter_peers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEER_LEN 64 /* an IPv6 address with a zone fits */

struct entry {
	const char *hostname;
	char peer[MAX_PEER_LEN];
};

struct fx_exporter_peers {
	pthread_mutex_t lock;
	struct entry *entries;
	size_t n, max;
	uint64_t refused;
};

struct fx_exporter_peers *fx_exporter_peers_create(size_t max)
{
	struct fx_exporter_peers *peers = calloc(1, sizeof(*peers));
	if (!peers)
		return NULL;
	peers->entries = calloc(max ? max : 1, sizeof(*peers->entries));
	if (!peers->entries) {
		free(peers);
		return NULL;
	}
	peers->max = max;
	pthread_mutex_init(&peers->lock, NULL);
	return peers;
}

void fx_exporter_peers_destroy(struct fx_exporter_peers *peers)
{
	if (!peers)
		return;
	pthread_mutex_destroy(&peers->lock);
	free(peers->entries);
	free(peers);
}

static struct entry *find(struct fx_exporter_peers *peers, const char *hostname)
{
	for (size_t i = 0; i < peers->n; i++)
		if (peers->entries[i].hostname == hostname)
			return &peers->entries[i];
	return NULL;
}

void fx_exporter_peers_note(struct fx_exporter_peers *peers, const char *hostname, const char *peer,
			    size_t len)
{
	if (len >= MAX_PEER_LEN)
		return; /* not an address */
	pthread_mutex_lock(&peers->lock);
	struct entry *entry = find(peers, hostname);
	if (!entry && peers->n < peers->max) {
		entry = &peers->entries[peers->n++];
		entry->hostname = hostname;
	}
	if (entry) {
		memcpy(entry->peer, peer, len);
		entry->peer[len] = '\0';
	} else {
		peers->refused++;
	}
	pthread_mutex_unlock(&peers->lock);
}

bool fx_exporter_peers_get(struct fx_exporter_peers *peers, const char *hostname, char *buf, size_t size)
{
	if (!peers)
		return false;
	pthread_mutex_lock(&peers->lock);
	const struct entry *entry = find(peers, hostname);
	if (entry)
		snprintf(buf, size, "%s", entry->peer);
	pthread_mutex_unlock(&peers->lock);
	return entry != NULL;
}

uint64_t fx_exporter_peers_refused(struct fx_exporter_peers *peers)
{
	pthread_mutex_lock(&peers->lock);
	uint64_t refused = peers->refused;
	pthread_mutex_unlock(&peers->lock);
	return refused;
}
