# Output-side benchmarks (snapshot, /metrics, remote write): included by tests/bench/CMakeLists.txt.
# Not part of ctest's pass/fail; see tests/bench/bench_output.sh and the README's benchmark section.
add_executable(bench_output ${CMAKE_CURRENT_LIST_DIR}/bench_output.c)
target_link_libraries(bench_output PRIVATE fx_core)
