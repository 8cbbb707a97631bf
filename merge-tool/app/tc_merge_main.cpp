// SPDX-License-Identifier: Apache-2.0
#include "merge/tc_merge.h"

int main(int argc, char** argv) {
  return tc::merge::run_cli(argc, argv);
}
