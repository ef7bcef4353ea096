/* The protobuf wire primitives the remote-write encoders (rw_encode.c, rw2_encode.c) write by hand:
 * varints, fixed64 doubles and field tags, exactly as protobuf_c_message_pack writes them. */
#ifndef FX_PB_WIRE_H
#define FX_PB_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A varint of a 64-bit value, at most. */
#define FX_PB_VARINT_MAX 10

/* A field tag: (number << 3) | wire type. */
#define FX_PB_TAG(number, type) ((char)(((number) << 3) | (type)))
#define FX_PB_VARINT 0
#define FX_PB_FIXED64 1
#define FX_PB_LEN 2

static inline size_t fx_pb_varint_len(uint64_t value)
{
	size_t n = 1;
	while (value >= 0x80) {
		value >>= 7;
		n++;
	}
	return n;
}

static inline char *fx_pb_write_varint(char *p, uint64_t value)
{
	while (value >= 0x80) {
		*p++ = (char)(value | 0x80);
		value >>= 7;
	}
	*p++ = (char)value;
	return p;
}

/* Writes the 8 bytes of a double field's value (little-endian on the wire). */
static inline char *fx_pb_write_fixed64(char *p, uint64_t bits)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(p, &bits, 8);
	return p + 8;
#else
	for (int i = 0; i < 8; i++)
		*p++ = (char)(bits >> (8 * i));
	return p;
#endif
}

#endif
