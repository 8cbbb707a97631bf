// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace tc::merge {

/// The tc-merge command line (jobs add|list|show, validate, merge, testdata). Returns the
/// process exit status: 0 success, 1 validation errors / merge refused / verification failed,
/// 2 usage or connection errors. Exceptions end here (STYLE.md 3.5: tools' top level).
int run_cli(int argc, char** argv);

}  // namespace tc::merge
