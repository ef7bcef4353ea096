/* Deterministic pmacct-shaped records for the benchmarks: the same bytes on every run for the same
 * parameters, with a chosen number of series.
 *
 * A series is one (hostname, remote AS, direction, iface_in) tuple: series = hosts * asns * 2 * ifaces.
 * Direction 0 sends from the local AS to a remote one (transmit), direction 1 the other way (receive), so
 * every record is counted. iface_out follows iface_in, so it adds no series. Record j belongs to series
 * (j * stride) mod series, with a stride coprime with the series count: consecutive records hit spread-out
 * series and every series appears once in each run of `series` records. Records are about 290 bytes, in
 * pmacct 1.7's key order and spacing (see tests/data/pmacct/pmacct-kafka-json.jsonl).
 *
 * Header-only: included by fx_bench_kafka.c and bench_decode.c. */
#ifndef FX_BENCH_GEN_H
#define FX_BENCH_GEN_H

#include <stdint.h>
#include <stdio.h>

struct bench_gen {
	uint32_t hosts, asns, ifaces;
	uint32_t local_asn;
	uint64_t series;
	uint64_t stride;
};

static inline uint64_t bench_gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static inline void bench_gen_init(struct bench_gen *gen, uint32_t hosts, uint32_t asns, uint32_t ifaces,
				  uint32_t local_asn)
{
	gen->hosts = hosts;
	gen->asns = asns;
	gen->ifaces = ifaces;
	gen->local_asn = local_asn;
	gen->series = (uint64_t)hosts * asns * 2 * ifaces;
	/* Near the golden ratio of the series count, so neighbours land far apart. */
	gen->stride = gen->series * 0.6180339887 + 1;
	while (gen->series > 1 && bench_gcd(gen->stride, gen->series) != 1)
		gen->stride++;
}

/* Writes record j (no newline) into out; returns its length, or 0 if it does not fit. */
static inline size_t bench_gen_record(const struct bench_gen *gen, uint64_t j, char *out, size_t cap)
{
	uint64_t s = (j % gen->series) * gen->stride % gen->series;
	uint32_t host = s % gen->hosts;
	s /= gen->hosts;
	uint32_t asn = 64512 + s % gen->asns; /* private ASNs, never the local one (64496) */
	s /= gen->asns;
	uint32_t direction = s % 2;
	s /= 2;
	uint32_t iface_in = 1 + (uint32_t)s;
	uint32_t iface_out = iface_in % gen->ifaces + 1;
	uint32_t as_src = direction ? asn : gen->local_asn;
	uint32_t as_dst = direction ? gen->local_asn : asn;
	uint64_t packets = 1 + j % 97;
	uint64_t bytes = packets * (64 + j % 1437);
	int n = snprintf(out, cap,
			 "{\"event_type\": \"purge\", \"label\": \"router%u.pop%u.example.net\", \"as_src\": %u, "
			 "\"as_dst\": %u, \"peer_ip_src\": \"192.0.2.%u\", \"iface_in\": %u, \"iface_out\": %u, "
			 "\"stamp_inserted\": \"2026-11-26 14:23:00\", \"stamp_updated\": \"2026-11-26 14:23:06\", "
			 "\"packets\": %llu, \"bytes\": %llu, \"writer_id\": \"flows/677\"}",
			 host, host % 7, as_src, as_dst, host % 250 + 1, iface_in, iface_out,
			 (unsigned long long)packets, (unsigned long long)bytes);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

#endif
