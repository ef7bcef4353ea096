/* Hashing for the in-memory tables (never stored, never sent): the 64x64->128 multiply folded to 64 bits
 * (the "mum" of wyhash), and byte strings hashed eight bytes at a time with it.
 *
 * The strings hashed on the hot path are hostnames, exporter addresses and label values of 10-40 bytes,
 * hashed for every record: FNV-1a took one dependent multiply per byte (~100 cycles for a hostname),
 * this takes two or three multiplies per string. */
#ifndef FX_HASH_H
#define FX_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The multiply that mixes every input bit into most output bits. */
static inline uint64_t fx_hash_mix(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
	unsigned __int128 r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
	/* No 128-bit product (32-bit targets): fold the high half in first, then mix the product. */
	uint64_t r = (a ^ (a >> 32)) * (b | 1);
	return r ^ (r >> 29);
#endif
}

static inline uint64_t fx_hash_read64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t fx_hash_read32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* A 64-bit hash of len bytes: wyhash's structure (16 bytes a step, the last 16 read whole even when they
 * overlap the step before, the length mixed in), with its constants. Every bit of the result is usable:
 * tables take the low bits for the slot. Byte order changes the values, not their quality. */
static inline uint64_t fx_hash_bytes(const void *data, size_t len)
{
	const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
	const unsigned char *p = data;
	uint64_t seed = k0, a, b;
	if (len <= 16) {
		if (len >= 4) {
			/* 4 to 16 bytes: two overlapping pairs of 32-bit reads cover them all. */
			size_t mid = (len >> 3) << 2;
			a = fx_hash_read32(p) << 32 | fx_hash_read32(p + mid);
			b = fx_hash_read32(p + len - 4) << 32 | fx_hash_read32(p + len - 4 - mid);
		} else if (len > 0) {
			a = (uint64_t)p[0] << 16 | (uint64_t)p[len >> 1] << 8 | p[len - 1];
			b = 0;
		} else {
			a = b = 0;
		}
	} else {
		size_t left = len;
		while (left > 16) {
			seed = fx_hash_mix(fx_hash_read64(p) ^ k1, fx_hash_read64(p + 8) ^ seed);
			p += 16;
			left -= 16;
		}
		a = fx_hash_read64(p + left - 16);
		b = fx_hash_read64(p + left - 8);
	}
	return fx_hash_mix(k1 ^ len, fx_hash_mix(a ^ k1, b ^ seed ^ k2));
}

#endif
