/* libFuzzer target: the operator's map files (--interface-names, --sampling-rates) never crash, leak or
 * read out of bounds, and their parsers keep their contract on any input:
 *   - a refused file names a line within the input (or 0 for none), and hands back no map;
 *   - an accepted interface file holds only entries with a non-empty exporter and name, sorted by
 *     (exporter, ifindex) without duplicates, each found again by lookup;
 *   - an accepted rates file holds rates from 1 up, each found again by lookup.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_map_files.c src/csv.c \
 *         src/iface_map.c src/sampling.c src/family_list.c src/log.c -lpthread -o fuzz_map_files
 * (or the CMake way: cmake -S . -B build-fuzz -DFX_FUZZ=ON -DCMAKE_C_COMPILER=clang)
 *   ./fuzz_map_files -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fx/iface_map.h"
#include "fx/sampling.h"

static size_t lines_of(const uint8_t *data, size_t size)
{
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	return lines;
}

static void check_interfaces(const char *text, size_t size, size_t lines)
{
	struct fx_iface_map *map = NULL;
	struct fx_parse_error error = {0};
	if (fx_iface_map_parse(text, size, &map, &error)) {
		if (map || error.line > lines)
			abort();
		return;
	}
	for (size_t i = 0; i < fx_iface_map_count(map); i++) {
		const struct fx_iface_entry *entry = fx_iface_map_entry(map, i);
		if (!entry->exporter[0] || !entry->name[0])
			abort();
		if (fx_iface_map_lookup(map, entry->exporter, entry->ifindex) != entry)
			abort();
		if (i > 0) {
			const struct fx_iface_entry *before = fx_iface_map_entry(map, i - 1);
			int c = strcmp(before->exporter, entry->exporter);
			if (c > 0 || (c == 0 && before->ifindex >= entry->ifindex))
				abort();
		}
	}
	fx_iface_map_unref(map);
}

static void check_rates(const char *text, size_t size, size_t lines)
{
	struct fx_rate_map *map = NULL;
	struct fx_parse_error error = {0};
	if (fx_rate_map_parse(text, size, &map, &error)) {
		if (map || error.line > lines)
			abort();
		return;
	}
	fx_rate_map_lookup(map, text, size > 16 ? 16 : size);
	fx_rate_map_unref(map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first byte picks a header, so that the fuzzer reaches the records quickly. */
	static const char *const headers[] = {"", "exporter,ifindex,name,description,speed\n",
					      "exporter,rate\n"};
	const char *header = size ? headers[data[0] % 3] : "";
	size_t header_len = strlen(header), body = size ? size - 1 : 0;
	char *text = malloc(header_len + body + 1);
	if (!text)
		return 0;
	memcpy(text, header, header_len);
	if (body)
		memcpy(text + header_len, data + 1, body);
	size_t len = header_len + body, lines = lines_of((const uint8_t *)text, len);
	check_interfaces(text, len, lines);
	check_rates(text, len, lines);
	free(text);
	return 0;
}
