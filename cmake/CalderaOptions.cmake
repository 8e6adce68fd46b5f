# Interface targets that carry our compile flags. Link `caldera::warnings` into
# every target built from our own sources (not generated code).
add_library(caldera_warnings INTERFACE)
add_library(caldera::warnings ALIAS caldera_warnings)
target_compile_options(caldera_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>
  # GCC's -Wshadow for locals only; clang (the fuzz build) has no such option.
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wshadow=local>
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor -Wno-unused-parameter>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${CALDERA_WERROR}>>:-Werror>)

if(CALDERA_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# libFuzzer targets (tests/fuzz, scripts/fuzz.sh): clang only; every library is
# built with coverage instrumentation and ASan/UBSan so the fuzzers see into it.
option(CALDERA_FUZZ "Build the libFuzzer targets of tests/fuzz (clang)" OFF)
if(CALDERA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "CALDERA_FUZZ=ON needs clang: -DCMAKE_CXX_COMPILER=clang++ "
                        "-DCMAKE_C_COMPILER=clang (scripts/fuzz.sh does this)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# Release builds use the native-ish baseline every x86-64 server has (AVX2/FMA
# would exclude old CI hosts; keep the default generic and let benchmarks opt in).
option(CALDERA_NATIVE "Compile with -march=native" OFF)
if(CALDERA_NATIVE)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
