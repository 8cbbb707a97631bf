// SPDX-License-Identifier: Apache-2.0
#include <malloc.h>

#include "merge/tc_merge.h"

int main(int argc, char** argv) {
  // A fixed mmap threshold: every buffer of 1 MB or more (a large stanza) is its own mapping,
  // returned to the system when freed. glibc's default raises the threshold after the first
  // such free, and later large stanzas then stay in the heap after use (issue 17: memory).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  return tc::merge::run_cli(argc, argv);
}
