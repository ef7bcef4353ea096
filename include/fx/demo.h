/* The embedded default: librdkafka's mock cluster on loopback and a producer thread writing realistic
 * synthetic pmacct records into it, so the exporter shows live counters with no external service. */
#ifndef FX_DEMO_H
#define FX_DEMO_H

#include <stdint.h>

/* A small asn.txt list for the demo's ASNs, built into the binary. */
extern const char fx_demo_asn_text[];

struct fx_demo_config {
	const char *topic;
	uint32_t local_asn;        /* the operator's AS in the synthetic traffic */
	unsigned records_per_second;
	unsigned remote_ases; /* distinct remote ASes (--demo-ases); 0: the ten well-known ones */
};

struct fx_demo;

/* Starts the mock cluster and the producer. NULL (logged) on failure. */
struct fx_demo *fx_demo_create(const struct fx_demo_config *config);
/* "127.0.0.1:port" of the mock cluster, valid until destroy. */
const char *fx_demo_bootstraps(const struct fx_demo *demo);
/* Stops the producer and the cluster. Accepts NULL. */
void fx_demo_destroy(struct fx_demo *demo);

#endif
