# Warnings live in an INTERFACE target rather than global flags (STYLE.md 3.2).
add_library(tc_warnings INTERFACE)
target_compile_options(tc_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual -Werror)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 at -O2 reports a false mismatched-new-delete inside Boost.Asio's coroutine frame
  # allocator (awaitable_frame uses its own operator new/delete pair).
  target_compile_options(tc_warnings INTERFACE -Wno-mismatched-new-delete)
endif()
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  target_compile_options(tc_warnings INTERFACE -Wthread-safety)
endif()
add_library(tc::warnings ALIAS tc_warnings)
